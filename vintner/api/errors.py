"""One error shape for every response: ``{"error": "<sentence>", "code": <status>}`` plus
``"errors": {"<field>": ["<message>", ...]}`` for validation errors. Never HTML, never a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

from vintner.errors import VintnerError

log = logging.getLogger(__name__)

MALFORMED_JSON = "Malformed JSON body"
NOT_AN_OBJECT = "Request body must be a JSON object"


def error_response(status: int, message: str, errors: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> ResponseReturnValue:
    body: dict[str, Any] = {"error": message, "code": status}
    if errors:
        body["errors"] = errors
    return jsonify(body), status, headers or {}


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs/marshmallow nested messages → ``{"a.b": ["msg", ...]}``."""
    if isinstance(messages, dict):
        out: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": list(messages)}
    if isinstance(messages, list):
        out = {}
        for index, value in enumerate(messages):
            out.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return {prefix or "_schema": [str(messages)]}


def _validation_error(messages: dict[str, Any]) -> ResponseReturnValue:
    """A webargs parsing failure (``messages`` keyed by location: json, query, ...)."""
    for location, detail in messages.items():
        if location == "json" and isinstance(detail, list):
            return error_response(400, MALFORMED_JSON)
        if isinstance(detail, dict) and "_schema" in detail and len(detail) == 1:
            return error_response(400, NOT_AN_OBJECT if location == "json" else
                                  f"Invalid {location} parameters")
    errors: dict[str, list[str]] = {}
    for detail in messages.values():
        errors.update(_flatten(detail))
    first = next(iter(errors.items()))
    return error_response(400, f"Invalid value for {first[0]}: {first[1][0]}", errors)


def handle_http_exception(exc: HTTPException) -> ResponseReturnValue:
    data = getattr(exc, "data", None) or {}
    if "messages" in data and exc.code in (400, 422):
        return _validation_error(data["messages"])
    if isinstance(exc, InternalServerError):
        return handle_unexpected(exc.original_exception or exc)
    message = data.get("message") or exc.description or exc.name
    return error_response(exc.code or 500, message, headers=data.get("headers"))


def handle_vintner_error(exc: VintnerError) -> ResponseReturnValue:
    return error_response(exc.status, exc.message, exc.errors)


def handle_unexpected(exc: BaseException) -> ResponseReturnValue:
    # logged with the traceback for operators; the client gets no internals
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "Internal server error")


def register(app: Flask) -> None:
    app.register_error_handler(VintnerError, handle_vintner_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
