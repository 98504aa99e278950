"""Run Django's own cache test suite against RustCache (or SharedCache).

Usage: ``python tests/django_suite/run.py [--backend rust|shared]`` with the interpreter of the venv
under test. With ``--backend shared`` the same tests run on ``SharedCache``, through a subclass that
puts each LOCATION of Django's test settings (relative names, or none) under a directory of that
``runtests`` process's own, so no two runs share a store; the files written are named ``sharedcache``
instead of ``rustcache``.

1. Find the installed Django version and fetch its source distribution from the package index
   (``pip download``) into ``.cache/django-suite/<version>/`` (gitignored); extract its ``tests/``
   there, once.
2. Write into the extracted suite:
   - ``cache/test_rustcache.py``: ``BaseCacheTests`` on RustCache plus ports of the LocMem-only
     tests (copied from ``rustcache_cases.py`` beside this file);
   - ``cache/test_rustcache_rest.py``: Django's ``cache/tests.py`` with every LocMemCache
     backend path replaced by RustCache (middleware, cache utils, i18n, template fragments,
     the cache handler), less the exclusions below;
   - ``rustcache_settings.py``: ``test_sqlite`` with the default cache a RustCache.
3. Run Django's runner on each (``runtests.py``, one process, verbosity 2) and exit non-zero if
   either failed. Every exclusion is listed, with its reason, in ``EXCLUSIONS.md`` beside this file.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import NoReturn

import django

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# --backend: (the BACKEND path the copied tests use, the tag of the files written for it).
BACKENDS = {
    "rust": ("django_rustcache.RustCache", "rustcache"),
    "shared": ("cache.sharedcache_backend.SuiteSharedCache", "sharedcache"),
}
BACKEND = BACKENDS["rust"][0]
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"

# Classes of cache/tests.py left out of the RustCache copy: they test other backends, or LocMem
# through its internals (reason for each in EXCLUSIONS.md).
NOT_RUN = {
    "DummyCacheTests": "tests DummyCache, not a LocMemCache stand-in",
    "DBCacheTests": "tests DatabaseCache",
    "DBCacheWithTimeZoneTests": "tests DatabaseCache",
    "CreateCacheTableForDBCacheTests": "tests DatabaseCache",
    "PyLibMCCacheTests": "tests memcached (pylibmc)",
    "PyMemcacheCacheTests": "tests memcached (pymemcache)",
    "RedisCacheTests": "tests RedisCache",
    "FileBasedCacheTests": "tests FileBasedCache",
    "FileBasedCachePathLibTests": "tests FileBasedCache",
    "CustomCacheKeyValidationTests": "its backend (cache.liberal_backend) subclasses LocMemCache",
    "CacheClosingTests": "its backend (cache.closeable_cache) subclasses LocMemCache",
    "LocMemCacheTests": "its setUp swaps LocMem's _cache/_expire_info; run as RustCacheTests in test_rustcache",
}
# Single tests of the RustCache copy skipped, with the reason shown by the runner.
SKIPPED = {
    ("DefaultNonExpiringCacheKeyTests", "test_caches_with_unset_timeout_set_expiring_key"): (
        "reads LocMem's _expire_info; ported as RustCacheDefaultTimeoutTests in test_rustcache"
    ),
    ("DefaultNonExpiringCacheKeyTests", "test_caches_set_with_timeout_as_none_set_non_expiring_key"): (
        "reads LocMem's _expire_info; ported as RustCacheDefaultTimeoutTests in test_rustcache"
    ),
}

SHARED_BACKEND_MODULE = """\
# Written by django-rustcache's tests/django_suite/run.py --backend shared.
import os

from django_rustcache.shared import SharedCache, _private_directory

ROOT = os.environ["RUSTCACHE_SUITE_ROOT"]


class SuiteSharedCache(SharedCache):
    \"\"\"SharedCache with each relative LOCATION of Django's test settings (or none) made a directory
    under this runtests process's own root: the suite's LOCATIONs are LocMem names.\"\"\"

    @staticmethod
    def _location_of(name):
        name = "" if name is None else str(name)
        if not os.path.isabs(name):
            name = os.path.join(ROOT, name.replace(os.sep, "_") or "default")
        return _private_directory(name)
"""


def settings_for(backend: str) -> str:
    return f"""\
# Written by django-rustcache's tests/django_suite/run.py.
from test_sqlite import *  # noqa: F403

CACHES = {{"default": {{"BACKEND": {backend!r}}}}}
"""


def rest_tail(backend: str) -> str:
    return f"""

# --- Appended by django-rustcache's tests/django_suite/run.py: exclusions (see EXCLUSIONS.md). ---
import unittest as _unittest

from django.utils.module_loading import import_string as _import_string

_Backend = _import_string({backend!r})

for _name in {sorted(NOT_RUN)!r}:
    globals().pop(_name, None)
for (_cls, _test), _reason in {SKIPPED!r}.items():
    _owner = globals()[_cls]
    setattr(_owner, _test, _unittest.skip(_reason)(getattr(_owner, _test)))


class RustCacheInUseTests(SimpleTestCase):
    def test_backends(self):
        self.assertIsInstance(caches["default"], _Backend)
        for _name, _obj in list(globals().items()):
            _overridden = (getattr(_obj, "_overridden_settings", None) or {{}}) if isinstance(_obj, type) else {{}}
            _caches = _overridden.get("CACHES")
            if _caches:
                with self.subTest(test_case=_name):
                    self.assertEqual({{p["BACKEND"] for p in _caches.values()}}, {{{backend!r}}})
"""


def fail(message: str) -> NoReturn:
    print(f"django_suite: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def write(path: Path, text: str) -> None:
    """Replace ``path`` atomically, so concurrent runs never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def fetch_suite(version: str) -> Path:
    """The extracted ``tests/`` folder of Django ``version``'s sdist, downloaded if need be."""
    root = REPO / ".cache" / "django-suite" / version
    suite = root / "tests"
    if (suite / ".complete").exists():
        return suite
    root.mkdir(parents=True, exist_ok=True)
    sdists = glob.glob(str(root / "*.tar.gz"))
    if not sdists:
        print(f"django_suite: downloading the Django {version} source distribution", flush=True)
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps"]
        command += ["--no-binary", ":all:", f"Django=={version}", "-d", str(root)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        sdists = glob.glob(str(root / "*.tar.gz"))
        if done.returncode or not sdists:
            fail(f"could not download Django=={version}'s sdist:\n{done.stdout}{done.stderr}")
    with tempfile.TemporaryDirectory(dir=root) as scratch, tarfile.open(sdists[0]) as archive:
        top = archive.getnames()[0].split("/")[0]
        members = [m for m in archive.getmembers() if m.name.startswith(f"{top}/tests/")]
        if not members:
            fail(f"{sdists[0]} has no tests/ folder")
        if hasattr(tarfile, "data_filter"):
            archive.extractall(scratch, members=members, filter="data")
        else:  # pragma: no cover - Python without PEP 706
            archive.extractall(scratch, members=members)
        (Path(scratch) / top / "tests" / ".complete").touch()
        try:
            os.rename(Path(scratch) / top / "tests", suite)
        except OSError:
            if not (suite / ".complete").exists():  # not a concurrent run that got there first
                shutil.rmtree(suite, ignore_errors=True)
                os.rename(Path(scratch) / top / "tests", suite)
    return suite


def prepare(suite: Path, backend: str, tag: str) -> None:
    """Write the test modules and settings for `backend` into the extracted suite."""
    source = (suite / "cache" / "tests.py").read_text(encoding="utf-8")
    if LOCMEM not in source:
        fail(f"{LOCMEM} no longer appears in cache/tests.py: revisit run.py")
    write(suite / "cache" / f"test_{tag}.py", (HERE / "rustcache_cases.py").read_text(encoding="utf-8"))
    write(suite / "cache" / f"test_{tag}_rest.py", source.replace(LOCMEM, backend) + rest_tail(backend))
    write(suite / f"{tag}_settings.py", settings_for(backend))
    if tag == "sharedcache":
        write(suite / "cache" / "sharedcache_backend.py", SHARED_BACKEND_MODULE)


def runtests(suite: Path, label: str, settings: str, backend: str, extra_env: dict[str, str] | None = None) -> int:
    command = [sys.executable, "runtests.py", label, f"--settings={settings}", "--parallel=1", "-v", "2"]
    print(f"django_suite: {' '.join(command)}  (in {suite})", flush=True)
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH"}}
    env["RUSTCACHE_SUITE_BACKEND"] = backend
    env.update(extra_env or {})
    # A directory of this run's own for SharedCache's LOCATIONs (private, as SharedCache requires).
    with tempfile.TemporaryDirectory(prefix="rustcache-suite-") as root:
        env["RUSTCACHE_SUITE_ROOT"] = root
        return subprocess.run(command, cwd=suite, env=env, check=False).returncode


# --- RedisNearCache: Django's RedisCacheTests (BaseCacheTests on a Redis backend) ------------------

NEAR_BACKEND = "django_rustcache.RedisNearCache"
REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
REDIS_PARAMS = f'RedisCache_params = configured_caches.get("{REDIS_BACKEND}")'
# RedisCacheTests' own tests of RedisCacheClient's internals (its pools, its client class, its
# serializer object): RedisNearCache has no RedisCacheClient. Their behaviour (writes on the first
# server, ints stored unpickled, pool options) is covered by tests/test_near.py.
NEAR_SKIPPED = dict.fromkeys(
    (
        "test_incr_write_connection",
        "test_cache_client_class",
        "test_get_connection_pool_index",
        "test_get_connection_pool",
        "test_get_client",
        "test_serializer_dumps",
        "test_redis_pool_options",
        "test_client_driver_info",
    ),
    "tests RedisCacheClient's internals, which RedisNearCache does not have (see EXCLUSIONS.md)",
)
NEAR_TAIL = f"""

# --- Appended by django-rustcache's tests/django_suite/run.py: RedisCacheTests only. ---
import unittest as _unittest

for _name in [n for n, o in list(globals().items()) if isinstance(o, type) and n.endswith("Tests")]:
    if _name != "RedisCacheTests":
        globals().pop(_name)
for _test, _reason in {NEAR_SKIPPED!r}.items():
    if hasattr(RedisCacheTests, _test):  # test_client_driver_info is new in Django 6.1
        setattr(RedisCacheTests, _test, _unittest.skip(_reason)(getattr(RedisCacheTests, _test)))
"""
NEAR_SETTINGS = """\
# Written by django-rustcache's tests/django_suite/run.py.
import os

from test_sqlite import *  # noqa: F403

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "near": {"BACKEND": os.environ["NEAR_BACKEND"], "LOCATION": os.environ["NEAR_REDIS_URL"]},
}
"""


def run_near(suite: Path) -> list[int]:
    """RedisCacheTests against RedisNearCache, then against Django's RedisCache, on one server started
    by benchmarks/redis_server.sh (stopped by its pid)."""
    source = (suite / "cache" / "tests.py").read_text(encoding="utf-8")
    if REDIS_PARAMS not in source:
        fail(f"{REDIS_PARAMS} no longer appears in cache/tests.py: revisit run.py")
    near_source = source.replace(REDIS_PARAMS, "RedisCache_params = configured_caches.get(os.environ['NEAR_BACKEND'])")
    write(suite / "cache" / "test_nearcache.py", "import os\n" + near_source + NEAR_TAIL)
    write(suite / "nearcache_settings.py", NEAR_SETTINGS)
    script = REPO / "benchmarks" / "redis_server.sh"
    name = f"django-suite-{os.getpid()}"
    started = subprocess.run([str(script), "start", name], capture_output=True, text=True, check=False)
    if started.returncode:
        fail(f"redis-server did not start: {started.stderr}")
    url = f"redis://127.0.0.1:{started.stdout.strip()}/0"
    try:
        return [
            runtests(
                suite,
                "cache.test_nearcache",
                "nearcache_settings",
                backend,
                {"NEAR_BACKEND": backend, "NEAR_REDIS_URL": url},
            )
            for backend in (NEAR_BACKEND, REDIS_BACKEND)
        ]
    finally:
        subprocess.run([str(script), "stop", name], check=False)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="rust")
    parser.add_argument("--near", action="store_true", help="RedisCacheTests on RedisNearCache and RedisCache")
    args = parser.parse_args(argv)
    backend, tag = BACKENDS[args.backend]
    version = django.__version__
    print(f"django_suite: Django {version} from {Path(django.__file__).parent}, backend {backend}", flush=True)
    suite = fetch_suite(version)
    if args.near:
        codes = run_near(suite)
        print(f"django_suite: runtests exit codes {codes}", flush=True)
        return max(codes)
    prepare(suite, backend, tag)
    codes = [
        runtests(suite, f"cache.test_{tag}", "test_sqlite", backend),
        runtests(suite, f"cache.test_{tag}_rest", f"{tag}_settings", backend),
    ]
    print(f"django_suite: runtests exit codes {codes}", flush=True)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
