"""Reading a ``ctx`` TOML configuration file: one reader for every table we take from it.

``[db]`` (config.py) and ``[embedding]`` (model_files.py) come from the same
file; both read it here, so a missing or malformed file gets the same message
whichever table was wanted first.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["read_table"]


def read_table(config_file: str | os.PathLike[str], table: str) -> tuple[Path, Mapping[str, Any]]:
    """The file's path (user-expanded) and its ``[table]`` (empty when absent); ConfigError if unreadable."""
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
    section = data.get(table)
    return path, section if isinstance(section, Mapping) else {}
