"""SharedCache across real processes: spawned interpreters (``tests/shared_worker.py``) and forks,
real SIGKILL, no mocks."""

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from django_rustcache import SharedCache

REPO = Path(__file__).resolve().parent.parent


def shared(location, **options) -> SharedCache:
    return SharedCache(str(location), {"OPTIONS": options})


def worker(mode: str, location, *args) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.shared_worker", mode, str(location), *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def run(mode: str, location, *args) -> str:
    proc = worker(mode, location, *args)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL, wherever the process is (inside a write transaction included)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def wait_ready(proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", line


@pytest.fixture
def location(tmp_path):
    return tmp_path / "cache"


def test_a_set_is_seen_at_once_by_another_process(location):
    cache = shared(location)
    cache.set("from-parent", {"a": 1})
    assert run("get", location, "from-parent").strip() == "{'a': 1}"
    run("set", location, "from-child", "hello")
    assert cache.get("from-child") == "hello"
    run("clear", location)
    assert cache.get("from-child") is None
    assert cache.get("from-parent") is None


def test_locations_are_independent(tmp_path):
    a, b = shared(tmp_path / "a"), shared(tmp_path / "b")
    a.set("k", 1)
    assert b.get("k") is None
    run("set", tmp_path / "b", "k", "2")
    assert a.get("k") == 1
    assert b.get("k") == "2"


def test_add_race_has_one_winner_among_eight_processes(location, tmp_path):
    shared(location)
    go = tmp_path / "go"
    procs = [worker("add_race", location, "prize", go) for _ in range(8)]
    for proc in procs:
        wait_ready(proc)
    go.touch()
    results = [proc.communicate(timeout=60)[0].split()[-1] for proc in procs]
    assert sorted(results) == ["lost"] * 7 + ["won"]
    assert isinstance(shared(location).get("prize"), int)


@pytest.mark.parametrize("start", [0, 2**64, 0.5])
def test_incr_is_exact_from_four_processes_of_two_threads(location, tmp_path, start):
    cache = shared(location)
    cache.set("n", start, timeout=600)
    go = tmp_path / "go"
    times = 250
    procs = [worker("incr", location, "n", times, 2, go) for _ in range(4)]
    for proc in procs:
        wait_ready(proc)
    go.touch()
    for proc in procs:
        assert proc.communicate(timeout=120)[0].split()[-1] == "done"
    assert cache.get("n") == start + 4 * 2 * times
    assert 590 < cache.ttl("n") <= 600, "incr keeps the expiry"


def test_writers_killed_mid_write_leave_a_consistent_store(location):
    cache = shared(location, MAX_ENTRIES=500, MAP_SIZE=8 * 2**20)
    cache.set("survivor", "here", timeout=None)
    for i in range(20):
        proc = worker("write_forever", location)
        wait_ready(proc)
        time.sleep(0.01 + (i % 5) * 0.013)
        kill(proc)
        started = time.monotonic()
        cache.set(f"after-{i}", i)
        assert time.monotonic() - started < 1.0, "a dead writer never blocks the others"
    cache._native.check_invariants()
    for key in cache.keys("*"):
        cache.get(key)  # every entry reads back whole
    assert cache.get("after-19") == 19
    assert cache.stats()["entries"] <= 501


def test_stale_reader_slots_are_reclaimed(location):
    cache = shared(location)
    cache.set("k1", "v")
    cache.get("k1")
    before = cache._native._environment()["readers"]
    procs = [worker("read_forever", location) for _ in range(3)]
    for proc in procs:
        wait_ready(proc)
    for proc in procs:
        kill(proc)
    assert cache._native._environment()["readers"] >= before + 3, "the dead readers' slots are still taken"
    assert cache._native._clear_stale_readers() >= 3
    # And a fresh process clears them when it opens the store.
    for proc in [worker("read_forever", location) for _ in range(3)]:
        wait_ready(proc)
        kill(proc)
    run("get", location, "k1")
    # The opener cleared the three; what is left is the slot of its own main thread, which a process
    # that exits without closing its environment (none does: its registry lives to the end) keeps.
    assert cache._native._clear_stale_readers() <= 1


def test_a_full_map_never_fails_a_set(location):
    cache = shared(location, MAX_ENTRIES=10**9, MAP_SIZE=2**20)
    value = os.urandom(20_000)
    for i in range(300):
        cache.set(f"k{i}", value)
        assert cache.get(f"k{i}") == value
    stats = cache.stats()
    assert stats["entries"] < 60
    assert stats["evictions"] > 200
    # A value that can never fit is refused as RustCache refuses one over MAX_BYTES.
    cache.set("k299", os.urandom(4 * 2**20))
    assert cache.get("k299") is None
    assert cache.set_many({"small": 1, "huge": os.urandom(4 * 2**20)}) == ["huge"]
    assert cache.get("small") == 1
    cache._native.check_invariants()


def test_locks_exclude_each_other_across_processes(location, tmp_path):
    shared(location)
    go = tmp_path / "go"
    procs = [worker("lock", location, "L", 0.01, 5, go) for _ in range(4)]
    for proc in procs:
        wait_ready(proc)
    go.touch()
    spans = []
    for proc in procs:
        out = proc.communicate(timeout=120)[0].split("\n")
        ins = [float(line.split()[1]) for line in out if line.startswith("in ")]
        outs = [float(line.split()[1]) for line in out if line.startswith("out ")]
        spans += list(zip(ins, outs, strict=True))
    assert len(spans) == 20
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two processes held the lock at once"


def test_a_lock_held_by_a_dead_process_is_free_at_its_timeout(location):
    cache = shared(location)
    proc = worker("lock_and_die", location, "L", 1.0)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "acquired"
    kill(proc)
    lock = cache.lock("L", timeout=5)
    assert not lock.acquire(blocking=False)
    started = time.monotonic()
    assert lock.acquire(blocking_timeout=5)
    assert time.monotonic() - started < 1.5
    lock.release()


def test_a_fork_under_load_reopens_in_the_child(location):
    cache = shared(location)
    cache.set("before", 1)
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            cache.set(f"load{i % 50}", i)
            cache.get(f"load{(i * 7) % 50}")

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        children = []
        for n in range(4):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    env = cache._native._environment()
                    assert env["pid"] == os.getpid()
                    assert cache.get("before") >= 1  # (other children may have counted)
                    cache.set(f"child{n}", os.getpid())
                    assert cache.incr("before") >= 2
                    code = 0
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    os._exit(code)
            children.append(pid)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert cache._native._environment()["pid"] == os.getpid()
    assert sorted(cache.get_many([f"child{n}" for n in range(4)]).values()) == sorted(children)
    assert cache.get("before") == 5
    cache._native.check_invariants()


def test_multiprocessing_spawn_and_fork(location):
    import multiprocessing

    cache = shared(location)
    cache.set("n", 0)
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        with ctx.Pool(2) as pool:
            pool.starmap(_incr_in_pool, [(str(location), 10)] * 4)
    assert cache.get("n") == 80


def _incr_in_pool(location: str, times: int) -> None:
    cache = shared(location)
    for _ in range(times):
        cache.incr("n")


def test_a_process_adopts_the_map_another_grew(location):
    """MAP_RESIZED: a process opened with a small map meets a file another process grew past it, in a
    read and then in a write, and adopts the larger size instead of failing."""
    small, large = 2**20, 64 * 2**20
    cache = shared(location, MAP_SIZE=small, MAX_ENTRIES=10**9)
    cache.set("before", "kept")
    assert cache._native._environment()["map_size"] == small
    assert int(run("grow", location, large, 40, 500_000)) == large
    # 20 MB of entries now sit in pages past this process's map: a read must adopt the new size.
    assert cache.get("big39") == bytes([39]) * 500_000
    assert cache._native._environment()["map_size"] == large
    assert cache.get("before") == "kept"
    # And a write that needs the room the other process made (a 1 MB map could never hold it).
    cache.set("mine", b"m" * 3 * 2**20)
    assert run("get", location, "mine").startswith("b'mmm")
    assert sum(cache.get(f"big{i}") is not None for i in range(40)) == 40
    cache._native.check_invariants()
