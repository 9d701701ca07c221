"""domain.md "finalizeDeployment()": outputs of a successful DEPLOY fill the vine's component
tables, in both output shapes; outputs that cannot be applied fail the vine, not the job."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.worker_helpers import Driver

DB_OUTPUTS = {
    "rds_cluster_endpoint": ("endpoint", "main.cluster-abc.eu-west-1.rds.amazonaws.com"),
    "rds_cluster_reader_endpoint": ("reader_endpoint",
                                    "main.cluster-ro-abc.eu-west-1.rds.amazonaws.com"),
    "rds_cluster_identifier": ("cluster_identifier", "main"),
    "rds_cluster_arn": ("cluster_arn", "arn:aws:rds:eu-west-1:123456789012:cluster:main"),
    "rds_master_credentials_secret_arn": (
        "master_credentials_secret_arn",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:master"),
    "rds_extra_credentials_secret_arn": (
        "extra_credentials_secret_arn",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:extra"),
    "rds_credentials_kms_key_arn": ("credentials_kms_key_arn",
                                    "arn:aws:kms:eu-west-1:123456789012:key/k"),
}
CACHE_OUTPUTS = {
    "redis_primary_endpoint_address": ("endpoint", "primary.cache.example"),
    "redis_reader_endpoint_address": ("reader_endpoint", "reader.cache.example"),
}
CLUSTER = {
    "cluster_name": "api-backend-production",
    "cluster_endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
    "argocd_url": "https://argocd.example",
    "argocd_admin_password": "s3cret",
}
CLUSTER_ARN = "arn:aws:eks:eu-west-1:123456789012:cluster/api-backend-production"


def wrapped(value: Any, sensitive: bool = False) -> dict[str, Any]:
    """The ``terraform output -json`` shape."""
    kind: Any = "string" if isinstance(value, str) else ["object", {}]
    return {"value": value, "type": kind, "sensitive": sensitive}


def full_outputs(shape: str) -> dict[str, Any]:
    plain: dict[str, Any] = {**CLUSTER, "eks_cluster_arn": CLUSTER_ARN}
    plain.update({name: value for name, (_, value) in DB_OUTPUTS.items()})
    plain.update({name: value for name, (_, value) in CACHE_OUTPUTS.items()})
    if shape == "plain":
        return plain
    return {name: wrapped(value, sensitive="password" in name) for name, value in plain.items()}


def deploy(driver: Driver, vine: dict[str, Any], metadata: dict[str, Any],
           *, split: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a DEPLOY to SUCCESS with ``metadata``; returns (job, vine) as the API shows them."""
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    if split:  # outputs streamed in a PROCESSING post, SUCCESS without metadata
        driver.status(worker, job["id"], "PROCESSING", execution_metadata=metadata)
        done = driver.status(worker, job["id"], "SUCCESS")["job"]
    else:
        driver.status(worker, job["id"], "PROCESSING")
        done = driver.status(worker, job["id"], "SUCCESS", execution_metadata=metadata)["job"]
    assert done["status"] == "SUCCESS"
    assert driver.get_job(job["id"])["status"] == "SUCCESS"
    return done, driver.get_vine(vine["id"])


def assert_fully_applied(after: dict[str, Any]) -> None:
    assert after["status"] == "ACTIVE", after["status_message"]
    assert after["status_message"] is None
    cluster = after["cluster"]
    for column, value in CLUSTER.items():
        assert cluster[column] == value, column
    assert cluster["cluster_arn"] == CLUSTER_ARN
    assert cluster["status"] == "ACTIVE"
    (db,) = after["databases"]
    for column, value in DB_OUTPUTS.values():
        assert db[column] == value, column
    assert db["status"] == "ACTIVE"
    (cache,) = after["caches"]
    for column, value in CACHE_OUTPUTS.values():
        assert cache[column] == value, column
    assert cache["status"] == "ACTIVE"


@pytest.mark.parametrize("shape", ["plain", "terraform-json"])
def test_all_outputs_applied(driver: Driver, shape: str) -> None:
    vine = driver.vine()
    _, after = deploy(driver, vine, {"outputs": full_outputs(shape)})
    assert_fully_applied(after)


def test_outputs_merged_from_earlier_posts(driver: Driver) -> None:
    vine = driver.vine()
    _, after = deploy(driver, vine, {"outputs": full_outputs("plain")}, split=True)
    assert_fully_applied(after)


def test_mixed_shapes(driver: Driver) -> None:
    vine = driver.vine()
    outputs = full_outputs("plain")
    for name in ("rds_cluster_endpoint", "argocd_admin_password", "eks_cluster_arn"):
        outputs[name] = wrapped(outputs[name], sensitive=True)
    _, after = deploy(driver, vine, {"outputs": outputs})
    assert_fully_applied(after)


def test_cluster_fields_at_top_level(driver: Driver) -> None:
    """The seed's shape: cluster fields at the top level of execution_metadata."""
    vine = driver.vine()
    outputs = {k: v for k, v in full_outputs("plain").items() if k not in CLUSTER}
    _, after = deploy(driver, vine, {**CLUSTER, "outputs": outputs})
    assert_fully_applied(after)


@pytest.mark.parametrize("shape", ["plain", "terraform-json"])
def test_eks_aliases(driver: Driver, shape: str) -> None:
    vine = driver.vine(databases=0, caches=0)
    value = (lambda v: v) if shape == "plain" else wrapped
    _, after = deploy(driver, vine, {"outputs": {
        "eks_cluster_name": value("eks-name"),
        "eks_cluster_endpoint": value("https://eks.example"),
        "eks_cluster_arn": value(CLUSTER_ARN),
    }})
    assert after["status"] == "ACTIVE"
    assert after["cluster"]["cluster_name"] == "eks-name"
    assert after["cluster"]["cluster_endpoint"] == "https://eks.example"
    assert after["cluster"]["cluster_arn"] == CLUSTER_ARN
    assert after["cluster"]["status"] == "ACTIVE"


def test_vine_without_databases_or_caches_needs_no_outputs(driver: Driver) -> None:
    vine = driver.vine(databases=0, caches=0)
    _, after = deploy(driver, vine, {})
    assert after["status"] == "ACTIVE"
    assert after["cluster"]["status"] == "ACTIVE"


@pytest.mark.parametrize("shape", ["plain", "terraform-json"])
def test_multi_row_maps(driver: Driver, shape: str) -> None:
    vine = driver.vine(databases=2, caches=2)
    databases = {
        f"db{i}": {"cluster_endpoint": f"db{i}.example",
                   "cluster_reader_endpoint": f"db{i}-ro.example",
                   "cluster_identifier": f"db{i}",
                   "cluster_arn": f"arn:aws:rds:eu-west-1:123456789012:cluster:db{i}",
                   "master_credentials_secret_arn": f"arn:secret:db{i}:master",
                   "extra_credentials_secret_arn": f"arn:secret:db{i}:extra",
                   "credentials_kms_key_arn": f"arn:kms:db{i}"}
        for i in range(2)
    }
    caches = {f"cache{i}": {"primary_endpoint_address": f"cache{i}.example",
                            "reader_endpoint_address": f"cache{i}-ro.example"}
              for i in range(2)}
    outputs: dict[str, Any] = {"databases": databases, "caches": caches}
    if shape == "terraform-json":
        outputs = {name: wrapped(value) for name, value in outputs.items()}
    _, after = deploy(driver, vine, {"outputs": outputs})
    assert after["status"] == "ACTIVE", after["status_message"]
    rows = {d["name"]: d for d in after["databases"]}
    for i in range(2):
        db = rows[f"db{i}"]
        assert db["endpoint"] == f"db{i}.example"
        assert db["reader_endpoint"] == f"db{i}-ro.example"
        assert db["cluster_identifier"] == f"db{i}"
        assert db["cluster_arn"] == f"arn:aws:rds:eu-west-1:123456789012:cluster:db{i}"
        assert db["master_credentials_secret_arn"] == f"arn:secret:db{i}:master"
        assert db["extra_credentials_secret_arn"] == f"arn:secret:db{i}:extra"
        assert db["credentials_kms_key_arn"] == f"arn:kms:db{i}"
        assert db["status"] == "ACTIVE"
    cache_rows = {c["name"]: c for c in after["caches"]}
    for i in range(2):
        assert cache_rows[f"cache{i}"]["endpoint"] == f"cache{i}.example"
        assert cache_rows[f"cache{i}"]["reader_endpoint"] == f"cache{i}-ro.example"
        assert cache_rows[f"cache{i}"]["status"] == "ACTIVE"


def test_single_row_map_accepted_too(driver: Driver) -> None:
    vine = driver.vine(databases=1, caches=0)
    _, after = deploy(driver, vine, {"outputs": {
        "databases": {"db0": {"cluster_endpoint": "db0.example"}}}})
    assert after["status"] == "ACTIVE"
    assert after["databases"][0]["endpoint"] == "db0.example"


# -- outputs that cannot be applied ---------------------------------------------------------


def assert_vine_failed(driver: Driver, vine: dict[str, Any], metadata: dict[str, Any],
                       names: str) -> dict[str, Any]:
    done, after = deploy(driver, vine, metadata)
    assert done["status"] == "SUCCESS"  # the apply happened
    assert after["status"] == "FAILED"
    assert names in after["status_message"], after["status_message"]
    return after


def test_missing_database_output(driver: Driver) -> None:
    vine = driver.vine(databases=1, caches=0)
    outputs = {k: v for k, v in full_outputs("plain").items()
               if k != "rds_cluster_endpoint" and not k.startswith("redis_")}
    assert_vine_failed(driver, vine, {"outputs": outputs}, "rds_cluster_endpoint")


def test_no_outputs_at_all_for_a_vine_with_a_database(driver: Driver) -> None:
    vine = driver.vine(databases=1, caches=0)
    assert_vine_failed(driver, vine, {"phase": "done"}, "rds_cluster_endpoint")


def test_missing_cache_output(driver: Driver) -> None:
    vine = driver.vine(databases=0, caches=1)
    assert_vine_failed(driver, vine, {"outputs": {"redis_reader_endpoint_address": "r"}},
                       "redis_primary_endpoint_address")


def test_several_databases_need_the_map(driver: Driver) -> None:
    vine = driver.vine(databases=2, caches=0)
    assert_vine_failed(driver, vine, {"outputs": {"rds_cluster_endpoint": "db.example"}},
                       "databases")


def test_map_missing_a_row(driver: Driver) -> None:
    vine = driver.vine(databases=2, caches=0)
    assert_vine_failed(driver, vine, {"outputs": {"databases": {
        "db0": {"cluster_endpoint": "db0.example"}}}}, "db1")


@pytest.mark.parametrize("name,value", [
    ("rds_cluster_endpoint", ["db.example"]),
    ("rds_cluster_endpoint", {"host": "db.example"}),
    ("rds_cluster_endpoint", {"value": {"host": "db.example"}, "type": "object"}),
    ("redis_primary_endpoint_address", True),
    ("cluster_name", ["x"]),
    ("eks_cluster_arn", {"arn": 1}),
])
def test_wrong_types_fail_the_vine(driver: Driver, name: str, value: Any) -> None:
    vine = driver.vine()
    outputs = {**full_outputs("plain"), name: value}
    assert_vine_failed(driver, vine, {"outputs": outputs}, name)


@pytest.mark.parametrize("value", ["not a map", ["db0"], 3])
def test_databases_map_of_wrong_type(driver: Driver, value: Any) -> None:
    vine = driver.vine(databases=2, caches=0)
    assert_vine_failed(driver, vine, {"outputs": {"databases": value}}, "databases")


def test_outputs_not_an_object(driver: Driver) -> None:
    vine = driver.vine()
    assert_vine_failed(driver, vine, {"outputs": ["x"]}, "outputs")


def test_a_later_good_deploy_recovers(driver: Driver) -> None:
    vine = driver.vine()
    assert_vine_failed(driver, vine, {"outputs": {}}, "rds_cluster_endpoint")
    _, after = deploy(driver, vine, {"outputs": full_outputs("plain")})
    assert_fully_applied(after)
