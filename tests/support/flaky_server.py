"""A server on 127.0.0.1 that drops its first connection without answering (as a server does
with an idle keep-alive connection it has just closed), then answers ``body`` once."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def drops_first_connection(body: dict) -> Iterator[int]:
    """The server's port, for the duration of the block."""
    listener = socket.create_server(("127.0.0.1", 0))
    data = json.dumps(body).encode()

    def serve():
        first, _ = listener.accept()
        first.recv(65536)
        first.close()  # no answer at all
        second, _ = listener.accept()
        second.recv(65536)
        second.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
        second.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(10)
        listener.close()
