"""CONNECTION_TEST end to end: the real server process, a real agent process, and moto's STS
in server mode on 127.0.0.1 (``AWS_ENDPOINT_URL_STS`` points the agent's boto3 at it).

moto runs in this test process (``ThreadedMotoServer``), so the test can read what reached
it over HTTP: the AssumeRole call with its ExternalId and RoleSessionName.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.agent.e2e import Operator, agent_env, run_once, server_repository
from tests.support.server import LiveServer, running_server
from vintner.agent.credentials import session_name

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("boto3")

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One ``vintner serve`` for the module; fails at teardown if it printed a traceback."""
    with running_server(tmp_path_factory.mktemp("aws-server")) as srv:
        yield srv


@pytest.fixture(scope="module")
def sts() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _aws_env(url: str, worker: tuple[str, str], sts: str) -> dict[str, str]:
    env = agent_env(url, worker)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(name, None)
    # the agent host's own credentials: used only to call AssumeRole
    env.update(AWS_ENDPOINT_URL_STS=sts, AWS_ACCESS_KEY_ID="AKIAHOSTHOSTHOSTHOST",
               AWS_SECRET_ACCESS_KEY="host-secret-e2e", AWS_REGION="eu-west-1")
    return env


def test_connection_test_assumes_the_role_with_the_external_id(
    server: LiveServer, sts: str
) -> None:
    from moto.sts.models import sts_backends

    op = Operator(server)
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/Vintner-{uuid.uuid4().hex[:8]}"
    identity = op.identity(role_arn)
    external_id = identity["credentials"]["external_id"]
    worker = op.worker()
    job_id = op.enqueue("CONNECTION_TEST", cloud_identity_id=identity["id"],
                        assigned_worker_id=worker[0])
    out = run_once(server.url, worker, env=_aws_env(server.url, worker, sts))

    job = op.job(job_id)
    assert job["status"] == "SUCCESS", (job["error_message"], out)
    metadata = job["execution_metadata"]
    assert metadata["account_id"] == ACCOUNT
    assert metadata["role_arn"] == role_arn and metadata["verified"] is True
    assert f":assumed-role/{role_arn.split('/')[-1]}/" in metadata["caller_arn"]
    # what reached moto over HTTP from the agent process
    assumed = [r for r in sts_backends[ACCOUNT]["aws"].assumed_roles
               if r.session_name == session_name(job_id)]
    assert len(assumed) == 1, "AssumeRole did not reach the STS endpoint"
    assert assumed[0].role_arn == role_arn
    assert assumed[0].external_id == external_id
    # the temporary credentials never show in the job's log or the agent's output
    text = op.log_text(job_id)
    assert "caller identity" in text
    for secret in (assumed[0].secret_access_key, assumed[0].session_token, "host-secret-e2e"):
        assert secret not in text and secret not in out


def test_malformed_role_arn_fails_the_job_clearly(server: LiveServer, sts: str) -> None:
    op = Operator(server)
    identity = op.identity()
    # The server validates ARNs when an identity is created (422 for this one), so a bad ARN
    # can only reach an agent from data written before that rule or by another writer of the
    # database: put it there through the repository, as such a writer would.
    bad_arn = "arn:aws:iam::12345:role/NoAccount"
    assert op.http.post("/api/cloud-identities", json={
        "provider": "aws", "name": "bad", "credentials": {"role_arn": bad_arn}}).status_code in (
        400, 422)
    with server_repository(server) as repo, repo.transaction() as tx:
        stored = tx.get_cloud_identity(uuid.UUID(identity["id"]))
        assert stored is not None
        stored.credentials = {**stored.credentials, "role_arn": bad_arn}
        tx.save_cloud_identity(stored)
    worker = op.worker()
    job_id = op.enqueue("CONNECTION_TEST", cloud_identity_id=identity["id"],
                        assigned_worker_id=worker[0])
    out = run_once(server.url, worker, env=_aws_env(server.url, worker, sts))

    job = op.job(job_id)
    assert job["status"] == "FAILED", out
    assert job["error_message"].startswith(f"malformed AWS role ARN '{bad_arn}'")
    assert "12-digit account" in job["error_message"]
    assert "job finished: FAILED: malformed AWS role ARN" in op.log_text(job_id)
