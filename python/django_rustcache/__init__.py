"""django-rustcache: a Django cache backend whose store is written in Rust."""

from ._core import __version__
from .backend import RustCache

__all__ = ["RustCache", "__version__"]
