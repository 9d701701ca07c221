"""worker-api.md "Logs": append (seq dedup, limits, stream types, tail grace) and paged reads."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.worker_helpers import (
    OPERATOR,
    Driver,
    WorkerCreds,
    assert_error,
    set_job_fields,
)

NOT_HELD = "Job is not held by this worker"


def post_log(client: FlaskClient, worker: WorkerCreds, job_id: str, body: Any) -> Any:
    return client.post(f"/api/jobs/{job_id}/logs", json=body, headers=worker.headers)


def read_all(client: FlaskClient, job_id: str, headers: dict[str, str],
             limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every chunk, page by page; returns (chunks, number of pages)."""
    after, chunks, pages = 0, [], 0
    while True:
        query = f"?after={after}" + (f"&limit={limit}" if limit else "")
        response = client.get(f"/api/jobs/{job_id}/logs{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        pages += 1
        chunks.extend(page["logs"])
        if page["logs"]:
            assert page["next_after"] == page["logs"][-1]["id"]
        else:
            assert page["next_after"] == after
        after = page["next_after"]
        if not page["has_more"]:
            return chunks, pages
        assert pages < 1000


# -- append ---------------------------------------------------------------------------------


def test_append_201_with_id(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    first = post_log(client, worker, job["id"], {"log_chunk": "Creating VPC...\n",
                                                  "stream_type": "STDOUT", "seq": 0})
    assert first.status_code == 201
    body = first.get_json()
    assert body["success"] is True
    assert isinstance(body["id"], int) and not isinstance(body["id"], bool)
    assert "duplicate" not in body or body["duplicate"] is False
    second = driver.log(worker, job["id"], "VPC created: vpc-12345\n", seq=1)
    assert second["id"] > body["id"]


def test_default_stream_and_optional_seq(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.log(worker, job["id"], "no seq, no stream\n")
    driver.log(worker, job["id"], "no seq again\n")  # several chunks without seq
    logs = client.get(f"/api/jobs/{job['id']}/logs", headers=OPERATOR).get_json()["logs"]
    assert [(c["stream_type"], c["seq"]) for c in logs] == [("STDOUT", None), ("STDOUT", None)]


@pytest.mark.parametrize("stream", ["STDOUT", "STDERR", "SYSTEM"])
def test_stream_types(driver: Driver, client: FlaskClient, stream: str) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.log(worker, job["id"], "line\n", stream_type=stream)
    (chunk,) = client.get(f"/api/jobs/{job['id']}/logs", headers=OPERATOR).get_json()["logs"]
    assert chunk["stream_type"] == stream


def test_duplicate_seq_stored_once(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    first = driver.log(worker, job["id"], "chunk 17\n", seq=17)
    again = post_log(client, worker, job["id"], {"log_chunk": "chunk 17\n", "seq": 17})
    assert again.status_code == 200
    assert again.get_json() == {"success": True, "id": first["id"], "duplicate": True}
    # even with different content, the first chunk wins
    other = post_log(client, worker, job["id"], {"log_chunk": "different\n", "seq": 17,
                                                  "stream_type": "STDERR"})
    assert other.status_code == 200 and other.get_json()["id"] == first["id"]
    logs = client.get(f"/api/jobs/{job['id']}/logs", headers=OPERATOR).get_json()["logs"]
    assert [(c["id"], c["log_chunk"], c["seq"]) for c in logs] == [
        (first["id"], "chunk 17\n", 17)]


def test_seq_is_per_job(driver: Driver) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    other_worker, other_job = driver.claimed("FETCH_RESOURCES")
    a = driver.log(worker, job["id"], "a", seq=0)
    b = driver.log(other_worker, other_job["id"], "b", seq=0)
    assert a["id"] != b["id"]


@pytest.mark.parametrize("body,field", [
    ({"log_chunk": ""}, "log_chunk"),
    ({}, "log_chunk"),
    ({"log_chunk": None}, "log_chunk"),
    ({"log_chunk": 12}, "log_chunk"),
    ({"log_chunk": "x", "stream_type": "STDIN"}, "stream_type"),
    ({"log_chunk": "x", "stream_type": "stdout"}, "stream_type"),
    ({"log_chunk": "x", "seq": -1}, "seq"),
    ({"log_chunk": "x", "seq": "3"}, "seq"),
    ({"log_chunk": "x", "seq": 1.5}, "seq"),
])
def test_bad_chunks_are_400(driver: Driver, client: FlaskClient, body: dict[str, Any],
                            field: str) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    error = assert_error(post_log(client, worker, job["id"], body), 400)
    assert field in error["errors"]
    assert client.get(f"/api/jobs/{job['id']}/logs", headers=OPERATOR).get_json()["logs"] == []


def test_chunk_size_limit(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    assert_error(post_log(client, worker, job["id"], {"log_chunk": "x" * (1024 * 1024 + 1)}),
                 413)
    # counted in UTF-8 bytes
    assert_error(post_log(client, worker, job["id"], {"log_chunk": "é" * (512 * 1024 + 1)}),
                 413)
    assert post_log(client, worker, job["id"],
                    {"log_chunk": "x" * (1024 * 1024)}).status_code == 201


def test_unknown_job_is_404(driver: Driver, client: FlaskClient) -> None:
    worker = driver.worker()
    assert_error(post_log(client, worker, str(uuid.uuid4()), {"log_chunk": "x"}), 404,
                 "Job not found")


def test_not_held_is_409(driver: Driver, client: FlaskClient) -> None:
    _, job = driver.claimed("FETCH_RESOURCES")
    assert_error(post_log(client, driver.worker(), job["id"], {"log_chunk": "x"}), 409, NOT_HELD)
    queued = driver.enqueue("FETCH_RESOURCES")
    assert_error(post_log(client, driver.worker(), queued["id"], {"log_chunk": "x"}), 409,
                 NOT_HELD)


def test_accepted_while_claimed_and_processing(driver: Driver) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.log(worker, job["id"], "claimed\n")
    driver.status(worker, job["id"], "PROCESSING")
    driver.log(worker, job["id"], "processing\n")


@pytest.mark.parametrize("terminal", ["SUCCESS", "FAILED", "CANCELLED"])
def test_tail_grace_after_terminal(app: Flask, driver: Driver, client: FlaskClient,
                                   terminal: str) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], terminal)
    driver.log(worker, job["id"], "tail after the status\n", seq=5)
    # 4 minutes later: still within the 5-minute grace
    now = datetime.now(UTC)
    set_job_fields(app, job["id"], completed_at=now - timedelta(minutes=4))
    driver.log(worker, job["id"], "still the tail\n", seq=6)
    set_job_fields(app, job["id"], completed_at=now - timedelta(minutes=5, seconds=10))
    error = assert_error(post_log(client, worker, job["id"], {"log_chunk": "too late\n",
                                                               "seq": 7}), 409)
    assert terminal in error["error"]
    chunks = client.get(f"/api/jobs/{job['id']}/logs", headers=OPERATOR).get_json()["logs"]
    assert [c["log_chunk"] for c in chunks] == ["tail after the status\n", "still the tail\n"]


@pytest.mark.parametrize("app_overrides", [{"log_tail_grace_s": 1}])
def test_tail_grace_setting(app: Flask, driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], "SUCCESS")
    driver.log(worker, job["id"], "within a second\n")
    set_job_fields(app, job["id"],
                   completed_at=datetime.now(UTC) - timedelta(seconds=2))
    assert_error(post_log(client, worker, job["id"], {"log_chunk": "late\n"}), 409)


def test_duplicate_seq_after_grace_is_409(app: Flask, driver: Driver,
                                          client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.log(worker, job["id"], "x", seq=1)
    driver.status(worker, job["id"], "SUCCESS")
    set_job_fields(app, job["id"], completed_at=datetime.now(UTC) - timedelta(hours=1))
    assert_error(post_log(client, worker, job["id"], {"log_chunk": "x", "seq": 1}), 409)


# -- read -----------------------------------------------------------------------------------


def test_read_shape_and_order(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    sent = [("line 1\n", "STDOUT"), ("warning\n", "STDERR"), ("[vintner] note\n", "SYSTEM")]
    ids = [driver.log(worker, job["id"], chunk, stream_type=stream, seq=i)["id"]
           for i, (chunk, stream) in enumerate(sent)]
    response = client.get(f"/api/jobs/{job['id']}/logs", headers=OPERATOR)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"logs", "next_after", "has_more"}
    assert body["has_more"] is False
    assert body["next_after"] == ids[-1]
    assert [c["id"] for c in body["logs"]] == ids
    for chunk, (text, stream), seq in zip(body["logs"], sent, range(3), strict=True):
        assert set(chunk) == {"id", "job_id", "log_chunk", "stream_type", "seq", "created_at"}
        assert chunk["job_id"] == job["id"]
        assert chunk["log_chunk"] == text and chunk["stream_type"] == stream
        assert chunk["seq"] == seq
        assert datetime.fromisoformat(chunk["created_at"]).utcoffset() is not None


def test_empty_log(driver: Driver, client: FlaskClient) -> None:
    _, job = driver.claimed("FETCH_RESOURCES")
    body = client.get(f"/api/jobs/{job['id']}/logs?after=7", headers=OPERATOR).get_json()
    assert body == {"logs": [], "next_after": 7, "has_more": False}


def test_pagination_reproduces_every_chunk_once(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    other_worker, other_job = driver.claimed("FETCH_RESOURCES")
    texts = []
    for i in range(23):
        texts.append(f"line {i}\n")
        driver.log(worker, job["id"], texts[-1], seq=i)
        driver.log(other_worker, other_job["id"], f"other {i}\n")  # interleaved ids
        if i % 5 == 0:  # a retried chunk
            driver.log(worker, job["id"], texts[-1], seq=i, expect=200)
    for limit, expected_pages in ((5, 5), (23, 1), (1, 23), (None, 1)):
        chunks, pages = read_all(client, job["id"], OPERATOR, limit)
        assert [c["log_chunk"] for c in chunks] == texts
        assert pages == expected_pages
    ids = [c["id"] for c in read_all(client, job["id"], OPERATOR)[0]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_after_returns_only_later_ids(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    ids = [driver.log(worker, job["id"], f"{i}\n")["id"] for i in range(5)]
    body = client.get(f"/api/jobs/{job['id']}/logs?after={ids[1]}&limit=2",
                      headers=OPERATOR).get_json()
    assert [c["id"] for c in body["logs"]] == ids[2:4]
    assert body["next_after"] == ids[3] and body["has_more"] is True
    last = client.get(f"/api/jobs/{job['id']}/logs?after={ids[3]}&limit=2",
                      headers=OPERATOR).get_json()
    assert [c["id"] for c in last["logs"]] == ids[4:]
    assert last["has_more"] is False


@pytest.mark.parametrize("query", ["limit=5001", "limit=0", "limit=-1", "limit=abc",
                                   "after=-1", "after=x"])
def test_bad_query_is_400(driver: Driver, client: FlaskClient, query: str) -> None:
    _, job = driver.claimed("FETCH_RESOURCES")
    assert_error(client.get(f"/api/jobs/{job['id']}/logs?{query}", headers=OPERATOR), 400)


def test_limit_5000_is_allowed(driver: Driver, client: FlaskClient) -> None:
    _, job = driver.claimed("FETCH_RESOURCES")
    assert client.get(f"/api/jobs/{job['id']}/logs?limit=5000", headers=OPERATOR) \
        .status_code == 200


def test_read_access(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.log(worker, job["id"], "hello\n")
    url = f"/api/jobs/{job['id']}/logs"
    assert client.get(url, headers=OPERATOR).get_json()["logs"][0]["log_chunk"] == "hello\n"
    assert client.get(url, headers=worker.headers).get_json()["logs"][0]["log_chunk"] \
        == "hello\n"
    assert_error(client.get(url, headers=driver.worker().headers), 404, "Job not found")
    # the holder can still read after the job finished
    driver.status(worker, job["id"], "SUCCESS")
    assert client.get(url, headers=worker.headers).status_code == 200
    assert_error(client.get(f"/api/jobs/{uuid.uuid4()}/logs", headers=OPERATOR), 404,
                 "Job not found")


def test_concurrent_retries_of_one_seq_store_it_once(app: Flask, driver: Driver,
                                                     client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    results: list[tuple[int, Any]] = []
    start = threading.Barrier(6)

    def send() -> None:
        own = app.test_client()
        start.wait()
        response = own.post(f"/api/jobs/{job['id']}/logs", headers=worker.headers,
                            json={"log_chunk": "once\n", "seq": 3})
        results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 5 + [201], results
    assert len({body["id"] for _, body in results}) == 1
    assert all(body.get("duplicate") is True for status, body in results if status == 200)
    logs = client.get(f"/api/jobs/{job['id']}/logs", headers=OPERATOR).get_json()["logs"]
    assert [c["log_chunk"] for c in logs] == ["once\n"]
