"""cache.lock() and cache.alock(): redis-py's Lock API, expiry, and fairness to the process's threads."""

import asyncio
import datetime
import threading

import pytest
import time_machine

from django_rustcache import RustCache, locks
from django_rustcache.locks import AsyncLock, Lock, LockError, LockNotOwnedError

# A generous bound on waits that should end at once: a test fails (rather than hangs) if one does not.
PATIENCE = 10


def wait_until(predicate, what):
    for _ in range(PATIENCE * 1000):
        if predicate():
            return
        threading.Event().wait(0.001)
    raise AssertionError(f"gave up waiting for {what}")


def queued(lock):
    with locks._mutex:
        return len(locks._queues.get(lock._queue, ()))


def run_in_thread(target):
    outcome = {}

    def body():
        try:
            outcome["result"] = target()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


def test_acquire_and_release(cache):
    lock = cache.lock("job")
    assert isinstance(lock, Lock)
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    assert lock.owned()
    assert cache.has_key("job")  # the lock is an entry, as with django-redis
    lock.release()
    assert not lock.locked()
    assert not lock.owned()
    assert not cache.has_key("job")


def test_context_manager(cache):
    with cache.lock("job", timeout=5) as lock:
        assert lock.owned()
        assert cache.ttl("job") == 5
    assert not lock.locked()


def test_non_blocking_fails_while_held(cache):
    holder = cache.lock("job")
    other = cache.lock("job")
    assert holder.acquire()
    assert other.acquire(blocking=False) is False
    assert cache.lock("job", blocking=False).acquire() is False
    holder.release()
    assert other.acquire(blocking=False) is True
    other.release()


def test_blocking_timeout_gives_up(cache):
    holder = cache.lock("job")
    assert holder.acquire()
    assert cache.lock("job", blocking_timeout=0.05).acquire() is False
    assert cache.lock("job").acquire(blocking_timeout=0.05) is False
    with pytest.raises(LockError, match="Unable to acquire"), cache.lock("job", blocking_timeout=0.05):
        pass
    assert queued(holder) == 0  # those that gave up left the queue
    holder.release()


def test_version_names_a_different_lock(cache):
    with cache.lock("job"), cache.lock("job", version=2, blocking=False):
        assert cache.has_key("job", version=2)


def test_release_errors(cache):
    lock = cache.lock("job")
    with pytest.raises(LockError, match="unlocked"):
        lock.release()
    lock.acquire()
    cache.delete("job")  # as if it had expired
    with pytest.raises(LockNotOwnedError):
        lock.release()


def test_a_lock_expires_after_its_timeout(cache):
    """A holder that never releases blocks the others for `timeout` seconds only."""
    with time_machine.travel(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), tick=False) as traveller:
        crashed = cache.lock("job", timeout=30)
        assert crashed.acquire()
        assert cache.lock("job", blocking=False).acquire() is False
        traveller.shift(31)
        successor = cache.lock("job", blocking=False)
        assert successor.acquire() is True
        with pytest.raises(LockNotOwnedError):
            crashed.release()
        assert successor.owned()
        successor.release()


def test_a_waiter_gets_an_expired_lock(cache):
    """The head of the queue polls every `sleep` and so notices an expiry."""
    with time_machine.travel(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), tick=False) as traveller:
        crashed = cache.lock("job", timeout=30)
        assert crashed.acquire()
        waiter = cache.lock("job", timeout=30, sleep=0.01)
        thread, outcome = run_in_thread(lambda: waiter.acquire(blocking_timeout=PATIENCE))
        wait_until(lambda: queued(waiter) == 1, "the waiter to queue")
        traveller.shift(31)
        thread.join(PATIENCE)
    assert outcome == {"result": True}


def test_extend_and_reacquire(cache):
    with time_machine.travel(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), tick=False) as traveller:
        lock = cache.lock("job", timeout=10)
        with pytest.raises(LockError, match="unlocked"):
            lock.extend(5)
        lock.acquire()
        traveller.shift(4)
        assert lock.extend(5) is True
        assert cache.ttl("job") == 11
        assert lock.extend(3, replace_ttl=True) is True
        assert cache.ttl("job") == 3
        assert lock.reacquire() is True
        assert cache.ttl("job") == 10
        cache.delete("job")
        with pytest.raises(LockNotOwnedError):
            lock.extend(5)
    forever = cache.lock("forever")
    forever.acquire()
    with pytest.raises(LockError, match="no timeout"):
        forever.extend(1)


def test_bad_arguments(cache):
    with pytest.raises(LockError, match="sleep"):
        cache.lock("job", timeout=0.05, sleep=0.1)
    with pytest.raises(ValueError, match="positive"):
        cache.lock("job", timeout=0)


def test_thread_local_tokens(cache):
    """One Lock object shared by threads: each thread holds (and releases) its own turn."""
    shared = cache.lock("job")
    assert shared.acquire()
    _, outcome = run_in_thread(lambda: shared.owned())
    _.join(PATIENCE)
    assert outcome == {"result": False}
    shared.release()

    not_local = cache.lock("job", thread_local=False)
    assert not_local.acquire()
    thread, outcome = run_in_thread(not_local.release)
    thread.join(PATIENCE)
    assert outcome == {"result": None}
    assert not cache.has_key("job")


def test_mutual_exclusion(cache):
    lock = cache.lock("counter", timeout=60)
    inside = []
    overlaps = []

    def work():
        for _ in range(50):
            with lock:
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(True)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE * 6)
    assert overlaps == []
    assert not lock.locked()


def test_waiters_are_served_first_come_first_served(cache):
    holder = cache.lock("job")
    assert holder.acquire()
    order = []

    def contender(n):
        def body():
            with cache.lock("job", sleep=0.01, blocking_timeout=PATIENCE):
                order.append(n)

        return body

    threads = []
    for n in range(6):
        thread, _ = run_in_thread(contender(n))
        threads.append(thread)
        wait_until(lambda n=n: queued(holder) == n + 1, f"contender {n} to queue")
    # A newcomer does not barge in ahead of the queue, even with a non-blocking try.
    assert cache.lock("job").acquire(blocking=False) is False
    holder.release()
    for thread in threads:
        thread.join(PATIENCE)
    assert order == list(range(6))
    assert queued(holder) == 0


def test_instances_of_one_location_share_locks(cache):
    other = RustCache("tests-default", {})
    with cache.lock("job"):
        assert other.lock("job").acquire(blocking=False) is False
    assert other.lock("job").acquire(blocking=False) is True


# -- asyncio -----------------------------------------------------------------------------------------


def test_alock_basics(cache):
    async def scenario():
        lock = cache.alock("job", timeout=5)
        assert isinstance(lock, AsyncLock)
        async with lock:
            assert await lock.owned()
            assert await lock.locked()
            assert await cache.alock("job").acquire(blocking=False) is False
            assert await cache.alock("job", blocking_timeout=0.05).acquire() is False
            assert await lock.extend(5) is True
            assert await lock.reacquire() is True
        assert not await lock.locked()
        with pytest.raises(LockError):
            await lock.release()

    asyncio.run(scenario())


def test_alock_waits_without_blocking_the_loop(cache):
    """Task A holds the lock; task B waits for it; meanwhile the loop keeps running task A, which
    releases. A blocked loop would leave B to time out."""

    async def scenario():
        order = []
        a = cache.alock("job")
        await a.acquire()

        async def b():
            async with cache.alock("job", sleep=0.01, blocking_timeout=PATIENCE):
                order.append("b")

        task = asyncio.create_task(b())
        while queued(a) == 0:
            await asyncio.sleep(0.001)
        order.append("a")
        await a.release()
        await task
        return order

    assert asyncio.run(scenario()) == ["a", "b"]


def test_alock_waits_for_a_thread(cache):
    """A thread holds the lock and releases it when the loop tells it to: the loop must keep running
    while the task waits."""
    holder = cache.lock("job", thread_local=False)
    holder.acquire()
    go = threading.Event()

    def release_when_told():
        go.wait(PATIENCE)
        holder.release()

    thread = threading.Thread(target=release_when_told)
    thread.start()

    async def scenario():
        waiting = asyncio.create_task(cache.alock("job", sleep=0.01, blocking_timeout=PATIENCE).acquire())
        while queued(holder) == 0:
            await asyncio.sleep(0.001)
        go.set()
        return await waiting

    assert asyncio.run(scenario()) is True
    thread.join(PATIENCE)


def test_cancelled_waiter_leaves_the_queue(cache):
    async def scenario():
        holder = cache.alock("job")
        await holder.acquire()
        task = asyncio.create_task(cache.alock("job").acquire())
        while queued(holder) == 0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert queued(holder) == 0
        await holder.release()

    asyncio.run(scenario())
