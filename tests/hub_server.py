"""A local HTTP server that answers like the Hugging Face Hub's ``resolve`` endpoint (tests only).

It knows repositories, branches or tags (``refs``) and commits, and answers a missing repository,
revision or file with the status and ``X-Error-Code`` header the Hub sends, so huggingface_hub raises
its real ``RepositoryNotFoundError``, ``RevisionNotFoundError`` or ``EntryNotFoundError``.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class FakeHub:
    """Serves ``files[(repo_id, revision, filename)] = bytes`` at /{repo_id}/resolve/{revision}/{filename}.

    ``refs[(repo_id, branch_or_tag)] = commit`` makes a branch or tag point at a commit of ``files``.
    """

    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.refs: dict[tuple[str, str], str] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _lookup(self) -> tuple[str, bytes] | str:
                """(commit, file bytes), or the Hub's X-Error-Code for what is missing."""
                path = unquote(self.path.split("?")[0].lstrip("/"))
                if "/resolve/" not in path:
                    return "RepoNotFound"
                repo_id, rest = path.split("/resolve/", 1)
                revision, filename = rest.rsplit("/", 1) if "/" in rest else (rest, "")
                commit = hub.refs.get((repo_id, revision), revision)
                if not any(key[0] == repo_id for key in hub.files):
                    return "RepoNotFound"
                if not any(key[:2] == (repo_id, commit) for key in hub.files):
                    return "RevisionNotFound"
                data = hub.files.get((repo_id, commit, filename))
                return (commit, data) if data is not None else "EntryNotFound"

            def _headers(self, revision: str, data: bytes) -> None:
                self.send_response(200)
                self.send_header("X-Repo-Commit", revision)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def _not_found(self, code: str) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", {"RepoNotFound": "Repository not found",
                                                     "RevisionNotFound": "Invalid rev id"}.get(code, "Entry not found"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802 (http.server API)
                hub.requests.append(("HEAD", self.path))
                found = self._lookup()
                if isinstance(found, str):
                    return self._not_found(found)
                self._headers(*found)

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append(("GET", self.path))
                found = self._lookup()
                if isinstance(found, str):
                    return self._not_found(found)
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
