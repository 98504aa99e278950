"""Which CLIENT TRACKING mode should RedisNearCache use? Measured side by side on a real redis-server.

    .venv/bin/python benchmarks/tracking_modes.py [--trace web12 | --zipf 1.0] [--clients 4]
        [--capacity 0.05] [--write-fraction 0.01] [--requests N]

N clients (one RESP3 connection each, redis-py's own parser with an invalidation push handler) replay one
read-heavy trace, request i by client i % N. Each client keeps a bounded local copy (LRU, `--capacity` of
the trace's distinct keys) and applies the invalidations it is pushed. Rule per request: with probability
`--write-fraction` it is a write (`SET`, an update from that client); otherwise a `get`: a local hit, or a
`GET` from the server, stored locally if found, else `SET` (a fill of a new key, not stored locally: the
next read fetches it, as RedisNearCache's write-then-forget does). The same requests, in the same order,
run under each mode on a flushed server:

- `none`: no tracking (the baseline for server memory, and no local copy can be kept coherent);
- `bcast`: `CLIENT TRACKING ON BCAST PREFIX <prefix>` (what RedisNearCache ships);
- `default`: `CLIENT TRACKING ON` (the server remembers each key each client read);
- `default-capped`: the same with `tracking-table-max-keys` set to `--table-max-keys` (what a server
  operator sets to bound that memory: the server then evicts keys from its table by *invalidating* them).

OPTIN (`CLIENT CACHING yes` before each read to be tracked) is `default` restricted to the reads a client
opts in; since every read here fills the local copy, it is `default` with one more command per read, and is
not run separately.

Reported per mode: server memory (`used_memory` minus the `none` run's, at the end with every connection
open; `tracking_total_keys` / `_items` / `_prefixes` from `INFO stats`), invalidation pushes and keys
received per write, the share of invalidated keys the client did not hold locally (wasted messages), and
the local hit ratio. The server comes from benchmarks/redis_server.sh (loopback, a free port, no
persistence), stopped by its pid at the end. Traces: /work/shared/traces (cache2k, CC BY 4.0).
"""

import argparse
import lzma
import os
import random
import struct
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

from redis import Redis
from redis._parsers.resp3 import _RESP3Parser
from redis.connection import Connection

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "redis_server.sh"
TRACES = Path("/work/shared/traces")
PREFIX = "tm:"
VALUE = b"v" * 100  # a small cached value


def load_trace(args: argparse.Namespace) -> tuple[str, list[int]]:
    if args.zipf is not None:
        rng = random.Random(7)
        keys = 100_000
        weights = [1 / (rank**args.zipf) for rank in range(1, keys + 1)]
        ids = list(range(keys))
        rng.shuffle(ids)
        n = args.requests or 1_000_000
        return f"Zipf a={args.zipf} ({keys} keys)", rng.choices(ids, weights, k=n)
    with lzma.open(TRACES / f"{args.trace}.trace.xz") as f:
        data = f.read()
    ids = list(struct.unpack(f">{len(data) // 4}i", data))
    if args.requests:
        ids = ids[: args.requests]
    return f"{args.trace} (cache2k)", ids


class Client:
    """One connection and its bounded local copy."""

    def __init__(self, port: int, capacity: int) -> None:
        self.conn = Connection(host="127.0.0.1", port=port, protocol=3, parser_class=_RESP3Parser)
        self.conn.connect()
        self.conn._parser.set_invalidation_push_handler(self.on_invalidate)
        self.local: OrderedDict[bytes, bytes] = OrderedDict()
        self.capacity = capacity
        self.hits = self.gets = self.writes = 0
        self.pushes = self.keys_invalidated = self.keys_not_held = self.flushes = 0

    def on_invalidate(self, message: list) -> None:
        self.pushes += 1
        keys = message[1]
        if keys is None:  # FLUSHALL/FLUSHDB, or the connection's tracking state was dropped
            self.flushes += 1
            self.local.clear()
            return
        for key in keys:
            self.keys_invalidated += 1
            if self.local.pop(key, None) is None:
                self.keys_not_held += 1

    def command(self, *args):
        self.conn.send_command(*args)
        return self.conn.read_response()

    def get(self, key: bytes) -> None:
        self.gets += 1
        if key in self.local:
            self.local.move_to_end(key)
            self.hits += 1
            return
        value = self.command("GET", key)
        if value is None:
            self.write(key)
            return
        self.local[key] = value
        if len(self.local) > self.capacity:
            self.local.popitem(last=False)

    def write(self, key: bytes) -> None:
        self.writes += 1
        self.command("SET", key, VALUE)
        self.local.pop(key, None)  # our own write: forget at once (the push may come later)


def info(admin: Redis) -> dict:
    both = {**admin.info("memory"), **admin.info("stats")}
    return {
        k: both.get(k, 0)
        for k in ("used_memory", "tracking_total_keys", "tracking_total_items", "tracking_total_prefixes")
    }


def run_mode(mode: str, port: int, requests: list[int], ops: list[bool], args, capacity: int) -> dict:
    admin = Redis(port=port)
    admin.flushall()
    admin.config_set("tracking-table-max-keys", args.table_max_keys if mode == "default-capped" else 0)
    clients = [Client(port, capacity) for _ in range(args.clients)]
    for c in clients:
        if mode == "bcast":
            c.command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", PREFIX)
        elif mode.startswith("default"):
            c.command("CLIENT", "TRACKING", "ON")
    t = time.perf_counter()
    n = args.clients
    for i, (key_id, is_write) in enumerate(zip(requests, ops, strict=True)):
        client = clients[i % n]
        key = f"{PREFIX}{key_id}".encode()
        if is_write:
            client.write(key)
        else:
            client.get(key)
    for c in clients:  # deliver every push still queued for a client
        c.command("PING")
    seconds = time.perf_counter() - t
    stats = info(admin)
    for c in clients:
        c.conn.disconnect()
    admin.config_set("tracking-table-max-keys", 0)
    total = lambda name: sum(getattr(c, name) for c in clients)  # noqa: E731
    writes = total("writes")
    local_hits = total("hits")
    if mode == "none":
        local_hits = 0  # without tracking no local copy may serve (it could be stale)
    return {
        "mode": mode,
        "seconds": seconds,
        **stats,
        "writes": writes,
        "pushes": total("pushes"),
        "keys_invalidated": total("keys_invalidated"),
        "keys_not_held": total("keys_not_held"),
        "flushes": total("flushes"),
        "hit_ratio": local_hits / max(1, total("gets")),
    }


def table(rows: list[dict], baseline: int) -> str:
    out = [
        "| mode | tracking memory (used_memory - none's) | tracking keys / items / prefixes | pushes per write "
        "| keys invalidated per write (table evictions included) | of those not held locally | local hit ratio |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        w = max(1, r["writes"])
        memory = "—" if r["mode"] == "none" else f"{(r['used_memory'] - baseline) / 1024:,.0f} KiB"
        wasted = r["keys_not_held"] / r["keys_invalidated"] if r["keys_invalidated"] else 0.0
        out.append(
            f"| `{r['mode']}` | {memory} | {r['tracking_total_keys']:,} / {r['tracking_total_items']:,} / "
            f"{r['tracking_total_prefixes']} | {r['pushes'] / w:.2f} | {r['keys_invalidated'] / w:.2f} | "
            f"{wasted:.0%} | {r['hit_ratio']:.1%} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", default="web12", help="a trace in /work/shared/traces (default web12)")
    parser.add_argument("--zipf", type=float, help="a synthetic Zipf trace of this alpha instead")
    parser.add_argument("--requests", type=int, help="replay only the first N requests")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--capacity", type=float, default=0.05, help="local copy, as a fraction of distinct keys")
    parser.add_argument("--write-fraction", type=float, default=0.01, help="share of requests that are updates")
    parser.add_argument("--table-max-keys", type=int, help="tracking-table-max-keys of default-capped")
    parser.add_argument("--modes", default="none,bcast,default,default-capped")
    args = parser.parse_args()
    name, requests = load_trace(args)
    distinct = len(set(requests))
    capacity = max(1, int(distinct * args.capacity))
    if args.table_max_keys is None:
        args.table_max_keys = capacity
    rng = random.Random(11)
    ops = [rng.random() < args.write_fraction for _ in requests]
    server = f"tracking-modes-{os.getpid()}"
    started = subprocess.run([str(SCRIPT), "start", server], capture_output=True, text=True, check=True)
    port = int(started.stdout.strip())
    try:
        version = Redis(port=port).info("server")["redis_version"]
        rows = [run_mode(mode, port, requests, ops, args, capacity) for mode in args.modes.split(",")]
    finally:
        subprocess.run([str(SCRIPT), "stop", server], check=False)
    baseline = next((r["used_memory"] for r in rows if r["mode"] == "none"), rows[0]["used_memory"])
    print(
        f"{name}: {len(requests):,} requests, {distinct:,} distinct keys; {args.clients} clients, local copy "
        f"{capacity:,} entries each ({args.capacity:.0%}); {args.write_fraction:.0%} updates; "
        f"default-capped: tracking-table-max-keys {args.table_max_keys:,}; redis-server {version}\n"
    )
    print(table(rows, baseline))
    print("\nseconds per mode: " + ", ".join(f"{r['mode']} {r['seconds']:.1f}" for r in rows))
    print("command: " + " ".join(["benchmarks/tracking_modes.py", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
