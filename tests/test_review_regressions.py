"""Regressions from an adversarial review against LocMemCache: each test pins a fixed discrepancy."""

import threading
import uuid
from decimal import Decimal
from unittest import mock

import pytest
from django.core.cache.backends.base import CacheKeyWarning, default_key_func
from django.core.cache.backends.locmem import LocMemCache

from django_rustcache import RustCache


def pair(params=None):
    location = f"review-{uuid.uuid4()}"
    return RustCache(location, dict(params or {})), LocMemCache(location, dict(params or {}))


def same_key_func(key, key_prefix, version):
    return f"{key_prefix}:{version}:{key}"


def test_reads_never_mix_python_made_keys_with_a_native_handle_during_a_rebuild():
    cache, _ = pair()
    cache.set("k", "v")
    stop = threading.Event()
    misses = []

    def reader():
        while not stop.is_set():
            if cache.get("k") != "v":
                misses.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(2000):
            cache.key_func = same_key_func
            cache.key_func = default_key_func
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert misses == []


def test_instance_settings_can_be_patched_deleted_and_probed():
    cache, _ = pair({"OPTIONS": {"MAX_ENTRIES": 5}})
    with mock.patch.object(cache, "_max_entries", 1):
        assert cache._max_entries == 1
    assert cache._max_entries == 5
    for i in range(10):
        cache.set(i, i)
    assert cache.stats()["max_entries"] == 5
    del cache._max_entries
    with pytest.raises(AttributeError):
        del cache._max_entries
    assert hasattr(RustCache.__new__(RustCache), "version") is False


def test_a_refused_setting_keeps_the_old_one_and_later_settings_still_work():
    cache, _ = pair()
    with pytest.raises(ZeroDivisionError):
        cache.version = type("Unprintable", (), {"__str__": lambda self: 1 / 0})()
    assert cache.version == 1
    cache.default_timeout = 60
    cache.set("k", "v")
    assert cache.get("k") == "v"


def test_fractional_and_huge_limits_behave_as_in_locmem():
    rust, locmem = pair()
    for cache in (rust, locmem):
        cache._max_entries = 2.5
        for i in range(6):
            cache.set(i, i)
    assert sorted(k for k in range(6) if rust.has_key(k)) == sorted(k for k in range(6) if locmem.has_key(k))


@pytest.mark.parametrize("location", [None, ("a", 1), 7, "\ud800", "None"])
def test_any_location_value_works_and_stays_distinct(location):
    marker = str(uuid.uuid4())
    cache = RustCache(location, {})
    cache.set("k", marker)
    assert cache.get("k") == marker
    assert RustCache(location, {}).get("k") == marker, "the same LOCATION value shares the store"
    other = "None" if location is None else None
    assert RustCache(other, {}).get("k") != marker, "a different LOCATION value does not"


def test_subclass_overrides_are_seen_by_the_many_methods():
    calls = []

    class Logged(RustCache):
        def get(self, key, default=None, version=None):
            calls.append(("get", key))
            return super().get(key, default, version)

        def set(self, key, value, timeout=None, version=None):
            calls.append(("set", key))
            return super().set(key, value, timeout, version)

        def delete(self, key, version=None):
            calls.append(("delete", key))
            return super().delete(key, version)

    cache = Logged(f"review-{uuid.uuid4()}", {})
    cache.set_many({"a": 1})
    assert cache.get_many(["a"]) == {"a": 1}
    cache.delete_many(["a"])
    assert calls == [("set", "a"), ("get", "a"), ("delete", "a")]


class OverridingDict(dict):
    def __getitem__(self, key):
        return "override"


def test_custom_key_function_many_methods_use_items_and_keep_every_user_key():
    params = {"KEY_FUNCTION": same_key_func}
    rust, locmem = pair(params)
    for cache in (rust, locmem):
        cache.set_many(OverridingDict(a=7))
        cache.set(1, "one")
    assert rust.get("a") == locmem.get("a") == 7
    assert rust.get_many([1, "1"]) == locmem.get_many([1, "1"]) == {1: "one", "1": "one"}


class ListItems:
    def items(self):
        return [["a", 1], ["b", 2]]


@pytest.mark.parametrize("params", [{}, {"KEY_FUNCTION": same_key_func}])
def test_set_many_unpacks_any_two_item_sequence(params):
    rust, locmem = pair(params)
    for cache in (rust, locmem):
        assert cache.set_many(ListItems()) == []
    assert rust.get_many(["a", "b"]) == locmem.get_many(["a", "b"]) == {"a": 1, "b": 2}


@pytest.mark.parametrize("timeout", ["5", [1], 10**400])
def test_add_on_a_present_key_ignores_a_bad_timeout_as_locmem(timeout):
    rust, locmem = pair()
    for cache in (rust, locmem):
        cache.set("k", "old")
        assert cache.add("k", "new", timeout) is False
        assert cache.get("k") == "old"
        assert cache.set_many({}, timeout=timeout) == []


def test_decimal_zero_timeout_means_not_cached():
    rust, locmem = pair()
    for cache in (rust, locmem):
        cache.set("k", "v", timeout=Decimal(0))
        assert cache.get("k") is None
        assert cache.add("k", "v", timeout=Decimal(0)) is True
        assert cache.get("k") is None


def test_a_pickle_protocol_of_none_means_the_default_protocol():
    class NoneProtocol(RustCache):
        pickle_protocol = None

    cache = NoneProtocol(f"review-{uuid.uuid4()}", {})
    cache.set("k", {"a": [1]})
    assert cache.get("k") == {"a": [1]}


def test_get_is_the_handles_own_method_only_while_the_handle_makes_the_keys():
    cache, _ = pair()
    assert cache.get == cache._native.direct_get, "default keys: get goes straight to the handle"
    cache.key_func = same_key_func
    assert cache.get.__func__ is RustCache.get, "a custom key function: keys are made in Python"
    cache.set("k", "v")
    assert cache.get("k") == "v"
    assert cache.get("missing", "d") == "d"
    assert cache.get("k", version=2) is None
    cache.key_func = default_key_func
    assert cache.get == cache._native.direct_get, "back to default keys: bound to the new handle"
    assert cache.get("k") == "v"
    assert cache.get(key="k", default=None, version=None) == "v"

    class Subclass(RustCache):
        def get(self, key, default=None, version=None):
            return ("mine", super().get(key, default, version))

    sub = Subclass(f"review-{uuid.uuid4()}", {})
    sub.set("k", "v")
    assert sub.get("k") == ("mine", "v"), "a subclass's own get is never shadowed"


def test_key_warnings_point_at_the_callers_line():
    cache, _ = pair()

    class Subclass(RustCache):
        def get(self, key, default=None, version=None):
            return super().get(key, default, version)

    sub = Subclass(f"review-{uuid.uuid4()}", {})
    calls = {
        "get (bound to the handle)": "cache.get('a b')",
        "set": "cache.set('a b', 1)",
        "has_key": "cache.has_key('a b')",
        "a subclass's get through super()": "sub.get('a b')",
    }
    for name, source in calls.items():
        # The call's own frame has a file name of its own: a warning attributed one frame too far
        # (this test) or too near (the backend) is told apart.
        code = compile(source, "user_code.py", "exec")
        with pytest.warns(CacheKeyWarning, match="memcached") as record:
            exec(code, {"cache": cache, "sub": sub})
        files = {w.filename for w in record}
        expected = {__file__} if name.startswith("a subclass") else {"user_code.py"}
        assert files == expected, f"{name}: {files}"
