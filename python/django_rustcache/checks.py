"""System checks on the ``CACHES`` entries that use our backends, RustCache and SharedCache (registered by
the ``django_rustcache`` app). They read the settings only: no cache is built.

- ``django_rustcache.E001``: ``OPTIONS`` that the backend would reject on first use.
- ``django_rustcache.E002``: aliases sharing a ``LOCATION`` with different ``EVICTION`` (one store keeps
  one policy: the alias built second would fail at its first operation).
- ``django_rustcache.W001``: ``MAX_ENTRIES`` left at Django's default of 300 on a site not in DEBUG.
- ``django_rustcache.W002``: aliases sharing a ``LOCATION`` with different limits (each writer culls
  the shared store by its own).
- ``django_rustcache.W003``: aliases that all leave ``LOCATION`` out, and so share one store without
  saying so (``clear()`` on one empties the others).
"""

from collections import defaultdict
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

DJANGO_MAX_ENTRIES = 300
DJANGO_CULL_FREQUENCY = 3


def _backend_class(backend: Any) -> type | None:
    """The class of one of our backends (RustCache, SharedCache, or a subclass) that `backend` names."""
    from .backend import NativeCache

    try:
        cls = import_string(backend) if isinstance(backend, str) else backend
    except ImportError:
        return None
    return cls if isinstance(cls, type) and issubclass(cls, NativeCache) else None


def _family(backend: Any) -> type | None:
    """The backend whose stores `backend`'s are: SharedCache or RustCache (subclasses share them)."""
    from .backend import RustCache
    from .shared import SharedCache

    cls = _backend_class(backend)
    return next((base for base in (SharedCache, RustCache) if cls is not None and issubclass(cls, base)), cls)


def _is_rustcache(backend: Any) -> bool:
    """Whether `backend` is one of ours (any backend of the package: RustCache, SharedCache)."""
    return _backend_class(backend) is not None


def _parse(params: dict[str, Any]) -> Any:
    """The alias's OPTIONS as its backend validates them (raises ImproperlyConfigured)."""
    cls = _backend_class(params.get("BACKEND"))
    return cls._parse_options(params.get("OPTIONS") or {})


def _int_or(value: Any, fallback: int) -> int:
    # BaseCache's own leniency: a value int() rejects means the default.
    try:
        return int(value)
    except (ValueError, TypeError):
        return fallback


def _limits(params: dict[str, Any]) -> tuple[int, int, Any]:
    """(MAX_ENTRIES, CULL_FREQUENCY, MAX_BYTES) as the backend will read them."""
    options = params.get("OPTIONS") or {}
    max_entries = _int_or(params.get("max_entries", options.get("MAX_ENTRIES", DJANGO_MAX_ENTRIES)), 300)
    cull = _int_or(params.get("cull_frequency", options.get("CULL_FREQUENCY", DJANGO_CULL_FREQUENCY)), 3)
    return max_entries, cull, options.get("MAX_BYTES")


def _eviction(params: dict[str, Any]) -> str | None:
    """The alias's eviction policy; None if its OPTIONS are invalid (E001 says so)."""
    try:
        return getattr(_parse(params), "eviction", None)
    except ImproperlyConfigured:
        return None


def _alias(alias: str) -> str:
    return f"CACHES[{alias!r}]"


def check_caches(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Risky RustCache and SharedCache configurations in ``settings.CACHES``."""
    rust = {alias: params for alias, params in settings.CACHES.items() if _is_rustcache(params.get("BACKEND"))}
    messages: list[checks.CheckMessage] = []
    for alias, params in rust.items():
        options = params.get("OPTIONS") or {}
        try:
            _parse(params)
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(f"{_alias(alias)}: {exc}", id="django_rustcache.E001"))
        explicit = "max_entries" in params or "MAX_ENTRIES" in options
        if not settings.DEBUG and not explicit:
            messages.append(
                checks.Warning(
                    f"{_alias(alias)} keeps Django's default MAX_ENTRIES of {DJANGO_MAX_ENTRIES}: it culls a third "
                    f"of its entries whenever it reaches {DJANGO_MAX_ENTRIES}.",
                    hint="Set OPTIONS['MAX_ENTRIES'] to the working set you expect (and OPTIONS['MAX_BYTES'] "
                    "to bound memory), or OPTIONS['MAX_ENTRIES'] = 300 to keep Django's default on purpose.",
                    id="django_rustcache.W001",
                )
            )
    # A store is one family's (a RustCache and a SharedCache never share one) and one LOCATION's.
    by_location: dict[tuple[Any, str], list[str]] = defaultdict(list)
    for alias, params in rust.items():
        by_location[(_family(params.get("BACKEND")), params.get("LOCATION", ""))].append(alias)
    for (_, location), aliases in by_location.items():
        if len(aliases) < 2:
            continue
        evictions = {alias: _eviction(rust[alias]) for alias in aliases}
        if len({e for e in evictions.values() if e is not None}) > 1:
            detail = ", ".join(f"{alias}: EVICTION={e!r}" for alias, e in evictions.items() if e is not None)
            messages.append(
                checks.Error(
                    f"Aliases {', '.join(map(repr, aliases))} share LOCATION {location!r} with different eviction "
                    f"policies ({detail}): one store keeps one policy, so whichever alias is used second fails.",
                    hint="Give them the same OPTIONS['EVICTION'], or different LOCATIONs.",
                    id="django_rustcache.E002",
                )
            )
        limits = {alias: _limits(rust[alias]) for alias in aliases}
        if len(set(limits.values())) > 1:
            detail = "; ".join(
                f"{alias}: MAX_ENTRIES={m}, CULL_FREQUENCY={c}, MAX_BYTES={b}" for alias, (m, c, b) in limits.items()
            )
            messages.append(
                checks.Warning(
                    f"Aliases {', '.join(map(repr, aliases))} share LOCATION {location!r} with different limits "
                    f"({detail}): each write culls the shared store by the limits of the alias that writes.",
                    hint="Give them the same limits, or different LOCATIONs.",
                    id="django_rustcache.W002",
                )
            )
        if not any("LOCATION" in rust[alias] for alias in aliases):
            messages.append(
                checks.Warning(
                    f"Aliases {', '.join(map(repr, aliases))} leave LOCATION out and so share one store: "
                    f"clear() on one empties the others, and equal keys collide unless KEY_PREFIX differs.",
                    hint="Give each alias a LOCATION of its own (or the same one, on purpose).",
                    id="django_rustcache.W003",
                )
            )
    return messages
