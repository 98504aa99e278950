"""System checks on the ``CACHES`` entries that use RustCache (registered by the ``django_rustcache``
app). They read the settings only: no cache is built.

- ``django_rustcache.E001``: ``OPTIONS`` that RustCache would reject on first use.
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

from .options import parse_options

DJANGO_MAX_ENTRIES = 300
DJANGO_CULL_FREQUENCY = 3


def _is_rustcache(backend: Any) -> bool:
    from .backend import RustCache

    try:
        cls = import_string(backend) if isinstance(backend, str) else backend
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, RustCache)


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
        return parse_options(params.get("OPTIONS") or {}).eviction
    except ImproperlyConfigured:
        return None


def _alias(alias: str) -> str:
    return f"CACHES[{alias!r}]"


def check_caches(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Risky RustCache configurations in ``settings.CACHES``."""
    rust = {alias: params for alias, params in settings.CACHES.items() if _is_rustcache(params.get("BACKEND"))}
    messages: list[checks.CheckMessage] = []
    for alias, params in rust.items():
        options = params.get("OPTIONS") or {}
        try:
            parse_options(options)
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
    by_location: dict[str, list[str]] = defaultdict(list)
    for alias, params in rust.items():
        by_location[params.get("LOCATION", "")].append(alias)
    for location, aliases in by_location.items():
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
