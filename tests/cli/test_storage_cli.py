"""``vintner storage check`` against a real store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.storage_server import StorageServer
from vintner.cli.storage import storage_group

pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("VINTNER_CONFIG", "VINTNER_ARTIFACT_STORE", "VINTNER_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_passes_on_a_folder(env: Path) -> None:
    result = CliRunner().invoke(storage_group, ["check", "--uri", f"file://{env}/store"])
    assert result.exit_code == 0, result.output
    for step in ("ping", "put", "exists", "get", "delete", "gone"):
        assert step in result.output
    assert "All checks passed." in result.output
    assert list((env / "store").rglob("*.part")) == []
    assert [p for p in (env / "store").rglob("*") if p.is_file()] == []  # probe deleted


def test_check_reads_the_environment(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VINTNER_ARTIFACT_STORE", f"file://{env}/from-env")
    result = CliRunner().invoke(storage_group, ["check"])
    assert result.exit_code == 0, result.output
    assert f"file://{env}/from-env" in result.output


def test_check_reports_an_unreachable_store(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    result = CliRunner().invoke(
        storage_group,
        ["check", "--uri", "s3://bucket/p", "-o", f"endpoint_url=http://127.0.0.1:{port}",
         "-o", "region=us-east-1"],
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "StoreUnavailable" in result.output
    assert "very-secret-value" not in result.output


def test_check_reports_bad_configuration(env: Path) -> None:
    result = CliRunner().invoke(storage_group, ["check", "--uri", "nope://x"])
    assert result.exit_code == 2
    assert "known schemes" in result.output
    result = CliRunner().invoke(storage_group, ["check", "--uri", "s3://b", "-o", "bogus"])
    assert result.exit_code != 0


# -- the configured store, from vintner's settings (as the server builds it) ------------------


@pytest.fixture
def clean_env(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No VINTNER_* / SUPABASE_* setting from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(("VINTNER_", "SUPABASE_")):
            monkeypatch.delenv(name)
    return env


def _bucket_keys(moto_server: str, bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize("production", [False, True], ids=["development", "production"])
def test_check_uses_the_s3_settings(clean_env: Path, moto_server: str, s3_bucket: str,
                                    production: bool) -> None:
    """VINTNER_ARTIFACT_STORE + VINTNER_S3_* → Settings.store_options(). In production without
    an admin token (which the check does not need) the S3 endpoint must not be dropped."""
    env = {"VINTNER_ARTIFACT_STORE": f"s3://{s3_bucket}/checked",
           "VINTNER_S3_ENDPOINT_URL": moto_server, "VINTNER_S3_REGION": "us-east-1"}
    if production:
        env["VINTNER_ENV"] = "production"
    result = CliRunner().invoke(storage_group, ["check"], env=env)
    assert result.exit_code == 0, result.output
    assert f"Artifact store s3://{s3_bucket}/checked" in result.output
    assert "options    endpoint_url, region" in result.output
    assert "All checks passed." in result.output
    assert "testing" not in result.output  # the (fake) AWS credentials
    assert _bucket_keys(moto_server, s3_bucket) == []  # the probe was deleted


def test_check_uses_a_config_file(clean_env: Path, moto_server: str, s3_bucket: str) -> None:
    config = clean_env / "vintner.toml"
    config.write_text(f'artifact_store = "s3://{s3_bucket}/from-toml"\n'
                      f's3_endpoint_url = "{moto_server}"\n'
                      '[artifact_store_options]\nregion = "us-east-1"\n'
                      'addressing_style = "path"\n')
    result = CliRunner().invoke(storage_group, ["check"], env={"VINTNER_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert "options    addressing_style, endpoint_url, region" in result.output


def test_check_option_overrides_a_setting(clean_env: Path, moto_server: str,
                                          s3_bucket: str) -> None:
    env = {"VINTNER_ARTIFACT_STORE": f"s3://{s3_bucket}/x",
           "VINTNER_S3_ENDPOINT_URL": "http://127.0.0.1:9", "VINTNER_S3_REGION": "us-east-1"}
    result = CliRunner().invoke(storage_group, ["check", "-o", f"endpoint_url={moto_server}"],
                                env=env)
    assert result.exit_code == 0, result.output


def test_check_reports_a_broken_store_setting(clean_env: Path) -> None:
    result = CliRunner().invoke(storage_group, ["check"],
                                env={"VINTNER_ARTIFACT_STORE": "not a uri"})
    assert result.exit_code == 2, result.output
    assert "FAILED  configuration: Invalid setting artifact_store" in result.output


def test_check_uses_the_supabase_settings(clean_env: Path,
                                          supabase_storage: StorageServer) -> None:
    prefix = f"check-{uuid.uuid4().hex[:8]}"
    env = {"VINTNER_ARTIFACT_STORE": f"supabase://artifacts/{prefix}",
           "SUPABASE_URL": supabase_storage.url,
           "SUPABASE_SERVICE_ROLE_KEY": supabase_storage.service_key}
    result = CliRunner().invoke(storage_group, ["check"], env=env)
    assert result.exit_code == 0, result.output
    assert "options    service_role_key, url" in result.output  # names only
    assert supabase_storage.service_key not in result.output
    assert [n for n in supabase_storage.names() if n.startswith(prefix + "/")] == []

    supabase_storage.fail_with = (503, {"statusCode": "503", "error": "unavailable",
                                        "message": "upstream down"})
    result = CliRunner().invoke(storage_group, ["check"], env=env)
    assert result.exit_code == 1, result.output
    assert "FAILED  StoreUnavailable" in result.output
    assert supabase_storage.service_key not in result.output


def test_vintner_storage_check_command(clean_env: Path, moto_server: str,
                                       s3_bucket: str) -> None:
    """The installed console script, configured only through the environment."""
    script = Path(sys.executable).with_name("vintner")
    env = {**os.environ, "VINTNER_ARTIFACT_STORE": f"s3://{s3_bucket}/cli",
           "VINTNER_S3_ENDPOINT_URL": moto_server, "VINTNER_S3_REGION": "us-east-1"}
    result = subprocess.run([str(script), "storage", "check"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed." in result.stdout
