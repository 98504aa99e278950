"""A process forked while other threads use the cache gets a working copy of it at once.

The child sees the parent's entries as of the fork, can read and write immediately (no lock left held
by a thread that does not exist in the child), and its writes stay in the child. Every child is
bounded: it arms `alarm()` (whose default action kills a process even if it is stuck holding the
GIL) and the parent polls `waitpid` with a deadline, so a deadlock fails the test instead of hanging.
"""

import contextlib
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from django_rustcache import RustCache

CHILD_SECONDS = 10
FORKS = 100
STABLE = 200

# Python 3.12+ warns that fork() with threads alive may deadlock the child: that is what we test.
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()"),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"),
]


def fresh_cache() -> RustCache:
    return RustCache(f"fork-{uuid.uuid4().hex}", {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 100_000}})


@contextmanager
def running(targets: list[Callable[[int], None]], stop: threading.Event) -> Iterator[None]:
    """Each target (called with its index) in a daemon thread, switching as often as the interpreter can,
    until the block ends and `stop` is set; then the first error any of them raised is raised."""
    errors: list[BaseException] = []

    def guarded(i: int, target: Callable[[int], None]) -> None:
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    workers = [threading.Thread(target=guarded, args=(i, f), daemon=True) for i, f in enumerate(targets)]
    for t in workers:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in workers:
            t.join(30)
        sys.setswitchinterval(old_interval)
    assert not any(t.is_alive() for t in workers), "load threads did not stop"
    if errors:
        raise errors[0]


@contextmanager
def load(cache: RustCache, threads: int = 4) -> Iterator[None]:
    """Threads hammering `load:*` keys with every kind of call until the block ends."""
    stop = threading.Event()

    def work(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            key = f"load:{rng.randrange(50)}"
            op = rng.randrange(6)
            if op == 0:
                cache.set(key, rng.randrange(1000), rng.choice([None, 0.01, 60]))
            elif op == 1:
                cache.get_many([key, "load:0", "load:1"])
            elif op == 2:
                cache.set_many({key: [seed, rng.random()], "load:pickled": {"a": 1}})
            elif op == 3:
                with contextlib.suppress(ValueError, TypeError):  # missing, or not a number
                    cache.incr(key, 10**20)
            elif op == 4:
                cache.delete(key)
            else:
                cache.add(key, "added")

    with running([work] * threads, stop):
        yield


def child_checks(cache: RustCache, marker: str, n: int) -> None:
    """What a child must be able to do at once. Raises AssertionError naming the first failure."""
    assert cache.get("marker") == marker, f"child sees marker {cache.get('marker')!r}, not {marker!r}"
    for i in range(STABLE):
        assert cache.get(f"stable:{i}") == ("stable", i), f"stable:{i} lost in the child"
    cache._native.check_invariants()
    cache.set(f"child:{n}", os.getpid())
    assert cache.get(f"child:{n}") == os.getpid()
    assert cache.incr("counter") == n + 1
    cache.set("marker", "written by the child")
    cache.get_many([f"load:{i}" for i in range(50)])
    cache.delete("stable:0")
    cache._native.check_invariants()
    cache.clear()
    assert cache.get("stable:1") is None


def run_forked(body: Callable[[], None]) -> tuple[int, str]:
    """Fork, run `body` in the child, and return (exit status, child's error text). The child is
    killed if it is not done in CHILD_SECONDS."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            signal.alarm(CHILD_SECONDS)
            body()
        except BaseException:
            code = 1
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + CHILD_SECONDS + 5
    status = None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail(f"forked child {pid} did not finish in {CHILD_SECONDS + 5}s (deadlock?)")
        else:
            time.sleep(0.001)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode(errors="replace")
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status), text or f"killed by signal {os.WTERMSIG(status)} (stuck?)"
    return os.WEXITSTATUS(status), text


def prepare(cache: RustCache) -> None:
    for i in range(STABLE):
        cache.set(f"stable:{i}", ("stable", i))


def assert_parent_untouched(cache: RustCache, marker: str, n: int) -> None:
    assert cache.get(f"child:{n}") is None, "a child's write reached the parent"
    assert cache.get("marker") == marker
    assert cache.get("stable:0") == ("stable", 0)


def test_os_fork_under_load():
    cache = fresh_cache()
    prepare(cache)
    with load(cache):
        for n in range(FORKS):
            marker = f"fork-{n}-{uuid.uuid4().hex}"
            cache.set("marker", marker)
            cache.set("counter", n)
            code, text = run_forked(lambda marker=marker, n=n: child_checks(cache, marker, n))
            assert code == 0, f"fork {n}: child failed:\n{text}"
            assert_parent_untouched(cache, marker, n)
            assert cache.get("counter") == n
    cache._native.check_invariants()


def test_os_fork_child_inherits_entries_and_stays_separate():
    """Without load: exact snapshot semantics, both ways."""
    cache = fresh_cache()
    cache.set("before", "parent")
    cache.set("num", 5)

    def child() -> None:
        assert cache.get("before") == "parent"
        assert cache.incr("num") == 6
        cache.set("before", "child")
        cache.set("only-child", 1)
        assert cache.get("before") == "child"

    code, text = run_forked(child)
    assert code == 0, text
    assert cache.get("before") == "parent"
    assert cache.get("num") == 5
    assert cache.get("only-child") is None


def _mp_child(location: str, marker: str, n: int, conn) -> None:
    signal.alarm(CHILD_SECONDS)
    try:
        cache = RustCache(location, {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 100_000}})
        child_checks(cache, marker, n)
    except BaseException:
        conn.send(traceback.format_exc())
    else:
        conn.send("ok")
    finally:
        conn.close()


def test_multiprocessing_fork_under_load():
    ctx = multiprocessing.get_context("fork")
    location = f"fork-mp-{uuid.uuid4().hex}"
    cache = RustCache(location, {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 100_000}})
    prepare(cache)
    with load(cache):
        for batch in range(FORKS // 10):
            running = []
            for j in range(10):
                n = batch * 10 + j
                marker = f"mp-{n}"
                cache.set("marker", marker)
                cache.set("counter", n)
                receive, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_mp_child, args=(location, marker, n, send), daemon=True)
                proc.start()
                send.close()
                running.append((n, proc, receive))
            for n, proc, receive in running:
                got = receive.recv() if receive.poll(CHILD_SECONDS + 5) else "no answer (deadlock?)"
                proc.join(CHILD_SECONDS + 5)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                assert got == "ok", f"child {n}: {got}"
                assert proc.exitcode == 0, f"child {n} exit code {proc.exitcode}"
                assert cache.get(f"child:{n}") is None
            assert cache.get("stable:0") == ("stable", 0)
    cache._native.check_invariants()


@contextmanager
def extras_load(cache: RustCache) -> Iterator[None]:
    """Threads always inside single-flight (slow callables on a few keys) and inside the lock queue
    (holders and waiters of one lock), so forks land while flights are led, waiters are queued and the
    modules' mutexes are held."""
    stop = threading.Event()

    def flights(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            key = f"sf:{rng.randrange(3)}"
            cache.get_or_set(key, lambda: time.sleep(rng.random() / 100) or seed, timeout=0.02)

    def locking(seed: int) -> None:
        while not stop.is_set():
            lock = cache.lock("fork-lock", timeout=0.2, sleep=0.005, blocking_timeout=5)
            if lock.acquire():
                time.sleep(0.002)
                with contextlib.suppress(Exception):  # expired under load: not what this tests
                    lock.release()

    with running([flights] * 3 + [locking] * 3, stop):
        yield


def test_fork_inside_single_flight_and_the_lock_queue():
    """A child forked while other threads lead flights, wait in them, hold or wait for a lock, or hold
    either module's mutex: its own get_or_set computes at once, and it takes the lock as soon as the
    parent's copy of it expires (the parent's waiters do not exist in the child)."""
    cache = RustCache(f"fork-extras-{uuid.uuid4().hex}", {"OPTIONS": {"SINGLE_FLIGHT": True}})

    def child() -> None:
        for i in range(3):
            got = cache.get_or_set(f"sf:{i}", lambda: "child", timeout=60)
            assert got is not None
        lock = cache.lock("fork-lock", timeout=5, blocking_timeout=3)
        assert lock.acquire(), "the child could not take a free lock"
        lock.release()

    with extras_load(cache):
        for n in range(FORKS):
            code, text = run_forked(child)
            assert code == 0, f"fork {n}: child failed:\n{text}"
