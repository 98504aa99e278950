"""Issue #12: the extras under fork-free hostile conditions — one event loop shared by sync and async
callers, leaders that vanish, held locks in a full cache, subclass hooks, odd clocks, configuration
mistakes. (Forks are in test_fork.py.) Every wait here is bounded: a hang fails the test."""

import asyncio
import datetime
import math
import pickle
import threading
import time
import uuid
from unittest import mock

import pytest
import time_machine
from django.core import checks
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_rustcache import RustCache, single_flight
from django_rustcache.checks import check_caches

PATIENCE = 10


def wait_until(predicate, what):
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.001)


def flight_waiters(backend, key):
    name = (backend._location, backend.make_key(key))
    with single_flight._mutex:
        flight = single_flight._flights.get(name)
        return len(flight.waiters) if flight is not None else 0


def fresh(**options):
    return RustCache(f"hardening-{uuid.uuid4().hex}", {"OPTIONS": options})


def in_thread(target):
    outcome = {}

    def body():
        try:
            outcome["result"] = target()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


def failing_leader_of(cache, key):
    """A thread leading `key`'s flight, whose computation raises once the returned event is set."""
    release = threading.Event()

    def failing_leader():
        release.wait(PATIENCE)
        raise RuntimeError("leader failed")

    leader, outcome = in_thread(lambda: cache.get_or_set(key, failing_leader))
    wait_until(lambda: single_flight._flights, "the leader's flight")
    return release, leader, outcome


def finished(thread, outcome):
    thread.join(PATIENCE)
    assert not thread.is_alive(), "stuck: a caller never got an answer"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


# -- 4. sync and async callers on one event loop ------------------------------------------------


def test_single_flight_sync_and_async_callers_on_one_loop_both_get_an_answer():
    """A task awaits aget_or_set(k); sync code on the same loop thread calls get_or_set(k); the leader
    (another thread) raises. The task cannot lead while the sync caller blocks its loop, so the sync
    caller leads, and then the task gets the value."""
    cache = fresh(SINGLE_FLIGHT=True)
    release, leader, leader_outcome = failing_leader_of(cache, "k")

    async def main():
        task = asyncio.create_task(cache.aget_or_set("k", lambda: "from-task"))
        await asyncio.sleep(0)
        wait_until(lambda: flight_waiters(cache, "k") == 1, "the task to wait")
        threading.Timer(0.05, release.set).start()
        sync_value = cache.get_or_set("k", lambda: "from-sync")  # blocks this loop's thread
        return sync_value, await task

    runner, outcome = in_thread(lambda: asyncio.run(main()))
    assert finished(runner, outcome) == ("from-sync", "from-sync")
    with pytest.raises(RuntimeError, match="leader failed"):
        finished(leader, leader_outcome)
    assert single_flight._flights == {}


def test_sync_lock_acquire_queued_behind_an_alock_waiter_of_its_own_loop():
    cache = fresh()
    holder = cache.lock("job", timeout=10, thread_local=False)  # released from a timer thread
    assert holder.acquire()

    async def main():
        waiter = asyncio.create_task(cache.alock("job", timeout=10, sleep=0.01).acquire())
        await asyncio.sleep(0.05)  # the task is queued, head of the line
        threading.Timer(0.05, holder.release).start()
        sync_lock = cache.lock("job", timeout=10, sleep=0.01, blocking_timeout=PATIENCE)
        got = sync_lock.acquire()  # blocks this loop's thread: the task cannot take its turn
        sync_lock.release()
        return got, await asyncio.wait_for(waiter, PATIENCE)

    runner, outcome = in_thread(lambda: asyncio.run(main()))
    assert finished(runner, outcome) == (True, True)


# -- 5. a flight never waits on nobody ----------------------------------------------------------


def test_a_waiter_whose_loop_closed_is_passed_over_when_the_leader_fails():
    cache = fresh(SINGLE_FLIGHT=True)
    release, leader, leader_outcome = failing_leader_of(cache, "k")
    # A task waits in the flight, and then its loop is stopped and closed under it.
    loop = asyncio.new_event_loop()
    waiting = threading.Event()

    def run_loop():
        async def wait_in_flight():
            waiting.set()
            await cache.aget_or_set("k", lambda: "never")

        task = loop.create_task(wait_in_flight())
        loop.run_forever()
        assert not task.done(), "the task was left waiting when its loop closed"
        loop.close()

    loop_thread = threading.Thread(target=run_loop, daemon=True)
    loop_thread.start()
    waiting.wait(PATIENCE)
    wait_until(lambda: flight_waiters(cache, "k") == 1, "the task to wait")
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join(PATIENCE)
    assert loop.is_closed()
    # A thread waits behind it.
    follower, follower_outcome = in_thread(lambda: cache.get_or_set("k", lambda: "from-thread"))
    wait_until(lambda: flight_waiters(cache, "k") == 2, "the thread to wait")
    release.set()
    with pytest.raises(RuntimeError):
        finished(leader, leader_outcome)
    assert finished(follower, follower_outcome) == "from-thread"


def test_a_waiter_takes_over_a_flight_whose_leader_no_longer_exists():
    """A flight whose lead is gone without handing on (here: its loop closed after it was told to
    lead): the next waiter notices within a slice of waiting and computes."""
    cache = fresh(SINGLE_FLIGHT=True)
    name = (cache._location, cache.make_key("k"))
    loop = asyncio.new_event_loop()

    async def make_waiter():
        return single_flight._TaskWaiter(single_flight._who())

    ghost = loop.run_until_complete(make_waiter())
    loop.close()
    with single_flight._mutex:
        single_flight._flights[name] = flight = single_flight._Flight(name, ghost)
    ghost.flight, ghost.leads = flight, True
    thread, outcome = in_thread(lambda: cache.get_or_set("k", lambda: "computed"))
    assert finished(thread, outcome) == "computed"
    assert single_flight._flights == {}


def test_an_interrupted_leader_hands_the_flight_on():
    cache = fresh(SINGLE_FLIGHT=True)
    go = threading.Event()

    def interrupted():
        go.wait(PATIENCE)
        raise KeyboardInterrupt

    leader, leader_outcome = in_thread(lambda: cache.get_or_set("k", interrupted))
    wait_until(lambda: single_flight._flights, "the leader's flight")
    follower, follower_outcome = in_thread(lambda: cache.get_or_set("k", lambda: "next"))
    wait_until(lambda: flight_waiters(cache, "k") == 1, "the follower to wait")
    go.set()
    with pytest.raises(KeyboardInterrupt):
        finished(leader, leader_outcome)
    assert finished(follower, follower_outcome) == "next"


# -- 6. held locks are never evicted ------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{}, {"EVICTION": "adaptive"}, {"MAX_BYTES": 20_000}, {"MAX_BYTES": 20_000, "EVICTION": "adaptive"}],
    ids=["max-entries-lru", "max-entries-adaptive", "max-bytes-lru", "max-bytes-adaptive"],
)
def test_a_held_lock_survives_a_full_cache(options):
    cache = fresh(**options)  # MAX_ENTRIES is Django's default, 300
    held = cache.lock("report", timeout=60)
    assert held.acquire()
    for i in range(1000):
        cache.set(f"filler:{i}", "x" * 50)
    assert cache.stats()["evictions"] > 0
    assert cache.lock("report", timeout=60).acquire(blocking=False) is False, "a second holder got a held lock"
    assert held.locked()
    assert held.owned()
    held.release()
    assert cache.lock("report", timeout=60).acquire(blocking=False) is True


def test_a_held_lock_still_expires_and_is_cleared():
    cache = fresh()
    with time_machine.travel(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), tick=False) as traveller:
        assert cache.lock("a", timeout=5).acquire()
        traveller.shift(5)
        assert cache.lock("a", timeout=5).acquire(blocking=False)
    assert cache.lock("b", timeout=None).acquire()
    cache.clear()
    assert cache.lock("b", timeout=None).acquire(blocking=False)


# -- 7. subclass hooks and instance settings ----------------------------------------------------


class CappedCache(RustCache):
    """The usual hook: no entry lives longer than 10 seconds."""

    def get_backend_timeout(self, timeout=DEFAULT_TIMEOUT):
        deadline = super().get_backend_timeout(timeout)
        cap = time.time() + 10
        return cap if deadline is None else min(deadline, cap)


def test_a_get_backend_timeout_override_decides_every_deadline():
    cache = CappedCache(f"hardening-{uuid.uuid4().hex}", {"TIMEOUT": 3600})
    with time_machine.travel(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), tick=False) as traveller:
        cache.set("set", 1)
        cache.set("forever", 1, None)
        cache.set_many({"many": 1}, 600)
        cache.add("added", 1, 600)
        cache.set("touched", 1, 2)
        cache.touch("touched", 600)
        cache.set("short", 1, 5)
        assert cache.ttl("set") == 10
        traveller.shift(6)
        assert cache.get("short") is None, "a shorter timeout still wins"
        traveller.shift(4)
        for key in ("set", "forever", "many", "added", "touched"):
            assert cache.get(key) is None, f"{key} outlived the capped timeout"


PROTOCOLS_SEEN = []


class ProtocolProbe:
    """Records the protocol it is pickled with."""

    def __reduce_ex__(self, protocol):
        PROTOCOLS_SEEN.append(protocol)
        return (ProtocolProbe, ())


def test_pickle_protocol_assigned_on_the_instance_takes_effect():
    PROTOCOLS_SEEN.clear()
    cache = fresh()
    cache.set("k", ProtocolProbe())
    cache.pickle_protocol = 2
    cache.set("k", ProtocolProbe())
    assert PROTOCOLS_SEEN == [pickle.HIGHEST_PROTOCOL, 2]


# -- 8. odd clocks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        datetime.datetime(1965, 1, 1, tzinfo=datetime.UTC),
        datetime.datetime(1969, 12, 31, 23, 59, 30, tzinfo=datetime.UTC),
        datetime.datetime(2600, 1, 1, tzinfo=datetime.UTC),
        datetime.datetime(9999, 1, 1, tzinfo=datetime.UTC),
    ],
    ids=["1965", "just-before-1970", "2600", "9999"],
)
def test_writes_with_a_timeout_work_whatever_the_epoch(when):
    cache = fresh()
    with time_machine.travel(when, tick=False) as traveller:
        cache.set("k", "v", 60)
        assert cache.get("k") == "v"
        assert cache.add("added", "v", 60) is True
        assert cache.get("added") == "v"
        assert cache.ttl("k") == 60
        traveller.shift(59)
        assert cache.get("k") == "v"
        traveller.shift(1)
        assert cache.get("k") is None
        assert cache.add("added", "again", 60) is True


def test_a_nan_clock_stores_entries_that_never_expire_as_locmem_does():
    cache = fresh()
    with mock.patch("time.time", return_value=math.nan):
        cache.set("k", "v", 60)
        assert cache.add("added", "v", 60) is True
        assert cache.get("k") == "v"
        assert cache.get("added") == "v"
    assert cache.get("k") == "v", "nan + 60 is a deadline no clock reaches"
    assert cache.ttl("k") is None


# -- 10. pexpire with DEFAULT_TIMEOUT -----------------------------------------------------------


@pytest.mark.parametrize("method", ["expire", "pexpire"])
def test_expire_and_pexpire_with_default_timeout_apply_the_alias_timeout(method):
    cache = RustCache(f"hardening-{uuid.uuid4().hex}", {"TIMEOUT": 120})
    cache.set("k", 1, None)
    with time_machine.travel(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), tick=False):
        assert getattr(cache, method)("k", DEFAULT_TIMEOUT) is True
        assert cache.ttl("k") == 120
    assert asyncio.run(getattr(cache, f"a{method}")("k", DEFAULT_TIMEOUT)) is True


# -- 11, 12. configuration errors are reported ----------------------------------------------------


@pytest.mark.parametrize("value", [2**64, 2**100])
def test_max_bytes_past_a_machine_word_is_improperly_configured(value):
    with pytest.raises(ImproperlyConfigured, match="MAX_BYTES"):
        fresh(MAX_BYTES=value)
    caches_setting = {"default": {"BACKEND": "django_rustcache.RustCache", "OPTIONS": {"MAX_BYTES": value}}}
    with override_settings(CACHES=caches_setting):
        ids = [m.id for m in check_caches()]
    assert "django_rustcache.E001" in ids


def test_aliases_sharing_a_location_with_different_eviction_are_a_check_error():
    location = f"hardening-{uuid.uuid4().hex}"
    caches_setting = {
        "default": {"BACKEND": "django_rustcache.RustCache", "LOCATION": location},
        "hot": {"BACKEND": "django_rustcache.RustCache", "LOCATION": location, "OPTIONS": {"EVICTION": "adaptive"}},
    }
    with override_settings(CACHES=caches_setting):
        errors = [m for m in check_caches() if m.id == "django_rustcache.E002"]
        assert len(errors) == 1
        assert isinstance(errors[0], checks.Error)
        assert "'default'" in errors[0].msg
        assert "'hot'" in errors[0].msg
        # Django's own checks build every alias (override_settings gave us fresh ones): that must not
        # raise; the alias that conflicts fails at its first operation.
        caches["default"].set("k", 1)
        reported = checks.run_checks(tags=[checks.Tags.caches])
        # (Our E002 is among them when an earlier test registered the app's checks.)
        assert {m.id for m in reported if m.level >= checks.ERROR} <= {"django_rustcache.E002"}
        with pytest.raises(ImproperlyConfigured, match="EVICTION"):
            caches["hot"].get("k")


# -- found in review ------------------------------------------------------------------------------


def test_a_sync_caller_leads_in_place_of_a_task_of_its_loop_told_to_lead_but_not_yet_running():
    """The leader fails and hands the flight to a task; before that task resumes, sync code on its
    loop's thread calls get_or_set: waiting would keep the task from ever running, so the sync caller
    computes, and the task then reads its value."""
    cache = fresh(SINGLE_FLIGHT=True)
    release, leader, leader_outcome = failing_leader_of(cache, "k")

    async def main():
        task = asyncio.create_task(cache.aget_or_set("k", lambda: "from-task"))
        await asyncio.sleep(0)
        release.set()
        wait_until(lambda: not leader.is_alive(), "the leader to hand on")  # the task leads now
        flight = next(iter(single_flight._flights.values()))
        assert getattr(flight.lead, "task", None) is task
        sync_value = cache.get_or_set("k", lambda: "from-sync")
        return sync_value, await task

    runner, outcome = in_thread(lambda: asyncio.run(main()))
    assert finished(runner, outcome) == ("from-sync", "from-sync")
    with pytest.raises(RuntimeError):
        finished(leader, leader_outcome)


@pytest.mark.parametrize("eviction", ["lru", "adaptive"])
def test_a_compare_and_swap_on_a_held_lock_keeps_the_store_sound(eviction):
    cache = fresh(EVICTION=eviction, MAX_ENTRIES=50)
    assert cache.lock("L", timeout=60).acquire()
    assert cache.incr("L", "-suffix").endswith("-suffix")  # str + str: the compare-and-swap path
    cache._native.check_invariants()
    for i in range(200):
        cache.set(f"filler:{i}", i)
    assert cache.has_key("L"), "still pinned"
    assert cache.delete("L")
    cache._native.check_invariants()


def test_an_instance_with_a_timeout_hook_is_collected():
    import gc
    import weakref

    cache = CappedCache(f"hardening-{uuid.uuid4().hex}", {})
    cache.set("k", 1)
    ref = weakref.ref(cache)
    del cache
    gc.collect()
    assert ref() is None, "the handle kept its instance alive"


def test_a_timeout_hook_never_shortens_a_lock():
    cache = CappedCache(f"hardening-{uuid.uuid4().hex}", {})
    with time_machine.travel(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), tick=False) as traveller:
        held = cache.lock("job", timeout=None)
        assert held.acquire()
        timed = cache.lock("timed", timeout=60)
        assert timed.acquire()
        assert timed.extend(60)
        traveller.shift(11)
        assert cache.lock("job").acquire(blocking=False) is False
        assert cache.lock("timed").acquire(blocking=False) is False
        assert cache.ttl("timed") == 109


def test_a_patched_pickle_protocol_is_restored_with_the_handle():
    PROTOCOLS_SEEN.clear()
    cache = fresh()
    with mock.patch.object(cache, "pickle_protocol", 2):
        cache.set("k", ProtocolProbe())
    cache.set("k", ProtocolProbe())
    assert PROTOCOLS_SEEN == [2, pickle.HIGHEST_PROTOCOL]
