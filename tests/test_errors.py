"""Every error path of the native handle raises an ordinary Python exception and leaves the store as it
was: no panic crosses into Python.

`pytest.raises(SomeError)` lets anything else through, and pyo3's `PanicException` derives from
`BaseException`, so a panic on any of these paths fails the test rather than matching it."""

import asyncio
import pickle
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import CacheKeyWarning
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured

from django_rustcache import RustCache, _core


def native_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs = {
        "key_prefix": "",
        "version": 1,
        "default_timeout": 300,
        "timeout_sentinel": DEFAULT_TIMEOUT,
        "max_entries": 300,
        "cull_frequency": 3,
        "max_bytes": None,
        "pickle_protocol": pickle.HIGHEST_PROTOCOL,
        "make_keys": True,
        "key_warner": lambda key: None,
        "python_clock": True,
    }
    kwargs.update(overrides)
    return kwargs


def location() -> str:
    return f"errors-{uuid.uuid4().hex}"


@pytest.fixture
def cache() -> Iterator[RustCache]:
    backend = RustCache(location(), {"TIMEOUT": 300})
    backend.set("kept", "value")
    yield backend
    assert backend.get("kept") == "value", "an error path changed an unrelated entry"
    backend._native.check_invariants()
    backend.clear()


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("str failed")


class Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return "unhashable"


def _fail_to_load():
    raise LookupError("cannot load")


class LoadFails:
    def __reduce__(self):
        return (_fail_to_load, ())


# The constructor.


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"key_prefix": RaisingStr()}, RuntimeError),
        ({"version": RaisingStr()}, RuntimeError),
        ({"default_timeout": "300"}, TypeError),
        ({"default_timeout": 10**400}, OverflowError),
        ({"max_entries": "300"}, TypeError),
        ({"max_entries": 10**30}, OverflowError),
        ({"cull_frequency": 1.5}, TypeError),
        ({"max_bytes": -1}, OverflowError),
        ({"max_bytes": "1"}, TypeError),
        ({"pickle_protocol": 2**40}, OverflowError),
        ({"make_keys": "yes"}, TypeError),
        ({"python_clock": None}, TypeError),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else v.__name__,
)
def test_constructor_rejects_bad_arguments(overrides, error):
    with pytest.raises(error):
        _core.Cache(location(), **native_kwargs(**overrides))


def test_constructor_rejects_a_non_str_location_and_missing_arguments():
    with pytest.raises(TypeError):
        _core.Cache(42, **native_kwargs())
    with pytest.raises(TypeError):
        _core.Cache(location())


def test_bad_options_are_improperly_configured():
    with pytest.raises(ImproperlyConfigured, match="MAX_BYTES"):
        RustCache(location(), {"OPTIONS": {"MAX_BYTES": -1}})
    with pytest.raises(ImproperlyConfigured, match="PICKLE_PROTOCOL"):
        RustCache(location(), {"OPTIONS": {"PICKLE_PROTOCOL": 99}})
    with pytest.raises(ImproperlyConfigured, match="NOPE"):
        RustCache(location(), {"OPTIONS": {"NOPE": 1}})


@pytest.mark.parametrize("option", ["MAX_ENTRIES", "CULL_FREQUENCY"])
def test_huge_django_limits_work_as_in_locmem(option):
    params = {"OPTIONS": {option: 10**30}}
    rust, locmem = RustCache(location(), params), LocMemCache(location(), params)
    for c in (rust, locmem):
        for i in range(5):
            c.set(i, i)
    assert rust.get_many(range(5)) == locmem.get_many(range(5))


# Key making: str() failing, the key warner failing, the version failing.

KEY_OPS: dict[str, Callable[[RustCache, Any], Any]] = {
    "get": lambda c, k: c.get(k),
    "set": lambda c, k: c.set(k, 1),
    "add": lambda c, k: c.add(k, 1),
    "touch": lambda c, k: c.touch(k),
    "delete": lambda c, k: c.delete(k),
    "has_key": lambda c, k: c.has_key(k),
    "incr": lambda c, k: c.incr(k),
    "get_many": lambda c, k: c.get_many(["kept", k]),
    "set_many": lambda c, k: c.set_many({"fresh": 1, k: 2}),
    "delete_many": lambda c, k: c.delete_many([k]),
    "aget": lambda c, k: asyncio.run(c.aget(k)),
    "aset": lambda c, k: asyncio.run(c.aset(k, 1)),
    "aincr": lambda c, k: asyncio.run(c.aincr(k)),
}


@pytest.mark.parametrize("op", KEY_OPS.values(), ids=KEY_OPS.keys())
def test_key_whose_str_raises(cache, op):
    with pytest.raises(RuntimeError, match="str failed"):
        op(cache, RaisingStr())
    assert cache.get("fresh") is None


@pytest.mark.parametrize("op", KEY_OPS.values(), ids=KEY_OPS.keys())
def test_key_warning_raised_as_error(cache, op):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        with pytest.raises(CacheKeyWarning, match="characters"):
            op(cache, "has space")
    assert cache.get("fresh") is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        assert cache.get("has space") is None


NATIVE_KEY_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "get": lambda n, k: n.get(k, None, None),
    "set": lambda n, k: n.set(k, 1, DEFAULT_TIMEOUT, None),
    "add": lambda n, k: n.add(k, 1, DEFAULT_TIMEOUT, None),
    "touch": lambda n, k: n.touch(k, DEFAULT_TIMEOUT, None),
    "direct_get": lambda n, k: n.direct_get(k),
    "delete": lambda n, k: n.delete(k, None),
    "has_key": lambda n, k: n.has_key(k, None),
    "incr": lambda n, k: n.incr(k, 1, None),
    "get_many": lambda n, k: n.get_many([k], None),
    "set_many": lambda n, k: n.set_many({k: 1}, DEFAULT_TIMEOUT, None),
    "delete_many": lambda n, k: n.delete_many([k], None),
}


@pytest.mark.parametrize("call", NATIVE_KEY_CALLS.values(), ids=NATIVE_KEY_CALLS.keys())
def test_key_warner_that_raises_something_else(call):
    def warner(key: str, stacklevel: int) -> None:
        raise ZeroDivisionError(key)

    native = _core.Cache(location(), **native_kwargs(key_warner=warner))
    with pytest.raises(ZeroDivisionError, match=":1:a b"):
        call(native, "a b")
    assert native.stats()["entries"] == 0
    if call is NATIVE_KEY_CALLS["incr"]:
        with pytest.raises(ValueError, match="not found"):
            call(native, "no-space")
    else:
        call(native, "no-space")  # the same call without a warning goes through
    native.check_invariants()


def test_key_warner_that_is_not_callable():
    native = _core.Cache(location(), **native_kwargs(key_warner=5))
    with pytest.raises(TypeError):
        native.set("a b", 1, DEFAULT_TIMEOUT, None)
    assert native.get("ok", "default", None) == "default"


def test_version_whose_str_raises(cache):
    for op in (
        lambda: cache.get("kept", version=RaisingStr()),
        lambda: cache.set("kept", 2, version=RaisingStr()),
        lambda: cache.get_many(["kept"], version=RaisingStr()),
        lambda: cache.delete_many(["kept"], version=RaisingStr()),
        lambda: cache.incr("kept", version=RaisingStr()),
    ):
        with pytest.raises(RuntimeError, match="str failed"):
            op()


# Iterables of keys.


def broken_iterator(first: Any) -> Iterator[Any]:
    yield first
    raise KeyError("iteration failed")


@pytest.mark.parametrize(
    ("op", "error"),
    [
        (lambda c: c.get_many(5), TypeError),
        (lambda c: c.get_many(broken_iterator("kept")), KeyError),
        (lambda c: c.delete_many(5), TypeError),
        (lambda c: c.delete_many(broken_iterator("kept")), KeyError),
        (lambda c: c.set_many([("a", 1)]), AttributeError),
        (lambda c: c.set_many(5), AttributeError),
    ],
    ids=["get_many-int", "get_many-broken", "delete_many-int", "delete_many-broken", "set_many-list", "set_many-int"],
)
def test_bad_iterables(cache, op, error):
    with pytest.raises(error):
        op(cache)


class BadItems(dict):
    def __init__(self, items: Any) -> None:
        super().__init__()
        self._items = items

    def items(self):  # type: ignore[override]
        return self._items


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([("a", 1, 2)], ValueError),
        ([5], TypeError),
        (5, TypeError),
        (broken_iterator(("a", 1)), KeyError),
    ],
    ids=["triple", "not-a-pair", "not-iterable", "raises-midway"],
)
def test_set_many_with_bad_items(cache, items, error):
    with pytest.raises(error):
        cache._native.set_many(BadItems(items), DEFAULT_TIMEOUT, None)
    assert cache.get("a") is None


def test_get_many_whose_found_key_is_unhashable(cache):
    cache.set("unhashable", 1)
    with pytest.raises(TypeError, match="unhashable"):
        cache.get_many([Unhashable()])
    assert cache.get("unhashable") == 1


# Timeouts and the clock.


@pytest.mark.parametrize("timeout", ["60", [60], object(), 1j, 10**400])
def test_bad_timeouts(cache, timeout):
    cache.set("existing", "old")
    for op in (
        lambda: cache.set("new", 1, timeout),
        lambda: cache.add("new", 1, timeout),
        lambda: cache.set_many({"new": 1}, timeout),
        lambda: cache.touch("existing", timeout),
        lambda: cache.set("existing", "new", timeout),
    ):
        with pytest.raises((TypeError, OverflowError)):
            op()
    assert cache.get("new") is None
    assert cache.get("existing") == "old"


CLOCK_OPS = {
    "get": lambda c: c.get("kept"),
    "get_many": lambda c: c.get_many(["kept"]),
    "set": lambda c: c.set("kept", 2),
    "add": lambda c: c.add("new", 2),
    "set_many": lambda c: c.set_many({"kept": 2}),
    "touch": lambda c: c.touch("kept"),
    "delete": lambda c: c.delete("kept"),
    "delete_many": lambda c: c.delete_many(["kept"]),
    "has_key": lambda c: c.has_key("kept"),
    "incr": lambda c: c.incr("kept"),
}


def _clock_raises() -> float:
    raise OSError("clock unavailable")


@pytest.mark.parametrize("op", CLOCK_OPS.values(), ids=CLOCK_OPS.keys())
@pytest.mark.parametrize(
    ("fake", "error"),
    [(_clock_raises, OSError), (lambda: "noon", TypeError), (lambda: None, TypeError)],
    ids=["raises", "returns-str", "returns-none"],
)
def test_python_clock_that_fails(cache, monkeypatch, op, fake, error):
    monkeypatch.setattr(time, "time", fake)
    with pytest.raises(error):
        op(cache)
    monkeypatch.undo()
    assert cache.get("new") is None


def test_python_clock_returning_odd_numbers_does_not_panic(monkeypatch):
    """NaN, infinities and negative times saturate; nothing panics, the store stays consistent."""
    cache = RustCache(location(), {})
    for fake in (lambda: float("nan"), lambda: float("inf"), lambda: -1e300, lambda: 1e300, lambda: 10**30):
        monkeypatch.setattr(time, "time", fake)
        cache.set("k", 1, 10)
        cache.set("forever", 1, None)
        cache.get("k")
        cache.touch("k", 5)
        if cache.has_key("k"):
            assert cache.incr("k") == 2
        else:  # a clock so late that the entry is born expired
            with pytest.raises(ValueError, match="not found"):
                cache.incr("k")
        assert cache.incr("forever") == 2
        cache.delete("forever")
        cache._native.check_invariants()
    monkeypatch.undo()
    cache.clear()


# incr's generic (compare-and-swap) path.


class AddDeletes:
    """`__add__` deletes the key it is being added under: the swap finds the key gone."""

    target: RustCache | None = None

    def __add__(self, other: Any) -> "AddDeletes":
        assert AddDeletes.target is not None
        AddDeletes.target.delete("vanishing")
        return AddDeletes()


class AddReturnsUnpicklable:
    def __add__(self, other: Any) -> Any:
        return threading.Lock()

    def __reduce__(self):
        return (AddReturnsUnpicklable, ())


def test_incr_errors(cache):
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing", 10**30)
    cache.set("text", "abc")
    with pytest.raises(TypeError):
        cache.incr("text")
    cache.set("none", None)
    with pytest.raises(TypeError):
        cache.decr("none")
    cache.set("n", 1)
    with pytest.raises(TypeError):
        cache.incr("n", "1")
    cache.set("loadfails", LoadFails())
    with pytest.raises(LookupError):
        cache.incr("loadfails")
    cache.set("unpicklable-sum", AddReturnsUnpicklable())
    with pytest.raises(TypeError, match="pickle"):
        cache.incr("unpicklable-sum")
    assert type(cache.get("unpicklable-sum")) is AddReturnsUnpicklable
    assert cache.get_many(["text", "none", "n"]) == {"text": "abc", "none": None, "n": 1}


def test_incr_whose_key_vanishes_during_the_add(cache, monkeypatch):
    monkeypatch.setattr(AddDeletes, "target", cache)
    cache.set("vanishing", AddDeletes())
    with pytest.raises(ValueError, match="not found"):
        cache.incr("vanishing")
    assert cache.get("vanishing") is None


def test_incr_result_too_large_for_the_byte_budget():
    cache = RustCache(location(), {"OPTIONS": {"MAX_BYTES": 2_000}})
    cache.set("s", "abc")
    with pytest.raises(ValueError, match="MAX_BYTES"):
        cache.incr("s", "x" * 5_000)
    cache.set("big", 10**30)
    with pytest.raises(ValueError, match="MAX_BYTES"):
        cache.incr("big", 10**5000)
    assert cache.get_many(["s", "big"]) == {"s": "abc", "big": 10**30}
    cache._native.check_invariants()
    cache.clear()


# Values.


def test_value_that_cannot_be_unpickled(cache):
    cache.set("bad", LoadFails())
    for op in (
        lambda: cache.get("bad"),
        lambda: cache.get_many(["kept", "bad"]),
        lambda: asyncio.run(cache.aget("bad")),
    ):
        with pytest.raises(LookupError):
            op()
    assert cache.has_key("bad")


def test_invalid_pickle_protocol_given_to_the_handle():
    native = _core.Cache(location(), **native_kwargs(pickle_protocol=99))
    with pytest.raises(ValueError, match="protocol"):
        native.set("k", [1], DEFAULT_TIMEOUT, None)
    native.set("n", 5, DEFAULT_TIMEOUT, None)  # native ints need no pickling
    assert native.get("n", None, None) == 5
    with pytest.raises(ValueError, match="protocol"):
        native.incr("n", 10**30, None)
    assert native.get("n", None, None) == 5
    native.check_invariants()


# The handle's extra calls (lock release, ttl, key listing).


def test_extra_native_calls_with_bad_keys_and_arguments(cache):
    native = cache._native
    for call in (
        lambda: native.delete_if_equal(RaisingStr(), "token", None),
        lambda: native.ttl(RaisingStr(), None),
        lambda: native.delete_if_equal("kept", "value", RaisingStr()),
        lambda: native.ttl("kept", RaisingStr()),
    ):
        with pytest.raises(RuntimeError, match="str failed"):
            call()
    for call in (
        lambda: native.delete_if_equal("kept", b"value", None),
        lambda: native.delete_if_equal("kept", None, None),
        lambda: native.live_keys(None),
        lambda: native.live_keys(b":1:"),
    ):
        with pytest.raises(TypeError):
            call()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        for call in (lambda: native.delete_if_equal("a b", "x", None), lambda: native.ttl("a b", None)):
            with pytest.raises(CacheKeyWarning):
                call()


@pytest.mark.parametrize(
    "call",
    [
        lambda n: n.delete_if_equal("kept", "value", None),
        lambda n: n.ttl("kept", None),
        lambda n: n.live_keys(""),
    ],
    ids=["delete_if_equal", "ttl", "live_keys"],
)
def test_extra_native_calls_with_a_failing_clock(cache, monkeypatch, call):
    monkeypatch.setattr(time, "time", _clock_raises)
    with pytest.raises(OSError, match="clock unavailable"):
        call(cache._native)
    monkeypatch.undo()


def test_live_keys_gives_back_odd_keys_as_python_spells_them(cache):
    odd = ["a\udcff", "ключ", "", "k" * 10_000]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        for key in odd:
            cache.set(key, 1)
    listed = set(cache._native.live_keys(":1:"))
    assert listed >= {f":1:{key}" for key in odd}
