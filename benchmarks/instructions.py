"""Instructions per cache operation, counted by valgrind's callgrind: repeatable on a noisy machine.

    python benchmarks/instructions.py            # needs valgrind (apt-get install valgrind)

Each figure is (instructions of a run with N operations - instructions of a run with 0) / N, so interpreter
start-up and Django set-up cancel out. Backends are held as Django hands them out (``caches[alias]``), as in
``bench.py``. The ``floor`` row is ``benchmarks/floor.py``: a plain dict of pickled bytes, no key making or expiry.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

OPERATIONS = ("get", "get_miss", "set", "incr", "set_evict")
BACKENDS = {
    "RustCache (CLOCK=python, default)": ("django_rustcache.RustCache", {"CLOCK": "python"}),
    "RustCache (CLOCK=system)": ("django_rustcache.RustCache", {"CLOCK": "system"}),
    "RustCache (EVICTION=adaptive)": ("django_rustcache.RustCache", {"EVICTION": "adaptive"}),
    "LocMemCache": ("django.core.cache.backends.locmem.LocMemCache", {}),
    "dict+pickle floor": ("floor.DictPickleCache", {}),
}

CHILD = r"""
import sys
sys.path.insert(0, {bench_dir!r})
import django
from django.conf import settings
backend, options, op, n = {backend!r}, {options!r}, {op!r}, {n}
# set_evict: a cache full at 10,000 entries, every set a new key, so every set evicts. For LRU-like
# backends CULL_FREQUENCY = 10,000 makes that one entry per set, as the adaptive policy does.
full = op == "set_evict"
limits = {{"MAX_ENTRIES": 10_000, "CULL_FREQUENCY": 10_000}} if full else {{"MAX_ENTRIES": 10**7}}
settings.configure(CACHES={{"default": {{"BACKEND": backend, "LOCATION": "instructions",
                                       "OPTIONS": {{**limits, **options}}}}}})
django.setup()
from django.core.cache import caches
c = caches["default"]
c.set("short", "hello world")
c.set("n", 1)
if op == "get":
    f = c.get
    for _ in range(n): f("short")
elif op == "get_miss":
    f = c.get
    for _ in range(n): f("missing")
elif op == "set":
    f = c.set
    for _ in range(n): f("short", "hello world")
elif op == "incr":
    f = c.incr
    for _ in range(n): f("n")
elif op == "set_evict":
    f = c.set
    for i in range(10_000): f(i, i)
    for k in range(10_000, 10_000 + n): f(k, k)
"""


def callgrind(command: list[str], env: dict[str, str] | None = None) -> int:
    """The instructions `command` executes (in `env`, by default this process's), counted by callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", *command],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
    match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if match is None:
        raise RuntimeError(out.stderr[-2000:])
    return int(match.group(1).replace(",", ""))


def instructions(backend: str, options: dict, op: str, n: int) -> int:
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    code = CHILD.format(bench_dir=bench_dir, backend=backend, options=options, op=op, n=n)
    return callgrind([sys.executable, "-c", code])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="operations per measured run")
    parser.add_argument(
        "--backends", help="comma-separated substrings of the backend names to run (LocMemCache is always run)"
    )
    args = parser.parse_args()
    wanted = [w.strip() for w in args.backends.split(",")] if args.backends else None
    backends = {
        name: spec
        for name, spec in BACKENDS.items()
        if wanted is None or name == "LocMemCache" or any(w in name for w in wanted)
    }
    rows = {}
    for name, (backend, options) in backends.items():
        for op in OPERATIONS:
            if op == "set_evict" and name == "dict+pickle floor":
                continue  # the floor has no limits
            base = instructions(backend, options, op, 0)
            rows[name, op] = (instructions(backend, options, op, args.n) - base) / args.n
    print("| backend | " + " | ".join(OPERATIONS) + " |")
    print("|---|" + "--:|" * len(OPERATIONS))
    for name in backends:
        cells = []
        for op in OPERATIONS:
            if (name, op) not in rows:
                cells.append("n/a")
                continue
            ratio = rows[name, op] / rows["LocMemCache", op]
            cells.append(f"{rows[name, op]:,.0f} ({ratio:.3f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
