"""Django's ``BaseCacheTests`` on ``RustCache`` (or on the backend named by the environment variable
``RUSTCACHE_SUITE_BACKEND``: ``run.py --backend shared`` runs them on ``SharedCache``), plus ports of the
``LocMemCacheTests`` extras.

``run.py`` copies this file into the cache app of the extracted Django test suite, as
``cache/test_rustcache.py``, so the relative imports below are ``tests/cache/tests.py`` of the
installed Django version. The ports check the same behaviour as LocMem's tests, through the
public API only: LocMem's versions read ``_expire_info`` and ``_lock``, which RustCache has not.
"""

import os
import time
from unittest import mock

from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.test import SimpleTestCase, TestCase, override_settings
from django.utils.module_loading import import_string

from .tests import BaseCacheTests, caches_setting_for_tests

BACKEND = os.environ.get("RUSTCACHE_SUITE_BACKEND", "django_rustcache.RustCache")
BACKEND_CLASS = import_string(BACKEND)

limit_rustcache_entries = override_settings(
    CACHES=caches_setting_for_tests(BACKEND=BACKEND, OPTIONS={"MAX_ENTRIES": 9})
)


def frozen_at(moment):
    """RustCache reads Python's ``time.time()`` (OPTIONS CLOCK "python", the default), so
    patching it moves the cache's clock."""
    return mock.patch("time.time", return_value=moment)


class ReentrantPickle:
    """A value whose pickling calls back into the cache: that deadlocks (or raises) if the
    store's lock is held while values are pickled (Django tickets #20613 and #18541)."""

    def __init__(self, cache):
        self.cache = cache
        self.seen = None

    def __getstate__(self):
        self.seen = self.cache.get("probe", "absent")
        return {}


@override_settings(CACHES=caches_setting_for_tests(BACKEND=BACKEND))
class RustCacheTests(BaseCacheTests, TestCase):
    """Every alias of ``caches_setting_for_tests`` has no LOCATION, so all of them share one
    store (LOCATION ""), as ``LocMemCacheTests`` arranges by hand for LocMem."""

    def skipTest(self, reason):
        # BaseCacheTests skips what a backend does not implement (culling): RustCache must
        # implement all of it, so a skip here is a failure.
        self.fail(f"BaseCacheTests test skipped on RustCache: {reason}")

    def test_backend(self):
        for alias in caches_setting_for_tests():
            with self.subTest(alias=alias):
                self.assertIsInstance(caches[alias], BACKEND_CLASS)

    def test_shared_store(self):
        # The premise of test_prefix, test_custom_key_func and the versioning tests.
        cache.set("answer", 42)
        self.assertEqual(caches["v2"].get("answer", version=1), 42)

    @override_settings(
        CACHES={
            "default": {"BACKEND": BACKEND},
            "other": {"BACKEND": BACKEND, "LOCATION": "other"},
        }
    )
    def test_multiple_caches(self):
        "Multiple RustCache locations are isolated"
        cache.set("value", 42)
        self.assertEqual(caches["default"].get("value"), 42)
        self.assertIsNone(caches["other"].get("value"))

    def test_locking_on_pickle(self):
        """Values are pickled outside the store's lock (port of LocMem's test, which reads
        ``cache._lock``): pickling may call back into the cache."""
        cache.set("probe", "present")
        value = ReentrantPickle(cache)
        cache.set("set", value)
        self.assertEqual(value.seen, "present")

        value = ReentrantPickle(cache)
        self.assertIs(cache.add("add", value), True)
        self.assertEqual(value.seen, "present")

        value = ReentrantPickle(cache)
        self.assertEqual(cache.set_many({"many": value}), [])
        self.assertEqual(value.seen, "present")

    def test_incr_decr_timeout(self):
        """incr/decr does not modify expiry time (matches memcached behavior). Port of LocMem's
        test, which compares ``_expire_info``: here the key must still expire on schedule."""
        start = time.time()
        timeout = cache.default_timeout * 10
        with frozen_at(start):
            cache.set("value", 1, timeout=timeout)
        with frozen_at(start + timeout - 10):
            self.assertEqual(cache.incr("value"), 2)
            self.assertEqual(cache.decr("value"), 1)
        with frozen_at(start + timeout - 1):
            self.assertEqual(cache.get("value"), 1)
        with frozen_at(start + timeout + 1):
            self.assertIsNone(cache.get("value"))

    @limit_rustcache_entries
    def test_lru_get(self):
        """get() moves cache keys."""
        for key in range(9):
            cache.set(key, key, timeout=None)
        for key in range(6):
            self.assertEqual(cache.get(key), key)
        cache.set(9, 9, timeout=None)
        for key in range(6):
            self.assertEqual(cache.get(key), key)
        for key in range(6, 9):
            self.assertIsNone(cache.get(key))
        self.assertEqual(cache.get(9), 9)

    @limit_rustcache_entries
    def test_lru_set(self):
        """set() moves cache keys."""
        for key in range(9):
            cache.set(key, key, timeout=None)
        for key in range(3, 9):
            cache.set(key, key, timeout=None)
        cache.set(9, 9, timeout=None)
        for key in range(3, 10):
            self.assertEqual(cache.get(key), key)
        for key in range(3):
            self.assertIsNone(cache.get(key))

    @limit_rustcache_entries
    def test_lru_incr(self):
        """incr() moves cache keys."""
        for key in range(9):
            cache.set(key, key, timeout=None)
        for key in range(6):
            self.assertEqual(cache.incr(key), key + 1)
        cache.set(9, 9, timeout=None)
        for key in range(6):
            self.assertEqual(cache.get(key), key + 1)
        for key in range(6, 9):
            self.assertIsNone(cache.get(key))
        self.assertEqual(cache.get(9), 9)


DEFAULT_RUSTCACHE_SETTINGS = {"default": {"BACKEND": BACKEND, "LOCATION": "unique-snowflake"}}
NEVER_EXPIRING_RUSTCACHE_SETTINGS = {"default": {**DEFAULT_RUSTCACHE_SETTINGS["default"], "TIMEOUT": None}}


class RustCacheDefaultTimeoutTests(SimpleTestCase):
    """Ports of the two ``DefaultNonExpiringCacheKeyTests`` tests that read LocMem's
    ``_expire_info``: the key's lifetime is observed through the clock instead."""

    def tearDown(self):
        caches[DEFAULT_CACHE_ALIAS].clear()

    @override_settings(CACHES=DEFAULT_RUSTCACHE_SETTINGS)
    def test_caches_with_unset_timeout_set_expiring_key(self):
        """A cache with TIMEOUT unset sets keys that expire after the default 5 minutes."""
        cache = caches[DEFAULT_CACHE_ALIAS]
        start = time.time()
        with frozen_at(start):
            cache.set("my-key", "my-value")
        with frozen_at(start + 299):
            self.assertEqual(cache.get("my-key"), "my-value")
        with frozen_at(start + 301):
            self.assertIsNone(cache.get("my-key"))

    @override_settings(CACHES=NEVER_EXPIRING_RUSTCACHE_SETTINGS)
    def test_caches_set_with_timeout_as_none_set_non_expiring_key(self):
        """A cache with TIMEOUT None sets keys that never expire."""
        cache = caches[DEFAULT_CACHE_ALIAS]
        start = time.time()
        with frozen_at(start):
            cache.set("another-key", "another-value")
        with frozen_at(start + 100 * 365 * 24 * 3600):
            self.assertEqual(cache.get("another-key"), "another-value")
