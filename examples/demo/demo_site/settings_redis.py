"""The demo on RedisNearCache (``make demo-redis``): the same pages, with the default cache shared by
every gunicorn worker through a redis-server on loopback, each worker holding its own local copy."""

import os

from .settings import *  # noqa: F403

CACHES = {
    "default": {
        "BACKEND": "django_rustcache.RedisNearCache",
        "LOCATION": os.environ.get("DEMO_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "TIMEOUT": 300,
        "OPTIONS": {"LOCAL": {"MAX_ENTRIES": 1000}},
    },
}
