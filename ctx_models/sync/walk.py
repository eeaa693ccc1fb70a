"""Finding the files of a folder that a sync reads, the way ``ctx``'s filesystem connector does.

Paths are matched relative to the root with ``/`` separators: a file is taken
when an include glob matches and no exclude glob does; ``**/.git/**``,
``**/target/**`` and ``**/node_modules/**`` are always excluded (those folders
are not even entered). Symbolic links are not followed unless asked, so that a
sync never reads outside its root by accident; followed, a link that leads back
into a folder it is inside (a loop) is reported and not entered.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ValidationError
from .globs import GlobSet

__all__ = [
    "ALWAYS_EXCLUDED",
    "DEFAULT_INCLUDE",
    "EXTRACTED_TYPES",
    "FoundFile",
    "Scan",
    "content_type_of",
    "display_text",
    "scan",
]

log = logging.getLogger(__name__)

DEFAULT_INCLUDE = ("**/*.md", "**/*.txt")
ALWAYS_EXCLUDED = ("**/.git/**", "**/target/**", "**/node_modules/**")
# A folder with one of these names holds only always-excluded files: not entered at all.
_PRUNED_DIRS = frozenset((".git", "target", "node_modules"))

#: File extensions whose text is extracted, and the content type ``ctx`` records for them.
EXTRACTED_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def content_type_of(name: str) -> str:
    """``text/plain``, or the type of a format whose text is extracted (by extension)."""
    return EXTRACTED_TYPES.get(os.path.splitext(name)[1].lower(), "text/plain")


def display_text(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 become U+FFFD, as ctx's lossy conversion does."""
    return os.fsencode(name).decode("utf-8", "replace")


@dataclass(frozen=True)
class FoundFile:
    """A file the scan selected: its id in the source, where it is, and its size and mtime then."""

    source_id: str  # relative path with "/", as text
    path: str  # the file system path to open (may hold undecodable bytes, surrogate-escaped)
    url_path: str  # the absolute path as text, for source_url
    size: int
    mtime_ns: int


@dataclass
class Scan:
    """What a walk found: the selected files (sorted by source_id) and what it passed over."""

    files: list[FoundFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


def scan(
    root: str,
    *,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    max_bytes: int,
) -> Scan:
    """Walk ``root`` (an absolute path) and select the files a sync reads.

    Files larger than ``max_bytes`` are reported as skipped without being read.
    Unreadable subfolders, broken links and link loops are reported as skipped.
    """
    includes = GlobSet(include)
    excludes = GlobSet(tuple(ALWAYS_EXCLUDED) + tuple(exclude))
    found = Scan()
    root_stat = os.stat(root)
    # (folder path, its relative prefix, the (dev, inode) of it and the folders above it)
    todo: list[tuple[str, str, frozenset[tuple[int, int]]]] = [
        (root, "", frozenset({(root_stat.st_dev, root_stat.st_ino)}))
    ]
    while todo:
        folder, prefix, ancestors = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if not prefix:
                raise ValidationError(f"cannot read the folder {root}: {exc.strerror}") from None
            found.skipped.append((prefix.rstrip("/"), f"unreadable folder: {exc.strerror}"))
            continue
        for entry in entries:
            rel = prefix + display_text(entry.name)
            try:
                if entry.is_symlink():
                    if not follow_symlinks:
                        if _wanted_link(entry, rel, includes, excludes):
                            found.skipped.append((rel, "symlink not followed: pass --follow-symlinks to follow links"))
                        continue
                    try:
                        st = os.stat(entry.path)
                    except OSError:
                        if includes.matches(rel) and not excludes.matches(rel):
                            found.skipped.append((rel, "broken symlink"))
                        continue
                else:
                    st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                found.skipped.append((rel, f"unreadable: {exc.strerror}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name in _PRUNED_DIRS:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    found.skipped.append((rel, "symlink loop: a link back to a folder above it, not entered"))
                    continue
                todo.append((entry.path, rel + "/", ancestors | {key}))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # sockets, pipes, devices: never documents (ctx skips them too)
            if excludes.matches(rel) or not includes.matches(rel):
                continue
            if st.st_size > max_bytes:
                found.skipped.append((rel, f"too large: {st.st_size:,} bytes, over the limit of {max_bytes:,}"))
                continue
            found.files.append(
                FoundFile(rel, entry.path, display_text(entry.path), st.st_size, st.st_mtime_ns)
            )
    found.files.sort(key=lambda f: f.source_id)
    found.skipped.sort()
    log.debug("scanned %s: %d files, %d skipped", root, len(found.files), len(found.skipped))
    return found


def _wanted_link(entry: os.DirEntry[str], rel: str, includes: GlobSet, excludes: GlobSet) -> bool:
    """Worth reporting as not followed: a link to a folder, or one the globs would take."""
    if excludes.matches(rel):
        return False
    try:
        if entry.is_dir(follow_symlinks=True):
            return not excludes.matches(rel + "/x")
    except OSError:
        pass
    return includes.matches(rel)
