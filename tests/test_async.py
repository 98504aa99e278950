"""Every async method gives what its sync twin gives, and runs inline on the event loop's thread
(no ``sync_to_async`` thread hop)."""

import asyncio
import inspect
import threading
import uuid
from datetime import UTC, datetime

import pytest
import time_machine
from asgiref.sync import SyncToAsync
from django.core.cache.backends import base as cache_base
from django.core.cache.backends.base import BaseCache

from django_rustcache import RustCache


def new_location() -> str:
    return f"test-async-{uuid.uuid4().hex}"


def outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


async def aoutcome(fn, *args, **kwargs):
    try:
        return ("ok", await fn(*args, **kwargs))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


# Each scenario: a list of (method, args, kwargs) steps, run once through the sync methods and once
# through their async twins ("a" + name) on a fresh cache, with every result compared.
SCENARIOS = {
    "get": [
        ("set", ("k", [1]), {}),
        ("get", ("k",), {}),
        ("get", ("missing", "dflt"), {}),
        ("get", ("k",), {"version": 2}),
    ],
    "set": [("set", ("k", "v"), {}), ("set", ("k", "w"), {"timeout": 0}), ("get", ("k",), {}), ("set", ("j", 1), {})],
    "add": [("add", ("k", 1), {}), ("add", ("k", 2), {}), ("add", ("n", 0), {"timeout": None, "version": 3})],
    "get_or_set": [
        ("get_or_set", ("k", "default"), {}),
        ("get_or_set", ("k", "other"), {}),
        ("get_or_set", ("c", lambda: "called"), {"timeout": 10}),
        ("get_or_set", ("v", None), {"version": 2}),
    ],
    "get_many": [
        ("set_many", ({"a": 1, "b": 2},), {}),
        ("get_many", (["b", "x", "a"],), {}),
        ("get_many", (["a"],), {"version": 2}),
    ],
    "set_many": [("set_many", ({"a": 1, "b": [2]},), {"timeout": 30}), ("get_many", (["a", "b"],), {})],
    "delete": [("set", ("k", 1), {}), ("delete", ("k",), {}), ("delete", ("k",), {}), ("has_key", ("k",), {})],
    "delete_many": [
        ("set_many", ({"a": 1, "b": 2},), {}),
        ("delete_many", (["a", "z"],), {}),
        ("get_many", (["a", "b"],), {}),
    ],
    "has_key": [
        ("has_key", ("k",), {}),
        ("set", ("k", None), {}),
        ("has_key", ("k",), {}),
        ("has_key", ("k",), {"version": 5}),
    ],
    "touch": [
        ("touch", ("k",), {}),
        ("set", ("k", 1), {"timeout": 5}),
        ("touch", ("k", None), {}),
        ("touch", ("k", 0), {}),
        ("get", ("k",), {}),
    ],
    "incr": [
        ("incr", ("k",), {}),
        ("set", ("k", 1), {}),
        ("incr", ("k",), {}),
        ("incr", ("k", 2**70), {}),
        ("set", ("s", "x"), {}),
        ("incr", ("s",), {}),
    ],
    "decr": [
        ("decr", ("k",), {}),
        ("set", ("k", 1), {}),
        ("decr", ("k", 5), {}),
        ("set", ("f", 1.5), {}),
        ("decr", ("f",), {}),
    ],
    "incr_version": [
        ("incr_version", ("k",), {}),
        ("set", ("k", "v"), {}),
        ("incr_version", ("k",), {}),
        ("get", ("k",), {"version": 2}),
    ],
    "decr_version": [
        ("set", ("k", "v"), {"version": 3}),
        ("decr_version", ("k",), {"version": 3}),
        ("get", ("k",), {"version": 2}),
        ("decr_version", ("x",), {}),
    ],
    "clear": [("set_many", ({"a": 1},), {}), ("clear", (), {}), ("get_many", (["a"],), {})],
    "close": [("set", ("k", 1), {}), ("close", (), {}), ("get", ("k",), {})],
}


def run_sync(cache, steps):
    return [outcome(getattr(cache, name), *args, **kwargs) for name, args, kwargs in steps]


async def run_async(cache, steps):
    return [await aoutcome(getattr(cache, "a" + name), *args, **kwargs) for name, args, kwargs in steps]


@pytest.fixture
def frozen():
    with time_machine.travel(datetime(2030, 1, 1, tzinfo=UTC), tick=False) as traveller:
        yield traveller


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_async_method_matches_its_sync_twin(frozen, scenario):
    steps = SCENARIOS[scenario]
    sync_cache, async_cache = RustCache(new_location(), {}), RustCache(new_location(), {})
    expected = run_sync(sync_cache, steps)
    got = asyncio.run(run_async(async_cache, steps))
    assert got == expected
    assert sync_cache.stats() == async_cache.stats()


def test_every_async_method_of_djangos_api_is_covered_and_overridden():
    django_async = {
        name for name, member in vars(BaseCache).items() if name.startswith("a") and inspect.iscoroutinefunction(member)
    }
    assert {"a" + name for name in SCENARIOS} == django_async
    inherited = {name for name in django_async if getattr(RustCache, name) is getattr(BaseCache, name)}
    assert not inherited, f"these run BaseCache's thread-hopping version: {sorted(inherited)}"


@pytest.fixture
def no_thread_pool(monkeypatch):
    """Make any sync_to_async hop fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("sync_to_async was used")

    monkeypatch.setattr(SyncToAsync, "__call__", refuse)
    monkeypatch.setattr(cache_base, "sync_to_async", refuse, raising=False)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_async_methods_run_inline_on_the_loop_thread(no_thread_pool, scenario):
    steps = SCENARIOS[scenario]
    cache = RustCache(new_location(), {})
    threads = set()
    # Record the thread every sync method runs on, whichever async method called it.
    for name in {step[0] for step in steps}:
        original = getattr(cache, name)

        def recording(*args, _original=original, **kwargs):
            threads.add(threading.get_ident())
            return _original(*args, **kwargs)

        setattr(cache, name, recording)

    async def main():
        results = await run_async(cache, steps)
        return threading.get_ident(), results

    loop_thread, results = asyncio.run(main())
    assert threads == {loop_thread}
    assert not any(r[0] == "raised" and r[1] is AssertionError for r in results), results


def test_key_objects_are_made_into_keys_on_the_loop_thread(no_thread_pool):
    """Without recording wrappers: the key's ``__str__`` runs inside the native call itself."""
    seen = []

    class Key:
        def __str__(self):
            seen.append(threading.get_ident())
            return "key"

    cache = RustCache(new_location(), {})

    async def main():
        await cache.aset(Key(), 1)
        await cache.aincr(Key())
        value = await cache.aget(Key())
        await cache.adelete_many([Key()])
        return threading.get_ident(), value

    loop_thread, value = asyncio.run(main())
    assert value == 2
    assert len(seen) == 4
    assert set(seen) == {loop_thread}


def test_async_and_sync_see_the_same_data():
    location = new_location()
    cache, other = RustCache(location, {}), RustCache(location, {})
    cache.set("k", "from sync")

    async def main():
        value = await other.aget("k")
        await other.aset("j", "from async")
        return value

    assert asyncio.run(main()) == "from sync"
    assert cache.get("j") == "from async"


def test_async_errors_leave_the_cache_working():
    cache = RustCache(new_location(), {})

    async def main():
        with pytest.raises(ValueError, match="not found"):
            await cache.aincr("missing")
        with pytest.raises(TypeError):
            await cache.aset("k", 1, timeout="soon")
        await cache.aset("k", 1)
        return await cache.aincr("k")

    assert asyncio.run(main()) == 2
