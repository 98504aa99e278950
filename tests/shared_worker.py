"""A worker process for the multi-process SharedCache tests: ``python -m tests.shared_worker MODE
LOCATION [ARGS...]``. Each mode uses a SharedCache on LOCATION the way a web worker would, and reports
on stdout, one line per event."""

import os
import sys
import threading
import time

import django
from django.conf import settings


def cache_for(location: str, **options):
    settings.configure(
        CACHES={"default": {"BACKEND": "django_rustcache.SharedCache", "LOCATION": location, "OPTIONS": options}},
        USE_TZ=True,
    )
    django.setup()
    from django.core.cache import cache

    return cache


def say(*words) -> None:
    print(*words, flush=True)


def wait_for(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.001)


def main(mode: str, location: str, *args: str) -> None:
    if mode == "set":
        cache_for(location).set(args[0], args[1])
    elif mode == "get":
        say(repr(cache_for(location).get(args[0])))
    elif mode == "clear":
        cache_for(location).clear()
    elif mode == "add_race":
        cache = cache_for(location)
        cache.get("warm-up")
        say("ready")
        wait_for(args[1])
        say("won" if cache.add(args[0], os.getpid()) else "lost")
    elif mode == "incr":
        cache = cache_for(location)
        key, times, threads = args[0], int(args[1]), int(args[2])
        say("ready")
        wait_for(args[3])

        def work() -> None:
            for _ in range(times):
                cache.incr(key)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        say("done")
    elif mode == "write_forever":
        cache = cache_for(location, MAX_ENTRIES=500, MAP_SIZE=8 * 2**20)
        i = 0
        while True:
            i += 1
            cache.set(f"k{i % 700}", os.urandom(100 + (i * 7919) % 20_000))
            if i % 3 == 0:
                cache.delete(f"k{(i * 31) % 700}")
            if i == 1:
                say("ready")
    elif mode == "read_forever":
        cache = cache_for(location)
        cache.get("k1")  # this thread holds a reader slot from now on
        say("ready")
        while True:
            cache.get("k1")
    elif mode == "grow":
        # Open with a larger map than the other processes have, and fill past their map's end.
        map_size, count, size = map(int, args)
        cache = cache_for(location, MAP_SIZE=map_size, MAX_ENTRIES=10**9)
        for i in range(count):
            cache.set(f"big{i}", bytes([i % 256]) * size)
        say(cache._native._environment()["map_size"])
    elif mode == "lock":
        cache = cache_for(location)
        key, hold, count = args[0], float(args[1]), int(args[2])
        say("ready")
        wait_for(args[3])
        for _ in range(count):
            with cache.lock(key, timeout=30, sleep=0.001):
                say("in", time.time())
                time.sleep(hold)
                say("out", time.time())
    elif mode == "lock_and_die":
        cache = cache_for(location)
        lock = cache.lock(args[0], timeout=float(args[1]))
        lock.acquire()
        say("acquired")
        time.sleep(3600)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
