"""Terraform's ``http`` state backend per vine: ``/api/vines/{id}/terraform-state``.

GET / POST / DELETE the state, LOCK / UNLOCK with Terraform's lock info; basic auth with the
worker id and token. A plain Flask blueprint: LOCK and UNLOCK are not OpenAPI operations.

Terraform's client treats GET 404/204 as "no state yet", wants 200 on a successful LOCK and 409
or 423 with the holder's lock info when the state is locked (see docs/architecture.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from vintner.api.artifacts import _PrefixedStream as PrefixedStream
from vintner.api.blueprint import parse_json_body
from vintner.api.errors import error_response
from vintner.api.fields import no_nul_anywhere
from vintner.api.ids import parse_id
from vintner.domain import terraform_state, workers
from vintner.domain.model import utcnow
from vintner.errors import InvalidInput, TooLarge, Unauthorized
from vintner.services import services

blp = Blueprint("terraform_state", __name__)

STATE_TOO_LARGE = "State too large (max 100MB)"
MAX_LOCK_INFO = 64 * 1024
LOCK_INFO_TOO_LARGE = "Lock info too large (max 64 KiB)"


def _authenticate() -> workers.Worker:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        raise Unauthorized("Basic auth with the worker ID and token required")
    return workers.authenticate(services().repository, auth.username, auth.password)


def _lock_info() -> dict:
    if (request.content_length or 0) > MAX_LOCK_INFO:
        raise TooLarge(LOCK_INFO_TOO_LARGE)
    request.max_content_length = MAX_LOCK_INFO  # a chunked body is cut off there
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        info = parse_json_body(raw)
    except InvalidInput:
        raise InvalidInput("Lock info must be JSON") from None
    if not isinstance(info, dict):
        raise InvalidInput("Lock info must be a JSON object")
    try:
        no_nul_anywhere(info)
    except ValidationError as exc:
        raise InvalidInput("Lock info: " + " ".join(exc.messages)) from None
    return info


def _locked(exc: terraform_state.StateLocked) -> ResponseReturnValue:
    # Terraform reads the holder's lock info from the body of a 423/409 (and ignores other
    # keys); "error" and "code" make it an error object like every other
    body = {**exc.lock.info, "error": "State is locked", "code": 423}
    return Response(json.dumps(body), status=423, mimetype="application/json")


@blp.route("/api/vines/<vine_id>/terraform-state",
           methods=["GET", "POST", "PUT", "DELETE", "LOCK", "UNLOCK"])
def state(vine_id: str) -> ResponseReturnValue:
    worker = _authenticate()
    vine_uuid = parse_id(vine_id, "Vine")
    svc = services()
    terraform_state.check_access(svc.repository, worker, vine_uuid)
    lock_id = request.args.get("ID") or None
    try:
        if request.method == "GET":
            reader = terraform_state.read_state(svc.artifacts, vine_uuid)
            if reader is None:
                return error_response(404, "No state yet")

            def body() -> Iterator[bytes]:
                try:
                    yield from reader
                finally:
                    reader.close()

            return Response(body(), mimetype="application/json",
                            headers={"Content-Length": str(reader.size)})
        if request.method in ("POST", "PUT"):
            if (request.content_length or 0) > terraform_state.MAX_STATE_BYTES:
                raise TooLarge(STATE_TOO_LARGE)
            # an empty body is never a state: stored, Terraform would read "no state" next time
            head = request.stream.read(64 * 1024)
            if not head:
                raise InvalidInput("Empty body")
            try:
                terraform_state.write_state(svc.repository, svc.artifacts, vine_uuid,
                                            PrefixedStream(head, request.stream), lock_id)
            except TooLarge:
                raise TooLarge(STATE_TOO_LARGE) from None
            return "", 200
        if request.method == "DELETE":
            terraform_state.delete_state(svc.repository, svc.artifacts, vine_uuid, lock_id)
            return "", 200
        if request.method == "LOCK":
            terraform_state.lock(svc.repository, worker, vine_uuid, _lock_info(), utcnow())
            return "", 200
        terraform_state.unlock(svc.repository, vine_uuid, _lock_info())
        return "", 200
    except terraform_state.StateLocked as exc:
        return _locked(exc)
