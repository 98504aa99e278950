"""Something a waiting thread or task blocks on until another wakes it: shared by the lock queue and
single-flight ``get_or_set``. A thread waits with the GIL released; a task waits without blocking its loop,
and may be woken from any thread."""

import asyncio
import contextlib
import threading


class ThreadWaiter:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()

    def wake(self) -> None:
        self.event.set()


class TaskWaiter:
    __slots__ = ("event", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: its task is not waiting any more
            self.loop.call_soon_threadsafe(self.event.set)
