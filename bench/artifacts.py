"""Plan-artifact benchmark: the server's memory growth and throughput for a 50 MiB upload and
download through the HTTP routes, against the real server process (``vintner serve``).

    .venv/bin/python bench/artifacts.py [--store file|s3|supabase|memstore|all]
                                        [--mode development|production]
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

Stores (``STORES``; every server a store needs runs as its own process, so only Vintner's
server is measured): ``file`` (default) needs nothing; ``s3`` starts ``moto_server``
(``moto[server]`` from the dev extra) and creates a bucket; ``supabase`` starts the
Storage-compatible server of tests/support/storage_server.py with a random service key;
``memstore`` is the example plugin (examples/plugin-memory-store, installed by ``make``), which
keeps artifacts in the server's memory *by design*, so its growth is the artifact's size.
``--store all`` runs them one after the other, each with its own server and local-copy
reference.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(REPO))

from tests.support.server import LiveServer, start_server, stop_process  # noqa: E402
from tests.support.store_servers import (  # noqa: E402
    start_moto_process,
    start_storage_server_process,
)

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

    log = (root / "moto.log").open("wb")
    proc, endpoint = start_moto_process(log)
    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
             "AWS_DEFAULT_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench",
                 ).create_bucket(Bucket="bench")

    def cleanup() -> None:
        stop_process(proc)
        log.close()

    return StoreSetup(env={"VINTNER_ARTIFACT_STORE": "s3://bench/artifacts",
                           "VINTNER_S3_ENDPOINT_URL": endpoint, "VINTNER_S3_REGION": "us-east-1",
                           **creds, **NO_PROXY},
                      cleanup=cleanup, description=f"s3 store on moto_server {endpoint}")


def supabase_store(root: Path) -> StoreSetup:
    """tests/support/storage_server.py (Supabase Storage's routes and error quirk) as a
    separate process, with a random service-role key; objects live in its temp folder."""
    key = secrets.token_urlsafe(24)
    proc, url = start_storage_server_process(key)
    return StoreSetup(env={"VINTNER_ARTIFACT_STORE": "supabase://artifacts/bench",
                           "SUPABASE_URL": url, "SUPABASE_SERVICE_ROLE_KEY": key, **NO_PROXY},
                      cleanup=lambda: stop_process(proc),
                      description=f"supabase store on the Storage-compatible server {url}, "
                                  "4 MiB parts")


def memstore_store(root: Path) -> StoreSetup:
    """The example plugin: artifacts in the server's own memory (growth = artifact size)."""
    if not any(ep.name == "memstore" for ep in entry_points(group="vintner.artifact_stores")):
        raise SystemExit("--store memstore needs the example plugin: "
                         ".venv/bin/pip install -e examples/plugin-memory-store")
    return StoreSetup(env={"VINTNER_ARTIFACT_STORE": "memstore://bench"},
                      description="memstore example plugin (objects in the server's memory)")


STORES: dict[str, Callable[[Path], StoreSetup]] = {
    "file": file_store,
    "s3": s3_store,
    "supabase": supabase_store,
    "memstore": memstore_store,
}
#: 127.0.0.1 servers must not be reached through a proxy from the environment.
NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


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


def run_store(name: str, args: argparse.Namespace) -> int:
    """One store: its server(s), the measured rounds, the printed figures. 1 on a traceback."""
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="vintner-bench-") as tmp:
        root = Path(tmp)
        store = STORES[name](root)
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
    print(f"# vintner plan-artifact benchmark — {args.size_mib} MiB, store={name} "
          f"({store.description}), server mode={args.mode}, {args.repeat} rounds (median)")
    print(f"# machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
          f"Python {info['python']}, Linux {info['kernel']}")
    print(f"# server processes measured: {len(pids)}")
    print(f"local copy (copyfile + fsync): {copy_s:.3f} s, {args.size_mib / copy_s:.0f} MiB/s")
    print(f"{'phase':<9} {'seconds':>8} {'MiB/s':>8} {'vs copy':>8} "
          f"{'peak RSS growth':>16} {'max growth':>11} {'VmHWM before→after':>22}")
    for index, phase_name in enumerate(("upload", "download")):
        phases = [r[index] for r in rounds]
        seconds = statistics.median(p.seconds for p in phases)
        growth = statistics.median(p.peak_growth_kib for p in phases) / 1024
        worst = max(p.peak_growth_kib for p in phases) / 1024
        hwm = f"{phases[0].hwm_before_kib / 1024:.1f}→{phases[-1].hwm_after_kib / 1024:.1f} MiB"
        print(f"{phase_name:<9} {seconds:>8.3f} {args.size_mib / seconds:>8.0f} "
              f"{copy_s / seconds:>8.2f} {growth:>12.1f} MiB {worst:>7.1f} MiB {hwm:>22}")
    if tracebacks:
        print(f"!! the server printed {len(tracebacks)} traceback(s):\n{tracebacks[0]}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=[*sorted(STORES), "all"], default="file")
    parser.add_argument("--mode", choices=["development", "production"], default="development",
                        help="VINTNER_ENV of the server: Flask's server or gunicorn")
    parser.add_argument("--size-mib", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported")
    args = parser.parse_args(argv)
    names = list(STORES) if args.store == "all" else [args.store]
    status = 0
    for index, name in enumerate(names):
        if index:
            print(flush=True)
        status |= run_store(name, args)
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
