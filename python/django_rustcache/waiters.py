"""Something a waiting thread or task blocks on until another wakes it: shared by the lock queue and
single-flight ``get_or_set``. A thread waits with the GIL released; a task waits without blocking its loop,
and may be woken from any thread.

Two rules keep every wait of the package bounded by something that exists:

- A waiter is never chosen (to lead a flight, or as the head of a lock queue) if it cannot run: a task
  whose loop is closed, or whose task has ended, is *dead* and is dropped; a task whose loop's thread is
  itself blocked in one of our waits (sync code called from a coroutine, say) cannot run until that wait
  ends, so another waiter is chosen while there is one. ``blocking_wait()`` marks a thread as blocked.
- Waits are in slices of at most ``POLL`` seconds, after each of which the waiter looks again at
  whoever it waits on: a wake that was lost (a loop closed under a woken task) costs a slice, not forever.

All of this is process-local state: a forked child starts with none of it (``os.register_at_fork``).
"""

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator

# The longest a waiter sleeps before it looks again at what it waits for.
POLL = 0.25

# Threads blocked in one of our waits (ident -> depth).
_blocked_mutex = threading.Lock()
_blocked: dict[int, int] = {}


def _reset_after_fork() -> None:
    global _blocked_mutex, _blocked
    _blocked_mutex = threading.Lock()
    _blocked = {}


os.register_at_fork(after_in_child=_reset_after_fork)


@contextlib.contextmanager
def blocking_wait() -> Iterator[None]:
    """Mark the current thread as blocked in one of our waits for the duration: the tasks of an event
    loop running on it cannot run meanwhile."""
    ident = threading.get_ident()
    with _blocked_mutex:
        _blocked[ident] = _blocked.get(ident, 0) + 1
    try:
        yield
    finally:
        with _blocked_mutex:
            depth = _blocked.get(ident, 0) - 1
            if depth > 0:
                _blocked[ident] = depth
            else:
                _blocked.pop(ident, None)


def _is_blocked(ident: int) -> bool:
    with _blocked_mutex:
        return ident in _blocked


class ThreadWaiter:
    __slots__ = ("_thread", "event", "thread")

    def __init__(self) -> None:
        self.event = threading.Event()
        self._thread = threading.current_thread()
        self.thread = threading.get_ident()

    def wake(self) -> bool:
        """Wake the waiter; whether the wake can be delivered (a thread's always can)."""
        self.event.set()
        return True

    def alive(self) -> bool:
        return self._thread.is_alive()

    def runnable(self) -> bool:
        """Whether, alive, it can run when woken: a thread always can."""
        return True

    def wait(self, timeout: float | None) -> bool:
        """Wait until woken or `timeout` seconds (at most `POLL`) pass; whether it was woken."""
        return self.event.wait(POLL if timeout is None else min(timeout, POLL))


class TaskWaiter:
    __slots__ = ("event", "loop", "task", "thread")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.thread = threading.get_ident()
        self.event = asyncio.Event()

    def wake(self) -> bool:
        """Wake the task through its loop; False if the loop is closed (the task will never run)."""
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:
            return False
        return True

    def alive(self) -> bool:
        return not self.loop.is_closed() and (self.task is None or not self.task.done())

    def runnable(self) -> bool:
        """Whether, alive, it can run when woken: not while its loop's thread is blocked in our waits."""
        return not _is_blocked(self.thread)

    async def wait(self, timeout: float | None) -> bool:
        """As `ThreadWaiter.wait`, without blocking the loop."""
        try:
            await asyncio.wait_for(self.event.wait(), POLL if timeout is None else min(timeout, POLL))
        except TimeoutError:
            return False
        return True


def choose(waiters: list) -> object | None:
    """The waiter to go next among `waiters` (in their order): the first that can run, else the first
    alive (it will run once its thread's wait ends); None if none is alive."""
    alive = [w for w in waiters if w.alive()]
    return next((w for w in alive if w.runnable()), alive[0] if alive else None)
