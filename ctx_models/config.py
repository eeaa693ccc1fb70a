"""Where the database lives: ``--db``, a ``ctx`` TOML config, ``$CTX_MODELS_DB``, or the default.

Each names a SQLite file path or a PostgreSQL URL (``postgresql://...``). The
``ctx`` tool's configuration names the database as ``path`` under ``[db]``
(a relative path there is taken relative to the working directory, as ``ctx``
itself does); a PostgreSQL database is ``url`` under ``[db]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .backends.urls import is_url, location, redact
from .config_file import read_table
from .errors import ConfigError

__all__ = ["DEFAULT_DB_PATH", "ENV_VAR", "resolve_database", "database_from_config", "display"]

#: The default database path, relative to the working directory (as in ``ctx``'s example config).
DEFAULT_DB_PATH = Path(".ctx") / "data" / "ctx.sqlite"
#: Environment variable naming the database path when neither --db nor --config is given.
ENV_VAR = "CTX_MODELS_DB"


def database_from_config(config_file: str | os.PathLike[str]) -> Path | str:
    """Read ``[db] path`` (a SQLite file) or ``[db] url`` (PostgreSQL) from a TOML configuration."""
    path, section = read_table(config_file, "db")
    if "path" in section and "url" in section:
        raise ConfigError(f"config file {path}: [db] has both path and url; keep one")
    key = "url" if "url" in section else "path"
    value = section.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f'config file {path} has no [db] path; add a [db] table with path = "./data/ctx.sqlite"'
            " (or url = \"postgresql://user@host/dbname\")"
            if value is None
            else f"config file {path}: [db] {key} must be a non-empty string, got {value!r}"
        )
    if key == "url":
        if not is_url(value):
            raise ConfigError(f"config file {path}: [db] url must be a postgresql:// URL")
        return value
    try:
        return location(value)
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: [db] path: {exc}") from None


def resolve_database(
    db: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path | str:
    """The database, a path or a URL, by precedence: ``db``, ``config``, ``$CTX_MODELS_DB``, the default."""
    if db is not None:
        return location(db)
    if config is not None:
        return database_from_config(config)
    value = (os.environ if environ is None else environ).get(ENV_VAR)
    if value:
        return location(value)
    return DEFAULT_DB_PATH


def display(database: Path | str) -> str:
    """How to show ``database`` to a person: the path, or the URL without its password."""
    return redact(database) if isinstance(database, str) else str(database)
