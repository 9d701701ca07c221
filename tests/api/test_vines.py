"""Vine documents through the operator API: create, read, list, PATCH, validation."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from tests.api.conftest import Api

FINALIZE_CLUSTER_FIELDS = ("cluster_name", "cluster_endpoint", "cluster_arn", "argocd_url",
                           "argocd_admin_password")


def _config(doc: dict[str, Any]) -> dict[str, Any]:
    """The configuration part of a vine response (what a client sent)."""
    return {
        "vineyard_id": doc["vineyard_id"], "cloud_identity_id": doc["cloud_identity_id"],
        "project_name": doc["project_name"], "environment_stage": doc["environment_stage"],
        "region": doc["region"], "terraform_version": doc["terraform_version"],
        "terraform": doc["terraform"],
    }


def test_create_returns_the_document_with_ids_and_status(api: Api) -> None:
    vineyard = api.create_vineyard()
    identity = api.create_identity()
    sent = api.vine_document(vineyard["id"], identity["id"])
    vine = api.post("/api/vines", sent)
    assert vine["status"] == "DRAFT" and vine["status_message"] is None
    assert _config(vine) == {k: sent[k] for k in _config(vine)}
    cluster = vine["cluster"]
    for key, value in sent["cluster"].items():
        assert cluster[key] == value
    assert cluster["status"] == "PENDING"
    assert all(cluster[f] is None for f in FINALIZE_CLUSTER_FIELDS)
    [db] = vine["databases"]
    assert db["name"] == "main" and db["min_capacity"] == 0.5 and db["max_capacity"] == 4
    assert db["endpoint"] is None and db["status"] == "PENDING"
    [cache] = vine["caches"]
    assert cache["engine"] == "valkey" and cache["num_cache_nodes"] == 1
    assert vine["network"]["cidr_block"] == "10.0.0.0/16"
    assert vine["network"]["provision_network"] is True
    for part in (cluster, db, cache, vine["network"]):
        uuid.UUID(part["id"])
    # GET returns the same document
    assert api.get(f"/api/vines/{vine['id']}") == vine


def test_minimal_vine_gets_defaults_and_a_cluster(api: Api) -> None:
    vineyard = api.create_vineyard()
    vine = api.post("/api/vines", {"vineyard_id": vineyard["id"], "project_name": "tiny"})
    assert vine["environment_stage"] == "development"
    assert vine["region"] == "eu-west-1"
    assert vine["terraform"] == {} and vine["cloud_identity_id"] is None
    assert vine["cluster"] is not None and vine["cluster"]["instance_types"] is None
    assert vine["databases"] == [] and vine["caches"] == [] and vine["network"] is None


def test_get_document_round_trips_through_patch(api: Api) -> None:
    vine = api.create_vine()
    # send back everything GET returned (ids, status, timestamps, finalize columns): ignored
    again = api.patch(f"/api/vines/{vine['id']}", copy.deepcopy(vine))
    for key in ("id", "status", "created_at", "cluster", "databases", "caches", "network"):
        if key == "cluster":
            assert again[key]["id"] == vine[key]["id"]
        elif key in ("databases", "caches"):
            assert [c["id"] for c in again[key]] == [c["id"] for c in vine[key]]
        elif key == "network":
            assert again[key]["id"] == vine[key]["id"]
        else:
            assert again[key] == vine[key]
    assert _config(again) == _config(vine)


def test_patch_is_partial(api: Api) -> None:
    vine = api.create_vine()
    url = f"/api/vines/{vine['id']}"
    patched = api.patch(url, {"region": "us-east-1", "cluster": {"node_desired_size": 3}})
    assert patched["region"] == "us-east-1"
    assert patched["project_name"] == vine["project_name"]
    assert patched["cluster"]["node_desired_size"] == 3
    assert patched["cluster"]["instance_types"] == ["t3.large"]  # untouched field kept
    assert patched["databases"] == vine["databases"] or (
        [d["id"] for d in patched["databases"]] == [d["id"] for d in vine["databases"]])
    assert api.get(url)["region"] == "us-east-1"


def test_patch_components_match_by_name(api: Api) -> None:
    vine = api.create_vine()
    url = f"/api/vines/{vine['id']}"
    main_id = vine["databases"][0]["id"]
    patched = api.patch(url, {"databases": [
        {"name": "main", "max_capacity": 8},
        {"name": "analytics", "engine": "aurora-postgresql"},
    ], "caches": [], "network": None})
    by_name = {d["name"]: d for d in patched["databases"]}
    assert by_name["main"]["id"] == main_id  # kept its id (and status and outputs)
    assert by_name["main"]["max_capacity"] == 8
    assert by_name["main"]["engine"] == "aurora-postgresql"
    assert by_name["analytics"]["status"] == "PENDING"
    assert patched["caches"] == [] and patched["network"] is None
    stored = api.get(url)
    assert {d["name"] for d in stored["databases"]} == {"main", "analytics"}
    assert stored["caches"] == [] and stored["network"] is None


def test_patch_identity_and_stage(api: Api) -> None:
    vine = api.create_vine()
    other = api.create_identity(name="other")
    url = f"/api/vines/{vine['id']}"
    patched = api.patch(url, {"cloud_identity_id": other["id"], "environment_stage": "production"})
    assert patched["cloud_identity_id"] == other["id"]
    assert patched["environment_stage"] == "production"
    assert api.patch(url, {"cloud_identity_id": None})["cloud_identity_id"] is None
    missing = api.patch(url, {"cloud_identity_id": str(uuid.uuid4())}, expect=404)
    assert missing["error"] == "Cloud identity not found"


def test_patch_cannot_move_vine(api: Api) -> None:
    vine = api.create_vine()
    url = f"/api/vines/{vine['id']}"
    api.patch(url, {"vineyard_id": vine["vineyard_id"]})  # unchanged: fine
    elsewhere = api.create_vineyard()
    body = api.patch(url, {"vineyard_id": elsewhere["id"]}, expect=400)
    assert "vineyard_id" in body["errors"]


def test_patch_empty_object_changes_nothing(api: Api) -> None:
    vine = api.create_vine()
    patched = api.patch(f"/api/vines/{vine['id']}", {})
    assert _config(patched) == _config(vine)


def test_vine_not_found(api: Api) -> None:
    for ident in (str(uuid.uuid4()), "nope"):
        assert api.get(f"/api/vines/{ident}", expect=404) == {"error": "Vine not found",
                                                              "code": 404}
        assert api.patch(f"/api/vines/{ident}", {"region": "x"}, expect=404)["code"] == 404


def test_create_with_unknown_references(api: Api) -> None:
    vineyard = api.create_vineyard()
    body = api.post("/api/vines", {"vineyard_id": str(uuid.uuid4()), "project_name": "p"},
                    expect=404)
    assert body["error"] == "Vineyard not found"
    body = api.post("/api/vines", {"vineyard_id": vineyard["id"], "project_name": "p",
                                   "cloud_identity_id": str(uuid.uuid4())}, expect=404)
    assert body["error"] == "Cloud identity not found"
    assert api.get("/api/vines")["total"] == 0


def test_list_and_filter_by_vineyard(api: Api) -> None:
    a, b = api.create_vineyard(), api.create_vineyard()
    identity = api.create_identity()
    in_a = [api.create_vine(a["id"], identity["id"])["id"] for _ in range(3)]
    in_b = api.create_vine(b["id"], identity["id"])["id"]
    everything = api.get("/api/vines")
    assert everything["total"] == 4 and len(everything["vines"]) == 4
    only_a = api.get(f"/api/vines?vineyard_id={a['id']}")
    assert only_a["total"] == 3 and {v["id"] for v in only_a["vines"]} == set(in_a)
    assert all(v["databases"] and v["cluster"] for v in only_a["vines"])
    page = api.get(f"/api/vines?vineyard_id={a['id']}&limit=2&offset=2")
    assert page["total"] == 3 and len(page["vines"]) == 1
    assert api.get(f"/api/vines?vineyard_id={b['id']}")["vines"][0]["id"] == in_b
    assert api.get(f"/api/vines?vineyard_id={uuid.uuid4()}")["total"] == 0
    assert "vineyard_id" in api.get("/api/vines?vineyard_id=zzz", expect=400)["errors"]


BAD_DOCUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"project_name": None}, "project_name"),
    ({"project_name": ""}, "project_name"),
    ({"project_name": "p" * 101}, "project_name"),
    ({"project_name": "a\x00b"}, "project_name"),
    ({"environment_stage": "qa"}, "environment_stage"),
    ({"region": 5}, "region"),
    ({"cloud_identity_id": "not-a-uuid"}, "cloud_identity_id"),
    ({"terraform": {"variables": {}}}, "terraform.module"),
    ({"terraform": {"module": "m", "variables": [1]}}, "terraform.variables"),
    ({"terraform": {"module": "m", "variables": {"k": "v\x00"}}}, "terraform.variables"),
    ({"terraform": "module"}, "terraform"),
    ({"cluster": {"node_min_size": "1"}}, "cluster.node_min_size"),
    ({"cluster": {"node_min_size": 1.5}}, "cluster.node_min_size"),
    ({"cluster": {"node_min_size": True}}, "cluster.node_min_size"),
    ({"cluster": {"node_min_size": -1}}, "cluster.node_min_size"),
    ({"cluster": {"node_min_size": 4, "node_max_size": 2}}, "cluster.node_min_size"),
    ({"cluster": {"node_min_size": 1, "node_max_size": 2, "node_desired_size": 3}},
     "cluster.node_desired_size"),
    ({"cluster": {"instance_types": "t3.large"}}, "cluster.instance_types"),
    ({"cluster": {"instance_types": [1]}}, "cluster.instance_types.0"),
    ({"cluster": None}, "cluster"),
    ({"databases": {"name": "x"}}, "databases"),
    ({"databases": [{"engine": "postgres"}]}, "databases.0.name"),
    ({"databases": [{"name": "x", "min_capacity": "2"}]}, "databases.0.min_capacity"),
    ({"databases": [{"name": "x", "max_capacity": True}]}, "databases.0.max_capacity"),
    ({"databases": [{"name": "x", "min_capacity": 4, "max_capacity": 1}]},
     "databases.0.min_capacity"),
    ({"databases": [{"name": "x"}, {"name": "x"}]}, "databases"),
    ({"caches": [{"name": "c", "engine": "memcached"}]}, "caches.0.engine"),
    ({"caches": [{"name": "c", "num_cache_nodes": "2"}]}, "caches.0.num_cache_nodes"),
    ({"caches": [{"name": "c", "num_cache_nodes": 0}]}, "caches.0.num_cache_nodes"),
    ({"network": {"provision_network": "yes"}}, "network.provision_network"),
    ({"network": {"cidr_block": "10.0.0.0/99"}}, "network.cidr_block"),
    ({"network": [1]}, "network"),
]


@pytest.mark.parametrize(("change", "field"), BAD_DOCUMENTS)
def test_bad_documents_are_400_naming_the_field(api: Api, change: dict, field: str) -> None:
    vineyard = api.create_vineyard()
    doc = api.vine_document(vineyard["id"])
    doc.update(change)
    body = api.post("/api/vines", doc, expect=400)
    assert body["code"] == 400 and body["error"]
    assert field in body["errors"], body
    # the same rules apply to PATCH
    vine = api.create_vine(vineyard["id"])
    patch_body = api.patch(f"/api/vines/{vine['id']}", change, expect=400)
    assert field in patch_body["errors"], patch_body


def test_enum_errors_name_the_allowed_values(api: Api) -> None:
    vineyard = api.create_vineyard()
    body = api.post("/api/vines", {**api.vine_document(vineyard["id"]),
                                   "environment_stage": "qa"}, expect=400)
    assert body["errors"]["environment_stage"] == [
        "Must be one of: development, staging, production."]
    body = api.post("/api/vines", {**api.vine_document(vineyard["id"]),
                                   "caches": [{"name": "c", "engine": "memcached"}]}, expect=400)
    assert body["errors"]["caches.0.engine"] == ["Must be one of: redis, valkey."]


def test_required_fields_on_create(api: Api) -> None:
    body = api.post("/api/vines", {}, expect=400)
    assert {"vineyard_id", "project_name"} <= set(body["errors"])
