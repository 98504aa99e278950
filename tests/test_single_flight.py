"""Single-flight get_or_set (OPTIONS["SINGLE_FLIGHT"] = True)."""

import asyncio
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_rustcache import RustCache, single_flight
from django_rustcache.extras import ExtrasMixin

# A generous bound on waits that should end at once: a test fails (rather than hangs) if one does not.
PATIENCE = 10


def wait_until(predicate, what):
    for _ in range(PATIENCE * 1000):
        if predicate():
            return
        threading.Event().wait(0.001)
    raise AssertionError(f"gave up waiting for {what}")


def waiters(backend, key):
    name = (backend._location, backend.make_key(key))
    with single_flight._mutex:
        flight = single_flight._flights.get(name)
        return len(flight.waiters) if flight is not None else 0


@pytest.fixture
def sf_cache():
    backend = RustCache("tests-single-flight", {"OPTIONS": {"SINGLE_FLIGHT": True}})
    backend.clear()
    yield backend
    backend.clear()
    assert single_flight._flights == {}
    assert single_flight._waiting_on == {}


def run_threads(n, target):
    results = [None] * n
    errors = [None] * n

    def body(i):
        try:
            results[i] = target()
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads, results, errors


def join_all(threads):
    for thread in threads:
        thread.join(PATIENCE)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"


def test_option_is_off_by_default_and_validated():
    assert RustCache("tests-single-flight", {})._options.single_flight is False
    with pytest.raises(ImproperlyConfigured, match="SINGLE_FLIGHT"):
        RustCache("tests-single-flight", {"OPTIONS": {"SINGLE_FLIGHT": "yes"}})


def test_fifty_threads_one_call(sf_cache):
    calls = []

    def compute():
        calls.append(1)
        # Hold the flight until all the others have missed and joined it.
        wait_until(lambda: waiters(sf_cache, "hot") == 49, "49 waiters")
        return {"answer": 42}

    threads, results, errors = run_threads(50, lambda: sf_cache.get_or_set("hot", compute, 60))
    join_all(threads)
    assert errors == [None] * 50
    assert len(calls) == 1
    assert results == [{"answer": 42}] * 50
    # Each caller has a copy of its own, as after a plain get_or_set.
    assert len({id(result) for result in results}) == 50
    assert sf_cache.get("hot") == {"answer": 42}


def test_without_single_flight_every_miss_calls(cache):
    both_in = threading.Barrier(2, timeout=PATIENCE)
    calls = []

    def compute():
        calls.append(1)
        both_in.wait()  # would break (BrokenBarrierError) if only one caller ran it
        return 1

    threads, _, errors = run_threads(2, lambda: cache.get_or_set("hot", compute, 60))
    join_all(threads)
    assert errors == [None, None]
    assert len(calls) == 2


def test_when_the_leader_raises_one_waiter_retries(sf_cache):
    calls = []

    def compute():
        calls.append(1)
        if len(calls) == 1:
            wait_until(lambda: waiters(sf_cache, "hot") == 9, "9 waiters")
            raise ValueError("backend down")
        return "fresh"

    threads, results, errors = run_threads(10, lambda: sf_cache.get_or_set("hot", compute, 60))
    join_all(threads)
    assert len(calls) == 2
    failed = [error for error in errors if error is not None]
    assert len(failed) == 1
    assert isinstance(failed[0], ValueError)
    assert sorted(map(str, results)) == ["None"] + ["fresh"] * 9


def test_value_not_stored_still_reaches_the_waiters(sf_cache):
    """timeout=0 stores nothing: the waiters get the leader's value."""
    calls = []

    def compute():
        calls.append(1)
        wait_until(lambda: waiters(sf_cache, "hot") == 4, "4 waiters")
        return "once"

    threads, results, errors = run_threads(5, lambda: sf_cache.get_or_set("hot", compute, 0))
    join_all(threads)
    assert errors == [None] * 5
    assert results == ["once"] * 5
    assert len(calls) == 1
    assert not sf_cache.has_key("hot")


def test_reentrant_use_from_the_callable(sf_cache):
    def outer():
        return sf_cache.get_or_set("key", lambda: "inner", 60) + "+outer"

    threads, results, errors = run_threads(1, lambda: sf_cache.get_or_set("key", outer, 60))
    join_all(threads)
    assert errors == [None]
    # The inner call stored its value first; the outer add() then found the key taken.
    assert results == ["inner"]


def test_crossed_flights_do_not_deadlock(sf_cache):
    """A leads "a" and needs "b"; B leads "b" and needs "a": one of them computes directly."""
    both_leading = threading.Barrier(2, timeout=PATIENCE)

    def leader_of(mine, other):
        def compute():
            both_leading.wait()
            if mine == "b":  # b asks second, once a is already waiting on b
                wait_until(lambda: waiters(sf_cache, "b") == 1, "a waiting on b")
            return f"{mine}<-" + str(sf_cache.get_or_set(other, lambda: other, 60))

        return lambda: sf_cache.get_or_set(mine, compute, 60)

    threads_a, results_a, errors_a = run_threads(1, leader_of("a", "b"))
    threads_b, results_b, errors_b = run_threads(1, leader_of("b", "a"))
    join_all(threads_a + threads_b)
    assert errors_a == errors_b == [None]
    assert results_b == ["b<-a"]  # b computed "a" directly instead of waiting on a
    assert results_a == ["a"]  # ... which a then found stored when its own add() lost


def test_non_callable_default_is_plain(sf_cache):
    assert sf_cache.get_or_set("k", "v", 60) == "v"
    assert sf_cache.get_or_set("k", "w", 60) == "v"


def test_hit_does_not_call(sf_cache):
    sf_cache.set("k", "cached")
    assert sf_cache.get_or_set("k", lambda: pytest.fail("called on a hit"), 60) == "cached"


def run_async_waiter(backend, aget_or_set):
    """A thread leads; an asyncio task joins its flight; the leader finishes only once another task of
    the loop has run while the first one waits. With a blocked loop the leader gives up waiting, and the
    test sees it."""
    loop_ran = threading.Event()
    calls = []

    def compute():
        calls.append(1)
        wait_until(lambda: waiters(backend, "hot") == 1, "the task to join")
        return "from-thread" if loop_ran.wait(PATIENCE / 5) else "loop-was-blocked"

    threads, results, errors = run_threads(1, lambda: backend.get_or_set("hot", compute, 60))

    wait_until(lambda: calls, "the thread to lead")

    async def scenario():
        waiting = asyncio.create_task(aget_or_set("hot", lambda: "from-task", 60))
        while waiters(backend, "hot") == 0 and not waiting.done():
            await asyncio.sleep(0.001)
        loop_ran.set()
        return await waiting

    value = asyncio.run(scenario())
    join_all(threads)
    assert errors == [None]
    return value, results, calls


def test_async_waiter_does_not_block_the_loop(sf_cache):
    value, results, calls = run_async_waiter(sf_cache, lambda *args: ExtrasMixin.aget_or_set(sf_cache, *args))
    assert value == "from-thread"
    assert results == ["from-thread"]
    assert len(calls) == 1


def test_cache_aget_or_set_does_not_block_the_loop(sf_cache):
    value, _, _ = run_async_waiter(sf_cache, sf_cache.aget_or_set)
    assert value == "from-thread"


def test_aget_or_set_single_flight_among_tasks(sf_cache):
    calls = []

    async def scenario():
        return await asyncio.gather(
            *(ExtrasMixin.aget_or_set(sf_cache, "k", lambda: calls.append(1) or "v", 60) for _ in range(10))
        )

    assert asyncio.run(scenario()) == ["v"] * 10
    assert len(calls) == 1
