"""EVICTION="adaptive", stats() and the Rust-side log records (issue: bounded, observable memory)."""

import logging
import pickle
import uuid
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from django_rustcache import RustCache
from django_rustcache._core import ENTRY_OVERHEAD


def make(**options):
    return RustCache(f"obs-{uuid.uuid4()}", {"TIMEOUT": None, "OPTIONS": options})


def test_adaptive_eviction_holds_exactly_max_entries():
    cache = make(MAX_ENTRIES=100, EVICTION="adaptive")
    for i in range(1000):
        cache.set(f"k{i}", i)
        assert cache.stats()["entries"] <= 100
    assert cache.stats()["entries"] == 100
    assert cache.stats()["evictions"] == 900
    cache._native.check_invariants()


def test_adaptive_eviction_resists_a_scan():
    cache = make(MAX_ENTRIES=100, EVICTION="adaptive")
    hot = [f"hot{i}" for i in range(50)]
    for round_ in range(20):
        for key in hot:
            if cache.get(key) is None:
                cache.set(key, 1)
        cache.set_many({f"scan{round_}-{i}": 0 for i in range(200)})
    assert sum(cache.has_key(key) for key in hot) >= 45


def test_aliases_sharing_a_location_must_agree_on_eviction():
    location = f"obs-{uuid.uuid4()}"
    RustCache(location, {"OPTIONS": {"EVICTION": "adaptive"}}).set("k", 1)
    # Building the conflicting alias succeeds (Django's checks build every alias); using it raises.
    other = RustCache(location, {"OPTIONS": {"EVICTION": "lru"}})
    for use in (
        lambda: other.get("k"),
        lambda: other.set("k", 2),
        other.stats,
        lambda: other.lock("l").acquire(blocking=False),
    ):
        with pytest.raises(ImproperlyConfigured, match="EVICTION"):
            use()


def test_stats_count_what_happened():
    cache = make()
    cache.set("a", "xyz")
    cache.get("a")
    cache.get("missing")
    cache.delete("a")
    stats = cache.stats()
    assert {k: stats[k] for k in ("hits", "misses", "sets", "deletes", "entries", "bytes")} == {
        "hits": 1,
        "misses": 1,
        "sets": 1,
        "deletes": 1,
        "entries": 0,
        "bytes": 0,
    }
    cache.set("bb", 7)
    assert cache.stats()["bytes"] == len(":1:bb") + 8 + ENTRY_OVERHEAD


def test_byte_budget_is_never_exceeded_and_refusals_are_logged(caplog):
    budget = 10 * (len(":1:k00") + 100 + ENTRY_OVERHEAD)
    cache = make(MAX_BYTES=budget)
    with caplog.at_level(logging.DEBUG, logger="django_rustcache"):
        for i in range(50):
            cache.set(f"k{i:02}", "x" * 100)
            assert cache.stats()["bytes"] <= budget
        cache.set("k49", "y" * budget)
    assert cache.get("k49") is None, "a refused value removes the old one: nobody reads what was replaced"
    assert cache.stats()["entries"] == 9
    assert cache.stats()["refused"] == 1
    refusals = [r for r in caplog.records if r.levelno == logging.WARNING and "MAX_BYTES" in r.getMessage()]
    assert [r.name for r in refusals] == ["django_rustcache.store"]
    assert "old value was removed" in refusals[0].getMessage()


def test_bulk_culls_are_logged_at_once_and_single_evictions_as_a_summary(caplog):
    culling = make(MAX_ENTRIES=60, CULL_FREQUENCY=3)
    one_at_a_time = make(MAX_ENTRIES=10, EVICTION="adaptive")
    with caplog.at_level(logging.DEBUG, logger="django_rustcache"):
        for i in range(61):
            culling.set(i, i)  # the 61st write culls 60 // 3 = 20 entries in one go
        for i in range(10 + 1023):
            one_at_a_time.set(i, i)  # 1,023 evictions: not yet a summary
        quiet = [r.getMessage() for r in caplog.records if "one at a time" in r.getMessage()]
        one_at_a_time.set("one-more", 1)
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("django_rustcache.store", logging.DEBUG, "culled 20 entries to make room") in messages
    assert quiet == []
    summaries = [m for _, _, m in messages if "one at a time" in m]
    assert len(summaries) == 1
    assert summaries[0].startswith("evicted ")
    assert int(summaries[0].split()[1]) >= 1024


def test_log_level_changes_take_effect_at_run_time(caplog):
    cache = make(MAX_ENTRIES=48, CULL_FREQUENCY=3)  # every 17th write culls 16 entries: a bulk cull
    logger = logging.getLogger("django_rustcache.store")
    with caplog.at_level(logging.WARNING, logger="django_rustcache"):
        for i in range(100):
            cache.set(i, i)
    assert not [r for r in caplog.records if "culled" in r.getMessage()], "culls are quiet at WARNING"
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="django_rustcache"):
        assert logger.isEnabledFor(logging.DEBUG)
        for i in range(100, 200):
            cache.set(i, i)
    assert [r for r in caplog.records if "culled" in r.getMessage()]


def _charge(made_key: str, weight: int) -> int:
    """The documented byte accounting: key + value weight + ENTRY_OVERHEAD."""
    return len(made_key.encode()) + weight + ENTRY_OVERHEAD


def test_byte_accounting_is_exact_through_set_overwrite_incr_delete_and_expiry():
    cache = make(MAX_ENTRIES=10_000)
    with time_machine.travel(datetime(2031, 1, 1, tzinfo=UTC), tick=False) as clock:
        cache.set("s", "héllo", timeout=10)  # exact str: its UTF-8 length
        cache.set("b", b"12345", timeout=None)  # exact bytes: its length
        cache.set("n", 41, timeout=None)  # native int: 8
        cache.set("d", {"x": [1, 2]}, timeout=None)  # anything else: the pickle's length
        pickled = len(pickle.dumps({"x": [1, 2]}, pickle.HIGHEST_PROTOCOL))
        expected = _charge(":1:s", 6) + _charge(":1:b", 5) + _charge(":1:n", 8) + _charge(":1:d", pickled)
        assert cache.stats()["bytes"] == expected

        # float: 8; bool and None: nothing beyond their kind; a lone surrogate: the 3 bytes of surrogatepass.
        scalars = {"f": (2.5, 8), "t": (True, 0), "no": (False, 0), "z": (None, 0), "u": ("a\udcff", 4)}
        for key, (value, weight) in scalars.items():
            before = cache.stats()["bytes"]
            cache.set(key, value, timeout=None)
            assert cache.stats()["bytes"] - before == _charge(f":1:{key}", weight), key
            assert cache.get(key) == value
            assert type(cache.get(key)) is type(value)
            assert cache.delete(key)
        assert cache.stats()["bytes"] == expected

        cache.set("b", b"1", timeout=None)  # overwrite: 4 bytes fewer
        expected -= 4
        assert cache.stats()["bytes"] == expected
        assert cache.incr("n", 10**6) == 10**6 + 41  # incr: same weight
        assert cache.stats()["bytes"] == expected
        assert cache.incr("n", 2**70) == 2**70 + 10**6 + 41  # past 64 bits: pickled now
        expected += len(pickle.dumps(2**70 + 10**6 + 41, pickle.HIGHEST_PROTOCOL)) - 8
        assert cache.stats()["bytes"] == expected
        assert cache.delete("d")
        expected -= _charge(":1:d", pickled)
        assert cache.stats()["bytes"] == expected

        clock.shift(11)  # "s" expires; a read meets it and reclaims it
        assert cache.get("s") is None
        expected -= _charge(":1:s", 6)
        stats = cache.stats()
        assert (stats["bytes"], stats["entries"], stats["expirations"]) == (expected, 2, 1)
        cache.clear()
        assert cache.stats()["bytes"] == 0
