"""Configuration: built-in defaults → TOML file (``VINTNER_CONFIG``) → ``VINTNER_*`` environment
variables → test overrides (later wins). Validated once, at start-up: an unknown or malformed
setting raises :class:`~vintner.errors.ConfigError` naming it, and the server does not start.
"""

from __future__ import annotations

import math
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vintner.domain.liveness import Timings
from vintner.errors import ConfigError

ENV_PREFIX = "VINTNER_"
#: VINTNER_* variables that belong to other programs (the agent, the test suite), not the server
FOREIGN_ENV = frozenset({
    "VINTNER_CONFIG", "VINTNER_URL", "VINTNER_WORKER_ID", "VINTNER_WORKER_TOKEN",
    "VINTNER_MODULES_DIR", "VINTNER_TEST_DATABASE", "VINTNER_REQUIRE_POSTGRES",
    "VINTNER_TERRAFORM", "VINTNER_TERRAFORM_BINARY", "VINTNER_WORK_DIR",
})
#: settings read from variables without the prefix (their standard names)
UNPREFIXED_ENV = {"SUPABASE_URL": "supabase_url",
                  "SUPABASE_SERVICE_ROLE_KEY": "supabase_service_role_key"}
ENVIRONMENTS = ("development", "production")
ADMIN_TOKEN_PREFIX = "vto_"
MIN_ADMIN_TOKEN_LENGTH = 16
#: the largest duration setting (seconds): larger ones overflow date arithmetic
MAX_SECONDS = 10 * 365 * 24 * 3600


@dataclass(frozen=True)
class Settings:
    """Every server setting. Field names are the TOML keys; ``VINTNER_<NAME>`` the env vars."""

    env: str = "development"
    instance_path: str = ""  # default: ./instance
    database_url: str = ""  # default: sqlite:///<instance>/vintner.db
    artifact_store: str = ""  # default: file://<instance>/artifacts
    artifact_store_options: dict[str, Any] = field(default_factory=dict)
    admin_token: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    supabase_url: str | None = None
    supabase_service_role_key: str | None = None
    heartbeat_interval_s: float = 30
    worker_offline_after_s: float = 60
    job_recovery_after_s: float = 300
    job_timeout_s: float = 7200
    log_tail_grace_s: float = 300
    sweep_interval_s: float = 15
    sweep_enabled: bool = True
    auto_migrate: bool = True
    log_level: str = "INFO"

    @property
    def timings(self) -> Timings:
        return Timings(
            heartbeat_interval_s=self.heartbeat_interval_s,
            worker_offline_after_s=self.worker_offline_after_s,
            job_recovery_after_s=self.job_recovery_after_s,
            job_timeout_s=self.job_timeout_s,
            log_tail_grace_s=self.log_tail_grace_s,
        )

    @property
    def development(self) -> bool:
        return self.env == "development"

    def store_options(self) -> dict[str, Any]:
        """Options for the configured artifact store: the scheme's standard settings, then the
        explicit ``artifact_store_options`` table."""
        scheme = urlsplit(self.artifact_store).scheme
        options: dict[str, Any] = {}
        if scheme == "s3":
            if self.s3_endpoint_url:
                options["endpoint_url"] = self.s3_endpoint_url
            if self.s3_region:
                options["region"] = self.s3_region
        elif scheme == "supabase":
            if self.supabase_url:
                options["url"] = self.supabase_url
            if self.supabase_service_role_key:
                options["service_role_key"] = self.supabase_service_role_key
        options.update(self.artifact_store_options)
        return options

    def redacted(self) -> dict[str, Any]:
        """The settings with secrets masked, for display."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("admin_token", "supabase_service_role_key"):
            if out[name]:
                out[name] = "***"
        out["database_url"] = _mask_url_password(self.database_url)
        return out


_FIELDS = {f.name: f for f in fields(Settings)}


def _mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def _coerce(name: str, value: Any, source: str) -> Any:
    """Convert ``value`` to the field's type; ConfigError naming the setting when it fails."""
    kind = _FIELDS[name].type
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("expected a finite number")
            if number <= 0:
                raise ValueError("must be greater than 0")
            if number > MAX_SECONDS:
                raise ValueError(f"must be at most {MAX_SECONDS} (ten years)")
            return number
        if kind == "dict[str, Any]":
            if not isinstance(value, Mapping):
                raise ValueError("expected a table")
            return dict(value)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    except ValueError as exc:
        raise ConfigError(f"Invalid setting {name} (from {source}): {exc}") from None


def _from_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: {path} (VINTNER_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}") from None
    out = {}
    for key, value in data.items():
        if key not in _FIELDS:
            raise ConfigError(
                f"Unknown setting {key!r} in {path}; known settings: {', '.join(sorted(_FIELDS))}"
            )
        out[key] = _coerce(key, value, path)
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var, value in environ.items():
        if var in UNPREFIXED_ENV:
            out[UNPREFIXED_ENV[var]] = value
            continue
        if not var.startswith(ENV_PREFIX) or var in FOREIGN_ENV:
            continue
        name = var[len(ENV_PREFIX):].lower()
        if name not in _FIELDS or name == "artifact_store_options":
            raise ConfigError(
                f"Unknown setting {var}; known: "
                + ", ".join(ENV_PREFIX + n.upper() for n in sorted(_FIELDS)
                            if n != "artifact_store_options")
            )
        out[name] = _coerce(name, value, var)
    return out


def _validate(settings: Settings) -> Settings:
    if settings.env not in ENVIRONMENTS:
        raise ConfigError(f"Invalid setting env: {settings.env!r}; use development or production")
    instance = Path(settings.instance_path or Path.cwd() / "instance").resolve()
    changes: dict[str, Any] = {"instance_path": str(instance)}
    if not settings.database_url:
        changes["database_url"] = f"sqlite:///{instance / 'vintner.db'}"
    if not settings.artifact_store:
        changes["artifact_store"] = (instance / "artifacts").as_uri()
    for name in ("database_url", "artifact_store"):
        value = changes.get(name, getattr(settings, name))
        if "://" not in value and not value.startswith("sqlite:"):
            raise ConfigError(f"Invalid setting {name}: {value!r} is not a URL")
    if settings.admin_token is not None and len(settings.admin_token) < MIN_ADMIN_TOKEN_LENGTH:
        raise ConfigError(
            f"Invalid setting admin_token: use at least {MIN_ADMIN_TOKEN_LENGTH} characters"
        )
    if settings.admin_token is None and settings.env == "production":
        raise ConfigError("VINTNER_ADMIN_TOKEN is required when VINTNER_ENV=production")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"Invalid setting log_level: {settings.log_level!r}")
    return replace(settings, **changes)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build and validate the settings from every source."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if environ.get("VINTNER_CONFIG"):
        values.update(_from_toml(environ["VINTNER_CONFIG"]))
    values.update(_from_env(environ))
    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise ConfigError(f"Unknown setting {key!r} in overrides")
        values[key] = _coerce(key, value, "overrides")
    return _validate(Settings(**values))


def development_admin_token(settings: Settings) -> tuple[str, bool]:
    """The operator token to use in development when none is configured: read from (or created
    in) ``<instance>/admin-token``. Returns (token, created)."""
    path = Path(settings.instance_path) / "admin-token"
    if path.exists():
        return path.read_text().strip(), False
    token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # created 0600: the token grants full operator access
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"Invalid setting instance_path: cannot create {path}: {exc.strerror or exc}"
        ) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, True
