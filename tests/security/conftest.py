"""Fixtures for the trust-hardening tests: a real loopback listener that counts connections, a
closed port, and a file on disk, as targets a project's ``$ref`` must never reach."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REMOTE_SECRET = "REMOTE-SCHEMA-CONTENT-7f3a"
FILE_SECRET = "LOCAL-FILE-CONTENT-91c2"


class Listener:
    """An HTTP server on 127.0.0.1 that answers every connection with a JSON Schema holding
    ``REMOTE_SECRET`` and counts the connections it accepted. It stops when closed."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port: int = self._socket.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/schema.json"

    def _serve(self) -> None:
        body = json.dumps({"type": "integer", "description": REMOTE_SECRET}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.hits += 1
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    conn.sendall(f"{head}Connection: close\r\n\r\n".encode() + body)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"type": "integer", "description": FILE_SECRET}))
    return path
