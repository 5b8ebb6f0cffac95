"""Files only the daemon's user may read: the API token, TLS keys, the kubeconfig.

Created atomically with mode 0600 (a temp file opened ``O_EXCL`` with that mode, so the secret
is never readable by anyone else, not even for a moment, whatever the umask; fsynced, renamed,
directory fsynced). Read back only when they are still private: a regular file, not a symlink,
owned by the daemon's user and not readable or writable by group or others. A secret that
others could read may have leaked, so it is refused with the fix in the message rather than
quietly tightened.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_MODE = 0o600


class PrivateFileError(Exception):
    """A secret file that cannot be used; the message names the file and the fix."""


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, mode 0600, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_private(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist. Raises PrivateFileError when it is not
    a private regular file of this user."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PrivateFileError(f"{path}: cannot be read: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PrivateFileError(f"{path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise PrivateFileError(
                f"{path}: owned by uid {st.st_uid}, not by the daemon's user (uid {os.geteuid()})"
                f"; delete it to have a new one made"
            )
        if st.st_mode & 0o077:
            raise PrivateFileError(
                f"{path}: mode {stat.S_IMODE(st.st_mode):04o}: group and others may use it, so "
                "it may have leaked; delete it to have a new one made (or chmod 600 it if you "
                "know it did not leak)"
            )
        return f.read()
