"""Settings of the install smoke test (``smoke.py``): one cache alias per backend the installed package
lists in ``django_rustcache.BACKENDS``, each named after its class, plus ``default``.

Copied by ``run.py`` into a scratch directory outside the source tree; ``RUSTCACHE_SMOKE_DIR`` is that
directory (absolute).
"""

import os

import django_rustcache

SECRET_KEY = "install-smoke"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_rustcache"]
DATABASES: dict = {}

WORK_DIR = os.environ["RUSTCACHE_SMOKE_DIR"]


def location(name: str) -> str:
    """The LOCATION a user would give this backend."""
    if name == "SharedCache":  # LMDB: an absolute directory, created by the backend
        return os.path.join(WORK_DIR, "shared-cache")
    if name == "RedisNearCache":  # a Redis/Valkey server the caller started (tests/install/run.py)
        url = os.environ.get("RUSTCACHE_SMOKE_REDIS_URL")
        if not url:
            raise RuntimeError("RedisNearCache is exported: set RUSTCACHE_SMOKE_REDIS_URL to a running server")
        return url
    return f"install-smoke-{name}"  # in-process stores: a name


def options(name: str) -> dict:
    # Not Django's default of 300, which django_rustcache.W001 flags when DEBUG is off; RedisNearCache
    # bounds its local copy under LOCAL (the server has no entry limit of ours).
    if name == "RedisNearCache":  # over TLS when the caller gives the server's authority
        ca = os.environ.get("RUSTCACHE_SMOKE_REDIS_CA")
        return {"LOCAL": {"MAX_ENTRIES": 1_000}, **({"ssl_ca_certs": ca} if ca else {})}
    return {"MAX_ENTRIES": 1_000}


CACHES = {
    cls.__name__: {
        "BACKEND": f"django_rustcache.{cls.__name__}",
        "LOCATION": location(cls.__name__),
        "TIMEOUT": 60,
        "OPTIONS": options(cls.__name__),
    }
    for cls in django_rustcache.BACKENDS
}
CACHES["default"] = dict(CACHES[django_rustcache.BACKENDS[0].__name__])
