"""Configuration from the environment, the workspace files, the CLI entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vintner.agent.cli import agent_command
from vintner.agent.config import ConfigError, load_config
from vintner.agent.errors import JobFailed
from vintner.agent.workspace import BACKEND_OVERRIDE, TFVARS, HttpBackend, prepare_workspace

TOKEN = "vtw_cfgTokenValue1234567890abcdef"


def test_vintner_env() -> None:
    cfg = load_config({"VINTNER_URL": "http://127.0.0.1:5000/", "VINTNER_WORKER_ID": "w",
                       "VINTNER_WORKER_TOKEN": TOKEN})
    assert cfg.url == "http://127.0.0.1:5000"
    assert cfg.worker_token == TOKEN
    assert TOKEN not in repr(cfg)


def test_grape_env_is_accepted() -> None:
    cfg = load_config({"GRAPE_WEB_ORIGIN": "https://grape.example", "GRAPE_WORKER_ID": "w",
                       "GRAPE_WORKER_TOKEN": TOKEN})
    assert (cfg.url, cfg.worker_id, cfg.worker_token) == ("https://grape.example", "w", TOKEN)


def test_missing_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="VINTNER_WORKER_ID, VINTNER_WORKER_TOKEN"):
        load_config({"VINTNER_URL": "http://x"})


def test_timings_from_env() -> None:
    cfg = load_config({"VINTNER_URL": "http://x", "VINTNER_WORKER_ID": "w",
                       "VINTNER_WORKER_TOKEN": TOKEN, "VINTNER_AGENT_CLAIM_INTERVAL_S": "0.5",
                       "VINTNER_AGENT_LOG_FLUSH_BYTES": "2048"})
    assert cfg.timings.claim_interval_s == 0.5
    assert cfg.timings.log_flush_bytes == 2048
    assert cfg.timings.heartbeat_interval_s == 30
    with pytest.raises(ConfigError, match="VINTNER_AGENT_HEARTBEAT_INTERVAL_S"):
        load_config({"VINTNER_URL": "http://x", "VINTNER_WORKER_ID": "w",
                     "VINTNER_WORKER_TOKEN": TOKEN, "VINTNER_AGENT_HEARTBEAT_INTERVAL_S": "soon"})


def snapshot(**terraform: object) -> dict[str, object]:
    return {
        "project_name": "acme", "region": "eu-west-1", "environment_stage": "development",
        "databases": [{"name": "main"}], "caches": [], "cluster": None,
        "terraform": {"module": "vine-basic", "variables": {"apply_delay_s": 1}, **terraform},
    }


def test_workspace_files(modules_dir: Path, tmp_path: Path) -> None:
    backend = HttpBackend("http://127.0.0.1:5000", "vine-1")
    ws = prepare_workspace(snapshot(), modules_dir, tmp_path, backend)
    assert (tmp_path / "main.tf").exists()
    tfvars = json.loads((tmp_path / TFVARS).read_text())
    assert tfvars == {"project_name": "acme", "region": "eu-west-1",
                      "environment_stage": "development", "databases": [{"name": "main"}],
                      "caches": [], "apply_delay_s": 1}
    override = (tmp_path / BACKEND_OVERRIDE).read_text()
    url = "http://127.0.0.1:5000/api/vines/vine-1/terraform-state"
    assert override.count(f'"{url}"') == 3
    assert 'lock_method    = "LOCK"' in override and 'unlock_method  = "UNLOCK"' in override
    assert "password" not in override.split("never from a file")[1]
    assert ws.warnings == []


def test_vine_fields_shadow_module_variables(modules_dir: Path, tmp_path: Path) -> None:
    ws = prepare_workspace(snapshot(variables={"region": "us-east-1"}), modules_dir, tmp_path,
                           None)
    assert ws.tfvars["region"] == "eu-west-1"
    assert ws.warnings and "region" in ws.warnings[0]


@pytest.mark.parametrize("name", ["../etc", "/abs", "no-such-module", "", None])
def test_bad_or_missing_module(name: object, modules_dir: Path, tmp_path: Path) -> None:
    snap = snapshot()
    snap["terraform"] = {"module": name}
    with pytest.raises(JobFailed):
        prepare_workspace(snap, modules_dir, tmp_path, None)


def test_cli_requires_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("VINTNER_URL", "VINTNER_WORKER_ID", "VINTNER_WORKER_TOKEN", "GRAPE_WEB_ORIGIN",
                "GRAPE_WORKER_ID", "GRAPE_WORKER_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(agent_command, [])
    assert result.exit_code == 2
    assert "VINTNER_URL" in result.output


def test_python_dash_m_runs_the_command() -> None:
    out = subprocess.run([sys.executable, "-m", "vintner.agent", "--help"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0
    assert "--modules-dir" in out.stdout


def test_agent_imports_nothing_of_the_server() -> None:
    code = ("import sys, vintner.agent.cli, vintner.agent.runner; "
            "print([m for m in sys.modules if m.startswith(('vintner.api', 'vintner.domain', "
            "'vintner.ports', 'backends', 'flask', 'sqlalchemy'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"
