"""Opening a database file this process may not write: read-only, the safe way SQLite allows.

A file, or the directory holding it, that this process cannot write (a read-only
mount, a directory of someone else's, a file of mode 0444) is still readable:
``stats``, ``search``, ``export`` and ``check`` work on it. In WAL mode a reader
needs the ``-shm`` file beside the database, which it cannot create there:

* on a read-only mount nobody can write, so the file is opened ``immutable``
  (SQLite then takes no locks and reads no ``-shm``);
* where a ``-shm`` exists (a process has the database open), it is opened
  ``mode=ro`` and reads through it, seeing that process's commits;
* where none exists, nobody has the database open in WAL mode: it is opened
  ``immutable``. A process that starts writing it afterwards is not seen, and
  the one-line warning says so;
* a ``-wal`` file that holds commits with no ``-shm`` (a writer was killed)
  cannot be read without writing; that is refused with what to do.

A database in rollback-journal mode needs no ``-shm``: ``mode=ro`` always.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ...errors import DatabaseError

__all__ = ["ReadOnly", "read_only_access"]

log = logging.getLogger(__name__)

_warned: set[str] = set()


@dataclass(frozen=True)
class ReadOnly:
    """How to open a file this process cannot write: SQLite's URI, and why."""

    uri: str
    reason: str
    immutable: bool

    @property
    def why(self) -> str:
        """Why this process may not write it, in a few words."""
        return "it is on a read-only file system" if "file system" in self.reason else (
            "it or its directory is not writable"
        )


def _writable(path: Path) -> bool:
    # os.access asks the kernel, so it is right for root (who may write a 0555
    # directory) and for a read-only mount (which nobody may write).
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _in_wal_mode(path: Path) -> bool:
    """The header's file format versions (bytes 18 and 19) are 2 in WAL mode."""
    try:
        with path.open("rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18:20] == b"\x02\x02"


def read_only_access(path: Path) -> ReadOnly | None:
    """None when this process may write ``path`` (and its directory); else how to read it."""
    if not path.exists() or _writable(path):
        return None
    base = "file:" + quote(str(path.resolve()), safe="/")
    shm = Path(f"{path}-shm")
    wal = Path(f"{path}-wal")
    mount = _read_only_mount(path)
    if not mount and (shm.exists() or not _in_wal_mode(path)):
        return ReadOnly(f"{base}?mode=ro", "it or its directory is not writable", False)
    if wal.exists() and wal.stat().st_size > 0 and not shm.exists():
        raise DatabaseError(
            f"{path}-wal holds commits that SQLite can only read by writing {path}-shm, and "
            f"{'the file system is read-only' if mount else 'its directory is not writable'}; "
            "open it once where it is writable (any command), or copy the folder"
        )
    reason = (
        "it is on a read-only file system"
        if mount
        else "its directory is not writable, so SQLite cannot make the -shm file of a "
        "WAL database; a process writing it meanwhile would not be seen"
    )
    return ReadOnly(f"{base}?mode=ro&immutable=1", reason, True)


def say_once(path: Path, access: ReadOnly) -> None:
    """One warning per file and process: the commands that read work, those that write cannot."""
    key = str(path.resolve())
    if key in _warned:
        return
    _warned.add(key)
    log.warning(
        "opened %s read-only (%s); reading works, writing is refused", path, access.reason
    )
