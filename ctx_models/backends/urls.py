"""Telling a database URL from a file path, reading a PostgreSQL URL, and showing it without secrets.

Plain string work, apart from either backend, so opening a SQLite file never
imports the PostgreSQL driver.

We read ``postgresql://`` URLs ourselves, the way libpq reads them, and hand
the driver keyword arguments, never the URL: libpq echoes parts of a URL it
cannot read in its error messages, and a password may be among them. Where a
URL is ambiguous (an ``@`` that does not end the user info, which is what an
unencoded ``@`` or ``/`` in a password looks like) it is refused with a
message that quotes none of it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import ConfigError

__all__ = [
    "SCHEMES",
    "ConnInfo",
    "is_url",
    "looks_like_url",
    "location",
    "parse",
    "redact",
    "scrub",
]

SCHEMES = ("postgresql", "postgres")
#: What a database location may be, for messages.
FORMS = "a SQLite file path (such as ./ctx.sqlite) or postgresql://user:password@host:5432/dbname"
HINT = "write postgresql://user:password@host:5432/dbname"
ENCODE = (
    "percent-encode @ / ? # % in a user name, password or value (%40 %2F %3F %23 %25)"
)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# A scheme of two letters or more and a colon (one letter is a Windows drive), or a
# PostgreSQL scheme that lost its colon.
_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:|(?i:postgres(?:ql)?)//")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_url(target: Any) -> bool:
    """True for text meant as a PostgreSQL URL: ``postgresql://`` or ``postgres://``, in any case."""
    if not isinstance(target, str):
        return False
    match = _SCHEME.match(target)
    return match is not None and match.group(1).lower() in SCHEMES


def looks_like_url(text: str) -> bool:
    """True for text that starts like a URL (``sqlite:``, ``file:``, ``postgresql:/``...)."""
    return _URL_LIKE.match(text) is not None


def location(target: str | os.PathLike[str]) -> Path | str:
    """A database location given as text: a PostgreSQL URL stays text, anything else is a path.

    Text that starts like a URL but is not a ``postgresql://`` one (``sqlite:///x.db``,
    ``postgresql:/x``, ``postgres:x``, ``postgresql//x``) is refused rather than
    created as a file of that odd name; a file of that name that exists, or a path
    written ``./postgresql:x``, is a path.
    """
    if not isinstance(target, str):
        return Path(target).expanduser()
    if is_url(target):
        return target
    if looks_like_url(target) and not os.path.lexists(target):
        raise ConfigError(
            f"{_shown(target)} looks like a URL, and the only URLs ctx-models opens are "
            f"postgresql:// ones; give {FORMS} (a file whose name starts that way: ./NAME)"
        )
    return Path(target).expanduser()


def _shown(text: str) -> str:
    """A location that is not a valid URL, shown only when it cannot hold a password."""
    if "@" in text or "pass" in text.lower():
        return text.split(":", 1)[0] + ":..."
    return text


# --------------------------------------------------------------------------- PostgreSQL URLs


def _secret(key: str) -> bool:
    """Parameters whose values are never shown: passwords, and anything named like one."""
    key = key.lower()
    return any(word in key for word in ("pass", "secret", "token"))


@dataclass(frozen=True)
class ConnInfo:
    """A PostgreSQL URL read into libpq's keywords (decoded), and how to show it."""

    scheme: str
    params: dict[str, str]
    display: str
    secrets: tuple[str, ...] = field(default=())


def _invalid(scheme: str, reason: str, hint: str = HINT) -> ConfigError:
    # Never quotes the URL: whatever could not be read may be part of a password.
    return ConfigError(f"the {scheme}:// URL given is not valid: {reason}; {hint}")


def _decode(scheme: str, text: str, what: str) -> str:
    if _BAD_ESCAPE.search(text):
        raise _invalid(scheme, f"a '%' in the {what} is not followed by two hex digits", ENCODE)
    if "%00" in text:
        raise _invalid(scheme, f"the {what} holds %00, which libpq cannot take")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _invalid(scheme, f"a percent escape in the {what} is not UTF-8 text") from None


def parse(url: str) -> ConnInfo:
    """Read ``postgresql://[user[:password]@][host][:port][,...][/dbname][?key=value&...]``.

    As libpq reads it (``#`` and ``?`` are plain characters in a password; any
    part may be percent-encoded), with the scheme in any case. Raises
    :class:`ConfigError`, without quoting the URL, where it cannot be read
    unambiguously.
    """
    match = _SCHEME.match(url)
    if match is None or match.group(1).lower() not in SCHEMES:
        raise ConfigError(f"not a postgresql:// URL; {HINT}")
    scheme = match.group(1).lower()
    rest = url[match.end():]
    if re.search(r"[\s\x00-\x1f\x7f]", rest):
        raise _invalid(scheme, "a URL has no spaces or control characters", ENCODE)
    # libpq ends the user info at the first '@' before any '/'. A second '@', or one
    # after a '/', is an unencoded '@' or '/' in a password (or a value): refused, or
    # part of the password would become a host or database name and be shown.
    ats = rest.count("@")
    slash = rest.find("/")
    if ats > 1:
        raise _invalid(scheme, "it holds more than one '@'", ENCODE)
    if ats == 1 and slash != -1 and rest.index("@") > slash:
        raise _invalid(scheme, "an '@' comes after a '/'", ENCODE)
    params: dict[str, str] = {}
    secrets: list[str] = []
    shown = f"{scheme}://"
    if ats:
        userinfo, rest = rest.split("@", 1)
        user, colon, password = userinfo.partition(":")
        if user:
            params["user"] = _decode(scheme, user, "user name")
        if colon:
            params["password"] = _decode(scheme, password, "password")
            if password:
                secrets += [password, params["password"]]
        shown += user + (":***" if colon else "") + "@"
    end = len(rest)
    for stop in ("/", "?"):
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    hostspec, rest = rest[:end], rest[end:]
    hosts, ports = [], []
    for item in hostspec.split(",") if hostspec else []:
        if item.startswith("["):
            close = item.find("]")
            if close == -1:
                raise _invalid(scheme, "an IPv6 address opened with '[' is not closed with ']'")
            host, after = item[1:close], item[close + 1:]
            if after and not after.startswith(":"):
                raise _invalid(scheme, "only :PORT may follow an IPv6 address in [ ]")
            port = after[1:]
        else:
            host, _, port = item.partition(":")
        if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise _invalid(scheme, "the port is not a number from 1 to 65535")
        hosts.append(_decode(scheme, host, "host"))
        ports.append(port)
    if any(hosts):
        params["host"] = ",".join(hosts)
    if any(ports):
        params["port"] = ",".join(ports)
    shown += hostspec
    path, _, query = rest.partition("?")
    if path:
        dbname = _decode(scheme, path[1:], "database name")
        if dbname:
            params["dbname"] = dbname
        shown += path
    pairs = []
    for item in query.split("&") if query else []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise _invalid(scheme, "a query parameter is not key=value", "write ?key=value&key=value")
        key = _decode(scheme, key, "query")
        decoded = _decode(scheme, value, "query")
        if key == "ssl" and decoded == "true":  # libpq's JDBC spelling
            key, decoded = "sslmode", "require"
        params[key] = decoded
        hidden = _secret(key) or (key == "options" and "pass" in decoded.lower())
        if hidden and decoded:
            secrets += [value, decoded]
        pairs.append(f"{item.partition('=')[0]}={'***' if hidden and decoded else value}")
    if pairs:
        shown += "?" + "&".join(pairs)
    return ConnInfo(scheme, params, shown, tuple(dict.fromkeys(s for s in secrets if s)))


def redact(url: str) -> str:
    """The URL without its secrets, for messages and logs (only the scheme if it cannot be read)."""
    try:
        return parse(url).display
    except ConfigError:
        match = _SCHEME.match(url)
        return f"{match.group(1).lower() if match else 'postgresql'}://(a URL that is not valid)"


def scrub(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """``text`` (a driver's message) with every secret in it replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text
