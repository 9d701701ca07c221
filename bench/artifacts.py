"""Plan-artifact benchmark: the server's memory growth and throughput for a 50 MiB upload and
download through the HTTP routes, against the real server process (``vintner serve``).

    .venv/bin/python bench/artifacts.py [--store file|s3|supabase] [--mode development|production]
                                        [--size-mib 50] [--repeat 3]

What it does, in one run:

1. starts ``vintner serve`` (tests/support/server.py) on SQLite with the chosen artifact store;
   as an operator registers a worker, creates a vine and a PLAN job; the worker claims it;
2. writes ``--size-mib`` random bytes to a temp file (in this process, not the server);
3. warms the routes up with a small upload and download, then samples the server's idle RSS;
4. uploads the file (streamed from disk, with Content-Length) and downloads it (streamed to
   disk), while a thread samples ``VmRSS`` of the server's processes every 5 ms from
   ``/proc/<pid>/status``; reports the peak growth over the idle baseline and ``VmHWM``;
5. copies the same file with a plain local copy (``shutil.copyfile`` + fsync, which is what the
   file store does as well) and reports each transfer's throughput as a ratio to that copy.

The server's growth must stay far below the artifact's size: every store streams.

Stores: ``file`` (default) needs nothing; ``s3`` starts a moto server as a process (``moto[server]``
from the dev extra); ``supabase`` is a hook for the artifact-store engineer (see ``STORES``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(REPO))

from tests.support.server import LiveServer, free_port, start_server, stop_process  # noqa: E402

MiB = 1024 * 1024
ROLE_ARN = "arn:aws:iam::123456789012:role/BenchRole"
SAMPLE_INTERVAL_S = 0.005


# -- memory of the server's processes -----------------------------------------------------------


def _status_kib(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's workers in production mode)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_kib(pids: list[int], field_name: str) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += _status_kib(pid, field_name)
    return total


class RssSampler:
    """Samples the summed VmRSS of ``pids`` in a thread; ``peak`` is the largest sample."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(tree_kib(self.pids, "VmRSS"))
            time.sleep(SAMPLE_INTERVAL_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(tree_kib(self.pids, "VmRSS"))

    @property
    def peak(self) -> int:
        return max(self.samples)


# -- artifact stores: each sets up what the server needs and tears it down -------------------


@dataclass
class StoreSetup:
    env: dict[str, str]
    cleanup: Callable[[], None] = lambda: None
    description: str = ""


def file_store(root: Path) -> StoreSetup:
    path = root / "artifacts"
    return StoreSetup(env={"VINTNER_ARTIFACT_STORE": path.as_uri()},
                      description=f"file store in {path}")


def s3_store(root: Path) -> StoreSetup:
    """A moto S3 server as a separate process (so its memory is not the server's)."""
    import boto3  # the s3 extra

    port = free_port()
    log = (root / "moto.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
             "AWS_DEFAULT_REGION": "us-east-1"}
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(endpoint, timeout=1)
            break
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_process(proc)
            raise SystemExit("moto_server did not start")
        time.sleep(0.1)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench",
                 ).create_bucket(Bucket="bench")

    def cleanup() -> None:
        stop_process(proc)
        log.close()

    return StoreSetup(env={"VINTNER_ARTIFACT_STORE": "s3://bench/artifacts",
                           "VINTNER_S3_ENDPOINT_URL": endpoint, "VINTNER_S3_REGION": "us-east-1",
                           **creds},
                      cleanup=cleanup, description=f"s3 store on moto_server {endpoint}")


def supabase_store(root: Path) -> StoreSetup:
    """Hook: start a Supabase-Storage-compatible server (e.g. tests/support/storage_server.py
    as its own process) and return ``VINTNER_ARTIFACT_STORE=supabase://bucket/prefix``,
    ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY``."""
    raise SystemExit("--store supabase is not wired up yet (see supabase_store in "
                     "bench/artifacts.py)")


STORES: dict[str, Callable[[Path], StoreSetup]] = {
    "file": file_store,
    "s3": s3_store,
    "supabase": supabase_store,
}


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    seconds: float
    peak_growth_kib: int
    hwm_before_kib: int
    hwm_after_kib: int
    extra: dict[str, str] = field(default_factory=dict)


def setup_job(server: LiveServer) -> tuple[httpx.Client, str]:
    """A worker client holding a PROCESSING PLAN job."""
    op = server.client(headers=server.operator_headers)
    identity = op.post("/api/cloud-identities", json={
        "provider": "aws", "name": "bench", "credentials": {"role_arn": ROLE_ARN}}).json()
    vineyard = op.post("/api/vineyards", json={"name": f"bench-{uuid.uuid4().hex[:6]}"}).json()
    vine = op.post("/api/vines", json={
        "vineyard_id": vineyard["id"], "cloud_identity_id": identity["id"],
        "project_name": "bench", "environment_stage": "development",
        "terraform": {"module": "vine-basic", "variables": {}}}).json()
    reg = op.post("/api/workers/register", json={"name": "bench", "mode": "self-hosted"})
    reg.raise_for_status()
    worker_id, token = reg.json()["worker_id"], reg.json()["worker_token"]
    job = op.post("/api/jobs", json={"job_type": "PLAN", "vine_id": vine["id"],
                                     "assigned_worker_id": worker_id})
    job.raise_for_status()
    op.close()
    worker = server.client(headers={"X-Worker-ID": worker_id, "X-Worker-Token": token},
                           timeout=600)
    claim = worker.post("/api/jobs/claim")
    assert claim.status_code == 200, claim.text
    job_id = claim.json()["job"]["id"]
    worker.put(f"/api/jobs/{job_id}/status", json={"status": "PROCESSING"}).raise_for_status()
    return worker, job_id


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 4 * MiB))
            digest.update(block)
            fh.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def copy_seconds(source: Path, target: Path) -> float:
    """A plain local copy of the same bytes, fsynced (as the file store does)."""
    started = time.perf_counter()
    shutil.copyfile(source, target)
    with target.open("rb+") as fh:
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def idle_baseline(pids: list[int], seconds: float = 1.0) -> int:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(tree_kib(pids, "VmRSS"))
        time.sleep(SAMPLE_INTERVAL_S)
    return int(statistics.median(samples))


def measure(worker: httpx.Client, job_id: str, pids: list[int], source: Path, sha: str,
            target: Path) -> list[Phase]:
    url = f"/api/jobs/{job_id}/plan-artifact"
    baseline = idle_baseline(pids)
    phases = []

    hwm = tree_kib(pids, "VmHWM")
    with RssSampler(pids) as sampler, source.open("rb") as fh:
        started = time.perf_counter()
        response = worker.post(url, content=fh,
                               headers={"Content-Type": "application/octet-stream"})
        seconds = time.perf_counter() - started
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == sha, "upload corrupted"
    phases.append(Phase("upload", seconds, sampler.peak - baseline, hwm,
                        tree_kib(pids, "VmHWM")))

    baseline = idle_baseline(pids)
    hwm = tree_kib(pids, "VmHWM")
    digest = hashlib.sha256()
    with RssSampler(pids) as sampler, target.open("wb") as out:
        started = time.perf_counter()
        with worker.stream("GET", url) as response:
            assert response.status_code == 200, response.read()
            for chunk in response.iter_raw(1 * MiB):
                digest.update(chunk)
                out.write(chunk)
        seconds = time.perf_counter() - started
    assert digest.hexdigest() == sha, "download corrupted"
    assert response.headers["etag"] == f'"{sha}"'
    phases.append(Phase("download", seconds, sampler.peak - baseline, hwm,
                        tree_kib(pids, "VmHWM")))
    target.unlink()
    return phases


def machine() -> dict[str, str]:
    with open("/proc/meminfo") as fh:
        total_kib = int(fh.readline().split()[1])
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": str(os.cpu_count()), "memory": f"{total_kib / MiB:.1f} GiB",
            "cpu": cpu, "python": platform.python_version(),
            "kernel": platform.release()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=sorted(STORES), default="file")
    parser.add_argument("--mode", choices=["development", "production"], default="development",
                        help="VINTNER_ENV of the server: Flask's server or gunicorn")
    parser.add_argument("--size-mib", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported")
    args = parser.parse_args(argv)
    size = args.size_mib * MiB

    with tempfile.TemporaryDirectory(prefix="vintner-bench-") as tmp:
        root = Path(tmp)
        store = STORES[args.store](root)
        try:
            server = start_server(root / "server", mode=args.mode, env=store.env,
                                  args=["--workers", "1"] if args.mode == "production" else [])
        except BaseException:
            store.cleanup()
            raise
        try:
            worker, job_id = setup_job(server)
            pids = process_tree(server.pid)
            source = root / "plan.bin"
            sha = write_random(source, size)
            # warm-up: the routes, the store and their imports, with a small artifact
            small = root / "small.bin"
            small_sha = write_random(small, 256 * 1024)
            measure(worker, job_id, pids, small, small_sha, root / "small.out")
            rounds = [measure(worker, job_id, pids, source, sha, root / "download.bin")
                      for _ in range(args.repeat)]
            copies = [copy_seconds(source, root / "copy.bin") for _ in range(args.repeat)]
            worker.close()
            tracebacks = server.tracebacks()
        finally:
            server.stop()
            store.cleanup()

    copy_s = statistics.median(copies)
    info = machine()
    print(f"# vintner plan-artifact benchmark — {args.size_mib} MiB, store={args.store} "
          f"({store.description}), server mode={args.mode}, {args.repeat} rounds (median)")
    print(f"# machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
          f"Python {info['python']}, Linux {info['kernel']}")
    print(f"# server processes measured: {len(pids)}")
    print(f"local copy (copyfile + fsync): {copy_s:.3f} s, {args.size_mib / copy_s:.0f} MiB/s")
    print(f"{'phase':<9} {'seconds':>8} {'MiB/s':>8} {'vs copy':>8} "
          f"{'peak RSS growth':>16} {'max growth':>11} {'VmHWM before→after':>22}")
    for index, name in enumerate(("upload", "download")):
        phases = [r[index] for r in rounds]
        seconds = statistics.median(p.seconds for p in phases)
        growth = statistics.median(p.peak_growth_kib for p in phases) / 1024
        worst = max(p.peak_growth_kib for p in phases) / 1024
        hwm = f"{phases[0].hwm_before_kib / 1024:.1f}→{phases[-1].hwm_after_kib / 1024:.1f} MiB"
        print(f"{name:<9} {seconds:>8.3f} {args.size_mib / seconds:>8.0f} "
              f"{copy_s / seconds:>8.2f} {growth:>12.1f} MiB {worst:>7.1f} MiB {hwm:>22}")
    if tracebacks:
        print(f"!! the server printed {len(tracebacks)} traceback(s):\n{tracebacks[0]}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
