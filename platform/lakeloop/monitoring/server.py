"""The monitoring reports over HTTP, so the UI opens an Evidently report in one click.

Browsers will not follow a ``file://`` link from the Dagster UI, so each report's metadata
carries an ``http://`` link to this small read-only server (``lakeloop reports``, started by
``make dev``). It serves only ``.html`` and ``.json`` files below ``<use case>/monitoring/``
of the data root, on 127.0.0.1 by default; any other path, or one that leaves that tree,
is a 404.
"""

from __future__ import annotations

import http.server
import threading
import urllib.parse
from functools import partial
from pathlib import Path

SUFFIXES = (".html", ".json")
DEFAULT_PORT = 8765


def report_url(base_url: str, data_root: Path | str, path: Path | str) -> str | None:
    """The report's link, or None when it is not below the data root."""
    try:
        relative = Path(path).resolve().relative_to(Path(data_root).resolve())
    except ValueError:
        return None
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(relative.as_posix())}"


def servable(root: Path, url_path: str) -> Path | None:
    """The file a request path names, if the server may send it."""
    parts = [p for p in urllib.parse.unquote(urllib.parse.urlsplit(url_path).path).split("/")
             if p]
    if len(parts) < 3 or parts[1] != "monitoring" or \
            any(p in (".", "..") or "\x00" in p or "\\" in p for p in parts):
        return None
    try:
        # Resolved (symlinks followed), it must still be inside <use case>/monitoring.
        allowed = root.joinpath(parts[0], "monitoring").resolve()
        candidate = root.joinpath(*parts).resolve()
    except (OSError, ValueError):
        return None
    if not candidate.is_relative_to(allowed) or candidate.suffix not in SUFFIXES:
        return None
    return candidate if candidate.is_file() else None


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "lakeloop-reports"

    def __init__(self, *args, root: Path, **kwargs):
        self.root = root
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 - the http.server protocol
        path = servable(self.root, self.path)
        try:
            body = path.read_bytes() if path is not None else None
        except OSError:
            body = None
        if path is None or body is None:
            self.send_error(404, "no such report")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8" if path.suffix == ".html"
                         else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


def make_server(root: Path, host: str = "127.0.0.1",
                port: int = DEFAULT_PORT) -> http.server.ThreadingHTTPServer:
    return http.server.ThreadingHTTPServer((host, port), partial(_Handler, root=Path(root)))


def serve_in_background(root: Path, host: str = "127.0.0.1",
                        port: int = 0) -> http.server.ThreadingHTTPServer:
    server = make_server(root, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
