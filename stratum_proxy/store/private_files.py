"""Owner-only files and directories for what the store keeps on disk.

The spool and its dead-letter file hold worker names and miner addresses, and
the lock files say which process runs the store; none of it is anyone else's
business.  So the project creates its directories 0700 and its files 0600 and
sets the mode explicitly after creating them: the mode given to ``open`` or
``mkdir`` is filtered by the umask, which an init system or a shell profile may
have set to anything.  A file or directory an older release left
world-readable is tightened the next time it is opened here.

These calls are made once per file creation (a segment, a state replace, a
lock), never per row or per write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents 0700; tighten ``path`` itself if it exists.

    Parents that already exist (``/var/lib``, a home directory) are not ours and
    keep their mode; ``path`` is the store's or spool's own directory.
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR_MODE)
        except FileExistsError:  # another process made it first; as mkdir(exist_ok=True)
            if not directory.is_dir():
                raise
            continue
        os.chmod(directory, PRIVATE_DIR_MODE)  # the umask may have cleared owner bits
    if not missing:
        _tighten_own_dir(path)


def _tighten_own_dir(path: Path) -> None:
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):  # what mkdir(exist_ok=True) says about a file
        raise FileExistsError(errno.EEXIST, "exists and is not a directory", str(path))
    if not st.st_mode & 0o077:
        return
    # A sticky directory (/tmp) is shared by design, and one owned by another
    # user is not ours to change: only a directory of our own is tightened.
    if st.st_mode & stat.S_ISVTX or st.st_uid != os.geteuid():
        return
    os.chmod(path, PRIVATE_DIR_MODE)


def open_private(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)`` with the file's mode forced to 0600."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        _force_private(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _force_private(fd: int) -> None:
    # A file another user owns (say, left by a run as root) may not have its
    # mode changed by us; refusing to write it would lose rows, so it is used as is.
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, PRIVATE_FILE_MODE)


def tighten_file(path: Path) -> None:
    """Make an existing file 0600 if it is readable by others; a missing file is fine."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    tighten_mode(path, mode)


def tighten_mode(path: Path, mode: int) -> None:
    """Make ``path`` 0600 when ``mode`` (from a stat the caller already did) lets others in."""
    if mode & 0o077:
        with contextlib.suppress(PermissionError):
            os.chmod(path, PRIVATE_FILE_MODE)
