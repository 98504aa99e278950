"""The demo on SharedCache: one cache for every worker process (``make demo-shared`` serves it with 4
gunicorn workers). The LOCATION is a private directory in /dev/shm (memory), one per user."""

import os

from .settings import *  # noqa: F403
from .settings import CACHES

CACHES = {
    "default": {
        **CACHES["default"],
        "BACKEND": "django_rustcache.SharedCache",
        "LOCATION": os.environ.get("DEMO_SHARED_LOCATION", f"/dev/shm/django-rustcache-demo-{os.getuid()}"),
        "OPTIONS": {"MAX_ENTRIES": 1000, "MAX_BYTES": 16 * 2**20},
    },
}
