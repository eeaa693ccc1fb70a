"""ctx-models sync: folders made here, synced into a store as ctx's filesystem connector would.

Every test builds a real folder (nested paths, links, odd files) and syncs it
with the library call or the command line; the multi-process tests SIGKILL a
real sync and run two at once.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

import ctx_models
from ctx_models import integrity, search
from ctx_models.chunking import chunk_text
from ctx_models.embedders import HashingEmbedder
from ctx_models.errors import SyncInProgressError, ValidationError
from ctx_models.sync import STAT_KEY, extract_text, sync_folder
from ctx_models.sync import folder as folder_module
from ctx_models.sync import read as read_module
from ctx_models.sync.globs import GlobSet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ctx_tool  # noqa: E402

OLD = 1_700_000_000  # a modification time well in the past: not "racy"
EMBEDDER = HashingEmbedder(16)


def write(path: Path, content: str | bytes, mtime: int | None = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def make_tree(root: Path) -> Path:
    """A folder with nested Markdown and text, files of other kinds, and the always-excluded folders."""
    write(root / "README.md", "# Project\n\nHow the project is laid out.")
    write(root / "guides" / "deploy.md", "# Deploy\n\nRun the deploy script.\n\nThen watch the logs.")
    write(root / "guides" / "deep" / "nested" / "notes.txt", "Notes from far below.", OLD + 5)
    write(root / "guides" / "image.png", b"\x89PNG\r\n\x1a\n")
    write(root / "script.py", "print('not selected')")
    write(root / ".git" / "HEAD.md", "ref: refs/heads/main")
    write(root / "target" / "out.md", "a build output")
    write(root / "sub" / "node_modules" / "pkg" / "readme.md", "a dependency")
    write(root / "sub" / "target.md", "a file named target, kept")
    return root


def sync(root: Path, **options: Any) -> folder_module.SyncReport:
    options.setdefault("embedder", EMBEDDER)
    return sync_folder(root, **options)


def rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return ctx_tool.table_rows(conn)
    finally:
        conn.close()


def documents(path: Path) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return {r["source_id"]: dict(r) for r in conn.execute("SELECT * FROM documents")}
    finally:
        conn.close()


def assert_clean(path: Path) -> None:
    """integrity.check on a connection of its own.

    ctx_models.connect() reads the file's header with open()/close(), and closing any descriptor
    of a file drops every POSIX lock the process holds on it, SQLite's included: the tests that
    run other processes call this while no other connection to the file is open here.
    """
    db = ctx_models.connect(path, bind_models=False, create=False)
    try:
        report = integrity.check(db)
        assert report.clean, report.findings
    finally:
        db.close()


def ctx_connector_documents(root: Path, name: str) -> dict[str, dict[str, Any]]:
    """What ctx's filesystem connector writes for a folder with its default globs, worked out
    here without ctx_models: every regular file (links are not followed) ending in .md or .txt
    outside .git, target and node_modules folders, read as UTF-8 (other files are skipped), its
    path relative to the root as source_id, file:// and its path as source_url, its name as
    title, its mtime in whole seconds as created_at and updated_at, text/plain, metadata {}.
    """
    found = {}
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            path = Path(dirpath) / filename
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() or not filename.endswith((".md", ".txt")):
                continue
            if {".git", "target", "node_modules"} & set(rel.split("/")[:-1]):
                continue
            try:
                body = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue
            mtime = int(path.stat().st_mtime)
            source = f"filesystem:{name}"
            found[rel] = {
                "source": source,
                "source_id": rel,
                "source_url": f"file://{path}",
                "title": filename,
                "author": None,
                "created_at": mtime,
                "updated_at": mtime,
                "content_type": "text/plain",
                "body": body,
                "metadata_json": {},
                "raw_json": None,
                "dedup_hash": ctx_tool.dedup_hash(source, rel, mtime, body),
            }
    return found


# --------------------------------------------------------------------------- documents as ctx's


def test_documents_are_row_for_row_what_ctx_connector_writes(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "docs")
    write(root / "latin1.txt", "caf\xe9".encode("latin-1"))
    report = sync(root)
    expected = ctx_connector_documents(root, "docs")
    stored = documents(db_path)
    assert set(stored) == set(expected) == {
        "README.md", "guides/deploy.md", "guides/deep/nested/notes.txt", "sub/target.md"
    }
    for source_id, want in expected.items():
        got = dict(stored[source_id])
        metadata = json.loads(got.pop("metadata_json"))
        # Ours is only the stat we read the file at, under our own key.
        assert metadata.pop(STAT_KEY) == {
            "size": (root / source_id).stat().st_size,
            "mtime_ns": (root / source_id).stat().st_mtime_ns,
        }
        assert metadata == want.pop("metadata_json")
        got.pop("id")
        assert got == want
    # Chunks per the contract, each with its FTS row and vector; the checkpoint is the newest mtime.
    conn = sqlite3.connect(db_path)
    for doc_id, body in conn.execute("SELECT id, body FROM documents"):
        texts = [t for (t,) in conn.execute(
            "SELECT text FROM chunks WHERE document_id = ? ORDER BY chunk_index", (doc_id,))]
        assert texts == chunk_text(body)
    assert conn.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0] == report.vectors == 4
    assert conn.execute("SELECT source, cursor FROM checkpoints").fetchall() == [
        ("filesystem:docs", str(OLD + 5))
    ]
    conn.close()
    assert (report.created, report.updated, report.unchanged) == (4, 0, 0)
    assert report.skipped == [("latin1.txt", "not UTF-8: invalid byte at offset 3")]
    assert_clean(db_path)


def test_a_folder_ctx_synced_is_taken_over_without_rewriting_chunks(
    db: Any, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "docs")
    conn = sqlite3.connect(db_path, isolation_level=None)
    for doc in ctx_connector_documents(root, "docs").values():  # what ctx's sync wrote
        doc_id = f"ctx-{doc['source_id']}"
        conn.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (doc_id, doc["source"], doc["source_id"], doc["source_url"], doc["title"], None,
             doc["created_at"], doc["updated_at"], doc["content_type"], doc["body"], "{}", None,
             doc["dedup_hash"]),
        )
        for index, text in enumerate(chunk_text(doc["body"])):
            conn.execute("INSERT INTO chunks VALUES (?,?,?,?,?)",
                         (f"{doc_id}-{index}", doc_id, index, text, ctx_tool.sha256(text)))
            conn.execute("INSERT INTO chunks_fts VALUES (?,?,?)", (f"{doc_id}-{index}", doc_id, text))
    ctx_tool.ctx_set_checkpoint(conn, "filesystem:docs", OLD + 5)
    chunks_before = conn.execute("SELECT * FROM chunks ORDER BY id").fetchall()
    conn.close()

    report = sync(root, embed=False)
    # Same content: nothing re-chunked, only our stat key added to each document.
    assert (report.created, report.updated, report.unchanged, report.reread) == (0, 0, 4, 4)
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT * FROM chunks ORDER BY id").fetchall() == chunks_before
    assert all(i.startswith("ctx-") for (i,) in conn.execute("SELECT id FROM documents"))
    conn.close()
    monkeypatch.setattr(folder_module, "read_file", None)  # the next run reads nothing
    assert sync(root, embed=False).reread == 0
    assert_clean(db_path)


def test_name_and_url_follow_the_folder(db: Any, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write(tmp_path / "notes" / "a.md", "alpha").parent
    monkeypatch.chdir(tmp_path)
    sync(Path("notes"), name="team")  # a relative path: the URL still holds the absolute one
    (doc,) = documents(db_path).values()
    assert doc["source"] == "filesystem:team"
    assert doc["source_url"] == f"file://{root / 'a.md'}"


# --------------------------------------------------------------------------- what is read


def test_globs_follow_ctx_and_defaults_stay_excluded(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "docs")
    report = sync(root, include=["guides/**", "*.py", "**/HEAD.md"], exclude=["**/deep/**", "**/*.png"])
    # "guides/**" takes everything below guides; "*.py" matches at any depth (ctx's globset lets *
    # cross /); .git stays excluded even when an include names it.
    assert set(documents(db_path)) == {"guides/deploy.md", "script.py"}
    assert report.skipped == []


def test_glob_semantics() -> None:
    assert GlobSet(["**/*.md"]).matches("a.md") and GlobSet(["**/*.md"]).matches("x/y/a.md")
    assert GlobSet(["x/**"]).matches("x/a/b") and not GlobSet(["x/**"]).matches("x")
    assert GlobSet(["a/**/b"]).matches("a/b") and GlobSet(["a/**/b"]).matches("a/x/y/b")
    assert GlobSet(["*.{md,txt}"]).matches("n/a.txt") and not GlobSet(["*.{md,txt}"]).matches("a.rst")
    assert GlobSet(["[!a]?.md"]).matches("bc.md") and not GlobSet(["[!a]?.md"]).matches("ab.md")
    assert GlobSet(["\\*.md"]).matches("*.md") and not GlobSet(["\\*.md"]).matches("a.md")
    for bad in ("a**", "[abc", "{a,b", "x\\"):
        with pytest.raises(ValidationError):
            GlobSet([bad])


def test_symlinks_are_not_followed_unless_asked(db: Any, db_path: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "secret.md", "outside the root")
    root = tmp_path / "docs"
    write(root / "real" / "inside.md", "inside the root")
    (root / "link-to-file.md").symlink_to(root / "real" / "inside.md")
    (root / "link-to-dir").symlink_to(root / "real")
    (root / "link-out.md").symlink_to(outside / "secret.md")
    (root / "link-out-dir").symlink_to(outside)
    (root / "real" / "loop").symlink_to(root)
    (root / "dangling.md").symlink_to(tmp_path / "nowhere.md")

    report = sync(root)
    assert set(documents(db_path)) == {"real/inside.md"}
    reasons = dict(report.skipped)
    assert set(reasons) == {"link-to-file.md", "link-to-dir", "link-out.md", "link-out-dir",
                            "real/loop", "dangling.md"}
    assert all(r.startswith("symlink not followed") for r in reasons.values())

    report = sync(root, follow_symlinks=True)
    assert set(documents(db_path)) == {
        "real/inside.md", "link-to-file.md", "link-to-dir/inside.md", "link-out.md",
        "link-out-dir/secret.md",
    }
    reasons = dict(report.skipped)
    assert reasons["dangling.md"] == "broken symlink"
    assert reasons["real/loop"].startswith("symlink loop")
    assert reasons["link-to-dir/loop"].startswith("symlink loop")
    out = documents(db_path)["link-out.md"]
    assert out["body"] == "outside the root" and out["source_url"] == f"file://{root / 'link-out.md'}"


def test_non_utf8_nul_empty_and_too_large_files(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root / "empty.md", "")
    write(root / "latin1.md", "na\xefve".encode("latin-1"))
    write(root / "nul.txt", b"abc\x00def")
    write(root / "big.txt", "x" * 2000)
    write(root / "bom.txt", "\ufeffwith a byte order mark\r\nand CRLF")
    report = sync(root, max_bytes=1000)
    stored = documents(db_path)
    # An empty file is a document with an empty body and one empty chunk, as ctx stores it.
    assert stored["empty.md"]["body"] == ""
    conn = sqlite3.connect(db_path)
    assert conn.execute(
        "SELECT text FROM chunks WHERE document_id = ?", (stored["empty.md"]["id"],)
    ).fetchall() == [("",)]
    conn.close()
    # Text is kept as it is: a BOM and CRLF are the file's.
    assert stored["bom.txt"]["body"] == "\ufeffwith a byte order mark\r\nand CRLF"
    assert set(stored) == {"empty.md", "bom.txt"}
    assert report.skip_reasons() == {"not UTF-8": 1, "contains NUL": 1, "too large": 1}
    assert "1 skipped" not in report.summary() and "3 skipped" in report.summary()
    assert_clean(db_path)


# --------------------------------------------------------------------------- incremental


def test_second_run_reads_nothing_and_writes_nothing(
    db: Any, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "docs")
    sync(root)
    before = rows(db_path)

    def no_reads(*args: Any) -> None:
        raise AssertionError("a file was read")

    monkeypatch.setattr(folder_module, "read_file", no_reads)
    report = sync(root)
    assert (report.created, report.updated, report.unchanged, report.reread) == (0, 0, 4, 0)
    assert (report.chunks, report.vectors) == (0, 0)
    assert rows(db_path) == before  # every row, rowids included, and the checkpoint's time


def test_recently_modified_file_is_compared_by_content_next_time(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root / "fresh.md", "just written", mtime=None)  # its mtime is now: may change unseen
    sync(root)
    (doc,) = documents(db_path).values()
    assert json.loads(doc["metadata_json"]) == {}  # no stat recorded for a racy file
    os.utime(root / "fresh.md", (OLD, OLD))
    with open(root / "fresh.md", "r+") as fh:  # same size, same mtime as below: unseen by stat
        fh.write("JUST")
    os.utime(root / "fresh.md", (OLD, OLD))
    report = sync(root)
    assert report.updated == 1
    assert documents(db_path)["fresh.md"]["body"] == "JUST written"


def test_modified_deleted_and_pruned_files(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "docs")
    sync(root)
    write(root / "guides" / "deploy.md", "# Deploy\n\nRun the NEW deploy script.", OLD + 100)
    (root / "README.md").unlink()
    write(root / "added.md", "a new file")
    report = sync(root)
    assert (report.created, report.updated, report.unchanged) == (1, 1, 2)
    assert report.vanished == ["README.md"] and report.pruned == 0
    assert "1 vanished (kept; --prune removes them)" in report.summary()
    stored = documents(db_path)
    assert "README.md" in stored and "NEW deploy" in stored["guides/deploy.md"]["body"]
    assert stored["guides/deploy.md"]["updated_at"] == OLD + 100
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT cursor FROM checkpoints").fetchone() == (str(OLD + 100),)
    conn.close()

    report = sync(root, prune=True)
    assert report.pruned == 1 and report.changes == [("pruned", "README.md")]
    assert "README.md" not in documents(db_path)
    conn = sqlite3.connect(db_path)
    orphans = conn.execute(
        "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
    ).fetchone()
    conn.close()
    assert orphans == (0,)
    assert_clean(db_path)


def test_prune_refuses_to_empty_a_source_when_the_folder_is_empty(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "docs")
    sync(root)
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file():
            path.unlink()
    for dry_run in (True, False):
        with pytest.raises(ValidationError, match="refusing to prune all 4 documents"):
            sync(root, prune=True, dry_run=dry_run)
    assert len(documents(db_path)) == 4
    assert sync(root).vanished == sorted(documents(db_path))  # without --prune: reported, kept


def test_unchanged_chunks_keep_their_vectors(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    paragraphs = [f"Paragraph {i} " + "word " * 30 for i in range(4)]
    write(root / "long.md", "\n\n".join(paragraphs))
    sync(root, max_tokens=45)  # one paragraph per chunk

    def vectors() -> dict[str, bytes]:
        conn = sqlite3.connect(db_path)
        try:
            return dict(conn.execute(
                "SELECT c.text, v.embedding FROM chunks c JOIN chunk_vectors v ON v.chunk_id = c.id"
            ))
        finally:
            conn.close()

    first = vectors()
    assert len(first) == 4
    paragraphs[2] = "Paragraph two was rewritten entirely."
    write(root / "long.md", "\n\n".join(paragraphs), OLD + 10)

    calls: list[list[str]] = []
    counting = HashingEmbedder(16)
    original = counting.embed
    counting.embed = lambda texts: calls.append(list(texts)) or original(texts)  # type: ignore[method-assign]
    report = sync(root, max_tokens=45, embedder=counting)
    assert report.updated == 1 and (report.vectors, report.reused) == (4, 3)
    assert calls == [["Paragraph two was rewritten entirely."]]
    second = vectors()
    for text in paragraphs:
        if text in first:
            assert second[text.strip()] == first[text.strip()]
    assert_clean(db_path)


def test_dry_run_reports_and_writes_nothing(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "docs")
    sync(root)
    before = rows(db_path)
    write(root / "guides" / "deploy.md", "changed", OLD + 50)
    write(root / "new.md", "brand new")
    (root / "README.md").unlink()
    report = sync(root, dry_run=True, prune=True)
    assert (report.created, report.updated, report.unchanged, report.pruned) == (1, 1, 2, 1)
    assert report.changes == [
        ("updated", "guides/deploy.md"), ("created", "new.md"), ("pruned", "README.md")
    ]
    assert report.vanished == ["README.md"]
    assert "dry run, nothing written" in report.summary()
    assert rows(db_path) == before


def test_dry_run_with_prune_lists_the_documents_that_would_go(
    db: Any, db_path: Path, tmp_path: Path, run_cli
) -> None:
    root = make_tree(tmp_path / "docs")
    sync(root)
    (root / "README.md").unlink()
    before = rows(db_path)
    code, out, err = run_cli("sync", str(root), "--db", str(db_path), "--dry-run", "--prune")
    assert code == 0, err
    assert "  would prune README.md" in out and "1 to prune" in out
    assert rows(db_path) == before


def test_file_changing_while_read_is_read_again_or_skipped(
    db: Any, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "docs"
    path = write(root / "busy.md", "first version")
    real_read = read_module._read_all
    appended = []

    def read_then_change(fd: int, limit: int) -> bytes:
        data = real_read(fd, limit)
        if len(appended) < times:
            appended.append(1)
            with open(path, "a") as fh:  # another program writes while we read
                fh.write(" and more")
        return data

    monkeypatch.setattr(read_module, "_read_all", read_then_change)
    times = 1
    report = sync(root)
    assert report.created == 1
    assert documents(db_path)["busy.md"]["body"] == "first version and more"

    appended.clear()
    times = 10
    write(root / "busy.md", "second version", OLD + 1)
    report = sync(root)
    assert report.skip_reasons() == {"changing while read": 1}
    assert documents(db_path)["busy.md"]["body"] == "first version and more"  # left as it was


# --------------------------------------------------------------------------- PDF and Office files


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` in Helvetica, written by hand with a correct xref table."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
A = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
S = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def office_file(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        for name, xml in members.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + xml)
    return buffer.getvalue()


DOCX = office_file({
    "word/document.xml": f"<w:document {W}><w:body>"
    '<w:p><w:r><w:t xml:space="preserve">Quarterly </w:t></w:r><w:r><w:t>roadmap</w:t></w:r></w:p>'
    "<w:p></w:p><w:p><w:r><w:t>Hiring &amp; budget</w:t><w:tab/><w:t>Q3</w:t></w:r></w:p>"
    "</w:body></w:document>"
})
PPTX = office_file({
    f"ppt/slides/slide{n}.xml": f"<p:sld {A} xmlns:p=\"p\"><p:cSld><a:p><a:r><a:t>Slide {n}</a:t></a:r></a:p>"
    f"<a:p><a:r><a:t>point {n}</a:t></a:r></a:p></p:cSld></p:sld>"
    for n in (10, 2)
})
XLSX = office_file({
    "xl/sharedStrings.xml": f"<sst {S}><si><t>region</t></si><si><t></t></si><si><r><t>No</t></r><r><t>rth</t></r></si></sst>",
    "xl/worksheets/sheet1.xml": f"<worksheet {S}><sheetData>"
    '<row><c t="s"><v>0</v></c><c><v>42.5</v></c></row>'
    '<row><c t="s"><v>2</v></c><c t="inlineStr"><is><t>inline</t></is></c><c t="b"><v>1</v></c></row>'
    "</sheetData></worksheet>",
})


def test_extraction_of_each_format() -> None:
    ctype = folder_module.content_type_of
    assert extract_text(minimal_pdf("Hello from a PDF"), ctype("a.pdf")).strip() == "Hello from a PDF"
    assert extract_text(DOCX, ctype("a.docx")) == "Quarterly roadmap\n\nHiring & budget\tQ3"
    assert extract_text(PPTX, ctype("a.pptx")) == "Slide 2\npoint 2\n\nSlide 10\npoint 10"
    assert extract_text(XLSX, ctype("a.xlsx")) == "region\t42.5\nNorth\tinline\tTRUE"


def test_pdf_and_docx_in_a_folder(db: Any, db_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root / "report.pdf", minimal_pdf("Revenue grew in the third quarter"))
    write(root / "plans" / "roadmap.docx", DOCX)
    write(root / "broken.docx", b"PK\x03\x04 not really a zip")
    write(root / "entity.docx", office_file({
        "word/document.xml": '<!DOCTYPE d [<!ENTITY x "boom">]><d>&x;</d>'
    }))
    write(root / "notes.md", "plain notes")
    report = sync(root, include=["**/*.pdf", "**/*.docx"])
    stored = documents(db_path)
    assert set(stored) == {"report.pdf", "plans/roadmap.docx"}
    assert stored["report.pdf"]["content_type"] == "application/pdf"
    assert "Revenue grew in the third quarter" in stored["report.pdf"]["body"]
    assert stored["plans/roadmap.docx"]["content_type"] == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert stored["plans/roadmap.docx"]["body"] == "Quarterly roadmap\n\nHiring & budget\tQ3"
    assert report.skip_reasons() == {"cannot extract": 2}
    assert "document type" in dict(report.skipped)["entity.docx"]
    ctx_models.connect(db_path)
    hits = search.hybrid_search("revenue quarter", mode="keyword")
    assert [h.source_id for h in hits] == ["report.pdf"]


# --------------------------------------------------------------------------- the command line


def test_cli_sync_then_search_then_nothing_to_do(run_cli, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "docs")
    db_path = tmp_path / "store" / "ctx.sqlite"
    code, out, err = run_cli("sync", str(root), "--db", str(db_path), "--dims", "32", "-q")
    assert code == 0, err
    assert out.splitlines()[0] == f"created {db_path} (schema version 1)"
    assert out.splitlines()[-1].startswith(
        "filesystem:docs: 4 files seen, 4 created, 0 updated, 0 unchanged, 0 skipped, 0 pruned; "
        "4 chunks and 4 vectors written in "
    )
    code, out, err = run_cli("search", "deploy script", "--db", str(db_path))
    assert code == 0 and "guides/deploy.md" in out
    code, out, err = run_cli("sync", str(root), "--db", str(db_path))  # the store's model
    assert code == 0
    assert ", 0 created, 0 updated, 4 unchanged, 0 skipped, 0 pruned; 0 chunks and 0 vectors" in out
    write(root / "guides" / "deploy.md", "changed", OLD + 9)
    code, out, err = run_cli("sync", str(root), "--db", str(db_path), "--dry-run")
    assert code == 0 and "  would update guides/deploy.md" in out
    assert documents(db_path)["guides/deploy.md"]["body"] != "changed"
    conn = sqlite3.connect(db_path)
    assert {m for (m,) in conn.execute("SELECT DISTINCT model FROM embeddings")} == {"hashing-v1-32"}
    conn.close()
    # A dry run against a store that does not exist yet: everything to create, no file made.
    fresh = tmp_path / "none" / "ctx.sqlite"
    code, out, err = run_cli("sync", str(root), "--db", str(fresh), "--dry-run")
    assert code == 0 and "4 to create" in out and "  would create README.md" in out
    assert not fresh.parent.exists()


def test_store_model_that_cannot_embed_here(run_cli, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "docs")
    db_path = tmp_path / "ctx.sqlite"
    conn = ctx_tool.create_contract_db(str(db_path))
    ctx_tool.ctx_write_document(conn, "jira:ops", "OPS-1", ["a ticket"], vectors=[[0.5, 0.5]],
                                model="openai-text-embedding-3-small")
    conn.close()
    code, out, err = run_cli("sync", str(root), "--db", str(db_path))
    assert code == 1 and err.count("\n") == 1
    assert "the store's vectors are of model 'openai-text-embedding-3-small'" in err
    assert "--no-embed" in err
    code, out, err = run_cli("sync", str(root), "--db", str(db_path), "--no-embed")
    assert code == 0 and "4 created" in out and "0 vectors" in out


def test_cli_errors_are_one_line(run_cli, tmp_path: Path) -> None:
    db_path = str(tmp_path / "ctx.sqlite")
    code, out, err = run_cli("sync", str(tmp_path / "missing"), "--db", db_path)
    assert code == 1 and err.count("\n") == 1 and "does not exist" in err
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    code, out, err = run_cli("sync", str(tmp_path / "a"), str(tmp_path / "b"), "--name", "x", "--db", db_path)
    assert code == 1 and "--name" in err and err.count("\n") == 1
    for size in ("0", "nan", "inf"):
        code, out, err = run_cli("sync", str(tmp_path / "a"), "--max-size", size, "--db", db_path)
        assert code == 1 and "--max-size must be a positive number of MB" in err
    code, out, err = run_cli("sync", str(tmp_path / "a"), "--include", "a**", "--db", db_path)
    assert code == 1 and "'**' must be a whole path component" in err


def test_skips_are_listed(run_cli, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    for i in range(12):
        write(root / f"bad{i:02}.txt", b"\xff")
    code, out, err = run_cli("sync", str(root), "--db", str(tmp_path / "c.sqlite"), "--dims", "8")
    assert code == 0
    assert "  skipped bad00.txt: not UTF-8: invalid byte at offset 0" in out
    assert "  ... and 2 more skipped (-v lists them all)" in out
    assert "12 skipped (12 not UTF-8)" in out


def test_readme_sync_commands_run_as_written(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    section = readme.split("Filling a store from folders\n", 1)[1].split("\nWhat it writes", 1)[0]
    block = re.search(r"\.\. code-block:: shell\n\n((?:    .*\n)+)", section)
    assert block is not None
    commands = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)  # the quick start's store: .ctx/data/ctx.sqlite here
    code, _, err = run_cli("seed", "--dims", "32")  # as the quick start leaves it
    assert code == 0, err
    demo = set(documents(tmp_path / ".ctx" / "data" / "ctx.sqlite"))
    outputs = []
    for argv in commands:
        assert argv[0] == "ctx-models"
        code, out, err = run_cli(*argv[1:])
        assert code == 0, (argv, err)
        outputs.append(out)
    assert "filesystem:contract: 1 file seen, 1 created" in outputs[0]
    assert "storage-contract.md" in outputs[1]
    assert ", 0 created, 0 updated, 1 unchanged" in outputs[2]
    assert "dry run, nothing written" in outputs[3] and "0 to prune" in outputs[3]
    assert ", 0 created, 0 updated, 1 unchanged" in outputs[4]
    # The demo's documents are all there, beside the contract.
    assert set(documents(tmp_path / ".ctx" / "data" / "ctx.sqlite")) == demo | {"storage-contract.md"}


# --------------------------------------------------------------------------- faults, processes


def spawn_sync(root: Path, db_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ctx_models", "sync", str(root), "--db", str(db_path),
         "--dims", "64", "-q", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def big_folder(root: Path, files: int, paragraphs: int = 40) -> Path:
    for i in range(files):
        body = "\n\n".join(f"File {i} paragraph {p}: " + "lorem ipsum dolor " * 12 for p in range(paragraphs))
        write(root / f"d{i % 10}" / f"file{i:05}.md", body)
    return root


def whole_documents(db_path: Path) -> int:
    """Every stored document has its chunks (the contract's chunking of its body), each with a vector."""
    conn = sqlite3.connect(db_path)
    try:
        docs = conn.execute("SELECT id, body FROM documents").fetchall()
        for doc_id, body in docs:
            got = conn.execute(
                "SELECT c.text, v.chunk_id IS NOT NULL FROM chunks c "
                "LEFT JOIN chunk_vectors v ON v.chunk_id = c.id WHERE c.document_id = ? "
                "ORDER BY c.chunk_index", (doc_id,)
            ).fetchall()
            assert [t for t, _ in got] == chunk_text(body) and all(v for _, v in got)
        return len(docs)
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_killed_in_the_middle_then_a_clean_second_run(tmp_path: Path, signum: int) -> None:
    root = big_folder(tmp_path / "docs", 400)
    db_path = tmp_path / "ctx.sqlite"
    proc = spawn_sync(root, db_path, "--batch-size", "4")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if db_path.exists():
            # Closed at once, every time: a connection left open here would lose its locks when
            # ctx_models.connect() below reads the file's header (see assert_clean).
            conn = sqlite3.connect(db_path, timeout=5)
            try:
                count = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            except sqlite3.OperationalError:  # the schema is not there yet
                count = 0
            finally:
                conn.close()
            if count >= 8:
                break
        time.sleep(0.01)
    assert proc.poll() is None, "the sync ended before it could be killed mid-way"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    if signum == signal.SIGINT:
        assert proc.returncode == 130 and err == "interrupted: what was committed is kept\n", err
    assert_clean(db_path)
    committed = whole_documents(db_path)
    assert 8 <= committed < 400

    proc = spawn_sync(root, db_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"{400 - committed} created, 0 updated, {committed} unchanged" in out
    assert whole_documents(db_path) == 400
    check = subprocess.run([sys.executable, "-m", "ctx_models", "check", "--db", str(db_path)],
                           capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0 and "result        clean" in check.stdout, check.stdout


@pytest.mark.slow
def test_two_syncs_at_once_never_corrupt(tmp_path: Path) -> None:
    """Three at once: one syncs, one refuses (or syncs, if it came after), one waits its turn."""
    root = big_folder(tmp_path / "docs", 300)
    db_path = tmp_path / "ctx.sqlite"
    schema = ctx_models.connect(db_path, bind_models=False)
    ctx_models.run_migrations(schema)
    schema.close()
    procs = [spawn_sync(root, db_path, "--batch-size", "4"), spawn_sync(root, db_path),
             spawn_sync(root, db_path, "--wait")]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0 or (code == 1 and err.startswith("error: another sync is writing to")), (
            out, err)
        assert "Traceback" not in err
    assert results[2][2] == 0  # the one that waits always runs
    created = sum(int(re.search(r"(\d+) created", out).group(1)) for out, _, code in results if code == 0)
    assert created == 300  # every file created once, by whichever sync got there first
    assert whole_documents(db_path) == 300
    assert_clean(db_path)


@pytest.mark.slow
def test_a_held_lock_refuses_or_waits(db_path: Path, tmp_path: Path, run_cli) -> None:
    root = make_tree(tmp_path / "docs")
    database = ctx_models.connect(db_path)
    ctx_models.run_migrations(database)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, ctx_models\n"
         "from ctx_models.sync import sync_lock\n"
         "db = ctx_models.connect(sys.argv[1])\n"
         "with sync_lock(db):\n"
         "    print('locked', flush=True)\n"
         "    sys.stdin.read()\n",
         str(db_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(SyncInProgressError, match="another sync is writing to"):
            sync(root)
        # Closed before the command opens its own (see assert_clean): the sync that waits, in
        # another process, must see this process's connection and its locks as they are.
        database.close()
        code, out, err = run_cli("sync", str(root), "--db", str(db_path), "--dims", "16")
        assert code == 1 and err.startswith("error: another sync is writing to") and err.count("\n") == 1
        assert documents(db_path) == {}
        waiting = spawn_sync(root, db_path, "--wait")
        assert waiting.poll() is None  # cannot have finished: the lock is held
        holder.stdin.close()  # type: ignore[union-attr]
        holder.wait(timeout=30)
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        assert len(documents(db_path)) == 4
    finally:
        holder.kill()
        holder.wait()


# --------------------------------------------------------------------------- both backends


@pytest.mark.backends("sqlite", "postgres")
def test_sync_on_each_backend(db: Any, raw: Any, tmp_path: Path, backend: str) -> None:
    root = make_tree(tmp_path / "docs")
    first = sync(root)
    again = sync(root)
    (root / "README.md").unlink()
    pruned = sync(root, prune=True)
    assert (first.created, again.unchanged, again.chunks, pruned.pruned) == (4, 4, 0, 1)
    got = sorted(r[0] for r in raw.execute("SELECT source_id FROM documents").fetchall())
    assert got == ["guides/deep/nested/notes.txt", "guides/deploy.md", "sub/target.md"]
    assert integrity.check(db).clean


@pytest.mark.backends("postgres")
def test_postgres_advisory_lock_refuses_a_second_sync(db: Any, raw: Any, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "docs")
    key = "hashtext('ctx_models.sync:' || current_schema())"
    raw.execute(f"SELECT pg_advisory_lock({key})")  # another session holds the store's sync lock
    with pytest.raises(SyncInProgressError, match="another sync is writing to"):
        sync(root)
    raw.execute(f"SELECT pg_advisory_unlock({key})")
    assert sync(root).created == 4


def test_sync_takes_model_path_as_embed_seed_and_search_do(tmp_path: Path, run_cli) -> None:
    # sync's own error advised --model-path, which sync did not take.
    from tiny_models import make_model_dir

    model, _ = make_model_dir(tmp_path / "all-minilm-l6-v2", dims=384)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nPromote the standby.")
    db_path = tmp_path / "ctx.sqlite"
    code, _, err = run_cli("sync", str(docs), "--no-embed", "--model-path", str(model), "--db", str(db_path))
    assert code == 1 and "--no-embed writes no vectors" in err and not db_path.exists(), err
    code, out, err = run_cli("sync", str(docs), "--model-path", str(model), "--db", str(db_path))
    assert code == 0, err
    assert ctx_models.store.stats().models == {"all-minilm-l6-v2": 1}
    ctx_models.bound_database().close()
