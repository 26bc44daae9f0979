"""JSON POSTs from one hop of the inference graph to the next, on keep-alive connections of
the standard library's ``http.client``.

Each request through the graph makes three such calls (executor -> transformer, transformer
-> feature server, executor -> model). ``requests`` spent about 0.75 ms of its own on each of
them here (its session merges settings, hooks and cookies and wraps urllib3's pool); a bare
``HTTPConnection`` kept per thread spends about a tenth of that. The semantics are the ones
the hops had with ``requests``: one timeout for connecting and for each read; a connection
that fails before any answer (a pooled keep-alive connection the component had just closed,
or a component that restarted) is tried once more on a new one, and a timeout is not (it
would double the caller's wait).
"""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlsplit

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class Unavailable(Exception):
    """The next hop did not answer: ``kind`` says how (``Timeout``, ``ConnectionRefusedError``,
    ``RemoteDisconnected``...), for the caller's message."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class Upstream:
    """``post(url, body) -> (status, answer bytes)``. Connections (http or https, the
    system's certificates) are per thread and per host, made on first use (after a server's
    fork) and kept while the server keeps them."""

    def __init__(self, timeout_s: float):
        self.timeout_s = float(timeout_s)
        self._local = threading.local()
        self._targets: dict[str, tuple[str, str, int, str]] = {}

    def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        target = self._target(url)
        for attempt in (1, 2):  # the second on a new connection: the first gave no answer
            try:
                return self._exchange(target, body)
            except TimeoutError:
                raise Unavailable("Timeout") from None
            except (OSError, http.client.HTTPException) as exc:
                if attempt == 2:
                    raise Unavailable(type(exc).__name__) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _exchange(self, target: tuple[str, str, int, str], body: bytes) -> tuple[int, bytes]:
        scheme, host, port, path = target
        key = (scheme, host, port)
        connections = self._connections()
        connection = connections.get(key)
        if connection is None:
            kind = http.client.HTTPSConnection if scheme == "https" else \
                http.client.HTTPConnection
            connection = connections[key] = kind(host, port, timeout=self.timeout_s)
        try:
            connection.request("POST", path, body=body, headers=HEADERS)
            response = connection.getresponse()
            answer = response.read()
        except BaseException:
            connection.close()
            del connections[key]
            raise
        if response.will_close:  # the server said so (gunicorn's sync workers always do)
            connection.close()
            del connections[key]
        return response.status, answer

    def _connections(self) -> dict[tuple[str, str, int], http.client.HTTPConnection]:
        connections = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        return connections

    def _target(self, url: str) -> tuple[str, str, int, str]:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
            path = parts.path or "/"
            target = (parts.scheme, parts.hostname,
                      parts.port or (443 if parts.scheme == "https" else 80),
                      f"{path}?{parts.query}" if parts.query else path)
            self._targets[url] = target
        return target
