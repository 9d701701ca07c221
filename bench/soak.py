"""Soak test of liveness, recovery and fencing: many agents that die, restart and race the sweep.

    .venv/bin/python bench/soak.py [--minutes 10] [--jobs 2000] [--agents 20]
                                   [--database-url postgresql+psycopg://...] [--seed N]

Not part of the test suite: it runs for as long as asked (``--minutes``, default 10).

What it runs
    ``vintner serve`` in production mode (gunicorn, two worker processes: two background
    sweepers) plus a ``vintner sweep --loop`` process (a third sweeper), all with short
    timings (offline after 2 s, recovery after 4 s, job timeout 15 s, log tail grace 5 s),
    on SQLite by default or on ``--database-url``.

    ``--agents`` agent threads speak the worker API over HTTP, like a Tendril: heartbeat about
    every second, claim, post PROCESSING, ship log chunks with ``seq`` (sometimes re-sending
    one, as a retry after a lost answer would), honour cancel requests (heartbeat list and
    ``X-Vintner-Cancel-Requested``), post a terminal status and sometimes a tail chunk after
    it. Now and then one dies abruptly at a random point of a job (stops heartbeating and
    abandons the job, with no goodbye) and restarts, as a new registration or as the same one;
    now and then one hangs (keeps heartbeating, never finishes) until the job times out. An
    operator thread enqueues ``--jobs`` jobs over the first half of the run (FETCH_RESOURCES,
    CONNECTION_TEST, DEPLOY_WORKER: no Terraform needed) and cancels a few.

    At the end it stops the deaths, lets the agents finish their jobs, waits for the sweep to
    recover what dead agents left, and checks, printing the counts:

    - every job is terminal or QUEUED;
    - no job was ever held by two workers at once: (a) no write of a worker was accepted
      after it had been sent later than another worker's claim of a newer attempt of the job
      was answered (client clocks: one process, one monotonic clock); (b) on the server, the
      job's stored chunks, in id order, never go back to an older attempt; (c) no two claims
      of a job carry the same attempt number;
    - every terminal status a worker was told was accepted is the job's final status;
    - no log chunk lost or doubled: every acknowledged chunk is stored exactly once with its
      text, nothing refused (409) was stored, nothing is stored that was not sent.

    Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(REPO))

from tests.support.server import (  # noqa: E402
    LiveServer,
    check_no_tracebacks,
    server_env,
    start_server,
    stop_process,
    vintner_command,
)

TIMINGS = {
    "heartbeat_interval_s": 1.0,
    "worker_offline_after_s": 2.0,
    "job_recovery_after_s": 4.0,
    "job_timeout_s": 15.0,
    "log_tail_grace_s": 5.0,
    "sweep_interval_s": 0.5,
}
SEQ_STRIDE = 1_000_000  # seq = (attempt - 1) * stride + n: attempts never collide
TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})
HELD = frozenset({"CLAIMED", "PROCESSING"})
ROLE_ARN = "arn:aws:iam::123456789012:role/SoakRole"
CANCEL_HEADER = "X-Vintner-Cancel-Requested"
P_DIE = 0.05  # per job: the agent dies somewhere in it
P_HANG = 0.004  # per job: the agent hangs (heartbeats on) until the job times out
P_SAME_REGISTRATION = 0.3  # a restart keeps the worker's id and token
P_RESEND = 0.1  # re-send a chunk's seq (a retry whose first answer was lost)
P_TAIL = 0.4  # a tail chunk after the terminal status
P_FAIL = 0.1  # the job "fails" (the agent posts FAILED)
P_CANCEL = 0.02  # the operator cancels the job


def client(url: str, headers: dict[str, str]) -> httpx.Client:
    """An HTTP client whose idle connections expire before the server's keep-alive (gunicorn:
    2 s) closes them, so a request never races the server closing its connection."""
    return httpx.Client(base_url=url, timeout=60, trust_env=False, headers=headers,
                        limits=httpx.Limits(keepalive_expiry=1.0))


# -- what the agents saw ------------------------------------------------------------------------


@dataclass
class Claim:
    holder: str  # worker id + incarnation
    attempt: int
    answered: float  # monotonic time the claim's answer arrived


@dataclass
class Write:
    holder: str
    attempt: int
    sent: float  # monotonic time the request was sent
    what: str


@dataclass
class Chunk:
    text: str
    state: str  # "acked" | "refused" | "unknown"


@dataclass
class JobRecord:
    claims: list[Claim] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)  # accepted ones
    chunks: dict[int, Chunk] = field(default_factory=dict)
    terminal_accepted: list[tuple[str, str]] = field(default_factory=list)  # (holder, status)


class Ledger:
    """Everything the agents were told, per job (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, JobRecord] = defaultdict(JobRecord)
        self.stats: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.stats[name] += n

    def claim(self, job_id: str, claim: Claim) -> None:
        with self.lock:
            self.jobs[job_id].claims.append(claim)
            self.stats["claims"] += 1

    def write(self, job_id: str, write: Write) -> None:
        with self.lock:
            self.jobs[job_id].writes.append(write)

    def chunk(self, job_id: str, seq: int, text: str, state: str) -> None:
        with self.lock:
            known = self.jobs[job_id].chunks.get(seq)
            if known is not None and known.state == "acked":
                return  # a re-send of an acknowledged chunk
            self.jobs[job_id].chunks[seq] = Chunk(text, state)

    def terminal(self, job_id: str, holder: str, status: str) -> None:
        with self.lock:
            self.jobs[job_id].terminal_accepted.append((holder, status))


# -- the agents ---------------------------------------------------------------------------------


class Died(Exception):
    """The agent process is gone (simulated): it stops doing anything at once."""


class Lost(Exception):
    """409 on a write: the job is no longer this worker's."""


class Cancelled(Exception):
    """The operator asked to cancel the job this worker runs."""


class Life:
    """One incarnation of an agent: one registration, one HTTP client, until it dies."""

    def __init__(self, ctx: Soak, rng: random.Random, creds: tuple[str, str], name: str) -> None:
        self.ctx, self.rng, self.creds, self.name = ctx, rng, creds, name
        self.http = client(ctx.server.url, {"X-Worker-ID": creds[0], "X-Worker-Token": creds[1]})
        self.last_heartbeat = 0.0
        self.cancel_requested: set[str] = set()

    def close(self) -> None:
        self.http.close()

    def heartbeat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_heartbeat < TIMINGS["heartbeat_interval_s"]:
            return
        response = self.http.post("/api/workers/heartbeat", json={"version": "soak"})
        response.raise_for_status()
        self.last_heartbeat = time.monotonic()
        self.cancel_requested.update(response.json()["cancel_requested"])
        self.ctx.ledger.count("heartbeats")

    def nap(self, seconds: float) -> None:
        """Sleep while heartbeating, as the agent's heartbeat thread would."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))
            self.heartbeat()

    def run(self) -> None:
        """Claim and run jobs until told to stop; raises Died when this incarnation dies."""
        self.heartbeat(force=True)
        while not self.ctx.stop_claiming.is_set():
            self.heartbeat()
            response = self.http.post("/api/jobs/claim")
            if response.status_code == 204:
                self.nap(0.5)
                continue
            response.raise_for_status()
            job = response.json()["job"]
            self.ctx.ledger.claim(job["id"], Claim(self.name, job["attempts"], time.monotonic()))
            try:
                self.work(job)
            except Lost:
                self.ctx.ledger.count("jobs lost by a live worker (409)")
            except Cancelled:
                pass

    # one job ------------------------------------------------------------------------------
    def work(self, job: dict[str, Any]) -> None:
        job_id, attempt = job["id"], int(job["attempts"])
        seq = (attempt - 1) * SEQ_STRIDE
        steps = self.rng.randint(2, 6)
        dies_at = self.rng.randint(-1, steps + 1) if self.rng.random() < P_DIE else None
        hangs = dies_at is None and self.rng.random() < P_HANG
        step_s = self.ctx.step_s
        if job.get("cancel_requested"):
            self.cancel_requested.add(job_id)

        def maybe_die(point: int) -> None:
            if dies_at == point and not self.ctx.stop_dying.is_set():
                raise Died

        maybe_die(-1)  # right after the claim: the job is CLAIMED
        self.status(job_id, attempt, "PROCESSING", {"holder": self.name})
        for step in range(steps):
            maybe_die(step)
            self.nap(step_s * self.rng.uniform(0.5, 1.5))
            self.check_cancel(job_id, attempt)
            text = f"{self.name} attempt {attempt} step {step}\n"
            self.log(job_id, attempt, seq, text)
            if self.rng.random() < P_RESEND:
                self.log(job_id, attempt, seq, text, resend=True)
            seq += 1
        if hangs:
            self.ctx.ledger.count("agents hung")
            self.nap(TIMINGS["job_timeout_s"] + 3)  # the server times the job out meanwhile
        maybe_die(steps)  # the work is done, the status never sent
        final = "FAILED" if self.rng.random() < P_FAIL else "SUCCESS"
        self.status(job_id, attempt, final, {"holder": self.name, "phase": "done"},
                    error="soak failure" if final == "FAILED" else None)
        maybe_die(steps + 1)
        if self.rng.random() < P_TAIL:
            self.log(job_id, attempt, seq, f"{self.name} attempt {attempt} tail\n")

    def check_cancel(self, job_id: str, attempt: int) -> None:
        if job_id in self.cancel_requested:
            self.status(job_id, attempt, "CANCELLED", {"holder": self.name})
            self.ctx.ledger.count("cancels honoured by agents")
            raise Cancelled

    def status(self, job_id: str, attempt: int, status: str, metadata: dict[str, Any],
               error: str | None = None) -> None:
        body: dict[str, Any] = {"status": status, "execution_metadata": metadata}
        if error:
            body["error_message"] = error
        sent = time.monotonic()
        response = self.http.put(f"/api/jobs/{job_id}/status", json=body)
        if response.status_code == 409:
            raise Lost
        response.raise_for_status()
        self.ctx.ledger.write(job_id, Write(self.name, attempt, sent, f"status {status}"))
        if status in TERMINAL:
            self.ctx.ledger.terminal(job_id, self.name, status)
        if response.headers.get(CANCEL_HEADER) == "true":
            self.cancel_requested.add(job_id)

    def log(self, job_id: str, attempt: int, seq: int, text: str, resend: bool = False) -> None:
        sent = time.monotonic()
        try:
            response = self.http.post(f"/api/jobs/{job_id}/logs",
                                      json={"log_chunk": text, "stream_type": "STDOUT",
                                            "seq": seq})
        except httpx.TransportError:
            self.ctx.ledger.chunk(job_id, seq, text, "unknown")
            raise
        if response.status_code == 409:
            self.ctx.ledger.chunk(job_id, seq, text, "refused")
            raise Lost
        response.raise_for_status()
        duplicate = response.status_code == 200 and response.json().get("duplicate") is True
        if resend:
            self.ctx.ledger.count("chunks re-sent")
            if duplicate:
                self.ctx.ledger.count("re-sent chunks answered as duplicates")
        elif duplicate:
            self.ctx.ledger.count("first sends answered as duplicate (bad)")
        self.ctx.ledger.chunk(job_id, seq, text, "acked")
        self.ctx.ledger.count("chunks acknowledged")
        self.ctx.ledger.write(job_id, Write(self.name, attempt, sent, f"log {seq}"))
        if response.headers.get(CANCEL_HEADER) == "true":
            self.cancel_requested.add(job_id)


class AgentThread(threading.Thread):
    def __init__(self, ctx: Soak, index: int) -> None:
        super().__init__(name=f"agent-{index}", daemon=True)
        self.ctx, self.index = ctx, index
        self.rng = random.Random(ctx.seed * 1000 + index)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            creds = self.ctx.register(f"soak-{self.index}")
            incarnation = 0
            while not self.ctx.stop_claiming.is_set():
                life = Life(self.ctx, self.rng, creds, f"{creds[0][:8]}.{incarnation}")
                try:
                    life.run()
                    return  # told to stop; the current job was finished
                except Died:
                    self.ctx.ledger.count("agent deaths")
                except httpx.TransportError as exc:  # the connection broke: crash, restart
                    self.ctx.ledger.count(f"agent crashes on transport errors "
                                          f"({type(exc).__name__})")
                except httpx.HTTPStatusError as exc:  # an answer the contract rules out
                    self.ctx.ledger.count("agent crashes on unexpected HTTP status")
                    self.ctx.http_errors.append(f"{life.name}: {exc}")
                finally:
                    life.close()
                incarnation += 1
                if self.rng.random() < P_SAME_REGISTRATION:
                    # Same id and token: wait until the sweep has recovered what this worker
                    # held (a worker that comes back sooner keeps holding its old jobs; see
                    # the report), then start again.
                    time.sleep(TIMINGS["job_recovery_after_s"] + 3 * TIMINGS["sweep_interval_s"]
                               + self.rng.uniform(0, 1))
                    self.ctx.ledger.count("restarts as the same registration")
                else:
                    time.sleep(self.rng.uniform(0.2, 1.5))
                    creds = self.ctx.register(f"soak-{self.index}-{incarnation}")
                    self.ctx.ledger.count("restarts as a new registration")
        except BaseException as exc:  # noqa: BLE001 - reported at the end
            self.error = exc


# -- the run ------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace, server: LiveServer) -> None:
        self.args, self.server, self.seed = args, server, args.seed
        self.ledger = Ledger()
        self.stop_claiming = threading.Event()
        self.stop_dying = threading.Event()
        self.op = client(server.url, server.operator_headers)
        seconds = args.minutes * 60
        # keep the agents around 60 % busy: the jobs are enqueued over the first half
        self.step_s = min(1.0, max(0.02, 0.6 * args.agents * seconds / args.jobs / 5))
        self.job_ids: list[str] = []
        self.http_errors: list[str] = []

    def ok(self, response: httpx.Response, status: int) -> Any:
        if response.status_code != status:
            raise RuntimeError(f"{response.request.method} {response.request.url}: "
                               f"{response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def register(self, name: str) -> tuple[str, str]:
        body = {"name": name, "mode": "self-hosted"}
        for attempt in range(5):  # a broken connection: register again (an extra worker is fine)
            try:
                data = self.ok(self.op.post("/api/workers/register", json=body), 201)
                break
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        self.ledger.count("registrations")
        return data["worker_id"], data["worker_token"]

    def operator(self, rng: random.Random, until: float, lane: int, lanes: int,
                 identity: str) -> None:
        """Enqueue this lane's share of the jobs evenly until ``until``; cancel a few."""
        start = time.monotonic()
        for i in range(lane, self.args.jobs, lanes):
            target = start + (until - start) * i / self.args.jobs
            if (delay := target - time.monotonic()) > 0:
                time.sleep(delay)
            kind = rng.random()
            if kind < 0.6:
                body: dict[str, Any] = {"job_type": "FETCH_RESOURCES"}
            elif kind < 0.85:
                body = {"job_type": "CONNECTION_TEST", "cloud_identity_id": identity}
            else:
                body = {"job_type": "DEPLOY_WORKER"}
            with self.ledger.lock:
                self.job_ids.append(self.ok(self.op.post("/api/jobs", json=body), 201)["id"])
            if rng.random() < P_CANCEL:
                victim = rng.choice(self.job_ids[-50:])
                response = self.op.post(f"/api/jobs/{victim}/cancel")
                if response.status_code in (200, 409):
                    self.ledger.count("operator cancels" if response.status_code == 200
                                      else "operator cancels of ended jobs (409)")

    def jobs_by_status(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for status in ("QUEUED", "CLAIMED", "PROCESSING", "SUCCESS", "FAILED", "CANCELLED"):
            counts[status] = self.ok(self.op.get("/api/jobs", params={
                "status": status, "limit": 1}), 200)["total"]
        return counts


@contextlib.contextmanager
def sweeper_process(server: LiveServer, database_url: str | None) -> Iterator[None]:
    """``vintner sweep --loop``: one more sweeper, as a cron-minded install would run."""
    extra = {f"VINTNER_{k.upper()}": str(v) for k, v in TIMINGS.items()}
    if database_url:
        extra["VINTNER_DATABASE_URL"] = database_url
    env = server_env(server.root, server.token, "development", extra)
    with (server.root / "sweep.log").open("wb") as log:
        proc = subprocess.Popen(
            [*vintner_command(), "sweep", "--loop", "--interval",
             str(TIMINGS["sweep_interval_s"])],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield
    finally:
        stop_process(proc)


def check(soak: Soak, started: float) -> tuple[list[str], dict[str, Any]]:
    """Read every job and its log back from the server; compare with the ledger."""
    problems: list[str] = []
    counts: dict[str, Any] = {}
    op, ledger = soak.op, soak.ledger
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    stored_chunks = acked = lost = doubled = phantom = refused_stored = 0
    overlap_client = overlap_server = duplicate_attempts = wrong_final = 0
    requeues = 0
    for job_id in soak.job_ids:
        job = soak.ok(op.get(f"/api/jobs/{job_id}"), 200)
        statuses[job["status"]] += 1
        if job["status"] not in TERMINAL and job["status"] != "QUEUED":
            problems.append(f"job {job_id} ended the run {job['status']}")
        if job["status"] == "FAILED":
            reasons[re.sub(r"\d+", "N", (job["error_message"] or "")[:60])] += 1
        logs = soak.ok(op.get(f"/api/jobs/{job_id}/logs", params={"limit": 5000}), 200)["logs"]
        record = ledger.jobs.get(job_id, JobRecord())

        # (c) claims: one attempt number each
        attempts = Counter(c.attempt for c in record.claims)
        if any(n > 1 for n in attempts.values()):
            duplicate_attempts += 1
            problems.append(f"job {job_id}: two claims with one attempt number {attempts}")
        if record.claims and job["status"] != "QUEUED" and job["attempts"] != max(attempts):
            problems.append(f"job {job_id}: server attempts {job['attempts']}, "
                            f"claims seen {sorted(attempts)}")
        # (a) no accepted write sent after another worker's newer claim was answered
        for write in record.writes:
            for claim in record.claims:
                if (claim.holder != write.holder and claim.attempt > write.attempt
                        and claim.answered < write.sent):
                    overlap_client += 1
                    problems.append(f"job {job_id}: {write.what} of {write.holder} (attempt "
                                    f"{write.attempt}) accepted after {claim.holder} claimed "
                                    f"attempt {claim.attempt}")
        # (b) on the server: chunks in id order never return to an older attempt
        agent_chunks = [c for c in logs if c["seq"] is not None]
        order = [c["seq"] // SEQ_STRIDE for c in agent_chunks]
        if order != sorted(order):
            overlap_server += 1
            problems.append(f"job {job_id}: stored chunks interleave attempts {order}")
        # final status: what a worker was told it set
        for holder, status in record.terminal_accepted:
            if status != job["status"]:
                wrong_final += 1
                problems.append(f"job {job_id}: {holder} was told {status} was accepted, "
                                f"the job is {job['status']}")
        # logs: exactly once
        stored: dict[int, list[str]] = defaultdict(list)
        for chunk in agent_chunks:
            stored[chunk["seq"]].append(chunk["log_chunk"])
        stored_chunks += len(agent_chunks)
        requeues += sum("requeued after attempt" in c["log_chunk"] for c in logs
                        if c["stream_type"] == "SYSTEM")
        for seq, texts in stored.items():
            if len(texts) > 1:
                doubled += 1
                problems.append(f"job {job_id}: seq {seq} stored {len(texts)} times")
            sent = record.chunks.get(seq)
            if sent is None:
                phantom += 1
                problems.append(f"job {job_id}: stored seq {seq} was never sent")
            elif sent.state == "refused":
                refused_stored += 1
                problems.append(f"job {job_id}: seq {seq} was refused (409) yet stored")
            elif texts[0] != sent.text:
                problems.append(f"job {job_id}: seq {seq} stored with other text")
        for seq, sent in record.chunks.items():
            if sent.state == "acked":
                acked += 1
                if seq not in stored:
                    lost += 1
                    problems.append(f"job {job_id}: acknowledged seq {seq} is not stored")
    counts.update({
        "jobs": len(soak.job_ids),
        "by status": dict(sorted(statuses.items())),
        "terminal or queued": sum(n for s, n in statuses.items() if s in TERMINAL | {"QUEUED"}),
        "still held (must be 0)": sum(n for s, n in statuses.items() if s in HELD),
        "failure reasons": dict(reasons.most_common()),
        "requeues by recovery (SYSTEM lines)": requeues,
        "claims with a repeated attempt number (must be 0)": duplicate_attempts,
        "writes accepted after another worker's newer claim (must be 0)": overlap_client,
        "jobs whose stored chunks interleave attempts (must be 0)": overlap_server,
        "accepted terminal statuses that are not the final one (must be 0)": wrong_final,
        "log chunks acknowledged": acked,
        "log chunks stored": stored_chunks,
        "acknowledged chunks lost (must be 0)": lost,
        "chunks stored twice (must be 0)": doubled,
        "refused chunks stored (must be 0)": refused_stored,
        "stored chunks never sent (must be 0)": phantom,
        "run time (s)": round(time.monotonic() - started, 1),
    })
    return problems, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--database-url", default=None,
                        help="default: a SQLite file in a temporary folder")
    parser.add_argument("--mode", choices=["production", "development"], default="production",
                        help="production: gunicorn with 2 worker processes (2 sweepers)")
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(10**6))
    parser.add_argument("--keep", action="store_true", help="keep the server's folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vintner-soak-"))
    env = {f"VINTNER_{k.upper()}": str(v) for k, v in TIMINGS.items()}
    env["VINTNER_LOG_LEVEL"] = "WARNING"
    if args.database_url:
        env["VINTNER_DATABASE_URL"] = args.database_url
    server_args = ["--workers", "2", "--threads", "32"] if args.mode == "production" else []
    print(f"soak: {args.minutes} min, {args.jobs} jobs, {args.agents} agents, seed {args.seed}, "
          f"{args.database_url or 'SQLite'}, server {args.mode}, folder {root}", flush=True)
    server = start_server(root, mode=args.mode, env=env, args=server_args)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    try:
        with sweeper_process(server, args.database_url):
            soak = Soak(args, server)
            agents = [AgentThread(soak, i) for i in range(args.agents)]
            for agent in agents:
                agent.start()
            identity = soak.ok(soak.op.post("/api/cloud-identities", json={
                "provider": "aws", "name": f"soak-{uuid.uuid4().hex[:8]}",
                "credentials": {"role_arn": ROLE_ARN}}), 201)["id"]
            lanes = 4
            operators = [threading.Thread(
                target=soak.operator,
                args=(random.Random(args.seed + lane), started + args.minutes * 60 / 2, lane,
                      lanes, identity),
                name=f"operator-{lane}", daemon=True) for lane in range(lanes)]
            for operator in operators:
                operator.start()
            while time.monotonic() < deadline:
                time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
                counts = soak.jobs_by_status()
                print(f"  t={time.monotonic() - started:6.0f}s {dict(counts)} "
                      f"deaths={soak.ledger.stats['agent deaths']}", flush=True)
            for operator in operators:
                operator.join()
            # wind down: no more deaths or claims; agents finish their jobs; the sweep recovers
            # what dead agents left behind
            soak.stop_dying.set()
            soak.stop_claiming.set()
            for agent in agents:
                agent.join(TIMINGS["job_timeout_s"] + 30)
            settle = time.monotonic() + TIMINGS["job_recovery_after_s"] * 4
            while time.monotonic() < settle:
                counts = soak.jobs_by_status()
                if counts["CLAIMED"] + counts["PROCESSING"] == 0:
                    break
                time.sleep(0.5)
            problems, summary = check(soak, started)
            errors = [f"{a.name}: {a.error!r}" for a in agents if a.error is not None]
            errors += [f"{a.name} still running" for a in agents if a.is_alive()]
            errors += [f"unexpected HTTP answer: {e}" for e in soak.http_errors]
    finally:
        server.stop()
    try:
        check_no_tracebacks(server)
    except AssertionError as exc:
        problems.append(str(exc)[:2000])
    print("\nagents:")
    for name, value in sorted(soak.ledger.stats.items()):
        print(f"  {name}: {value}")
    print("\nchecks:")
    for name, value in summary.items():
        print(f"  {name}: {value}")
    for error in errors:
        problems.append(f"agent thread error: {error}")
    if problems:
        print(f"\nFAILED: {len(problems)} problem(s); the first ones:")
        for problem in problems[:30]:
            print("  " + problem)
        print(f"(server folder kept: {root})")
        return 1
    print("\nOK: every job terminal or queued, never held by two workers at once, "
          "no log chunk lost or doubled")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
