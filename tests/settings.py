"""Settings for the test suite: every alias is a RustCache, as Django's cache tests configure."""

SECRET_KEY = "django-rustcache-tests"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {
    "default": {"BACKEND": "django_rustcache.RustCache", "LOCATION": "tests-default"},
}
