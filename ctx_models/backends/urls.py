"""Telling a database URL from a file path, and showing a URL without its password.

Plain string work, apart from either backend, so opening a SQLite file never
imports the PostgreSQL driver.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["SCHEMES", "is_url", "redact"]

SCHEMES = ("postgresql", "postgres")


def is_url(target: Any) -> bool:
    """True for ``postgresql://...`` (or ``postgres://``) text."""
    return isinstance(target, str) and target.split("://", 1)[0].lower() in SCHEMES and "://" in target


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
