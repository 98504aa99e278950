"""Hostile and odd input: every call either behaves as `LocMemCache` does or raises a clear Python
exception, and the cache is intact afterwards.

Most tests run the same calls on a RustCache and on a LocMemCache with the same settings and compare
what comes back (value or exception type, and the warnings raised)."""

import faulthandler
import math
import pickle
import subprocess
import sys
import textwrap
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache

from django_rustcache import RustCache

Outcome = tuple[str, Any, list[tuple[type, str]]]


@pytest.fixture
def pair() -> Iterator[tuple[RustCache, LocMemCache]]:
    """A RustCache and a LocMemCache with the same settings, each on a LOCATION of its own."""
    location = f"hostile-{uuid.uuid4().hex}"
    params = {"TIMEOUT": 300, "OPTIONS": {"MAX_ENTRIES": 1000}}
    rust, locmem = RustCache(location, params), LocMemCache(location, params)
    yield rust, locmem
    rust.clear()
    locmem.clear()


@pytest.fixture
def watchdog() -> Iterator[None]:
    """Kill the run with a traceback if the test deadlocks (even holding the GIL), instead of hanging."""
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def outcome(fn: Callable[[], Any]) -> Outcome:
    """What `fn()` did: its result or exception type, and the warnings it raised. A panic from Rust
    (pyo3's PanicException derives from BaseException) is not caught, so it fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result: tuple[str, Any] = ("returned", fn())
        except Exception as exc:
            result = ("raised", type(exc))
    return (*result, [(w.category, str(w.message)) for w in caught])


def same(pair: tuple[RustCache, LocMemCache], fn: Callable[[Any], Any]) -> Outcome:
    """Run `fn(cache)` on both caches; assert the outcomes agree; return RustCache's."""
    rust, locmem = pair
    got, expected = outcome(lambda: fn(rust)), outcome(lambda: fn(locmem))
    assert got == expected, f"RustCache: {got}\nLocMemCache: {expected}"
    return got


def assert_intact(cache: RustCache, entries: dict[str, Any]) -> None:
    cache._native.check_invariants()
    assert cache.get_many(entries) == entries


# Keys.


class StrKey:
    def __str__(self) -> str:
        return "custom-str"


class LyingKey:
    """Equal to everything, hashed to one value: only `str()` may matter for the cache key."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


class UnhashableKey:
    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return "unhashable"


class RaisingStrKey:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class BadStrKey:
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


ODD_KEYS = {
    "empty": "",
    "10k-chars": "k" * 10_000,
    "10k-non-ascii": "é" * 10_000,
    "non-ascii": "ключ-鍵-🔑",
    "lone-surrogate": "a\udcff",
    "surrogate-pair-halves": "\ud83d\udd11",
    "escape-lookalike": "a\\udcff",
    "nul": "a\x00b",
    "space": "a b",
    "del": "a\x7f",
    "int": 42,
    "negative-int": -7,
    "big-int": 10**40,
    "bool": True,
    "none": None,
    "float": 1.5,
    "nan": math.nan,
    "tuple": (1, "a"),
    "bytes": b"\xff\x00",
    "custom-str": StrKey(),
    "lying-eq": LyingKey("liar"),
    "unhashable": UnhashableKey(),
}


@pytest.mark.parametrize("key", ODD_KEYS.values(), ids=ODD_KEYS.keys())
def test_odd_key_behaves_like_locmem(pair, key):
    same(pair, lambda c: c.set(key, "value"))
    same(pair, lambda c: c.get(key))
    same(pair, lambda c: c.has_key(key))
    same(pair, lambda c: c.add(key, "other"))
    same(pair, lambda c: c.touch(key, 100))
    same(pair, lambda c: c.get_many([key, "absent"]))
    same(pair, lambda c: c.set_many({"x": 1}) and None)
    same(pair, lambda c: c.get_or_set(key, "default"))
    same(pair, lambda c: c.delete(key))
    same(pair, lambda c: c.get(key, "gone"))
    same(pair, lambda c: (c.set(key, 1), c.incr(key, 5), c.decr(key), c.get(key)))
    same(pair, lambda c: c.incr_version(key))
    same(pair, lambda c: c.get(key, version=2))
    same(pair, lambda c: c.delete_many([key]))
    pair[0]._native.check_invariants()


@pytest.mark.parametrize("key", [RaisingStrKey(), BadStrKey()], ids=["str-raises", "str-returns-int"])
def test_key_whose_str_fails_raises_as_locmem(pair, key):
    pair[0].set("kept", 1)
    for op in (
        lambda c: c.set(key, 1),
        lambda c: c.get(key),
        lambda c: c.add(key, 1),
        lambda c: c.incr(key),
        lambda c: c.touch(key),
        lambda c: c.delete(key),
        lambda c: c.has_key(key),
        lambda c: c.get_many(["kept", key]),
        lambda c: c.set_many({"other": 1, key: 2}),
        lambda c: c.delete_many([key]),
    ):
        result = same(pair, op)
        assert result[0] == "raised"
    # set_many fails on the bad key; what came before it may or may not be stored, as in LocMemCache.
    assert pair[0].get("kept") == 1
    pair[0]._native.check_invariants()


def test_odd_keys_are_all_distinct(pair):
    """No two different keys (by `str()`) share an entry: the surrogate escape cannot collide with the
    string that spells its bytes, nor an int with anything but its decimal str."""
    keys = [k for k in ODD_KEYS.values() if not isinstance(k, LyingKey | UnhashableKey)]
    keys += ["a\udcff".encode("utf-8", "surrogatepass").decode("latin-1"), "42", "None", "(1, 'a')"]
    for cache in pair:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, key in enumerate(keys):
                cache.set(key, i)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [pair[0].get(k) for k in keys]
        expected = [pair[1].get(k) for k in keys]
    assert got == expected


def test_surrogate_keys_survive_the_key_warning_round_trip(pair):
    """A long key with lone surrogates: the warning names the key as Python spells it."""
    key = "\udcff" * 300
    result = same(pair, lambda c: c.set(key, 1))
    assert result[2], "a warning for a key over 250 characters"
    same(pair, lambda c: c.get(key))


# Values.


class ReduceRaises:
    def __reduce__(self):
        raise RuntimeError("cannot reduce")


def _explode():
    raise RuntimeError("cannot unpickle")


class LoadRaises:
    """Pickles fine; unpickling it raises."""

    def __reduce__(self):
        return (_explode, ())


class LyingEq:
    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 1

    def __reduce__(self):
        return (LyingEq, ())


class NeverEqual:
    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        raise TypeError("no hash")

    def __reduce__(self):
        return (NeverEqual, ())


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


UNPICKLABLE = {
    "lambda": lambda: 1,
    "lock": threading.Lock(),
    "generator": (i for i in range(3)),
    "reduce-raises": ReduceRaises(),
    "too-deep": nested(200_000),
    "nested-unpicklable": {"a": [1, 2, {"b": lambda: 2}]},
}


@pytest.mark.parametrize("value", UNPICKLABLE.values(), ids=UNPICKLABLE.keys())
def test_unpicklable_value_raises_as_locmem_and_stores_nothing(pair, value):
    for cache in pair:
        cache.set("k", "old")
        cache.set("other", "kept")
    assert same(pair, lambda c: c.set("k", value))[0] == "raised"
    assert same(pair, lambda c: c.add("new", value))[0] == "raised"
    assert same(pair, lambda c: c.get_or_set("fresh", lambda: value))[0] == "raised"
    assert same(pair, lambda c: (c.set("n", 1), c.incr("n", value)))[0] == "raised"
    same(pair, lambda c: c.get_many(["k", "new", "bad", "fresh", "other", "n"]))
    # LocMemCache's set_many stores the items before the bad one; RustCache pickles every value
    # before storing any, so it stores nothing.
    assert same(pair, lambda c: c.set_many({"k": "changed", "bad": value}))[0] == "raised"
    assert pair[0].get("k") == "old"
    assert_intact(pair[0], {"other": "kept"})


def test_set_many_error_names_the_key(pair):
    with pytest.raises(TypeError) as info:
        pair[0].set_many({"good": 1, "bad-key": threading.Lock()})
    assert any("bad-key" in note for note in getattr(info.value, "__notes__", []))
    assert pair[0].get("good") is None


def test_value_that_fails_to_unpickle_raises_as_locmem(pair):
    for cache in pair:
        cache.set("other", "kept")
    same(pair, lambda c: c.set("k", LoadRaises()))
    assert same(pair, lambda c: c.get("k"))[0] == "raised"
    assert same(pair, lambda c: c.get_many(["other", "k"]))[0] == "raised"
    assert same(pair, lambda c: c.incr("k"))[0] == "raised"
    assert same(pair, lambda c: c.get_or_set("k", 1))[0] == "raised"
    same(pair, lambda c: c.has_key("k"))
    same(pair, lambda c: c.delete("k"))
    assert_intact(pair[0], {"other": "kept"})


@pytest.mark.parametrize("value", [LyingEq(), NeverEqual()], ids=["eq-always-true", "eq-false-hash-raises"])
def test_values_with_lying_eq_round_trip(pair, value):
    same(pair, lambda c: c.set("k", value))
    got = pair[0].get("k")
    assert type(got) is type(value)
    same(pair, lambda c: type(c.get("k")))
    same(pair, lambda c: c.add("k", value))
    same(pair, lambda c: type(c.get_or_set("k", value)))
    same(pair, lambda c: c.set_many({"a": value, "b": value}))
    pair[0]._native.check_invariants()


def test_deeply_nested_value_round_trips(pair):
    value = nested(300)
    assert same(pair, lambda c: c.set("deep", value))[0] == "returned"
    assert pair[0].get("deep") == value


def _reenter_get(location: str) -> str:
    """Run while `get` unpickles: a reentrant read of the same LOCATION."""
    return "reentered:" + str(RustCache(location, {}).get("plain"))


class ReentrantPickle:
    """Touches the cache while being pickled and while being unpickled."""

    def __init__(self, location: str) -> None:
        self.location = location

    def __reduce__(self):
        RustCache(self.location, {}).set("written-while-pickling", 1)
        return (_reenter_get, (self.location,))


def test_pickling_and_unpickling_may_reenter_the_cache(watchdog):
    location = f"hostile-reentry-{uuid.uuid4().hex}"
    cache = RustCache(location, {})
    cache.set("plain", "p")
    cache.set("k", ReentrantPickle(location))
    assert cache.get("written-while-pickling") == 1
    assert cache.get("k") == "reentered:p"
    assert cache.get_many(["k", "plain"]) == {"k": "reentered:p", "plain": "p"}
    cache.set("n", 10**30)
    assert cache.incr("n") == 10**30 + 1
    cache._native.check_invariants()
    cache.clear()


class AddReenters:
    """`incr` of this value writes the cache from `__add__`: the compare-and-swap must retry, not
    corrupt, and must finish."""

    calls = 0

    def __init__(self, location: str, n: int) -> None:
        self.location, self.n = location, n

    def __add__(self, delta: int) -> "AddReenters":
        AddReenters.calls += 1
        if AddReenters.calls == 1:
            RustCache(self.location, {}).set("k", AddReenters(self.location, 100))
        return AddReenters(self.location, self.n + delta)

    def __reduce__(self):
        return (AddReenters, (self.location, self.n))


def test_incr_whose_add_writes_the_same_key_retries(watchdog):
    location = f"hostile-cas-{uuid.uuid4().hex}"
    cache = RustCache(location, {})
    AddReenters.calls = 0
    cache.set("k", AddReenters(location, 1))
    result = cache.incr("k", 5)
    assert result.n == 105, "the second attempt adds to the value written in between"
    assert cache.get("k").n == 105
    cache.clear()


def test_hundred_megabyte_values():
    cache = RustCache(f"hostile-huge-{uuid.uuid4().hex}", {"TIMEOUT": None})
    huge = b"\xab" * (100 * 1024 * 1024)
    cache.set("huge", huge)
    assert cache.stats()["bytes"] >= len(huge)
    got = cache.get("huge")
    assert got == huge
    del got
    cache.set("huge-pickled", [huge[:50_000_000], huge[:50_000_000]])
    assert len(pickle.dumps(cache.get("huge-pickled"))) > 100_000_000
    cache._native.check_invariants()
    cache.clear()
    assert cache.stats()["bytes"] == 0


def test_value_larger_than_max_bytes_is_refused_and_the_old_value_removed():
    cache = RustCache(f"hostile-budget-{uuid.uuid4().hex}", {"OPTIONS": {"MAX_BYTES": 10_000}})
    cache.set("k", "small")
    cache.set("other", "kept")
    assert cache.set("k", "x" * 20_000) is None
    assert cache.get("k") is None, "the old value is not served as if the set had never happened"
    cache.set("k", "small")
    assert cache.add("new", "x" * 20_000) is False
    assert cache.get("new") is None
    assert cache.set_many({"k": "y" * 20_000, "fits": 1}) == ["k"]
    assert cache.get_many(["k", "fits"]) == {"fits": 1}
    cache.set("s", "a")
    with pytest.raises(ValueError, match="MAX_BYTES"):
        cache.incr("s", "b" * 20_000)
    assert cache.get("s") == "a", "incr raises, so the value it could not write stays"
    assert_intact(cache, {"other": "kept", "fits": 1, "s": "a"})
    assert cache.stats()["bytes"] <= 10_000
    assert cache.stats()["refused"] == 4
    cache.clear()


# Timeouts.

TIMEOUTS = {
    "none": None,
    "zero": 0,
    "negative": -5,
    "negative-float": -0.5,
    "float": 0.75,
    "tiny-float": 1e-12,
    "huge": 10**18,
    "huge-float": 1e300,
    "inf": math.inf,
    "-inf": -math.inf,
    "nan": math.nan,
    "default": DEFAULT_TIMEOUT,
    "bool": True,
    "fraction": Fraction(7, 2),
    "too-big-for-float": 10**400,
    "str": "60",
    "list": [60],
    "decimal": Decimal(60),
    "object": object(),
}


@pytest.mark.parametrize("timeout", TIMEOUTS.values(), ids=TIMEOUTS.keys())
def test_timeout_behaves_like_locmem(pair, timeout):
    for cache in pair:
        cache.set("other", "kept")
        cache.set("existing", "old")
    same(pair, lambda c: (c.set("k", 1, timeout), c.get("k")))
    same(pair, lambda c: (c.add("a", 1, timeout), c.get("a")))
    same(pair, lambda c: c.touch("other", timeout))
    same(pair, lambda c: c.get("other"))
    same(pair, lambda c: c.get_or_set("g", "v", timeout))
    same(pair, lambda c: (c.set_many({"m1": 1, "m2": 2}, timeout), c.get_many(["m1", "m2"])))
    rust = pair[0]
    if same(pair, lambda c: c.set("existing", "new", timeout))[0] == "raised":
        # LocMemCache stores the value before it fails on the timeout; RustCache stores nothing.
        assert rust.get("existing") == "old"
    rust._native.check_invariants()


def test_complex_timeout_is_refused():
    """LocMemCache stores `time.time() + 1j` as a deadline and raises on every later read of the key;
    RustCache refuses the timeout up front and keeps the key usable."""
    cache = RustCache(f"hostile-complex-{uuid.uuid4().hex}", {})
    cache.set("k", "old")
    for op in (
        lambda: cache.set("k", 1, 1j),
        lambda: cache.add("new", 1, 1j),
        lambda: cache.touch("k", 1j),
        lambda: cache.set_many({"k": 2}, 1j),
    ):
        with pytest.raises(TypeError):
            op()
    assert_intact(cache, {"k": "old"})
    assert cache.get("new") is None
    cache.clear()


@pytest.mark.parametrize(
    "timeout",
    ["60", [60], Decimal(60), object(), None, 0, -1, 1.5, 10**18, DEFAULT_TIMEOUT],
)
def test_touch_of_missing_key_with_any_timeout_is_false(pair, timeout):
    same(pair, lambda c: c.touch("missing", timeout))


def test_huge_timeout_never_expires(pair):
    import time_machine

    for cache in pair:
        cache.set("k", 1, 10**18)
    with time_machine.travel(4_000_000_000, tick=False):  # the year 2096
        same(pair, lambda c: c.get("k"))


VERSIONS = {"none": None, "zero": 0, "negative": -1, "big": 10**30, "str": "v2", "float": 1.5, "bytes": b"v"}
VERSIONS |= {"object": object(), "space": "a b", "surrogate": "\udcff"}


@pytest.mark.parametrize("version", VERSIONS.values(), ids=VERSIONS.keys())
def test_odd_versions_behave_like_locmem(pair, version):
    same(pair, lambda c: c.set("k", 1, version=version))
    same(pair, lambda c: c.get("k", version=version))
    same(pair, lambda c: c.incr("k", version=version))
    same(pair, lambda c: c.get_many(["k"], version=version))
    same(pair, lambda c: c.get("k"))


# Hash flooding: the table's hasher is seeded at random, per process (and per LOCATION).

HASH_PROBE = textwrap.dedent(
    """
    import django
    from django.conf import settings

    settings.configure()
    django.setup()
    from django_rustcache import RustCache

    native = RustCache("seed-probe", {})._native
    if not hasattr(native, "_hash_key"):
        print("NO-HOOK")
    else:
        print([native._hash_key(k) for k in (b"", b"a", b"collide-me", b":1:key")])
    """
)


def test_two_processes_hash_keys_differently():
    """The same keys in the same LOCATION hash differently in two processes: the seed is not fixed at
    build time, so keys crafted to collide on one machine (or one run) do not collide on another."""
    runs = [
        subprocess.run([sys.executable, "-c", HASH_PROBE], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    if "NO-HOOK" in runs[0]:
        raise AttributeError("_hash_key")
    assert runs[0] != runs[1], "the same keys hash the same in two processes: the seed is fixed"


def test_hash_is_stable_within_a_table_and_differs_between_locations():
    one = RustCache(f"hash-{uuid.uuid4().hex}", {})._native
    location = f"hash-{uuid.uuid4().hex}"
    first, second = RustCache(location, {})._native, RustCache(location, {})._native
    keys = [b"a", b"b", b"collide-me"]
    assert [first._hash_key(k) for k in keys] == [second._hash_key(k) for k in keys], "one table, one seed"
    assert [one._hash_key(k) for k in keys] != [first._hash_key(k) for k in keys], "a seed per table"
