"""Settings for the demo site: one app, no database, and the default cache on RustCache.

The store lives inside the server process (like ``LocMemCache``), so nothing else has to run.
"""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A demo on 127.0.0.1 only: never deploy these settings.
SECRET_KEY = "django-rustcache-demo-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

CACHES = {
    "default": {
        "BACKEND": "django_rustcache.RustCache",
        "LOCATION": "demo",
        "TIMEOUT": 300,
        "OPTIONS": {"MAX_ENTRIES": 1000},
    },
}

INSTALLED_APPS = ["walkthrough"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "demo_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]
WSGI_APPLICATION = "demo_site.wsgi.application"
ASGI_APPLICATION = "demo_site.asgi.application"

USE_TZ = True
TIME_ZONE = "UTC"
