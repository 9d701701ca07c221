"""A small fault-injecting HTTP proxy on 127.0.0.1, to put between an agent and the server.

It forwards every request (any method — Terraform's http backend uses LOCK/UNLOCK) to the
upstream server and relays the answer, except where ``fault(request)`` says otherwise:

- ``"error"``: answer ``500`` without forwarding (the server never saw the request);
- ``"stall"``: forward (the server stores it), then hold the answer for ``stall_s`` seconds
  before sending it — past the client's timeout, so the client sees a timeout for a request
  that did succeed;
- ``None``: forward normally.

Every request is recorded (:class:`Seen`: method, path, body, status relayed, fault applied),
so a test can compare what the client tried with what the server stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import httpx

Fault = Literal["error", "stall"] | None
# Hop-by-hop headers, and the ones the relay recomputes.
_SKIP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-length", "host", "content-encoding",
})


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    body: bytes
    status: int  # what the proxy answered (0: the client went away before the answer)
    fault: Fault


class FaultyProxy:
    def __init__(self, upstream: str, fault: Callable[[str, str, bytes], Fault] | None = None,
                 *, stall_s: float = 2.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault = fault or (lambda method, path, body: None)
        self.stall_s = stall_s
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.upstream, timeout=60)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="faulty-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def requests(self, method: str | None = None, path_contains: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen
                    if (method is None or s.method == method) and path_contains in s.path]

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # quiet

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.fault(self.command, self.path, body)
                if fault == "error":
                    self._answer(500, {"Content-Type": "application/json"},
                                 b'{"error": "injected fault", "code": 500}')
                    proxy._record(Seen(self.command, self.path, body, 500, fault))
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _SKIP_HEADERS}
                try:
                    response = proxy._client.request(self.command, self.path, content=body,
                                                     headers=headers)
                except httpx.HTTPError as exc:
                    self._answer(502, {"Content-Type": "text/plain"}, str(exc).encode())
                    proxy._record(Seen(self.command, self.path, body, 502, fault))
                    return
                if fault == "stall":
                    time.sleep(proxy.stall_s)
                relayed = {k: v for k, v in response.headers.items()
                           if k.lower() not in _SKIP_HEADERS}
                status = response.status_code
                try:
                    self._answer(status, relayed, response.content)
                except OSError:  # the client gave up waiting (the point of a stall)
                    status = 0
                proxy._record(Seen(self.command, self.path, body, status, fault))

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)
                self.wfile.flush()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay
            do_LOCK = do_UNLOCK = do_OPTIONS = _relay

        return Handler


@contextmanager
def faulty_proxy(upstream: str, fault: Callable[[str, str, bytes], Fault] | None = None,
                 *, stall_s: float = 2.0) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream, fault, stall_s=stall_s).start()
    try:
        yield proxy
    finally:
        proxy.stop()
