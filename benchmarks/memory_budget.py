"""Resident memory of a process whose RustCache has a byte budget (``OPTIONS["MAX_BYTES"]``).

Each configuration runs in a fresh subprocess: it builds one RustCache alias (``MAX_BYTES`` = 64 MiB or
256 MiB, ``MAX_ENTRIES`` huge, ``TIMEOUT`` None), takes the process's resident set after warming up as its
baseline, then writes distinct keys until it has written four times the budget (as the store charges
it), one ``cache.set`` at a time. Every few thousand writes it samples the resident set and asserts that
``stats()["bytes"]`` is within ``MAX_BYTES``. It reports the growth of the resident set over the
baseline (at the end and at its peak) and the factor peak growth / ``MAX_BYTES``.

Values: ``bytes`` of 100 B, 1 KB and 10 KB (held by the store as raw bytes), and ``dict``s whose pickle
is about as long (held as the pickled ``bytes`` object).

Expiry configurations write for a set time with ``timeout=1`` at a paced rate (half of ``MAX_BYTES`` a
second, as charged), so most entries expire while the run goes on: with the budget, and without one
(``MAX_BYTES`` None, where only expiry bounds the store). The budget without expiry would be full
after two seconds; what they show is that expired entries are reclaimed rather than accumulating.

    .venv-bench/bin/python benchmarks/memory_budget.py            # ~3 minutes, writes results/memory_budget.md
    .venv-bench/bin/python benchmarks/memory_budget.py --quick    # 64 MiB only, shorter expiry runs
"""

import argparse
import gc
import json
import math
import os
import pickle
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
OVERFILL = 4  # write this many times MAX_BYTES
SAMPLE_EVERY_BYTES = 4 * MIB  # sample RSS and check stats() after writing about this much

# ---------------------------------------------------------------------------------------------------
# Values


def bytes_value(size: int, i: int) -> bytes:
    """``size`` bytes, distinct per ``i``."""
    return b"%0*d" % (size, i)


def _dict_value(pad: int, i: int) -> dict[str, Any]:
    return {"id": i, "name": f"user{i}", "active": True, "body": "x" * pad}


def dict_pad(size: int) -> int:
    """The padding for which ``_dict_value``'s pickle is about ``size`` bytes."""
    empty = len(pickle.dumps(_dict_value(0, 10**7), pickle.HIGHEST_PROTOCOL))
    return max(0, size - empty)


def make_value_fn(kind: str, size: int):
    if kind == "bytes":
        return lambda i: bytes_value(size, i)
    pad = dict_pad(size)
    return lambda i: _dict_value(pad, i)


def value_size(kind: str, size: int) -> int:
    value = make_value_fn(kind, size)(10**7)
    return len(value) if kind == "bytes" else len(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


# ---------------------------------------------------------------------------------------------------
# Child: one configuration in this process


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def hwm_bytes() -> int:
    """Peak resident set of this process (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def build_cache(max_bytes: int | None):
    import django
    from django.conf import settings

    options: dict[str, Any] = {"MAX_ENTRIES": 1 << 40}
    if max_bytes is not None:
        options["MAX_BYTES"] = max_bytes
    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django_rustcache.backend.RustCache",
                "LOCATION": "memory-budget",
                "TIMEOUT": None,
                "OPTIONS": options,
            }
        },
        USE_TZ=True,
    )
    django.setup()
    from django.core.cache import caches

    return caches["default"]


def check_budget(cache, max_bytes: int | None) -> dict[str, Any]:
    stats = cache.stats()
    if max_bytes is not None:
        assert stats["bytes"] <= max_bytes, f"stats()['bytes'] = {stats['bytes']:,} > MAX_BYTES = {max_bytes:,}"
    return stats


def warm(cache, value_of) -> tuple[int, int]:
    """Initialise what a first call does; the bytes one entry is charged. Leaves the cache empty."""
    cache.set("warm", value_of(0))
    charged = cache.stats()["bytes"]
    cache.clear()
    gc.collect()
    return charged, rss_bytes()


def fill_child(config: dict[str, Any]) -> dict[str, Any]:
    max_bytes = config["max_bytes"]
    cache = build_cache(max_bytes)
    value_of = make_value_fn(config["kind"], config["size"])
    charged, baseline = warm(cache, value_of)
    writes = math.ceil(OVERFILL * max_bytes / charged)
    sample_every = max(1, SAMPLE_EVERY_BYTES // charged)
    peak_rss = baseline
    max_seen = 0
    started = time.monotonic()
    for i in range(writes):
        cache.set(f"k:{i}", value_of(i))
        if i % sample_every == 0:
            peak_rss = max(peak_rss, rss_bytes())
            max_seen = max(max_seen, check_budget(cache, max_bytes)["bytes"])
    seconds = time.monotonic() - started
    gc.collect()
    end_rss = rss_bytes()
    stats = check_budget(cache, max_bytes)
    max_seen = max(max_seen, stats["bytes"])
    # The newest entries are the ones the budget keeps.
    for i in (writes - 1, writes - 2):
        assert cache.get(f"k:{i}") == value_of(i), f"entry {i} (among the newest) is missing"
    assert cache.get("k:0") is None, "the oldest entry survived four times the budget"
    return {
        **config,
        "value_bytes": value_size(config["kind"], config["size"]),
        "charged_per_entry": charged,
        "writes": writes,
        "seconds": seconds,
        "baseline_rss": baseline,
        "end_rss": end_rss,
        "peak_rss": max(peak_rss, end_rss, hwm_bytes()),
        "stats": stats,
        "max_bytes_seen": max_seen,
    }


def expiry_child(config: dict[str, Any]) -> dict[str, Any]:
    """Write at `rate_bytes` a second (as charged), each entry with timeout=1, for `seconds`."""
    max_bytes = config["max_bytes"]
    cache = build_cache(max_bytes)
    value_of = make_value_fn(config["kind"], config["size"])
    charged, baseline = warm(cache, value_of)
    per_second = config["rate_bytes"] // charged
    tick = 0.05
    per_tick = max(1, round(per_second * tick))
    peak_rss = baseline
    max_seen = 0
    max_entries_seen = 0
    samples = []
    i = 0
    started = time.monotonic()
    next_sample = started
    while True:
        now = time.monotonic()
        if now - started >= config["seconds"]:
            break
        for _ in range(per_tick):
            cache.set(f"k:{i}", value_of(i), timeout=1)
            i += 1
        if now >= next_sample:
            rss = rss_bytes()
            stats = check_budget(cache, max_bytes)
            peak_rss = max(peak_rss, rss)
            max_seen = max(max_seen, stats["bytes"])
            max_entries_seen = max(max_entries_seen, stats["entries"])
            samples.append({"t": round(now - started, 2), "rss_growth": rss - baseline, **stats})
            next_sample += 0.5
        # Pace: sleep until this tick's time is up (if the writes took less).
        target = started + (i // per_tick) * tick
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    seconds = time.monotonic() - started
    gc.collect()
    end_rss = rss_bytes()
    stats = check_budget(cache, max_bytes)
    return {
        **config,
        "value_bytes": value_size(config["kind"], config["size"]),
        "charged_per_entry": charged,
        "writes": i,
        "written_bytes": i * charged,
        "seconds": seconds,
        "baseline_rss": baseline,
        "end_rss": end_rss,
        "peak_rss": max(peak_rss, end_rss, hwm_bytes()),
        "stats": stats,
        "max_bytes_seen": max(max_seen, stats["bytes"]),
        "max_entries_seen": max(max_entries_seen, stats["entries"]),
        "samples": samples,
    }


# ---------------------------------------------------------------------------------------------------
# Parent


def configurations(quick: bool) -> list[dict[str, Any]]:
    budgets = [64 * MIB] if quick else [64 * MIB, 256 * MIB]
    configs = []
    for max_bytes in budgets:
        for kind in ("bytes", "dict"):
            for size in (100, 1000, 10_000):
                configs.append({"mode": "fill", "max_bytes": max_bytes, "kind": kind, "size": size})
    seconds = 5 if quick else 10
    for max_bytes in (64 * MIB, None):
        for size in (100, 1000):
            configs.append(
                {
                    "mode": "expiry",
                    "max_bytes": max_bytes,
                    "kind": "bytes",
                    "size": size,
                    "rate_bytes": 32 * MIB,
                    "seconds": seconds,
                }
            )
    return configs


def run_child(config: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"configuration {config} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / MIB:,.1f} MiB"


def value_label(r: dict[str, Any]) -> str:
    size = {100: "100 B", 1000: "1 KB", 10_000: "10 KB"}[r["size"]]
    if r["kind"] == "bytes":
        return f"`bytes`, {size}"
    return f"`dict`, {size} pickled ({r['value_bytes']:,} B)"


def fill_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| MAX_BYTES | value | charged / entry | writes | entries kept | `stats()['bytes']` (max seen) "
        "| RSS growth, end | RSS growth, peak | factor (peak / MAX_BYTES) |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        end, peak = r["end_rss"] - r["baseline_rss"], r["peak_rss"] - r["baseline_rss"]
        lines.append(
            f"| {r['max_bytes'] // MIB} MiB | {value_label(r)} | {r['charged_per_entry']:,} B | {r['writes']:,} "
            f"| {r['stats']['entries']:,} | {mib(r['max_bytes_seen'])} | {mib(end)} | {mib(peak)} "
            f"| {peak / r['max_bytes']:.2f}x |"
        )
    return "\n".join(lines)


def expiry_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| MAX_BYTES | value | written (as charged) | writes | expirations | evictions | max entries live "
        "| max `stats()['bytes']` | RSS growth, end | RSS growth, peak | peak / max `bytes` | peak / MAX_BYTES |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        end, peak = r["end_rss"] - r["baseline_rss"], r["peak_rss"] - r["baseline_rss"]
        budget = f"{r['max_bytes'] // MIB} MiB" if r["max_bytes"] else "None"
        of_budget = f"{peak / r['max_bytes']:.2f}x" if r["max_bytes"] else "-"
        lines.append(
            f"| {budget} | {value_label(r)} | {mib(r['written_bytes'])} in {r['seconds']:.0f} s | {r['writes']:,} "
            f"| {r['stats']['expirations']:,} | {r['stats']['evictions']:,} | {r['max_entries_seen']:,} "
            f"| {mib(r['max_bytes_seen'])} | {mib(end)} | {mib(peak)} | {peak / r['max_bytes_seen']:.2f}x "
            f"| {of_budget} |"
        )
    return "\n".join(lines)


def machine(command: str) -> list[str]:
    import django

    import django_rustcache

    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total = next(line.split()[1] for line in meminfo if line.startswith("MemTotal:"))
    release = "site-packages" in django_rustcache.__file__
    return [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}`",
        f"- CPU: {cpu} ({os.cpu_count()} logical CPUs), memory {int(total) / 1024 / 1024:.1f} GiB",
        f"- OS: {platform.system()} {platform.release()}, glibc malloc (default settings)",
        f"- Python {platform.python_version()}, Django {django.get_version()}, django-rustcache from "
        f"{os.path.relpath(django_rustcache.__file__, REPO)}"
        + ("" if release else " (**not a release build: run it with .venv-bench/bin/python**)"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB only and shorter expiry runs")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/memory_budget.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        config = json.loads(args.child)
        result = fill_child(config) if config["mode"] == "fill" else expiry_child(config)
        print(json.dumps(result))
        return 0

    command = " ".join([os.path.relpath(sys.executable, REPO), os.path.relpath(__file__, REPO), *sys.argv[1:]])
    started = time.monotonic()
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results = []
    for config in configurations(args.quick):
        t0 = time.monotonic()
        results.append(run_child(config))
        print(f"  {config}: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    fills = [r for r in results if r["mode"] == "fill"]
    expiries = [r for r in results if r["mode"] == "expiry"]
    worst = max(
        fills + [r for r in expiries if r["max_bytes"]],
        key=lambda r: (r["peak_rss"] - r["baseline_rss"]) / r["max_bytes"],
    )
    worst_factor = (worst["peak_rss"] - worst["baseline_rss"]) / worst["max_bytes"]
    info = machine(command)
    info += [
        f"- duration: {time.monotonic() - started:.0f} s; load average at start {load_start}, at end "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "- RSS: `/proc/self/statm` resident pages, sampled every ~4 MiB written (fill) or 0.5 s (expiry); the peak "
        "is the larger of the samples and `VmHWM`; growth is over the RSS after Django setup and one warm-up "
        "write (then `clear()`)",
    ]
    text = "\n".join(
        [
            "# Resident memory against MAX_BYTES",
            "",
            f"Written by `benchmarks/memory_budget.py`: one fresh process per row, `MAX_ENTRIES` 2**40, "
            f"`TIMEOUT` None, distinct keys `k:<i>` (made key `:1:k:<i>`), one `cache.set` per write, "
            f"{OVERFILL}x `MAX_BYTES` written (as charged). `stats()['bytes']` is asserted ≤ `MAX_BYTES` at "
            "every sample and at the end.",
            "",
            "## Filling past the budget",
            "",
            fill_table(fills),
            "",
            "## Short-lived entries (timeout=1 s, real time passing)",
            "",
            "Writes paced at 32 MiB a second (as charged), every entry with `timeout=1`; with and without a budget.",
            "",
            expiry_table(expiries),
            "",
            f"Worst case: **{worst_factor:.2f}x** MAX_BYTES ({value_label(worst)}, MAX_BYTES "
            f"{worst['max_bytes'] // MIB} MiB).",
            "",
            "## Machine and run",
            "",
            *info,
            "",
        ]
    )
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "memory_budget.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
