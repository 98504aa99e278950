"""``RustCache``: Django's cache API on a store written in Rust.

This class is a thin face: it turns settings into a native handle (``_core.Cache``) and forwards
each call to it. Keys are made, values pickled and expiry kept by the handle. Where a project
customises key making (``KEY_FUNCTION``, or a subclass overriding ``make_key``/``validate_key``),
keys are made here in Python and handed over ready.
"""

import pickle
import warnings
from typing import Any

from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    BaseCache,
    CacheKeyWarning,
    default_key_func,
    memcache_key_warnings,
)
from django.core.exceptions import ImproperlyConfigured

from . import _core
from .extras import ExtrasMixin
from .options import parse_options


def _warn_about_key(key: str) -> None:
    """Django's key warnings, for a key the handle found suspect."""
    for warning in memcache_key_warnings(key):
        # 1: here, 2: the RustCache method, 3: the caller's line.
        warnings.warn(warning, CacheKeyWarning, stacklevel=3)


def _clamp_i64(n: int) -> int:
    """Django's limits are any int; past 64 bits they mean the same as the nearest 64-bit one."""
    return max(-(2**63), min(n, 2**63 - 1))


class _HandleSetting:
    """An instance setting the native handle was built from: assigning it rebuilds the handle, so
    ``cache._max_entries = -1`` (as Django's test suite does) takes effect at once."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_setting" + name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance.__dict__[self.slot]

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.slot] = value
        if "_native" in instance.__dict__:
            instance._build_native()


class RustCache(ExtrasMixin, BaseCache):
    """A process-local cache, shared by every instance with the same ``LOCATION``, with
    ``LocMemCache``'s semantics."""

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    default_timeout = _HandleSetting()
    key_prefix = _HandleSetting()
    version = _HandleSetting()
    key_func = _HandleSetting()
    _max_entries = _HandleSetting()
    _cull_frequency = _HandleSetting()

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._location = name
        self._options = parse_options(params.get("OPTIONS", {}))
        if self._options.pickle_protocol is not None:
            self.pickle_protocol = self._options.pickle_protocol
        self._build_native()

    def _build_native(self) -> None:
        cls = type(self)
        self._verbatim = not (
            self.key_func is default_key_func
            and cls.make_key is BaseCache.make_key
            and cls.validate_key is BaseCache.validate_key
            and cls.make_and_validate_key is BaseCache.make_and_validate_key
        )
        try:
            self._native = self._new_native()
        except ValueError as exc:
            raise ImproperlyConfigured(f"RustCache OPTIONS['EVICTION']: {exc}") from exc

    def _new_native(self) -> "_core.Cache":
        return _core.Cache(
            self._location,
            key_prefix=self.key_prefix,
            version=self.version,
            default_timeout=self.default_timeout,
            timeout_sentinel=DEFAULT_TIMEOUT,
            max_entries=_clamp_i64(self._max_entries),
            cull_frequency=_clamp_i64(self._cull_frequency),
            max_bytes=self._options.max_bytes,
            pickle_protocol=self.pickle_protocol,
            make_keys=not self._verbatim,
            key_warner=_warn_about_key,
            python_clock=self._options.clock == "python",
            eviction=self._options.eviction,
        )

    def _made(self, keys: Any, version: int | None) -> dict[str, Any]:
        return {self.make_and_validate_key(key, version=version): key for key in keys}

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        if self._verbatim:
            key = self.make_and_validate_key(key, version=version)
        return self._native.add(key, value, timeout, version)

    def get(self, key, default=None, version=None):
        if self._verbatim:
            key = self.make_and_validate_key(key, version=version)
        return self._native.get(key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        if self._verbatim:
            key = self.make_and_validate_key(key, version=version)
        self._native.set(key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        if self._verbatim:
            key = self.make_and_validate_key(key, version=version)
        return self._native.touch(key, timeout, version)

    def delete(self, key, version=None):
        if self._verbatim:
            key = self.make_and_validate_key(key, version=version)
        return self._native.delete(key, version)

    def has_key(self, key, version=None):
        if self._verbatim:
            key = self.make_and_validate_key(key, version=version)
        return self._native.has_key(key, version)

    def incr(self, key, delta=1, version=None):
        if self._verbatim:
            key = self.make_and_validate_key(key, version=version)
        return self._native.incr(key, delta, version)

    def get_many(self, keys, version=None):
        if self._verbatim:
            made = self._made(keys, version)
            return {made[key]: value for key, value in self._native.get_many(made, version).items()}
        return self._native.get_many(keys, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        if self._verbatim:
            made = self._made(data, version)
            failed = self._native.set_many({key: data[made[key]] for key in made}, timeout, version)
            return [made[key] for key in failed]
        return self._native.set_many(data, timeout, version)

    def delete_many(self, keys, version=None):
        if self._verbatim:
            keys = self._made(keys, version)
        self._native.delete_many(keys, version)

    def clear(self):
        self._native.clear()

    def stats(self) -> dict[str, Any]:
        """Counters (hits, misses, sets, deletes, evictions, expirations) and sizes (entries,
        bytes) of this cache's LOCATION, with the limits this instance writes with."""
        return self._native.stats()

    # The async API runs inline: every call is a memory operation, and a thread hop
    # (BaseCache's sync_to_async) would cost a hundred times the work.

    async def aadd(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self.add(key, value, timeout, version)

    async def aget(self, key, default=None, version=None):
        return self.get(key, default, version)

    async def aset(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self.set(key, value, timeout, version)

    async def atouch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self.touch(key, timeout, version)

    async def adelete(self, key, version=None):
        return self.delete(key, version)

    async def aget_many(self, keys, version=None):
        return self.get_many(keys, version)

    async def ahas_key(self, key, version=None):
        return self.has_key(key, version)

    async def aincr(self, key, delta=1, version=None):
        return self.incr(key, delta, version)

    async def adecr(self, key, delta=1, version=None):
        return self.decr(key, delta, version)

    async def aset_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self.set_many(data, timeout, version)

    async def adelete_many(self, keys, version=None):
        return self.delete_many(keys, version)

    async def aclear(self):
        return self.clear()

    async def aincr_version(self, key, delta=1, version=None):
        return self.incr_version(key, delta, version)

    async def adecr_version(self, key, delta=1, version=None):
        return self.decr_version(key, delta, version)

    async def aclose(self, **kwargs):
        return self.close(**kwargs)
