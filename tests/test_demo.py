"""The demo site in ``examples/demo``: every page, driven through Django's test client, with its
cache effects checked on the cache itself."""

import html
import importlib
import inspect
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.core.cache import caches
from django.test import AsyncClient, Client, override_settings
from django.urls import reverse

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_settings():
    """The demo's own settings, with the cache moved to a LOCATION of its own."""
    sys.path.insert(0, str(DEMO))
    try:
        settings = importlib.import_module("demo_site.settings")
        cache_settings = {"default": {**settings.CACHES["default"], "LOCATION": "tests-demo"}}
        with override_settings(
            ROOT_URLCONF=settings.ROOT_URLCONF,
            INSTALLED_APPS=settings.INSTALLED_APPS,
            MIDDLEWARE=settings.MIDDLEWARE,
            TEMPLATES=settings.TEMPLATES,
            CACHES=cache_settings,
        ):
            yield settings
    finally:
        sys.path.remove(str(DEMO))


@pytest.fixture
def cache(demo_settings):
    """The demo's cache, empty before and after the test."""
    backend = caches["default"]
    backend.clear()
    yield backend
    backend.clear()


@pytest.fixture
def client(cache):
    return Client()


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def post(client, name, data=None):
    response = client.post(reverse(name), data or {})
    assert response.status_code == 200
    return response


def calls(response):
    """The (code, result) lines a view reported, checked to be on the page as well."""
    lines = response.context["calls"].lines
    content = response.content.decode()
    for code, result in lines:
        assert html.escape(code) in content
        assert html.escape(result) in content
    return lines


def results(response):
    return [result for _, result in calls(response)]


def counters(cache):
    stats = cache.stats()
    return {name: stats[name] for name in ("hits", "misses", "sets", "deletes", "entries")}


def test_settings_put_the_default_cache_on_rustcache(demo_settings):
    assert demo_settings.CACHES["default"]["BACKEND"] == "django_rustcache.RustCache"
    assert "DATABASES" not in vars(demo_settings)


def test_manage_py_check_passes_without_warnings():
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=DEMO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


def test_every_page_opens_without_touching_the_cache(client, cache):
    from walkthrough.views import PAGES

    cache.set("present", 1)
    before = counters(cache)
    for name in ["home", *(name for name, _ in PAGES)]:
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        assert response.context["calls"] is None
        for other, _ in PAGES:
            assert f'href="{reverse(other)}"' in response.content.decode()
    assert counters(cache) == before


def test_side_panel_shows_stats_after_the_calls(client, cache):
    response = post(client, "many", {"action": "set_many"})
    assert response.context["stats"] == cache.stats()
    assert response.context["stats"]["entries"] == 3
    assert '<div class="entries" id="entries">3</div>' in response.content.decode()


def test_set_stores_for_the_chosen_timeout(client, cache, clock):
    response = post(client, "set", {"value": "hi", "timeout": "5"})
    assert calls(response) == [("cache.set('greeting', 'hi', timeout=5)", "None")]
    assert cache.get("greeting") == "hi"
    clock.shift(6)
    assert cache.get("greeting") is None

    post(client, "set", {"value": "forever", "timeout": "none"})
    clock.shift(10**6)
    assert cache.get("greeting") == "forever"


def test_set_rejects_an_unknown_timeout(client, cache):
    response = post(client, "set", {"value": "hi", "timeout": "7"})
    assert response.context["calls"] is None
    assert response.context["form"].errors["timeout"]
    assert cache.get("greeting") is None


def test_get_with_a_default_and_the_sentinel(client, cache, clock):
    before = counters(cache)
    assert results(post(client, "get")) == ["None", "'has expired'", "True"]
    assert counters(cache)["misses"] == before["misses"] + 3

    cache.set("greeting", "hello", 5)
    before = counters(cache)
    assert results(post(client, "get")) == ["'hello'", "'hello'", "False"]
    assert counters(cache)["hits"] == before["hits"] + 3

    clock.shift(6)
    assert results(post(client, "get")) == ["None", "'has expired'", "True"]


def test_get_tells_a_stored_none_from_a_missing_key(client, cache):
    cache.set("greeting", None)
    assert results(post(client, "get")) == ["None", "None", "False"]


def test_add_keeps_the_first_value(client, cache):
    response = post(client, "add", {"value": "Initial value"})
    assert calls(response) == [
        ("cache.add('add_key', 'Initial value')", "True"),
        ("cache.get('add_key')", "'Initial value'"),
    ]
    assert results(post(client, "add", {"value": "New value"})) == ["False", "'Initial value'"]
    assert cache.get("add_key") == "Initial value"


def test_get_or_set_stores_a_value_and_calls_a_callable_once(client, cache, clock):
    first = results(post(client, "get_or_set"))
    stored = cache.get("timestamp", version=2)
    assert isinstance(stored, datetime)
    assert first == ["'my new value'", repr(stored), "None"]
    assert cache.get("my_new_key", version=2) == "my new value"
    assert cache.get("my_new_key") is None

    clock.shift(30)
    assert results(post(client, "get_or_set")) == first  # the callable was not called again

    clock.shift(71)  # my_new_key was stored for 100 seconds, timestamp for the default 300
    assert cache.get("my_new_key", version=2) is None
    assert cache.get("timestamp", version=2) == stored


def test_set_many_and_get_many(client, cache):
    assert results(post(client, "many", {"action": "get_many"})) == ["{}"]
    assert results(post(client, "many", {"action": "set_many"})) == ["[]"]
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    before = counters(cache)
    assert results(post(client, "many", {"action": "get_many"})) == ["{'a': 1, 'b': 2, 'c': 3}"]
    after = counters(cache)
    assert (after["hits"], after["misses"]) == (before["hits"] + 3, before["misses"] + 1)


def test_delete_and_delete_many(client, cache):
    cache.set_many({"a": 1, "b": 2, "c": 3})
    assert calls(post(client, "delete", {"action": "delete"})) == [("cache.delete('a')", "True")]
    assert cache.get_many(["a", "b", "c"]) == {"b": 2, "c": 3}
    assert results(post(client, "delete", {"action": "delete"})) == ["False"]

    assert results(post(client, "delete", {"action": "delete_many"})) == ["None", "{}"]
    assert cache.stats()["entries"] == 0


def test_delete_with_a_version_leaves_other_versions(client, cache):
    cache.set("my_new_key", "v2", version=2)
    cache.set("timestamp", "v2", version=2)
    cache.set("my_new_key", "v1")
    cache.set("timestamp", "v1")
    assert results(post(client, "delete", {"action": "versioned"})) == ["True", "None"]
    assert cache.get_many(["my_new_key", "timestamp"], version=2) == {}
    assert cache.get_many(["my_new_key", "timestamp"]) == {"my_new_key": "v1", "timestamp": "v1"}
    assert results(post(client, "delete", {"action": "versioned"})) == ["False", "None"]


def test_incr_and_decr_by_delta(client, cache):
    missing = results(post(client, "incr_decr", {"action": "incr", "delta": "5"}))
    assert len(missing) == 1
    assert missing[0].startswith("raises ValueError")
    assert cache.get("counter") is None

    assert results(post(client, "incr_decr", {"action": "reset", "delta": "1"})) == ["None"]
    assert cache.get("counter") == 0
    response = post(client, "incr_decr", {"action": "incr", "delta": "5"})
    assert calls(response) == [("cache.incr('counter', delta=5)", "5")]
    assert cache.get("counter") == 5
    response = post(client, "incr_decr", {"action": "decr", "delta": "2"})
    assert calls(response) == [("cache.decr('counter', delta=2)", "3")]
    assert cache.get("counter") == 3


def test_incr_rejects_a_delta_that_is_not_a_number(client, cache):
    cache.set("counter", 1)
    response = post(client, "incr_decr", {"action": "incr", "delta": "x"})
    assert response.context["calls"] is None
    assert response.context["form"].errors["delta"]
    assert cache.get("counter") == 1


def test_touch_gives_a_new_timeout(client, cache, clock):
    assert results(post(client, "touch", {"timeout": "300"})) == ["False"]

    cache.set("greeting", "hello", 5)
    response = post(client, "touch", {"timeout": "300"})
    assert calls(response) == [("cache.touch('greeting', 300)", "True")]
    clock.shift(6)
    assert cache.get("greeting") == "hello"
    clock.shift(300)
    assert cache.get("greeting") is None


def test_versions_side_by_side_and_incr_version(client, cache):
    response = post(client, "versions", {"action": "set"})
    assert [code for code, _ in calls(response)][2:] == [f"cache.get('motto', version={v})" for v in (1, 2, 3)]
    assert results(response) == ["None", "None", "'first draft'", "'second draft'", "None"]
    assert cache.get("motto") == "first draft"

    response = post(client, "versions", {"action": "incr_version"})
    assert results(response) == ["3", "'first draft'", "None", "'second draft'"]
    assert cache.get("motto", version=3) == "second draft"

    # Version 2 is gone now, so there is nothing to move.
    again = results(post(client, "versions", {"action": "incr_version"}))
    assert again[0].startswith("raises ValueError")
    assert again[1:] == ["'first draft'", "None", "'second draft'"]


def test_clear_empties_the_cache(client, cache):
    cache.set("one", 1)
    cache.set("two", 2, version=2)
    assert results(post(client, "clear")) == ["2", "None", "0"]
    assert cache.stats()["entries"] == 0
    assert cache.get("one") is None


def test_async_view_uses_aset_and_aget(cache):
    from walkthrough.views import async_page

    assert inspect.iscoroutinefunction(async_page)
    response = async_to_sync(AsyncClient().post)(reverse("async"), {"value": "from a coroutine"})
    assert response.status_code == 200
    assert calls(response) == [
        ("await cache.aset('async_key', 'from a coroutine', timeout=60)", "None"),
        ("await cache.aget('async_key')", "'from a coroutine'"),
        ("await cache.aget('never_set', 'a default')", "'a default'"),
    ]
    assert cache.get("async_key") == "from a coroutine"
    assert cache.get("never_set") is None


def test_stats_page_counts_a_hit_after_a_get(client, cache):
    def shown(response):
        return {name: value for name, value, _ in response.context["rows"]}

    before = shown(client.get(reverse("stats")))
    assert set(before) == set(cache.stats())

    post(client, "set", {"value": "hi", "timeout": "300"})
    post(client, "get")
    response = client.get(reverse("stats"))
    after = shown(response)
    assert after["hits"] == before["hits"] + 3
    assert after["misses"] == before["misses"]
    assert after["sets"] == before["sets"] + 1
    assert after["entries"] == 1
    assert f'id="stat-hits">{after["hits"]}<' in response.content.decode()


def test_forms_carry_a_csrf_token(cache):
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("add"))
    token = client.cookies["csrftoken"].value
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()

    assert client.post(reverse("add"), {"value": "no token"}).status_code == 403
    assert cache.get("add_key") is None
    response = client.post(reverse("add"), {"value": "with token", "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert cache.get("add_key") == "with token"


def test_the_workers_page_counts_and_rate_limits(client, cache, clock, monkeypatch):
    from walkthrough import views

    monkeypatch.setattr(views, "RATE_LIMIT", 2)
    url = reverse("workers")
    statuses = [client.post(url, {"user": "bob"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = client.post(url, {"user": "carol"})
    assert response.status_code == 200
    assert response.context["requests"] == 4
    assert response.context["workers"] == [os.getpid()]
    assert response.context["backend"] == "RustCache"  # the backend's class, not Django's proxy
    clock.shift(views.RATE_WINDOW)
    assert client.post(url, {"user": "bob"}).status_code == 200, "a new window"


def test_shared_settings_put_the_default_cache_on_sharedcache():
    sys.path.insert(0, str(DEMO))
    try:
        settings = importlib.import_module("demo_site.shared_settings")
    finally:
        sys.path.remove(str(DEMO))
    assert settings.CACHES["default"]["BACKEND"] == "django_rustcache.SharedCache"
    assert os.path.isabs(settings.CACHES["default"]["LOCATION"])
