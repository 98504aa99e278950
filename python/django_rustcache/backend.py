"""``RustCache``: Django's cache API on a store written in Rust.

This class is a thin face: it turns settings into a native handle (``_core.Cache``) and forwards
each call to it. Keys are made, values pickled and expiry kept by the handle. Where a project
customises key making (``KEY_FUNCTION``, or a subclass overriding ``make_key``/``validate_key``),
keys are made here in Python and handed over ready.
"""

import math
import pickle
import warnings
import weakref
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


class _Items:
    """Pairs already made, handed to the native ``set_many`` (which reads ``data.items()``)."""

    def __init__(self, pairs: Any) -> None:
        self._pairs = list(pairs)

    def items(self) -> list[tuple[Any, Any]]:
        return self._pairs


def _warn_about_key(key: str, stacklevel: int = 3) -> None:
    """Django's key warnings, for a key the handle found suspect. The handle says where the caller's
    line is: 1 is here, 2 the RustCache method (or the caller, for a bound native method), 3 its caller."""
    for warning in memcache_key_warnings(key):
        warnings.warn(warning, CacheKeyWarning, stacklevel=stacklevel)


_UNSET = object()
_I64 = (-(2**63), 2**63 - 1)
_I32 = (-(2**31), 2**31 - 1)


def _clamp(n: Any, bounds: tuple[int, int]) -> int:
    """Django's limits are any number: past 64 bits they mean what the nearest 64-bit int means, and a
    fractional MAX_ENTRIES means its ceiling (``len(cache) >= 2.5`` is ``len(cache) >= 3``)."""
    return max(bounds[0], min(math.ceil(n), bounds[1]))


def _location_key(name: Any) -> str:
    """The registry key of a LOCATION. Django passes the setting as it is (``None``, say, from an unset
    environment variable), and ``LocMemCache`` keys a dict with it, so any value must work."""
    if type(name) is str:
        try:
            name.encode()
        except UnicodeEncodeError:
            pass
        else:
            return name
    return "\x00" + repr(name)


# The instance settings the native handle is built from: assigning one (``cache._max_entries = -1``, as
# Django's test suite does, or ``cache.pickle_protocol = 2``, which LocMemCache reads at every set)
# rebuilds the handle, so it takes effect at once.
_HANDLE_SETTINGS = frozenset(
    {"default_timeout", "key_prefix", "version", "key_func", "_max_entries", "_cull_frequency", "pickle_protocol"}
)


def _weak_hook(cache: Any) -> Any:
    """``cache.get_backend_timeout``, for the handle to call, without the handle keeping ``cache`` alive:
    the handle is held by the instance, and a native object cannot take part in Python's cycle
    collection, so a strong reference would leak every instance Django builds per thread."""
    method = weakref.WeakMethod(cache.get_backend_timeout)

    def get_backend_timeout(timeout: Any) -> Any:
        bound = method()
        if bound is None:  # the instance is gone: no caller can be using its handle
            raise ReferenceError("the cache instance this handle belonged to no longer exists")
        return bound(timeout)

    return get_backend_timeout


class _Unusable:
    """Stands in for a handle that could not be built because the settings conflict with a store this
    process already has: building the backend succeeds (Django's checks framework builds every alias,
    and our checks report the conflict), and its first operation raises."""

    def __init__(self, message: str) -> None:
        self._message = message

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocol probes (copy, pickle, hasattr) get the usual answer
            raise AttributeError(name)
        raise ImproperlyConfigured(self._message)


class NativeCache(ExtrasMixin, BaseCache):
    """The face every django-rustcache backend shares: Django's API (and the extras) forwarded to a
    native handle. A backend says how its LOCATION and OPTIONS are read and which handle it builds
    (``_location_of``, ``_parse_options``, ``_new_native``); nothing else differs."""

    _location_of: Any
    _parse_options: Any

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._location = self._location_of(name)
        self._options = self._parse_options(params.get("OPTIONS", {}))
        if self._options.pickle_protocol is not None:
            self.pickle_protocol = self._options.pickle_protocol
        self._build_native()

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _HANDLE_SETTINGS or "_state" not in self.__dict__:
            object.__setattr__(self, name, value)
            return
        self._rebuild_with(name, value)

    def _rebuild_with(self, name: str, value: Any) -> None:
        """Change one handle setting and rebuild the handle; a value it cannot take is refused and the
        old one kept."""
        old = self.__dict__.get(name, _UNSET)
        self._assign(name, value)
        try:
            self._build_native()
        except BaseException:
            self._assign(name, old)
            raise

    def _assign(self, name: str, value: Any) -> None:
        if value is _UNSET:
            self.__dict__.pop(name, None)
        else:
            self.__dict__[name] = value

    def __delattr__(self, name: str) -> None:
        # Deleting a setting that has a class-level default (``mock.patch.object`` does, to restore
        # ``pickle_protocol``) rebuilds the handle with that default; one without a default cannot be
        # built without, so the handle stays as it was until the setting is assigned again.
        if name in _HANDLE_SETTINGS and "_state" in self.__dict__ and hasattr(type(self), name):
            if name not in self.__dict__:
                raise AttributeError(name)
            self._rebuild_with(name, _UNSET)
            return
        object.__delattr__(self, name)

    def _new_native(self, *, verbatim: bool, protocol: Any, hook: Any) -> Any:
        """The native handle for the current settings."""
        raise NotImplementedError

    def _handle_settings(self, *, verbatim: bool, protocol: Any, hook: Any) -> dict[str, Any]:
        """What every native handle is built from: the instance's key making, timeouts, limits, pickle
        protocol and clock (each handle class adds its store's own settings)."""
        return {
            "key_prefix": self.key_prefix,
            "version": self.version,
            "default_timeout": self.default_timeout,
            "timeout_sentinel": DEFAULT_TIMEOUT,
            "max_entries": _clamp(self._max_entries, _I64),
            "cull_frequency": _clamp(self._cull_frequency, _I64),
            "max_bytes": self._options.max_bytes,
            "pickle_protocol": pickle.DEFAULT_PROTOCOL if protocol is None else _clamp(protocol, _I32),
            "make_keys": not verbatim,
            "key_warner": _warn_about_key,
            "python_clock": self._options.clock == "python",
            "timeout_hook": hook,
        }

    def _build_native(self) -> None:
        cls = type(self)
        verbatim = not (
            self.key_func is default_key_func
            and cls.make_key is BaseCache.make_key
            and cls.validate_key is BaseCache.validate_key
            and cls.make_and_validate_key is BaseCache.make_and_validate_key
        )
        # A subclass that overrides get/set/delete sees them called by the *_many methods, as
        # BaseCache's loops (which LocMemCache uses) call them.
        self._generic_many = not (
            cls.get is NativeCache.get and cls.set is NativeCache.set and cls.delete is NativeCache.delete
        )
        protocol = self.pickle_protocol
        # A subclass's get_backend_timeout (capping or jittering timeouts) decides every deadline, as
        # LocMemCache calls it at every write.
        hook = _weak_hook(self) if cls.get_backend_timeout is not BaseCache.get_backend_timeout else None
        native = self._new_native(verbatim=verbatim, protocol=protocol, hook=hook)
        # One attribute, published last: a thread reading it mid-rebuild sees the old pair or the new
        # one, never a mix (keys made in Python handed to a handle that makes them again).
        self._state = (verbatim, native)
        # The hottest call skips this class: when the handle makes the keys and no subclass has its own
        # `get`, the instance's `get` is the handle's (a bound method of the new handle, consistent on
        # its own; a thread still holding the old one uses the old handle whole).
        if not verbatim and cls.get is NativeCache.get and not isinstance(native, _Unusable):
            self.__dict__["get"] = native.direct_get
        else:
            self.__dict__.pop("get", None)

    def _keyed(self, key: Any, version: int | None) -> tuple["_core.Cache", Any]:
        """The handle and the key to give it, from one read of ``_state`` (see ``_build_native``). The
        cache methods below inline this, to spare a Python call on every operation."""
        verbatim, native = self._state
        if verbatim:
            key = self.make_and_validate_key(key, version=version)
        return native, key

    @property
    def _verbatim(self) -> bool:
        """Keys are made in Python (custom KEY_FUNCTION, or make_key/validate_key overridden)."""
        return self._state[0]

    @property
    def _native(self) -> "_core.Cache":
        return self._state[1]

    def _made(self, keys: Any, version: int | None) -> list[tuple[str, Any]]:
        return [(self.make_and_validate_key(key, version=version), key) for key in keys]

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        verbatim, native = self._state
        if verbatim:
            key = self.make_and_validate_key(key, version=version)
        return native.add(key, value, timeout, version)

    def get(self, key, default=None, version=None):
        verbatim, native = self._state
        if verbatim:
            key = self.make_and_validate_key(key, version=version)
        return native.get(key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        verbatim, native = self._state
        if verbatim:
            key = self.make_and_validate_key(key, version=version)
        native.set(key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        verbatim, native = self._state
        if verbatim:
            key = self.make_and_validate_key(key, version=version)
        return native.touch(key, timeout, version)

    def delete(self, key, version=None):
        verbatim, native = self._state
        if verbatim:
            key = self.make_and_validate_key(key, version=version)
        return native.delete(key, version)

    def has_key(self, key, version=None):
        verbatim, native = self._state
        if verbatim:
            key = self.make_and_validate_key(key, version=version)
        return native.has_key(key, version)

    def incr(self, key, delta=1, version=None):
        verbatim, native = self._state
        if verbatim:
            key = self.make_and_validate_key(key, version=version)
        return native.incr(key, delta, version)

    def get_many(self, keys, version=None):
        if self._generic_many:
            return super().get_many(keys, version=version)
        verbatim, native = self._state
        if not verbatim:
            return native.get_many(keys, version)
        made = self._made(keys, version)
        found = native.get_many([full for full, _ in made], version)
        return {key: found[full] for full, key in made if full in found}

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        if self._generic_many:
            return super().set_many(data, timeout=timeout, version=version)
        verbatim, native = self._state
        if not verbatim:
            return native.set_many(data, timeout, version)
        made = [(self.make_and_validate_key(key, version=version), key, value) for key, value in data.items()]
        failed = set(native.set_many(_Items((full, value) for full, _, value in made), timeout, version))
        return [key for full, key, _ in made if full in failed]

    def delete_many(self, keys, version=None):
        if self._generic_many:
            return super().delete_many(keys, version=version)
        verbatim, native = self._state
        if verbatim:
            keys = [full for full, _ in self._made(keys, version)]
        native.delete_many(keys, version)

    def clear(self):
        self._native.clear()

    def stats(self) -> dict[str, Any]:
        """Counters (hits, misses, sets, deletes, evictions, expirations, refused) and sizes (entries,
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


class RustCache(NativeCache):
    """A process-local cache, shared by every instance with the same ``LOCATION``, with
    ``LocMemCache``'s semantics."""

    _location_of = staticmethod(_location_key)
    _parse_options = staticmethod(parse_options)

    def _new_native(self, *, verbatim: bool, protocol: Any, hook: Any) -> Any:
        try:
            return _core.Cache(
                self._location,
                eviction=self._options.eviction,
                **self._handle_settings(verbatim=verbatim, protocol=protocol, hook=hook),
            )
        except _core.EvictionConflict as exc:
            return _Unusable(f"RustCache OPTIONS['EVICTION']: {exc}")
