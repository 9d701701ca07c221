"""Requests the HTTP server itself refuses before the app sees them (a garbage request line, an
over-long URL, an over-long header) get the project's JSON error shape from ``vintner serve`` —
Flask's server and gunicorn alike — never the server's HTML page (worker-api.md, Conventions)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support.server import running_server

REQUESTS = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "over-long URL": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "over-long header": (b"GET /api/workers HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000
                         + b"\r\n\r\n"),
}


def _raw(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("mode", ["development", "production"])
def test_protocol_errors_are_json(tmp_path: Path, mode: str) -> None:
    args = ["--workers", "1"] if mode == "production" else []
    with running_server(tmp_path / mode, mode=mode, args=args) as server:
        for label, data in REQUESTS.items():
            status, headers, body = _raw(server.url, data)
            assert 400 <= status < 500, (label, status, body[:200])
            assert headers.get("content-type") == "application/json", (label, headers, body[:200])
            payload = json.loads(body)
            assert payload["code"] == status and payload["error"], (label, payload)
            assert int(headers["content-length"]) == len(body)
