"""The contract's chunking rule: paragraphs packed into chunks of at most max_tokens × 4.

Lengths are counted in UTF-8 bytes, as the ``ctx`` tool (written in Rust) counts
them, so both programs cut a body into identical chunks with identical hashes
and neither sees the other's embeddings as stale.
"""

from __future__ import annotations

from .errors import ValidationError

__all__ = ["chunk_text", "CHARS_PER_TOKEN", "DEFAULT_MAX_TOKENS"]

CHARS_PER_TOKEN = 4
DEFAULT_MAX_TOKENS = 700
# Unicode White_Space, which Rust's str::trim removes; str.strip() would also drop U+001C..U+001F.
_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def chunk_text(text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
    """Split ``text`` into chunk texts; always at least one (an empty body gives ``[""]``)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValidationError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if not isinstance(text, str):
        raise ValidationError(f"text must be a str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"text holds a lone surrogate at index {exc.start}, which is not valid UTF-8"
        ) from None
    if not text:
        return [""]
    max_bytes = max_tokens * CHARS_PER_TOKEN
    chunks: list[str] = []
    buffer: list[str] = []
    buffer_bytes = 0
    for paragraph in text.split("\n\n"):
        trimmed = paragraph.strip(_WHITESPACE)
        if not trimmed:
            continue
        size = len(trimmed.encode("utf-8"))
        if buffer and buffer_bytes + 2 + size > max_bytes:
            chunks.append("\n\n".join(buffer))
            buffer, buffer_bytes = [], 0
        if size > max_bytes:
            chunks.extend(_split_long_paragraph(trimmed.encode("utf-8"), max_bytes))
        else:
            buffer_bytes = size if not buffer else buffer_bytes + 2 + size
            buffer.append(trimmed)
    if buffer:
        chunks.append("\n\n".join(buffer))
    return chunks or [text.strip(_WHITESPACE)]


def _split_long_paragraph(data: bytes, max_bytes: int) -> list[str]:
    """Cut one oversized paragraph at the last newline, else space, before the limit."""
    pieces: list[str] = []
    while data:
        split_at = _char_boundary(data, min(len(data), max_bytes))
        if split_at == 0:
            split_at = _next_char(data)
        if split_at < len(data):
            window = data[:split_at]
            cut = window.rfind(b"\n")
            if cut < 0:
                cut = window.rfind(b" ")
            if cut >= 0:
                split_at = cut + 1
        split_at = _char_boundary(data, split_at) or _next_char(data)
        piece = data[:split_at].decode("utf-8").strip(_WHITESPACE)
        if piece:
            pieces.append(piece)
        data = data[split_at:]
    return pieces


def _char_boundary(data: bytes, index: int) -> int:
    """Move ``index`` back to the start of the UTF-8 character it falls in."""
    if index >= len(data):
        return len(data)
    while index > 0 and data[index] & 0xC0 == 0x80:
        index -= 1
    return index


def _next_char(data: bytes) -> int:
    """Byte length of the first UTF-8 character, so a cut always makes progress."""
    index = 1
    while index < len(data) and data[index] & 0xC0 == 0x80:
        index += 1
    return index
