"""Glob patterns as ``ctx``'s filesystem connector reads them (Rust's globset, default options).

A pattern is matched against the whole path relative to the root, with ``/``
separators. ``**`` at a component boundary is recursive: ``**/x`` also matches
``x`` at the top, ``x/**`` everything below ``x``, ``a/**/b`` also ``a/b``.
As in globset's defaults, ``*`` and ``?`` also match ``/`` (so ``*.md`` matches
``notes/a.md`` too), ``[...]``/``[!...]`` are classes, ``{a,b}`` alternatives
and ``\\`` escapes the next character. Matching is case-sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import ValidationError

__all__ = ["GlobSet", "compile_glob"]


def compile_glob(pattern: str) -> str:
    """The regular expression (without anchors) for one glob; ValidationError if it is malformed."""
    if not isinstance(pattern, str) or not pattern:
        raise ValidationError(f"a glob must be a non-empty str, got {pattern!r}")
    out: list[str] = []
    i, n = 0, len(pattern)
    in_braces = 0
    while i < n:
        c = pattern[i]
        if c == "*" and pattern.startswith("**", i):
            at_start = i == 0 or pattern[i - 1] == "/"
            at_end = i + 2 == n or pattern[i + 2] == "/"
            if not (at_start and at_end):
                raise ValidationError(
                    f"glob {pattern!r}: '**' must be a whole path component (as in **/x, x/**, a/**/b)"
                )
            if i + 2 == n:
                # A trailing ``/**`` needs something below: ``x/**`` does not match ``x``.
                out.append(".*" if i == 0 else ".+")
                i += 2
            else:
                out.append("(?:.*/)?")
                i += 3
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\":
            if i + 1 == n:
                raise ValidationError(f"glob {pattern!r} ends with a lone backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 1
        elif c == "[":
            end = _class_end(pattern, i)
            body = pattern[i + 1 : end]
            negate = body[:1] == "!"
            body = body[1:] if negate else body
            escaped = "".join("\\" + ch if ch in "\\^[]" else ch for ch in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = end
        elif c == "{":
            in_braces += 1
            out.append("(?:")
        elif c == "}" and in_braces:
            in_braces -= 1
            out.append(")")
        elif c == "," and in_braces:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if in_braces:
        raise ValidationError(f"glob {pattern!r} has an unclosed '{{'")
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Index of the ``]`` closing the class opened at ``start`` (a ``]`` first is literal)."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "!":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    end = pattern.find("]", i)
    if end < 0:
        raise ValidationError(f"glob {pattern!r} has an unclosed '['")
    return end


class GlobSet:
    """Several globs compiled into one regular expression: does any of them match a path?"""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        parts = [compile_glob(p) for p in self.patterns]
        self._regex = re.compile("|".join(f"(?:{p})" for p in parts) or "(?!)", re.DOTALL)

    def __repr__(self) -> str:
        return f"GlobSet({list(self.patterns)!r})"

    def matches(self, path: str) -> bool:
        return self._regex.fullmatch(path) is not None
