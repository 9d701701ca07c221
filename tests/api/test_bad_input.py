"""Bad input to every endpoint: the app answers a 4xx JSON error, never a 500 or an HTML page.

worker-api.md: "Every error, whatever the status, is a JSON object with at least
``{"error": "<one human sentence>", "code": <http status>}`` ... No request, however malformed,
gets a 500 or an HTML page", and "Unknown JSON fields in request bodies are ignored".

Every endpoint of ``app.url_map`` must have an entry in :data:`SPECS`
(``test_every_endpoint_has_a_case`` fails otherwise), so a new endpoint cannot be forgotten.
The wrong values are derived from the endpoint's own marshmallow schema (its ``@blp.arguments``),
so a new field gets its wrong-type, oversize and NUL cases without anyone writing them.

Requests are authenticated (a real worker holding a real job, or the operator) so the
validation itself runs; the ``unauthenticated`` category checks that the same endpoints answer
401 first. Within one test the variants are collected and reported together.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import flask_smorest
import pytest
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import Schema, fields, validate
from werkzeug.test import TestResponse

from tests.support.app import OPERATOR, ROLE_ARN, Driver, WorkerCreds
from vintner.api.fields import QueryInt, StrictInt, Text
from vintner.api.operator_schemas import StrictNumber

# -- the world every request runs against ------------------------------------------------------


@dataclass
class World:
    """Real things to address: a worker holding a PLAN job of a vine, and the operator."""

    client: FlaskClient
    worker: WorkerCreds
    job_id: str
    vine_id: str
    vineyard_id: str
    identity_id: str

    def path_value(self, name: str) -> str:
        return {
            "job_id": self.job_id, "worker_id": self.worker.id, "vine_id": self.vine_id,
            "vineyard_id": self.vineyard_id, "identity_id": self.identity_id,
            "filename": "no-such-file.txt",
        }[name]


def make_world(client: FlaskClient) -> World:
    driver = Driver(client)
    vine = driver.vine()
    worker = driver.worker()
    job = driver.enqueue("PLAN", vine_id=vine["id"], assigned_worker_id=worker.id)
    claim = driver.claim(worker)
    assert claim is not None and claim["job"]["id"] == job["id"]
    return World(client=client, worker=worker, job_id=job["id"], vine_id=vine["id"],
                 vineyard_id=vine["vineyard_id"], identity_id=vine["cloud_identity_id"])


# -- what each endpoint is --------------------------------------------------------------------

PUBLIC, WORKER, OPERATOR_ONLY, EITHER = "public", "worker", "operator", "either"
BASIC = "basic"  # worker id / token as HTTP basic auth (Terraform's http state backend)
NO_BODY, SCHEMA, OBJECT, BINARY = "none", "schema", "object", "binary"


@dataclass(frozen=True)
class Spec:
    auth: str
    ok: tuple[int, ...] | dict[str, tuple[int, ...]]  # statuses of a valid request (per method)
    body: str = NO_BODY
    valid: Callable[[World], Any] | None = None  # a valid JSON body
    html: bool = False  # the success response is a page, not JSON
    stream: bool = False  # the success response is an endless text/event-stream
    #: the methods whose body is the JSON described above (default: all of the rule's)
    json_methods: tuple[str, ...] | None = None
    #: an OBJECT body's own size limit (413 above it)
    object_limit: int | None = None

    def ok_for(self, method: str) -> tuple[int, ...]:
        return self.ok[method] if isinstance(self.ok, dict) else self.ok


def _vine_document(w: World, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "vineyard_id": w.vineyard_id, "cloud_identity_id": w.identity_id,
        "project_name": "shop", "environment_stage": "staging", "region": "eu-central-1",
        "terraform_version": "1.9.0",
        "terraform": {"module": "vine-basic", "variables": {"replicas": 2}},
        "cluster": {"cluster_version": "1.30", "instance_types": ["t3.large"],
                    "node_min_size": 1, "node_max_size": 3, "node_desired_size": 2},
        "databases": [{"name": "main", "engine": "aurora-postgresql", "engine_version": "16.1",
                       "min_capacity": 0.5, "max_capacity": 4}],
        "caches": [{"name": "sessions", "engine": "valkey", "node_type": "cache.t3.micro",
                    "num_cache_nodes": 1}],
        "network": {"provision_network": True, "network_id": None, "cidr_block": "10.0.0.0/16"},
    }
    doc.update(overrides)
    return doc


SPECS: dict[str, Spec] = {
    "static": Spec(PUBLIC, ok=(404,)),
    "api-docs.openapi_json": Spec(PUBLIC, ok=(200,)),
    "api-docs.openapi_swagger_ui": Spec(PUBLIC, ok=(200,), html=True),
    "health.healthz": Spec(PUBLIC, ok=(200,)),
    "health.readyz": Spec(PUBLIC, ok=(200,)),
    # worker API
    "workers.register": Spec(OPERATOR_ONLY, ok=(201,), body=SCHEMA, valid=lambda w: {
        "name": "eu-west-1-tendril", "mode": "self-hosted", "cloud_identity_id": w.identity_id,
        "metadata": {"region": "eu-west-1"}}),
    "workers.heartbeat": Spec(WORKER, ok=(200,), body=SCHEMA, valid=lambda w: {
        "version": "0.1.0", "status": "ONLINE", "current_job_id": w.job_id}),
    "workers.list_workers": Spec(OPERATOR_ONLY, ok=(200,)),
    "workers.get_worker": Spec(EITHER, ok=(200,)),
    "workers.delete_worker": Spec(EITHER, ok=(204,)),
    "workers.merge_metadata": Spec(EITHER, ok=(200,), body=OBJECT, valid=lambda w: {
        "deploy_config": {"replicas": 2}, "gone": None}, object_limit=64 * 1024),
    "workers.rotate_token": Spec(OPERATOR_ONLY, ok=(200,)),
    "jobs.claim": Spec(WORKER, ok=(200, 204)),
    "jobs.put_status": Spec(WORKER, ok=(200,), body=SCHEMA, valid=lambda w: {
        "status": "PROCESSING", "error_message": None,
        "execution_metadata": {"phase": "plan", "progress": 10}}),
    "jobs.get_job": Spec(EITHER, ok=(200,)),
    "logs.append_log": Spec(WORKER, ok=(201,), body=SCHEMA, valid=lambda w: {
        "log_chunk": "Creating VPC...\n", "stream_type": "STDOUT", "seq": 1}),
    "logs.read_logs": Spec(EITHER, ok=(200,)),
    "log_stream.stream_logs": Spec(EITHER, ok=(200,), stream=True),
    "artifacts.upload_plan_artifact": Spec(WORKER, ok=(201,), body=BINARY),
    "artifacts.download_plan_artifact": Spec(EITHER, ok=(404,)),  # nothing uploaded yet
    # operator API
    "cloud_identities.create_identity": Spec(OPERATOR_ONLY, ok=(201,), body=SCHEMA,
                                             valid=lambda w: {
        "provider": "aws", "name": "prod", "credentials": {"role_arn": ROLE_ARN}}),
    "cloud_identities.list_identities": Spec(OPERATOR_ONLY, ok=(200,)),
    "cloud_identities.get_identity": Spec(OPERATOR_ONLY, ok=(200,)),
    "vineyards.create_vineyard": Spec(OPERATOR_ONLY, ok=(201,), body=SCHEMA, valid=lambda w: {
        "name": "another-vineyard", "description": "for tests"}),
    "vineyards.list_vineyards": Spec(OPERATOR_ONLY, ok=(200,)),
    "vineyards.get_vineyard": Spec(OPERATOR_ONLY, ok=(200,)),
    "vines.create_vine": Spec(OPERATOR_ONLY, ok=(201,), body=SCHEMA, valid=_vine_document),
    "vines.list_vines": Spec(OPERATOR_ONLY, ok=(200,)),
    "vines.get_vine": Spec(OPERATOR_ONLY, ok=(200,)),
    # the vine has a job in flight; PATCH only changes the document, later jobs snapshot it
    "vines.patch_vine": Spec(OPERATOR_ONLY, ok=(200,), body=SCHEMA,
                             valid=lambda w: _vine_document(w, region="eu-west-2")),
    "queue.enqueue_job": Spec(OPERATOR_ONLY, ok=(201,), body=SCHEMA, valid=lambda w: {
        "job_type": "CONNECTION_TEST", "vine_id": None, "cloud_identity_id": w.identity_id,
        "assigned_worker_id": w.worker.id, "plan_job_id": None,
        "config_snapshot": {"purpose": "test"}}),
    "queue.list_jobs": Spec(OPERATOR_ONLY, ok=(200,)),
    "queue.cancel_job": Spec(OPERATOR_ONLY, ok=(200,)),
    # Terraform's http state backend: raw state for POST/PUT, lock info for LOCK/UNLOCK
    "terraform_state.state": Spec(
        BASIC, ok={"GET": (404,), "POST": (200,), "PUT": (200,), "DELETE": (200,),
                   "LOCK": (200,), "UNLOCK": (200,)},
        body=OBJECT, json_methods=("LOCK", "UNLOCK"), valid=lambda w: {
            "ID": "0b4c3c5e-lock", "Operation": "OperationTypePlan", "Info": "",
            "Who": "tendril@host", "Version": "1.9.0", "Created": "2024-01-01T00:00:00Z",
            "Path": ""}),
}

CATEGORIES = ("valid", "unauthenticated", "malformed_json", "non_object", "wrong_types",
              "oversized", "nul", "unknown_fields", "bad_ids", "wrong_method")

ERROR_SENTENCES_401 = {
    "Missing X-Worker-ID or X-Worker-Token", "Invalid worker ID or token",
    "Operator token required", "Invalid operator token",
    "Basic auth with the worker ID and token required",  # Terraform's state backend
}

_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


# -- one request and its checks ---------------------------------------------------------------


@dataclass
class Request:
    label: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = None  # serialised by the test (json.dumps), unless raw is given
    raw: bytes | None = None
    content_type: str = "application/json"
    query: str = ""

    def send(self, client: FlaskClient) -> TestResponse:
        data: bytes | None = self.raw
        if data is None and self.json_body is not _NOTHING:
            data = json.dumps(self.json_body).encode()
        url = self.path + (f"?{self.query}" if self.query else "")
        headers = dict(self.headers)
        if data is not None:
            headers.setdefault("Content-Type", self.content_type)
        return client.open(url, method=self.method, data=data, headers=headers)


_NOTHING = object()


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Outcome:
    """Failures of one test, reported together."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def fail(self, request: Request, response: TestResponse | None, why: str) -> None:
        if response is None:
            self.failures.append(f"{request.label}: {why}")
            return
        body = response.get_data()[:300]
        self.failures.append(f"{request.label} [{request.method} {request.path[:80]}"
                             f"{'?' + request.query[:60] if request.query else ''}] → "
                             f"{response.status_code}: {why}; body={body!r}")

    def check(self) -> None:
        assert not self.failures, f"{len(self.failures)} failing variant(s):\n" + \
            "\n".join(self.failures)


def error_body(outcome: Outcome, request: Request, response: TestResponse) -> dict | None:
    """Check the error shape; the parsed body when it is right."""
    status = response.status_code
    if status >= 500:
        outcome.fail(request, response, "server error")
        return None
    if response.mimetype != "application/json":
        outcome.fail(request, response, f"Content-Type {response.content_type!r}, not JSON")
        return None
    try:
        body = json.loads(response.get_data())
    except ValueError:
        outcome.fail(request, response, "body is not JSON")
        return None
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) \
            or not body["error"] or body.get("code") != status:
        outcome.fail(request, response, "not an {error, code} object with code == status")
        return None
    return body


def expect_error(outcome: Outcome, client: FlaskClient, request: Request,
                 statuses: tuple[int, ...] | None = None,
                 field_path: str | None = None) -> None:
    """A 4xx JSON error (one of ``statuses`` when given; naming ``field_path`` on a 400)."""
    try:
        response = request.send(client)
    except Exception as exc:  # the test client re-raises nothing, but be explicit
        outcome.fail(request, None, f"raised {exc!r}")
        return
    if not 400 <= response.status_code < 500:
        outcome.fail(request, response, "expected a 4xx")
        return
    body = error_body(outcome, request, response)
    if body is None:
        return
    if statuses is not None and response.status_code not in statuses:
        outcome.fail(request, response, f"expected one of {statuses}")
    if field_path is not None and response.status_code == 400:
        names = body.get("errors") or {}
        if not any(k == field_path or k.startswith(field_path + ".") for k in names):
            outcome.fail(request, response, f"errors do not name {field_path!r}")


def expect_ok(outcome: Outcome, client: FlaskClient, request: Request, spec: Spec) -> None:
    """The request succeeds (or gives the endpoint's expected status)."""
    statuses, html = spec.ok_for(request.method), spec.html
    response = request.send(client)
    if response.status_code not in statuses:
        if response.status_code >= 400:
            error_body(outcome, request, response)
        outcome.fail(request, response, f"expected {statuses}")
        return
    if response.status_code >= 400:
        error_body(outcome, request, response)
    elif spec.stream:  # the job is still running: its stream would not end, so do not read it
        if response.mimetype != "text/event-stream":
            outcome.fail(request, response, f"Content-Type {response.content_type!r}")
        response.close()
    elif response.status_code != 204 and response.get_data() \
            and "plan-artifact" not in request.path:
        wanted = "text/html" if html else "application/json"
        if response.mimetype != wanted:
            outcome.fail(request, response, f"Content-Type {response.content_type!r}")


# -- schema introspection -----------------------------------------------------------------------


def arguments_of(app: Flask, endpoint: str) -> list[tuple[str, Schema]]:
    """``[(location, schema instance), ...]`` from the view's ``@blp.arguments``."""
    view = app.view_functions[endpoint]
    params = (getattr(view, "_apidoc", None) or {}).get("arguments", {}).get("parameters", [])
    out = []
    for param in params:
        schema = param["schema"]
        out.append((param["in"], schema() if isinstance(schema, type) else schema))
    return out


Path = tuple[str | int, ...]


def walk(schema: Schema, prefix: Path = ()) -> Iterator[tuple[Path, fields.Field]]:
    """Every field of ``schema``, nested ones included (lists through their first element)."""
    for name, fld in schema.fields.items():
        path = (*prefix, fld.data_key or name)
        yield path, fld
        yield from _walk_inner(fld, path)


def _walk_inner(fld: fields.Field, path: Path) -> Iterator[tuple[Path, fields.Field]]:
    if isinstance(fld, fields.Nested):
        yield from walk(fld.schema, path)
    elif isinstance(fld, fields.List):
        inner = fld.inner
        yield (*path, 0), inner
        yield from _walk_inner(inner, (*path, 0))


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def with_value(body: Any, path: Path, value: Any) -> Any:
    """A deep copy of ``body`` with ``value`` at ``path`` (missing parents are created)."""
    out = copy.deepcopy(body)
    node = out
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(node, dict):
            if not isinstance(node.get(key), dict | list):
                node[key] = [{}] if isinstance(nxt, int) else {}
            node = node[key]
        else:
            while len(node) <= key:  # type: ignore[operator]
                node.append({})
            node = node[key]  # type: ignore[index]
    last = path[-1]
    if isinstance(node, list):
        while len(node) <= last:  # type: ignore[operator]
            node.append(None)
    node[last] = value  # type: ignore[index]
    return out


def one_of(fld: fields.Field) -> list[str] | None:
    validators = fld.validators if isinstance(fld.validators, list) else [fld.validators]
    for v in validators:
        if isinstance(v, validate.OneOf):
            return [str(c) for c in v.choices]
    return None


def wrong_json_values(fld: fields.Field) -> list[Any]:
    """JSON values of the wrong type (or out of the field's rules) for ``fld``."""
    values: list[Any] = [] if fld.allow_none else [None]
    if isinstance(fld, fields.UUID):
        values += ["not-a-uuid", "", "0" * 36, "g" * 32, 123, 1.5, True, [], {}]
    elif isinstance(fld, fields.String):
        values += [123, 1.5, True, [], {}, ["a"]]
        if one_of(fld):
            values += ["NOT-ONE-OF-THEM", one_of(fld)[0].lower() + "x"]  # type: ignore[index]
        if getattr(fld, "min_length", 0) >= 1:
            values.append("")
    elif isinstance(fld, StrictNumber):
        values += ["1", True, [], {}]
    elif isinstance(fld, fields.Integer):
        values += ["1", "abc", 1.5, True, [], {}]
    elif isinstance(fld, fields.Boolean):
        values += ["true", 1, 0, [], {}]
    elif isinstance(fld, fields.Dict):
        values += ["x", 1, [], True]
    elif isinstance(fld, fields.List | fields.Nested):
        values += ["x", 1, True] + ([[]] if isinstance(fld, fields.Nested) else [{}])
    elif type(fld) is fields.Raw:
        values += [1, [], {}, True, "NOT_A_STATUS", ""]
    else:
        raise AssertionError(f"no wrong values known for {type(fld).__name__}: add them here")
    return values


def wrong_query_values(fld: fields.Field) -> list[str]:
    """Query-string values the field must refuse."""
    if isinstance(fld, fields.UUID):
        return ["not-a-uuid", "", "123", "%00"]
    if isinstance(fld, QueryInt | fields.Integer):
        too_low = str(fld.minimum - 1) if isinstance(fld, QueryInt) else "-1"
        values = ["abc", "", "1.5", "1e3", "0x10", too_low, "9" * 30, "9" * 5000, "%00", "1%002"]
        if isinstance(fld, QueryInt) and fld.maximum is not None:
            values.append(str(fld.maximum + 1))
        return values
    if isinstance(fld, fields.String):
        return ["NOT-ONE-OF-THEM", "", "%00"] if one_of(fld) else ["%00"]
    raise AssertionError(f"no wrong query values known for {type(fld).__name__}")


# -- building the requests of one endpoint --------------------------------------------------------


@dataclass
class Target:
    endpoint: str
    spec: Spec
    rule: str
    methods: list[str]
    args: list[str]
    arguments: list[tuple[str, Schema]]

    def path(self, world: World, replace: dict[str, str] | None = None) -> str:
        replace = replace or {}
        return _ARG.sub(lambda m: replace.get(m.group(1), world.path_value(m.group(1))),
                        self.rule)

    def json_schema(self) -> Schema | None:
        return next((s for loc, s in self.arguments if loc == "json"), None)

    def query_schema(self) -> Schema | None:
        return next((s for loc, s in self.arguments if loc == "query"), None)

    def auth_headers(self, world: World) -> list[tuple[str, dict[str, str]]]:
        return {
            PUBLIC: [("anonymous", {})],
            WORKER: [("worker", world.worker.headers)],
            OPERATOR_ONLY: [("operator", OPERATOR)],
            EITHER: [("worker", world.worker.headers), ("operator", OPERATOR)],
            BASIC: [("worker (basic auth)", basic_auth(world.worker.id, world.worker.token))],
        }[self.spec.auth]

    def json_methods(self) -> list[str]:
        if self.spec.body not in (SCHEMA, OBJECT):
            return []
        return [m for m in self.methods
                if self.spec.json_methods is None or m in self.spec.json_methods]

    def identities(self) -> int:
        return 2 if self.spec.auth == EITHER else 1

    def valid_body(self, world: World) -> Any:
        return self.spec.valid(world) if self.spec.valid else _NOTHING

    def requests(self, world: World, label: str, *, method: str | None = None,
                 json_only: bool = False, **kwargs: Any) -> Iterator[Request]:
        """The request under every authorised identity (to every method, or the JSON ones)."""
        methods = [method] if method else self.json_methods() if json_only else self.methods
        for who, headers in self.auth_headers(world):
            for m in methods:
                kw = dict(kwargs)
                kw.setdefault("path", self.path(world))
                if "json_body" not in kw and "raw" not in kw:
                    if self.spec.body == BINARY:
                        kw["raw"] = b"terraform plan bytes"
                        kw["content_type"] = "application/octet-stream"
                    else:
                        kw["json_body"] = self.valid_body(world)
                yield Request(label=f"{label} as {who}", method=m,
                              headers={**headers, **kw.pop("headers", {})}, **kw)


def target(app: Flask, endpoint: str) -> Target:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
    assert len(rules) == 1, f"{endpoint}: {len(rules)} rules"
    rule = rules[0]
    methods = sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS"))
    return Target(endpoint=endpoint, spec=SPECS[endpoint], rule=rule.rule, methods=methods,
                  args=sorted(rule.arguments), arguments=arguments_of(app, endpoint))


# -- the tests ---------------------------------------------------------------------------------


def test_every_endpoint_has_a_case(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(endpoints - SPECS.keys())
    stale = sorted(SPECS.keys() - endpoints)
    assert not missing, f"endpoints without a bad-input case (add them to SPECS): {missing}"
    assert not stale, f"SPECS names endpoints the app no longer has: {stale}"


def test_openapi_document_and_docs_page(client: FlaskClient, app: Flask) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    assert document["info"]["title"] == "Vintner"
    documented = set(document["paths"])
    for rule in app.url_map.iter_rules():
        blueprint = app.blueprints.get(rule.endpoint.partition(".")[0])
        # plain Flask blueprints (health probes, Terraform's state protocol) are not operations
        if isinstance(blueprint, flask_smorest.Blueprint):
            assert _ARG.sub(r"{\1}", rule.rule) in documented, rule.rule
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert b"openapi.json" in page.get_data()


def test_locked_terraform_state_is_an_error_object_with_the_lock_info(
        client: FlaskClient) -> None:
    world = make_world(client)
    url = f"/api/vines/{world.vine_id}/terraform-state"
    headers = basic_auth(world.worker.id, world.worker.token)
    info = SPECS["terraform_state.state"].valid(world)  # type: ignore[misc]
    assert client.open(url, method="LOCK", json=info, headers=headers).status_code == 200
    second = client.open(url, method="LOCK", json={**info, "ID": "other"}, headers=headers)
    assert second.status_code == 423
    body = second.get_json()
    assert body["ID"] == info["ID"]  # what Terraform reads
    assert body["code"] == 423 and isinstance(body["error"], str)


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("endpoint", sorted(SPECS))
def test_bad_input(app: Flask, client: FlaskClient, endpoint: str, category: str) -> None:
    if endpoint not in app.view_functions:
        pytest.fail(f"{endpoint} is in SPECS but not in the app")
    tgt = target(app, endpoint)
    outcome = Outcome()
    CHECKS[category](tgt, client, outcome)
    outcome.check()


def fresh(client: FlaskClient) -> World:
    """A world of its own for a request that changes state when it succeeds."""
    return make_world(client)


def check_valid(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    for who in range(tgt.identities()):
        for method in tgt.methods:
            world = fresh(client)
            request = list(tgt.requests(world, "valid request", method=method))[who]
            expect_ok(outcome, client, request, tgt.spec)


def unauthenticated_variants(tgt: Target, world: World) -> dict[str, dict[str, str]]:
    wid, token = world.worker.id, world.worker.token
    variants: dict[str, dict[str, str]] = {
        "no credentials": {},
        "empty bearer": {"Authorization": "Bearer "},
        "wrong bearer": {"Authorization": "Bearer wrong"},
        "non-ASCII bearer": {"Authorization": "Bearer tökén"},
        "worker token as bearer": {"Authorization": f"Bearer {token}"},
        "garbage basic": {"Authorization": "Basic %%%not-base64"},
        "basic with a wrong token": basic_auth(wid, token + "x"),
        "basic with a non-UUID id": basic_auth("not-a-uuid", token),
    }
    if tgt.spec.auth != BASIC:
        variants |= {
            "empty worker headers": {"X-Worker-ID": "", "X-Worker-Token": ""},
            "worker id only": {"X-Worker-ID": wid},
            "worker token only": {"X-Worker-Token": token},
            "wrong worker token": {"X-Worker-ID": wid, "X-Worker-Token": token + "x"},
            "non-UUID worker id": {"X-Worker-ID": "not-a-uuid", "X-Worker-Token": token},
            "unknown worker id": {"X-Worker-ID": str(uuid.uuid4()), "X-Worker-Token": token},
            "huge worker token": {"X-Worker-ID": wid, "X-Worker-Token": "x" * 100_000},
            "basic auth": basic_auth(wid, token),
        }
    else:
        variants |= {"worker headers instead of basic auth": world.worker.headers,
                     "operator token": OPERATOR}
    if tgt.spec.auth == WORKER:
        variants["operator token on a worker endpoint"] = OPERATOR
    if tgt.spec.auth == OPERATOR_ONLY:
        variants["worker credentials on an operator endpoint"] = world.worker.headers
    return variants


def check_unauthenticated(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    if tgt.spec.auth == PUBLIC:
        return
    world = fresh(client)
    for label, headers in unauthenticated_variants(tgt, world).items():
        for method in tgt.methods:
            body = tgt.valid_body(world)
            for body_label, extra in (("valid body", {"json_body": body}),
                                      ("malformed body", {"raw": b"{nope"})):
                request = Request(label=f"{label}, {body_label}", method=method,
                                  path=tgt.path(world), headers=headers, **extra)
                response = request.send(client)
                parsed = error_body(outcome, request, response) \
                    if response.status_code >= 400 else None
                if response.status_code != 401:
                    outcome.fail(request, response, "expected 401")
                elif parsed is not None and parsed["error"] not in ERROR_SENTENCES_401:
                    outcome.fail(request, response, "unexpected 401 sentence")


MALFORMED: dict[str, bytes] = {
    "truncated": b'{"name": "x"',
    "single quotes": b"{'name': 'x'}",
    "missing value": b'{"name": }',
    "trailing comma": b'{"name": "x",}',
    "trailing garbage": b'{"name": "x"} trailing',
    "two documents": b"{}{}",
    "bare word": b"hello",
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "UTF-16 with BOM": '{"name": "x"}'.encode("utf-16"),
    "NUL byte": b"\x00",
    "NaN": b'{"name": NaN, "seq": NaN}',
    "Infinity": b'{"value": Infinity}',
    "deeply nested arrays": b"[" * 10_000 + b"]" * 10_000,
    "deeply nested objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "nested deeper than the limit": b'{"a":' * 150 + b"1" + b"}" * 150,
    "integer of 5000 digits": b'{"seq": ' + b"9" * 5000 + b"}",
    "unterminated string": b'{"name": "x',
    "lone backslash": b'{"name": "\\"}',
}


def check_malformed_json(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    world = fresh(client)
    for label, raw in MALFORMED.items():
        for ctype in ("application/json", "text/plain"):
            for request in tgt.requests(world, f"{label} ({ctype})", raw=raw,
                                        content_type=ctype, json_only=True):
                expect_error(outcome, client, request, (400,))
    for request in tgt.requests(world, "form-encoded body", raw=b"name=x&mode=y",
                                content_type="application/x-www-form-urlencoded",
                                json_only=True):
        expect_error(outcome, client, request, (400,))
    # methods without a JSON body ignore one, or take it as bytes (never fail because of it)
    others = [m for m in tgt.methods if m not in tgt.json_methods()]
    samples = [*list(MALFORMED.items())[:4], ("deep", MALFORMED["deeply nested arrays"])]
    for method in others:
        for label, raw in samples:
            for who in range(tgt.identities()):  # a world each: the request may succeed
                request = list(tgt.requests(fresh(client), f"ignored body: {label}", raw=raw,
                                            method=method))[who]
                response = request.send(client)
                if response.status_code >= 400:
                    error_body(outcome, request, response)
                if response.status_code not in tgt.spec.ok_for(method):
                    outcome.fail(request, response, f"expected {tgt.spec.ok_for(method)}")


NON_OBJECTS: dict[str, bytes] = {
    "list": b"[]", "list of objects": b'[{"name": "x"}]', "string": b'"name"',
    "number": b"42", "float": b"1.5", "null": b"null", "true": b"true", "false": b"false",
}


def check_non_object(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    world = fresh(client)
    for label, raw in NON_OBJECTS.items():
        for request in tgt.requests(world, f"body is {label}", raw=raw, json_only=True):
            expect_error(outcome, client, request, (400,))


def _json_fields(tgt: Target) -> list[tuple[Path, fields.Field]]:
    schema = tgt.json_schema()
    return list(walk(schema)) if schema is not None else []


def check_wrong_types(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    world = fresh(client)
    for path, fld in _json_fields(tgt):
        for value in wrong_json_values(fld):
            body = with_value(tgt.valid_body(world), path, value)
            for request in tgt.requests(world, f"{dotted(path)} = {value!r:.40}",
                                        json_body=body):
                expect_error(outcome, client, request, (400,), dotted(path))
        if fld.required and len(path) == 1:
            body = {k: v for k, v in tgt.valid_body(world).items() if k != path[0]}
            for request in tgt.requests(world, f"{dotted(path)} missing", json_body=body):
                expect_error(outcome, client, request, (400,), dotted(path))
    query = tgt.query_schema()
    for name, fld in (query.fields.items() if query is not None else ()):
        for value in wrong_query_values(fld):
            for request in tgt.requests(world, f"?{name}={value[:20]}", query=f"{name}={value}"):
                expect_error(outcome, client, request, (400,), name)
    if tgt.spec.body == BINARY:
        for request in tgt.requests(world, "empty body", raw=b"",
                                    content_type="application/octet-stream"):
            expect_error(outcome, client, request, (400,))
        multipart = (b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"; "
                     b"filename=\"a\"\r\n\r\nabc\r\n--XyZ--\r\n")
        for request in tgt.requests(world, "multipart without a file part", raw=multipart,
                                    content_type="multipart/form-data; boundary=XyZ"):
            expect_error(outcome, client, request, (400,))
        for request in tgt.requests(world, "multipart without a boundary", raw=b"abc",
                                    content_type="multipart/form-data"):
            expect_error(outcome, client, request, (400,))
        for request in tgt.requests(world, "truncated multipart", raw=multipart[:40],
                                    content_type="multipart/form-data; boundary=XyZ"):
            expect_error(outcome, client, request, (400,))


HUGE = 2 * 1024 * 1024


def check_oversized(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    world = fresh(client)
    for path, fld in _json_fields(tgt):
        if isinstance(fld, Text) and fld.max_length is not None:
            body = with_value(tgt.valid_body(world), path, "a" * (fld.max_length + 1))
            for request in tgt.requests(world, f"{dotted(path)} of {fld.max_length + 1} chars",
                                        json_body=body):
                expect_error(outcome, client, request, (400,), dotted(path))
            if not fld.validators and path[0] != "vineyard_id":
                # the limit itself is fine (fresh world: a success changes state)
                own = fresh(client)
                body = with_value(tgt.valid_body(own), path, "é" * fld.max_length)
                for request in list(tgt.requests(own, f"{dotted(path)} of exactly "
                                                 f"{fld.max_length} chars", json_body=body))[:1]:
                    expect_ok(outcome, client, request, tgt.spec)
        if isinstance(fld, fields.String) and not isinstance(fld, fields.UUID):
            body = with_value(tgt.valid_body(world), path, "a" * HUGE)
            for request in tgt.requests(world, f"{dotted(path)} of 2 MiB", json_body=body):
                expect_error(outcome, client, request, (400, 413), dotted(path))
        if isinstance(fld, StrictInt):
            for value in (2**63, -(2**63) - 1, 10**30, -1 if fld.validators else None):
                if value is None:
                    continue
                body = with_value(tgt.valid_body(world), path, value)
                for request in tgt.requests(world, f"{dotted(path)} = {value}", json_body=body):
                    expect_error(outcome, client, request, (400,), dotted(path))
        if isinstance(fld, StrictNumber):
            for raw_value in (b"1e400", b"-1e400"):
                body = with_value(tgt.valid_body(world), path, "__PLACEHOLDER__")
                raw = json.dumps(body).replace('"__PLACEHOLDER__"', raw_value.decode()).encode()
                for request in tgt.requests(world, f"{dotted(path)} = {raw_value.decode()}",
                                            raw=raw):
                    expect_error(outcome, client, request, (400,), dotted(path))
        if isinstance(fld, fields.Dict):
            body = with_value(tgt.valid_body(world), path, {"blob": "a" * HUGE})
            for request in tgt.requests(world, f"{dotted(path)} of 2 MiB", json_body=body):
                response = request.send(client)
                if response.status_code >= 400:
                    error_body(outcome, request, response)
        if isinstance(fld, fields.List) and not isinstance(fld.inner, fields.Nested):
            body = with_value(tgt.valid_body(world), path, ["a"] * 10_000)
            for request in tgt.requests(world, f"{dotted(path)} of 10000 items", json_body=body):
                expect_error(outcome, client, request, (400,), dotted(path))
    if tgt.spec.body in (SCHEMA, OBJECT):
        body = {**tgt.valid_body(world), "padding": "a" * (9 * 1024 * 1024)}
        for request in tgt.requests(world, "a 9 MiB JSON body", json_body=body,
                                    json_only=True):
            expect_error(outcome, client, request, (413,))
        # methods that take bytes (Terraform state) have their own, larger limit
        for method in [m for m in ("POST", "PUT") if m in tgt.methods
                       and m not in tgt.json_methods()]:
            for request in tgt.requests(fresh(client), "a 9 MiB raw body", method=method,
                                        raw=b"a" * (9 * 1024 * 1024),
                                        content_type="application/octet-stream"):
                expect_ok(outcome, client, request, tgt.spec)
    if tgt.spec.object_limit is not None:
        blob = {"blob": "a" * (tgt.spec.object_limit + 1)}
        for request in tgt.requests(world, f"object over {tgt.spec.object_limit} bytes",
                                    json_body=blob, json_only=True):
            expect_error(outcome, client, request, (413,))


def check_nul(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    world = fresh(client)
    bad_strings = {"NUL": "a\x00b", "lone surrogate": "a\ud800b"}
    for label, bad in bad_strings.items():
        for path, fld in _json_fields(tgt):
            if isinstance(fld, fields.String):
                body = with_value(tgt.valid_body(world), path, bad)
                for request in tgt.requests(world, f"{label} in {dotted(path)}", json_body=body):
                    expect_error(outcome, client, request, (400,), dotted(path))
            if isinstance(fld, fields.Dict):
                for where, value in (("key", {bad: 1}), ("value", {"k": bad}),
                                     ("nested value", {"k": {"j": [1, {"i": bad}]}}),
                                     ("nested key", {"k": [{bad: 1}]})):
                    body = with_value(tgt.valid_body(world), path, value)
                    for request in tgt.requests(world, f"{label} in {dotted(path)} {where}",
                                                json_body=body):
                        expect_error(outcome, client, request, (400,), dotted(path))
        if tgt.spec.body == OBJECT:
            for where, value in (("key", {bad: 1}), ("value", {"k": bad}),
                                 ("nested", {"k": {"j": [bad]}})):
                body = {**tgt.valid_body(world), **value}
                for request in tgt.requests(world, f"{label} in the object's {where}",
                                            json_body=body, json_only=True):
                    expect_error(outcome, client, request, (400,))
        if tgt.spec.body == SCHEMA:
            # an unknown key is ignored, whatever it contains; it must not break anything
            body = {**tgt.valid_body(world), f"unknown{bad}": bad}
            for request in tgt.requests(fresh(client), f"{label} in an unknown key",
                                        json_body=body):
                response = request.send(client)
                if response.status_code >= 400:
                    error_body(outcome, request, response)
    if tgt.spec.body == SCHEMA:
        # the same characters as raw JSON escapes (not via json.dumps)
        body = tgt.valid_body(world)
        first_text = next((p for p, f in _json_fields(tgt) if isinstance(f, Text)
                           and len(p) == 1), None)
        if first_text is not None:
            for escape in ("\\u0000", "\\ud800", "\\udfff\\ud800"):
                raw = json.dumps(with_value(body, first_text, "__X__")).replace(
                    "__X__", f"a{escape}b").encode()
                for request in tgt.requests(world, f"{escape} in {dotted(first_text)}",
                                            raw=raw):
                    expect_error(outcome, client, request, (400,), dotted(first_text))
    query = tgt.query_schema()
    for name in (query.fields if query is not None else ()):
        for request in tgt.requests(world, f"NUL in ?{name}", query=f"{name}=a%00b"):
            expect_error(outcome, client, request, (400,), name)


def _with_extras(body: Any, schema: Schema) -> Any:
    """``body`` with unknown keys added to it and to every nested schema object in it."""
    if not isinstance(body, dict):
        return body
    out = {**body, "x_unknown_field": {"future": [1, "two", None]}, "x_unknown_scalar": 1}
    for name, fld in schema.fields.items():
        key = fld.data_key or name
        if key not in out:
            continue
        if isinstance(fld, fields.Nested):
            out[key] = _with_extras(out[key], fld.schema)
        elif isinstance(fld, fields.List) and isinstance(fld.inner, fields.Nested) \
                and isinstance(out[key], list):
            out[key] = [_with_extras(item, fld.inner.schema) for item in out[key]]
    return out


def check_unknown_fields(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    schema = tgt.json_schema()
    if schema is not None:
        for who in range(tgt.identities()):
            world = fresh(client)
            body = _with_extras(tgt.valid_body(world), schema)
            request = list(tgt.requests(world, "unknown fields", json_body=body))[who]
            expect_ok(outcome, client, request, tgt.spec)
    if tgt.query_schema() is not None:
        for request in tgt.requests(fresh(client), "unknown query parameter",
                                    query="x_unknown=1&x_other=%00"):
            expect_ok(outcome, client, request, tgt.spec)


BAD_IDS = {
    "not a UUID": "not-a-uuid", "number": "123", "almost a UUID": "0" * 35 + "g",
    "UUID with braces": "{" + "0" * 32 + "}", "NUL": "a%00b", "dots": "..",
    "non-ASCII": "%C3%A9t%C3%A9", "invalid UTF-8": "%FF%FE", "10000 chars": "a" * 10_000,
    "unknown UUID": "9f0c2b1e-7c1a-4d8e-9a3b-000000000000", "spaces": "%20%20",
}


def check_bad_ids(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    if not tgt.args:
        return
    world = fresh(client)
    for arg in tgt.args:
        for label, bad in BAD_IDS.items():
            path = tgt.path(world, {arg: bad})
            for request in tgt.requests(world, f"{arg} {label}", path=path):
                if tgt.spec.body == BINARY:
                    request.raw, request.content_type = b"plan", "application/octet-stream"
                expect_error(outcome, client, request, (404,))


def check_wrong_method(tgt: Target, client: FlaskClient, outcome: Outcome) -> None:
    world = fresh(client)
    path = tgt.path(world)
    adapter = client.application.url_map.bind("localhost")
    allowed = set(adapter.allowed_methods(path))
    for method in METHODS:
        if method in allowed:
            continue
        for label, headers in [("anonymous", {}), *tgt.auth_headers(world)]:
            request = Request(label=f"{method} as {label}", method=method, path=path,
                              headers=headers, raw=b"{}")
            expect_error(outcome, client, request, (405,))


CHECKS: dict[str, Callable[[Target, FlaskClient, Outcome], None]] = {
    "valid": check_valid,
    "unauthenticated": check_unauthenticated,
    "malformed_json": check_malformed_json,
    "non_object": check_non_object,
    "wrong_types": check_wrong_types,
    "oversized": check_oversized,
    "nul": check_nul,
    "unknown_fields": check_unknown_fields,
    "bad_ids": check_bad_ids,
    "wrong_method": check_wrong_method,
}
assert set(CHECKS) == set(CATEGORIES)
