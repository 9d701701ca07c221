"""The project's flask-smorest Blueprint: validation errors are 400, bodies are JSON objects."""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
from marshmallow import ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser

from vintner.api.errors import MALFORMED_JSON, NOT_AN_OBJECT
from vintner.api.fields import no_nul_anywhere
from vintner.errors import InvalidInput

#: deeper JSON than this is refused (400) before anything recurses over it
MAX_JSON_DEPTH = 100


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def parse_json_body(raw: bytes) -> Any:
    """Strict JSON from a request body: UTF-8, no ``NaN``/``Infinity``, integers of sane
    length, at most :data:`MAX_JSON_DEPTH` levels. Anything else is a 400, never a 500."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, int digits
        raise InvalidInput(MALFORMED_JSON) from None
    if _too_deep(value):
        raise InvalidInput(f"JSON body nested too deeply (max {MAX_JSON_DEPTH} levels)")
    return value


class VintnerParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: flask.Request) -> Any:
        # Accept a JSON body whatever its Content-Type (old agents are sloppy), and treat an
        # empty body as "no fields" (a heartbeat may have none).
        data = req.get_data(cache=True)
        if not data.strip():
            return core.missing
        return parse_json_body(data)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = VintnerParser()


def json_object_body() -> dict[str, Any]:
    """The request body as a free-form JSON object (``{}`` when empty), for bodies no schema
    describes (worker metadata patches)."""
    raw = flask.request.get_data(cache=True)
    if not raw.strip():
        return {}
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise InvalidInput(NOT_AN_OBJECT)
    try:
        no_nul_anywhere(body)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages)) from None
    return body
