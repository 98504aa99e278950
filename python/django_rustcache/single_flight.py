"""Single-flight ``get_or_set`` (``OPTIONS["SINGLE_FLIGHT"] = True``): when many callers miss the same key
at once, the callable runs once and the others wait for its value.

A *flight* exists per (LOCATION, full key) while a leader computes the value. Callers that miss the key
during the flight join it as waiters, each on a primitive of its own (a ``threading.Event``, whose wait
releases the GIL, or an ``asyncio.Event`` woken through its loop). When the leader is done, every waiter
reads the value from the cache (a copy of its own, as after a plain ``get_or_set``), or, if the value was
not stored (``timeout=0``, too large for ``MAX_BYTES``), takes the leader's object. If the callable
raises, the exception goes to the leader's caller and the first waiter becomes leader and tries again.

A caller never waits on a flight whose leader is, directly or through other flights, waiting on the
caller: the callable of one key may call ``get_or_set`` for the same key (or for a key whose callable
comes back to this one) and computes it directly instead of deadlocking.
"""

import asyncio
import threading
from collections import deque
from typing import Any

from .waiters import TaskWaiter, ThreadWaiter

_MISSING = object()


class _Flight:
    __slots__ = ("done", "leader", "value", "waiters")

    def __init__(self, leader: Any) -> None:
        self.leader = leader
        self.waiters: deque = deque()
        self.done = False
        self.value: Any = None


class _ThreadWaiter(ThreadWaiter):
    """A waiting thread, named by `who` for deadlock detection; `promoted` when it must compute."""

    __slots__ = ("promoted", "who")

    def __init__(self, who: Any) -> None:
        super().__init__()
        self.who = who
        self.promoted = False


class _TaskWaiter(TaskWaiter):
    """A waiting task, named by `who` for deadlock detection; `promoted` when it must compute."""

    __slots__ = ("promoted", "who")

    def __init__(self, who: Any) -> None:
        super().__init__()
        self.who = who
        self.promoted = False


_mutex = threading.Lock()
# (LOCATION, full key) -> the flight computing it.
_flights: dict[tuple[str, str], _Flight] = {}
# caller -> the flight it waits on: the edges along which a deadlock is looked for.
_waiting_on: dict[Any, _Flight] = {}

LEAD, WAIT, SOLO = "lead", "wait", "solo"


def _who() -> tuple[int, Any]:
    """The caller: its thread, and its asyncio task if it runs in one."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), task


def _would_deadlock(flight: _Flight, who: Any) -> bool:
    leader = flight.leader
    seen = set()
    while leader is not None and leader not in seen:
        if leader == who:
            return True
        seen.add(leader)
        waited = _waiting_on.get(leader)
        leader = waited.leader if waited is not None else None
    return False


def _join(name: tuple[str, str], waiter: Any) -> tuple[_Flight, str]:
    with _mutex:
        flight = _flights.get(name)
        if flight is None:
            flight = _flights[name] = _Flight(waiter.who)
            return flight, LEAD
        if _would_deadlock(flight, waiter.who):
            return flight, SOLO
        flight.waiters.append(waiter)
        _waiting_on[waiter.who] = flight
        return flight, WAIT


def _succeed(name: tuple[str, str], flight: _Flight, value: Any) -> None:
    with _mutex:
        flight.done = True
        flight.value = value
        if _flights.get(name) is flight:
            del _flights[name]
        waiters = list(flight.waiters)
        flight.waiters.clear()
        for waiter in waiters:
            _waiting_on.pop(waiter.who, None)
    for waiter in waiters:
        waiter.wake()


def _fail(name: tuple[str, str], flight: _Flight) -> None:
    """The leader gave up: the first waiter leads now, or the flight ends if none is left."""
    with _mutex:
        if flight.waiters:
            heir = flight.waiters.popleft()
            _waiting_on.pop(heir.who, None)
            heir.promoted = True
            flight.leader = heir.who
        else:
            heir = None
            flight.leader = None
            if _flights.get(name) is flight:
                del _flights[name]
    if heir is not None:
        heir.wake()


def _abandon(name: tuple[str, str], flight: _Flight, waiter: Any) -> None:
    """A waiter leaves before its turn (cancelled, interrupted); if it had been made leader, it passes
    the lead on."""
    with _mutex:
        if waiter in flight.waiters:
            flight.waiters.remove(waiter)
            _waiting_on.pop(waiter.who, None)
        promoted = waiter.promoted and not flight.done
    if promoted:
        _fail(name, flight)


def _compute(cache: Any, key: Any, default: Any, timeout: Any, version: Any) -> Any:
    """Django's ``get_or_set`` on a miss, looking once more first: the value may have come meanwhile."""
    value = cache.get(key, _MISSING, version=version)
    if value is _MISSING:
        value = default()
        cache.add(key, value, timeout=timeout, version=version)
        value = cache.get(key, value, version=version)
    return value


def _lead(cache: Any, name: tuple[str, str], flight: _Flight, key: Any, default: Any, timeout: Any, version: Any):
    try:
        value = _compute(cache, key, default, timeout, version)
    except BaseException:
        _fail(name, flight)
        raise
    _succeed(name, flight, value)
    return value


def _follow(cache: Any, flight: _Flight, key: Any, version: Any) -> Any:
    value = cache.get(key, _MISSING, version=version)
    return flight.value if value is _MISSING else value


def get_or_set(cache: Any, key: Any, default: Any, timeout: Any, version: Any) -> Any:
    """`get_or_set` after a miss, for a callable `default`."""
    name = (cache._location, cache.make_key(key, version=version))
    waiter = _ThreadWaiter(_who())
    flight, role = _join(name, waiter)
    if role is SOLO:
        return _compute(cache, key, default, timeout, version)
    if role is WAIT:
        try:
            waiter.event.wait()
        except BaseException:
            _abandon(name, flight, waiter)
            raise
        if not waiter.promoted:
            return _follow(cache, flight, key, version)
    return _lead(cache, name, flight, key, default, timeout, version)


async def aget_or_set(cache: Any, key: Any, default: Any, timeout: Any, version: Any) -> Any:
    """`get_or_set` after a miss, for a callable `default`, waiting without blocking the event loop."""
    name = (cache._location, cache.make_key(key, version=version))
    waiter = _TaskWaiter(_who())
    flight, role = _join(name, waiter)
    if role is SOLO:
        return _compute(cache, key, default, timeout, version)
    if role is WAIT:
        try:
            await waiter.event.wait()
        except BaseException:
            _abandon(name, flight, waiter)
            raise
        if not waiter.promoted:
            return _follow(cache, flight, key, version)
    return _lead(cache, name, flight, key, default, timeout, version)
