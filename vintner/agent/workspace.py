"""Prepares a job's Terraform working directory from its config snapshot.

Layout of a fresh per-job directory:
- the module's files, copied from ``<modules dir>/<snapshot.terraform.module>``;
- ``terraform.tfvars.json``: the module variables (``snapshot.terraform.variables``) with
  the vine fields (project_name, region, environment_stage, cluster, databases, caches,
  network) on top — the vine is the source of truth for those, a module variable of the
  same name is shadowed (and reported);
- ``zz_vintner_backend_override.tf``: Terraform's ``http`` backend pointed at the vine's
  state endpoint on the server. It holds addresses only; the credentials travel in
  ``TF_HTTP_USERNAME`` / ``TF_HTTP_PASSWORD`` in the Terraform process environment, so
  they are in no file (and so in no uploaded plan).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vintner.agent.errors import JobFailed

VINE_FIELDS = (
    "project_name",
    "region",
    "environment_stage",
    "cluster",
    "databases",
    "caches",
    "network",
)
BACKEND_OVERRIDE = "zz_vintner_backend_override.tf"
TFVARS = "terraform.tfvars.json"
PLAN_FILE = "terraform.plan.out"
_MODULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_IGNORE = shutil.ignore_patterns(
    ".terraform",
    "*.tfstate",
    "*.tfstate.*",
    ".terraform.tfstate.lock.info",
    "*.plan.out",
    "terraform.tfvars.json",
    BACKEND_OVERRIDE,
)


@dataclass(frozen=True)
class HttpBackend:
    """Where Terraform keeps the vine's state: the server's ``http`` backend endpoint."""

    base_url: str
    vine_id: str

    @property
    def address(self) -> str:
        return f"{self.base_url.rstrip('/')}/api/vines/{self.vine_id}/terraform-state"

    def render(self) -> str:
        address = json.dumps(self.address)  # an HCL string literal is a JSON string here
        return (
            "# Written by the Vintner agent for this job. Credentials come from\n"
            "# TF_HTTP_USERNAME / TF_HTTP_PASSWORD in the environment, never from a file.\n"
            "terraform {\n"
            '  backend "http" {\n'
            f"    address        = {address}\n"
            f"    lock_address   = {address}\n"
            f"    unlock_address = {address}\n"
            '    lock_method    = "LOCK"\n'
            '    unlock_method  = "UNLOCK"\n'
            "  }\n"
            "}\n"
        )


@dataclass
class Workspace:
    path: Path
    module: str
    tfvars: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def plan_file(self) -> Path:
        return self.path / PLAN_FILE


def module_name(snapshot: dict[str, Any]) -> str:
    terraform = snapshot.get("terraform") or {}
    name = terraform.get("module") if isinstance(terraform, dict) else None
    if not isinstance(name, str) or not name:
        raise JobFailed("the vine has no Terraform module (config_snapshot.terraform.module)")
    if not _MODULE_NAME.match(name):
        raise JobFailed(f"invalid Terraform module name {name!r}")
    return name


def build_tfvars(snapshot: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Variables for terraform.tfvars.json and warnings about shadowed module variables."""
    terraform = snapshot.get("terraform") or {}
    variables = terraform.get("variables") if isinstance(terraform, dict) else None
    if variables is not None and not isinstance(variables, dict):
        raise JobFailed("config_snapshot.terraform.variables must be an object")
    tfvars: dict[str, Any] = dict(variables or {})
    warnings = []
    for name in VINE_FIELDS:
        value = snapshot.get(name)
        if value is None:
            continue  # let the module's default apply
        if name in tfvars and tfvars[name] != value:
            warnings.append(f"module variable {name!r} is shadowed by the vine's own {name}")
        tfvars[name] = value
    return tfvars, warnings


def prepare_workspace(
    snapshot: dict[str, Any],
    modules_dir: Path,
    dest: Path,
    backend: HttpBackend | None,
) -> Workspace:
    """Copy the module into ``dest`` (which must exist and be empty) and write the job files.

    ``backend=None`` keeps Terraform's default local state in ``dest`` (tests, demos).
    """
    name = module_name(snapshot)
    root = modules_dir.resolve()
    source = (root / name).resolve()
    if source.parent != root or not source.is_dir():
        raise JobFailed(f"Terraform module {name!r} not found in {modules_dir}")
    shutil.copytree(source, dest, ignore=_IGNORE, dirs_exist_ok=True)
    tfvars, warnings = build_tfvars(snapshot)
    (dest / TFVARS).write_text(json.dumps(tfvars, indent=2, sort_keys=True) + "\n")
    if backend is not None:
        (dest / BACKEND_OVERRIDE).write_text(backend.render())
    return Workspace(path=dest, module=name, tfvars=tfvars, warnings=warnings)
