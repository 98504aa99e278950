"""RedisNearCache's rows of `make bench`: every ratio is taken in this one run, the backends
interleaved round-robin per repetition, each cell a median.

- local hit vs RustCache's get hit (target <= 1.3x);
- a local miss served by the server vs Django's RedisCache get (target <= 0.8x);
- set vs RedisCache's set (target <= 0.8x);
- invalidation delay (a write by another client until the local copy has dropped the key), p50/p99;
- invalidations applied per second;
- for scale, the floor: a `PING` round trip on a raw socket from Python (no client library), which
  on this VM varies from run to run with where the scheduler puts the two processes.

The server is started by benchmarks/redis_server.sh (127.0.0.1, a free port, no persistence) and
stopped by its pid.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def per_op(f, keys, reps: int) -> float:
    """Median nanoseconds per call of f(key) over `reps` passes over `keys`."""
    times = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        for k in keys:
            f(k)
        times.append((time.perf_counter_ns() - t) / len(keys))
    return statistics.median(times)


def ping_floor(port: int, n: int) -> float:
    """Mean nanoseconds of a PING round trip on a raw socket (the network's share)."""
    import socket

    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = time.perf_counter_ns()
        for _ in range(n):
            s.sendall(b"PING\r\n")
            s.recv(16)
        return (time.perf_counter_ns() - t) / n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 5 if args.quick else 15
    name = "near-bench"
    port = int(
        subprocess.run(
            [str(HERE / "redis_server.sh"), "start", name], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    try:
        return run(port, reps, args.quick)
    finally:
        subprocess.run([str(HERE / "redis_server.sh"), "stop", name], check=False)


def run(port: int, reps: int, quick: bool) -> int:
    import django
    from django.conf import settings

    url = f"redis://127.0.0.1:{port}/0"
    settings.configure(
        CACHES={
            "rust": {"BACKEND": "django_rustcache.RustCache", "LOCATION": "bench", "OPTIONS": {"MAX_ENTRIES": 10**6}},
            "near": {"BACKEND": "django_rustcache.RedisNearCache", "LOCATION": url, "KEY_PREFIX": "n"},
            # A local copy of one entry: every get of a rotating key is a local miss served by the server.
            "near_miss": {
                "BACKEND": "django_rustcache.RedisNearCache",
                "LOCATION": url,
                "KEY_PREFIX": "m",
                "OPTIONS": {"LOCAL": {"MAX_ENTRIES": 1}},
            },
            "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "r"},
        }
    )
    django.setup()
    import redis
    from django.core.cache import caches

    rust, near, near_miss, plain = (caches[a] for a in ("rust", "near", "near_miss", "redis"))
    keys = [f"k{i}" for i in range(200 if quick else 1000)]
    for c in (rust, near, near_miss, plain):
        for k in keys:
            c.set(k, "short value")
    time.sleep(0.05)  # our own writes' invalidations
    for k in keys:
        near.get(k)
    assert near.stats()["local_hits"] >= 0
    rows = {"rust_get": [], "near_hit": [], "near_miss": [], "redis_get": [], "near_set": [], "redis_set": []}
    net_keys = keys[:200]
    for _ in range(reps):
        rows["rust_get"].append(per_op(rust.get, keys, 1))
        rows["near_hit"].append(per_op(near.get, keys, 1))
        rows["near_miss"].append(per_op(near_miss.get, net_keys, 1))
        rows["redis_get"].append(per_op(plain.get, net_keys, 1))
        rows["near_set"].append(per_op(lambda k: near_miss.set(k, "short value"), net_keys, 1))
        rows["redis_set"].append(per_op(lambda k: plain.set(k, "short value"), net_keys, 1))
    med = {k: statistics.median(v) for k, v in rows.items()}
    floor = ping_floor(port, 2000 if quick else 10_000)
    hits = near.stats()["local_hits"]

    # Invalidation delay: another client writes a key held locally; time until the copy drops it.
    raw = redis.Redis(port=port)
    delays = []
    for i in range(100 if quick else 500):
        k = keys[i % len(keys)]
        while near._native.get_local(k, None, None) is None:
            near.get(k)
        t0 = time.perf_counter_ns()
        raw.set(f"n:1:{k}", b"\x80\x05x")  # any bytes: we only wait for the drop
        while near._native.get_local(k, None, None) is not None:
            pass
        delays.append((time.perf_counter_ns() - t0) / 1e6)
        near.set(k, "short value")
    delays.sort()
    p50, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99) - 1]

    # Invalidations applied per second: a pipeline of distinct writes, until all are counted.
    n = 20_000 if quick else 100_000
    before = near.stats()["invalidations"]
    pipe = raw.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"n:1:bulk{i}", b"1")
    t0 = time.perf_counter()
    pipe.execute()
    while near.stats()["invalidations"] - before < n:
        time.sleep(0.0005)
    rate = n / (time.perf_counter() - t0)

    out = [
        "| RedisNearCache row | ns or ms | reference | ratio | target |",
        "|---|--:|--:|--:|--:|",
        f"| local hit (short str) | {med['near_hit']:,.0f} ns | RustCache get hit {med['rust_get']:,.0f} ns "
        f"| {med['near_hit'] / med['rust_get']:.2f}x | <= 1.3x |",
        f"| local miss served by the server | {med['near_miss']:,.0f} ns | RedisCache get {med['redis_get']:,.0f} ns "
        f"| {med['near_miss'] / med['redis_get']:.2f}x | <= 0.8x |",
        f"| set | {med['near_set']:,.0f} ns | RedisCache set {med['redis_set']:,.0f} ns "
        f"| {med['near_set'] / med['redis_set']:.2f}x | <= 0.8x |",
        f"| invalidation delay p50 / p99 | {p50:.3f} / {p99:.3f} ms | | | p99 <= 5 ms |",
        f"| invalidations applied per second | {rate:,.0f} /s | | | |",
        f"| (floor) raw-socket PING round trip | {floor:,.0f} ns | | | |",
        f"(local hits counted during the run: {hits:,})",
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
