"""Django's low-level cache API, one page per part of it, on ``django_rustcache.RustCache``.

Opening a page (GET) never touches the cache, so the counters in the side panel move only when a
button is pressed. A button POSTs to the page's view, which makes the cache calls and shows each
one, as code, next to what it returned.
"""

import os
import time
from datetime import datetime
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .forms import DeltaForm, SetForm, TimeoutForm, ValueForm

# The navigation: (URL name, title), in walkthrough order.
PAGES = [
    ("set", "set with a timeout"),
    ("get", "get with a default"),
    ("add", "add"),
    ("get_or_set", "get_or_set"),
    ("many", "set_many / get_many"),
    ("delete", "delete / delete_many"),
    ("incr_decr", "incr / decr"),
    ("touch", "touch"),
    ("versions", "versions"),
    ("clear", "clear"),
    ("async", "aget / aset"),
    ("stats", "stats()"),
    ("workers", "every worker, one cache"),
]


class Calls:
    """The cache calls a view made, in order: each is the code shown and the repr of its result."""

    do_not_call_in_templates = True

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, code: str, result: Any) -> Any:
        shown = f"raises {type(result).__name__}: {result}" if isinstance(result, Exception) else repr(result)
        self.lines.append((code, shown))
        return result


def _page(request: HttpRequest, name: str, calls: Calls | None = None, **context: Any) -> HttpResponse:
    """Render a page with the calls just made and the cache's counters *after* them."""
    context.update(pages=PAGES, calls=calls, stats=cache.stats())
    return render(request, f"walkthrough/{name}.html", context)


def home(request: HttpRequest) -> HttpResponse:
    return _page(request, "home")


def set_page(request: HttpRequest) -> HttpResponse:
    form = SetForm(request.POST or None)
    calls = None
    if form.is_valid():
        value, timeout = form.cleaned_data["value"], form.cleaned_data["timeout"]
        calls = Calls()
        calls(f"cache.set('greeting', {value!r}, timeout={timeout})", cache.set("greeting", value, timeout=timeout))
    return _page(request, "set", calls, form=form)


def get_page(request: HttpRequest) -> HttpResponse:
    calls = None
    if request.method == "POST":
        calls = Calls()
        calls("cache.get('greeting')", cache.get("greeting"))
        calls("cache.get('greeting', 'has expired')", cache.get("greeting", "has expired"))
        # A stored None and a missing key both make get() return None; a default of your own tells them apart.
        sentinel = object()
        calls(
            "cache.get('greeting', sentinel) is sentinel  # sentinel = object()",
            cache.get("greeting", sentinel) is sentinel,
        )
    return _page(request, "get", calls)


def add_page(request: HttpRequest) -> HttpResponse:
    form = ValueForm(request.POST or None, initial={"value": "Initial value"})
    calls = None
    if form.is_valid():
        value = form.cleaned_data["value"]
        calls = Calls()
        calls(f"cache.add('add_key', {value!r})", cache.add("add_key", value))
        calls("cache.get('add_key')", cache.get("add_key"))
    return _page(request, "add", calls, form=form)


def get_or_set_page(request: HttpRequest) -> HttpResponse:
    calls = None
    if request.method == "POST":
        calls = Calls()
        calls(
            "cache.get_or_set('my_new_key', 'my new value', 100, version=2)",
            cache.get_or_set("my_new_key", "my new value", 100, version=2),
        )
        # A callable default is called only on a miss: the timestamp stays until the key goes.
        calls(
            "cache.get_or_set('timestamp', datetime.now, version=2)",
            cache.get_or_set("timestamp", datetime.now, version=2),
        )
        calls("cache.get('timestamp')  # version 1", cache.get("timestamp"))
    return _page(request, "get_or_set", calls)


def many_page(request: HttpRequest) -> HttpResponse:
    calls = None
    action = request.POST.get("action")
    if action == "set_many":
        calls = Calls()
        calls("cache.set_many({'a': 1, 'b': 2, 'c': 3})", cache.set_many({"a": 1, "b": 2, "c": 3}))
    elif action == "get_many":
        calls = Calls()
        calls("cache.get_many(['a', 'b', 'c', 'd'])", cache.get_many(["a", "b", "c", "d"]))
    return _page(request, "many", calls)


def delete_page(request: HttpRequest) -> HttpResponse:
    calls = None
    action = request.POST.get("action")
    if action == "delete":
        calls = Calls()
        calls("cache.delete('a')", cache.delete("a"))
    elif action == "delete_many":
        calls = Calls()
        calls("cache.delete_many(['b', 'c'])", cache.delete_many(["b", "c"]))
        calls("cache.get_many(['a', 'b', 'c'])", cache.get_many(["a", "b", "c"]))
    elif action == "versioned":
        calls = Calls()
        calls("cache.delete('my_new_key', version=2)", cache.delete("my_new_key", version=2))
        calls("cache.delete_many(['timestamp'], version=2)", cache.delete_many(["timestamp"], version=2))
    return _page(request, "delete", calls)


def incr_decr_page(request: HttpRequest) -> HttpResponse:
    form = DeltaForm(request.POST or None)
    calls = None
    action = request.POST.get("action")
    if action == "reset":
        calls = Calls()
        calls("cache.set('counter', 0)", cache.set("counter", 0))
    elif action in ("incr", "decr") and form.is_valid():
        delta = form.cleaned_data["delta"]
        method = cache.incr if action == "incr" else cache.decr
        try:
            result = method("counter", delta=delta)
        except ValueError as error:  # incr and decr never create a key: a missing one is an error.
            result = error
        calls = Calls()
        calls(f"cache.{action}('counter', delta={delta})", result)
    return _page(request, "incr_decr", calls, form=form)


def touch_page(request: HttpRequest) -> HttpResponse:
    form = TimeoutForm(request.POST or None, initial={"timeout": "300"})
    calls = None
    if form.is_valid():
        timeout = form.cleaned_data["timeout"]
        calls = Calls()
        calls(f"cache.touch('greeting', {timeout})", cache.touch("greeting", timeout))
    return _page(request, "touch", calls, form=form)


def versions_page(request: HttpRequest) -> HttpResponse:
    calls = None
    action = request.POST.get("action")
    if action in ("set", "incr_version"):
        calls = Calls()
        if action == "set":
            calls("cache.set('motto', 'first draft')", cache.set("motto", "first draft"))
            calls("cache.set('motto', 'second draft', version=2)", cache.set("motto", "second draft", version=2))
        else:
            try:
                result = cache.incr_version("motto", version=2)
            except ValueError as error:  # nothing stored under version 2
                result = error
            calls("cache.incr_version('motto', version=2)", result)
        for version in (1, 2, 3):
            calls(f"cache.get('motto', version={version})", cache.get("motto", version=version))
    return _page(request, "versions", calls)


def clear_page(request: HttpRequest) -> HttpResponse:
    calls = None
    if request.method == "POST":
        calls = Calls()
        calls("cache.stats()['entries']", cache.stats()["entries"])
        calls("cache.clear()", cache.clear())
        calls("cache.stats()['entries']", cache.stats()["entries"])
    return _page(request, "clear", calls)


async def async_page(request: HttpRequest) -> HttpResponse:
    form = ValueForm(request.POST or None, initial={"value": "set from a coroutine"})
    calls = None
    if form.is_valid():
        value = form.cleaned_data["value"]
        calls = Calls()
        calls(f"await cache.aset('async_key', {value!r}, timeout=60)", await cache.aset("async_key", value, timeout=60))
        calls("await cache.aget('async_key')", await cache.aget("async_key"))
        calls("await cache.aget('never_set', 'a default')", await cache.aget("never_set", "a default"))
    return _page(request, "async", calls, form=form)


# What each counter of stats() means, for the stats page.
STAT_NOTES = {
    "entries": "entries held now: the live contents count (expired ones not yet reclaimed included)",
    "bytes": "bytes charged for them (keys plus pickled values)",
    "hits": "reads that found a live value (get, get_many per key, get_or_set)",
    "misses": "reads that found nothing, or only an expired value",
    "sets": "values written (set, add, set_many per key, get_or_set on a miss)",
    "deletes": "entries removed by delete and delete_many",
    "evictions": "live entries culled to make room (MAX_ENTRIES, MAX_BYTES)",
    "expirations": "expired entries removed",
    "max_entries": "OPTIONS['MAX_ENTRIES'] of this alias",
    "cull_frequency": "OPTIONS['CULL_FREQUENCY'] of this alias",
    "max_bytes": "OPTIONS['MAX_BYTES'] of this alias (None: no byte budget)",
}


def stats_page(request: HttpRequest) -> HttpResponse:
    stats = cache.stats()
    rows = [(name, stats[name], STAT_NOTES.get(name, "")) for name in STAT_NOTES if name in stats]
    rows += [(name, value, "") for name, value in stats.items() if name not in STAT_NOTES]
    return _page(request, "stats", rows=rows)


# The rate limit of the workers page: this many requests per user per window.
RATE_LIMIT = 5
RATE_WINDOW = 10  # seconds


def workers_page(request: HttpRequest) -> HttpResponse:
    """What only a cache shared by every worker process gets right (``make demo-shared``: 4 gunicorn
    workers on SharedCache): which worker answered, a counter all of them increment, and a rate limit
    counted per user per window with ``incr``. On a per-process cache (RustCache, LocMemCache) each
    worker would keep its own counter and its own limit."""
    calls = None
    pid = os.getpid()
    limited = False
    if request.method == "POST":
        calls = Calls()
        calls(f"cache.set('worker:{pid}', time.time(), timeout=60)", cache.set(f"worker:{pid}", time.time(), 60))
        calls("cache.add('requests', 0, timeout=None)", cache.add("requests", 0, timeout=None))
        calls("cache.incr('requests')", cache.incr("requests"))
        user = request.POST.get("user") or "anonymous"
        window = int(time.time()) // RATE_WINDOW
        key = f"rate:{user}:{window}"
        calls(f"cache.add({key!r}, 0, timeout={RATE_WINDOW + 1})", cache.add(key, 0, timeout=RATE_WINDOW + 1))
        count = cache.incr(key)
        calls(f"cache.incr({key!r})", count)
        limited = count > RATE_LIMIT
    workers = sorted(int(key.split(":", 1)[1]) for key in cache.keys("worker:*")) if calls else []
    response = _page(
        request,
        "workers",
        calls,
        pid=pid,
        backend=type(caches[DEFAULT_CACHE_ALIAS]).__name__,  # `cache` is Django's proxy of it
        workers=workers,
        requests=cache.get("requests") if calls else None,
        limited=limited,
        limit=RATE_LIMIT,
        window=RATE_WINDOW,
    )
    if limited:
        response.status_code = 429
    return response


WORKER_KEY = "demo-worker-stats:"


def near_workers_page(request: HttpRequest) -> HttpResponse:
    """Each worker process publishes its own near-cache counters on every visit; the page shows every
    worker's local hits against its server hits (only on RedisNearCache, which has a local copy)."""
    stats = cache.stats()
    if "local_hits" not in stats:
        return _page(request, "near_workers", rows=[], near=False)
    pid = os.getpid()
    for _ in range(20):  # some reads, so that hits move: the greeting of /set/, served locally when warm
        cache.get("greeting")
    stats = cache.stats()
    cache.set(f"{WORKER_KEY}{pid}", {"pid": pid, **stats}, 600)
    prefix = cache.make_key(WORKER_KEY)
    names = [k.decode()[len(cache.make_key("")) :] for k in cache._native.scan(f"{prefix}*".encode())]
    workers = sorted(cache.get_many(names).values(), key=lambda s: s["pid"])
    rows = [
        (w["pid"], w["local_hits"], w["server_hits"], w["misses"], w["invalidations"], w["entries"], w["pid"] == pid)
        for w in workers
    ]
    return _page(request, "near_workers", rows=rows, near=True)
