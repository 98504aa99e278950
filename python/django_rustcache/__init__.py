"""django-rustcache: a Django cache backend whose store is written in Rust."""

import re

from ._core import __version__ as _cargo_version
from .backend import RustCache
from .near import RedisNearCache
from .shared import SharedCache

# Every cache backend the package ships, for code that must cover them all (the install smoke test,
# tests/install/smoke.py, configures and exercises each one listed here, with a redis-server started by
# tests/install/run.py for RedisNearCache). Add a backend here when it ships.
BACKENDS = (RustCache, SharedCache, RedisNearCache)


def _pep440(cargo_version: str) -> str:
    """The PEP 440 form of a Cargo (SemVer) version, as maturin writes it into the wheel's metadata:
    ``0.1.0`` stays, ``1.2.0-alpha.3`` becomes ``1.2.0a3`` (``beta`` ``b``, ``rc`` ``rc``), build metadata
    (``+...``) becomes a local version."""
    match = re.fullmatch(r"(\d+\.\d+\.\d+)(?:-(alpha|beta|rc)\.?(\d+))?(?:\+([0-9A-Za-z.-]+))?", cargo_version)
    if match is None:
        raise ValueError(f"Cargo version {cargo_version!r} has no PEP 440 form")
    release, pre, number, local = match.groups()
    version = release + ({"alpha": "a", "beta": "b", "rc": "rc"}[pre] + number if pre else "")
    return version + ("+" + local.replace("-", ".") if local else "")


__version__ = _pep440(_cargo_version)

__all__ = ["BACKENDS", "RedisNearCache", "RustCache", "SharedCache", "__version__"]
