"""Cloud identities and vineyards through the operator API."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import ROLE_ARN, Api

GUID = "0b6f2c4e-8d1a-4e7b-9c3d-2a5f6e7d8c9b"


# -- cloud identities ---------------------------------------------------------------------------


def test_create_aws_identity_generates_external_id_and_account(api: Api) -> None:
    body = api.create_identity(name="prod")
    assert body["provider"] == "aws" and body["name"] == "prod"
    creds = body["credentials"]
    assert creds["role_arn"] == ROLE_ARN
    assert creds["account_id"] == "123456789012"
    assert str(uuid.UUID(creds["external_id"])) == creds["external_id"]
    assert body["is_verified"] is False
    assert set(body) >= {"id", "created_at", "updated_at"}
    assert api.get(f"/api/cloud-identities/{body['id']}") == body


def test_create_aws_identity_keeps_given_external_id(api: Api) -> None:
    body = api.create_identity(external_id="customer-42:vintner")
    assert body["credentials"]["external_id"] == "customer-42:vintner"


@pytest.mark.parametrize(("credentials", "field"), [
    ({"role_arn": "arn:aws:iam::123:role/X"}, "credentials.role_arn"),
    ({"role_arn": "not an arn"}, "credentials.role_arn"),
    ({}, "credentials.role_arn"),
    ({"role_arn": ROLE_ARN, "external_id": "x"}, "credentials.external_id"),
    ({"role_arn": ROLE_ARN, "external_id": 12345}, "credentials.external_id"),
])
def test_invalid_aws_credentials(api: Api, credentials: dict, field: str) -> None:
    body = api.post("/api/cloud-identities",
                    {"provider": "aws", "name": "x", "credentials": credentials}, expect=400)
    assert field in body["errors"]
    assert body["code"] == 400 and body["error"]


def test_gcp_and_azure_identities(api: Api) -> None:
    gcp = api.post("/api/cloud-identities", {"provider": "gcp", "name": "g", "credentials": {
        "project_id": "p", "project_number": "123", "service_account_email": "sa@p.iam",
        "wif_config": {"type": "external_account"}}})
    assert gcp["credentials"]["wif_config"] == {"type": "external_account"}
    azure = api.post("/api/cloud-identities", {"provider": "azure", "name": "a", "credentials": {
        "tenant_id": GUID, "client_id": GUID, "subscription_id": GUID}})
    assert azure["credentials"]["tenant_id"] == GUID
    bad = api.post("/api/cloud-identities", {"provider": "azure", "name": "a", "credentials": {
        "tenant_id": "nope", "client_id": GUID, "subscription_id": GUID}}, expect=400)
    assert "credentials.tenant_id" in bad["errors"]


def test_unknown_provider_names_allowed_values(api: Api) -> None:
    body = api.post("/api/cloud-identities",
                    {"provider": "oracle", "name": "x", "credentials": {}}, expect=400)
    assert "aws, gcp, azure" in body["errors"]["provider"][0]


@pytest.mark.parametrize("payload", [
    {"name": "x", "credentials": {}},  # provider missing
    {"provider": "aws", "credentials": {"role_arn": ROLE_ARN}},  # name missing
    {"provider": "aws", "name": "x"},  # credentials missing
    {"provider": "aws", "name": "x", "credentials": "arn"},  # credentials not an object
    {"provider": "aws", "name": "", "credentials": {"role_arn": ROLE_ARN}},
    {"provider": "aws", "name": "x" * 101, "credentials": {"role_arn": ROLE_ARN}},
    {"provider": "aws", "name": "a\x00b", "credentials": {"role_arn": ROLE_ARN}},
    {"provider": "aws", "name": "x", "credentials": {"role_arn": ROLE_ARN, "k": "v\x00"}},
])
def test_identity_bad_input(api: Api, payload: dict) -> None:
    body = api.post("/api/cloud-identities", payload, expect=400)
    assert body["error"] and body["errors"]


def test_identity_listing_and_pagination(api: Api) -> None:
    ids = [api.create_identity(name=f"id{i}")["id"] for i in range(5)]
    page = api.get("/api/cloud-identities?limit=2&offset=1")
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [i["id"] for i in page["cloud_identities"]] == ids[1:3]
    everything = api.get("/api/cloud-identities")
    assert everything["limit"] == 20 and everything["offset"] == 0
    assert [i["id"] for i in everything["cloud_identities"]] == ids


def test_identity_not_found(api: Api) -> None:
    for ident in (str(uuid.uuid4()), "not-a-uuid", "1234"):
        body = api.get(f"/api/cloud-identities/{ident}", expect=404)
        assert body == {"error": "Cloud identity not found", "code": 404}


# -- vineyards ----------------------------------------------------------------------------------


def test_vineyard_create_get_list(api: Api) -> None:
    created = api.create_vineyard("prod", "Production vines")
    assert created["name"] == "prod" and created["description"] == "Production vines"
    assert api.get(f"/api/vineyards/{created['id']}") == created
    other = api.post("/api/vineyards", {"name": "dev"})
    assert other["description"] is None
    listing = api.get("/api/vineyards")
    assert listing["total"] == 2
    assert {v["name"] for v in listing["vineyards"]} == {"prod", "dev"}


def test_duplicate_vineyard_name_is_409(api: Api) -> None:
    api.create_vineyard("prod")
    body = api.post("/api/vineyards", {"name": "prod"}, expect=409)
    assert body["code"] == 409 and "already exists" in body["error"]


@pytest.mark.parametrize("payload", [
    {}, {"name": ""}, {"name": 7}, {"name": "x" * 101}, {"name": "a\x00"},
    {"name": "ok", "description": 5}, {"name": "ok", "description": "d" * 2001},
])
def test_vineyard_bad_input(api: Api, payload: dict) -> None:
    assert api.post("/api/vineyards", payload, expect=400)["errors"]


def test_vineyard_pagination_bounds(api: Api) -> None:
    for i in range(3):
        api.create_vineyard(f"v{i}")
    assert len(api.get("/api/vineyards?limit=100")["vineyards"]) == 3
    assert api.get("/api/vineyards?offset=10")["vineyards"] == []
    for query in ("limit=0", "limit=101", "offset=-1", "limit=abc", "limit=1.5"):
        body = api.get(f"/api/vineyards?{query}", expect=400)
        assert body["error"] and body["errors"]


def test_vineyard_not_found(api: Api) -> None:
    assert api.get(f"/api/vineyards/{uuid.uuid4()}", expect=404)["error"] == "Vineyard not found"
    assert api.get("/api/vineyards/nope", expect=404)["error"] == "Vineyard not found"


# -- request bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/vineyards", "/api/cloud-identities", "/api/vines",
                                 "/api/jobs"])
def test_malformed_and_non_object_bodies(client: FlaskClient, operator_headers: dict,
                                         url: str) -> None:
    headers = {**operator_headers, "Content-Type": "application/json"}
    malformed = client.post(url, data=b'{"name": ', headers=headers)
    assert malformed.status_code == 400
    assert malformed.get_json()["error"] == "Malformed JSON body"
    for body in (b"[1, 2]", b'"text"', b"42", b"null"):
        response = client.post(url, data=body, headers=headers)
        assert response.status_code == 400, body
        assert response.is_json and response.get_json()["error"]
    empty = client.post(url, data=b"", headers=headers)
    assert empty.status_code == 400 and empty.get_json()["errors"]
    invalid_utf8 = client.post(url, data=b'{"name": "\xff"}', headers=headers)
    assert invalid_utf8.status_code == 400 and invalid_utf8.is_json


def test_oversized_body_is_413(client: FlaskClient, operator_headers: dict) -> None:
    big = b'{"name": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    response = client.post("/api/vineyards", data=big,
                           headers={**operator_headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.is_json and response.get_json()["error"]


def test_unknown_fields_are_ignored(api: Api) -> None:
    body = api.post("/api/vineyards", {"name": "x", "colour": "red"})
    assert "colour" not in body
