"""Soak test: a random workload on a bounded RustCache for a set time, watching resident memory.

Not a unit test. It runs every public operation (get, set, add, incr, touch, delete, get_many, set_many,
delete_many, has_key) with mixed value types and sizes, mixed timeouts (so entries expire) and a key
space far larger than ``MAX_ENTRIES`` (so the cache culls and the byte budget evicts), from one or more
threads. Every few seconds it prints the process's resident memory next to the store's own counters.

Once the cache is full, memory should stop growing: the verdict compares resident memory after the
warm-up with its value at the end of the warm-up, and fails (exit code 1) if it grew by more than
``--tolerance`` percent.

    python benchmarks/soak.py --seconds 60
    python benchmarks/soak.py --seconds 300 --threads 4 --max-entries 50000 --max-bytes 64000000
"""

import argparse
import contextlib
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import django
from django.conf import settings

MB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux), or the peak from getrusage elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class Workload:
    keys: list[str]
    max_value: int
    seed: int


def random_value(rng: random.Random, max_value: int) -> object:
    kind = rng.randrange(8)
    size = int(rng.paretovariate(1.2) * 16) % max_value
    if kind == 0:
        return rng.randrange(-(10**6), 10**6)
    if kind == 1:
        return "s" * size
    if kind == 2:
        return rng.randbytes(size)
    if kind == 3:
        return {"id": rng.randrange(10**9), "tags": ["t"] * (size // 8), "blob": "x" * (size // 2)}
    if kind == 4:
        return [rng.random() for _ in range(size // 16)]
    if kind == 5:
        return 10**30 + rng.randrange(10**6)
    if kind == 6:
        return Decimal(rng.randrange(10**6)) / 100
    return rng.random()


TIMEOUTS = [None, None, 300, 60, 5, 1, 0.2, 0.05, 0]


def worker(cache, work: Workload, stop: threading.Event, counts: list[int], index: int) -> None:
    rng = random.Random(work.seed + index)
    keys = work.keys

    def key() -> str:
        # A skewed popularity: a few hot keys, and a long tail that forces culling.
        if rng.random() < 0.7:
            return keys[min(int(rng.paretovariate(0.8)) - 1, len(keys) - 1)]
        return rng.choice(keys)

    done = 0
    while not stop.is_set():
        for _ in range(200):
            op = rng.randrange(100)
            if op < 45:
                cache.get(key())
            elif op < 65:
                cache.set(key(), random_value(rng, work.max_value), rng.choice(TIMEOUTS))
            elif op < 70:
                cache.add(key(), random_value(rng, work.max_value), rng.choice(TIMEOUTS))
            elif op < 76:
                with contextlib.suppress(ValueError, TypeError):  # missing, or not a number: as LocMemCache
                    cache.incr(key(), rng.choice([1, -1, 10**20]))
            elif op < 80:
                cache.touch(key(), rng.choice(TIMEOUTS))
            elif op < 85:
                cache.delete(key())
            elif op < 91:
                cache.get_many([key() for _ in range(10)])
            elif op < 95:
                cache.set_many({key(): random_value(rng, work.max_value) for _ in range(5)}, rng.choice(TIMEOUTS))
            elif op < 97:
                cache.delete_many([key() for _ in range(5)])
            else:
                cache.has_key(key())
        done += 200
        counts[index] = done


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long to run (default 60)")
    parser.add_argument("--interval", type=float, default=5, help="seconds between reports (default 5)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of warm-up (default: a quarter of the run); warm-up also lasts until the cache is full",
    )
    parser.add_argument("--threads", type=int, default=2, help="worker threads (default 2)")
    parser.add_argument("--keys", type=int, default=500_000, help="size of the key space (default 500,000)")
    parser.add_argument("--max-entries", type=int, default=10_000, help="MAX_ENTRIES (default 10,000)")
    parser.add_argument("--max-bytes", type=int, default=MB, help="MAX_BYTES (default 1 MiB)")
    parser.add_argument("--max-value", type=int, default=8_192, help="largest value size (default 8 KiB)")
    parser.add_argument("--tolerance", type=float, default=10.0, help="allowed RSS growth in %% (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warmup = args.seconds / 4 if args.warmup is None else args.warmup
    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django_rustcache.RustCache",
                "LOCATION": f"soak-{uuid.uuid4().hex}",
                "TIMEOUT": 300,
                "OPTIONS": {"MAX_ENTRIES": args.max_entries, "MAX_BYTES": args.max_bytes},
            }
        }
    )
    django.setup()
    from django.core.cache import caches

    cache = caches["default"]
    work = Workload(keys=[f"soak:{i}" for i in range(args.keys)], max_value=args.max_value, seed=args.seed)
    stop = threading.Event()
    counts = [0] * args.threads
    threads = [
        threading.Thread(target=worker, args=(cache, work, stop, counts, i), daemon=True) for i in range(args.threads)
    ]
    print(
        f"soak: {args.seconds:g}s, {args.threads} threads, {args.keys:,} keys, MAX_ENTRIES={args.max_entries:,}, "
        f"MAX_BYTES={args.max_bytes / MB:.1f} MiB, warm-up {warmup:g}s, tolerance {args.tolerance:g}%"
    )
    columns = [("t(s)", 6), ("ops", 11), ("ops/s", 9), ("RSS MiB", 8), ("entries", 8), ("bytes MiB", 9)]
    columns += [("evicted", 9), ("expired", 9)]
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    start = time.monotonic()
    for t in threads:
        t.start()
    samples: list[tuple[float, int]] = []
    full_at = None  # when the store first evicted: it is full from then on
    last_ops, last_t = 0, start
    errors = 0
    try:
        while (elapsed := time.monotonic() - start) < args.seconds:
            time.sleep(min(args.interval, args.seconds - elapsed))
            if not all(t.is_alive() for t in threads):
                print("a worker thread died", file=sys.stderr)
                errors += 1
                break
            now = time.monotonic()
            ops = sum(counts)
            rss = rss_bytes()
            stats = cache.stats()
            samples.append((now - start, rss))
            if full_at is None and stats["evictions"]:
                full_at = now - start
            print(
                f"{now - start:6.1f} {ops:11,} {(ops - last_ops) / (now - last_t):9,.0f} {rss / MB:8.1f} "
                f"{stats['entries']:8,} {stats['bytes'] / MB:9.2f} {stats['evictions']:9,} {stats['expirations']:9,}"
            )
            last_ops, last_t = ops, now
            if stats["entries"] > args.max_entries or stats["bytes"] > args.max_bytes:
                print("limits exceeded", file=sys.stderr)
                errors += 1
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    cache._native.check_invariants()

    if full_at is None:
        print("verdict: too short to judge (the cache never filled up; run longer or lower the limits)")
        return 2
    warmup = max(warmup, full_at)
    after = [rss for t, rss in samples if t > warmup]
    before = [rss for t, rss in samples if t <= warmup]
    if len(after) < 2:
        print(f"verdict: too short to judge (warm-up lasted {warmup:.0f}s; need two samples after it)")
        return 2
    base = before[-1]
    growth = (max(after) - base) / base * 100
    drift = (after[-1] - after[0]) / after[0] * 100
    print(
        f"RSS at the end of the warm-up ({warmup:.0f}s): {base / MB:.1f} MiB; "
        f"afterwards min {min(after) / MB:.1f}, max {max(after) / MB:.1f}, "
        f"last {after[-1] / MB:.1f} MiB; peak growth {growth:+.1f}%, first-to-last {drift:+.1f}%"
    )
    flat = growth <= args.tolerance and errors == 0
    print(f"verdict: {'FLAT' if flat else 'GROWING'} (tolerance {args.tolerance:g}%)")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
