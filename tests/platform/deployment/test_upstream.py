"""The graph's hop-to-hop client (lakeloop.deployment.seldon.upstream): one kept-alive
connection per thread while the server keeps it, a new one whenever the server says it
closes, a connection lost before the answer tried once more, and a timeout never tried twice
(the caller's wait stays one timeout)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lakeloop.deployment.seldon.upstream import Unavailable, Upstream


class Server:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 that counts connections and requests;
    ``close_each``: answer with ``Connection: close``; ``silent``: read and never answer."""

    def __init__(self, close_each: bool = False, silent: bool = False):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.close_each, self.silent = close_each, silent
        self.connections = self.requests = 0
        self.bodies: list[dict] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        with conn, conn.makefile("rb") as reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = int(next(h.split(b":")[1] for h in head.split(b"\r\n")
                                  if h.lower().startswith(b"content-length")))
                self.bodies.append(json.loads(reader.read(length)))
                self.requests += 1
                if self.silent:
                    time.sleep(30)
                    return
                data = json.dumps({"n": self.requests}).encode()
                close = b"Connection: close\r\n" if self.close_each else b""
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + close
                             + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n"
                             + data)
                if self.close_each:
                    return


@contextlib.contextmanager
def server(**kwargs) -> Iterator[Server]:
    s = Server(**kwargs)
    try:
        yield s
    finally:
        s.listener.close()


def test_one_connection_carries_every_call_while_the_server_keeps_it():
    with server() as s:
        upstream = Upstream(2.0)
        answers = [upstream.post(f"http://127.0.0.1:{s.port}/predict",
                                 json.dumps({"i": i}).encode()) for i in range(20)]
    assert [json.loads(a)["n"] for _, a in answers] == list(range(1, 21))
    assert {status for status, _ in answers} == {200}
    assert s.bodies == [{"i": i} for i in range(20)]
    assert s.connections == 1


def test_a_server_that_closes_after_each_answer_gets_a_new_connection_each_time():
    with server(close_each=True) as s:
        upstream = Upstream(2.0)
        for _ in range(5):
            status, _ = upstream.post(f"http://127.0.0.1:{s.port}/predict", b"{}")
            assert status == 200
    assert (s.requests, s.connections) == (5, 5)  # none failed and was retried


def test_each_thread_has_its_own_connection():
    with server() as s:
        upstream = Upstream(2.0)
        url = f"http://127.0.0.1:{s.port}/predict"
        threads = [threading.Thread(target=lambda: [upstream.post(url, b"{}")
                                                    for _ in range(10)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert (s.requests, s.connections) == (40, 4)


def test_a_timeout_is_not_tried_again():
    with server(silent=True) as s:
        upstream = Upstream(0.5)
        started = time.perf_counter()
        with pytest.raises(Unavailable) as err:
            upstream.post(f"http://127.0.0.1:{s.port}/predict", b"{}")
        waited = time.perf_counter() - started
    assert err.value.kind == "Timeout"
    assert (s.requests, s.connections) == (1, 1)  # not sent again on a new connection
    assert waited >= 0.5


def test_nothing_listening_is_unavailable_at_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unavailable) as err:
        Upstream(2.0).post(f"http://127.0.0.1:{port}/predict", b"{}")
    assert err.value.kind == "ConnectionRefusedError"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:1/x", "127.0.0.1:1/x", "http:///x"])
def test_only_http_and_https_urls_are_taken(url):
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        Upstream(1.0).post(url, b"{}")


def test_an_https_url_speaks_tls():
    """Behind an https:// URL a plain-HTTP server gets a TLS handshake it never answers (the
    hop gives up after its timeout), never the request in clear text."""
    with server() as s:
        with pytest.raises(Unavailable):
            Upstream(0.5).post(f"https://127.0.0.1:{s.port}/predict", b'{"secret": 1}')
    assert s.requests == 0 and s.bodies == []
