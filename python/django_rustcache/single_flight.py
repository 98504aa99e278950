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

A flight is never left without a leader that can finish it: a leader that stops for any reason (its
callable raised, ``KeyboardInterrupt``, its task cancelled) hands the lead on; a waiter that cannot run
(its loop closed, or its loop's thread blocked in a sync ``get_or_set`` of the same key) is passed over;
and a waiter that finds, after a slice of waiting (``waiters.POLL``), that its leader no longer exists
takes the lead itself. A forked child starts with no flights (``os.register_at_fork``).
"""

import asyncio
import os
import threading
from collections import deque
from typing import Any

from .waiters import TaskWaiter, ThreadWaiter, blocking_wait, choose

_MISSING = object()


class _Flight:
    __slots__ = ("done", "lead", "name", "value", "waiters")

    def __init__(self, name: tuple[str, str], lead: Any) -> None:
        self.name = name
        # The waiter of the caller computing the value (None once nobody is).
        self.lead = lead
        self.waiters: deque = deque()
        self.done = False
        self.value: Any = None


class _ThreadWaiter(ThreadWaiter):
    """A waiting thread, named by `who` for deadlock detection; `leads` once it must compute."""

    __slots__ = ("flight", "leads", "who")

    def __init__(self, who: Any) -> None:
        super().__init__()
        self.who = who
        self.leads = False
        self.flight: _Flight | None = None


class _TaskWaiter(TaskWaiter):
    """A waiting task, named by `who` for deadlock detection; `leads` once it must compute."""

    __slots__ = ("flight", "leads", "who")

    def __init__(self, who: Any) -> None:
        super().__init__()
        self.who = who
        self.leads = False
        self.flight: _Flight | None = None


_mutex = threading.Lock()
# (LOCATION, full key) -> the flight computing it.
_flights: dict[tuple[str, str], _Flight] = {}
# caller -> the flight it waits on: the edges along which a deadlock is looked for.
_waiting_on: dict[Any, _Flight] = {}


def _reset_after_fork() -> None:
    """A forked child has only the thread that forked: every flight's leader and waiters are gone, and
    the mutex may have been held by a thread that no longer exists."""
    global _mutex, _flights, _waiting_on
    _mutex = threading.Lock()
    _flights = {}
    _waiting_on = {}


os.register_at_fork(after_in_child=_reset_after_fork)

LEAD, WAIT, SOLO = "lead", "wait", "solo"


def _who() -> tuple[int, Any]:
    """The caller: its thread, and its asyncio task if it runs in one."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), task


def _would_deadlock(flight: _Flight, who: Any) -> bool:
    lead = flight.lead
    seen = set()
    while lead is not None and lead.who not in seen:
        if lead.who == who:
            return True
        seen.add(lead.who)
        waited = _waiting_on.get(lead.who)
        lead = waited.lead if waited is not None else None
    return False


def _stalled_by(lead: Any, waiter: Any) -> bool:
    """Whether `waiter` waiting would keep `lead` from ever running: a sync caller blocks its thread, and
    so every task of the event loop on it, a lead told to compute but not yet resumed included."""
    return isinstance(waiter, ThreadWaiter) and isinstance(lead, TaskWaiter) and lead.thread == waiter.thread


def _lead_instead(flight: _Flight, waiter: Any) -> None:
    """With the mutex held: `waiter` leads `flight` in place of its lead, a task that cannot run until
    `waiter` returns; that task waits again, first in line (it has not started computing: it would be
    running, and this thread would not be free to call us)."""
    lead = flight.lead
    lead.leads = False
    lead.event.clear()  # the same thread as `waiter`'s, which the task's loop runs on: safe to touch
    flight.waiters.appendleft(lead)
    _waiting_on[lead.who] = flight
    _unqueue(flight, waiter)
    flight.lead = waiter
    waiter.flight = flight
    waiter.leads = True


def _join(name: tuple[str, str], waiter: Any) -> str:
    with _mutex:
        flight = _flights.get(name)
        if flight is None:
            waiter.flight = _flights[name] = _Flight(name, waiter)
            waiter.leads = True
            return LEAD
        if _would_deadlock(flight, waiter.who):
            return SOLO
        if _stalled_by(flight.lead, waiter):
            _lead_instead(flight, waiter)
            return LEAD
        waiter.flight = flight
        flight.waiters.append(waiter)
        _waiting_on[waiter.who] = flight
        return WAIT


def _unqueue(flight: _Flight, waiter: Any) -> None:
    if waiter in flight.waiters:
        flight.waiters.remove(waiter)
    if _waiting_on.get(waiter.who) is flight:
        del _waiting_on[waiter.who]


def _next_lead(flight: _Flight) -> Any:
    """With the mutex held: hand the flight to the waiter that should compute next (see
    ``waiters.choose``), dropping dead waiters; or end it if nobody is left. The new lead, if any."""
    heir = choose(list(flight.waiters))
    for waiter in list(flight.waiters):
        if waiter is heir or not waiter.alive():
            _unqueue(flight, waiter)
    flight.lead = heir
    if heir is None:
        if _flights.get(flight.name) is flight:
            del _flights[flight.name]
    else:
        heir.leads = True
    return heir


def _pass_on(heir: Any) -> None:
    """Wake a new lead; one whose wake cannot be delivered (its loop closed) is passed over."""
    while heir is not None and not heir.wake():
        with _mutex:
            flight = heir.flight
            heir = _next_lead(flight) if flight.lead is heir and not flight.done else None


def _give_up(waiter: Any) -> None:
    """`waiter` stops (its callable raised, it was interrupted or cancelled): it leaves the flight, and if
    it led, the next waiter leads (or the flight ends)."""
    with _mutex:
        flight = waiter.flight
        if flight is None or flight.done:
            return
        _unqueue(flight, waiter)
        heir = _next_lead(flight) if flight.lead is waiter else None
    _pass_on(heir)


def _take_over_if_orphaned(waiter: Any) -> bool:
    """After a slice of waiting: whether `waiter` should stop waiting (done, told to lead, or taking the
    lead of a flight whose lead no longer exists)."""
    with _mutex:
        flight = waiter.flight
        if flight.done or waiter.leads:
            return True
        lead = flight.lead
        if lead is not None and lead.alive():
            if not _stalled_by(lead, waiter):
                return False
            _lead_instead(flight, waiter)
            return True
        _unqueue(flight, waiter)
        flight.lead = waiter
        waiter.leads = True
        return True


def _succeed(flight: _Flight, value: Any) -> None:
    with _mutex:
        flight.done = True
        flight.value = value
        flight.lead = None
        if _flights.get(flight.name) is flight:
            del _flights[flight.name]
        waiters = list(flight.waiters)
        for waiter in waiters:
            _unqueue(flight, waiter)
    for waiter in waiters:
        waiter.wake()


def _compute(cache: Any, key: Any, default: Any, timeout: Any, version: Any) -> Any:
    """Django's ``get_or_set`` on a miss, looking once more first: the value may have come meanwhile."""
    value = cache.get(key, _MISSING, version=version)
    if value is _MISSING:
        value = default()
        cache.add(key, value, timeout=timeout, version=version)
        value = cache.get(key, value, version=version)
    return value


def _finish(cache: Any, waiter: Any, key: Any, default: Any, timeout: Any, version: Any) -> Any:
    """After the wait: lead (compute and hand the value to the waiters), or follow (read it)."""
    flight = waiter.flight
    if not waiter.leads:
        value = cache.get(key, _MISSING, version=version)
        return flight.value if value is _MISSING else value
    value = _compute(cache, key, default, timeout, version)
    _succeed(flight, value)
    return value


def get_or_set(cache: Any, key: Any, default: Any, timeout: Any, version: Any) -> Any:
    """`get_or_set` after a miss, for a callable `default`."""
    name = (cache._location, cache.make_key(key, version=version))
    waiter = _ThreadWaiter(_who())
    try:
        if _join(name, waiter) is SOLO:
            return _compute(cache, key, default, timeout, version)
        if not waiter.leads:
            with blocking_wait():
                while not (waiter.wait(None) and (waiter.leads or waiter.flight.done)):
                    if _take_over_if_orphaned(waiter):
                        break
        return _finish(cache, waiter, key, default, timeout, version)
    except BaseException:
        _give_up(waiter)
        raise


async def aget_or_set(cache: Any, key: Any, default: Any, timeout: Any, version: Any) -> Any:
    """`get_or_set` after a miss, for a callable `default`, waiting without blocking the event loop."""
    name = (cache._location, cache.make_key(key, version=version))
    waiter = _TaskWaiter(_who())
    try:
        if _join(name, waiter) is SOLO:
            return _compute(cache, key, default, timeout, version)
        while not waiter.leads:
            if (await waiter.wait(None) and waiter.flight.done) or _take_over_if_orphaned(waiter):
                break
        return _finish(cache, waiter, key, default, timeout, version)
    except BaseException:
        _give_up(waiter)
        raise
