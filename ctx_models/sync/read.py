"""Reading one file whole while it does not change, and turning its bytes into a document's text."""

from __future__ import annotations

import logging
import os
import stat
import time

from .extract import ExtractionError, extract_text
from .walk import FoundFile, content_type_of

__all__ = ["READ_ATTEMPTS", "Skip", "decode", "read_file"]

log = logging.getLogger(__name__)

READ_ATTEMPTS = 3


class Skip(Exception):
    """A file that is not synced, with the reason to report."""


def _read_all(fd: int, limit: int) -> bytes:
    """Read a file to its end, at most ``limit`` bytes (a hook the tests replace)."""
    parts, size = [], 0
    while size < limit:
        part = os.read(fd, min(1 << 20, limit - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def read_file(file: FoundFile, max_bytes: int, follow_symlinks: bool) -> tuple[bytes, os.stat_result]:
    """The bytes of a file and its stat, read whole while it did not change; Skip otherwise.

    The stat is taken on the open file before and after reading: when size or
    mtime moved, the file changed while it was read, and is read again.
    """
    # Non-blocking: a file swapped for a FIFO since the scan must not hang the open.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)  # replaced by a link since the scan: not followed
    for attempt in range(READ_ATTEMPTS):
        try:
            fd = os.open(file.path, flags)
        except FileNotFoundError:
            raise Skip("vanished while syncing") from None
        except OSError as exc:
            raise Skip(f"unreadable: {exc.strerror}") from None
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise Skip("not a regular file")
            if before.st_size > max_bytes:
                raise Skip(f"too large: {before.st_size:,} bytes")
            data = _read_all(fd, max_bytes + 1)
            after = os.fstat(fd)
        except OSError as exc:
            raise Skip(f"unreadable: {exc.strerror}") from None
        finally:
            os.close(fd)
        same = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
        if same and len(data) == after.st_size:
            return data, before
        log.debug("%s changed while being read (attempt %d)", file.source_id, attempt + 1)
        time.sleep(0.05 * (attempt + 1))
    raise Skip(f"changing while read: still changing after {READ_ATTEMPTS} reads")


def decode(file: FoundFile, data: bytes) -> tuple[str, str]:
    """(body, content_type) of a file's bytes; Skip when there is no text to keep."""
    content_type = content_type_of(file.source_id)
    if content_type != "text/plain":
        try:
            return extract_text(data, content_type), content_type
        except ExtractionError as exc:
            raise Skip(f"cannot extract: {exc}") from None
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Skip(f"not UTF-8: invalid byte at offset {exc.start}") from None
    if "\x00" in body:
        raise Skip("contains NUL: a binary file, not text")
    return body, content_type
