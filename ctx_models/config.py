"""Where the database lives: ``--db``, a ``ctx`` TOML config, ``$CTX_MODELS_DB``, or the default.

The ``ctx`` tool's configuration names the database as ``path`` under ``[db]``;
a relative path there is taken relative to the working directory, as ``ctx``
itself does.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError

__all__ = ["DEFAULT_DB_PATH", "ENV_VAR", "resolve_db_path", "db_path_from_config"]

#: The default database path, relative to the working directory (as in ``ctx``'s example config).
DEFAULT_DB_PATH = Path(".ctx") / "data" / "ctx.sqlite"
#: Environment variable naming the database path when neither --db nor --config is given.
ENV_VAR = "CTX_MODELS_DB"


def db_path_from_config(config_file: str | os.PathLike[str]) -> Path:
    """Read ``[db] path`` from a ``ctx`` TOML configuration file."""
    path = Path(config_file).expanduser()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the --config path") from None
    except IsADirectoryError:
        raise ConfigError(
            f"config file {path} is a directory; pass the path of a TOML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("db")
    value = section.get("path") if isinstance(section, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f'config file {path} has no [db] path; add a [db] table with path = "./data/ctx.sqlite"'
            if value is None
            else f"config file {path}: [db] path must be a non-empty string, got {value!r}"
        )
    return Path(value).expanduser()


def resolve_db_path(
    db: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The database path, by precedence: ``db``, then ``config``, then ``$CTX_MODELS_DB``, then the default."""
    if db is not None:
        return Path(db).expanduser()
    if config is not None:
        return db_path_from_config(config)
    value = (os.environ if environ is None else environ).get(ENV_VAR)
    if value:
        return Path(value).expanduser()
    return DEFAULT_DB_PATH
