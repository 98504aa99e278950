"""Hypothesis drives the same random operations into a RustCache and a LocMemCache and checks that
every answer agrees.

Two machines, because two of RustCache's answers differ from LocMemCache's by design:

- ``delete()`` of a key whose entry has expired but not yet been reclaimed returns False
  (LocMemCache returns True: it still holds the dead entry). Modelled below: where LocMemCache held
  a dead entry, either answer is accepted.
- When culling and expiry meet, RustCache reclaims expired entries before it culls live ones, so
  LocMemCache may lose live keys RustCache keeps. So the expiry machine never culls (big
  MAX_ENTRIES), and the culling machine never expires anything, and there the answers, including
  which keys survive each cull, must be identical.

Time moves by whole and fractional seconds, so deadlines often coincide exactly with the clock
(expired in both: ``exp <= time.time()``).
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import time_machine
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from django_rustcache import RustCache

T0 = datetime(2030, 1, 1, tzinfo=UTC)

VALUES = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([2**63 - 1, -(2**63), 2**64, 1.5, -0.25, Decimal("1.5"), True, None, "", b"x"]),
    st.text(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
)
DELTAS = st.one_of(st.integers(-3, 3), st.sampled_from([2**63, -(2**63), 2**64, 0.5, True]))
VERSIONS = st.sampled_from([None, 1, 2])


def outcome(fn, *args, **kwargs):
    """A comparable record of a call: its result with exact types, or the exception raised (type,
    and the message for ValueError, whose text LocMemCache defines)."""
    try:
        return ("ok", typed(fn(*args, **kwargs)))
    except (ValueError, TypeError) as exc:
        return ("raised", type(exc), str(exc) if type(exc) is ValueError else None)


def typed(value):
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value), value)


def comparison_machine(keys, timeouts):
    """A state machine comparing the two caches with rules drawing from ``keys`` and ``timeouts``."""

    class CacheComparison(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.traveller = time_machine.travel(T0, tick=False)
            self.clock = self.traveller.start()
            self.rust = self.locmem = None

        def make_caches(self, **params):
            location = f"test-stateful-{uuid.uuid4().hex}"
            self.rust = RustCache(location, params)
            self.locmem = LocMemCache(location, params)

        def teardown(self):
            if self.rust is not None:
                self.rust.clear()
            self.traveller.stop()

        def both(self, method, *args, **kwargs):
            got = outcome(getattr(self.rust, method), *args, **kwargs)
            expected = outcome(getattr(self.locmem, method), *args, **kwargs)
            assert got == expected, f"{method}{args} {kwargs}: RustCache {got!r}, LocMemCache {expected!r}"
            return got

        def locmem_holds_dead_entry(self, key, version):
            made = self.locmem.make_key(key, version=version)
            return made in self.locmem._cache and self.locmem._has_expired(made)

        @rule(key=keys, value=VALUES, timeout=timeouts, version=VERSIONS)
        def set(self, key, value, timeout, version):
            self.both("set", key, value, timeout=timeout, version=version)

        @rule(key=keys, value=VALUES, timeout=timeouts, version=VERSIONS)
        def add(self, key, value, timeout, version):
            self.both("add", key, value, timeout=timeout, version=version)

        @rule(key=keys, value=VALUES, timeout=timeouts, version=VERSIONS)
        def get_or_set(self, key, value, timeout, version):
            self.both("get_or_set", key, value, timeout=timeout, version=version)

        @rule(key=keys, version=VERSIONS)
        def get(self, key, version):
            self.both("get", key, version=version)

        @rule(keys=st.lists(keys, max_size=4), version=VERSIONS)
        def get_many(self, keys, version):
            self.both("get_many", keys, version=version)

        @rule(data=st.dictionaries(keys, VALUES, max_size=4), timeout=timeouts, version=VERSIONS)
        def set_many(self, data, timeout, version):
            self.both("set_many", data, timeout=timeout, version=version)

        @rule(key=keys, version=VERSIONS)
        def delete(self, key, version):
            dead = self.locmem_holds_dead_entry(key, version)
            got = self.rust.delete(key, version=version)
            expected = self.locmem.delete(key, version=version)
            if dead:
                assert expected is True
                assert got in (True, False)
            else:
                assert got is expected, f"delete({key!r}, version={version}): {got} != {expected}"

        @rule(keys=st.lists(keys, max_size=4), version=VERSIONS)
        def delete_many(self, keys, version):
            self.both("delete_many", keys, version=version)

        @rule(key=keys, version=VERSIONS)
        def has_key(self, key, version):
            self.both("has_key", key, version=version)

        @rule(key=keys, timeout=timeouts, version=VERSIONS)
        def touch(self, key, timeout, version):
            self.both("touch", key, timeout=timeout, version=version)

        @rule(key=keys, delta=DELTAS, version=VERSIONS)
        def incr(self, key, delta, version):
            self.both("incr", key, delta, version=version)

        @rule(key=keys, delta=DELTAS, version=VERSIONS)
        def decr(self, key, delta, version):
            self.both("decr", key, delta, version=version)

        @rule(key=keys, delta=st.sampled_from([1, -1, 2]), version=VERSIONS)
        def incr_version(self, key, delta, version):
            self.both("incr_version", key, delta, version=version)

        @rule()
        def clear(self):
            self.both("clear")

        @invariant()
        def rust_store_is_consistent(self):
            if self.rust is not None:
                self.rust._native.check_invariants()

    return CacheComparison


# Modest example counts: both machines together stay well under the suite's time budget.
SETTINGS = settings(max_examples=120, stateful_step_count=50, deadline=None)


@SETTINGS
class ExpiryMachine(
    comparison_machine(
        keys=st.sampled_from(["a", "b", "c", "d"]),
        timeouts=st.sampled_from([DEFAULT_TIMEOUT, None, 0, -1, -0.5, 0.1, 0.25, 1, 1.5, 2, 5, 30]),
    )
):
    """Random timeouts (none, zero, negative, short, long) and a moving clock; no culling."""

    @initialize(default_timeout=st.sampled_from([300, 3, None]))
    def start(self, default_timeout):
        self.make_caches(TIMEOUT=default_timeout, OPTIONS={"MAX_ENTRIES": 10_000})

    @rule(seconds=st.sampled_from([0.1, 0.25, 0.5, 1, 2, 3, 30, 300]))
    def advance_time(self, seconds):
        self.clock.shift(seconds)


CULL_KEYS = [f"k{i}" for i in range(14)]


@SETTINGS
class CullingMachine(
    comparison_machine(keys=st.sampled_from(CULL_KEYS), timeouts=st.sampled_from([DEFAULT_TIMEOUT, None, 3600]))
):
    """A small MAX_ENTRIES and every CULL_FREQUENCY, no expiry: which keys survive must match."""

    @initialize(cull_frequency=st.integers(0, 4))
    def start(self, cull_frequency):
        self.make_caches(TIMEOUT=None, OPTIONS={"MAX_ENTRIES": 9, "CULL_FREQUENCY": cull_frequency})

    @invariant()
    def same_keys_survive(self):
        if self.rust is None:
            return
        # Every key LocMemCache holds, RustCache holds, and they hold as many: the same keys.
        for made in self.locmem._cache:
            _, version, key = made.split(":", 2)
            assert self.rust.has_key(key, version=version), made
        assert self.rust.stats()["entries"] == len(self.locmem._cache)


TestExpiry = ExpiryMachine.TestCase
TestCulling = CullingMachine.TestCase
