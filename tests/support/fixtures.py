"""Fixtures for the artifact-store tests; load with ``pytest_plugins = ["tests.support.fixtures"]``.

Servers are session-scoped (started once, on 127.0.0.1, on a free port); each test gets its own
bucket (S3) or prefix (Supabase) so tests never see each other's objects.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from importlib import invalidate_caches
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.support.server import stop_process
from tests.support.storage_server import StorageServer
from tests.support.store_servers import (
    RestartableMoto,
    start_moto_process,
    start_storage_server_process,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
MEMSTORE_PLUGIN_DIR = REPO_ROOT / "examples" / "plugin-memory-store"

# Fake, test-only credentials for moto; never real ones.
_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def local_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep HTTP(S)_PROXY from routing requests for 127.0.0.1 servers through a proxy."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 in server mode (real HTTP); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_test_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, local_no_proxy: None) -> None:
    """Fake credentials for moto; shield the test from the developer's ~/.aws."""
    for name, value in _AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def s3_bucket(moto_server: str, aws_test_env: None) -> Iterator[str]:
    """A fresh, empty bucket on the moto server."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    name = f"vintner-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name
    client.close()


@pytest.fixture(scope="session")
def storage_server() -> Iterator[StorageServer]:
    """The Storage-compatible server; its ``service_key`` is random per session."""
    server = StorageServer(service_key=secrets.token_urlsafe(24)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def supabase_storage(
    storage_server: StorageServer, local_no_proxy: None
) -> Iterator[StorageServer]:
    """The Storage server, reset to healthy after the test."""
    yield storage_server
    storage_server.fail_with = None


@pytest.fixture(scope="session")
def memstore_plugin() -> str:
    """Make sure the example plugin (examples/plugin-memory-store) is installed.

    CI installs it with ``pip install -e examples/plugin-memory-store`` (see docs/plugins.md).
    From a clean checkout without that step, install it here with the same pip (no deps:
    vintner is already installed) and non-editable, so its module is importable in this
    already-running interpreter (an editable install's .pth file is only read at start-up).
    """
    if not _has_memstore():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             str(MEMSTORE_PLUGIN_DIR)],
            check=True,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        invalidate_caches()
        assert _has_memstore(), "installing the example plugin did not register memstore"
    return "memstore"


def _has_memstore() -> bool:
    return any(ep.name == "memstore" for ep in entry_points(group="vintner.artifact_stores"))


@pytest.fixture(scope="session")
def storage_server_process() -> Iterator[tuple[str, str]]:
    """The Storage server in a child process: (url, service key), for client memory checks."""
    key = secrets.token_urlsafe(24)
    proc, url = start_storage_server_process(key)
    try:
        yield url, key
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def moto_server_process() -> Iterator[str]:
    """moto's S3 as a child process (its memory is not the test's); yields its endpoint URL."""
    proc, url = start_moto_process()
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def restartable_moto(aws_test_env: None) -> Iterator[RestartableMoto]:
    """moto's S3 in this process on its own port, for tests that take the store down and
    bring it back (buckets survive a restart)."""
    server = RestartableMoto().start()
    try:
        yield server
    finally:
        server.stop()
