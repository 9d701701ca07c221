"""``vintner storage check`` against a real store."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from vintner.cli.storage import storage_group


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
