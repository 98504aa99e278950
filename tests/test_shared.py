"""SharedCache in one process: the API, its options and its LOCATION checks. Across processes:
``test_shared_processes.py``; Django's own suite: ``test_django_suite.py``."""

import asyncio
import logging
import os
import stat
import time
import warnings
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import CacheKeyWarning
from django.core.exceptions import ImproperlyConfigured

from django_rustcache import RustCache, SharedCache


def shared(location, **options) -> SharedCache:
    return SharedCache(str(location), {"OPTIONS": options})


@pytest.fixture
def cache(tmp_path):
    return shared(tmp_path / "cache")


def test_the_location_is_created_private(tmp_path):
    location = tmp_path / "new" / "cache"
    cache = shared(location)
    cache.set("k", "v")
    assert stat.S_IMODE(os.stat(location).st_mode) == 0o700
    for name in ("data.mdb", "lock.mdb"):
        assert stat.S_IMODE(os.stat(location / name).st_mode) == 0o600


@pytest.mark.parametrize("location", ["relative/dir", "", None, 42])
def test_a_location_must_be_an_absolute_directory(location):
    with pytest.raises(ImproperlyConfigured, match="absolute"):
        SharedCache(location, {})


def test_a_location_writable_by_others_is_refused(tmp_path):
    location = tmp_path / "open"
    location.mkdir(mode=0o700)
    os.chmod(location, 0o777)
    with pytest.raises(ImproperlyConfigured, match="writable by group or others"):
        shared(location)
    os.chmod(location, 0o700)
    shared(location).set("k", 1)
    os.chmod(location / "data.mdb", 0o666)
    with pytest.raises(ImproperlyConfigured, match=r"data\.mdb.*writable by group or others"):
        shared(location)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_location_owned_by_someone_else_is_refused(tmp_path):
    location = tmp_path / "theirs"
    location.mkdir(mode=0o700)
    os.chown(location, 65534, 65534)
    with pytest.raises(ImproperlyConfigured, match="belongs to uid 65534"):
        shared(location)


def test_a_file_not_a_directory_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImproperlyConfigured, match="not a directory"):
        shared(tmp_path / "file")


@pytest.mark.parametrize("content", [b"\x00" * 65536, b"not an lmdb file at all" * 1000])
def test_a_foreign_or_damaged_file_is_a_clear_error(tmp_path, content):
    location = tmp_path / "foreign"
    location.mkdir(mode=0o700)
    (location / "data.mdb").write_bytes(content)
    os.chmod(location / "data.mdb", 0o600)
    with pytest.raises(ImproperlyConfigured, match="SharedCache LOCATION"):
        shared(location)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"EVICTION": "lru"}, "Unknown SharedCache OPTIONS"),
        ({"MAX_BYTES": 0}, "MAX_BYTES"),
        ({"MAP_SIZE": 10}, "MAP_SIZE"),
        ({"CLOCK": "sundial"}, "CLOCK"),
    ],
)
def test_options_are_validated(tmp_path, options, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        shared(tmp_path / "c", **options)


def test_max_bytes_sets_the_map_size_with_headroom(tmp_path):
    cache = shared(tmp_path / "c", MAX_BYTES=32 * 2**20)
    assert cache._native._environment()["map_size"] >= 64 * 2**20


def test_values_round_trip_exactly(cache):
    values = [
        0,
        -(2**63),
        2**63 - 1,
        2**200,
        "",
        "héllo",
        "lone \udc80 surrogate",
        b"\x00bytes",
        1.5,
        float("inf"),
        True,
        False,
        None,
        Decimal("1.10"),
        {"a": [1, (2, 3)]},
    ]
    for i, value in enumerate(values):
        cache.set(f"k{i}", value)
    for i, value in enumerate(values):
        got = cache.get(f"k{i}")
        assert got == value, (value, got)
        assert type(got) is type(value), (value, got)


def test_every_instance_of_a_location_shares_it_and_others_do_not(tmp_path):
    a, b, c = shared(tmp_path / "x"), shared(tmp_path / "x"), shared(tmp_path / "y")
    a.set("k", 1)
    assert b.get("k") == 1
    assert c.get("k") is None
    assert a._native._environment()["pid"] == os.getpid()


def test_incr_decr_keep_expiry_and_type(cache):
    cache.set("n", 1, timeout=100)
    assert cache.incr("n", 10) == 11
    assert cache.decr("n", 2) == 9
    cache.set("big", 2**63 - 1)
    assert cache.incr("big") == 2**63
    cache.set("f", 0.5)
    assert cache.incr("f", 0.25) == 0.75
    cache.set("d", Decimal("1.1"))
    assert cache.incr("d", Decimal("0.1")) == Decimal("1.2")
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    assert 99 < cache.ttl("n") <= 100


def test_expiry_follows_python_clock(cache):
    with time_machine.travel(1_900_000_000, tick=False) as traveller:
        cache.set("k", "v", timeout=10)
        traveller.shift(9.9)
        assert cache.get("k") == "v"
        traveller.shift(0.2)
        assert cache.get("k") is None
        assert not cache.has_key("k")


def test_add_touch_delete_and_many(cache):
    assert cache.add("k", 1)
    assert not cache.add("k", 2)
    assert cache.touch("k", 50)
    assert not cache.touch("missing")
    assert cache.set_many({"a": 1, "b": 2}) == []
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    cache.delete_many(["a", "b"])
    assert cache.get_many(["a", "b"]) == {}
    assert cache.delete("k")
    assert not cache.delete("k")
    assert cache.get_or_set("g", lambda: 7) == 7


def test_key_prefix_version_and_warnings(tmp_path):
    a = SharedCache(str(tmp_path / "c"), {"KEY_PREFIX": "p", "VERSION": 2})
    a.set("k", "v")
    assert a.get("k", version=2) == "v"
    assert a.get("k", version=1) is None
    assert a.keys("*") == ["k"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a.set("has space", 1)
    assert any(issubclass(w.category, CacheKeyWarning) for w in caught)


def test_long_keys(cache):
    key = "x" * 2000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        cache.set(key, 1)
        cache.set(key + "y", 2)
        assert cache.get(key) == 1
        assert cache.get(key + "y") == 2
        assert cache.delete(key)
        assert cache.get(key + "y") == 2


def test_extras(cache):
    cache.set("a1", 1, timeout=None)
    cache.set("a2", 2, timeout=30)
    cache.set("b1", 3)
    assert cache.ttl("a1") is None
    assert cache.persist("a2")
    assert cache.ttl("a2") is None
    assert cache.expire("a2", 5)
    assert 4 <= cache.ttl("a2") <= 5
    assert sorted(cache.keys("a*")) == ["a1", "a2"]
    assert sorted(cache.iter_keys("*1")) == ["a1", "b1"]
    assert cache.delete_pattern("a*") == 2
    assert cache.keys("*") == ["b1"]


def test_a_lock_is_never_culled(tmp_path):
    cache = shared(tmp_path / "c", MAX_ENTRIES=3)
    lock = cache.lock("job", timeout=60)
    assert lock.acquire(blocking=False)
    for i in range(20):
        cache.set(f"k{i}", i)
    assert lock.locked()
    assert lock.owned()
    lock.release()
    assert not lock.locked()
    assert cache.lock("job", timeout=1).acquire(blocking=False)
    cache.clear()
    assert not cache.lock("job").locked(), "clear() frees locks"


def test_a_refused_set_removes_the_old_value_and_is_counted(tmp_path, caplog):
    cache = shared(tmp_path / "c", MAX_BYTES=1000)
    cache.set("k", "small")
    with caplog.at_level(logging.WARNING, logger="django_rustcache"):
        cache.set("k", "x" * 5000)
    assert cache.get("k") is None
    assert cache.stats()["refused"] == 1
    assert "not stored" in caplog.text
    assert cache.set_many({"a": 1, "b": "y" * 5000}) == ["b"]


def test_limits_cull_like_locmem(tmp_path):
    cache = shared(tmp_path / "c", MAX_ENTRIES=30, CULL_FREQUENCY=3)
    for i in range(30):
        cache.set(i, i)
    cache.set("new", 1)
    assert cache.stats()["entries"] == 21
    zero = shared(tmp_path / "z", MAX_ENTRIES=10, CULL_FREQUENCY=0)
    for i in range(11):
        zero.set(i, i)
    assert zero.stats()["entries"] == 1


def test_stats_have_rustcache_shape(cache, tmp_path):
    cache.set("a", 1)
    cache.get("a")
    cache.get("zz")
    stats = cache.stats()
    assert set(stats) == set(RustCache("stats-shape", {}).stats())
    assert (stats["hits"], stats["misses"], stats["sets"], stats["entries"]) == (1, 1, 1, 1)


def test_async_twins_run_inline(cache):
    async def main():
        await cache.aset("k", 1)
        assert await cache.aget("k") == 1
        assert await cache.aincr("k") == 2
        assert await cache.aadd("k", 5) is False
        assert await cache.aget_many(["k"]) == {"k": 2}
        assert await cache.attl("k") is not None
        async with cache.alock("L", timeout=5):
            assert await cache.ahas_key("L")
        await cache.aclear()
        assert await cache.aget("k") is None

    asyncio.run(main())


def test_a_get_that_starts_after_a_set_returns_sees_it_at_once(cache):
    for i in range(200):
        cache.set("k", i)
        assert cache.get("k") == i
    started = time.perf_counter()
    cache.get("k")
    assert time.perf_counter() - started < 1
