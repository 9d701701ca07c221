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


class VintnerParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: flask.Request) -> Any:
        # Accept a JSON body whatever its Content-Type (old agents are sloppy), and treat an
        # empty body as "no fields" (a heartbeat may have none).
        data = req.get_data(cache=True)
        if not data.strip():
            return core.missing
        return core.parse_json(data)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = VintnerParser()


def json_object_body() -> dict[str, Any]:
    """The request body as a free-form JSON object (``{}`` when empty), for bodies no schema
    describes (worker metadata patches)."""
    raw = flask.request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(MALFORMED_JSON) from None
    if not isinstance(body, dict):
        raise InvalidInput(NOT_AN_OBJECT)
    try:
        no_nul_anywhere(body)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages)) from None
    return body
