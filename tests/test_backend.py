"""RustCache behaves as LocMemCache: every sync method, every Django setting, LRU culling, key
warnings, sharing between instances, value fidelity, and what survives bad input.

Where the answer is not obvious, a test runs the same operations on a RustCache and on a
LocMemCache with the same LOCATION name (the two backends keep separate registries) and compares.
Expiry is tested with time-machine, which moves the clock RustCache reads by default
(``CLOCK: "python"``).
"""

import enum
import math
import pickle
import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
import time_machine
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, CacheKeyWarning, memcache_key_warnings
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings
from django.utils.safestring import SafeString, mark_safe

from django_rustcache import RustCache

RUST = "django_rustcache.RustCache"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def new_location() -> str:
    return f"test-backend-{uuid.uuid4().hex}"


def make_rust(**params) -> RustCache:
    return RustCache(new_location(), params)


def make_pair(**params) -> tuple[RustCache, LocMemCache]:
    """A RustCache and a LocMemCache with the same params, each with a fresh LOCATION."""
    location = new_location()
    return RustCache(location, params), LocMemCache(location, params)


def outcome(fn, *args, **kwargs):
    """What a call did: ("ok", result) or ("raised", exception type, message)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def live_keys(cache, keys, version=None) -> set:
    return {key for key in keys if cache.has_key(key, version=version)}


def lowercase_key(key, key_prefix, version):
    """A KEY_FUNCTION that folds case and ignores the version."""
    return f"{key_prefix}:{str(key).lower()}"


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


class MyInt(int):
    pass


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("this value refuses to be pickled")


def _explode():
    raise RuntimeError("this value refuses to be unpickled")


class Unloadable:
    """Pickles fine; loading it raises."""

    def __reduce__(self):
        return (_explode, ())


@pytest.fixture
def frozen():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


# --- get / set / add / get_or_set -------------------------------------------------------------


def test_get_missing_key_returns_default(cache):
    assert cache.get("missing") is None
    assert cache.get("missing", "fallback") == "fallback"
    sentinel = object()
    assert cache.get("missing", sentinel) is sentinel


def test_set_then_get_returns_value(cache):
    assert cache.set("k", "v") is None
    assert cache.get("k") == "v"


def test_set_overwrites(cache):
    cache.set("k", "one")
    cache.set("k", "two")
    assert cache.get("k") == "two"


def test_stored_none_is_returned_not_default(cache):
    cache.set("k", None)
    assert cache.get("k", "default") is None
    assert cache.has_key("k")


def test_add_stores_only_when_absent(cache):
    assert cache.add("k", "first") is True
    assert cache.add("k", "second") is False
    assert cache.get("k") == "first"


def test_add_over_expired_key_succeeds(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", "old", timeout=5)
    frozen.shift(5)
    assert [c.add("k", "new") for c in (rust, locmem)] == [True, True]
    assert rust.get("k") == locmem.get("k") == "new"


def test_get_or_set_stores_and_returns_default(cache):
    assert cache.get_or_set("k", "default") == "default"
    assert cache.get("k") == "default"
    assert cache.get_or_set("k", "other") == "default"


def test_get_or_set_calls_callable_default_only_when_missing(cache):
    calls = []

    def make():
        calls.append(1)
        return "made"

    assert cache.get_or_set("k", make) == "made"
    assert cache.get_or_set("k", make) == "made"
    assert calls == [1]
    assert cache.get("k") == "made"


def test_get_or_set_none_default_matches_locmem():
    rust, locmem = make_pair()
    results = [(c.get_or_set("k", None), c.has_key("k")) for c in (rust, locmem)]
    assert results[0] == results[1]


def test_get_or_set_with_timeout_and_version(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        assert c.get_or_set("k", "v", timeout=10, version=3) == "v"
    frozen.shift(9)
    assert [c.get("k", version=3) for c in (rust, locmem)] == ["v", "v"]
    assert [c.get("k") for c in (rust, locmem)] == [None, None]
    frozen.shift(1)
    assert [c.get("k", version=3) for c in (rust, locmem)] == [None, None]


# --- get_many / set_many / delete / delete_many / has_key -------------------------------------


def test_get_many_returns_found_keys_in_order_asked():
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set_many({"a": 1, "b": 2, "c": 3})
    asked = ["c", "missing", "a", "b"]
    got = rust.get_many(asked)
    assert got == locmem.get_many(asked) == {"c": 3, "a": 1, "b": 2}
    assert list(got) == list(locmem.get_many(asked))


def test_get_many_keeps_the_callers_key_objects():
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set(1, "one")
        c.set("2", "two")
    assert rust.get_many([1, 2, "2"]) == locmem.get_many([1, 2, "2"])


def test_get_many_accepts_any_iterable_and_version(cache):
    cache.set("a", 1, version=2)
    assert cache.get_many(iter(["a"]), version=2) == {"a": 1}
    assert cache.get_many(key for key in ["a"]) == {}


def test_set_many_stores_all_and_returns_empty_list(cache):
    assert cache.set_many({"a": 1, "b": [2]}) == []
    assert cache.get_many(["a", "b"]) == {"a": 1, "b": [2]}


def test_set_many_applies_timeout_and_version(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set_many({"a": 1, "b": 2}, timeout=10, version=2)
    assert rust.get_many(["a", "b"], version=2) == locmem.get_many(["a", "b"], version=2) == {"a": 1, "b": 2}
    frozen.shift(10)
    assert rust.get_many(["a", "b"], version=2) == locmem.get_many(["a", "b"], version=2) == {}


def test_delete_returns_whether_a_value_was_removed(cache):
    cache.set("k", "v")
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k") is None


def test_delete_of_expired_key_returns_false(frozen):
    """Intended difference: LocMemCache returns True here (it still holds the dead entry)."""
    rust = make_rust()
    rust.set("k", "v", timeout=1)
    frozen.shift(1)
    assert rust.delete("k") is False


def test_delete_many_removes_listed_keys_only(cache):
    cache.set_many({"a": 1, "b": 2, "c": 3})
    assert cache.delete_many(["a", "c", "missing"]) is None
    assert cache.get_many(["a", "b", "c"]) == {"b": 2}


def test_delete_many_with_version(cache):
    cache.set("a", 1, version=2)
    cache.set("a", 1)
    cache.delete_many(["a"], version=2)
    assert cache.has_key("a")
    assert not cache.has_key("a", version=2)


def test_has_key_and_contains(cache):
    assert not cache.has_key("k")
    assert "k" not in cache
    cache.set("k", 0)
    assert cache.has_key("k")
    assert "k" in cache
    assert not cache.has_key("k", version=2)


def test_has_key_is_false_after_expiry(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", "v", timeout=3)
    assert [c.has_key("k") for c in (rust, locmem)] == [True, True]
    frozen.shift(3)
    assert [c.has_key("k") for c in (rust, locmem)] == [False, False]


# --- touch -------------------------------------------------------------------------------------


def test_touch_returns_whether_key_exists(cache):
    assert cache.touch("missing") is False
    cache.set("k", "v")
    assert cache.touch("k") is True


def test_touch_extends_expiry(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", "v", timeout=10)
    frozen.shift(8)
    assert [c.touch("k", 10) for c in (rust, locmem)] == [True, True]
    frozen.shift(8)
    assert [c.get("k") for c in (rust, locmem)] == ["v", "v"]
    frozen.shift(2)
    assert [c.get("k") for c in (rust, locmem)] == [None, None]


def test_touch_with_none_makes_key_permanent(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", "v", timeout=10)
        assert c.touch("k", None) is True
    frozen.shift(10**6)
    assert [c.get("k") for c in (rust, locmem)] == ["v", "v"]


def test_touch_default_timeout_uses_settings_timeout(frozen):
    rust, locmem = make_pair(TIMEOUT=20)
    for c in (rust, locmem):
        c.set("k", "v", timeout=None)
        c.touch("k")
    frozen.shift(19)
    assert [c.get("k") for c in (rust, locmem)] == ["v", "v"]
    frozen.shift(1)
    assert [c.get("k") for c in (rust, locmem)] == [None, None]


@pytest.mark.parametrize("timeout", [0, -1])
def test_touch_with_zero_or_negative_timeout_expires_key(frozen, timeout):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", "v")
    assert [c.touch("k", timeout) for c in (rust, locmem)] == [True, True]
    assert [c.get("k") for c in (rust, locmem)] == [None, None]


def test_touch_of_expired_key_returns_false(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", "v", timeout=1)
    frozen.shift(1)
    assert [c.touch("k", 100) for c in (rust, locmem)] == [False, False]
    assert [c.get("k") for c in (rust, locmem)] == [None, None]


# --- incr / decr -------------------------------------------------------------------------------


def test_incr_and_decr(cache):
    cache.set("n", 10)
    assert cache.incr("n") == 11
    assert cache.incr("n", 5) == 16
    assert cache.decr("n") == 15
    assert cache.decr("n", 20) == -5
    assert cache.get("n") == -5


def test_incr_of_missing_key_raises_value_error_like_locmem():
    rust, locmem = make_pair()
    results = [outcome(c.incr, "missing") for c in (rust, locmem)]
    assert results[0] == results[1]
    assert results[0][1] is ValueError
    assert outcome(rust.decr, "missing", version=4) == outcome(locmem.decr, "missing", version=4)
    assert outcome(rust.decr, "missing", version=4)[2] == "Key ':4:missing' not found"


def test_incr_of_expired_key_raises_value_error(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("n", 1, timeout=2)
    frozen.shift(2)
    results = [outcome(c.incr, "n") for c in (rust, locmem)]
    assert results[0] == results[1]
    assert results[0][1] is ValueError


@pytest.mark.parametrize("value", ["text", b"bytes", None, [1], {"a": 1}, mark_safe("1")])
def test_incr_of_non_numeric_raises_type_error(value):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", value)
    results = [outcome(c.incr, "k") for c in (rust, locmem)]
    assert results[0][:2] == results[1][:2] == ("raised", TypeError)
    assert rust.get("k") == locmem.get("k") == value


def test_incr_non_integer_values_and_deltas_behave_as_locmem():
    cases = [
        (2**63 - 1, 1),
        (-(2**63), -1),
        (2**63 - 1, 2**64),
        (2**100, 1),
        (-(2**100), 2**100),
        (1.5, 1),
        (1, 0.5),
        (Decimal("1.1"), 1),
        (Decimal("1.1"), Decimal("0.9")),
        (Fraction(1, 3), 1),
        (True, 1),
        (1, True),
        (Color.RED, 1),
        (MyInt(3), 1),
        ("ab", "cd"),
        ([1], [2]),
    ]
    for value, delta in cases:
        rust, locmem = make_pair()
        for c in (rust, locmem):
            c.set("k", value)
        got, expected = rust.incr("k", delta), locmem.incr("k", delta)
        assert (type(got), got) == (type(expected), expected), (value, delta)
        stored, expected_stored = rust.get("k"), locmem.get("k")
        assert (type(stored), stored) == (type(expected_stored), expected_stored), (value, delta)
        got, expected = outcome(rust.decr, "k", delta), outcome(locmem.decr, "k", delta)
        assert got[:2] == expected[:2], (value, delta)
        if got[0] == "ok":
            assert type(got[1]) is type(expected[1]), (value, delta)


def test_incr_past_64_bits_becomes_big_int_and_back(cache):
    cache.set("n", 2**63 - 1)
    assert cache.incr("n") == 2**63
    assert cache.get("n") == 2**63
    assert cache.decr("n") == 2**63 - 1
    assert cache.decr("n", 2**64) == 2**63 - 1 - 2**64
    assert cache.incr("n", 2**64) == 2**63 - 1
    assert type(cache.get("n")) is int


def test_incr_keeps_expiry_of_native_int(frozen):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("n", 1, timeout=10)
    frozen.shift(5)
    assert [c.incr("n") for c in (rust, locmem)] == [2, 2]
    assert [c.decr("n", 3) for c in (rust, locmem)] == [-1, -1]
    frozen.shift(4)
    assert [c.get("n") for c in (rust, locmem)] == [-1, -1]
    frozen.shift(1)
    assert [c.get("n") for c in (rust, locmem)] == [None, None]


@pytest.mark.parametrize(("value", "delta"), [(2**70, 1), (1.5, 1), (Decimal("2.5"), 1), (2**63 - 1, 1)])
def test_incr_keeps_expiry_of_non_native_numbers(frozen, value, delta):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("n", value, timeout=10)
    frozen.shift(5)
    assert rust.incr("n", delta) == locmem.incr("n", delta)
    frozen.shift(4)
    assert rust.get("n") == locmem.get("n") == value + delta
    frozen.shift(1)
    assert [c.get("n") for c in (rust, locmem)] == [None, None]


def test_incr_is_atomic_across_threads():
    rust = make_rust()
    rust.set("native", 0)
    rust.set("big", 2**64)
    per_thread = 300

    def work():
        for _ in range(per_thread):
            rust.incr("native")
            rust.incr("big")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rust.get("native") == 4 * per_thread
    assert rust.get("big") == 2**64 + 4 * per_thread


# --- incr_version / decr_version ---------------------------------------------------------------


def test_incr_version_moves_value_to_next_version(cache):
    cache.set("k", "v")
    assert cache.incr_version("k") == 2
    assert cache.get("k") is None
    assert cache.get("k", version=2) == "v"
    assert cache.incr_version("k", delta=3, version=2) == 5
    assert cache.get("k", version=5) == "v"
    assert not cache.has_key("k", version=2)


def test_decr_version_moves_value_to_previous_version(cache):
    cache.set("k", "v", version=3)
    assert cache.decr_version("k", version=3) == 2
    assert cache.get("k", version=2) == "v"
    assert cache.get("k", version=3) is None


def test_incr_version_of_missing_key_raises_like_locmem():
    rust, locmem = make_pair()
    for method in ("incr_version", "decr_version"):
        results = [outcome(getattr(c, method), "missing") for c in (rust, locmem)]
        assert results[0] == results[1]
        assert results[0][1] is ValueError


def test_incr_version_keeps_default_timeout_not_original(frozen):
    """BaseCache.incr_version re-sets with the default timeout, as LocMemCache does."""
    rust, locmem = make_pair(TIMEOUT=100)
    for c in (rust, locmem):
        c.set("k", "v", timeout=5)
        c.incr_version("k")
    frozen.shift(50)
    assert [c.get("k", version=2) for c in (rust, locmem)] == ["v", "v"]


# --- clear / close / make_key / validate_key / get_backend_timeout -----------------------------


def test_clear_removes_everything(cache):
    cache.set_many({"a": 1, "b": 2})
    cache.set("c", 3, version=7)
    assert cache.clear() is None
    assert cache.get_many(["a", "b"]) == {}
    assert cache.get("c", version=7) is None


def test_close_keeps_data_and_cache_usable(cache):
    cache.set("k", "v")
    assert cache.close() is None
    assert cache.get("k") == "v"
    cache.set("k2", "v2")
    assert cache.get("k2") == "v2"


@pytest.mark.parametrize(
    ("params", "key", "version"),
    [({}, "k", None), ({}, "k", 3), ({"KEY_PREFIX": "pre", "VERSION": 9}, "k", None), ({}, 12, "v2")],
)
def test_make_key_matches_locmem(params, key, version):
    rust, locmem = make_pair(**params)
    assert rust.make_key(key, version=version) == locmem.make_key(key, version=version)


def test_validate_key_warns_like_locmem():
    rust, locmem = make_pair()
    for key in ["a" * 251, "has space", "ctl\x01"]:
        with pytest.warns(CacheKeyWarning) as got:
            rust.validate_key(key)
        with pytest.warns(CacheKeyWarning) as expected:
            locmem.validate_key(key)
        assert [str(w.message) for w in got] == [str(w.message) for w in expected]


@pytest.mark.parametrize("timeout", [DEFAULT_TIMEOUT, None, 0, -5, 10, 2.5])
def test_get_backend_timeout_matches_locmem(frozen, timeout):
    rust, locmem = make_pair(TIMEOUT=60)
    assert rust.get_backend_timeout(timeout) == locmem.get_backend_timeout(timeout)


# --- settings: TIMEOUT, VERSION, KEY_PREFIX, KEY_FUNCTION --------------------------------------


def test_default_timeout_is_300_seconds(frozen):
    rust, locmem = make_pair()
    assert rust.default_timeout == locmem.default_timeout == 300
    for c in (rust, locmem):
        c.set("k", "v")
    frozen.shift(299.5)
    assert [c.get("k") for c in (rust, locmem)] == ["v", "v"]
    frozen.shift(0.5)
    assert [c.get("k") for c in (rust, locmem)] == [None, None]


def test_timeout_setting_is_used(frozen):
    rust, locmem = make_pair(TIMEOUT=30)
    for c in (rust, locmem):
        c.set("k", "v")
        c.add("a", "v")
    frozen.shift(29)
    assert [c.get_many(["k", "a"]) for c in (rust, locmem)] == [{"k": "v", "a": "v"}] * 2
    frozen.shift(1)
    assert [c.get_many(["k", "a"]) for c in (rust, locmem)] == [{}, {}]


def test_timeout_none_setting_never_expires(frozen):
    rust, locmem = make_pair(TIMEOUT=None)
    for c in (rust, locmem):
        c.set("k", "v")
    frozen.shift(10 * 365 * 86400)
    assert [c.get("k") for c in (rust, locmem)] == ["v", "v"]


@pytest.mark.parametrize("timeout", [0, -1, -300])
def test_timeout_zero_or_negative_setting_caches_nothing(frozen, timeout):
    rust, locmem = make_pair(TIMEOUT=timeout)
    for c in (rust, locmem):
        c.set("k", "v")
        c.set_many({"m": 1})
    assert [c.add("a", "v") for c in (rust, locmem)] == [True, True]
    assert [c.get_many(["k", "m", "a"]) for c in (rust, locmem)] == [{}, {}]


@pytest.mark.parametrize("timeout", [None, 1, 10, 0.5])
def test_per_call_timeout_expires_like_locmem(frozen, timeout):
    rust, locmem = make_pair(TIMEOUT=5)
    for c in (rust, locmem):
        c.set("k", "v", timeout=timeout)
    seen = []
    for step in [0.25, 0.25, 0.5, 4, 5, 10**6]:
        frozen.shift(step)
        seen.append((rust.get("k"), locmem.get("k")))
    assert all(r == lm for r, lm in seen), seen


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
def test_per_call_zero_or_negative_timeout_caches_nothing_and_removes_old_value(frozen, timeout):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", "old")
        c.set("k", "new", timeout=timeout)
        c.set("never", "v", timeout=timeout)
    assert [c.get_many(["k", "never"]) for c in (rust, locmem)] == [{}, {}]


def test_version_setting(cache):
    rust, locmem = make_pair(VERSION=3)
    for c in (rust, locmem):
        c.set("k", "v")
    assert [c.get("k", version=3) for c in (rust, locmem)] == ["v", "v"]
    assert [c.get("k", version=1) for c in (rust, locmem)] == [None, None]
    assert [c.incr_version("k") for c in (rust, locmem)] == [4, 4]


def test_version_setting_separates_instances_sharing_a_location():
    location = new_location()
    v1, v2 = RustCache(location, {"VERSION": 1}), RustCache(location, {"VERSION": 2})
    v1.set("k", "one")
    assert v2.get("k") is None
    assert v2.get("k", version=1) == "one"


def test_key_prefix_separates_instances_sharing_a_location():
    location = new_location()
    a, b = RustCache(location, {"KEY_PREFIX": "a"}), RustCache(location, {"KEY_PREFIX": "b"})
    a.set("k", "from a")
    b.set("k", "from b")
    assert a.get("k") == "from a"
    assert b.get("k") == "from b"
    a.delete("k")
    assert b.get("k") == "from b"


@pytest.mark.parametrize("key_function", [lowercase_key, "tests.test_backend.lowercase_key"])
def test_key_function_is_used(key_function):
    rust, locmem = make_pair(KEY_FUNCTION=key_function, KEY_PREFIX="p")
    assert rust.key_func is lowercase_key
    for c in (rust, locmem):
        c.set("Key", "v")
    assert rust.make_key("ABC") == locmem.make_key("ABC") == "p:abc"
    assert [c.get("KEY", version=9) for c in (rust, locmem)] == ["v", "v"]
    assert [c.get_many(["kEy"]) for c in (rust, locmem)] == [{"kEy": "v"}] * 2
    assert [c.incr_version("KEY") for c in (rust, locmem)] == [2, 2]
    # The key function ignores the version, so set-then-delete leaves nothing.
    assert [c.has_key("key") for c in (rust, locmem)] == [False, False]


def test_key_function_keys_are_shared_with_default_key_instances():
    """A custom KEY_FUNCTION producing Django's default form reaches the same entries."""
    location = new_location()
    custom = RustCache(location, {"KEY_FUNCTION": lambda key, prefix, version: f"{prefix}:{version}:{key}"})
    default = RustCache(location, {})
    custom.set("k", "v")
    assert default.get("k") == "v"


def test_subclass_overriding_make_key_is_honoured():
    class Upper(RustCache):
        def make_key(self, key, version=None):
            return super().make_key(str(key).upper(), version)

    location = new_location()
    upper, plain = Upper(location, {}), RustCache(location, {})
    upper.set("k", "v")
    assert plain.get("K") == "v"
    assert upper.get_many(["k"]) == {"k": "v"}


# --- MAX_ENTRIES / CULL_FREQUENCY and LRU order ------------------------------------------------


@pytest.mark.parametrize(("cull_frequency", "expected"), [(3, 29), (0, 19)])
def test_cull_arithmetic(cull_frequency, expected):
    rust, locmem = make_pair(OPTIONS={"MAX_ENTRIES": 30, "CULL_FREQUENCY": cull_frequency})
    keys = [f"k{i}" for i in range(49)]
    for c in (rust, locmem):
        for key in keys:
            c.set(key, 1)
    assert rust.stats()["entries"] == len(locmem._cache) == expected
    assert live_keys(rust, keys) == live_keys(locmem, keys)


@pytest.mark.parametrize(("max_entries", "cull_frequency"), [(5, 1), (5, 2), (7, 4), (1, 3), (0, 3), (-1, 3), (5, -2)])
def test_cull_keeps_the_same_keys_as_locmem(max_entries, cull_frequency):
    rust, locmem = make_pair(OPTIONS={"MAX_ENTRIES": max_entries, "CULL_FREQUENCY": cull_frequency})
    keys = [f"k{i}" for i in range(12)]
    for c in (rust, locmem):
        for i, key in enumerate(keys):
            c.set(key, i)
            c.get(keys[i // 2])
    assert live_keys(rust, keys) == live_keys(locmem, keys)
    assert rust.stats()["entries"] == len(locmem._cache)


def test_add_and_incr_version_cull_like_set():
    rust, locmem = make_pair(OPTIONS={"MAX_ENTRIES": 4, "CULL_FREQUENCY": 2})
    keys = [f"k{i}" for i in range(10)]
    for c in (rust, locmem):
        for key in keys[:6]:
            c.add(key, 1)
        c.incr_version("k5")
        c.add("k1", 2)
    assert live_keys(rust, keys) == live_keys(locmem, keys)
    assert live_keys(rust, keys, version=2) == live_keys(locmem, keys, version=2)


# Does this operation on the oldest key make it most recently used? As in LocMemCache.
LRU_OPERATIONS = {
    "get": lambda c: c.get("a"),
    "get_many": lambda c: c.get_many(["a"]),
    "set": lambda c: c.set("a", 10),
    "incr": lambda c: c.incr("a"),
    "decr": lambda c: c.decr("a"),
    "incr_big": lambda c: c.incr("a", 2**64),
    "get_or_set": lambda c: c.get_or_set("a", 5),
    "has_key": lambda c: c.has_key("a"),
    "touch": lambda c: c.touch("a", 100),
    "failed_add": lambda c: c.add("a", 5),
}


@pytest.mark.parametrize("operation", LRU_OPERATIONS)
def test_lru_order_matches_locmem(operation):
    rust, locmem = make_pair(OPTIONS={"MAX_ENTRIES": 3, "CULL_FREQUENCY": 3})
    for c in (rust, locmem):
        c.set("a", 1)
        c.set("b", 2)
        c.set("c", 3)
        LRU_OPERATIONS[operation](c)
        c.set("d", 4)  # full: culls the least recently used entry
    survivors = live_keys(locmem, "abcd")
    assert live_keys(rust, "abcd") == survivors
    refreshes = operation not in {"has_key", "touch", "failed_add"}
    assert ("a" in survivors) is refreshes


def test_instance_settings_assigned_later_take_effect():
    """Django's own tests set ``cache._max_entries = -1`` to force a cull on every write."""
    rust, locmem = make_pair()
    keys = [f"k{i}" for i in range(6)]
    for c in (rust, locmem):
        c._max_entries = 2
        c._cull_frequency = 2
        for key in keys:
            c.set(key, 1)
        c.key_prefix = "other"
        c.set("k0", 2)
    assert live_keys(rust, keys) == live_keys(locmem, keys)
    rust.key_prefix = locmem.key_prefix = ""
    assert live_keys(rust, keys) == live_keys(locmem, keys)


# --- key warnings --------------------------------------------------------------------------------

WARNING_KEYS = {
    "too_long": "a" * 248,  # 251 characters once made into ":1:..."
    "too_long_unicode": "é" * 248,
    "space": "has space",
    "control": "ctl\x07char",
    "newline": "line\nbreak",
    "delete_char": "del\x7f",
    "long_and_space": "a b" * 100,
}

KEY_METHODS = {
    "get": lambda c, k: c.get(k),
    "set": lambda c, k: c.set(k, 1),
    "add": lambda c, k: c.add(k, 1),
    "delete": lambda c, k: c.delete(k),
    "has_key": lambda c, k: c.has_key(k),
    "touch": lambda c, k: c.touch(k),
    "incr": lambda c, k: outcome(c.incr, k),
    "get_many": lambda c, k: c.get_many([k, "fine"]),
    "set_many": lambda c, k: c.set_many({k: 1}),
    "delete_many": lambda c, k: c.delete_many([k]),
    "get_or_set": lambda c, k: c.get_or_set(k, 1),
    "incr_version": lambda c, k: outcome(c.incr_version, k),
}


def _warnings_of(action):
    with pytest.warns(CacheKeyWarning) as record:
        action()
    return [str(w.message) for w in record]


@pytest.mark.parametrize("kind", WARNING_KEYS)
def test_key_warning_text_is_djangos(kind):
    rust, locmem = make_pair()
    key = WARNING_KEYS[kind]
    got = _warnings_of(lambda: rust.set(key, 1))
    assert got == _warnings_of(lambda: locmem.set(key, 1))
    assert got == list(memcache_key_warnings(rust.make_key(key)))


@pytest.mark.parametrize("method", KEY_METHODS)
def test_every_method_warns_about_bad_keys_like_locmem(method):
    rust, locmem = make_pair()
    key = "bad key"
    assert _warnings_of(lambda: KEY_METHODS[method](rust, key)) == _warnings_of(
        lambda: KEY_METHODS[method](locmem, key)
    )


def test_key_at_the_memcached_limit_does_not_warn(cache):
    key = "a" * 247  # ":1:" + 247 = 250 characters
    cache.set(key, 1)  # filterwarnings = error: a warning would fail the test
    assert cache.get(key) == 1
    cache.set("é" * 247, 2)
    assert cache.get("é" * 247) == 2


def test_warned_key_is_still_stored(cache):
    with pytest.warns(CacheKeyWarning):
        cache.set("bad key", "v")
    with pytest.warns(CacheKeyWarning):
        assert cache.get("bad key") == "v"


# --- sharing between instances and threads -----------------------------------------------------


def test_instances_with_same_location_share_data():
    location = new_location()
    a, b = RustCache(location, {}), RustCache(location, {})
    a.set("k", "v")
    assert b.get("k") == "v"
    b.incr_version("k")
    assert a.get("k", version=2) == "v"


def test_different_locations_are_isolated():
    a, b = make_rust(), make_rust()
    a.set("k", "a")
    assert b.get("k") is None
    b.set("k", "b")
    assert a.get("k") == "a"


def test_clear_clears_only_its_own_location():
    location = new_location()
    a, same, other = RustCache(location, {}), RustCache(location, {}), make_rust()
    a.set("k", 1)
    other.set("k", 2)
    same.clear()
    assert a.get("k") is None
    assert other.get("k") == 2


def test_new_instance_reuses_the_store_of_its_location():
    location = new_location()
    first = RustCache(location, {})
    first.set("k", "v")
    first.get("k")
    before = first.stats()
    second = RustCache(location, {"OPTIONS": {"MAX_ENTRIES": 5}})
    # Constructing touched nothing: same data, same counters, seen from both.
    assert first.stats() == before
    assert {**second.stats(), "max_entries": before["max_entries"]} == before
    assert second.stats()["max_entries"] == 5
    assert second.get("k") == "v"
    assert first.stats()["hits"] == before["hits"] + 1


def test_aliases_share_data_across_threads():
    location = new_location()
    aliases = {
        "one": {"BACKEND": RUST, "LOCATION": location},
        "two": {"BACKEND": RUST, "LOCATION": location},
        "elsewhere": {"BACKEND": RUST, "LOCATION": new_location()},
    }
    with override_settings(CACHES={"default": {"BACKEND": RUST, "LOCATION": "tests-default"}, **aliases}):
        main_one = caches["one"]
        main_one.set("k", "from main")
        seen = {}

        def worker():
            seen["instance"] = caches["one"]
            seen["one"] = caches["one"].get("k")
            seen["two"] = caches["two"].get("k")
            seen["elsewhere"] = caches["elsewhere"].get("k")
            caches["two"].set("t", "from thread")

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert seen["instance"] is not main_one
        assert (seen["one"], seen["two"], seen["elsewhere"]) == ("from main", "from main", None)
        assert main_one.get("t") == "from thread"
        main_one.clear()


def test_create_connection_builds_a_rustcache():
    with override_settings(CACHES={"default": {"BACKEND": RUST, "LOCATION": new_location(), "TIMEOUT": 7}}):
        backend = caches.create_connection("default")
        assert isinstance(backend, RustCache)
        assert backend.default_timeout == 7
        backend.set("k", "v")
        assert caches["default"].get("k") == "v"
        backend.clear()


# --- values ------------------------------------------------------------------------------------

VALUES = {
    "int": 42,
    "zero": 0,
    "negative": -7,
    "i64_max": 2**63 - 1,
    "i64_min": -(2**63),
    "big_int": 2**64,
    "big_negative": -(2**100),
    "true": True,
    "false": False,
    "none": None,
    "float": 1.25,
    "negative_zero": -0.0,
    "inf": float("inf"),
    "str": "text",
    "empty_str": "",
    "unicode": "é☃\U0001f600",
    "lone_surrogate": "\ud800x",
    "bytes": b"\x00\xffbytes",
    "empty_bytes": b"",
    "safe_string": mark_safe("<b>safe</b>"),
    "int_enum": Color.GREEN,
    "int_subclass": MyInt(5),
    "decimal": Decimal("3.14"),
    "fraction": Fraction(1, 3),
    "list": [1, "a", None],
    "dict": {"a": [1, 2], 3: "x"},
    "tuple": (1, (2, 3)),
    "set": {1, 2},
    "frozenset": frozenset({"a"}),
    "bytearray": bytearray(b"ab"),
    "date": date(2024, 2, 29),
    "datetime": datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
}


@pytest.mark.parametrize("name", VALUES)
def test_value_round_trips_with_exact_type(name):
    value = VALUES[name]
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", value)
    got, expected = rust.get("k"), locmem.get("k")
    assert type(got) is type(expected) is type(value)
    assert got == expected == value
    assert repr(got) == repr(value)  # -0.0 stays -0.0, enum members stay members
    assert rust.get_many(["k"]) == {"k": value}
    assert type(rust.get_many(["k"])["k"]) is type(value)


def test_nan_round_trips():
    rust = make_rust()
    rust.set("k", float("nan"))
    got = rust.get("k")
    assert type(got) is float
    assert math.isnan(got)


def test_true_stays_bool_and_one_stays_int(cache):
    cache.set_many({"t": True, "one": 1})
    assert cache.get("t") is True
    assert type(cache.get("one")) is int


def test_safe_string_stays_safe(cache):
    cache.set("k", mark_safe("<i>"))
    assert isinstance(cache.get("k"), SafeString)


def test_mutating_a_returned_value_does_not_change_the_cache(cache):
    cache.set("k", [1, 2])
    got = cache.get("k")
    got.append(3)
    assert cache.get("k") == [1, 2]
    assert cache.get("k") is not cache.get("k")
    many = cache.get_many(["k"])["k"]
    many.append(4)
    assert cache.get("k") == [1, 2]


def test_mutating_the_stored_object_does_not_change_the_cache(cache):
    value = {"a": [1]}
    cache.set("k", value)
    value["a"].append(2)
    value["b"] = 3
    assert cache.get("k") == {"a": [1]}
    assert cache.get_or_set("other", value) == value
    value["c"] = 4
    assert "c" not in cache.get("other")


def test_int_keys_and_str_keys_with_same_text_are_the_same_key():
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set(1, "int key")
    assert rust.get("1") == locmem.get("1") == "int key"


# --- bad input loses nothing -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [threading.Lock(), Unpicklable(), lambda: None])
def test_unpicklable_value_raises_and_old_value_stays(bad):
    rust, locmem = make_pair()
    for c in (rust, locmem):
        c.set("k", "old")
    for method in ("set", "add"):
        results = [outcome(getattr(c, method), "k" if method == "set" else "new", bad) for c in (rust, locmem)]
        assert results[0][:2] == results[1][:2]
        assert results[0][0] == "raised"
    assert rust.get("k") == locmem.get("k") == "old"
    assert not rust.has_key("new")


def test_unpicklable_value_raises_the_pickling_error_itself(cache):
    with pytest.raises(RuntimeError, match="refuses to be pickled"):
        cache.set("k", Unpicklable())
    rust, locmem = make_pair()
    expected = outcome(locmem.set, "k", lambda: None)
    assert outcome(rust.set, "k", lambda: None)[:2] == expected[:2]
    assert issubclass(expected[1], (pickle.PicklingError, AttributeError, TypeError))


@pytest.mark.parametrize("timeout", ["soon", [1], Decimal("1"), object()])
def test_wrong_typed_timeout_raises_type_error_and_old_value_stays(timeout):
    """LocMemCache raises the same TypeError but has already overwritten the value; we keep it."""
    rust, locmem = make_pair()
    rust.set("k", "old", timeout=50)
    locmem.set("k", "old")
    with pytest.raises(TypeError):
        locmem.set("k", "new", timeout=timeout)
    with pytest.raises(TypeError):
        rust.set("k", "new", timeout=timeout)
    assert rust.get("k") == "old"
    with pytest.raises(TypeError):
        rust.add("fresh", "v", timeout=timeout)
    assert not rust.has_key("fresh")
    with pytest.raises(TypeError):
        rust.set_many({"k": "new", "m": "new"}, timeout=timeout)
    assert rust.get_many(["k", "m"]) == {"k": "old"}
    with pytest.raises(TypeError):
        rust.touch("k", timeout)
    with pytest.raises(TypeError):
        rust.get_or_set("g", "v", timeout=timeout)
    assert not rust.has_key("g")


def test_wrong_typed_timeout_on_touch_keeps_old_expiry(frozen):
    rust = make_rust()
    rust.set("k", "v", timeout=10)
    with pytest.raises(TypeError):
        rust.touch("k", "forever")
    frozen.shift(10)
    assert rust.get("k") is None


def test_set_many_with_an_unpicklable_value_stores_nothing(cache):
    cache.set_many({"a": "old a", "c": "old c"})
    with pytest.raises(RuntimeError, match="refuses to be pickled"):
        cache.set_many({"a": "new a", "b": Unpicklable(), "c": "new c", "d": "new d"})
    assert cache.get_many(["a", "b", "c", "d"]) == {"a": "old a", "c": "old c"}


def test_unpickling_error_propagates_from_get(cache):
    cache.set("k", Unloadable())
    with pytest.raises(RuntimeError, match="refuses to be unpickled"):
        cache.get("k")
    with pytest.raises(RuntimeError, match="refuses to be unpickled"):
        cache.get_many(["k"])
    assert cache.has_key("k")


class BadKey:
    def __str__(self):
        raise LookupError("this key has no text")


ERRORS = {
    "incr_missing": lambda c: c.incr("missing"),
    "incr_text": lambda c: (c.set("t", "text"), c.incr("t")),
    "incr_text_big_delta": lambda c: (c.set("t", "text"), c.incr("t", 2**70)),
    "unpicklable": lambda c: c.set("k", Unpicklable()),
    "unpicklable_many": lambda c: c.set_many({"a": 1, "b": Unpicklable()}),
    "unloadable": lambda c: (c.set("u", Unloadable()), c.get("u")),
    "unloadable_incr": lambda c: (c.set("u", Unloadable()), c.incr("u")),
    "bad_timeout": lambda c: c.set("k", 1, timeout="x"),
    "bad_key": lambda c: c.get(BadKey()),
    "bad_key_many": lambda c: c.get_many(["a", BadKey()]),
    "bad_key_delete_many": lambda c: c.delete_many(["a", BadKey()]),
    "bad_version": lambda c: c.set("k", 1, version=BadKey()),
    "incr_version_missing": lambda c: c.incr_version("missing"),
}


@pytest.mark.parametrize("error", ERRORS)
def test_cache_keeps_working_after_an_error(error):
    rust = make_rust(OPTIONS={"MAX_ENTRIES": 4})
    rust.set_many({"a": 1, "b": 2})
    with pytest.raises(Exception):  # noqa: B017, PT011 - each case raises its own kind
        ERRORS[error](rust)
    rust._native.check_invariants()
    assert rust.get("a") == 1
    assert rust.incr("b") == 3
    for i in range(10):
        rust.set(f"n{i}", i)
    assert rust.get("n9") == 9
    rust.delete("n9")
    rust.clear()
    rust.set("after", "ok")
    assert rust.get("after") == "ok"
    rust._native.check_invariants()


def test_cache_keeps_working_after_an_error_in_another_thread():
    rust = make_rust()
    rust.set("u", Unloadable())
    errors = []

    def worker():
        try:
            rust.get("u")
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 1
    rust.set("k", "v")
    assert rust.get("k") == "v"


# --- clocks ------------------------------------------------------------------------------------


def test_python_clock_follows_time_machine_backwards_and_forwards():
    rust, locmem = make_pair()
    with time_machine.travel(T0, tick=False) as traveller:
        for c in (rust, locmem):
            c.set("k", "v", timeout=100)
        traveller.move_to(datetime(2000, 1, 1, tzinfo=UTC))
        assert [c.get("k") for c in (rust, locmem)] == ["v", "v"]
        traveller.move_to(T0)
        traveller.shift(100)
        assert [c.get("k") for c in (rust, locmem)] == [None, None]


def test_system_clock_ignores_time_machine():
    rust = make_rust(OPTIONS={"CLOCK": "system"})
    python_clock = make_rust()
    with time_machine.travel(T0, tick=False) as traveller:
        rust.set("k", "v", timeout=3600)
        python_clock.set("k", "v", timeout=3600)
        traveller.shift(2 * 3600)
        assert rust.get("k") == "v"
        assert python_clock.get("k") is None
    # Under the real clock, the system-clock entry does expire.
    rust.set("short", "v", timeout=0.05)
    time.sleep(0.1)
    assert rust.get("short") is None


# --- regressions -------------------------------------------------------------------------------


def test_sub_second_deadline_boundary_matches_locmem(frozen):
    """Deadlines are ``time.time() + timeout`` floats, as in LocMemCache, so an exact sub-second
    boundary is expired in both (nanosecond arithmetic once rounded it the other way)."""
    rust, locmem = make_pair()
    frozen.shift(2)
    for c in (rust, locmem):
        c.set("k", "v", timeout=0.25)
    frozen.shift(0.25)  # exactly the deadline: expired (``exp <= time.time()``)
    assert [c.get("k") for c in (rust, locmem)] == [None, None]


def test_incr_not_found_message_keeps_lone_surrogates():
    rust, locmem = make_pair()
    assert outcome(rust.incr, "\ud800") == outcome(locmem.incr, "\ud800")
