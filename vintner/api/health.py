"""Process and readiness probes (outside the OpenAPI document: they are for load balancers)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from vintner.errors import VintnerError
from vintner.services import services

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is up."""
    return jsonify({"status": "ok"})


@blp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """The database and the artifact store are reachable."""
    checks: dict[str, str] = {}
    svc = services()
    for name, probe in (("database", svc.repository.ping), ("artifact_store", svc.artifacts.ping)):
        try:
            probe()
            checks[name] = "ok"
        except VintnerError as exc:
            checks[name] = exc.message
        except Exception as exc:  # a probe must answer, whatever the backend raised
            checks[name] = f"unreachable ({type(exc).__name__})"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    if not ready:
        body.update(error="Not ready: " + ", ".join(k for k, v in checks.items() if v != "ok"),
                    code=503)
    return jsonify(body), 200 if ready else 503
