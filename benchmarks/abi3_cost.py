"""What building against the stable ABI (abi3) costs a ``get`` hit and a ``set``, in instructions.

    make abi3-cost            # builds the wheels, then runs this (a few minutes; needs valgrind)
    python benchmarks/abi3_cost.py --wheels dist --abi3 target/wheels/dist-abi3

The per-version wheels (``make wheels``: ``cp311-cp311``, ``cp313-cp313``, ...) and the abi3 wheel (the
``abi3`` cargo feature, ``pyo3/abi3-py311``: one ``cp311-abi3`` wheel for every CPython >= 3.11) are each
installed into a fresh virtualenv per interpreter, beside the same Django, and the operations of
``instructions.py`` are counted by callgrind through Django's ``caches["default"]``: per operation,
(a run of N operations - a run of 0) / N, the median of ``--pairs`` such pairs, with ``PYTHONHASHSEED=0`` so
that the interpreter's dicts probe alike in every run (the store's own hash seed stays random per process).

The exit status is the decision rule of issue 15: 0 if the abi3 wheel costs every measured operation less
than 2 % more instructions than the per-version wheel on the same interpreter (ship abi3), 1 otherwise
(ship one wheel per CPython version).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from instructions import CHILD, callgrind  # benchmarks/, beside this script

BENCH_DIR = Path(__file__).resolve().parent
BOUND = 1.02  # issue 15: ship abi3 only if it costs a get hit and a set under 2 %
OPERATIONS = ("get", "set")
CLOCKS = ("python", "system")


def interpreter_tag(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def one_wheel(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one wheel {pattern} in {directory}, found {[p.name for p in found]}")
    return found[0]


def venv_with(python: str, wheel: Path, django: str, where: Path) -> str:
    subprocess.run([python, "-m", "venv", str(where)], check=True)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, django], check=True)
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True)
    return str(where / "bin" / "python")


def per_op(python: str, clock: str, op: str, n: int, pairs: int) -> float:
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def run(count: int) -> int:
        code = CHILD.format(
            bench_dir=str(BENCH_DIR), backend="django_rustcache.RustCache", options={"CLOCK": clock}, op=op, n=count
        )
        return callgrind([python, "-c", code], env=env)

    return statistics.median((run(n) - run(0)) / n for _ in range(pairs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=Path, required=True, help="directory of the per-version wheels")
    parser.add_argument("--abi3", type=Path, required=True, help="directory holding the abi3 wheel")
    parser.add_argument(
        "--python",
        action="append",
        nargs=2,
        metavar=("INTERPRETER", "DJANGO"),
        help="an interpreter and the Django requirement to install beside it (repeatable)",
    )
    parser.add_argument("-n", type=int, default=100_000, help="operations per measured run")
    parser.add_argument("--pairs", type=int, default=3, help="(N - 0) pairs per cell; the median is kept")
    args = parser.parse_args()
    pythons = args.python or [[sys.executable, "Django>=5.2,<5.3"]]
    abi3_wheel = one_wheel(args.abi3, "*-cp311-abi3-*.whl")
    rows = []
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for python, django in pythons:
            tag = interpreter_tag(python)
            versioned_wheel = one_wheel(args.wheels, f"*-{tag}-{tag}-*.whl")
            versioned = venv_with(python, versioned_wheel, django, Path(tmp) / f"{tag}-versioned")
            abi3 = venv_with(python, abi3_wheel, django, Path(tmp) / f"{tag}-abi3")
            for clock in CLOCKS:
                for op in OPERATIONS:
                    v = per_op(versioned, clock, op, args.n, args.pairs)
                    a = per_op(abi3, clock, op, args.n, args.pairs)
                    worst = max(worst, a / v)
                    rows.append(
                        f"| {tag} | `CLOCK={clock}` | {op} | {v:,.0f} | {a:,.0f} | {a - v:+,.0f} | {a / v:.3f}x |"
                    )
    print(f"instructions per operation through Django (callgrind, median of {args.pairs} pairs of {args.n:,}):\n")
    print("| interpreter | clock | operation | per-version wheel | abi3 wheel | abi3 - per-version | ratio |")
    print("|---|---|---|--:|--:|--:|--:|")
    print("\n".join(rows))
    verdict = "ship abi3" if worst < BOUND else "ship one wheel per CPython version"
    print(f"\nworst ratio {worst:.3f}x (bound: under {BOUND}x): {verdict}")
    return 0 if worst < BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
