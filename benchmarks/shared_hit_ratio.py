"""Hit ratios through ``SharedCache``, beside exact LRU and ``RustCache`` (LocMemCache's cull), on the traces
of ``/work/shared/traces``: how close the shared store's recency order (each process's reads replayed into the
order index by its next write) comes to LRU, in one process and in several.

Each request is a ``get``; on a miss, a ``set`` of that key (``hit_ratio.py``'s rule), ``MAX_ENTRIES`` = the
capacity, ``CULL_FREQUENCY`` 3, ``TIMEOUT`` None, a fresh ``LOCATION`` per run. With N processes the trace is
dealt round-robin (request i to process i mod N) on one ``LOCATION``, in two ways:

- *lockstep*: the requests are made in the trace's order (the parent hands each to its process and waits for
  the answer), so the only difference from one process is the design's: a read counts for recency from its
  process's next write on;
- *free-running*: each process replays its share as fast as it can, all at once, so the processes drift apart
  in the trace (which then is no longer the trace: its locality is diluted) as real workers would; the
  scheduler decides, so a repeat differs a little. Each process stamps every request with the host's
  monotonic clock, so the requests can be put back in the order they really reached the store: that
  stream, replayed through one ``RustCache`` lru, says how much of the free-running figure is the stream
  (which one process would score the same) and how much the shared store's recency.

Run: ``.venv/bin/python benchmarks/shared_hit_ratio.py [--traces web07,web12] [--procs 1,4]``; writes
``benchmarks/results/shared_hit_ratio.md``.
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hit_ratio import CAPS, capacity_of, exact_lru, load_trace, replay_backend, rust_cache  # noqa: E402

RESULTS = HERE / "results"


def shared_options(capacity: int) -> dict:
    return {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": capacity, "CULL_FREQUENCY": 3}}


def child(location: str, trace: str, capacity: int, index: int, procs: int, go: str) -> None:
    from django_rustcache import SharedCache

    keys = load_trace(trace).keys[index::procs]
    cache = SharedCache(location, shared_options(capacity))
    get, set_, stamp = cache.get, cache.set, time.perf_counter_ns
    stamps = array("q", bytes(8 * len(keys)))
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    hits = 0
    for i, k in enumerate(keys):
        stamps[i] = stamp()
        if get(k) is None:
            set_(k, 1)
        else:
            hits += 1
    with open(f"{location}.stamps.{index}", "wb") as f:
        stamps.tofile(f)
    print(hits, flush=True)


def lockstep_child(location: str, capacity: int) -> None:
    from django_rustcache import SharedCache

    cache = SharedCache(location, shared_options(capacity))
    get, set_ = cache.get, cache.set
    out = sys.stdout
    for line in sys.stdin:
        k = int(line)
        if get(k) is None:
            set_(k, 1)
            out.write("0\n")
        else:
            out.write("1\n")
        out.flush()


def lockstep_hits(trace: str, capacity: int, procs: int) -> int:
    keys = load_trace(trace).keys
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        location = os.path.join(tmp, "cache")
        command = [sys.executable, __file__, "--lockstep-child", location, str(capacity)]
        children = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            for _ in range(procs)
        ]
        hits = 0
        for i, k in enumerate(keys):
            child = children[i % procs]
            assert child.stdin is not None
            assert child.stdout is not None
            child.stdin.write(f"{k}\n")
            child.stdin.flush()
            hits += int(child.stdout.readline())
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        return hits


def shared_hits(trace: str, capacity: int, procs: int) -> tuple[int, list[int]]:
    """Hits of a free-running run, and its requests in the order they were made (by their stamps)."""
    keys = load_trace(trace).keys
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        location, go = os.path.join(tmp, "cache"), os.path.join(tmp, "go")
        command = [sys.executable, __file__, "--child", location, trace, str(capacity), "{i}", str(procs), go]
        children = [
            subprocess.Popen([c.format(i=i) for c in command], stdout=subprocess.PIPE, text=True) for i in range(procs)
        ]
        for c in children:
            assert c.stdout is not None
            assert c.stdout.readline().strip() == "ready"
        Path(go).touch()
        hits = sum(int(c.communicate()[0].strip().splitlines()[-1]) for c in children)
        made = []
        for i in range(procs):
            stamps = array("q")
            with open(f"{location}.stamps.{i}", "rb") as f:
                stamps.frombytes(f.read())
            made += zip(stamps, keys[i::procs], strict=True)
        made.sort()
        return hits, [k for _, k in made]


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--lockstep-child":
        import django
        from django.conf import settings

        settings.configure()
        django.setup()
        lockstep_child(argv[1], int(argv[2]))
        return 0
    if argv and argv[0] == "--child":
        import django
        from django.conf import settings

        settings.configure()
        django.setup()
        location, trace, capacity, index, procs, go = argv[1:]
        child(location, trace, int(capacity), int(index), int(procs), go)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", default="web07,web12")
    parser.add_argument("--caps", default=",".join(map(str, CAPS)))
    parser.add_argument("--procs", default="1,2,4")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    import django
    from django.conf import settings

    settings.configure()
    django.setup()
    procs_list = [int(p) for p in args.procs.split(",")]
    head = ["capacity", "exact LRU", "RustCache lru (1 process)"]
    head += [f"SharedCache, {p} process{'es' if p > 1 else ''}{', lockstep' if p > 1 else ''}" for p in procs_list]
    for p in procs_list:
        if p > 1:
            head += [f"SharedCache, {p} processes, free-running", f"same {p}-process stream, 1 RustCache lru"]
    out = ["# Hit ratios through SharedCache", ""]
    for name in args.traces.split(","):
        trace = load_trace(name)
        n = len(trace.keys)
        out += [f"## {name} ({n:,} requests, {trace.distinct:,} distinct keys)", ""]
        out += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for cap in (float(c) for c in args.caps.split(",")):
            capacity = capacity_of(trace, cap)
            cells = [f"{cap:g} % ({capacity:,})", f"{100 * exact_lru(trace.keys, capacity) / n:.2f}"]
            cells.append(f"{100 * replay_backend(rust_cache('lru', capacity), trace.keys) / n:.2f}")
            for procs in procs_list:
                cells.append(f"{100 * lockstep_hits(name, capacity, procs) / n:.2f}")
            for procs in procs_list:
                if procs > 1:
                    hits, stream = shared_hits(name, capacity, procs)
                    cells.append(f"{100 * hits / n:.2f}")
                    cells.append(f"{100 * replay_backend(rust_cache('lru', capacity), stream) / n:.2f}")
            out.append("| " + " | ".join(cells) + " |")
            print(out[-1], file=sys.stderr)
        out.append("")
    out += [
        "Hit ratio (%) = hits over all requests, cold start included. RustCache lru is LocMemCache's arithmetic "
        "(`CULL_FREQUENCY` 3 culls a third of the entries at once, so it sits below exact LRU); SharedCache culls "
        "the same way, by the lowest recency numbers.",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/shared_hit_ratio.py', *argv])}`",
        "",
    ]
    text = "\n".join(out)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "shared_hit_ratio.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
