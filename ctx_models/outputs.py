"""Files a command writes (an export, a backup): never the database, never over a file unasked.

An output is written to a temporary file of its own beside the target and renamed
over it when whole, so the target holds either what it held or the whole new
file, never a part. The rename replaces a symbolic link given as the target
with the file itself; the file the link pointed to is left as it was. Each
temporary file is locked (``flock``) while its writer lives, so a file left by a
killed writer can be told from one being written, and removed by the next run.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import ValidationError

__all__ = [
    "SQLITE_SIDECARS",
    "refuse_database_files",
    "refuse_existing",
    "file_mode",
    "give_mode",
    "new_file_mode",
    "replaced_atomically",
    "remove_abandoned",
]

log = logging.getLogger(__name__)

#: The files SQLite keeps beside a database: WAL, shared memory, rollback journal.
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()  # follows links: a link's target is what would be written
    except OSError:
        return None
    return found.st_dev, found.st_ino


def refuse_database_files(target: Path, database: Path, what: str) -> None:
    """Refuse ``target`` when it is ``database`` or one of its sidecar files.

    Compared by resolved path (through symbolic links, also for files that do
    not exist yet, like a ``-wal`` between checkpoints) and by device and inode
    (a hard link).
    """
    guarded = [Path(f"{database}{suffix}") for suffix in ("", *SQLITE_SIDECARS)]
    resolved = {p.resolve() for p in guarded}
    resolved |= {Path(f"{database.resolve()}{suffix}") for suffix in ("", *SQLITE_SIDECARS)}
    identities = {i for p in guarded if (i := _identity(p)) is not None}
    if target.resolve() in resolved or _identity(target) in identities:
        raise ValidationError(
            f"{target} is the database {database} (or one of its files); write the {what} "
            "to another file"
        )


def refuse_existing(target: Path, force: bool) -> None:
    """Refuse a directory, and an existing file (or link) unless ``force``."""
    if target.is_dir():
        raise ValidationError(f"{target} is a directory; give the path of the file to write")
    if os.path.lexists(target) and not force:
        raise ValidationError(f"{target} exists; choose another file, or replace it (--force)")


def file_mode(path: Path) -> int:
    """The permission bits of ``path``, for a copy of it to get the same."""
    return stat.S_IMODE(path.stat().st_mode)


def give_mode(database: Path, mode: int) -> None:
    """Set the permission bits of a database file and of the sidecar files SQLite has made."""
    for path in (database, *(Path(f"{database}{suffix}") for suffix in SQLITE_SIDECARS)):
        with suppress(FileNotFoundError):
            os.chmod(path, mode)


def new_file_mode() -> int:
    """The permission bits a file created now gets (0666 less the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def replaced_atomically(target: Path, *, mode: int, tag: str) -> Iterator[Path]:
    """A new temporary file beside ``target``, renamed over it if the block ends normally.

    The file is named ``{target name}.{tag}-XXXXXXXX.partial`` and gets ``mode``
    before the rename. On an exception (Ctrl-C and SIGTERM included) it and any
    SQLite sidecar of it are removed; after a SIGKILL :func:`remove_abandoned`
    finds it.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=f"{target.name}.{tag}-", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise ValidationError(f"cannot write {target}: {exc.strerror}") from None
    temporary = Path(name)
    try:
        # Held until this process ends. Where flock is not supported, the file is
        # never taken for abandoned (remove_abandoned cannot lock it either).
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield temporary
        os.fsync(fd)  # the same file, whichever descriptor wrote it
        os.chmod(temporary, mode)
        os.replace(temporary, target)
        _sync_directory(target.parent)
    except BaseException:
        _remove_with_sidecars(temporary)
        raise
    finally:
        os.close(fd)


def remove_abandoned(target: Path, tag: str) -> list[Path]:
    """Remove the temporary files a killed writer of ``target`` left; returns them.

    One still locked belongs to a writer that is running and is left alone.
    """
    removed = []
    for leftover in sorted(target.parent.glob(f"{_glob_escape(target.name)}.{tag}-*.partial")):
        try:
            fd = os.open(leftover, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its writer holds the lock: still being written
        finally:
            os.close(fd)
        _remove_with_sidecars(leftover)
        removed.append(leftover)
        log.warning("removed %s, left by an interrupted run", leftover)
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _remove_with_sidecars(path: Path) -> None:
    for suffix in ("", *SQLITE_SIDECARS):
        with suppress(OSError):
            os.unlink(f"{path}{suffix}")


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every system can open a directory)."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
