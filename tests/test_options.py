"""RustCache's own OPTIONS are validated (a bad value or unknown key raises ImproperlyConfigured
naming it) and take effect; Django's settings keep BaseCache's lenient parsing."""

import pickle
import uuid

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_rustcache import RustCache


def new_location() -> str:
    return f"test-options-{uuid.uuid4().hex}"


def make(options=None, **params) -> RustCache:
    if options is not None:
        params["OPTIONS"] = options
    return RustCache(new_location(), params)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"PICKLE_PROTOCOL": "5"}, "PICKLE_PROTOCOL"),
        ({"PICKLE_PROTOCOL": 5.0}, "PICKLE_PROTOCOL"),
        ({"PICKLE_PROTOCOL": True}, "PICKLE_PROTOCOL"),
        ({"PICKLE_PROTOCOL": pickle.HIGHEST_PROTOCOL + 1}, "PICKLE_PROTOCOL"),
        ({"PICKLE_PROTOCOL": -2}, "PICKLE_PROTOCOL"),
        ({"MAX_BYTES": 0}, "MAX_BYTES"),
        ({"MAX_BYTES": -1}, "MAX_BYTES"),
        ({"MAX_BYTES": "1MB"}, "MAX_BYTES"),
        ({"MAX_BYTES": 1.5}, "MAX_BYTES"),
        ({"CLOCK": "monotonic"}, "CLOCK"),
        ({"CLOCK": None}, "CLOCK"),
        ({"EVICTION": "lfu"}, "EVICTION"),
        ({"EVICTION": "LRU"}, "EVICTION"),
        ({"NOT_AN_OPTION": 1}, "NOT_AN_OPTION"),
        ({"max_bytes": 10}, "max_bytes"),
    ],
)
def test_bad_option_raises_improperly_configured_naming_it(options, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        make(options)


@pytest.mark.parametrize(
    ("options", "value"),
    [
        ({"PICKLE_PROTOCOL": 99}, "99"),
        ({"MAX_BYTES": -5}, "-5"),
        ({"CLOCK": "monotonic"}, "monotonic"),
        ({"EVICTION": "lfu"}, "lfu"),
    ],
)
def test_bad_option_error_names_the_bad_value(options, value):
    with pytest.raises(ImproperlyConfigured, match=value):
        make(options)


def test_bad_option_raises_through_the_caches_handler():
    settings = {"default": {"BACKEND": "django_rustcache.RustCache", "OPTIONS": {"CLOCK": "sundial"}}}
    with override_settings(CACHES=settings), pytest.raises(ImproperlyConfigured, match="CLOCK"):
        caches.create_connection("default")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"PICKLE_PROTOCOL": None},
        {"PICKLE_PROTOCOL": 0},
        {"PICKLE_PROTOCOL": -1},
        {"PICKLE_PROTOCOL": pickle.HIGHEST_PROTOCOL},
        {"MAX_BYTES": None},
        {"MAX_BYTES": 1},
        {"CLOCK": "python"},
        {"CLOCK": "system"},
        {"EVICTION": "lru"},
        {"EVICTION": "adaptive"},
        {"MAX_ENTRIES": 10, "CULL_FREQUENCY": 2},
    ],
)
def test_good_options_are_accepted(options):
    cache = make(options)
    cache.set("k", [1])
    # A one-byte budget refuses every entry; anything else stores it.
    assert cache.get("k") == (None if options.get("MAX_BYTES") == 1 else [1])


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5, -1])
def test_pickle_protocol_round_trips(protocol):
    cache = make({"PICKLE_PROTOCOL": protocol})
    value = {"a": [1, 2.5, "x", b"y"], "b": (None, True)}
    cache.set("k", value)
    assert cache.get("k") == value
    assert cache.pickle_protocol == protocol


def test_default_pickle_protocol_is_locmems():
    assert make().pickle_protocol == LocMemCache.pickle_protocol == pickle.HIGHEST_PROTOCOL


def test_pickle_protocol_changes_the_stored_form():
    value = ["a" * 10, 2**70, ("nested", 1.5)] * 3
    sizes = {}
    for protocol in (0, 2, 5):
        cache = make({"PICKLE_PROTOCOL": protocol})
        cache.set("k", value)
        sizes[protocol] = cache.stats()["bytes"]
    assert len({len(pickle.dumps(value, p)) for p in sizes}) == 3, "pick a value whose pickles differ"
    for p in (0, 2):
        assert sizes[p] - sizes[5] == len(pickle.dumps(value, p)) - len(pickle.dumps(value, 5))


def test_max_bytes_refuses_a_value_larger_than_the_budget():
    cache = make({"MAX_BYTES": 1000})
    cache.set("k", "small")
    cache.set("k", "x" * 5000)
    assert cache.get("k") is None, "refused: the old value is removed"
    assert cache.set_many({"big": "x" * 5000, "ok": "y"}) == ["big"]
    assert cache.get_many(["big", "ok"]) == {"ok": "y"}
    assert cache.stats()["bytes"] <= 1000


def test_max_bytes_evicts_least_recently_used_entries():
    cache = make({"MAX_BYTES": 2000})
    keys = [f"k{i}" for i in range(20)]
    for key in keys:
        cache.set(key, "x" * 200)
        cache.get(keys[0])
    stats = cache.stats()
    assert stats["bytes"] <= 2000
    assert stats["evictions"] > 0
    assert cache.has_key(keys[0])
    assert cache.has_key(keys[-1])
    assert not cache.has_key(keys[1])


@pytest.mark.parametrize(
    ("options", "attribute", "expected"),
    [
        ({"MAX_ENTRIES": "abc"}, "_max_entries", 300),
        ({"MAX_ENTRIES": None}, "_max_entries", 300),
        ({"MAX_ENTRIES": "25"}, "_max_entries", 25),
        ({"MAX_ENTRIES": 7.9}, "_max_entries", 7),
        ({"CULL_FREQUENCY": "x"}, "_cull_frequency", 3),
        ({"CULL_FREQUENCY": [2]}, "_cull_frequency", 3),
        ({"CULL_FREQUENCY": "0"}, "_cull_frequency", 0),
    ],
)
def test_django_options_keep_lenient_parsing(options, attribute, expected):
    rust, locmem = make(options), LocMemCache(new_location(), {"OPTIONS": options})
    assert getattr(rust, attribute) == getattr(locmem, attribute) == expected
    stats_key = attribute.lstrip("_")
    assert rust.stats()[stats_key] == expected


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [("abc", 300), ("60", 60), (12.7, 12), (None, None), ([1], 300), (0, 0), (-4, -4)],
)
def test_timeout_setting_keeps_lenient_parsing(timeout, expected):
    params = {"TIMEOUT": timeout}
    rust, locmem = RustCache(new_location(), params), LocMemCache(new_location(), params)
    assert rust.default_timeout == locmem.default_timeout == expected


def test_lowercase_params_are_accepted_as_by_basecache():
    params = {"timeout": 5, "max_entries": 4, "cull_frequency": 2}
    rust, locmem = RustCache(new_location(), params), LocMemCache(new_location(), params)
    assert (rust.default_timeout, rust._max_entries, rust._cull_frequency) == (
        locmem.default_timeout,
        locmem._max_entries,
        locmem._cull_frequency,
    )


def test_leniently_parsed_max_entries_takes_effect():
    options = {"MAX_ENTRIES": "5", "CULL_FREQUENCY": "0"}
    location = new_location()
    rust, locmem = RustCache(location, {"OPTIONS": options}), LocMemCache(location, {"OPTIONS": options})
    for c in (rust, locmem):
        for i in range(8):
            c.set(i, i)
    assert rust.stats()["entries"] == len(locmem._cache)
    assert {i for i in range(8) if rust.has_key(i)} == {i for i in range(8) if locmem.has_key(i)}


def test_options_are_per_instance_while_data_is_per_location():
    location = new_location()
    small = RustCache(location, {"OPTIONS": {"MAX_ENTRIES": 2, "CULL_FREQUENCY": 0}})
    large = RustCache(location, {})
    for i in range(5):
        large.set(i, i)
    assert large.stats()["entries"] == 5
    small.set("x", 1)  # the writer's limits apply: full, so cull everything first
    assert small.stats()["entries"] == large.stats()["entries"] == 1
    assert (small.stats()["max_entries"], large.stats()["max_entries"]) == (2, 300)
