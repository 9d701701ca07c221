"""The project's flask-smorest Blueprint: validation errors are 400, bodies are JSON objects."""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser


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
