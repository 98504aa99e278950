"""``RedisNearCache``: Django's ``RedisCache`` with an in-process copy kept coherent by Redis's
client-side caching (``CLIENT TRACKING``). Keys and values on the server are exactly what
``RedisCache`` stores, so the two interoperate.

The face turns settings into a native handle (``_core.NearCache``, one per instance, sharing the
process's near cache of the server and ``LOCATION``) and forwards each call. Timeouts are resolved by
``RedisCache``'s rule (whole seconds, ``None`` = no expiry, ``0`` or less = delete); keys are made
in Rust unless a ``KEY_FUNCTION`` or an override of ``make_key``/``validate_key`` asks for Python.
"""

import asyncio
import contextlib
import functools
import hashlib
import math
import os
import pickle
import re
import ssl
import urllib.parse
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache, default_key_func
from django.core.exceptions import ImproperlyConfigured

from . import _core
from .backend import _warn_about_key
from .extras import KeyExtras, _glob_escape
from .locks import NativeLockStore

try:
    from redis.exceptions import AuthenticationError, ResponseError
    from redis.exceptions import ConnectionError as ServerConnectionError
    from redis.exceptions import TimeoutError as ServerTimeoutError
except ImportError:  # redis-py is not needed; without it, our own classes of the same names

    class ServerConnectionError(ConnectionError):  # type: ignore[no-redef]
        """The server could not be reached (redis-py's ``ConnectionError``)."""

    class AuthenticationError(ServerConnectionError):  # type: ignore[no-redef]
        """The server refused the credentials (redis-py's ``AuthenticationError``)."""

    class ServerTimeoutError(TimeoutError):  # type: ignore[no-redef]
        """The server did not answer in time (redis-py's ``TimeoutError``)."""

    class ResponseError(Exception):  # type: ignore[no-redef]
        """The server answered with an error (redis-py's ``ResponseError``)."""


SERVER_ERRORS = (ServerConnectionError, ServerTimeoutError)
_ERRORS = (ServerConnectionError, AuthenticationError, ServerTimeoutError, ResponseError, ImproperlyConfigured)

# Stop every listener thread before a fork and wait for it to end (so the child inherits no thread,
# nor a lock one held); no listener starts again until the fork is done. The parent's next operation
# starts a new one, and so does the child's, which starts with an empty local copy.
os.register_at_fork(
    before=_core.near_before_fork,
    after_in_parent=lambda: _core.near_after_fork(False),
    after_in_child=lambda: _core.near_after_fork(True),
)

_HANDLE_SETTINGS = frozenset({"key_func", "key_prefix", "version", "pickle_protocol"})
_LOCAL_KEYS = frozenset({"MAX_ENTRIES", "MAX_BYTES", "MAX_TTL", "HEARTBEAT", "REQUIRE_TRACKING"})
_OPTION_KEYS = frozenset(
    {"db", "username", "password", "socket_timeout", "socket_connect_timeout", "IGNORE_EXCEPTIONS"}
    | {"PICKLE_PROTOCOL", "LOCAL"}
    | {"ssl_cert_reqs", "ssl_check_hostname", "ssl_ca_certs", "ssl_ca_data", "ssl_certfile", "ssl_keyfile"}
)
# redis-py's `ssl_cert_reqs` values. A client checks the server's certificate under CERT_OPTIONAL as
# under CERT_REQUIRED (Python's `ssl`), so both verify.
_CERT_REQS = {None: "none", "none": "none", "optional": "full", "required": "full"} | {
    ssl.CERT_NONE: "none",
    ssl.CERT_OPTIONAL: "full",
    ssl.CERT_REQUIRED: "full",
}


def _number(name: str, value: Any, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if type(value) not in (int, float) or value <= 0:
        raise ImproperlyConfigured(f"RedisNearCache OPTIONS[{name!r}] must be a positive number, not {value!r}.")
    return float(value)


def _tls(options: dict[str, Any]) -> dict[str, Any] | None:
    """redis-py's ``ssl_*`` options (which Django's ``RedisCache`` passes to it) as the core takes
    them: how to verify the server, and the files to read. ``None`` if none is set."""
    if not any(name.startswith("ssl_") for name in options):
        return None
    reqs = options.get("ssl_cert_reqs", "required")
    try:
        verify = _CERT_REQS[reqs.lower() if isinstance(reqs, str) else reqs]
    except (KeyError, TypeError):
        raise ImproperlyConfigured(
            f"RedisNearCache OPTIONS['ssl_cert_reqs'] must be 'none', 'optional', 'required' or an "
            f"ssl.CERT_* value, not {reqs!r}."
        ) from None
    check_hostname = options.get("ssl_check_hostname", True)
    if type(check_hostname) is not bool:
        raise ImproperlyConfigured("RedisNearCache OPTIONS['ssl_check_hostname'] must be True or False.")
    if verify == "full" and not check_hostname:
        verify = "any-hostname"
    ca_data = options.get("ssl_ca_data")
    if isinstance(ca_data, (bytes, bytearray, memoryview)):  # redis-py: DER
        ca_data = ssl.DER_cert_to_PEM_cert(bytes(ca_data))
    elif ca_data is not None and not isinstance(ca_data, str):
        raise ImproperlyConfigured("RedisNearCache OPTIONS['ssl_ca_data'] must be PEM text or DER bytes.")
    files = {}
    for option, name in (("ssl_ca_certs", "ca_file"), ("ssl_certfile", "cert_file"), ("ssl_keyfile", "key_file")):
        path = options.get(option)
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ImproperlyConfigured(f"RedisNearCache OPTIONS[{option!r}] must be a path, not {path!r}.")
        files[name] = None if path is None else os.fspath(path)
    return {"verify": verify, "ca_data": ca_data, **files}


# The options a server URL's query string may set, as redis-py parses them (`parse_url`); with the
# URL's db and credentials they win over OPTIONS (redis-py's `from_url` does `kwargs.update(url_options)`).
_URL_OPTIONS = {
    "db": int,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "ssl_check_hostname": lambda v: v.upper() not in ("0", "F", "FALSE", "N", "NO"),
}


def _server_url(server: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One ``LOCATION`` URL as redis-py reads it with ``OPTIONS``: the URL the core is given (the
    database and credentials that apply written into it, the query string gone) and the other options
    its query string sets."""
    parts = urllib.parse.urlsplit(server)
    query = urllib.parse.parse_qs(parts.query)
    unknown = sorted(set(query) - set(_URL_OPTIONS))
    if unknown:
        raise ImproperlyConfigured(
            f"RedisNearCache LOCATION {server!r}: unsupported URL option(s) {', '.join(map(repr, unknown))}. "
            f"Known: {', '.join(sorted(_URL_OPTIONS))}."
        )
    found = {}
    for name, values in query.items():
        try:
            found[name] = _URL_OPTIONS[name](values[0])
        except ValueError:
            raise ImproperlyConfigured(f"RedisNearCache LOCATION {server!r}: invalid {name}={values[0]!r}.") from None
    db = found.pop("db", None)
    if db is None and parts.scheme != "unix":
        with contextlib.suppress(ValueError):  # redis-py: the path, if it is a number
            db = int(urllib.parse.unquote(parts.path).replace("/", ""))
    db = options.get("db") if db is None else db
    if db is not None and type(db) is not int:
        raise ImproperlyConfigured(f"RedisNearCache OPTIONS['db'] must be an int, not {db!r}.")
    username = urllib.parse.unquote(parts.username) if parts.username else options.get("username")
    password = urllib.parse.unquote(parts.password) if parts.password else options.get("password")
    for name, value in (("username", username), ("password", password)):
        if value is not None and not isinstance(value, str):
            raise ImproperlyConfigured(f"RedisNearCache OPTIONS[{name!r}] must be a str, not {value!r}.")
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme == "unix":  # the core reads a socket's database and credentials from the query
        given = {"db": db, "user": username, "pass": password}
        query_string = urllib.parse.urlencode({k: v for k, v in given.items() if v is not None})
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, query_string, "")), found
    if username is not None or password is not None:
        quote = functools.partial(urllib.parse.quote, safe="")
        host = f"{quote(username or '')}{':' + quote(password) if password is not None else ''}@{host}"
    path = "" if db is None else f"/{db}"
    return urllib.parse.urlunsplit((parts.scheme, host, path, "", parts.fragment)), found


def _servers(location: Any, options: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The servers of ``LOCATION`` (a list, or a string split at ``,``/``;``) as `_server_url` gives
    them, and the options their query strings set (which must agree: the servers share one pool's)."""
    servers = re.split("[;,]", location) if isinstance(location, str) else list(location)
    servers = [s.strip() for s in servers if s and s.strip()]
    if not servers:
        raise ImproperlyConfigured("RedisNearCache LOCATION names no server.")
    urls, found = [], {}
    for server in servers:
        url, url_options = _server_url(server, options)
        urls.append(url)
        for name, value in url_options.items():
            if found.setdefault(name, value) != value:
                raise ImproperlyConfigured(f"RedisNearCache LOCATION: the servers' URLs disagree on {name}.")
    return urls, found


# The longest expiry the extras ask the server for, in milliseconds (Redis refuses one whose deadline
# overflows; 2**46 ms is about 2,200 years).
_MAX_MS = 2**46


def _omitted(miss: Any) -> Any:
    """With ``OPTIONS["IGNORE_EXCEPTIONS"]``, a server error (connection or timeout) in the decorated
    extras hook returns ``miss()`` instead of raising: the zero of the hook's type, which the public
    method turns into its "miss" answer (django-redis's ``omit_exception`` for its extras)."""

    def wrap(hook: Any) -> Any:
        @functools.wraps(hook)
        def guarded(self: "RedisNearCache", *args: Any) -> Any:
            return self._guard(miss(), hook, self, *args)

        return guarded

    return wrap


def _millis(seconds: float) -> int:
    """A positive number of seconds as whole milliseconds, rounded up (never 0, which would delete)."""
    return min(max(1, math.ceil(seconds * 1000)), _MAX_MS)


class _ServerLockStore(NativeLockStore):
    """A lock's entry on the server (``locks.NativeLockStore`` with the server's units): ``SET NX PX``
    to take it, a compare-and-delete script to release it, a compare-and-expire script to extend it. Every
    process and host using the server shares it; a holder that dies frees it at its timeout."""

    remote = True

    def add(self, token: str, timeout: float | None) -> bool:
        return self._native.lock_add(self._key, token, None if timeout is None else _millis(timeout), self._version)

    def time_left(self) -> float:
        ms = self._native.pttl(self._key, self._version)
        return float(ms) if ms < 0 else ms / 1000

    def expire(self, seconds: float) -> bool:
        return self._native.pexpire(self._key, _millis(seconds), self._version)

    def expire_if_holds(self, token: str, seconds: float, add_to_left: bool) -> bool:
        # One script on the server: the lock cannot change hands between the check and the expiry.
        return self._native.expire_if_equal(self._key, token, _millis(seconds), add_to_left, self._version)


class RedisNearCache(KeyExtras, BaseCache):
    """Django's ``RedisCache`` semantics, with hits served from a coherent in-process copy.

    With ``OPTIONS["IGNORE_EXCEPTIONS"]``, a server that cannot be reached (redis-py's
    ``ConnectionError`` or ``TimeoutError``) is a miss instead of an error, for the core API (``get``
    returns the default, ``add``/``touch``/``delete``/``has_key`` False, ``get_many`` ``{}``) and for
    the django-redis extras alike, each answering what it answers for a key that is not there:
    ``ttl``/``pttl`` 0 (not django-redis's None, which here means "never expires"), ``expire``,
    ``pexpire``, ``expire_at``, ``pexpire_at`` and ``persist`` False (nothing changed), ``keys`` []
    (``iter_keys`` nothing) and ``delete_pattern`` 0; their async twins the same. ``lock()`` and
    ``alock()`` raise whatever the option says, as django-redis's do: a lock that "succeeded" without
    a server would exclude no one.
    """

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = dict(params.get("OPTIONS", {}))
        unknown = sorted(set(options) - _OPTION_KEYS)
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown RedisNearCache OPTIONS key(s): {', '.join(map(repr, unknown))}. "
                f"Known: {', '.join(sorted(_OPTION_KEYS))}."
            )
        servers, url_options = _servers(server, options)
        options.update(url_options)
        local = dict(options.get("LOCAL", {}))
        unknown = sorted(set(local) - _LOCAL_KEYS)
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown RedisNearCache OPTIONS['LOCAL'] key(s): {', '.join(map(repr, unknown))}. "
                f"Known: {', '.join(sorted(_LOCAL_KEYS))}."
            )
        max_entries = local.get("MAX_ENTRIES", 50_000)
        if type(max_entries) is not int or max_entries < 1:
            raise ImproperlyConfigured(f"RedisNearCache LOCAL['MAX_ENTRIES'] must be an int >= 1, not {max_entries!r}.")
        max_bytes = local.get("MAX_BYTES")
        if max_bytes is not None and (type(max_bytes) is not int or max_bytes < 1):
            raise ImproperlyConfigured(f"RedisNearCache LOCAL['MAX_BYTES'] must be an int >= 1, not {max_bytes!r}.")
        require = local.get("REQUIRE_TRACKING", True)
        if type(require) is not bool:
            raise ImproperlyConfigured("RedisNearCache LOCAL['REQUIRE_TRACKING'] must be True or False.")
        max_ttl = _number("LOCAL['MAX_TTL']", local.get("MAX_TTL"))
        if not require and max_ttl is None:
            raise ImproperlyConfigured("RedisNearCache LOCAL['REQUIRE_TRACKING']=False needs LOCAL['MAX_TTL'].")
        protocol = options.get("PICKLE_PROTOCOL")
        if protocol is not None:
            if type(protocol) is not int or not -1 <= protocol <= pickle.HIGHEST_PROTOCOL:
                raise ImproperlyConfigured(f"RedisNearCache OPTIONS['PICKLE_PROTOCOL'] is invalid: {protocol!r}.")
            self.pickle_protocol = protocol
        self._ignore_exceptions = bool(options.get("IGNORE_EXCEPTIONS", False))
        # One process-wide near cache per server list, LOCATION settings and tracked prefix. Reads (and
        # so tracking) use one server: the first, or one of the others chosen once per process.
        read = servers[0] if len(servers) == 1 else servers[1 + os.getpid() % (len(servers) - 1)]
        settings = {  # (db and credentials are in the servers' URLs: _server_url)
            "connect_timeout": _number("socket_connect_timeout", options.get("socket_connect_timeout", 1.0)),
            "socket_timeout": _number("socket_timeout", options.get("socket_timeout", 5.0)),
            "tls": _tls(options),
            "max_ttl": max_ttl,
            "heartbeat": _number("LOCAL['HEARTBEAT']", local.get("HEARTBEAT", 1.0), allow_none=False),
            "require_tracking": require,
        }
        self._servers = [servers[0]] if read == servers[0] else [servers[0], read]
        self._settings = settings
        # The name locks' wait queues share with every instance of this server and LOCATION settings
        # (a digest: the URLs may carry a password, and a lock's repr shows this).
        self._location = "redis:" + hashlib.sha256(repr((self._servers, settings)).encode()).hexdigest()[:16]
        self._limits = (max_entries, max_bytes)
        self._build()

    def __setattr__(self, name: str, value: Any) -> None:
        # Django's tests (and some projects) assign these on a live instance: rebuild the handle.
        object.__setattr__(self, name, value)
        if name in _HANDLE_SETTINGS and "_native" in self.__dict__:
            self._build()

    def _build(self) -> None:
        cls = type(self)
        self._verbatim = not (
            self.key_func is default_key_func
            and cls.make_key is BaseCache.make_key
            and cls.validate_key is BaseCache.validate_key
            and cls.make_and_validate_key is BaseCache.make_and_validate_key
        )
        settings = dict(self._settings, tracking_prefix="" if self._verbatim else f"{self.key_prefix}:")
        max_entries, max_bytes = self._limits
        registry_key = repr((self._servers, sorted(settings.items()), max_entries, max_bytes))
        native = _core.NearCache(
            registry_key,
            self._servers,
            max_entries=max_entries,
            max_bytes=max_bytes,
            key_prefix=self.key_prefix,
            version=self.version,
            make_keys=not self._verbatim,
            key_warner=_warn_about_key,
            pickle_protocol=self.pickle_protocol,
            errors=_ERRORS,
            **settings,
        )
        object.__setattr__(self, "_native", native)
        if not self._verbatim and not self._ignore_exceptions and cls.get is RedisNearCache.get:
            self.__dict__["get"] = native.direct_get
        else:
            self.__dict__.pop("get", None)

    # Django's RedisCache.get_backend_timeout: whole seconds, None = persist, <= 0 = delete.
    def get_backend_timeout(self, timeout=DEFAULT_TIMEOUT):
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else max(0, int(timeout))

    def _k(self, key: Any, version: int | None) -> Any:
        return self.make_and_validate_key(key, version=version) if self._verbatim else key

    def _guard(self, default: Any, f: Any, *args: Any) -> Any:
        if not self._ignore_exceptions:
            return f(*args)
        try:
            return f(*args)
        except SERVER_ERRORS:
            return default

    def get(self, key, default=None, version=None):
        return self._guard(default, self._native.get, self._k(key, version), default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self._guard(None, self._native.set, self._k(key, version), value, self.get_backend_timeout(timeout), version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(
            False, self._native.add, self._k(key, version), value, self.get_backend_timeout(timeout), version
        )

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(False, self._native.touch, self._k(key, version), self.get_backend_timeout(timeout), version)

    def delete(self, key, version=None):
        return self._guard(False, self._native.delete, self._k(key, version), version)

    def has_key(self, key, version=None):
        return self._guard(False, self._native.has_key, self._k(key, version), version)

    def incr(self, key, delta=1, version=None):
        return self._guard(None, self._native.incr, self._k(key, version), delta, version)

    def get_many(self, keys, version=None):
        if self._verbatim:
            made = {self.make_and_validate_key(k, version=version): k for k in keys}
            found = self._guard({}, self._native.get_many, list(made), version)
            return {made[k]: v for k, v in found.items()}
        return self._guard({}, self._native.get_many, keys, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        if not data:
            return []
        if self._verbatim:
            data = {self.make_and_validate_key(k, version=version): v for k, v in data.items()}
        self._guard(None, self._native.set_many, data, self.get_backend_timeout(timeout), version)
        return []

    def delete_many(self, keys, version=None):
        if not keys:
            return
        keys = [self._k(k, version) for k in keys]
        self._guard(None, self._native.delete_many, keys, version)

    def clear(self):
        return self._guard(False, self._native.clear)

    # -- the extras' hooks (extras.KeyExtras): expiry, keys and locks on the server -------------------
    # The hooks that reach the server are @_omitted (IGNORE_EXCEPTIONS, see the class docstring); the
    # lock store is not one of them.
    def _keyed(self, key: Any, version: int | None) -> tuple[Any, Any]:
        return self._native, self._k(key, version)

    @_omitted(float)
    def _time_left(self, key: Any, version: int | None) -> float | None:
        native, key = self._keyed(key, version)
        ms = native.pttl(key, version)
        return 0.0 if ms == -2 else None if ms == -1 else ms / 1000

    @_omitted(bool)
    def _expire_in(self, key: Any, seconds: Any, version: int | None) -> bool:
        if seconds is DEFAULT_TIMEOUT:
            seconds = self.default_timeout
        native, key = self._keyed(key, version)
        if seconds is None:  # the alias's TIMEOUT is None: no expiry, as touch() gives it
            return native.pexpire(key, None, version) or native.has_key(key, version)
        return native.pexpire(key, _millis(seconds) if seconds > 0 else 0, version)

    @_omitted(bool)
    def _persist(self, key: Any, version: int | None) -> bool:
        native, key = self._keyed(key, version)
        return native.pexpire(key, None, version)

    @_omitted(list)
    def _scan(self, pattern: str) -> list[str]:
        """Full keys matching a Redis glob, by ``SCAN`` (which may name a key twice: once here). A key
        that is not UTF-8 cannot have been made by Django and is left out."""
        found = {}
        for raw in self._native.scan(pattern.encode()):
            try:
                found[raw.decode()] = None
            except UnicodeDecodeError:
                continue
        return list(found)

    def _keys_under(self, prefix: str, search: str) -> list[str]:
        return self._scan(_glob_escape(prefix) + search)

    def _keys_matching(self, pattern: str) -> list[str]:
        return self._scan(pattern)

    @_omitted(int)
    def _delete_matched(self, matched: list[tuple[str, str]], version: int | None) -> int:
        # One DEL; the core drops the local copies of the keys at once (our next read sees the delete).
        keys = [full if self._verbatim else user for user, full in matched]
        return self._native.delete_many(keys, version)

    def _lock_store(self, name: Any, version: int | None) -> _ServerLockStore:
        native, key = self._keyed(name, version)
        return _ServerLockStore(native, key, version)

    async def _offload(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(f, *args, **kwargs)

    def stats(self) -> dict[str, Any]:
        """``RustCache.stats()``'s shape for the local copy, plus ``local_hits``, ``server_hits``,
        ``invalidations``, ``flushes``, ``reconnects``, ``dropped_fills`` and ``tracking``."""
        return self._native.stats()

    # -- async: a local hit inline, a round trip in a worker thread -----------------------------
    async def aget(self, key, default=None, version=None):
        missing = _MISSING
        if not self._verbatim:
            found = self._native.get_local(key, missing, version)
            if found is not missing:
                return found
        return await asyncio.to_thread(self.get, key, default, version)

    async def aset(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return await asyncio.to_thread(self.set, key, value, timeout, version)

    async def aadd(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return await asyncio.to_thread(self.add, key, value, timeout, version)

    async def atouch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return await asyncio.to_thread(self.touch, key, timeout, version)

    async def adelete(self, key, version=None):
        return await asyncio.to_thread(self.delete, key, version)

    async def ahas_key(self, key, version=None):
        return await asyncio.to_thread(self.has_key, key, version)

    async def aincr(self, key, delta=1, version=None):
        return await asyncio.to_thread(self.incr, key, delta, version)

    async def adecr(self, key, delta=1, version=None):
        return await asyncio.to_thread(self.decr, key, delta, version)

    async def aget_many(self, keys, version=None):
        return await asyncio.to_thread(self.get_many, keys, version)

    async def aset_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return await asyncio.to_thread(self.set_many, data, timeout, version)

    async def adelete_many(self, keys, version=None):
        return await asyncio.to_thread(self.delete_many, keys, version)

    async def aget_or_set(self, key, default, timeout=DEFAULT_TIMEOUT, version=None):
        return await asyncio.to_thread(self.get_or_set, key, default, timeout, version)

    async def aincr_version(self, key, delta=1, version=None):
        return await asyncio.to_thread(self.incr_version, key, delta, version)

    async def aclear(self):
        return await asyncio.to_thread(self.clear)


_MISSING = object()
