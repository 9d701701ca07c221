"""A tiny real HTTP server on 127.0.0.1 for fault injection in log-shipper tests.

It is not a Vintner server: it accepts ``POST /api/jobs/<id>/logs`` only, de-duplicates
by ``(job, seq)`` the way the worker API specifies, and can be told to answer 500, 409,
sleep past the client's timeout, or set the cancel header on chosen requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Peer:
    url: str = ""
    # Faults, consumed in order: each request pops the next entry ("ok" when empty).
    # "500" | "409" | "sleep:<s>" (stores the chunk, then answers late) | "cancel"
    faults: list[str] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)  # every body received, in order
    stored: dict[tuple[str, int], dict] = field(default_factory=dict)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def chunks(self, job_id: str) -> list[dict]:
        with self.lock:
            return [v for (j, _), v in sorted(self.stored.items()) if j == job_id]

    def text(self, job_id: str) -> str:
        return "".join(c["log_chunk"] for c in self.chunks(job_id))


@contextmanager
def log_peer() -> Iterator[Peer]:
    peer = Peer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _answer(self, status: int, body: dict, extra: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): that is the point of "sleep"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            parts = self.path.strip("/").split("/")
            job_id = parts[2] if len(parts) == 4 and parts[3] == "logs" else ""
            with peer.lock:
                peer.requests.append(body)
                peer.headers.append(dict(self.headers))
                fault = peer.faults.pop(0) if peer.faults else "ok"
            if not job_id:
                self._answer(404, {"error": "Not found", "code": 404})
                return
            if fault == "500":
                self._answer(500, {"error": "boom", "code": 500})
                return
            if fault == "409":
                self._answer(409, {"error": "Job is not held by this worker", "code": 409})
                return
            key = (job_id, int(body["seq"]))
            with peer.lock:
                duplicate = key in peer.stored
                if not duplicate:
                    peer.stored[key] = body
            if fault.startswith("sleep:"):
                time.sleep(float(fault.split(":", 1)[1]))
            extra = {"X-Vintner-Cancel-Requested": "true"} if fault == "cancel" else None
            self._answer(201 if not duplicate else 200,
                         {"success": True, "id": key[1], "duplicate": duplicate}, extra)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
