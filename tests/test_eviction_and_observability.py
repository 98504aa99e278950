"""EVICTION="adaptive", stats() and the Rust-side log records (issue: bounded, observable memory)."""

import logging
import uuid

import pytest
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
    RustCache(location, {"OPTIONS": {"EVICTION": "adaptive"}})
    with pytest.raises(ImproperlyConfigured, match="EVICTION"):
        RustCache(location, {"OPTIONS": {"EVICTION": "lru"}})


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
    assert cache.get("k49") == "x" * 100, "a refused value leaves the old one"
    assert cache.stats()["entries"] == 10
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert any(
        name == "django_rustcache.store" and level == logging.DEBUG and "evicted" in msg
        for name, level, msg in messages
    )
    assert any(level == logging.WARNING and "MAX_BYTES" in msg for _, level, msg in messages)


def test_log_level_changes_take_effect_at_run_time(caplog):
    cache = make(MAX_ENTRIES=3, CULL_FREQUENCY=3)
    logger = logging.getLogger("django_rustcache.store")
    with caplog.at_level(logging.WARNING, logger="django_rustcache"):
        for i in range(10):
            cache.set(i, i)
    assert not [r for r in caplog.records if "evicted" in r.getMessage()], "culls are quiet at WARNING"
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="django_rustcache"):
        assert logger.isEnabledFor(logging.DEBUG)
        for i in range(10, 20):
            cache.set(i, i)
    assert [r for r in caplog.records if "evicted" in r.getMessage()]
