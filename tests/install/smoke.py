"""The install smoke test: run by ``run.py`` with the Python of a fresh virtualenv into which the package was
installed as a user installs it, from a scratch directory outside the source tree.

    python -I smoke.py --source-tree DIR --expect-version V [--expect-tag TAG] [--rust-on-path]

It checks, in order, and stops at the first failure (exit status 1):

1. where it runs: in a virtualenv, with ``cargo``/``rustc`` not on ``PATH`` (unless ``--rust-on-path``: the
   sdist test, which needs them), and ``django_rustcache`` and its extension imported from that
   virtualenv's site-packages, not from the source tree;
2. what was installed: the version (``__version__`` = the metadata's = ``--expect-version``), the wheel's
   tag, ``py.typed`` and the license file, classifiers naming the running Python and Django;
3. what it does: for every backend in ``django_rustcache.BACKENDS`` (one alias each, from
   ``smoke_settings.py``; RedisNearCache's server is ``RUSTCACHE_SMOKE_REDIS_URL``, started by ``run.py``),
   ``set``/``get``/``incr``/``get_many``/``delete`` (and for RedisNearCache, a read served from the local
   copy kept coherent by the invalidation listener); the app's system checks
   (``call_command("check")`` finds no issue, and ``MAX_ENTRIES`` left at 300 is ``django_rustcache.W001``); and the
   ``rustcache_stats`` management command, whose numbers must be the caches' own.
"""

import argparse
import importlib.machinery
import importlib.metadata
import io
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

CHECKS = 0


def check(condition: bool, what: str) -> None:
    global CHECKS
    if not condition:
        print(f"install smoke: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    CHECKS += 1
    print(f"  ok  {what}")


def inside(path: str | Path, directory: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(directory).resolve())


def where_it_runs(args: argparse.Namespace) -> None:
    import django_rustcache
    from django_rustcache import _core

    check(sys.prefix != sys.base_prefix, f"runs in a virtualenv ({sys.prefix})")
    for tool in ("cargo", "rustc"):
        found = shutil.which(tool)
        if args.rust_on_path:
            check(found is not None, f"{tool} is on PATH (the sdist is built with it): {found}")
        else:
            check(found is None, f"{tool} is not on PATH ({found or 'absent'})")
    site = sysconfig.get_path("platlib")
    check(inside(site, sys.prefix), f"site-packages {site} is the virtualenv's")
    for module in (django_rustcache, _core):
        check(inside(module.__file__, site), f"{module.__name__} is imported from site-packages: {module.__file__}")
        check(not inside(module.__file__, args.source_tree), f"{module.__name__} is not from the source tree")
    suffix = next((s for s in importlib.machinery.EXTENSION_SUFFIXES if _core.__file__.endswith(s)), None)
    check(suffix is not None, f"the extension {Path(_core.__file__).name} is one this interpreter loads")
    check(Path.cwd().resolve() != Path(args.source_tree).resolve(), f"the working directory is {Path.cwd()}")
    check(
        not any(p and inside(p, args.source_tree) for p in sys.path if Path(p).exists()),
        "nothing on sys.path is in the source tree",
    )


def what_was_installed(args: argparse.Namespace) -> None:
    import django

    import django_rustcache

    dist = importlib.metadata.distribution("django-rustcache")
    check(dist.version == args.expect_version, f"installed version {dist.version} (expected {args.expect_version})")
    check(
        django_rustcache.__version__ == dist.version,
        f"django_rustcache.__version__ {django_rustcache.__version__!r} is the metadata's",
    )
    files = {str(f) for f in dist.files or ()}
    check("django_rustcache/py.typed" in files, "py.typed is installed")
    check(any(f.endswith(".dist-info/licenses/LICENSE") for f in files), "the LICENSE file is installed")
    check(dist.metadata["License-Expression"] == "MIT", "License-Expression: MIT")
    classifiers = set(dist.metadata.get_all("Classifier") or ())
    python = f"Programming Language :: Python :: {sys.version_info.major}.{sys.version_info.minor}"
    framework = "Framework :: Django :: {}.{}".format(*django.VERSION[:2])
    for classifier in (python, framework, "Typing :: Typed"):
        check(classifier in classifiers, f"classifier {classifier!r}")
    if args.expect_tag:
        wheel = next(f for f in dist.files or () if str(f).endswith(".dist-info/WHEEL"))
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        check(args.expect_tag in tags, f"wheel tag {args.expect_tag} in {tags}")


def near_is_coherent(cache, location: str) -> None:
    """The listener runs (tracking is on) and a repeated read is served from the local copy; over TLS
    when run.py's server is (every call above then did a TLS handshake with the wheel's rustls)."""
    import time

    if os.environ.get("RUSTCACHE_SMOKE_REDIS_CA"):
        check(location.startswith("rediss://"), f"RedisNearCache: over TLS ({location})")

    check(cache.stats()["tracking"] is True, "RedisNearCache: the invalidation listener is tracking")
    before = cache.stats()["local_hits"]
    deadline = time.monotonic() + 5
    # Our own write's invalidation may arrive after the first fill and drop it: read until a local hit.
    while cache.stats()["local_hits"] == before and time.monotonic() < deadline:
        cache.get("record")
        time.sleep(0.01)
    check(cache.stats()["local_hits"] > before, "RedisNearCache: a read is served from the local copy")


def what_it_does() -> None:
    import django
    from django.core.cache import BaseCache, caches
    from django.core.checks import run_checks
    from django.core.management import call_command
    from django.test import override_settings

    import django_rustcache

    backends = django_rustcache.BACKENDS
    check(isinstance(backends, tuple) and django_rustcache.RustCache in backends, f"BACKENDS: {backends}")
    for cls in backends:
        check(issubclass(cls, BaseCache), f"{cls.__name__} is a Django cache backend")
        check(
            getattr(django_rustcache, cls.__name__, None) is cls and cls.__name__ in django_rustcache.__all__,
            f"django_rustcache.{cls.__name__} is exported",
        )

    os.environ["DJANGO_SETTINGS_MODULE"] = "smoke_settings"
    django.setup()
    from django.conf import settings

    aliases = [cls.__name__ for cls in backends]
    for alias in aliases:
        cache = caches[alias]
        check(type(cache) is getattr(django_rustcache, alias), f"caches[{alias!r}] is a {alias}")
        cache.clear()
        cache.set("greeting", "hello", 30)
        cache.set("record", {"id": 7, "tags": ["a", "b"]})
        cache.set("count", 1)
        check(cache.get("greeting") == "hello", f"{alias}: set then get")
        check(cache.get("absent", "default") == "default", f"{alias}: get of a missing key returns the default")
        check(cache.incr("count") == 2 and cache.incr("count", 10) == 12, f"{alias}: incr")
        got = cache.get_many(["greeting", "record", "count", "absent"])
        check(
            got == {"greeting": "hello", "record": {"id": 7, "tags": ["a", "b"]}, "count": 12},
            f"{alias}: get_many {got}",
        )
        check(cache.delete("greeting") and cache.get("greeting") is None, f"{alias}: delete")
        if alias == "RedisNearCache":
            near_is_coherent(cache, settings.CACHES[alias]["LOCATION"])

    out = io.StringIO()
    call_command("check", stdout=out)
    check("no issues" in out.getvalue(), f"call_command('check'): {out.getvalue().strip()}")
    # Django's own cache checks build every cache, so the broken alias is one that builds: MAX_ENTRIES left
    # at Django's 300 with DEBUG off, which the app flags.
    flagged = {"BACKEND": "django_rustcache.RustCache", "LOCATION": "install-smoke-flagged"}
    with override_settings(CACHES={**settings.CACHES, "flagged": flagged}):
        ids = [message.id for message in run_checks(tags=["caches"])]
    check(ids == ["django_rustcache.W001"], f"the app's checks are registered: MAX_ENTRIES 300 gives {ids}")

    out = io.StringIO()
    call_command("rustcache_stats", "--json", stdout=out)
    stats = json.loads(out.getvalue())
    check(aliases[0] in stats, f"rustcache_stats --json lists {sorted(stats)}")
    for alias, numbers in stats.items():
        check(numbers == caches[alias].stats(), f"rustcache_stats: {alias}'s numbers are its stats()")
    # greeting, record, count, count; then get_many's three hits and get after delete's miss.
    first = stats[aliases[0]]
    check(first["hits"] >= 4 and first["sets"] >= 3, f"rustcache_stats counted the smoke's calls: {first}")
    out = io.StringIO()
    call_command("rustcache_stats", aliases[0], stdout=out)
    check(f"{aliases[0]} (LOCATION" in out.getvalue(), "rustcache_stats ALIAS prints that alias")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-tree", required=True, help="the repository, which the package must not come from")
    parser.add_argument("--expect-version", required=True, help="the PEP 440 version that must be installed")
    parser.add_argument("--expect-tag", help="a tag the installed wheel must carry")
    parser.add_argument("--rust-on-path", action="store_true", help="cargo and rustc must be on PATH (the sdist test)")
    args = parser.parse_args()
    # smoke_settings.py sits in the scratch directory beside this file; -I kept that directory off sys.path.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(f"install smoke: Python {sys.version.split()[0]} in {sys.prefix}")
    where_it_runs(args)
    what_was_installed(args)
    what_it_does()
    print(f"install smoke: all {CHECKS} checks passed")


if __name__ == "__main__":
    main()
