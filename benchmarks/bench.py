"""The benchmark suite: RustCache against LocMemCache and its other peers, in one process.

Run it on a release build with ``make bench`` (``make bench BENCH_ARGS=--quick`` for a run of about a
minute). See benchmarks/README.md for what is measured and how.

Every backend is configured as a Django cache alias and obtained once through ``caches[alias]``; the
instance is then held (the ``caches`` proxy alone costs Django 500-800 ns per access, so going through
it on every call would measure Django, not the backend). Each operation is timed in repetitions: in
each repetition every backend runs one batch of N calls (N calibrated per backend so that a batch takes
about the same time), the backends taking turns round-robin, the starting backend rotating from one
repetition to the next. The figure reported is the median over repetitions of the batch's ns per call,
and its ratio to LocMemCache's median from the same run.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gc
import itertools
import json
import os
import pickle
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
perf_counter_ns = time.perf_counter_ns

# ---------------------------------------------------------------------------------------------------
# Backends


@dataclass(frozen=True)
class Backend:
    alias: str
    label: str


RUST = Backend("rust", "RustCache")
RUST_ADAPTIVE = Backend("rust-adaptive", "RustCache adaptive")
LOCMEM = Backend("locmem", "LocMemCache")
FLOOR = Backend("floor", "dict+pickle floor")
REDIS = Backend("redis", "Redis")
DISKCACHE = Backend("diskcache", "diskcache")
SHARED = Backend("shared", "SharedCache")
ALL_BACKENDS = (RUST, RUST_ADAPTIVE, LOCMEM, FLOOR, REDIS, DISKCACHE, SHARED)
# SharedCache's LOCATION for this run (a fresh directory, in /dev/shm where there is one), inherited by
# the child processes through the environment.
SHARED_DIR_ENV = "BENCH_SHARED_DIR"

# Nothing may be culled or expire during a run: entries are bounded only by what a run writes.
MAX_ENTRIES = 1 << 40
TIMEOUT = 3600

# The eviction section: caches that are full (FULL_ENTRIES entries), where the policies differ. With
# CULL_FREQUENCY = MAX_ENTRIES a cull of a full cache removes exactly one entry, as the adaptive policy
# does on every write of a new key; CULL_FREQUENCY 3 (Django's default) removes a third at once, every
# FULL_ENTRIES / 3 writes.
FULL_ENTRIES = 10_000
EVICT_LRU = Backend("evict-lru", "RustCache lru")
EVICT_ADAPTIVE = Backend("evict-adaptive", "RustCache adaptive")
EVICT_LOCMEM = Backend("evict-locmem", "LocMemCache")
EVICT_LRU_CULL3 = Backend("evict-lru-cull3", "RustCache lru, CULL_FREQUENCY 3")
EVICTION_BACKENDS = (EVICT_LRU, EVICT_ADAPTIVE, EVICT_LOCMEM, EVICT_LRU_CULL3)


def cache_settings(redis_port: int | None, diskcache_dir: str | None) -> dict[str, dict[str, Any]]:
    caches: dict[str, dict[str, Any]] = {
        "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
        RUST.alias: {
            "BACKEND": "django_rustcache.backend.RustCache",
            "LOCATION": "bench-rust",
            "TIMEOUT": TIMEOUT,
            "OPTIONS": {"MAX_ENTRIES": MAX_ENTRIES},
        },
        RUST_ADAPTIVE.alias: {
            "BACKEND": "django_rustcache.backend.RustCache",
            "LOCATION": "bench-rust-adaptive",
            "TIMEOUT": TIMEOUT,
            "OPTIONS": {"MAX_ENTRIES": MAX_ENTRIES, "EVICTION": "adaptive"},
        },
        LOCMEM.alias: {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "bench-locmem",
            "TIMEOUT": TIMEOUT,
            "OPTIONS": {"MAX_ENTRIES": MAX_ENTRIES},
        },
        FLOOR.alias: {"BACKEND": "floor.DictPickleCache", "LOCATION": "bench-floor", "TIMEOUT": TIMEOUT},
    }
    rust, locmem = "django_rustcache.backend.RustCache", "django.core.cache.backends.locmem.LocMemCache"
    for backend, engine, options in [
        (EVICT_LRU, rust, {"CULL_FREQUENCY": FULL_ENTRIES}),
        (EVICT_ADAPTIVE, rust, {"EVICTION": "adaptive"}),
        (EVICT_LOCMEM, locmem, {"CULL_FREQUENCY": FULL_ENTRIES}),
        (EVICT_LRU_CULL3, rust, {"CULL_FREQUENCY": 3}),
    ]:
        caches[backend.alias] = {
            "BACKEND": engine,
            "LOCATION": f"bench-{backend.alias}",
            "TIMEOUT": TIMEOUT,
            "OPTIONS": {"MAX_ENTRIES": FULL_ENTRIES, **options},
        }
    if redis_port is not None:
        caches[REDIS.alias] = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{redis_port}/0",
            "TIMEOUT": TIMEOUT,
        }
    if os.environ.get(SHARED_DIR_ENV):
        caches[SHARED.alias] = {
            "BACKEND": "django_rustcache.SharedCache",
            "LOCATION": os.environ[SHARED_DIR_ENV],
            "TIMEOUT": TIMEOUT,
            "OPTIONS": {"MAX_ENTRIES": MAX_ENTRIES, "MAP_SIZE": 4 * 2**30},
        }
    if diskcache_dir is not None:
        caches[DISKCACHE.alias] = {
            "BACKEND": "diskcache.DjangoCache",
            "LOCATION": diskcache_dir,
            "TIMEOUT": TIMEOUT,
            # No size limit, so that nothing is culled (diskcache's default is 1 GB).
            "OPTIONS": {"size_limit": 1 << 40},
        }
    return caches


def configure_django(redis_port: int | None, diskcache_dir: str | None) -> None:
    import django
    from django.conf import settings

    settings.configure(CACHES=cache_settings(redis_port, diskcache_dir), USE_TZ=True)
    django.setup()


def module_available(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Redis server


def start_redis() -> int | None:
    """Start the local redis-server with benchmarks/redis_server.sh; its port, or None with a note."""
    script = HERE / "redis_server.sh"
    try:
        done = subprocess.run([str(script), "start"], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"note: Redis peer skipped: {script.name} start failed: {error}", file=sys.stderr)
        return None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        print(f"note: Redis peer skipped: {script.name} start failed: {tail}", file=sys.stderr)
        return None
    return int(done.stdout.strip().splitlines()[-1])


def stop_redis() -> None:
    subprocess.run([str(HERE / "redis_server.sh"), "stop"], check=False)


# ---------------------------------------------------------------------------------------------------
# Values

SHORT_STR = "Hello, world! 42"
# About 1 KB pickled (checked below): a user record as a view might cache it.
DICT_1K = {
    "id": 48213,
    "username": "margaret.hamilton",
    "email": "margaret.hamilton@example.com",
    "is_active": True,
    "is_staff": False,
    "score": 97.25,
    "last_login": "2025-11-21T23:59:59+00:00",
    "groups": ["editors", "reviewers", "beta-testers", "newsletter"],
    "permissions": [f"app.change_model{i}" for i in range(8)],
    "profile": {
        "bio": "Led the team that wrote the on-board flight software for Apollo. " * 7,
        "city": "Boston",
        "followers": 1969,
    },
    "settings": {
        "theme": "dark",
        "language": "en-gb",
        "timezone": "Europe/London",
        "notifications": {"email": True, "push": False},
    },
}
assert 1000 <= len(pickle.dumps(DICT_1K, pickle.HIGHEST_PROTOCOL)) <= 1100
POOL = 1000  # distinct keys an operation cycles over


# ---------------------------------------------------------------------------------------------------
# Operations. Each timed function runs one batch and returns the elapsed ns. The loops call
# `cache.method(...)` on the held instance, as application code does.


def t_get(cache, keys, value):
    t0 = perf_counter_ns()
    for key in keys:
        cache.get(key)
    return perf_counter_ns() - t0


def t_set(cache, keys, value):
    t0 = perf_counter_ns()
    for key in keys:
        cache.set(key, value)
    return perf_counter_ns() - t0


def t_add(cache, keys, value):
    t0 = perf_counter_ns()
    for key in keys:
        cache.add(key, value)
    return perf_counter_ns() - t0


def t_incr(cache, keys, value):
    t0 = perf_counter_ns()
    for key in keys:
        cache.incr(key)
    return perf_counter_ns() - t0


def t_get_many(cache, groups, value):
    t0 = perf_counter_ns()
    for group in groups:
        cache.get_many(group)
    return perf_counter_ns() - t0


def t_set_many(cache, groups, value):
    t0 = perf_counter_ns()
    for group in groups:
        cache.set_many(group)
    return perf_counter_ns() - t0


def t_delete(cache, keys, value):
    t0 = perf_counter_ns()
    for key in keys:
        cache.delete(key)
    return perf_counter_ns() - t0


def t_get_or_set(cache, keys, value):
    t0 = perf_counter_ns()
    for key in keys:
        cache.get_or_set(key, value)
    return perf_counter_ns() - t0


async def t_aget(cache, keys, value):
    t0 = perf_counter_ns()
    for key in keys:
        await cache.aget(key)
    return perf_counter_ns() - t0


async def t_aset(cache, keys, value):
    t0 = perf_counter_ns()
    for key in keys:
        await cache.aset(key, value)
    return perf_counter_ns() - t0


def cycle(pool: list, n: int) -> list:
    return [pool[i % len(pool)] for i in range(n)]


def noop(cache, batch) -> None:
    pass


@dataclass
class Op:
    name: str
    timed: Callable
    value: Any
    # The batch of n arguments the timed loop iterates over.
    batch: Callable[[int], list]
    # Once per backend, untimed: the entries the operation needs.
    setup: Callable[[Any], None] = lambda cache: None
    # Around every batch, untimed.
    before: Callable[[Any, list], None] = noop
    after: Callable[[Any, list], None] = noop
    # Once per backend after setup: that the operation does what its name says.
    check: Callable[[Any], None] = lambda cache: None
    is_async: bool = False


def _keys(prefix: str, n: int = POOL) -> list[str]:
    return [f"bench:{prefix}:{i}" for i in range(n)]


def _fill(keys: list[str], value: Any) -> Callable[[Any], None]:
    def setup(cache):
        for start in range(0, len(keys), 100):
            cache.set_many(dict.fromkeys(keys[start : start + 100], value))

    return setup


def _expect(what: str, got: Any, want: Any) -> None:
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def make_ops() -> list[Op]:
    str_keys = _keys("str")
    dict_keys = _keys("dict")
    miss_keys = _keys("miss")
    ctr_keys = _keys("ctr")
    groups = [str_keys[i : i + 10] for i in range(0, POOL, 10)]
    set_groups = [dict.fromkeys(_keys(f"setmany{j}", 10), SHORT_STR) for j in range(POOL // 10)]
    fill_str = _fill(str_keys, SHORT_STR)

    def check_get(keys, value):
        return lambda cache: _expect("get hit", cache.get(keys[1]), value)

    def check_miss(cache):
        _expect("get miss", cache.get(miss_keys[1], "default"), "default")

    def check_add(cache):
        cache.delete("bench:add:check")
        _expect("add of a new key", cache.add("bench:add:check", SHORT_STR), True)
        cache.delete("bench:add:check")

    def check_incr(cache):
        before = cache.get(ctr_keys[1])
        _expect("incr", cache.incr(ctr_keys[1]), before + 1)

    def check_get_many(cache):
        _expect("get_many(10)", cache.get_many(groups[1]), dict.fromkeys(groups[1], SHORT_STR))

    def check_set_many(cache):
        _expect("set_many(10)", cache.set_many(set_groups[1]), [])
        _expect("set_many(10) then get_many", cache.get_many(list(set_groups[1])), set_groups[1])

    def check_delete(cache):
        cache.set("bench:del:check", SHORT_STR)
        _expect("delete of a present key", cache.delete("bench:del:check"), True)

    def check_get_or_set(cache):
        _expect("get_or_set hit", cache.get_or_set(str_keys[1], "other"), SHORT_STR)

    def check_aget(cache):
        _expect("aget hit", asyncio.run(cache.aget(str_keys[1])), SHORT_STR)

    def delete_all(cache, keys):
        for start in range(0, len(keys), 100):
            cache.delete_many(keys[start : start + 100])

    return [
        Op(
            "get hit (short str)",
            t_get,
            None,
            lambda n: cycle(str_keys, n),
            fill_str,
            check=check_get(str_keys, SHORT_STR),
        ),
        Op(
            "get hit (1 KB dict)",
            t_get,
            None,
            lambda n: cycle(dict_keys, n),
            _fill(dict_keys, DICT_1K),
            check=check_get(dict_keys, DICT_1K),
        ),
        Op("get miss", t_get, None, lambda n: cycle(miss_keys, n), check=check_miss),
        Op("set (short str)", t_set, SHORT_STR, lambda n: cycle(_keys("set"), n)),
        # add of keys that are not there: the batch's keys are removed after it, untimed.
        Op("add (new key)", t_add, SHORT_STR, lambda n: _keys("add", n), after=delete_all, check=check_add),
        Op("incr", t_incr, None, lambda n: cycle(ctr_keys, n), _fill(ctr_keys, 0), check=check_incr),
        Op("get_many(10)", t_get_many, None, lambda n: cycle(groups, n), fill_str, check=check_get_many),
        Op("set_many(10)", t_set_many, None, lambda n: cycle(set_groups, n), check=check_set_many),
        # delete of keys that are there: the batch's keys are set before it, untimed.
        Op(
            "delete (present key)",
            t_delete,
            None,
            lambda n: _keys("del", n),
            before=lambda cache, keys: _fill(keys, SHORT_STR)(cache),
            check=check_delete,
        ),
        Op("get_or_set hit", t_get_or_set, "other", lambda n: cycle(str_keys, n), fill_str, check=check_get_or_set),
        Op(
            "aget hit (short str)",
            t_aget,
            None,
            lambda n: cycle(str_keys, n),
            fill_str,
            check=check_aget,
            is_async=True,
        ),
        Op("aset (short str)", t_aset, SHORT_STR, lambda n: cycle(_keys("aset"), n), is_async=True),
    ]


def entry_count(cache) -> int:
    """Entries in a RustCache (its stats) or a LocMemCache (its dict)."""
    return cache.stats()["entries"] if hasattr(cache, "stats") else len(cache._cache)


def make_eviction_ops() -> list[Op]:
    """Operations on a cache full at FULL_ENTRIES entries (the EVICTION_BACKENDS)."""
    full_keys = _keys("full", FULL_ENTRIES)
    fresh = iter(range(1 << 62))  # never-used key numbers, shared by every backend and batch
    # The hits go over every entry in a shuffled order, each batch taking the next n: a batch's keys
    # are then spread over the whole cache whatever n is (a batch cycling from the first key would
    # hit only n entries, and a smaller calibrated batch would find them hotter in the CPU's caches).
    shuffled = full_keys[:]
    random.Random(1).shuffle(shuffled)
    hit_order = itertools.cycle(shuffled)

    def fill_full(cache):
        cache.clear()
        _fill(full_keys, SHORT_STR)(cache)

    def new_keys(cache, batch):
        # Untimed, before every batch: keys no cache has seen, so every set writes a new entry.
        batch[:] = [f"bench:new:{next(fresh)}" for _ in batch]

    def next_hits(cache, batch):
        batch[:] = [next(hit_order) for _ in batch]

    def check_get_full(cache):
        _expect("entries of the full cache", entry_count(cache), FULL_ENTRIES)
        _expect("get hit, oldest entry", cache.get(full_keys[0]), SHORT_STR)
        _expect("get hit, newest entry", cache.get(full_keys[-1]), SHORT_STR)

    def check_set_evicts(cache):
        _expect("entries of the full cache", entry_count(cache), FULL_ENTRIES)
        writes = 5000
        stats = getattr(cache, "stats", None)
        evictions = stats()["evictions"] if stats else 0
        batch = [None] * writes
        new_keys(cache, batch)
        for key in batch:
            cache.set(key, SHORT_STR)
            if entry_count(cache) > FULL_ENTRIES:
                raise AssertionError(f"set with eviction: {entry_count(cache)} entries > MAX_ENTRIES")
        _expect("the newest entry", cache.get(batch[-1]), SHORT_STR)
        if cache.get(full_keys[0]) is not None:
            raise AssertionError("set with eviction: the oldest entry survived")
        adaptive = getattr(getattr(cache, "_options", None), "eviction", "lru") == "adaptive"
        if adaptive or cache._cull_frequency == FULL_ENTRIES:
            # One entry out for every entry in: the cache stays exactly full.
            _expect("entries after writing new keys", entry_count(cache), FULL_ENTRIES)
            if stats:
                _expect("evictions of as many sets", stats()["evictions"] - evictions, writes)

    return [
        Op(
            "get hit (full cache)",
            t_get,
            None,
            lambda n: [None] * n,
            fill_full,
            before=next_hits,
            check=check_get_full,
        ),
        Op(
            "set of a new key (full cache)",
            t_set,
            SHORT_STR,
            lambda n: [None] * n,
            fill_full,
            before=new_keys,
            check=check_set_evicts,
        ),
    ]


# ---------------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class Plan:
    reps: int
    batch_ns: int
    thread_seconds: float
    thread_reps: int
    memory_entries: int = 1_000_000
    # Whether the memory of Redis and diskcache is measured too (a million inserts take them minutes).
    memory_out_of_process: bool = True
    threads: tuple[int, ...] = (1, 2, 4)


# Short batches (~2 ms) taken many times: on a shared machine a batch is then often not preempted,
# and the median is that of the unhindered ones.
QUICK = Plan(reps=31, batch_ns=2_000_000, thread_seconds=0.4, thread_reps=3, memory_out_of_process=False)
FULL = Plan(reps=151, batch_ns=2_000_000, thread_seconds=1.0, thread_reps=5)


@dataclass
class Stat:
    median: float
    p25: float
    p75: float
    samples: int
    batch: int = 0

    @classmethod
    def of(cls, values: list[float], batch: int = 0) -> "Stat":
        if len(values) >= 2:
            q = statistics.quantiles(values, n=4)
            p25, p75 = q[0], q[2]
        else:
            p25 = p75 = values[0]
        return cls(statistics.median(values), p25, p75, len(values), batch)


@dataclass
class Results:
    # op name -> backend label -> Stat (ns per op)
    ops: dict[str, dict[str, Stat]] = field(default_factory=dict)
    # threads -> backend label -> Stat (aggregate ops/s)
    threads: dict[int, dict[str, Stat]] = field(default_factory=dict)
    # processes -> backend label -> Stat (aggregate ops/s of the read-heavy mix)
    processes: dict[int, dict[str, Stat]] = field(default_factory=dict)
    # processes -> backend label -> Stat (aggregate ops/s of gets alone: do reads scale?)
    processes_reads: dict[int, dict[str, Stat]] = field(default_factory=dict)
    # backend label -> bytes per entry (and details)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    # op name -> backend label -> Stat (ns per op), on the full caches of EVICTION_BACKENDS
    eviction: dict[str, dict[str, Stat]] = field(default_factory=dict)


def rotated(backends: list, rep: int) -> list:
    k = rep % len(backends)
    return backends[k:] + backends[:k]


def run_batch(op: Op, cache: Any, args: list) -> int:
    op.before(cache, args)
    elapsed = op.timed(cache, args, op.value)
    op.after(cache, args)
    return elapsed


async def arun_batch(op: Op, cache: Any, args: list) -> int:
    op.before(cache, args)
    elapsed = await op.timed(cache, args, op.value)
    op.after(cache, args)
    return elapsed


# Timings of a calibration step: the least is kept, so that a step preempted on a busy machine does not
# make the batch far too small (a batch of a few dozen calls measures cold caches and the timer).
CALIBRATION_TRIES = 3


def calibrated(measure: Callable[[int], int], target_ns: int) -> int:
    """The batch size n for which a batch takes about target_ns."""
    n = 4
    while True:
        measure(n)  # warm
        elapsed = max(min(measure(n) for _ in range(CALIBRATION_TRIES)), 1)
        if elapsed >= target_ns // 8 or n >= 1 << 20:
            return max(10, min(1 << 20, round(n * target_ns / elapsed)))
        n *= 2


def time_sync_op(op: Op, caches: dict[Backend, Any], plan: Plan) -> dict[str, Stat]:
    backends = list(caches)
    sizes = {}
    batches = {}
    for backend in backends:
        cache = caches[backend]
        op.setup(cache)
        op.check(cache)
        sizes[backend] = calibrated(lambda n, cache=cache: run_batch(op, cache, op.batch(n)), plan.batch_ns)
        batches[backend] = op.batch(sizes[backend])
    samples: dict[Backend, list[float]] = {backend: [] for backend in backends}
    gc.collect()
    for rep in range(plan.reps):
        for backend in rotated(backends, rep):
            elapsed = run_batch(op, caches[backend], batches[backend])
            samples[backend].append(elapsed / sizes[backend])
    return {backend.label: Stat.of(samples[backend], sizes[backend]) for backend in backends}


async def time_async_op(op: Op, caches: dict[Backend, Any], plan: Plan) -> dict[str, Stat]:
    backends = list(caches)
    sizes = {}
    batches = {}
    for backend in backends:
        cache = caches[backend]
        n = 4
        while True:
            await arun_batch(op, cache, op.batch(n))
            elapsed = max(min([await arun_batch(op, cache, op.batch(n)) for _ in range(CALIBRATION_TRIES)]), 1)
            if elapsed >= plan.batch_ns // 8 or n >= 1 << 20:
                break
            n *= 2
        sizes[backend] = max(10, min(1 << 20, round(n * plan.batch_ns / elapsed)))
        batches[backend] = op.batch(sizes[backend])
    samples: dict[Backend, list[float]] = {backend: [] for backend in backends}
    gc.collect()
    for rep in range(plan.reps):
        for backend in rotated(backends, rep):
            elapsed = await arun_batch(op, caches[backend], batches[backend])
            samples[backend].append(elapsed / sizes[backend])
    return {backend.label: Stat.of(samples[backend], sizes[backend]) for backend in backends}


def own_shared_store(caches: dict[Backend, Any], op_name: str) -> dict[Backend, Any]:
    """``caches`` with SharedCache on a LOCATION of this operation's own.

    Every other peer forgets an operation's entries when they are deleted; an LMDB file does not shrink,
    and LMDB 0.9 rewrites its whole list of free pages in every write transaction, so on one shared
    LOCATION a row would pay for the entries the rows before it wrote and deleted (`add` of new keys
    leaves the next row over 100,000 entries' worth of free pages). Each row gets a fresh store instead;
    what a store that shrank costs is measured apart, by ``cargo run --release --example shared_writes``
    (benchmarks/README.md).
    """
    if SHARED not in caches:
        return caches
    from django.conf import settings

    from django_rustcache import SharedCache

    params = dict(settings.CACHES[SHARED.alias])
    slug = "".join(c if c.isalnum() else "-" for c in op_name)
    location = f"{params.pop('LOCATION')}-{slug}"
    params.pop("BACKEND")
    return {**caches, SHARED: SharedCache(location, params)}


def time_ops(ops: list[Op], caches: dict[Backend, Any], plan: Plan, results: Results, into: str = "ops") -> None:
    for op in ops:
        if op.is_async:
            continue
        started = time.monotonic()
        getattr(results, into)[op.name] = time_sync_op(op, own_shared_store(caches, op.name), plan)
        print(f"  {op.name}: {time.monotonic() - started:.1f} s", file=sys.stderr)
    async_ops = [(op, own_shared_store(caches, op.name)) for op in ops if op.is_async]

    async def run_async() -> None:
        # One event loop for every async operation, as an ASGI server runs one.
        for op, op_caches in async_ops:
            started = time.monotonic()
            results.ops[op.name] = await time_async_op(op, op_caches, plan)
            print(f"  {op.name}: {time.monotonic() - started:.1f} s", file=sys.stderr)

    if async_ops:
        # Set up and check outside the loop: the checks run a loop of their own.
        for op, op_caches in async_ops:
            for cache in op_caches.values():
                op.setup(cache)
                op.check(cache)
        asyncio.run(run_async())


# ---------------------------------------------------------------------------------------------------
# Threads: a 50/50 get/set mix for a fixed time, each thread with its own caches[alias] instance.


def mix_throughput(alias: str, threads: int, seconds: float) -> float:
    from django.core.cache import caches

    keys = _keys("mix")
    _fill(keys, SHORT_STR)(caches[alias])
    barrier = threading.Barrier(threads + 1)
    counts = [0] * threads
    ends = [0] * threads
    duration_ns = int(seconds * 1e9)

    def worker(tid: int) -> None:
        cache = caches[alias]  # this thread's instance, held
        mine = keys[tid * 137 % POOL :] + keys[: tid * 137 % POOL]
        chunks = [mine[i : i + 50] for i in range(0, POOL, 50)]
        value = SHORT_STR
        done = 0
        barrier.wait()
        deadline = perf_counter_ns() + duration_ns
        while True:
            for chunk in chunks:
                for key in chunk:
                    cache.get(key)
                    cache.set(key, value)
                done += 2 * len(chunk)
                if perf_counter_ns() >= deadline:
                    counts[tid] = done
                    ends[tid] = perf_counter_ns()
                    return

    pool = [threading.Thread(target=worker, args=(tid,)) for tid in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = perf_counter_ns()
    for thread in pool:
        thread.join()
    return sum(counts) / ((max(ends) - start) / 1e9)


def time_threads(backends: list[Backend], plan: Plan, results: Results) -> None:
    for threads in plan.threads:
        started = time.monotonic()
        samples: dict[Backend, list[float]] = {backend: [] for backend in backends}
        for rep in range(plan.thread_reps):
            for backend in rotated(backends, rep):
                samples[backend].append(mix_throughput(backend.alias, threads, plan.thread_seconds))
        results.threads[threads] = {backend.label: Stat.of(samples[backend]) for backend in backends}
        print(f"  get/set mix, {threads} thread(s): {time.monotonic() - started:.1f} s", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# Processes: a read-heavy mix (9 gets to 1 set), and gets alone, in 1, 2, 4 processes at once, each with
# its own caches[alias] (SharedCache, Redis and diskcache share one store between them; RustCache and
# LocMemCache are one cache per process, shown for the per-process cost). Gets alone show whether reads
# scale with processes: writers take turns on one store, readers should not.

PROCESS_COUNTS = (1, 2, 4)


def procs_child(alias: str, seconds: float, go: str, reads_only: bool = False) -> dict[str, Any]:
    from django.core.cache import caches

    cache = caches[alias]
    keys = _keys("procs")
    cache.set_many(dict.fromkeys(keys, SHORT_STR))
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    done = 0
    start = perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    while True:
        for i in range(0, POOL, 10):
            for key in keys[i : i + 9]:
                cache.get(key)
            if reads_only:
                cache.get(keys[i + 9])
            else:
                cache.set(keys[i + 9], SHORT_STR)
        done += POOL
        if perf_counter_ns() >= deadline:
            break
    return {"ops": done, "start": start, "end": perf_counter_ns()}


def process_throughput(
    backend: Backend, procs: int, seconds: float, redis_port: int | None, diskcache_dir, reads_only: bool = False
) -> float:
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="bench-procs-") as tmp:
        go = os.path.join(tmp, "go")
        command = [sys.executable, str(Path(__file__).resolve()), "--procs-child", backend.alias, "--go", go]
        command += ["--procs-seconds", str(seconds)] + (["--procs-reads-only"] if reads_only else [])
        if redis_port is not None:
            command += ["--redis-port", str(redis_port)]
        if diskcache_dir is not None:
            command += ["--diskcache-dir", diskcache_dir]
        children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {backend.label} process did not start")
        Path(go).touch()
        reports = []
        for child in children:
            out, _ = child.communicate(timeout=seconds * 10 + 60)
            reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = (max(r["end"] for r in reports) - min(r["start"] for r in reports)) / 1e9
    return sum(r["ops"] for r in reports) / wall


def time_processes(backends: list[Backend], plan: Plan, redis_port, diskcache_dir, results: Results) -> None:
    for reads_only, table, name in (
        (False, results.processes, "read-heavy mix"),
        (True, results.processes_reads, "gets alone"),
    ):
        for procs in PROCESS_COUNTS:
            started = time.monotonic()
            samples: dict[Backend, list[float]] = {backend: [] for backend in backends}
            for rep in range(plan.thread_reps):
                for backend in rotated(backends, rep):
                    samples[backend].append(
                        process_throughput(backend, procs, plan.thread_seconds, redis_port, diskcache_dir, reads_only)
                    )
            table[procs] = {backend.label: Stat.of(samples[backend]) for backend in backends}
            print(f"  {name}, {procs} process(es): {time.monotonic() - started:.1f} s", file=sys.stderr)


def process_table(by_procs: dict[int, dict[str, Stat]], labels: list[str]) -> str:
    lines = ["| processes | " + " | ".join(labels) + " |", "|---" + "|--:" * len(labels) + "|"]
    for procs, by in by_procs.items():
        cells = [f"{by[label].median / 1000:,.0f} k" if label in by else "-" for label in labels]
        lines.append(f"| {procs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Memory: in a fresh subprocess per backend.

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def memory_value(i: int) -> bytes:
    """100 bytes, distinct per entry."""
    return b"%0100d" % i


def memory_child(alias: str, entries: int, redis_port: int | None, diskcache_dir: str | None) -> dict[str, Any]:
    configure_django(redis_port, diskcache_dir)
    from django.core.cache import caches

    cache = caches[alias]
    cache.clear()
    # Warm what a first call initialises (connections, tables, interned names).
    cache.set_many({f"warm:{i}": memory_value(i) for i in range(10)})
    cache.delete_many([f"warm:{i}" for i in range(10)])
    server_before = redis_used_memory(redis_port) if alias == REDIS.alias else 0
    gc.collect()
    before = rss_bytes()
    # diskcache commits every set on its own (~0.4 ms here); one transaction per chunk makes the
    # million inserts take a minute instead of several. It does not change what is stored.
    bulk = cache._cache.transact if alias == DISKCACHE.alias else contextlib.nullcontext
    chunk = 1000
    for start in range(0, entries, chunk):
        with bulk():
            cache.set_many({f"mem:{i}": memory_value(i) for i in range(start, min(start + chunk, entries))})
    gc.collect()
    after = rss_bytes()
    for i in (0, entries // 2, entries - 1):
        _expect(f"entry {i} after inserting {entries}", cache.get(f"mem:{i}"), memory_value(i))
    report = {"rss_before": before, "rss_after": after, "bytes_per_entry": (after - before) / entries}
    if alias == REDIS.alias:
        server_after = redis_used_memory(redis_port)
        report["client_bytes_per_entry"] = report["bytes_per_entry"]
        report["bytes_per_entry"] = (server_after - server_before) / entries
        report["measured"] = "redis-server used_memory"
        cache.clear()
    elif alias == DISKCACHE.alias:
        report["disk_bytes_per_entry"] = tree_bytes(Path(diskcache_dir)) / entries
        report["measured"] = "process RSS (the data itself is on disk)"
    elif alias == SHARED.alias:
        data = Path(os.environ[SHARED_DIR_ENV]) / "data.mdb"
        report["disk_bytes_per_entry"] = data.stat().st_blocks * 512 / entries
        report["measured"] = "process RSS (the pages of the shared map it touched: the data itself)"
    else:
        report["measured"] = "process RSS"
    return report


def redis_used_memory(port: int | None) -> int:
    import redis

    return int(redis.Redis(host="127.0.0.1", port=port).info("memory")["used_memory"])


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def time_memory(backends: list[Backend], plan: Plan, redis_port: int | None, results: Results) -> None:
    def measure(backend: Backend) -> tuple[Backend, subprocess.CompletedProcess, float]:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="bench-memory-") as tmp:
            command = [sys.executable, str(Path(__file__).resolve()), "--memory-child", backend.alias]
            command += ["--memory-entries", str(plan.memory_entries), "--diskcache-dir", tmp]
            if redis_port is not None:
                command += ["--redis-port", str(redis_port)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        return backend, done, time.monotonic() - started

    if not plan.memory_out_of_process:
        backends = [backend for backend in backends if backend not in (REDIS, DISKCACHE)]
    # Each child measures its own RSS (or the Redis server's memory), so two can run at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        measured = list(pool.map(measure, backends))
    for backend, done, seconds in measured:
        if done.returncode != 0:
            print(f"note: memory of {backend.label} not measured:\n{done.stderr}", file=sys.stderr)
            continue
        results.memory[backend.label] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  memory, {backend.label}: {seconds:.1f} s", file=sys.stderr)


def cache_dir() -> Path:
    path = REPO / ".cache"
    path.mkdir(exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------------
# Report

# (row, bound on the ratio to LocMemCache)
TARGETS = [
    ("get hit (short str)", 0.10),
    ("set (short str)", 0.15),
    ("incr", 0.10),
    ("get_many(10)", 0.15),
    ("aget hit (short str)", 0.01),
]
MEMORY_TARGET = 0.5
# SharedCache: (row, peer, bound on the ratio of SharedCache's median to the peer's)
SHARED_TARGETS = [
    ("get hit (short str)", LOCMEM, 0.25),
    ("get hit (short str)", DISKCACHE, 0.1),
    ("set (short str)", LOCMEM, 1.0),
    ("set (short str)", DISKCACHE, 0.05),
    ("incr", LOCMEM, 1.0),
]
# EVICTION "adaptive" is no more than 10% slower than "lru" on get and set: (row, bound on the ratio
# adaptive / lru), on the unbounded caches of the main table and on the full caches of the eviction table.
ADAPTIVE_TARGETS = [("get hit (short str)", 1.10), ("set (short str)", 1.10)]
ADAPTIVE_FULL_TARGETS = [("get hit (full cache)", 1.10), ("set of a new key (full cache)", 1.10)]


def fmt_ns(ns: float) -> str:
    if ns >= 100_000:
        return f"{ns / 1000:,.0f} µs"
    if ns >= 10_000:
        return f"{ns / 1000:.1f} µs"
    return f"{ns:,.0f} ns"


def fmt_ratio(ratio: float) -> str:
    if ratio < 0.01:
        return f"{ratio:.4f}x"
    if ratio < 10:
        return f"{ratio:.3f}x" if ratio < 0.1 else f"{ratio:.2f}x"
    return f"{ratio:,.0f}x"


def median_rows(ops: dict[str, dict[str, Stat]], labels: list[str], base: str) -> list[str]:
    """A row per operation: each backend's median and its ratio to ``base``'s."""
    lines = []
    for name, by in ops.items():
        cells = []
        for label in labels:
            if label not in by:
                cells.append("-")
                continue
            ratio = by[label].median / by[base].median
            cells.append(f"{fmt_ns(by[label].median)} ({fmt_ratio(ratio)})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def table(results: Results, labels: list[str]) -> str:
    lines = ["| operation | " + " | ".join(labels) + " |", "|---" + "|--:" * len(labels) + "|"]
    base = LOCMEM.label
    lines += median_rows(results.ops, labels, base)
    for threads, by in results.threads.items():
        cells = []
        for label in labels:
            if label not in by:
                cells.append("-")
                continue
            ns = 1e9 / by[label].median
            ratio = by[base].median / by[label].median  # as a time per op: lower is better
            cells.append(f"{fmt_ns(ns)} ({fmt_ratio(ratio)})")
        lines.append(
            f"| get/set 50/50 mix, {threads} thread{'s' if threads > 1 else ''} (aggregate) | "
            + " | ".join(cells)
            + " |"
        )
    if results.memory:
        cells = []
        for label in labels:
            if label not in results.memory:
                cells.append("-")
                continue
            per = results.memory[label]["bytes_per_entry"]
            if base in results.memory:
                cells.append(f"{per:,.0f} B ({fmt_ratio(per / results.memory[base]['bytes_per_entry'])})")
            else:
                cells.append(f"{per:,.0f} B")
        lines.append("| memory per entry (1,000,000 x 100 B) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def eviction_table(results: Results) -> str:
    labels = [b.label for b in EVICTION_BACKENDS if any(b.label in by for by in results.eviction.values())]
    base = EVICT_LRU.label
    lines = ["| operation | " + " | ".join(labels) + " |", "|---" + "|--:" * len(labels) + "|"]
    lines += median_rows(results.eviction, labels, base)
    return "\n".join(lines)


def throughput_table(results: Results, labels: list[str]) -> str:
    lines = ["| threads | " + " | ".join(labels) + " |", "|---" + "|--:" * len(labels) + "|"]
    for threads, by in results.threads.items():
        cells = [f"{by[label].median / 1000:,.0f} k" if label in by else "-" for label in labels]
        lines.append(f"| {threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(value: float, bound: float) -> str:
    if value <= bound:
        return "met"
    return f"**missed** by {(value / bound - 1) * 100:.0f}%"


def target_checks(results: Results) -> str:
    rust, base = RUST.label, LOCMEM.label
    lines = ["| target | measured | bound | |", "|---|--:|--:|---|"]
    for name, bound in TARGETS:
        by = results.ops.get(name)
        if not by:
            continue
        ratio = by[rust].median / by[base].median
        lines.append(f"| {name}, vs LocMemCache | {fmt_ratio(ratio)} | ≤ {bound}x | {verdict(ratio, bound)} |")
    by = results.ops.get("get hit (short str)")
    if by and FLOOR.label in by:
        ratio = by[rust].median / by[FLOOR.label].median
        lines.append(
            f"| get hit (short str), vs dict+pickle floor | {fmt_ratio(ratio)} | ≤ 1x | {verdict(ratio, 1.0)} |"
        )
    if rust in results.memory and base in results.memory:
        ratio = results.memory[rust]["bytes_per_entry"] / results.memory[base]["bytes_per_entry"]
        met = verdict(ratio, MEMORY_TARGET)
        lines.append(f"| memory per entry, vs LocMemCache | {fmt_ratio(ratio)} | ≤ {MEMORY_TARGET}x | {met} |")
    for name, peer, bound in SHARED_TARGETS:
        by = results.ops.get(name, {})
        if SHARED.label not in by or peer.label not in by:
            continue
        ratio = by[SHARED.label].median / by[peer.label].median
        met = verdict(ratio, bound)
        lines.append(f"| {name}, SharedCache vs {peer.label} | {fmt_ratio(ratio)} | ≤ {bound}x | {met} |")
    for source, targets, lru, adaptive, where in [
        (results.ops, ADAPTIVE_TARGETS, rust, RUST_ADAPTIVE.label, ""),
        (results.eviction, ADAPTIVE_FULL_TARGETS, EVICT_LRU.label, EVICT_ADAPTIVE.label, f", {FULL_ENTRIES:,} max"),
    ]:
        for name, bound in targets:
            by = source.get(name, {})
            if lru not in by or adaptive not in by:
                continue
            ratio = by[adaptive].median / by[lru].median
            met = verdict(ratio, bound)
            lines.append(f"| {name}{where}, EVICTION adaptive vs lru | {fmt_ratio(ratio)} | ≤ {bound}x | {met} |")
    return "\n".join(lines)


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine(command: str, plan_name: str, redis_port: int | None) -> dict[str, str]:
    import django

    import django_rustcache

    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "mode": plan_name,
        "CPU": f"{cpu_model()} ({os.cpu_count()} logical CPUs)",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Django": django.get_version(),
        "django-rustcache": f"{getattr(django_rustcache, '__version__', '?')} from {django_rustcache.__file__}",
    }
    if module_available("diskcache"):
        import diskcache

        info["diskcache"] = diskcache.__version__
    if redis_port is not None:
        import redis

        server = redis.Redis(host="127.0.0.1", port=redis_port).info("server")
        info["Redis"] = f"redis-server {server['redis_version']}, redis-py {redis.__version__}"
    return info


def is_release_build() -> bool:
    import django_rustcache

    return "site-packages" in django_rustcache.__file__


def report(results: Results, labels: list[str], info: dict[str, str], plan: Plan) -> str:
    out = [table(results, labels), ""]
    if results.eviction:
        out += [
            f"On full caches (`MAX_ENTRIES` {FULL_ENTRIES:,}; every set of a new key evicts one entry, except with "
            f"`CULL_FREQUENCY` 3, which culls a third every {FULL_ENTRIES // 3:,} sets); ratio to RustCache lru:",
            "",
            eviction_table(results),
            "",
        ]
    out += ["Targets (RustCache, medians, same run):", "", target_checks(results), ""]
    if results.threads:
        out += ["Aggregate throughput of the get/set mix, ops/s (medians):", "", throughput_table(results, labels), ""]
    if results.processes:
        plabels = [label for label in labels if any(label in by for by in results.processes.values())]
        out += [
            "Aggregate throughput of a read-heavy mix (9 gets : 1 set) in N processes at once, ops/s (medians; "
            "SharedCache, Redis and diskcache: one store for all the processes; RustCache and LocMemCache: one "
            "cache per process, which is not the same service):",
            "",
            process_table(results.processes, plabels),
            "",
        ]
    if results.processes_reads:
        plabels = [label for label in labels if any(label in by for by in results.processes_reads.values())]
        out += [
            "Aggregate throughput of gets alone in N processes at once, ops/s (medians; stores as above): reads "
            "take no lock a writer holds, so they should scale with processes up to the core count:",
            "",
            process_table(results.processes_reads, plabels),
            "",
        ]
    out += ["Machine and run:", ""]
    out += [f"- {key}: {value}" for key, value in info.items()]
    out += [
        f"- timing: {plan.reps} repetitions per operation, batches of about {plan.batch_ns / 1e6:g} ms per backend, "
        f"backends round-robin; threads: {plan.thread_reps} x {plan.thread_seconds:g} s per backend and count",
        "- cells: median ns per call (ratio to LocMemCache's median in the same run; lower is better); "
        "the mix rows show wall time per operation of all threads together (1 / throughput)",
    ]
    if results.memory:
        details = []
        for label, mem in results.memory.items():
            extra = ""
            if "disk_bytes_per_entry" in mem:
                extra = f", {mem['disk_bytes_per_entry']:,.0f} B/entry on disk"
            details.append(f"{label}: {mem['measured']}{extra}")
        out.append("- memory: 1,000,000 entries of distinct 100-byte `bytes` values; " + "; ".join(details))
        if not plan.memory_out_of_process:
            out.append("- memory of Redis and diskcache: not measured in --quick mode")
    if not is_release_build():
        out.append(
            "- **warning: django_rustcache is not an installed (release) build; numbers are not representative**"
        )
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run of about a minute (default: a few minutes)")
    parser.add_argument("--no-redis", action="store_true", help="leave out the Redis peer")
    parser.add_argument("--redis-port", type=int, help="use a redis-server already running on 127.0.0.1:PORT")
    parser.add_argument("--no-diskcache", action="store_true", help="leave out the diskcache peer")
    parser.add_argument("--only", help="comma-separated substrings: time only the operations whose name has one")
    parser.add_argument("--no-threads", action="store_true", help="skip the multi-threaded mix")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--no-eviction", action="store_true", help="skip the operations on full caches")
    parser.add_argument("--reps", type=int, help="repetitions per operation (overrides the mode's)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write benchmarks/results/")
    parser.add_argument(
        "--readme",
        type=Path,
        help="also replace the block between bench markers in this file (benchmarks/README.md's always is)",
    )
    parser.add_argument("--no-processes", action="store_true", help="skip the multi-process mix")
    parser.add_argument("--no-shared", action="store_true", help="leave out SharedCache")
    parser.add_argument("--procs-child", help=argparse.SUPPRESS)
    parser.add_argument("--procs-seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--procs-reads-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--memory-entries", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--diskcache-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def update_readme(path: Path, text: str) -> None:
    content = path.read_text()
    start, end = content.find(README_START), content.find(README_END)
    if start < 0 or end < start:
        print(f"note: {path} has no {README_START} ... {README_END} block; not updated", file=sys.stderr)
        return
    path.write_text(content[: start + len(README_START)] + "\n" + text + content[end:])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(HERE))  # floor.py
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.memory_entries, args.redis_port, args.diskcache_dir)))
        return 0
    if args.procs_child:
        configure_django(args.redis_port, args.diskcache_dir)
        print(json.dumps(procs_child(args.procs_child, args.procs_seconds, args.go, args.procs_reads_only)))
        return 0
    shared_root = None
    if not args.no_shared:
        shm = Path("/dev/shm")
        shared_root = tempfile.mkdtemp(dir=shm if shm.is_dir() else cache_dir(), prefix="bench-shared-")
        os.environ[SHARED_DIR_ENV] = str(Path(shared_root) / "cache")

    plan = QUICK if args.quick else FULL
    if args.reps:
        plan = dataclasses.replace(plan, reps=args.reps)
    command = " ".join([os.path.relpath(sys.executable, REPO), os.path.relpath(__file__, REPO), *sys.argv[1:]])
    if os.environ.get("BENCH_VIA"):  # set by `make bench`
        command = f"{os.environ['BENCH_VIA']} (runs {command})"

    started_redis = False
    redis_port = args.redis_port
    if redis_port is None and not args.no_redis:
        if module_available("redis"):
            redis_port = start_redis()
            started_redis = redis_port is not None
        else:
            print(
                "note: Redis peer skipped: the redis package is not installed (pip install --group bench)",
                file=sys.stderr,
            )
    diskcache_dir = None
    if not args.no_diskcache:
        if module_available("diskcache"):
            diskcache_dir = tempfile.mkdtemp(dir=cache_dir(), prefix="bench-diskcache-")
        else:
            print(
                "note: diskcache peer skipped: the diskcache package is not installed (pip install --group bench)",
                file=sys.stderr,
            )

    try:
        configure_django(redis_port, diskcache_dir)
        from django.core.cache import caches

        backends = [RUST, RUST_ADAPTIVE, LOCMEM, FLOOR]
        if redis_port is not None:
            backends.append(REDIS)
        if diskcache_dir is not None:
            backends.append(DISKCACHE)
        if shared_root is not None:
            backends.append(SHARED)
        held = {backend: caches[backend.alias] for backend in backends}
        for cache in held.values():
            cache.clear()
        if not is_release_build():
            print("warning: django_rustcache is not an installed release build (run `make bench`)", file=sys.stderr)
        info = machine(command, "quick" if args.quick else "full", redis_port)

        results = Results()
        ops = make_ops()
        eviction_ops = [] if args.no_eviction else make_eviction_ops()
        if args.only:
            wanted = [w.strip() for w in args.only.split(",")]
            ops = [op for op in ops if any(w in op.name for w in wanted)]
            eviction_ops = [op for op in eviction_ops if any(w in op.name for w in wanted)]
        run_started = time.monotonic()
        print("operations:", file=sys.stderr)
        time_ops(ops, held, plan, results)
        if eviction_ops:
            print("full caches:", file=sys.stderr)
            full = {backend: caches[backend.alias] for backend in EVICTION_BACKENDS}
            time_ops(eviction_ops, full, plan, results, into="eviction")
            for cache in full.values():
                cache.clear()
        if not args.no_threads:
            print("threads:", file=sys.stderr)
            time_threads(backends, plan, results)
        if not args.no_processes:
            print("processes:", file=sys.stderr)
            procs_backends = [b for b in backends if b not in (FLOOR, RUST_ADAPTIVE)]
            time_processes(procs_backends, plan, redis_port, diskcache_dir, results)
        for cache in held.values():
            cache.clear()
        if not args.no_memory:
            print("memory:", file=sys.stderr)
            time_memory(backends, plan, redis_port, results)
        info["duration"] = f"{time.monotonic() - run_started:.0f} s"
        info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    finally:
        if diskcache_dir is not None:
            shutil.rmtree(diskcache_dir, ignore_errors=True)
        if shared_root is not None:
            shutil.rmtree(shared_root, ignore_errors=True)
        if started_redis:
            stop_redis()

    labels = [backend.label for backend in backends]
    text = report(results, labels, info, plan)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.md").write_text("# Latest benchmark run\n\n" + text)
        raw = {
            "machine": info,
            "ops": {name: {k: vars(v) for k, v in by.items()} for name, by in results.ops.items()},
            "threads": {str(t): {k: vars(v) for k, v in by.items()} for t, by in results.threads.items()},
            "processes": {str(p): {k: vars(v) for k, v in by.items()} for p, by in results.processes.items()},
            "processes_reads": {
                str(p): {k: vars(v) for k, v in by.items()} for p, by in results.processes_reads.items()
            },
            "memory": results.memory,
            "eviction": {name: {k: vars(v) for k, v in by.items()} for name, by in results.eviction.items()},
        }
        (RESULTS / "latest.json").write_text(json.dumps(raw, indent=2) + "\n")
        update_readme(HERE / "README.md", text)
        if args.readme:
            update_readme(args.readme, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
