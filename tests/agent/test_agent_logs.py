"""The log shipper over real HTTP: batching, seq, stream separation, retries, redaction."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from logpeer import Peer, log_peer

from vintner.agent.client import WorkerClient
from vintner.agent.config import AgentConfig, Timings
from vintner.agent.logs import SEQ_STRIDE_PER_ATTEMPT, LogShipper
from vintner.agent.redact import MASK, Redactor

JOB = "6f1c1a52-0d7e-4c1e-9a55-3f5f6e0b1a01"
TOKEN = "vtw_Zx9fK2mQ7rT4yU1iO0pL3kJ8hG5fD6sA"
FAST = Timings(
    log_flush_interval_s=0.3, log_flush_bytes=10 * 1024, retry_base_s=0.05, retry_max_s=0.2,
    retry_deadline_s=10, http_timeout_s=0.5,
)


@pytest.fixture
def peer() -> Iterator[Peer]:
    with log_peer() as p:
        yield p


def make(peer: Peer, *, timings: Timings = FAST, attempt: int = 1, **kw: object):
    config = AgentConfig(url=peer.url, worker_id="wid", worker_token=TOKEN, timings=timings)
    cancelled: list[str] = []
    client = WorkerClient(config, on_cancel_requested=cancelled.append)
    shipper = LogShipper(client, JOB, redactor=Redactor([TOKEN]), timings=timings,
                         attempt=attempt, **kw)  # type: ignore[arg-type]
    return client, shipper, cancelled


def test_lines_are_batched_by_time_with_increasing_seq(peer: Peer) -> None:
    client, shipper, _ = make(peer)
    for i in range(5):
        shipper.write("STDOUT", f"line {i}")
    time.sleep(FAST.log_flush_interval_s * 3)
    assert len(peer.requests) == 1  # one chunk, cut by the timer, before close()
    shipper.write("STDOUT", "after")
    assert shipper.close(timeout=5)
    chunks = peer.chunks(JOB)
    assert [c["seq"] for c in chunks] == [0, 1]
    assert chunks[0]["log_chunk"] == "".join(f"line {i}\n" for i in range(5))
    assert peer.headers[0]["X-Worker-Token"] == TOKEN
    assert peer.headers[0]["User-Agent"].startswith("vintner-agent/")
    client.close()


def test_size_threshold_cuts_chunks(peer: Peer) -> None:
    timings = Timings(**{**FAST.__dict__, "log_flush_interval_s": 60})
    client, shipper, _ = make(peer, timings=timings)
    line = "x" * 1000
    for _ in range(35):  # ~35 KiB -> at least 3 chunks of >= 10 KiB before close
        shipper.write("STDOUT", line)
    deadline = time.monotonic() + 5
    while len(peer.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(peer.requests) == 3  # cut by size, not by the (60 s) timer
    assert shipper.close(timeout=5)
    assert peer.text(JOB) == (line + "\n") * 35
    assert all(len(c["log_chunk"]) <= 11 * 1024 for c in peer.chunks(JOB))
    client.close()


def test_streams_are_separate_chunks_in_order(peer: Peer) -> None:
    client, shipper, _ = make(peer)
    shipper.write("STDOUT", "out 1")
    shipper.write("STDOUT", "out 2")
    shipper.write("STDERR", "err 1")
    shipper.system("[vintner] phase: plan")
    shipper.write("STDOUT", "out 3")
    assert shipper.close(timeout=5)
    got = [(c["seq"], c["stream_type"], c["log_chunk"]) for c in peer.chunks(JOB)]
    assert got == [
        (0, "STDOUT", "out 1\nout 2\n"),
        (1, "STDERR", "err 1\n"),
        (2, "SYSTEM", "[vintner] phase: plan\n"),
        (3, "STDOUT", "out 3\n"),
    ]
    client.close()


def test_500s_and_timeouts_are_retried_without_loss_or_duplicates(peer: Peer) -> None:
    # 1st try: 500; 2nd: stored but answered after the client timed out; 3rd: 500 again;
    # then everything succeeds. The retried seq is de-duplicated by the peer.
    peer.faults = ["500", "sleep:1.5", "500"]
    client, shipper, _ = make(peer)
    shipper.write("STDOUT", "first")
    time.sleep(0.5)
    shipper.write("STDERR", "second")
    assert shipper.close(timeout=10)
    assert peer.text(JOB) == "first\nsecond\n"
    seqs = [r["seq"] for r in peer.requests]
    assert seqs.count(0) >= 3  # retried with the same seq
    assert sorted(set(seqs)) == [0, 1]
    assert shipper.sent_chunks == 2 and shipper.dropped_chunks == 0
    client.close()


def test_backoff_grows_between_retries(peer: Peer) -> None:
    peer.faults = ["500"] * 4
    timings = Timings(**{**FAST.__dict__, "retry_base_s": 0.1, "retry_max_s": 5})
    client, shipper, _ = make(peer, timings=timings)
    started = time.monotonic()
    shipper.write("STDOUT", "x")
    assert shipper.close(timeout=10)
    # 0.1 + 0.2 + 0.4 + 0.8 = 1.5 s of backoff at least, plus the flush timer
    assert time.monotonic() - started >= 1.4
    assert peer.text(JOB) == "x\n"
    client.close()


def test_409_marks_the_job_lost(peer: Peer) -> None:
    peer.faults = ["409"]
    lost: list[bool] = []
    client, shipper, _ = make(peer, on_lost=lambda: lost.append(True))
    shipper.write("STDOUT", "x")
    shipper.flush(timeout=5)
    assert shipper.lost and lost == [True]
    shipper.write("STDOUT", "ignored")
    shipper.close(timeout=1)
    assert len(peer.requests) == 1
    client.close()


def test_cancel_header_is_reported(peer: Peer) -> None:
    peer.faults = ["cancel"]
    client, shipper, cancelled = make(peer)
    shipper.write("STDOUT", "x")
    assert shipper.close(timeout=5)
    assert cancelled == [JOB]
    client.close()


def test_second_attempt_uses_its_own_seq_range(peer: Peer) -> None:
    client, shipper, _ = make(peer, attempt=2)
    shipper.write("STDOUT", "x")
    assert shipper.close(timeout=5)
    assert [c["seq"] for c in peer.chunks(JOB)] == [SEQ_STRIDE_PER_ATTEMPT]
    client.close()


def test_secrets_never_reach_the_server(peer: Peer) -> None:
    client, shipper, _ = make(peer)
    shipper._redactor.add("per-job-sensitive-value")
    shipper.write("STDOUT", f"token is {TOKEN}")
    shipper.write("STDERR", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    shipper.write("STDOUT", "key AKIAIOSFODNN7EXAMPLE and per-job-sensitive-value")
    assert shipper.close(timeout=5)
    text = peer.text(JOB)
    for secret in (TOKEN, "wJalrXUtnFEMI", "AKIAIOSFODNN7EXAMPLE", "per-job-sensitive-value"):
        assert secret not in text
    assert text.count(MASK) == 4
    client.close()


def test_huge_line_is_split_below_the_server_limit(peer: Peer) -> None:
    client, shipper, _ = make(peer)
    shipper.write("STDOUT", "é" * 400_000)  # 800 KB of UTF-8 on one line
    assert shipper.close(timeout=10)
    chunks = peer.chunks(JOB)
    assert len(chunks) >= 4
    assert all(len(c["log_chunk"].encode()) <= 256 * 1024 for c in chunks)
    assert peer.text(JOB) == "é" * 400_000 + "\n"
    client.close()


def test_nul_characters_are_replaced_not_dropped(peer: Peer) -> None:
    client, shipper, _ = make(peer)
    shipper.write("STDOUT", "binary\x00output")
    assert shipper.close(timeout=5)
    assert peer.text(JOB) == "binary\ufffdoutput\n"
    client.close()
