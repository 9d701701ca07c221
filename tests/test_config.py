"""Settings validation: a malformed value or an unusable path stops start-up with a message
naming the setting, never a traceback (operations.md, Configuration)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from vintner.cli import cli
from vintner.config import FOREIGN_ENV, development_admin_token, load_settings
from vintner.errors import ConfigError
from vintner.registry import load_repository


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "1e300"])
def test_duration_settings_must_be_finite_and_bounded(value: str) -> None:
    # an infinite or astronomically long duration was accepted and then crashed every sweep
    # and every liveness computation (timedelta overflow)
    with pytest.raises(ConfigError, match="VINTNER_WORKER_OFFLINE_AFTER_S"):
        load_settings(environ={"VINTNER_WORKER_OFFLINE_AFTER_S": value})


def test_duration_from_toml_must_be_finite(tmp_path: Path) -> None:
    config = tmp_path / "vintner.toml"
    config.write_text("job_timeout_s = inf\n")
    with pytest.raises(ConfigError, match="job_timeout_s"):
        load_settings(environ={"VINTNER_CONFIG": str(config)})


def test_long_but_sane_durations_are_accepted() -> None:
    settings = load_settings(environ={"VINTNER_JOB_TIMEOUT_S": "2592000"})  # 30 days
    assert settings.job_timeout_s == 2592000


def test_unusable_instance_path_is_a_config_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    settings = load_settings(environ={"VINTNER_INSTANCE_PATH": str(not_a_dir / "instance")})
    with pytest.raises(ConfigError, match="instance_path"):
        development_admin_token(settings)


def test_unusable_sqlite_folder_is_a_config_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ConfigError, match="database_url"):
        load_repository(f"sqlite:///{not_a_dir}/sub/vintner.db", {})


def test_cli_with_unusable_instance_path_exits_2_without_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VINTNER_") and name not in FOREIGN_ENV or name == "VINTNER_CONFIG":
            monkeypatch.delenv(name)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("VINTNER_INSTANCE_PATH", str(not_a_dir / "instance"))
    result = CliRunner().invoke(cli, ["workers", "list"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("vintner: configuration error: Invalid setting instance_path")
    assert "Traceback" not in result.output
