"""Many threads on one LOCATION: counters stay exact, `add` has one winner, and a mixed storm with
culling and expiry leaves the store consistent.

Every thread is joined with a timeout, so a deadlock fails the test instead of hanging the suite; a
short GIL switch interval makes threads interleave between (and inside) cache calls."""

import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import time_machine

from django_rustcache import RustCache

THREADS = 8
INCRS = 20_000
JOIN_TIMEOUT = 120.0


def fresh_cache(**options) -> RustCache:
    """A RustCache on a LOCATION of its own, so no other test shares its store."""
    params = {"TIMEOUT": None, "OPTIONS": options}
    return RustCache(f"threads-{uuid.uuid4().hex}", params)


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(target: Callable[[int], None], count: int = THREADS) -> None:
    """Run `target(i)` in `count` threads started together; re-raise the first error; fail if any thread
    is still running after JOIN_TIMEOUT."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads did not finish within {JOIN_TIMEOUT}s (deadlock?): {stuck}"
    if errors:
        raise errors[0]


@pytest.mark.parametrize(
    ("start", "delta", "method", "per_thread"),
    [
        pytest.param(0, 1, "incr", INCRS, id="native-incr"),
        pytest.param(0, 1, "decr", INCRS, id="native-decr"),
        pytest.param(0, 7, "incr", INCRS // 4, id="native-incr-by-7"),
        pytest.param(10**30, 1, "incr", INCRS, id="bigint-incr"),
        pytest.param(-(10**30), 3, "decr", INCRS // 4, id="bigint-decr"),
        # Starts native, overflows into the big-int path half way through.
        pytest.param(2**63 - THREADS * INCRS // 8, 1, "incr", INCRS // 4, id="crosses-64-bit-range"),
        pytest.param(0.0, 0.5, "incr", INCRS, id="float-incr"),
        pytest.param(Decimal("1.5"), Decimal("0.25"), "incr", INCRS // 4, id="decimal-incr"),
    ],
)
def test_concurrent_counters_are_exact(start, delta, method, per_thread):
    cache = fresh_cache()
    cache.set("counter", start)

    def work(_: int) -> None:
        step = getattr(cache, method)
        for _ in range(per_thread):
            step("counter", delta)

    run_threads(work)
    sign = 1 if method == "incr" else -1
    expected = start + sign * delta * THREADS * per_thread
    got = cache.get("counter")
    assert got == expected
    assert type(got) is type(expected)
    cache._native.check_invariants()


def test_counter_returns_are_a_permutation_of_every_step():
    """Each `incr` returns a distinct value: no two threads saw the same intermediate total."""
    cache = fresh_cache()
    cache.set("n", 0)
    seen: list[list[int]] = [[] for _ in range(THREADS)]

    def work(i: int) -> None:
        out = seen[i]
        for _ in range(5_000):
            out.append(cache.incr("n"))

    run_threads(work)
    results = sorted(v for per in seen for v in per)
    assert results == list(range(1, THREADS * 5_000 + 1))


@pytest.mark.parametrize("value", [1, 10**40, 1.5, "text"], ids=["int", "bigint", "float", "str"])
def test_add_race_has_exactly_one_winner_per_key(value):
    cache = fresh_cache(MAX_ENTRIES=100_000)
    keys = [f"k{i}" for i in range(2_000)]
    wins: list[list[str]] = [[] for _ in range(THREADS)]

    def work(i: int) -> None:
        order = keys[:] if i % 2 else keys[::-1]
        for key in order:
            if cache.add(key, (i, value)):
                wins[i].append(key)

    run_threads(work)
    winners = {}
    for i, won in enumerate(wins):
        for key in won:
            assert key not in winners, f"{key} added by threads {winners[key]} and {i}"
            winners[key] = i
    assert sorted(winners) == sorted(keys)
    for key, i in winners.items():
        assert cache.get(key) == (i, value)
    cache._native.check_invariants()


def test_get_or_set_race_agrees_on_one_value():
    cache = fresh_cache(MAX_ENTRIES=100_000)
    results: list[list[object]] = [[] for _ in range(THREADS)]

    def work(i: int) -> None:
        for k in range(500):
            results[i].append(cache.get_or_set(f"g{k}", (i, k)))

    run_threads(work)
    for k in range(500):
        answers = {per[k] for per in results}
        assert len(answers) == 1, f"key g{k}: threads saw {answers}"
        assert cache.get(f"g{k}") == answers.pop()


# The storm: every public operation from 8 threads on a small cache, with short timeouts.

MAX_ENTRIES = 60
MAX_BYTES = 12_000
KEYS = [f"s{i}" for i in range(150)]
TIMEOUTS = [None, None, 300, 5, 0.05, 0.01, 0.001, 0, -1]


def random_value(rng: random.Random) -> object:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randrange(-1000, 1000)
    if kind == 1:
        return 10**30 + rng.randrange(1000)
    if kind == 2:
        return "x" * rng.randrange(0, 400)
    if kind == 3:
        return b"\x00" * rng.randrange(0, 400)
    if kind == 4:
        return [rng.randrange(100) for _ in range(rng.randrange(20))]
    return rng.random()


def storm_op(cache: RustCache, rng: random.Random) -> None:
    key = rng.choice(KEYS)
    op = rng.randrange(14)
    timeout = rng.choice(TIMEOUTS)
    if op < 3:
        cache.set(key, random_value(rng), timeout)
    elif op < 6:
        cache.get(key)
    elif op == 6:
        cache.add(key, random_value(rng), timeout)
    elif op == 7:
        cache.delete(key)
    elif op == 8:
        try:
            cache.incr(key, rng.choice([1, -3, 10**20]))
        except ValueError as exc:  # a missing key, as LocMemCache
            if "not found" not in str(exc):
                raise
        except TypeError:  # a str, bytes or list value plus an int, as LocMemCache
            pass
    elif op == 9:
        cache.touch(key, timeout)
    elif op == 10:
        cache.get_many(rng.sample(KEYS, 10))
    elif op == 11:
        failed = cache.set_many({k: random_value(rng) for k in rng.sample(KEYS, 5)}, timeout)
        assert failed == []
    elif op == 12:
        cache.has_key(key)
    elif rng.random() < 0.02:
        cache.clear()
    else:
        cache.delete_many(rng.sample(KEYS, 3))


def test_mixed_storm_keeps_the_store_consistent():
    cache = fresh_cache(MAX_ENTRIES=MAX_ENTRIES, MAX_BYTES=MAX_BYTES)
    checks: list[tuple[int, int]] = []

    def work(i: int) -> None:
        rng = random.Random(i)
        for n in range(6_000):
            storm_op(cache, rng)
            if n % 500 == 0:
                cache._native.check_invariants()
                stats = cache.stats()
                checks.append((stats["entries"], stats["bytes"]))

    run_threads(work)
    assert checks, "the storm ran"
    for entries, used in checks:
        assert entries <= MAX_ENTRIES
        assert used <= MAX_BYTES

    stats = cache.stats()
    assert stats["evictions"] > 0, "culling or the byte budget took part"
    assert stats["expirations"] > 0, "expiry took part"
    cache._native.check_invariants()

    # With time frozen, reading every key reclaims the expired ones: what is left is exactly what reads
    # find, and deleting it brings the accounting back to zero.
    with time_machine.travel(time.time(), tick=False):
        found = cache.get_many(KEYS)
        for key in KEYS:
            assert cache.get(key, "<missing>") == found.get(key, "<missing>")
        stats = cache.stats()
        assert stats["entries"] == len(found)
        assert stats["entries"] <= MAX_ENTRIES
        assert stats["bytes"] <= MAX_BYTES
        cache._native.check_invariants()
        cache.delete_many(KEYS)
        stats = cache.stats()
        assert (stats["entries"], stats["bytes"]) == (0, 0)


def test_storm_on_two_instances_with_different_limits_sharing_a_location():
    """Limits belong to the writer (as in LocMemCache): two instances sharing a LOCATION with different
    MAX_ENTRIES write at the same time, and the store stays consistent."""
    location = f"threads-shared-{uuid.uuid4().hex}"
    small = RustCache(location, {"OPTIONS": {"MAX_ENTRIES": 20}})
    large = RustCache(location, {"OPTIONS": {"MAX_ENTRIES": 100}})

    def work(i: int) -> None:
        rng = random.Random(100 + i)
        cache = small if i % 2 else large
        for _ in range(4_000):
            storm_op(cache, rng)

    run_threads(work)
    small._native.check_invariants()
    assert small.stats()["entries"] <= 100
    large.clear()
    assert small.stats()["entries"] == 0
