"""A local HTTP server that answers like the Hugging Face Hub's ``resolve`` endpoint (tests only)."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    """Serves ``files[(repo_id, revision, filename)] = bytes`` at /{repo_id}/resolve/{revision}/{filename}."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _lookup(self) -> tuple[str, bytes] | None:
                path = self.path.split("?")[0].lstrip("/")
                if "/resolve/" not in path:
                    return None
                repo_id, rest = path.split("/resolve/", 1)
                revision, filename = rest.split("/", 1)
                data = hub.files.get((repo_id, revision, filename))
                return (revision, data) if data is not None else None

            def _headers(self, revision: str, data: bytes) -> None:
                self.send_response(200)
                self.send_header("X-Repo-Commit", revision)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def _not_found(self) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802 (http.server API)
                hub.requests.append(("HEAD", self.path))
                found = self._lookup()
                if found is None:
                    return self._not_found()
                self._headers(*found)

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append(("GET", self.path))
                found = self._lookup()
                if found is None:
                    return self._not_found()
                self._headers(*found)
                self.wfile.write(found[1])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
