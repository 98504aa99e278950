"""Shared fixtures: a fresh, empty cache for every test."""

import pytest
from django.core.cache import caches


@pytest.fixture
def cache():
    """The default RustCache, cleared before and after the test."""
    backend = caches["default"]
    backend.clear()
    yield backend
    backend.clear()
