"""The django-redis extras, on a local store: ``ttl``, ``expire``, ``persist``, ``keys``, ``iter_keys``,
``delete_pattern``, ``lock`` (and their async twins), and single-flight ``get_or_set``.

Names and signatures are django-redis's, so code written against django-redis runs unchanged; where the
behaviour differs, the method's docstring says so (and the README's "coming from django-redis" table).
"""

import datetime
import functools
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache, default_key_func, get_key_func
from django.core.exceptions import ImproperlyConfigured

from . import single_flight
from .locks import AsyncLock, Lock, NativeLockStore

_MISSING = object()


@functools.lru_cache(maxsize=256)
def _compile_glob(pattern: str) -> re.Pattern[str]:
    """Redis's glob (``stringmatchlen``) as a regular expression: ``*`` any run, ``?`` one character,
    ``[abc]`` / ``[a-z]`` / ``[^abc]`` a class (``^`` negates; ``!`` is a plain character, unlike
    ``fnmatch``), ``\\x`` the character ``x``. Case-sensitive; a ``[`` left open runs to the end."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            items = []
            while i < n and pattern[i] != "]":
                if pattern[i] == "\\" and i + 1 < n:
                    items.append(re.escape(pattern[i + 1]))
                    i += 2
                elif i + 2 < n and pattern[i + 1] == "-":
                    low, high = sorted((pattern[i], pattern[i + 2]))
                    items.append(f"{re.escape(low)}-{re.escape(high)}")
                    i += 3
                else:
                    items.append(re.escape(pattern[i]))
                    i += 1
            i += 1  # the closing "]" (or past the end)
            if items:
                out.append(f"[{'^' if negate else ''}{''.join(items)}]")
            else:
                out.append("." if negate else "(?!)")
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def _glob_escape(text: str) -> str:
    """`text` as a glob that matches only itself."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _seconds(timeout: Any) -> Any:
    return timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else timeout


def _ms(seconds: float) -> int:
    """Whole milliseconds of `seconds`, truncated (to the microsecond first: 4.35 s is 4350 ms, though
    ``4.35 * 1000`` is 4349.999...)."""
    return int(round(seconds * 1000, 3))


def _unix_time(when: Any) -> float:
    return when.timestamp() if isinstance(when, datetime.datetime) else when


class KeyExtras:
    """django-redis's expiry, key-listing and lock extras, written once over a few store hooks
    (``_time_left``, ``_expire_in``, ``_persist``, ``_keys_under``, ``_keys_matching``,
    ``_delete_matched``, ``_lock_store``, ``_offload``): ``RustCache``/``SharedCache`` answer them from
    their native store, ``RedisNearCache`` from the server. Mixed in before ``BaseCache``."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        # django-redis reads REVERSE_KEY_FUNCTION from the alias itself, beside KEY_FUNCTION.
        reverse = params.get("REVERSE_KEY_FUNCTION")
        self._reverse_key_func = get_key_func(reverse) if reverse is not None else None

    # -- the store's hooks ---------------------------------------------------------------------------

    def _time_left(self, key: Any, version: int | None) -> float | None:
        """Seconds until `key` expires; None if it never does; 0.0 if there is no such key."""
        raise NotImplementedError

    def _expire_in(self, key: Any, seconds: Any, version: int | None) -> bool:
        """Make `key` expire in `seconds` (a number, zero or less removing it, or ``DEFAULT_TIMEOUT``);
        whether the key was there."""
        raise NotImplementedError

    def _persist(self, key: Any, version: int | None) -> bool:
        """Remove `key`'s expiry; whether it had one."""
        raise NotImplementedError

    def _keys_under(self, prefix: str, search: str) -> list[str]:
        """The full keys of the live entries that start with `prefix` and whose rest matches the glob
        `search`."""
        raise NotImplementedError

    def _keys_matching(self, pattern: str) -> list[str]:
        """The full keys of the live entries whose whole key matches the glob `pattern`."""
        raise NotImplementedError

    def _delete_matched(self, matched: list[tuple[str, str]], version: int | None) -> int:
        """Delete the (user key, full key) pairs found by `_matching`; how many were deleted."""
        raise NotImplementedError

    def _lock_store(self, name: Any, version: int | None) -> Any:
        """The ``locks.LockStore`` that holds the lock named `name`."""
        raise NotImplementedError

    async def _offload(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking method for an async twin (inline, unless the store is across a network)."""
        return f(*args, **kwargs)

    # -- expiry ------------------------------------------------------------------------------------

    def ttl(self, key: Any, version: int | None = None) -> int | None:
        """Whole seconds until `key` expires, rounded as Redis's ``TTL`` rounds; None if it never
        expires; 0 if there is no such key (as django-redis: also 0 for a key with under half a second
        left)."""
        left = self._time_left(key, version)
        return None if left is None else (_ms(left) + 500) // 1000

    def pttl(self, key: Any, version: int | None = None) -> int | None:
        """As `ttl`, in milliseconds."""
        left = self._time_left(key, version)
        return None if left is None else _ms(left)

    def expire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """Make `key` expire in `timeout` seconds (a number or a ``timedelta``; zero or less removes
        it); whether the key was there."""
        if timeout is None:
            raise TypeError("expire() needs a timeout in seconds; persist() removes a key's expiry.")
        return self._expire_in(key, _seconds(timeout), version)

    def pexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """As `expire`, with `timeout` in milliseconds (or a ``timedelta``; ``DEFAULT_TIMEOUT``: the
        alias's ``TIMEOUT``)."""
        if timeout is None:
            raise TypeError("pexpire() needs a timeout in milliseconds; persist() removes a key's expiry.")
        if timeout is DEFAULT_TIMEOUT:
            seconds = timeout  # the alias's TIMEOUT, as expire() applies it
        elif isinstance(timeout, datetime.timedelta):
            seconds = timeout.total_seconds()
        else:
            seconds = timeout / 1000
        return self._expire_in(key, seconds, version)

    def expire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        """Make `key` expire at `when`, a ``datetime`` or a Unix time in seconds."""
        return self.expire(key, _unix_time(when) - self._clock(), version=version)

    def pexpire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        """Make `key` expire at `when`, a ``datetime`` or a Unix time in milliseconds."""
        at = when.timestamp() if isinstance(when, datetime.datetime) else when / 1000
        return self.expire(key, at - self._clock(), version=version)

    def _clock(self) -> float:
        # The clock expiry is measured on: Python's (time-machine moves it) unless OPTIONS["CLOCK"] is
        # "system", whose clock is the same one unless a test moves Python's.
        return time.time()

    def persist(self, key: Any, version: int | None = None) -> bool:
        """Remove `key`'s expiry; whether it had one (as Redis's ``PERSIST``: False for a key that never
        expires or is not there)."""
        return self._persist(key, version)

    # -- keys --------------------------------------------------------------------------------------

    def _matching(self, search: str, version: int | None) -> list[tuple[str, str]]:
        """(user key, full key) of each live entry of this prefix and version whose key matches the
        Redis glob `search`."""
        if version is None:
            version = self.version
        if self.key_func is default_key_func and type(self).make_key is BaseCache.make_key:
            # Match the user's part of the key only: the prefix may hold glob characters of its own.
            prefix = f"{self.key_prefix}:{version}:"
            start = len(prefix)
            return [(full[start:], full) for full in self._keys_under(prefix, search)]
        if self._reverse_key_func is None:
            raise ImproperlyConfigured(
                "keys(), iter_keys() and delete_pattern() find keys by reversing the cache's key function; "
                "with a custom KEY_FUNCTION (or make_key), set REVERSE_KEY_FUNCTION beside it in the CACHES "
                "entry, as with django-redis."
            )
        full_pattern = self.key_func(search, _glob_escape(str(self.key_prefix)), _glob_escape(str(version)))
        return [(self._reverse_key_func(full), full) for full in self._keys_matching(full_pattern)]

    def keys(self, search: str, version: int | None = None) -> list[str]:
        """The keys (as the user gave them) of the live entries, of this cache's KEY_PREFIX and `version`,
        that match the Redis glob `search` (``*``, ``?``, ``[a-z]``, ``[^a]``, ``\\`` escapes)."""
        return [user for user, _ in self._matching(search, version)]

    def iter_keys(self, search: str, itersize: int | None = None, version: int | None = None) -> Iterator[str]:
        """As `keys`, lazily: the matching keys are gathered when iteration starts (in one step, so
        `itersize` is accepted and ignored), and changing the cache while iterating is safe."""
        yield from self.keys(search, version=version)

    def delete_pattern(self, pattern: str, version: int | None = None, itersize: int | None = None) -> int:
        """Delete every live key matching the Redis glob `pattern` (as `keys`); how many were deleted.
        `itersize` is accepted and ignored."""
        matched = self._matching(pattern, version)
        if not matched:
            return 0
        return self._delete_matched(matched, version)

    # -- locks -------------------------------------------------------------------------------------

    def lock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> Lock:
        """A lock named `key`, held as a cache entry that expires after `timeout` seconds (None: never).
        redis-py's ``Lock`` API; waiting threads of the process take it in the order they came."""
        return Lock(self, key, version, timeout, sleep, blocking, blocking_timeout, thread_local)

    def alock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> AsyncLock:
        """The lock of `lock`, for asyncio code (``async with cache.alock("k"):``); not a coroutine."""
        return AsyncLock(self, key, version, timeout, sleep, blocking, blocking_timeout, thread_local)

    # -- async twins ---------------------------------------------------------------------------------

    async def attl(self, key: Any, version: int | None = None) -> int | None:
        return await self._offload(self.ttl, key, version=version)

    async def apttl(self, key: Any, version: int | None = None) -> int | None:
        return await self._offload(self.pttl, key, version=version)

    async def aexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        return await self._offload(self.expire, key, timeout, version=version)

    async def apexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        return await self._offload(self.pexpire, key, timeout, version=version)

    async def aexpire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        return await self._offload(self.expire_at, key, when, version=version)

    async def apexpire_at(self, key: Any, when: Any, version: int | None = None) -> bool:
        return await self._offload(self.pexpire_at, key, when, version=version)

    async def apersist(self, key: Any, version: int | None = None) -> bool:
        return await self._offload(self.persist, key, version=version)

    async def akeys(self, search: str, version: int | None = None) -> list[str]:
        return await self._offload(self.keys, search, version=version)

    async def aiter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> AsyncIterator[str]:
        for key in await self._offload(self.keys, search, version=version):
            yield key

    async def adelete_pattern(self, pattern: str, version: int | None = None, itersize: int | None = None) -> int:
        return await self._offload(self.delete_pattern, pattern, version=version, itersize=itersize)


class ExtrasMixin(KeyExtras):
    """``KeyExtras`` on a native in-process (or host-shared) store, plus single-flight ``get_or_set``;
    mixed into ``RustCache`` and ``SharedCache`` (before ``BaseCache``); uses their native handle
    (``_keyed``, ``_state``) and key making."""

    def _time_left(self, key: Any, version: int | None) -> float | None:
        native, key = self._keyed(key, version)
        left = native.ttl(key, version)
        return None if left == -1.0 else max(left, 0.0)

    def _expire_in(self, key: Any, seconds: Any, version: int | None) -> bool:
        native, key = self._keyed(key, version)
        return native.touch(key, seconds, version)

    def _persist(self, key: Any, version: int | None) -> bool:
        native, key = self._keyed(key, version)
        if native.ttl(key, version) < 0:
            return False
        return native.touch(key, None, version)

    def _keys_under(self, prefix: str, search: str) -> list[str]:
        match = _compile_glob(search).fullmatch
        start = len(prefix)
        return [full for full in self._native.live_keys(prefix) if match(full, start)]

    def _keys_matching(self, pattern: str) -> list[str]:
        match = _compile_glob(pattern).fullmatch
        return [full for full in self._native.live_keys("") if match(full)]

    def _delete_matched(self, matched: list[tuple[str, str]], version: int | None) -> int:
        verbatim, native = self._state
        return native.delete_many([full if verbatim else user for user, full in matched], version)

    def _lock_store(self, name: Any, version: int | None) -> NativeLockStore:
        native, key = self._keyed(name, version)
        return NativeLockStore(native, key, version)

    # -- single flight -----------------------------------------------------------------------------

    def get_or_set(self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> Any:
        """Django's ``get_or_set``; with ``OPTIONS["SINGLE_FLIGHT"]``, concurrent misses of one key run
        a callable `default` once, and the other callers wait for its value."""
        value = self.get(key, _MISSING, version=version)
        if value is not _MISSING:
            return value
        if self._options.single_flight and callable(default):
            return single_flight.get_or_set(self, key, default, timeout, version)
        # BaseCache.get_or_set's miss path, without its first get (made above).
        if callable(default):
            default = default()
        self.add(key, default, timeout=timeout, version=version)
        # Fetch the value again to avoid a race condition if another caller
        # added a value between the first get() and the add() above.
        return self.get(key, default, version=version)

    async def aget_or_set(
        self, key: Any, default: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        """As `get_or_set`; a single-flight waiter awaits without blocking the event loop."""
        if not self._options.single_flight or not callable(default):
            return self.get_or_set(key, default, timeout=timeout, version=version)
        value = self.get(key, _MISSING, version=version)
        if value is not _MISSING:
            return value
        return await single_flight.aget_or_set(self, key, default, timeout, version)
