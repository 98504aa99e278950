"""``cache.lock()`` and ``cache.alock()``: redis-py's ``Lock`` API on a RustCache entry.

The lock *is* a cache entry, as with django-redis: ``add`` of a random token under the lock's key, with
the lock's ``timeout`` as the entry's, so a holder that dies or forgets cannot block the others past
``timeout``; ``release`` removes the entry only if it still holds this holder's token
(``delete_if_equal``, one atomic step in the store). The entry is *pinned* (``lock_add``): it stays out
of the eviction order, so however full the cache, a held lock is never culled or evicted for room (it
still expires at its ``timeout``, and ``clear()`` or ``delete()`` remove it as any entry).

Waiting is fair to the threads (and asyncio tasks) of the process: each lock name keeps a FIFO of its
waiters, each waiting on a primitive of its own (a ``threading.Event``, whose wait releases the GIL, or an
``asyncio.Event`` woken through its loop). A newcomer that finds waiters queues behind them instead of
barging in; only the head of the queue tries the store. ``release`` wakes the head at once; an entry that
expires (or is deleted by ``clear()``) is noticed by the head, which polls every ``sleep`` seconds.

The head is the first waiter that can take its turn (``waiters.choose``): a task whose loop closed is
dropped, and a task whose loop's thread is blocked in a sync ``acquire`` of the same lock is passed over
until that call returns, so a sync caller never waits on a task its own wait keeps from running. Every
waiter looks again at least every ``waiters.POLL`` seconds. A forked child starts with no queues.
"""

import asyncio
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

from .waiters import TaskWaiter, ThreadWaiter, blocking_wait, choose

# freezegun replaces ``time.monotonic`` (and every module attribute bound to it) while it freezes time;
# a frozen clock would make ``blocking_timeout`` wait forever. A dict entry is out of its reach.
_CLOCK = {"monotonic": time.monotonic}


def _now() -> float:
    return _CLOCK["monotonic"]()


class LockError(Exception):
    """A lock could not be acquired, released or extended (redis-py's ``LockError``)."""


class LockNotOwnedError(LockError):
    """The lock is no longer held by this holder: it expired, or another holder has it now."""


# (LOCATION, full key) -> waiters, in the order they came. A name is present only while it has waiters.
_mutex = threading.Lock()
_queues: dict[tuple[str, str], deque] = {}


def _reset_after_fork() -> None:
    """A forked child has only the thread that forked: the parent's waiters are not there to take the
    lock, and the mutex may have been held by a thread that no longer exists."""
    global _mutex, _queues
    _mutex = threading.Lock()
    _queues = {}


os.register_at_fork(after_in_child=_reset_after_fork)


def _head_of(name: tuple[str, str]) -> Any:
    """With the mutex held: the waiter whose turn it is (``waiters.choose``: a task that cannot run now is
    passed over), after dropping the dead (a task whose loop closed will never leave by itself)."""
    queue = _queues.get(name)
    if queue is None:
        return None
    head = choose(list(queue))
    for waiter in list(queue):
        if not waiter.alive():
            queue.remove(waiter)
    if not queue:
        del _queues[name]
    return head


def _contended(name: tuple[str, str]) -> bool:
    with _mutex:
        return _head_of(name) is not None


def _enqueue(name: tuple[str, str], waiter: Any) -> None:
    with _mutex:
        _queues.setdefault(name, deque()).append(waiter)


def _is_head(name: tuple[str, str], waiter: Any) -> bool:
    with _mutex:
        return _head_of(name) is waiter


def _leave(name: tuple[str, str], waiter: Any) -> None:
    """Take `waiter` out of the queue and wake whoever's turn it is now."""
    with _mutex:
        queue = _queues.get(name)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del _queues[name]
        head = _head_of(name)
    if head is not None:
        head.wake()


def _wake_head(name: tuple[str, str]) -> None:
    with _mutex:
        head = _head_of(name)
    if head is not None:
        head.wake()


class _TokenLocal(threading.local):
    token: str | None = None


class _TokenShared:
    token: str | None = None


class NativeLockStore:
    """Where a lock lives (the ``LockStore`` shape every backend's lock gives ``Lock``): an entry of a
    native store (``RustCache``, ``SharedCache``), one call each, none of which waits. A backend whose
    store is across a network (``RedisNearCache``) gives its own, with ``remote = True`` so that
    ``AsyncLock`` runs its calls in a worker thread."""

    remote = False

    def __init__(self, native: Any, key: Any, version: int | None) -> None:
        self._native, self._key, self._version = native, key, version

    def add(self, token: str, timeout: float | None) -> bool:
        """Take the entry for `token` if it is free, expiring after `timeout` seconds (None: never)."""
        return self._native.lock_add(self._key, token, timeout, self._version)

    def exists(self) -> bool:
        return self._native.has_key(self._key, self._version)

    def holds(self, token: str) -> bool:
        """Whether the entry holds `token`."""
        return self._native.get(self._key, None, self._version) == token

    def delete_if_equal(self, token: str) -> bool:
        """Remove the entry if it holds `token`, atomically; whether it did."""
        return self._native.delete_if_equal(self._key, token, self._version)

    def time_left(self) -> float:
        """Seconds until the entry expires: ``-1.0`` never, ``-2.0`` no entry (Redis's conventions)."""
        return self._native.ttl(self._key, self._version)

    def expire(self, seconds: float) -> bool:
        """Make the entry expire in `seconds`."""
        return self._native.lock_touch(self._key, seconds, self._version)

    def expire_if_holds(self, token: str, seconds: float, add_to_left: bool) -> bool:
        """If the entry holds `token`, make it expire in `seconds` (plus what it had left if
        `add_to_left`); whether it did. Here a check, then the new expiry: in between, the entry could
        expire and be taken by another holder, whose lock this would then extend (a store across a
        network does it in one atomic step)."""
        if not self.holds(token):
            return False
        left = max(self.time_left(), 0.0) if add_to_left else 0.0
        return self.expire(left + seconds)


class _LockBase:
    def __init__(
        self,
        cache: Any,
        name: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"A lock's timeout must be a positive number of seconds or None, not {timeout!r}.")
        if timeout is not None and sleep > timeout:
            raise LockError("'sleep' must be less than 'timeout'")
        self.cache = cache
        self.name = name
        self.version = version
        self.timeout = timeout
        self.sleep = sleep
        self.blocking = blocking
        self.blocking_timeout = blocking_timeout
        self.thread_local = thread_local
        self.local = _TokenLocal() if thread_local else _TokenShared()
        # Where the lock lives (the handle and the key as it wants them, taken together, so a later
        # rebuild of the cache's handle cannot pair this key with a handle that makes keys differently),
        # and the name of the wait queue (one per entry).
        self._store = cache._lock_store(name, version)
        self._queue = (cache._location, cache.make_key(name, version=version))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} of {self.cache._location!r}>"

    # One store call each: these never wait on the queue, so they serve the sync and async locks alike
    # (AsyncLock runs them in a worker thread when the store is remote; the token is read and written
    # on the caller's thread, where a thread-local token lives).

    def _try(self, token: str) -> bool:
        return self._store.add(token, self.timeout)

    def _locked(self) -> bool:
        return self._store.exists()

    def _owned_by(self, token: str | None) -> bool:
        return token is not None and self._store.holds(token)

    def _owned(self) -> bool:
        return self._owned_by(self.local.token)

    def _give_up(self) -> str:
        """The holder's token, forgotten: a release is under way."""
        token = self.local.token
        if token is None:
            raise LockError("Cannot release an unlocked lock")
        self.local.token = None
        return token

    def _released(self, deleted: bool) -> None:
        if not deleted:
            raise LockNotOwnedError("Cannot release a lock that's no longer owned")

    def _release(self) -> None:
        token = self._give_up()
        try:
            deleted = self._store.delete_if_equal(token)
        finally:
            _wake_head(self._queue)
        self._released(deleted)

    def _held_token(self, what: str) -> str:
        token = self.local.token
        if token is None:
            raise LockError(f"Cannot {what} an unlocked lock")
        if self.timeout is None:
            raise LockError(f"Cannot {what} a lock with no timeout")
        return token

    def _extend_by(self, token: str, additional_time: float, replace_ttl: bool) -> bool:
        if not self._store.expire_if_holds(token, additional_time, not replace_ttl):
            raise LockNotOwnedError("Cannot extend a lock that's no longer owned")
        return True

    def _extend(self, additional_time: float, replace_ttl: bool) -> bool:
        return self._extend_by(self._held_token("extend"), additional_time, replace_ttl)

    def _reacquire_by(self, token: str) -> bool:
        if not self._store.expire_if_holds(token, self.timeout, False):
            raise LockNotOwnedError("Cannot reacquire a lock that's no longer owned")
        return True

    def _reacquire(self) -> bool:
        return self._reacquire_by(self._held_token("reacquire"))

    def _settings(self, token: Any, blocking: bool | None, blocking_timeout: float | None, sleep: float | None):
        """The settings of one `acquire`."""
        token = uuid.uuid4().hex if token is None else str(token)
        blocking = self.blocking if blocking is None else blocking
        blocking_timeout = self.blocking_timeout if blocking_timeout is None else blocking_timeout
        sleep = self.sleep if sleep is None else sleep
        deadline = None if blocking_timeout is None else _now() + blocking_timeout
        return token, blocking, deadline, sleep

    def _wait_for(self, head: bool, deadline: float | None, sleep: float) -> float | None:
        """How long to wait this round (None: until woken); raises TimeoutError when the time is up."""
        wait = sleep if head else None
        if deadline is not None:
            remaining = deadline - _now()
            if remaining <= 0:
                raise TimeoutError
            wait = remaining if wait is None else min(wait, remaining)
        return wait


class Lock(_LockBase):
    """redis-py's ``Lock`` on a RustCache entry: ``acquire()``, ``release()``, ``with cache.lock(...)``,
    ``locked()``, ``owned()``, ``extend()``, ``reacquire()``."""

    def acquire(
        self,
        sleep: float | None = None,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: Any = None,
    ) -> bool:
        """Take the lock; whether it was taken. Non-blocking, it tries once (and fails if threads of
        this process are already queued); blocking, it waits in line, up to `blocking_timeout` seconds."""
        token, blocking, deadline, sleep = self._settings(token, blocking, blocking_timeout, sleep)
        # With waiters queued, a newcomer queues behind them rather than barging in.
        if not _contended(self._queue) and self._try(token):
            self.local.token = token
            return True
        if not blocking:
            return False
        waiter = ThreadWaiter()
        # This thread is blocked from here on: a task of a loop running on it, queued here too, cannot
        # take its turn until this call returns, so it is passed over meanwhile.
        with blocking_wait():
            _enqueue(self._queue, waiter)
            try:
                while True:
                    # Clear before looking: a wake that comes after the look is kept for the wait below.
                    waiter.event.clear()
                    head = _is_head(self._queue, waiter)
                    if head and self._try(token):
                        self.local.token = token
                        return True
                    try:
                        wait = self._wait_for(head, deadline, sleep)
                    except TimeoutError:
                        return False
                    waiter.wait(wait)
            finally:
                _leave(self._queue, waiter)

    def release(self) -> None:
        """Give the lock up; raises `LockNotOwnedError` if it expired and was taken meanwhile."""
        self._release()

    def locked(self) -> bool:
        """Whether anyone holds the lock."""
        return self._locked()

    def owned(self) -> bool:
        """Whether this holder (this thread, with ``thread_local``) holds the lock."""
        return self._owned()

    def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        """Add `additional_time` seconds to the lock's time left (or set it, with `replace_ttl`)."""
        return self._extend(additional_time, replace_ttl)

    def reacquire(self) -> bool:
        """Reset the lock's time left to its `timeout`."""
        return self._reacquire()

    def __enter__(self) -> "Lock":
        if self.acquire():
            return self
        raise LockError("Unable to acquire lock within the time specified")

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


class AsyncLock(_LockBase):
    """The same lock for asyncio code: its methods are coroutines and waiting never blocks the loop.
    ``async with cache.alock("k"):``, or ``lock = cache.alock("k"); await lock.acquire()``."""

    async def acquire(
        self,
        sleep: float | None = None,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: Any = None,
    ) -> bool:
        """As `Lock.acquire`, waiting without blocking the event loop."""
        token, blocking, deadline, sleep = self._settings(token, blocking, blocking_timeout, sleep)
        if not _contended(self._queue) and await self._call(self._try, token):
            self.local.token = token
            return True
        if not blocking:
            return False
        waiter = TaskWaiter()
        _enqueue(self._queue, waiter)
        try:
            while True:
                waiter.event.clear()
                head = _is_head(self._queue, waiter)
                if head and await self._call(self._try, token):
                    self.local.token = token
                    return True
                try:
                    wait = self._wait_for(head, deadline, sleep)
                except TimeoutError:
                    return False
                await waiter.wait(wait)
        finally:
            _leave(self._queue, waiter)

    async def _call(self, f: Any, *args: Any) -> Any:
        """A store call: inline for a store in memory, in a worker thread for one across a network."""
        if self._store.remote:
            return await asyncio.to_thread(f, *args)
        return f(*args)

    async def release(self) -> None:
        token = self._give_up()
        try:
            deleted = await self._call(self._store.delete_if_equal, token)
        finally:
            _wake_head(self._queue)
        self._released(deleted)

    async def locked(self) -> bool:
        return await self._call(self._locked)

    async def owned(self) -> bool:
        return await self._call(self._owned_by, self.local.token)

    async def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        return await self._call(self._extend_by, self._held_token("extend"), additional_time, replace_ttl)

    async def reacquire(self) -> bool:
        return await self._call(self._reacquire_by, self._held_token("reacquire"))

    async def __aenter__(self) -> "AsyncLock":
        if await self.acquire():
            return self
        raise LockError("Unable to acquire lock within the time specified")

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.release()
