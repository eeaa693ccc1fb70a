"""Plain text from PDF, DOCX, PPTX and XLSX files, for a sync.

PDF needs pypdf (``pip install 'ctx-models[files]'``). The Office formats are
zip files of XML, read here with the standard library: the text runs of each
paragraph (DOCX, PPTX) or the cells of each row (XLSX). Paragraphs are kept
apart by a blank line, so the contract's chunking cuts at them. ``ctx`` joins
the same runs with nothing between them, so its bodies for these formats can
differ from ours; the plain-text files both read are identical.

XML is parsed with expat, refusing any document type declaration (Office files
have none; entity tricks need one), and every zip member read is capped, so a
hostile file costs bounded memory and time.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Callable
from xml.parsers import expat

from .walk import EXTRACTED_TYPES

__all__ = ["ExtractionError", "extract_text", "MAX_XML_BYTES"]

log = logging.getLogger(__name__)

#: The largest zip member read (uncompressed), as ctx caps it.
MAX_XML_BYTES = 50 * 1024 * 1024
XLSX_MAX_SHEETS = 100
XLSX_MAX_CELLS_PER_SHEET = 100_000

_PDF, _DOCX, _PPTX, _XLSX = (EXTRACTED_TYPES[e] for e in (".pdf", ".docx", ".pptx", ".xlsx"))
_NUMBERED = re.compile(r"(\d+)\.xml")


class ExtractionError(Exception):
    """A file's text cannot be extracted; the message says why (the file is skipped)."""


def extract_text(data: bytes, content_type: str) -> str:
    """The text of a PDF or Office file's bytes; raises ExtractionError when there is none to get."""
    extractor = _EXTRACTORS.get(content_type)
    if extractor is None:
        raise ExtractionError(f"no text extractor for {content_type}")
    try:
        text = extractor(data)
    except ExtractionError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ExtractionError(f"not a valid Office file (a zip archive): {exc}") from None
    except expat.ExpatError as exc:
        raise ExtractionError(f"its XML is malformed: {exc}") from None
    except Exception as exc:  # a library's failure on a damaged file is that file's problem
        log.debug("extraction failed", exc_info=True)
        raise ExtractionError(f"{type(exc).__name__}: {exc}") from None
    # What other programs would cut at (NUL), or cannot store (lone surrogates), goes.
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


# --------------------------------------------------------------------------- PDF


def _pdf(data: bytes) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise ExtractionError("PDF needs the pypdf package: pip install 'ctx-models[files]'") from None
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            reader.decrypt("")
        except Exception:
            raise ExtractionError("the PDF is encrypted") from None
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
    return "\n\n".join(p for p in pages if p)


# --------------------------------------------------------------------------- Office XML


def _member(archive: zipfile.ZipFile, name: str) -> bytes:
    """One zip member's bytes, refusing members that inflate past MAX_XML_BYTES."""
    with archive.open(name) as fh:
        data = fh.read(MAX_XML_BYTES + 1)
    if len(data) > MAX_XML_BYTES:
        raise ExtractionError(f"{name} inflates to more than {MAX_XML_BYTES:,} bytes")
    return data


def _numbered(names: list[str], prefix: str) -> list[str]:
    """Members ``prefix<N>.xml`` in numeric order (slide2 before slide10)."""
    numbered = []
    for name in names:
        match = _NUMBERED.fullmatch(name[len(prefix) :]) if name.startswith(prefix) else None
        if match:
            numbered.append((int(match.group(1)), name))
    return [name for _, name in sorted(numbered)]


class _Paragraphs:
    """Collects the text of ``text`` elements, one string per ``paragraph`` element."""

    def __init__(
        self, text: str, paragraph: str, breaks: dict[str, str], *, keep_empty: bool = False
    ) -> None:
        self.text_name, self.paragraph_name, self.breaks = text, paragraph, breaks
        self.keep_empty = keep_empty
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.in_text = 0

    def parse(self, xml: bytes) -> list[str]:
        parser = _parser()
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.data
        parser.Parse(xml, True)
        if not self.keep_empty:
            self.flush()
        return self.paragraphs

    def start(self, name: str, attrs: object) -> None:
        local = name.rpartition(" ")[2]
        if local == self.text_name:
            self.in_text += 1
        elif local in self.breaks:
            self.current.append(self.breaks[local])

    def end(self, name: str) -> None:
        local = name.rpartition(" ")[2]
        if local == self.text_name:
            self.in_text -= 1
        elif local == self.paragraph_name:
            self.flush()

    def data(self, text: str) -> None:
        if self.in_text:
            self.current.append(text)

    def flush(self) -> None:
        paragraph = "".join(self.current).strip()
        if paragraph or self.keep_empty:
            self.paragraphs.append(paragraph)
        self.current = []


def _parser() -> expat.XMLParserType:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True

    def refuse(*args: object) -> None:
        raise ExtractionError("its XML declares a document type, which Office files never do")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    return parser


def _docx(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if "word/document.xml" not in archive.namelist():
            raise ExtractionError("word/document.xml not found: not a Word document")
        xml = _member(archive, "word/document.xml")
    paragraphs = _Paragraphs("t", "p", {"tab": "\t", "br": "\n", "cr": "\n"}).parse(xml)
    return "\n\n".join(paragraphs)


def _pptx(data: bytes) -> str:
    slides = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in _numbered(archive.namelist(), "ppt/slides/slide"):
            paragraphs = _Paragraphs("t", "p", {"br": "\n"}).parse(_member(archive, name))
            if paragraphs:
                slides.append("\n".join(paragraphs))
    return "\n\n".join(slides)


class _Sheet:
    """The cells of one worksheet, row by row: shared and inline strings, numbers, booleans."""

    def __init__(self, shared: list[str]) -> None:
        self.shared = shared
        self.rows: list[str] = []
        self.row: list[str] = []
        self.cell_type = ""
        self.value: list[str] = []
        self.in_value = 0
        self.cells = 0

    def parse(self, xml: bytes) -> str:
        parser = _parser()
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.data
        parser.Parse(xml, True)
        return "\n".join(self.rows)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rpartition(" ")[2]
        if local == "c":
            self.cell_type = attrs.get("t", "")
            self.value = []
        elif local in ("v", "t"):
            self.in_value += 1

    def end(self, name: str) -> None:
        local = name.rpartition(" ")[2]
        if local in ("v", "t"):
            self.in_value -= 1
        elif local == "c":
            text = "".join(self.value).strip()
            if self.cell_type == "s":
                index = int(text) if text.isdigit() else -1
                text = self.shared[index] if 0 <= index < len(self.shared) else ""
            elif self.cell_type == "b":
                text = {"1": "TRUE", "0": "FALSE"}.get(text, text)
            if text and self.cells < XLSX_MAX_CELLS_PER_SHEET:
                self.row.append(text)
                self.cells += 1
        elif local == "row":
            if self.row:
                self.rows.append("\t".join(self.row))
            self.row = []

    def data(self, text: str) -> None:
        if self.in_value:
            self.value.append(text)


def _xlsx(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            # Each <si> is one string (its runs' <t> texts joined); empty ones keep their index.
            shared = _Paragraphs("t", "si", {}, keep_empty=True).parse(_member(archive, "xl/sharedStrings.xml"))
        sheets = []
        for name in _numbered(names, "xl/worksheets/sheet")[:XLSX_MAX_SHEETS]:
            text = _Sheet(shared).parse(_member(archive, name))
            if text:
                sheets.append(text)
    return "\n\n".join(sheets)


_EXTRACTORS: dict[str, Callable[[bytes], str]] = {
    _PDF: _pdf,
    _DOCX: _docx,
    _PPTX: _pptx,
    _XLSX: _xlsx,
}
