"""RedisNearCache's django-redis extras against a real redis-server: expiry (ttl, pttl, expire, pexpire,
expire_at, pexpire_at, persist), key listing (keys, iter_keys, delete_pattern) and locks (lock, alock),
with mutual exclusion checked across spawned processes and a SIGKILLed holder."""

import asyncio
import datetime
import multiprocessing
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from django_rustcache import RedisNearCache
from django_rustcache.locks import AsyncLock, Lock, LockError, LockNotOwnedError
from tests.test_near import _calls, near, plain, port, unreachable, until, warm

__all__ = ["port"]  # the module's redis-server fixture, shared with test_near


def upper_key(key, key_prefix, version):
    return f"{key_prefix}|{version}|{key}".upper()


def reverse_upper_key(full):
    return full.split("|", 2)[2].lower()


def test_expiry_extras(port):
    c = near(port)
    c.set("k", "v", timeout=100)
    assert 99 <= c.ttl("k") <= 100
    assert 99_000 < c.pttl("k") <= 100_000
    assert c.expire("k", 10) is True
    assert 9 <= c.ttl("k") <= 10
    assert c.pexpire("k", 4350) is True
    assert 4000 < c.pttl("k") <= 4350
    assert c.expire("k", datetime.timedelta(seconds=20)) is True
    assert 19 <= c.ttl("k") <= 20
    assert c.expire_at("k", time.time() + 30) is True
    assert 29 <= c.ttl("k") <= 30
    assert c.expire_at("k", datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=40)) is True
    assert 39 <= c.ttl("k") <= 40
    assert c.pexpire_at("k", int((time.time() + 50) * 1000)) is True
    assert 49 <= c.ttl("k") <= 50
    assert c.persist("k") is True
    assert c.ttl("k") is None
    assert c.pttl("k") is None
    assert c.persist("k") is False  # as Redis's PERSIST: no expiry to remove
    assert c.ttl("missing") == 0
    assert c.pttl("missing") == 0
    assert c.expire("missing", 10) is False
    assert c.persist("missing") is False
    with pytest.raises(TypeError):
        c.expire("k", None)
    with pytest.raises(TypeError):
        c.pexpire("k", None)
    # A plain RedisCache sees the expiry the extras set: it is the server's.
    c.expire("k", 60)
    assert 59 <= Redis(port=port).ttl(f"{c.key_prefix}:1:k") <= 60


def test_expire_to_zero_deletes_and_our_next_read_sees_it(port):
    c = near(port)
    c.set("k", "v")
    warm(c, "k")
    assert c.expire("k", 0) is True
    assert c.get("k") is None  # at once: the local copy went with the write
    c.set("k", "v")
    warm(c, "k")
    c.expire("k", 0.2)
    until("the key's expiry", lambda: c.get("k") is None)


def test_keys_iter_keys_delete_pattern(port):
    c = near(port)
    c.set_many({"user:1": 1, "user:2": 2, "user:10": 10, "other": 0, "star*": 5})
    c.set("user:3", 3, version=2)
    assert sorted(c.keys("user:*")) == ["user:1", "user:10", "user:2"]
    assert sorted(c.keys("user:?")) == ["user:1", "user:2"]
    assert sorted(c.keys("user:[12]")) == ["user:1", "user:2"]
    assert c.keys("user:*", version=2) == ["user:3"]
    assert c.keys("star\\*") == ["star*"]
    assert c.keys("nothing*") == []
    assert sorted(c.iter_keys("user:*", itersize=1)) == ["user:1", "user:10", "user:2"]
    # Keys written by a plain RedisCache on the same prefix are found too (the server is the truth).
    plain(port, c.key_prefix).set("user:99", 99)
    assert "user:99" in c.keys("user:*")
    warm(c, "user:1")
    assert c.delete_pattern("user:*") == 4
    assert c.get("user:1") is None  # at once, though it was in the local copy
    assert c.keys("user:*") == []
    assert c.keys("user:*", version=2) == ["user:3"]
    assert c.delete_pattern("nothing*") == 0


def test_a_prefix_with_glob_characters_matches_only_itself(port):
    base = f"g{uuid.uuid4().hex[:6]}"
    globby = near(port, KEY_PREFIX=base + "[ab]*")
    lookalike = near(port, KEY_PREFIX=base + "a")
    globby.set("k", 1)
    lookalike.set("k", 2)
    assert globby.keys("*") == ["k"]
    assert globby.delete_pattern("*") == 1
    assert lookalike.get("k") == 2


def test_custom_key_function_needs_its_reverse(port):
    prefix = f"c{uuid.uuid4().hex[:6]}"
    url = f"redis://127.0.0.1:{port}/0"
    bare = RedisNearCache(url, {"KEY_PREFIX": prefix, "KEY_FUNCTION": upper_key})
    bare.set("a", 1)
    with pytest.raises(ImproperlyConfigured, match="REVERSE_KEY_FUNCTION"):
        bare.keys("*")
    c = RedisNearCache(
        url, {"KEY_PREFIX": prefix, "KEY_FUNCTION": upper_key, "REVERSE_KEY_FUNCTION": reverse_upper_key}
    )
    c.set("b", 2)
    assert sorted(c.keys("*")) == ["a", "b"]
    assert c.delete_pattern("A") == 1
    assert c.get("a") is None
    assert c.get("b") == 2


def test_async_twins(port):
    c = near(port)

    async def body():
        await c.aset("user:1", 1, timeout=100)
        assert 99 <= await c.attl("user:1") <= 100
        assert await c.apexpire("user:1", 50_000)
        assert 49 <= await c.attl("user:1") <= 50
        assert await c.apersist("user:1")
        assert await c.akeys("user:*") == ["user:1"]
        assert [k async for k in c.aiter_keys("user:*")] == ["user:1"]
        assert await c.adelete_pattern("user:*") == 1

    asyncio.run(body())


# Each extra with the server down, and what it answers with IGNORE_EXCEPTIONS: the miss (see near.py).
DOWN = [
    ("ttl", ("k",), 0),
    ("pttl", ("k",), 0),
    ("expire", ("k", 10), False),
    ("pexpire", ("k", 10_000), False),
    ("expire_at", ("k", time.time() + 60), False),
    ("pexpire_at", ("k", int((time.time() + 60) * 1000)), False),
    ("persist", ("k",), False),
    ("keys", ("user:*",), []),
    ("iter_keys", ("user:*",), []),
    ("delete_pattern", ("user:*",), 0),
]


async def _drain(result):
    """An async twin's answer: awaited, or (aiter_keys) iterated to a list."""
    return [k async for k in result] if hasattr(result, "__aiter__") else await result


def _call(cache, name, args, asynchronous):
    if asynchronous:
        return asyncio.run(_drain(getattr(cache, "a" + name)(*args)))
    result = getattr(cache, name)(*args)
    return list(result) if name == "iter_keys" else result


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("name", "args", "miss"), DOWN, ids=[d[0] for d in DOWN])
def test_extras_with_the_server_down_raise_or_are_a_miss(name, args, miss, asynchronous):
    with pytest.raises(RedisConnectionError):
        _call(unreachable(), name, args, asynchronous)
    assert _call(unreachable(IGNORE_EXCEPTIONS=True), name, args, asynchronous) == miss


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_lock_raises_with_the_server_down_whatever_ignore_exceptions_says(asynchronous):
    """A lock that "succeeded" without a server would exclude no one (django-redis does not omit lock's
    errors either)."""
    c = unreachable(IGNORE_EXCEPTIONS=True)
    if asynchronous:
        acquire = lambda: asyncio.run(c.alock("job", timeout=5).acquire(blocking=False))  # noqa: E731
    else:
        acquire = lambda: c.lock("job", timeout=5).acquire(blocking=False)  # noqa: E731
    with pytest.raises(RedisConnectionError):
        acquire()


def test_lock_api(port):
    c = near(port)
    lock = c.lock("job", timeout=5)
    assert isinstance(lock, Lock)
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    assert lock.owned()
    assert c.has_key("job")  # the lock is an entry on the server, as with django-redis
    other = c.lock("job", timeout=5)
    assert other.acquire(blocking=False) is False
    t = time.monotonic()
    assert other.acquire(blocking_timeout=0.3) is False
    assert 0.25 < time.monotonic() - t < 2
    assert not other.owned()
    assert lock.extend(10) is True
    assert 14 < c.ttl("job") <= 15
    assert lock.reacquire() is True
    assert 4 < c.ttl("job") <= 5
    lock.release()
    assert not lock.locked()
    assert not c.has_key("job")
    with pytest.raises(LockError):
        lock.release()
    with c.lock("job", timeout=5) as held:
        assert held.owned()
    assert not c.has_key("job")


def test_extend_is_one_compare_and_expire_on_the_server(port):
    """`extend`/`reacquire` check the token and set the expiry in one script (as redis-py's Lock),
    so a lock that changed hands in between cannot be extended; a lost lock raises and is untouched."""
    c = near(port)
    raw = Redis(port=port)
    lock = c.lock("job", timeout=5)
    assert lock.acquire()
    scripts, pexpires = _calls(raw, "evalsha") + _calls(raw, "eval"), _calls(raw, "pexpire")
    assert lock.extend(10) is True
    assert 14 < c.ttl("job") <= 15
    assert lock.extend(3, replace_ttl=True) is True
    assert 2 < c.ttl("job") <= 3
    assert lock.reacquire() is True
    assert 4 < c.ttl("job") <= 5
    assert _calls(raw, "evalsha") + _calls(raw, "eval") - scripts == 3  # one round trip each
    assert _calls(raw, "pexpire") - pexpires == 3  # run inside the scripts
    # Expired and taken by another holder: the old holder's extend and reacquire fail and leave the
    # new holder's expiry alone.
    raw.delete(f"{c.key_prefix}:1:job")
    thief = c.lock("job", timeout=30)
    assert thief.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        lock.extend(100)
    with pytest.raises(LockNotOwnedError):
        lock.reacquire()
    assert 29 < c.ttl("job") <= 30
    assert thief.owned()
    thief.release()


def test_an_expired_lock_is_taken_and_its_old_holder_cannot_release_it(port):
    c = near(port)
    first = c.lock("job", timeout=0.2)
    assert first.acquire()
    second = c.lock("job", timeout=5)
    t = time.monotonic()
    assert second.acquire(blocking_timeout=3) is True  # at the first's timeout
    assert time.monotonic() - t < 2
    assert not first.owned()
    with pytest.raises(LockNotOwnedError):
        first.release()
    assert second.owned()
    second.release()


def test_threads_take_turns(port):
    c = near(port)
    inside, overlaps, done = [], [], []

    def worker():
        for _ in range(20):
            with c.lock("crit", timeout=10, sleep=0.005):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                time.sleep(0.001)
                inside.pop()
                done.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not overlaps
    assert len(done) == 80


def test_alock(port):
    c = near(port)

    async def body():
        lock = c.alock("job", timeout=5)
        assert isinstance(lock, AsyncLock)
        async with lock:
            assert await lock.owned()
            assert await lock.locked()
            assert await c.alock("job").acquire(blocking=False) is False
            assert await lock.extend(5)
            assert await lock.reacquire()
        assert not await lock.locked()
        # Waiters in one loop take their turn; the loop keeps running meanwhile.
        order = []

        async def task(i):
            async with c.alock("turns", timeout=5, sleep=0.01):
                order.append(i)
                await asyncio.sleep(0.005)

        ticks = 0

        async def ticker():
            nonlocal ticks
            while len(order) < 5:
                ticks += 1
                await asyncio.sleep(0.001)

        await asyncio.gather(ticker(), *(task(i) for i in range(5)))
        assert sorted(order) == list(range(5))
        assert ticks > 5

    asyncio.run(body())


# -- across processes ---------------------------------------------------------------------------------


def _critical_sections(port, prefix, workdir, rounds):
    """Spawned: take the lock `rounds` times; inside, check no one else is inside (a marker file) and
    add one to a counter kept in a file."""
    c = near(port, KEY_PREFIX=prefix)
    marker, counter = Path(workdir, "inside"), Path(workdir, "counter")
    overlaps = 0
    for _ in range(rounds):
        with c.lock("crit", timeout=10, sleep=0.005):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                overlaps += 1
                fd = None
            n = int(counter.read_text() or 0)
            time.sleep(0.002)
            counter.write_text(str(n + 1))
            if fd is not None:
                os.close(fd)
                marker.unlink()
    Path(workdir, f"overlaps-{os.getpid()}").write_text(str(overlaps))


def test_processes_take_turns(port, tmp_path):
    prefix = f"x{uuid.uuid4().hex[:8]}"
    (tmp_path / "counter").write_text("0")
    ctx = multiprocessing.get_context("spawn")
    rounds, workers = 15, 4
    procs = [ctx.Process(target=_critical_sections, args=(port, prefix, str(tmp_path), rounds)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    overlaps = [int(f.read_text()) for f in tmp_path.glob("overlaps-*")]
    assert len(overlaps) == workers
    assert sum(overlaps) == 0, "two processes were inside the critical section at once"
    assert int((tmp_path / "counter").read_text()) == rounds * workers  # no lost update


def _hold_forever(port, prefix, ready):
    c = near(port, KEY_PREFIX=prefix)
    assert c.lock("held", timeout=1.5).acquire(blocking=False)
    Path(ready).write_text(str(time.time()))
    time.sleep(600)


def test_a_killed_holder_frees_the_lock_at_its_timeout(port, tmp_path):
    prefix = f"k{uuid.uuid4().hex[:8]}"
    ready = tmp_path / "ready"
    ctx = multiprocessing.get_context("spawn")
    holder = ctx.Process(target=_hold_forever, args=(port, prefix, str(ready)))
    holder.start()
    try:
        until("the holder's lock", ready.exists, timeout=60)
        until("the holder's note", lambda: ready.read_text() != "", timeout=5)
        taken = float(ready.read_text())
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        assert holder.exitcode == -signal.SIGKILL
        c = near(port, KEY_PREFIX=prefix)
        lock = c.lock("held", timeout=5)
        assert lock.acquire(blocking=False) is False  # still held by the dead process
        assert lock.acquire(blocking_timeout=10) is True
        waited = time.time() - taken
        assert 1.2 < waited < 4, waited  # free at the holder's 1.5 s timeout, not before
        lock.release()
    finally:
        if holder.is_alive():
            holder.kill()
