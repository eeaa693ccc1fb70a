"""A local HTTP server that answers as the Hugging Face hub does for file downloads.

``GET``/``HEAD /<org>/<name>/resolve/<revision>/<path>`` serve the files of one
folder (for any repository), with the headers huggingface_hub reads; anything
else is 404 with ``X-Error-Code: EntryNotFound``. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path


class HubStandIn:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[tuple[str, str]] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _path(self) -> Path | None:
                parts = self.path.split("?")[0].split("/")
                if len(parts) < 6 or parts[3] != "resolve":
                    return None
                candidate = stand_in.folder.joinpath(*parts[5:])
                return candidate if candidate.is_file() else None

            def _answer(self, body: bool) -> None:
                stand_in.requests.append((self.command, self.path))
                path = self._path()
                if path is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", "0" * 40)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
