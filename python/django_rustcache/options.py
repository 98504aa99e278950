"""Our own ``OPTIONS`` keys, validated. Django's keys (``MAX_ENTRIES``, ``CULL_FREQUENCY``) keep
``BaseCache``'s lenient parsing; ours raise ``ImproperlyConfigured`` naming the bad key or value."""

import pickle
import sys
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

DJANGO_OPTIONS = frozenset({"MAX_ENTRIES", "CULL_FREQUENCY"})
CLOCKS = ("system", "python")
EVICTION_POLICIES = ("lru", "adaptive")
MAX_BYTES_LIMIT = 2 * sys.maxsize + 1


@dataclass(frozen=True)
class Options:
    pickle_protocol: int | None
    max_bytes: int | None
    clock: str
    eviction: str
    single_flight: bool
    # SharedCache only: the LMDB map size in bytes (None: from MAX_BYTES).
    map_size: int | None = None


def _int_option(name: str, value: Any, *, low: int, high: int | None = None, backend: str = "RustCache") -> int:
    if type(value) is not int:
        raise ImproperlyConfigured(f"{backend} OPTIONS[{name!r}] must be an int, not {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ImproperlyConfigured(f"{backend} OPTIONS[{name!r}] must be {bounds}, not {value!r}.")
    return value


def _choice_option(name: str, value: Any, choices: tuple[str, ...], backend: str = "RustCache") -> str:
    if value not in choices:
        raise ImproperlyConfigured(f"{backend} OPTIONS[{name!r}] must be one of {', '.join(choices)}; got {value!r}.")
    return value


def _bool_option(name: str, value: Any, backend: str = "RustCache") -> bool:
    if type(value) is not bool:
        raise ImproperlyConfigured(f"{backend} OPTIONS[{name!r}] must be True or False, not {value!r}.")
    return value


def parse_options(options: dict[str, Any]) -> Options:
    """Validate the ``OPTIONS`` dict of a ``RustCache`` alias."""
    known = DJANGO_OPTIONS | {"PICKLE_PROTOCOL", "MAX_BYTES", "CLOCK", "EVICTION", "SINGLE_FLIGHT"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown RustCache OPTIONS key(s): {', '.join(map(repr, unknown))}. Known: {', '.join(sorted(known))}."
        )
    protocol = options.get("PICKLE_PROTOCOL")
    if protocol is not None:
        protocol = _int_option("PICKLE_PROTOCOL", protocol, low=-1, high=pickle.HIGHEST_PROTOCOL)
    max_bytes = options.get("MAX_BYTES")
    if max_bytes is not None:
        # The store counts bytes in a machine word.
        max_bytes = _int_option("MAX_BYTES", max_bytes, low=1, high=MAX_BYTES_LIMIT)
    return Options(
        pickle_protocol=protocol,
        max_bytes=max_bytes,
        clock=_choice_option("CLOCK", options.get("CLOCK", "python"), CLOCKS),
        eviction=_choice_option("EVICTION", options.get("EVICTION", "lru"), EVICTION_POLICIES),
        single_flight=_bool_option("SINGLE_FLIGHT", options.get("SINGLE_FLIGHT", False)),
    )


# LMDB maps at least this much (a page multiple); MAX_BYTES asks for twice the data plus this headroom
# (freed pages are reused only once no reader holds the old snapshot).
MAP_HEADROOM = 64 * 2**20
DEFAULT_MAP_SIZE = 2**30


def parse_shared_options(options: dict[str, Any]) -> Options:
    """Validate the ``OPTIONS`` dict of a ``SharedCache`` alias: ``RustCache``'s keys less ``EVICTION``
    (the shared store is LRU), plus ``MAP_SIZE``."""
    backend = "SharedCache"
    known = DJANGO_OPTIONS | {"PICKLE_PROTOCOL", "MAX_BYTES", "CLOCK", "SINGLE_FLIGHT", "MAP_SIZE"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown {backend} OPTIONS key(s): {', '.join(map(repr, unknown))}. Known: {', '.join(sorted(known))}."
        )
    protocol = options.get("PICKLE_PROTOCOL")
    if protocol is not None:
        protocol = _int_option("PICKLE_PROTOCOL", protocol, low=-1, high=pickle.HIGHEST_PROTOCOL, backend=backend)
    max_bytes = options.get("MAX_BYTES")
    if max_bytes is not None:
        max_bytes = _int_option("MAX_BYTES", max_bytes, low=1, high=2**46, backend=backend)
    map_size = options.get("MAP_SIZE")
    if map_size is not None:
        map_size = _int_option("MAP_SIZE", map_size, low=2**20, high=2**47, backend=backend)
    elif max_bytes is not None:
        map_size = 2 * max_bytes + MAP_HEADROOM
    else:
        map_size = DEFAULT_MAP_SIZE
    return Options(
        pickle_protocol=protocol,
        max_bytes=max_bytes,
        clock=_choice_option("CLOCK", options.get("CLOCK", "python"), CLOCKS, backend=backend),
        eviction="lru",
        single_flight=_bool_option("SINGLE_FLIGHT", options.get("SINGLE_FLIGHT", False), backend=backend),
        map_size=map_size,
    )
