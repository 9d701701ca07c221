"""The ``vintner`` command line against a real database (the one ``database_url`` selects).

Settings come from the environment, as for an operator; the HTTP app of ``tests/support/app.py``
shares the database, so what the CLI does can be checked over the API (a token printed by
``workers register`` authenticates a worker).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from tests.support.app import OPERATOR, OPERATOR_TOKEN
from vintner.cli import cli
from vintner.config import FOREIGN_ENV

ROLE_ARN = "arn:aws:iam::123456789012:role/VintnerProvisioner"
GUID = "0b6f2c4e-8d1a-4e7b-9c3d-2a5f6e7d8c9b"


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    for name in list(os.environ):
        if name.startswith("VINTNER_") and name not in FOREIGN_ENV or name == "VINTNER_CONFIG":
            monkeypatch.delenv(name)
    env = {
        "VINTNER_DATABASE_URL": database_url,
        "VINTNER_ARTIFACT_STORE": (tmp_path / "cli-artifacts").as_uri(),
        "VINTNER_ADMIN_TOKEN": OPERATOR_TOKEN,
        "VINTNER_INSTANCE_PATH": str(tmp_path / "cli-instance"),
        "VINTNER_SWEEP_ENABLED": "false",
        "VINTNER_LOG_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def run(*args: str, expect: int = 0, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture
def vine_file(cli_env: dict, tmp_path: Path) -> Path:
    vineyard = run_json("vineyards", "create", "prod")
    identity = run_json("identities", "create", "aws", "--name", "prod", "--role-arn", ROLE_ARN)
    doc = {
        "vineyard_id": vineyard["id"], "cloud_identity_id": identity["id"],
        "project_name": "shop", "environment_stage": "staging",
        "terraform": {"module": "vine-basic", "variables": {"replicas": 2}},
        "cluster": {"cluster_version": "1.30", "instance_types": ["t3.large"],
                    "node_min_size": 1, "node_max_size": 3, "node_desired_size": 2},
        "databases": [{"name": "main", "engine": "aurora-postgresql", "max_capacity": 4}],
        "caches": [{"name": "sessions", "engine": "redis"}],
    }
    path = tmp_path / "vine.json"
    path.write_text(json.dumps(doc))
    return path


def _vine(vine_file: Path) -> dict:
    return run_json("vines", "create", str(vine_file))


# -- general ------------------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    out = run("--help").stdout
    for name in ("serve", "db", "workers", "identities", "vineyards", "vines", "jobs", "sweep",
                 "agent", "storage"):
        assert f"  {name} " in out


def test_config_error_is_one_line_and_exit_2(cli_env: dict,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VINTNER_ENV", "staging")
    result = run("workers", "list", expect=2)
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("vintner: configuration error:")
    assert "Traceback" not in result.output
    monkeypatch.setenv("VINTNER_ENV", "development")
    monkeypatch.setenv("VINTNER_DATABASE_URL", "nosuchdb://x")
    result = run("jobs", "list", expect=2)
    assert "nosuchdb" in result.stderr and "sqlite" in result.stderr
    monkeypatch.setenv("VINTNER_DATABASE_URL", cli_env["VINTNER_DATABASE_URL"])
    monkeypatch.setenv("VINTNER_BOGUS", "1")
    assert "VINTNER_BOGUS" in run("vines", "list", expect=2).stderr


def test_help_works_without_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VINTNER_ENV", "nonsense")
    assert "register" in run("workers", "--help").stdout


# -- workers ------------------------------------------------------------------------------------


def test_register_prints_a_token_that_authenticates(cli_env: dict, client: FlaskClient) -> None:
    out = run("workers", "register", "tendril-1").stdout
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
             for line in out.splitlines() if line.startswith("  ")}
    worker_id, token = lines["id"], lines["token"]
    assert token.startswith("vtw_")
    headers = {"X-Worker-ID": worker_id, "X-Worker-Token": token}
    beat = client.post("/api/workers/heartbeat", json={"version": "1.0"}, headers=headers)
    assert beat.status_code == 200 and beat.get_json()["status"] == "ONLINE"
    listed = run_json("workers", "list")
    assert listed["total"] == 1
    assert listed["workers"][0]["status"] == "ONLINE" and listed["workers"][0]["version"] == "1.0"
    assert "token_hash" not in listed["workers"][0]
    assert "tendril-1" in run("workers", "list").stdout


def test_register_json_and_options(cli_env: dict, client: FlaskClient) -> None:
    identity = run_json("identities", "create", "aws", "--name", "p", "--role-arn", ROLE_ARN)
    body = run_json("workers", "register", "w", "--mode", "cloud-hosted", "--cloud-identity",
                    identity["id"], "--metadata", '{"region": "eu-west-1"}')
    assert body["worker"]["mode"] == "cloud-hosted"
    assert body["worker"]["cloud_identity_id"] == identity["id"]
    assert body["worker"]["metadata"] == {"region": "eu-west-1"}
    response = client.get(f"/api/workers/{body['worker_id']}",
                          headers={"X-Worker-ID": body["worker_id"],
                                   "X-Worker-Token": body["worker_token"]})
    assert response.status_code == 200
    assert "not found" in run("workers", "register", "w", "--cloud-identity", str(uuid.uuid4()),
                              expect=1).stderr.lower()
    assert "name" in run("workers", "register", "x" * 101, expect=1).stderr
    assert "JSON" in run("workers", "register", "w", "--metadata", "{", expect=1).stderr
    run("workers", "register", "w", "--mode", "cloudy", expect=2)


def test_rotate_and_revoke(cli_env: dict, client: FlaskClient) -> None:
    first = run_json("workers", "register", "w")
    old = {"X-Worker-ID": first["worker_id"], "X-Worker-Token": first["worker_token"]}
    rotated = run_json("workers", "rotate-token", first["worker_id"])
    assert rotated["worker_id"] == first["worker_id"]
    assert rotated["worker_token"] != first["worker_token"]
    new = {**old, "X-Worker-Token": rotated["worker_token"]}
    assert client.post("/api/workers/heartbeat", headers=old).status_code == 401
    assert client.post("/api/workers/heartbeat", headers=new).status_code == 200
    assert "Revoked" in run("workers", "revoke", first["worker_id"]).stdout
    assert client.post("/api/workers/heartbeat", headers=new).status_code == 401
    assert run_json("workers", "list")["total"] == 0
    assert "Worker not found" in run("workers", "revoke", first["worker_id"], expect=1).stderr
    run("workers", "revoke", "not-a-uuid", expect=2)


# -- identities, vineyards ----------------------------------------------------------------------


def test_identities(cli_env: dict, tmp_path: Path) -> None:
    aws = run_json("identities", "create", "aws", "--name", "prod", "--role-arn", ROLE_ARN)
    assert aws["credentials"]["account_id"] == "123456789012"
    uuid.UUID(aws["credentials"]["external_id"])
    fixed = run_json("identities", "create", "aws", "--name", "x", "--role-arn", ROLE_ARN,
                     "--external-id", "my-external-id")
    assert fixed["credentials"]["external_id"] == "my-external-id"
    human = run("identities", "create", "aws", "--name", "h", "--role-arn", ROLE_ARN).stdout
    assert "external_id:" in human and "account_id:  123456789012" in human
    wif = tmp_path / "wif.json"
    wif.write_text('{"type": "external_account"}')
    gcp = run_json("identities", "create", "gcp", "--name", "g", "--project-id", "p",
                   "--project-number", "1", "--service-account-email", "sa@p.iam",
                   "--wif-config", str(wif))
    assert gcp["credentials"]["wif_config"] == {"type": "external_account"}
    azure = run_json("identities", "create", "azure", "--name", "a", "--tenant-id", GUID,
                     "--client-id", GUID, "--subscription-id", GUID)
    assert azure["provider"] == "azure"
    bad = run("identities", "create", "aws", "--name", "b", "--role-arn", "arn:nope", expect=1)
    assert "role_arn" in bad.stderr
    listing = run_json("identities", "list")
    assert listing["total"] == 5 and len(listing["cloud_identities"]) == 5
    assert ROLE_ARN in run("identities", "list").stdout
    assert run_json("identities", "show", aws["id"]) == aws
    assert "Cloud identity not found" in run("identities", "show", str(uuid.uuid4()),
                                             expect=1).stderr


def test_vineyards(cli_env: dict) -> None:
    created = run_json("vineyards", "create", "prod", "--description", "Production")
    assert created["name"] == "prod" and created["description"] == "Production"
    assert "already exists" in run("vineyards", "create", "prod", expect=1).stderr
    run("vineyards", "create", "dev")
    listing = run_json("vineyards", "list", "--limit", "1")
    assert listing["total"] == 2 and len(listing["vineyards"]) == 1
    assert "1-1 of 2" in run("vineyards", "list", "--limit", "1").stdout
    assert run_json("vineyards", "show", created["id"]) == created
    assert "Vineyard not found" in run("vineyards", "show", str(uuid.uuid4()), expect=1).stderr


# -- vines --------------------------------------------------------------------------------------


def test_vines_from_json_and_toml(vine_file: Path, tmp_path: Path, client: FlaskClient) -> None:
    vine = _vine(vine_file)
    assert vine["status"] == "DRAFT" and vine["cluster"]["node_desired_size"] == 2
    assert vine["databases"][0]["max_capacity"] == 4
    api_view = client.get(f"/api/vines/{vine['id']}", headers=OPERATOR).get_json()
    assert run_json("vines", "show", vine["id"]) == api_view
    doc = json.loads(vine_file.read_text())
    toml = tmp_path / "vine.toml"
    toml.write_text(
        f'vineyard_id = "{doc["vineyard_id"]}"\nproject_name = "api"\nregion = "us-east-1"\n'
        '[terraform]\nmodule = "vine-basic"\n[terraform.variables]\nsize = 3\n'
        '[[databases]]\nname = "a"\nmin_capacity = 0.5\n[[databases]]\nname = "b"\n'
    )
    from_toml = run_json("vines", "create", str(toml))
    assert from_toml["region"] == "us-east-1"
    assert from_toml["terraform"] == {"module": "vine-basic", "variables": {"size": 3}}
    assert [d["name"] for d in from_toml["databases"]] == ["a", "b"]
    from_stdin = json.loads(run("vines", "create", "-", "--json",
                                input=vine_file.read_text()).stdout)
    assert from_stdin["project_name"] == "shop"
    human = run("vines", "show", vine["id"]).stdout
    assert "shop (staging, eu-west-1)  DRAFT" in human and "database main" in human
    listing = run_json("vines", "list", "--vineyard", doc["vineyard_id"])
    assert listing["total"] == 3
    assert run_json("vines", "list", "--vineyard", str(uuid.uuid4()))["total"] == 0
    assert "shop" in run("vines", "list").stdout


def test_vine_update(vine_file: Path, tmp_path: Path) -> None:
    vine = _vine(vine_file)
    patch = tmp_path / "patch.json"
    patch.write_text('{"region": "ap-south-1", "caches": []}')
    updated = run_json("vines", "update", vine["id"], str(patch))
    assert updated["region"] == "ap-south-1" and updated["caches"] == []
    assert updated["databases"][0]["id"] == vine["databases"][0]["id"]


@pytest.mark.parametrize(("content", "message"), [
    ('{"project_name": "x"}', "vineyard_id"),
    ("[1, 2]", "Invalid vine document"),
    ("{not json", "not a valid vine document"),
    ('{"vineyard_id": "%s", "project_name": "x", "cluster": {"node_min_size": "1"}}',
     "cluster.node_min_size"),
    ('{"vineyard_id": "%s", "project_name": "x", "caches": [{"name": "c", "engine": "m"}]}',
     "redis, valkey"),
])
def test_vine_bad_documents(cli_env: dict, tmp_path: Path, content: str, message: str) -> None:
    vineyard = run_json("vineyards", "create", "v")
    path = tmp_path / "bad.txt"
    path.write_text(content.replace("%s", vineyard["id"]))
    result = run("vines", "create", str(path), expect=1)
    assert message in result.stderr and "Traceback" not in result.output


def test_vine_missing_file_and_unknown_vineyard(cli_env: dict, tmp_path: Path) -> None:
    assert "Cannot read" in run("vines", "create", str(tmp_path / "nope.json"), expect=1).stderr
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"vineyard_id": str(uuid.uuid4()), "project_name": "x"}))
    assert "Vineyard not found" in run("vines", "create", str(path), expect=1).stderr


# -- jobs ---------------------------------------------------------------------------------------


def test_enqueue_list_show_cancel(vine_file: Path, client: FlaskClient) -> None:
    vine = _vine(vine_file)
    job = run_json("jobs", "enqueue", "plan", "--vine", vine["id"])
    assert job["job_type"] == "PLAN" and job["status"] == "QUEUED"
    assert job["config_snapshot"]["project_name"] == "shop"
    assert client.get(f"/api/vines/{vine['id']}", headers=OPERATOR).get_json()["status"] == \
        "QUEUED"
    second = run("jobs", "enqueue", "DEPLOY", "--vine", vine["id"], expect=1)
    assert "unfinished" in second.stderr
    assert "Enqueued FETCH_RESOURCES job" in run("jobs", "enqueue", "FETCH_RESOURCES").stdout
    listing = run_json("jobs", "list", "--status", "queued", "--vine", vine["id"])
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    assert run_json("jobs", "list")["total"] == 2
    assert run_json("jobs", "list", "--type", "FETCH_RESOURCES")["total"] == 1
    assert run_json("jobs", "list", "--vineyard", vine["vineyard_id"])["total"] == 1
    assert job["id"] in run("jobs", "list").stdout
    assert run_json("jobs", "show", job["id"]) == job
    assert "status:" in run("jobs", "show", job["id"]).stdout
    cancelled = run_json("jobs", "cancel", job["id"])
    assert cancelled["success"] is True and cancelled["job"]["status"] == "CANCELLED"
    assert "already CANCELLED" in run("jobs", "cancel", job["id"], expect=1).stderr
    assert "Job not found" in run("jobs", "show", str(uuid.uuid4()), expect=1).stderr
    assert client.get(f"/api/vines/{vine['id']}", headers=OPERATOR).get_json()["status"] == \
        "DRAFT"
    run("jobs", "enqueue", "REBOOT", expect=2)


def test_cancel_held_job_and_deploy_with_stale_plan(vine_file: Path, client: FlaskClient,
                                                    tmp_path: Path) -> None:
    vine = _vine(vine_file)
    worker = run_json("workers", "register", "w")
    headers = {"X-Worker-ID": worker["worker_id"], "X-Worker-Token": worker["worker_token"]}
    plan = run_json("jobs", "enqueue", "PLAN", "--vine", vine["id"])
    assert client.post("/api/jobs/claim", headers=headers).status_code == 200
    out = run("jobs", "cancel", plan["id"]).stdout
    assert "Cancel requested" in out
    assert client.put(f"/api/jobs/{plan['id']}/status", json={"status": "SUCCESS"},
                      headers=headers).status_code == 200
    deploy = run_json("jobs", "enqueue", "DEPLOY", "--vine", vine["id"], "--plan-job", plan["id"],
                      "--assigned-worker", worker["worker_id"])
    assert deploy["plan_job_id"] == plan["id"]
    assert deploy["assigned_worker_id"] == worker["worker_id"]
    run("jobs", "cancel", deploy["id"])
    patch = tmp_path / "p.json"
    patch.write_text('{"region": "us-west-2"}')
    run("vines", "update", vine["id"], str(patch))
    stale = run("jobs", "enqueue", "DEPLOY", "--vine", vine["id"], "--plan-job", plan["id"],
                expect=1)
    assert "configuration changed since the plan was generated; plan again" in stale.stderr


def test_enqueue_connection_test_with_snapshot(cli_env: dict, tmp_path: Path) -> None:
    identity = run_json("identities", "create", "aws", "--name", "p", "--role-arn", ROLE_ARN)
    snap = tmp_path / "snap.json"
    snap.write_text('{"why": "onboarding"}')
    job = run_json("jobs", "enqueue", "CONNECTION_TEST", "--cloud-identity", identity["id"],
                   "--config-snapshot", str(snap))
    assert job["config_snapshot"] == {"why": "onboarding"}
    assert "cloud_identity_id" in run("jobs", "enqueue", "CONNECTION_TEST", expect=1).stderr


def _claimed_job(vine_file: Path, client: FlaskClient) -> tuple[str, dict[str, str]]:
    vine = _vine(vine_file)
    worker = run_json("workers", "register", "w")
    headers = {"X-Worker-ID": worker["worker_id"], "X-Worker-Token": worker["worker_token"]}
    job = run_json("jobs", "enqueue", "PLAN", "--vine", vine["id"])
    assert client.post("/api/jobs/claim", headers=headers).status_code == 200
    return job["id"], headers


def _log(client: FlaskClient, headers: dict, job_id: str, chunk: str, seq: int,
         stream: str = "STDOUT") -> None:
    response = client.post(f"/api/jobs/{job_id}/logs", headers=headers,
                           json={"log_chunk": chunk, "seq": seq, "stream_type": stream})
    assert response.status_code in (200, 201), response.get_json()


def test_logs_in_order(vine_file: Path, client: FlaskClient) -> None:
    job_id, headers = _claimed_job(vine_file, client)
    chunks = [f"line {i}\n" for i in range(5)]
    for i, chunk in enumerate(chunks):
        _log(client, headers, job_id, chunk, i, "STDERR" if i == 2 else "STDOUT")
    _log(client, headers, job_id, chunks[1], 1)  # a retried chunk is not doubled
    assert run("jobs", "logs", job_id).stdout == "".join(chunks)
    as_json = [json.loads(line) for line in run("jobs", "logs", job_id, "--json")
               .stdout.splitlines()]
    assert [c["log_chunk"] for c in as_json] == chunks and as_json[2]["stream_type"] == "STDERR"
    after = run("jobs", "logs", job_id, "--after", str(as_json[2]["id"])).stdout
    assert after == "".join(chunks[3:])
    assert "Job not found" in run("jobs", "logs", str(uuid.uuid4()), expect=1).stderr


def test_logs_follow_until_terminal_and_tail(vine_file: Path, client: FlaskClient,
                                             app: Flask) -> None:
    job_id, headers = _claimed_job(vine_file, client)
    _log(client, headers, job_id, "starting\n", 0)

    def agent() -> None:
        # a separate client: the test client is not shared across threads
        other = app.test_client()
        time.sleep(0.3)
        _log(other, headers, job_id, "working\n", 1)
        time.sleep(0.2)
        other.put(f"/api/jobs/{job_id}/status", json={"status": "SUCCESS"}, headers=headers)
        time.sleep(0.2)
        _log(other, headers, job_id, "tail after the status\n", 2)

    thread = threading.Thread(target=agent)
    thread.start()
    started = time.monotonic()
    result = run("jobs", "logs", job_id, "--follow", "--poll-interval", "0.05",
                 "--tail-wait", "1")
    thread.join()
    assert result.stdout == "starting\nworking\ntail after the status\n"
    assert time.monotonic() - started < 10


def test_logs_follow_of_long_finished_job_returns_at_once(
    vine_file: Path, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, headers = _claimed_job(vine_file, client)
    _log(client, headers, job_id, "done\n", 0)
    client.put(f"/api/jobs/{job_id}/status", json={"status": "FAILED"}, headers=headers)
    monkeypatch.setenv("VINTNER_LOG_TAIL_GRACE_S", "0.01")
    time.sleep(0.05)
    started = time.monotonic()
    assert run("jobs", "logs", job_id, "-f", "--tail-wait", "30").stdout == "done\n"
    assert time.monotonic() - started < 5


# -- sweep --------------------------------------------------------------------------------------


def test_sweep_once_marks_offline_and_recovers(vine_file: Path, client: FlaskClient,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    job_id, headers = _claimed_job(vine_file, client)
    assert "0 worker(s) marked offline, 0 job(s) requeued" in run("sweep").stdout
    monkeypatch.setenv("VINTNER_WORKER_OFFLINE_AFTER_S", "0.01")
    monkeypatch.setenv("VINTNER_JOB_RECOVERY_AFTER_S", "0.01")
    time.sleep(0.05)
    out = run("sweep").stdout
    assert "1 worker(s) marked offline, 1 job(s) requeued" in out
    job = client.get(f"/api/jobs/{job_id}", headers=OPERATOR).get_json()
    assert job["status"] == "QUEUED" and job["worker_id"] is None


def test_sweep_loop_stops_on_interrupt(cli_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []

    def fake_sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr("vintner.cli.sweep.time.sleep", fake_sleep)
    monkeypatch.setenv("VINTNER_SWEEP_INTERVAL_S", "7")
    out = run("sweep", "--loop").stdout
    assert calls == [7, 7, 7] and "Stopped." in out
    calls.clear()
    run("sweep", "--loop", "--interval", "0.5")
    assert calls == [0.5, 0.5, 0.5]


# -- db -----------------------------------------------------------------------------------------


def test_db_upgrade_and_current(cli_env: dict, sqlite_empty_url: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VINTNER_DATABASE_URL", sqlite_empty_url)
    assert "(none)" in run("db", "current").stdout
    run("db", "current", "--check", expect=1)
    assert "(head)" in run("db", "upgrade").stdout
    current = run("db", "current", "--check").stdout
    assert current.strip().endswith("(head)")
    assert "(head)" in run("db", "upgrade").stdout  # idempotent


# -- serve --------------------------------------------------------------------------------------


def test_serve_development_prints_generated_token_once(
    cli_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VINTNER_ADMIN_TOKEN")
    served: list[tuple[Flask, str, int]] = []
    monkeypatch.setattr("vintner.cli.serve.run_development",
                        lambda app, host, port: served.append((app, host, port)))
    first = run("serve", "--port", "8123").stdout
    token_file = Path(cli_env["VINTNER_INSTANCE_PATH"]) / "admin-token"
    token = token_file.read_text().strip()
    assert first.count(token) == 1 and "generated" in first
    app, host, port = served[0]
    assert isinstance(app, Flask) and (host, port) == ("127.0.0.1", 8123)
    # the served app accepts that token
    response = app.test_client().get("/api/jobs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    second = run("serve", "--host", "0.0.0.0").stdout
    assert token in second and "from" in second
    assert served[1][1:] == ("0.0.0.0", 5000)


def test_serve_development_with_configured_token_prints_nothing(
    cli_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vintner.cli.serve.run_development", lambda app, host, port: None)
    assert OPERATOR_TOKEN not in run("serve").stdout


def test_serve_production_uses_gunicorn(cli_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from gunicorn.app.base import BaseApplication

    seen: dict[str, Any] = {}

    def fake_run(self: BaseApplication) -> None:
        seen.update(bind=self.cfg.bind, workers=self.cfg.workers, threads=self.cfg.threads,
                    worker_class=self.cfg.worker_class_str)
        seen["app"] = self.load()

    monkeypatch.setattr(BaseApplication, "run", fake_run)
    monkeypatch.setenv("VINTNER_ENV", "production")
    result = run("serve", "--port", "9001", "--workers", "3", "--threads", "4")
    assert OPERATOR_TOKEN not in result.output
    assert seen["bind"] == ["0.0.0.0:9001"] and seen["workers"] == 3 and seen["threads"] == 4
    assert seen["worker_class"] == "gthread"
    assert isinstance(seen["app"], Flask)
    monkeypatch.delenv("VINTNER_ADMIN_TOKEN")
    assert "VINTNER_ADMIN_TOKEN" in run("serve", expect=2).stderr


# -- under Flask's CLI ----------------------------------------------------------------------------


def test_flask_cli_group_uses_the_apps_services(app: Flask, client: FlaskClient) -> None:
    client.post("/api/vineyards", json={"name": "from-http"}, headers=OPERATOR)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["vintner", "vineyards", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["vineyards"][0]["name"] == "from-http"
    created = runner.invoke(args=["vintner", "vineyards", "create", "from-cli"])
    assert created.exit_code == 0, created.output
    listing = client.get("/api/vineyards", headers=OPERATOR).get_json()
    assert {v["name"] for v in listing["vineyards"]} == {"from-http", "from-cli"}
