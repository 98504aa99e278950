"""The "dict + pickle floor" peer of the benchmark suite.

``DictPickleCache`` is the least a pickling Python cache can do: a ``BaseCache`` subclass whose methods
read and write a plain ``dict`` of ``pickle.dumps(value, HIGHEST_PROTOCOL)`` bytes. It makes no keys (the
caller's key is the dict key: no prefix, no version, no validation), keeps no expiry, no limits, no LRU
order and takes no lock, and its async methods run inline. It is not a usable cache; it is the floor under
any backend that pickles values in Python, so a native store should be at least as fast on a plain ``get``.

As with ``LocMemCache`` and ``RustCache``, instances with the same ``LOCATION`` share one dict, so each
thread's ``caches[alias]`` instance sees the same data.
"""

import pickle
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

_stores: dict[str, dict[str, bytes]] = {}
_dumps = pickle.dumps
_loads = pickle.loads
_PROTOCOL = pickle.HIGHEST_PROTOCOL


class DictPickleCache(BaseCache):
    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._data = _stores.setdefault(location, {})

    def get(self, key, default=None, version=None):
        pickled = self._data.get(key)
        return default if pickled is None else _loads(pickled)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self._data[key] = _dumps(value, _PROTOCOL)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        if key in self._data:
            return False
        self._data[key] = _dumps(value, _PROTOCOL)
        return True

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return key in self._data

    def delete(self, key, version=None):
        return self._data.pop(key, None) is not None

    def has_key(self, key, version=None):
        return key in self._data

    def incr(self, key, delta=1, version=None):
        pickled = self._data.get(key)
        if pickled is None:
            raise ValueError(f"Key '{key}' not found")
        value = _loads(pickled) + delta
        self._data[key] = _dumps(value, _PROTOCOL)
        return value

    def get_many(self, keys, version=None):
        data = self._data
        return {key: _loads(pickled) for key in keys if (pickled := data.get(key)) is not None}

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        self._data.update({key: _dumps(value, _PROTOCOL) for key, value in data.items()})
        return []

    def delete_many(self, keys, version=None):
        pop = self._data.pop
        for key in keys:
            pop(key, None)

    def get_or_set(self, key, default, timeout=DEFAULT_TIMEOUT, version=None):
        pickled = self._data.get(key)
        if pickled is not None:
            return _loads(pickled)
        if callable(default):
            default = default()
        self._data[key] = _dumps(default, _PROTOCOL)
        return default

    def clear(self):
        self._data.clear()

    async def aget(self, key, default=None, version=None):
        return self.get(key, default, version)

    async def aset(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self.set(key, value, timeout, version)
