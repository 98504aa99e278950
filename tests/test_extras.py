"""The django-redis extras: ttl, expire, persist, keys, iter_keys, delete_pattern, and time travel."""

import asyncio
import datetime
import fnmatch
import re
import time

import pytest
import time_machine
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from django_rustcache import RustCache
from django_rustcache.extras import _compile_glob

START = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


def make_cache(location: str, **params) -> RustCache:
    backend = RustCache(location, params)
    backend.clear()
    return backend


def upper_key(key, key_prefix, version):
    return f"{key_prefix}|{version}|{key}".upper()


def reverse_upper_key(full):
    return full.split("|", 2)[2]


# -- ttl and friends ---------------------------------------------------------------------------------


def test_ttl_as_django_redis(cache):
    with time_machine.travel(START, tick=False) as traveller:
        cache.set("timed", 1, 10)
        cache.set("forever", 1, None)
        assert cache.ttl("timed") == 10
        assert cache.ttl("forever") is None
        assert cache.ttl("missing") == 0
        traveller.shift(3.4)
        assert cache.ttl("timed") == 7  # 6.6 s left: Redis rounds to the nearest second
        assert cache.pttl("timed") == 6600
        assert cache.pttl("forever") is None
        assert cache.pttl("missing") == 0
        traveller.shift(7)
        assert cache.ttl("timed") == 0
        assert not cache.has_key("timed")


def test_ttl_respects_version(cache):
    cache.set("k", 1, 100, version=2)
    assert cache.ttl("k") == 0
    assert cache.ttl("k", version=2) == 100


def test_expire_and_persist(cache):
    with time_machine.travel(START, tick=False) as traveller:
        cache.set("k", "v", None)
        assert cache.persist("k") is False  # no expiry to remove, as Redis's PERSIST
        assert cache.expire("k", 30) is True
        assert cache.ttl("k") == 30
        assert cache.expire("k", datetime.timedelta(minutes=2)) is True
        assert cache.ttl("k") == 120
        assert cache.pexpire("k", 1500) is True
        assert cache.pttl("k") == 1500
        assert cache.persist("k") is True
        assert cache.ttl("k") is None
        traveller.shift(10_000)
        assert cache.get("k") == "v"
        assert cache.expire("missing", 30) is False
        assert cache.persist("missing") is False
        assert cache.expire("k", 0) is True
        assert cache.get("k") is None


def test_expire_at(cache):
    with time_machine.travel(START, tick=False):
        cache.set("k", "v")
        assert cache.expire_at("k", START + datetime.timedelta(seconds=50)) is True
        assert cache.ttl("k") == 50
        assert cache.expire_at("k", START.timestamp() + 20) is True
        assert cache.ttl("k") == 20
        assert cache.pexpire_at("k", START.timestamp() * 1000 + 2500) is True
        assert cache.pttl("k") == 2500


def test_expire_without_timeout_is_an_error(cache):
    cache.set("k", "v")
    with pytest.raises(TypeError, match="persist"):
        cache.expire("k", None)


# -- keys, iter_keys, delete_pattern ---------------------------------------------------------------


def test_keys_returns_the_users_keys_of_this_prefix_and_version():
    backend = make_cache("tests-extras-keys", KEY_PREFIX="site")
    other_prefix = RustCache("tests-extras-keys", {"KEY_PREFIX": "other"})
    backend.set_many({"user:1": 1, "user:2": 2, "post:1": 3})
    backend.set("user:3", 4, version=2)
    other_prefix.set("user:9", 5)
    assert sorted(backend.keys("user:*")) == ["user:1", "user:2"]
    assert sorted(backend.keys("*")) == ["post:1", "user:1", "user:2"]
    assert backend.keys("user:*", version=2) == ["user:3"]
    assert other_prefix.keys("*") == ["user:9"]
    assert sorted(backend.iter_keys("user:?")) == ["user:1", "user:2"]
    assert backend.keys("nothing*") == []


def test_keys_skips_expired_entries(cache):
    with time_machine.travel(START, tick=False) as traveller:
        cache.set("short", 1, 5)
        cache.set("long", 1, 50)
        traveller.shift(10)
        assert cache.keys("*") == ["long"]


def test_prefix_with_glob_characters_is_literal():
    starry = make_cache("tests-extras-starry", KEY_PREFIX="a*[b]?")
    plain = RustCache("tests-extras-starry", {"KEY_PREFIX": "aXbY"})
    starry.set("k", 1)
    plain.set("j", 1)
    assert starry.keys("*") == ["k"]
    assert starry.delete_pattern("*") == 1
    assert plain.keys("*") == ["j"]


def test_iter_keys_is_lazy_and_safe_to_delete_while_iterating(cache):
    cache.set_many({f"k{i}": i for i in range(20)})
    keys = cache.iter_keys("k*")
    cache.set("k99", 99)  # gathered when iteration starts, not when called
    seen = []
    for key in keys:
        cache.delete(key)
        seen.append(key)
    assert len(seen) == 21
    assert cache.keys("*") == []


def test_delete_pattern_counts_what_it_deleted(cache):
    cache.set_many({"session:a": 1, "session:b": 2, "sessions": 3, "other": 4})
    cache.set("session:c", 5, version=2)
    assert cache.delete_pattern("session:*") == 2
    assert sorted(cache.keys("*")) == ["other", "sessions"]
    assert cache.keys("*", version=2) == ["session:c"]
    assert cache.delete_pattern("session:*", version=2) == 1
    assert cache.delete_pattern("nothing*") == 0
    assert cache.delete_pattern("other", itersize=100) == 1


def test_custom_key_function_needs_a_reverse_function():
    backend = make_cache("tests-extras-custom", KEY_FUNCTION=upper_key)
    backend.set("k", 1)
    with pytest.raises(ImproperlyConfigured, match="REVERSE_KEY_FUNCTION"):
        backend.keys("*")
    with pytest.raises(ImproperlyConfigured, match="REVERSE_KEY_FUNCTION"):
        backend.delete_pattern("*")


@pytest.mark.parametrize("reverse", [reverse_upper_key, "tests.test_extras.reverse_upper_key"])
def test_reverse_key_function_as_django_redis(reverse):
    backend = make_cache("tests-extras-reverse", KEY_FUNCTION=upper_key, REVERSE_KEY_FUNCTION=reverse)
    backend.set_many({"ab": 1, "ac": 2, "b": 3})
    backend.set("ad", 4, version=3)
    assert sorted(backend.keys("A*")) == ["AB", "AC"]  # keys as the key function left them
    assert backend.delete_pattern("A?") == 2
    assert backend.keys("*") == ["B"]
    assert backend.keys("*", version=3) == ["AD"]


def test_validate_key_override_keeps_the_default_layout():
    class Strict(RustCache):
        def validate_key(self, key):
            BaseCache.validate_key(self, key)

    backend = Strict("tests-extras-strict", {})
    backend.clear()
    backend.set_many({"x1": 1, "x2": 2, "y": 3})
    assert sorted(backend.keys("x*")) == ["x1", "x2"]
    assert backend.delete_pattern("x*") == 2
    assert backend.keys("*") == ["y"]


# -- Redis's glob ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("h?llo", "hello", True),
        ("h?llo", "hllo", False),
        ("h*llo", "heeeello", True),
        ("h*llo", "hllo", True),
        ("h[ae]llo", "hallo", True),
        ("h[ae]llo", "hillo", False),
        ("h[^e]llo", "hallo", True),
        ("h[^e]llo", "hello", False),
        ("h[!e]llo", "h!llo", True),  # Redis negates with ^ only; fnmatch would negate here
        ("h[!e]llo", "hallo", False),
        ("h[a-b]llo", "hbllo", True),
        ("h[b-a]llo", "hbllo", True),  # a reversed range is swapped, as Redis does
        ("h[a-b]llo", "hcllo", False),
        ("h\\*llo", "h*llo", True),
        ("h\\*llo", "hello", False),
        ("h[\\]]llo", "h]llo", True),
        ("*", "", True),
        ("*", "a:b\nc", True),
        ("a.b", "aXb", False),  # regex characters are literal
        ("a(b)+", "a(b)+", True),
        ("h[]x", "hx", False),  # an empty class matches nothing, as Redis
        ("h[ab", "ha", True),  # an open class runs to the end, as Redis
        ("x\\", "x\\", True),  # a trailing backslash is literal
        ("USER:*", "user:1", False),  # case-sensitive
    ],
)
def test_redis_glob(pattern, key, matches):
    assert bool(_compile_glob(pattern).fullmatch(key)) is matches


@given(
    st.text(alphabet="ab*?:", max_size=8),
    st.text(alphabet="ab:", max_size=8),
)
def test_redis_glob_agrees_with_fnmatch_without_classes(pattern, key):
    assert bool(_compile_glob(pattern).fullmatch(key)) is fnmatch.fnmatchcase(key, pattern)


def test_glob_never_raises_on_odd_patterns():
    for pattern in ["[", "[^", "\\", "[a-", "[-]", "***", "(", "[[]"]:
        assert isinstance(_compile_glob(pattern), re.Pattern)


# -- async twins -------------------------------------------------------------------------------------


def test_async_twins(cache):
    async def scenario():
        await cache.aset("a:1", 1, 100)
        await cache.aset("a:2", 2, None)
        assert await cache.attl("a:1") == 100
        assert await cache.apttl("a:2") is None
        assert await cache.aexpire("a:2", 50) is True
        assert await cache.apexpire("a:2", 40_000) is True
        assert await cache.aexpire_at("a:2", datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)) is True  # past: gone
        assert await cache.apexpire_at("a:1", (time.time() + 1000) * 1000) is True
        assert await cache.apersist("a:1") is True
        assert await cache.akeys("a:*") == ["a:1"]
        assert [key async for key in cache.aiter_keys("a:*")] == ["a:1"]
        assert await cache.adelete_pattern("a:*") == 1
        assert await cache.akeys("*") == []

    asyncio.run(scenario())


# -- time travel -------------------------------------------------------------------------------------


def test_time_machine_moves_the_default_clock(cache):
    """OPTIONS["CLOCK"] = "python" (the default) reads time.time(): a test that moves Python's clock sees
    entries expire as it would with LocMemCache."""
    with time_machine.travel(START, tick=False) as traveller:
        cache.set("k", "v", 60)
        cache.set("forever", "v", None)
        traveller.shift(59)
        assert cache.get("k") == "v"
        assert cache.ttl("k") == 1
        traveller.shift(2)
        assert cache.get("k") is None
        assert cache.has_key("forever")
        assert cache.keys("*") == ["forever"]


def test_system_clock_ignores_time_machine():
    backend = make_cache("tests-extras-system-clock", OPTIONS={"CLOCK": "system"})
    with time_machine.travel(START, tick=False) as traveller:
        backend.set("k", "v", 60)
        traveller.shift(3600)
        assert backend.get("k") == "v"
        assert 0 < backend.ttl("k") <= 60
