"""``manage.py rustcache_stats [ALIAS ...] [--json]``: ``stats()`` of each RustCache or SharedCache alias.

A SharedCache's numbers are those of every process using its LOCATION, so the command line sees them. A
RustCache lives in the memory of one process, so its numbers are this process's: run from the command
line, the command sees a fresh, empty cache. Call it inside the process you want to look at, with
``django.core.management.call_command("rustcache_stats")`` (from a shell you keep open, a debug view, a
test, a worker's signal handler).
"""

import json
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError

from ...checks import _is_rustcache


class Command(BaseCommand):
    help = "Print stats() (counters, sizes, limits) of each RustCache or SharedCache alias, as this process sees it."
    requires_system_checks = ()

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("aliases", nargs="*", metavar="ALIAS", help="Cache aliases (default: every one of ours).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object keyed by alias.")

    def handle(self, *args: str, **options: Any) -> None:
        configured = settings.CACHES
        aliases = options["aliases"]
        if aliases:
            for alias in aliases:
                if alias not in configured:
                    raise CommandError(f"No cache alias {alias!r} in settings.CACHES.")
                if not _is_rustcache(configured[alias].get("BACKEND")):
                    raise CommandError(f"Cache alias {alias!r} is not a RustCache or SharedCache.")
        else:
            aliases = tuple(alias for alias, params in configured.items() if _is_rustcache(params.get("BACKEND")))
        stats = {alias: caches[alias].stats() for alias in aliases}
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2))
            return
        if not stats:
            self.stdout.write("No RustCache or SharedCache alias in settings.CACHES.")
            return
        for alias, numbers in stats.items():
            location = configured[alias].get("LOCATION", "")
            self.stdout.write(self.style.MIGRATE_HEADING(f"{alias} (LOCATION {location!r})"))
            width = max(map(len, numbers))
            for name, value in numbers.items():
                self.stdout.write(f"  {name:<{width}}  {value}")
