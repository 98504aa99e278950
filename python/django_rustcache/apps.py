"""The optional ``django_rustcache`` app: add it to ``INSTALLED_APPS`` for its system checks and the
``rustcache_stats`` management command. The backend works without it."""

from django.apps import AppConfig
from django.core import checks


class RustCacheConfig(AppConfig):
    name = "django_rustcache"
    verbose_name = "Rust cache"

    def ready(self) -> None:
        from .checks import check_caches

        checks.register(check_caches, checks.Tags.caches)
