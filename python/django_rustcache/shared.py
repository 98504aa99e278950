"""``SharedCache``: one cache for every worker process of the host, on LMDB, with no server.

The face is ``NativeCache``'s, as ``RustCache``'s is: only the LOCATION (an absolute directory, checked
to be private to the current user), the OPTIONS and the native handle (``_core.SharedCache``) differ.
"""

import os
import stat
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from . import _core
from .backend import NativeCache
from .options import parse_shared_options

# A child process must never use (nor close) its parent's LMDB environments: forget them at once.
os.register_at_fork(after_in_child=_core._after_fork)

_DATA_FILES = ("data.mdb", "lock.mdb")


def _private_directory(name: Any) -> str:
    """The LOCATION as an absolute path to a directory that only the current user can write (created
    ``0700`` if missing); ``ImproperlyConfigured`` saying why otherwise. The values are pickles: whoever
    can write the files can make every worker run code."""
    if not isinstance(name, (str, os.PathLike)) or not os.fspath(name):
        raise ImproperlyConfigured(
            f"SharedCache LOCATION must be an absolute directory path (e.g. '/dev/shm/mysite-cache'), not {name!r}."
        )
    path = os.fspath(name)
    if isinstance(path, bytes) or not os.path.isabs(path):
        raise ImproperlyConfigured(f"SharedCache LOCATION must be an absolute path, not {name!r}.")
    if not os.path.exists(path):
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ImproperlyConfigured(f"SharedCache LOCATION {path!r} could not be created: {exc}") from exc
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ImproperlyConfigured(f"SharedCache LOCATION {path!r} cannot be read: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ImproperlyConfigured(f"SharedCache LOCATION {path!r} is not a directory.")
    _check_private(path, info, "directory")
    for file in _DATA_FILES:
        try:
            file_info = os.stat(os.path.join(path, file))
        except FileNotFoundError:
            continue
        _check_private(os.path.join(path, file), file_info, "file")
    return str(Path(path).resolve())


def _check_private(path: str, info: os.stat_result, what: str) -> None:
    if info.st_uid != os.geteuid():
        raise ImproperlyConfigured(
            f"SharedCache LOCATION: the {what} {path!r} belongs to uid {info.st_uid}, not to this process's user "
            f"(uid {os.geteuid()}); its values are pickles, so only their owner may share them."
        )
    if info.st_mode & 0o022:
        raise ImproperlyConfigured(
            f"SharedCache LOCATION: the {what} {path!r} is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); its values are pickles, so make it private "
            f"(chmod {'700' if what == 'directory' else '600'})."
        )


class SharedCache(NativeCache):
    """One cache for every process of the host that names the same ``LOCATION`` (a directory), in an
    LMDB file: ``LocMemCache``'s semantics, seen by every worker at once."""

    _location_of = staticmethod(_private_directory)
    _parse_options = staticmethod(parse_shared_options)

    def _new_native(self, *, verbatim: bool, protocol: Any, hook: Any) -> Any:
        try:
            return _core.SharedCache(
                self._location,
                map_size=self._options.map_size,
                **self._handle_settings(verbatim=verbatim, protocol=protocol, hook=hook),
            )
        except _core.SharedStoreError as exc:
            raise ImproperlyConfigured(f"SharedCache LOCATION {self._location!r}: {exc}") from exc
