"""The optional django_rustcache app: its system checks and the rustcache_stats command."""

import json
from io import StringIO

import pytest
from django.core import checks
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from django_rustcache.checks import check_caches

RUST = "django_rustcache.RustCache"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
WITH_APP = ["django.contrib.contenttypes", "django.contrib.auth", "django_rustcache"]


def ids(messages):
    return sorted(message.id for message in messages)


def run(caches_setting, debug=False):
    with override_settings(CACHES=caches_setting, DEBUG=debug):
        return check_caches()


def test_default_max_entries_warns_outside_debug():
    setting = {"default": {"BACKEND": RUST, "LOCATION": "a"}}
    assert ids(run(setting)) == ["django_rustcache.W001"]
    assert run(setting, debug=True) == []
    [warning] = run(setting)
    assert "'default'" in warning.msg
    assert warning.level == checks.WARNING


@pytest.mark.parametrize(
    "params",
    [{"OPTIONS": {"MAX_ENTRIES": 300}}, {"OPTIONS": {"MAX_ENTRIES": 100_000}}, {"max_entries": 5000}],
)
def test_explicit_max_entries_is_quiet(params):
    assert run({"default": {"BACKEND": RUST, "LOCATION": "a", **params}}) == []


def test_other_backends_are_ignored():
    assert run({"default": {"BACKEND": LOCMEM}, "other": {"BACKEND": "no.such.Backend"}}) == []


def test_subclasses_are_checked():
    assert ids(run({"default": {"BACKEND": "django_rustcache.backend.RustCache", "LOCATION": "a"}})) == [
        "django_rustcache.W001"
    ]


def test_bad_options_are_an_error():
    setting = {"default": {"BACKEND": RUST, "LOCATION": "a", "OPTIONS": {"MAX_ENTRIES": 10, "CLOCK": "sundial"}}}
    [error] = run(setting)
    assert error.id == "django_rustcache.E001"
    assert "CLOCK" in error.msg
    assert error.level == checks.ERROR


def test_shared_location_with_different_limits():
    setting = {
        "default": {"BACKEND": RUST, "LOCATION": "shared", "OPTIONS": {"MAX_ENTRIES": 1000}},
        "small": {"BACKEND": RUST, "LOCATION": "shared", "OPTIONS": {"MAX_ENTRIES": 10}},
        "alone": {"BACKEND": RUST, "LOCATION": "own", "OPTIONS": {"MAX_ENTRIES": 10}},
    }
    [warning] = run(setting)
    assert warning.id == "django_rustcache.W002"
    assert "'default', 'small'" in warning.msg
    assert "alone" not in warning.msg


def test_shared_location_with_equal_limits_is_quiet():
    options = {"MAX_ENTRIES": 1000, "CULL_FREQUENCY": 4, "MAX_BYTES": 1 << 20}
    setting = {
        "default": {"BACKEND": RUST, "LOCATION": "shared", "OPTIONS": options},
        "other": {"BACKEND": RUST, "LOCATION": "shared", "KEY_PREFIX": "o", "OPTIONS": dict(options)},
    }
    assert run(setting) == []


def test_aliases_without_location_share_one_store():
    setting = {
        "default": {"BACKEND": RUST, "OPTIONS": {"MAX_ENTRIES": 1000}},
        "sessions": {"BACKEND": RUST, "OPTIONS": {"MAX_ENTRIES": 1000}},
    }
    assert ids(run(setting)) == ["django_rustcache.W003"]


def test_the_app_registers_the_checks():
    setting = {"default": {"BACKEND": RUST, "LOCATION": "a"}}
    with override_settings(INSTALLED_APPS=WITH_APP, CACHES=setting, DEBUG=False):
        messages = checks.run_checks(tags=[checks.Tags.caches])
    assert "django_rustcache.W001" in ids(messages)


# -- rustcache_stats ---------------------------------------------------------------------------------

STATS_CACHES = {
    "default": {"BACKEND": RUST, "LOCATION": "tests-stats-a", "OPTIONS": {"MAX_ENTRIES": 50}},
    "second": {"BACKEND": RUST, "LOCATION": "tests-stats-b"},
    "locmem": {"BACKEND": LOCMEM},
}


@pytest.fixture
def stats_caches():
    with override_settings(INSTALLED_APPS=WITH_APP, CACHES=STATS_CACHES):
        for alias in ("default", "second"):
            caches[alias].clear()
        yield caches
        for alias in ("default", "second"):
            caches[alias].clear()


def stats_output(*args):
    out = StringIO()
    call_command("rustcache_stats", *args, stdout=out)
    return out.getvalue()


def test_stats_json(stats_caches):
    stats_caches["default"].set("k", "v")
    stats_caches["default"].get("k")
    stats_caches["default"].get("missing")
    report = json.loads(stats_output("--json"))
    assert sorted(report) == ["default", "second"]
    assert report["default"] == stats_caches["default"].stats()
    assert report["default"]["hits"] == 1
    assert report["default"]["misses"] == 1
    assert report["default"]["entries"] == 1
    assert report["default"]["max_entries"] == 50
    assert report["second"]["entries"] == 0


def test_stats_text_and_alias_selection(stats_caches):
    stats_caches["second"].set("k", "v")
    text = stats_output("second")
    assert "second (LOCATION 'tests-stats-b')" in text
    assert "default" not in text
    assert any(line.split() == ["entries", "1"] for line in text.splitlines())


def test_stats_rejects_unknown_and_foreign_aliases(stats_caches):
    with pytest.raises(CommandError, match="No cache alias 'nope'"):
        stats_output("nope")
    with pytest.raises(CommandError, match="not a RustCache"):
        stats_output("locmem")


SHARED = "django_rustcache.SharedCache"


def test_shared_cache_aliases_are_checked_too(tmp_path):
    location = str(tmp_path / "shared")
    bad = {"default": {"BACKEND": SHARED, "LOCATION": location, "OPTIONS": {"MAX_ENTRIES": 10, "EVICTION": "lru"}}}
    assert ids(run(bad)) == ["django_rustcache.E001"]
    assert "SharedCache" in run(bad)[0].msg
    assert ids(run({"default": {"BACKEND": SHARED, "LOCATION": location}})) == ["django_rustcache.W001"]


def test_a_shared_cache_and_a_rust_cache_never_share_a_store(tmp_path):
    location = str(tmp_path / "shared")
    setting = {
        "local": {"BACKEND": RUST, "LOCATION": location, "OPTIONS": {"MAX_ENTRIES": 10}},
        "host": {"BACKEND": SHARED, "LOCATION": location, "OPTIONS": {"MAX_ENTRIES": 20}},
    }
    assert run(setting) == [], "different stores: no W002 for their different limits"
    setting["host2"] = {"BACKEND": SHARED, "LOCATION": location, "OPTIONS": {"MAX_ENTRIES": 30}}
    assert ids(run(setting)) == ["django_rustcache.W002"]


def test_stats_command_lists_shared_cache_aliases(tmp_path):
    setting = {
        "default": {"BACKEND": RUST, "LOCATION": "stats-local"},
        "host": {"BACKEND": SHARED, "LOCATION": str(tmp_path / "shared")},
    }
    with override_settings(INSTALLED_APPS=WITH_APP, CACHES=setting):
        caches["host"].set("k", 1)
        out = StringIO()
        call_command("rustcache_stats", "--json", stdout=out)
        stats = json.loads(out.getvalue())
    assert sorted(stats) == ["default", "host"]
    assert stats["host"]["sets"] == 1
