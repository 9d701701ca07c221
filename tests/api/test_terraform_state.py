"""Terraform's http state backend at /api/vines/{id}/terraform-state, through the HTTP layer.

(The agent's end-to-end tests drive it with a real Terraform; these pin the protocol edges.)
"""

from __future__ import annotations

import base64
import json

from flask.testing import FlaskClient

from tests.support.app import OPERATOR, Driver, WorkerCreds


def basic(worker: WorkerCreds, token: str | None = None) -> dict[str, str]:
    raw = f"{worker.id}:{token or worker.token}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def url(vine_id: str) -> str:
    return f"/api/vines/{vine_id}/terraform-state"


def lock_info(lock_id: str) -> dict[str, str]:
    return {"ID": lock_id, "Operation": "OperationTypeApply", "Who": "agent@host",
            "Version": "1.11.4", "Info": "", "Path": ""}


def holder(driver: Driver) -> tuple[WorkerCreds, dict, str]:
    vine = driver.vine()
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    return worker, job, vine["id"]


def test_state_round_trip_and_no_state(client: FlaskClient, driver: Driver) -> None:
    worker, _, vine_id = holder(driver)
    assert client.get(url(vine_id), headers=basic(worker)).status_code == 404
    state = json.dumps({"version": 4, "serial": 1, "resources": []}).encode()
    assert client.post(url(vine_id), data=state, headers=basic(worker)).status_code == 200
    got = client.get(url(vine_id), headers=basic(worker))
    assert got.status_code == 200 and got.data == state
    assert client.delete(url(vine_id), headers=basic(worker)).status_code == 200
    assert client.get(url(vine_id), headers=basic(worker)).status_code == 404



def test_empty_post_is_refused_and_keeps_the_state(client: FlaskClient, driver: Driver) -> None:
    # an empty body stored as the state reads back as "no state" to Terraform: the next plan
    # would recreate everything
    worker, _, vine_id = holder(driver)
    state = json.dumps({"version": 4, "serial": 3, "resources": []}).encode()
    assert client.post(url(vine_id), data=state, headers=basic(worker)).status_code == 200
    for method in ("POST", "PUT"):
        refused = client.open(url(vine_id), method=method, data=b"", headers=basic(worker))
        assert refused.status_code == 400, refused.data
        assert refused.get_json() == {"error": "Empty body", "code": 400}
    got = client.get(url(vine_id), headers=basic(worker))
    assert got.status_code == 200 and got.data == state

def test_auth_and_access(client: FlaskClient, driver: Driver) -> None:
    worker, _, vine_id = holder(driver)
    assert client.get(url(vine_id)).status_code == 401
    bad = client.get(url(vine_id), headers=basic(worker, token="vtw_wrong"))
    assert bad.status_code == 401 and bad.get_json()["error"] == "Invalid worker ID or token"
    # an operator token is not basic auth; a worker without a job of this vine sees nothing
    assert client.get(url(vine_id), headers=OPERATOR).status_code == 401
    other = driver.worker()
    assert client.get(url(vine_id), headers=basic(other)).status_code == 404
    assert client.get(url("not-a-uuid"), headers=basic(worker)).status_code == 404


def test_lock_refuses_second_locker_with_current_info(client: FlaskClient,
                                                      driver: Driver) -> None:
    worker, _, vine_id = holder(driver)
    first = client.open(url(vine_id), method="LOCK", json=lock_info("lock-1"),
                        headers=basic(worker))
    assert first.status_code == 200
    second = client.open(url(vine_id), method="LOCK", json=lock_info("lock-2"),
                         headers=basic(worker))
    assert second.status_code == 423
    assert second.get_json()["ID"] == "lock-1"
    # writes under another lock id are refused, under the holder's accepted
    assert client.post(url(vine_id) + "?ID=lock-2", data=b"{}",
                       headers=basic(worker)).status_code == 423
    assert client.post(url(vine_id) + "?ID=lock-1", data=b"{}",
                       headers=basic(worker)).status_code == 200
    assert client.open(url(vine_id), method="UNLOCK", json=lock_info("lock-2"),
                       headers=basic(worker)).status_code == 423
    assert client.open(url(vine_id), method="UNLOCK", json=lock_info("lock-1"),
                       headers=basic(worker)).status_code == 200
    assert client.open(url(vine_id), method="LOCK", json=lock_info("lock-2"),
                       headers=basic(worker)).status_code == 200


def test_stale_lock_of_a_worker_that_lost_its_job_is_taken_over(client: FlaskClient,
                                                                 driver: Driver) -> None:
    worker, job, vine_id = holder(driver)
    assert client.open(url(vine_id), method="LOCK", json=lock_info("old"),
                       headers=basic(worker)).status_code == 200
    # the first worker is deleted: its PLAN is requeued and claimed by a second worker
    assert client.delete(f"/api/workers/{worker.id}", headers=OPERATOR).status_code == 204
    second = driver.worker()
    assert driver.claim(second)["job"]["id"] == job["id"]
    taken = client.open(url(vine_id), method="LOCK", json=lock_info("new"),
                        headers=basic(second))
    assert taken.status_code == 200


def test_lock_left_by_an_earlier_job_of_the_same_worker_is_taken_over(
        client: FlaskClient, driver: Driver) -> None:
    # the agent's job ended (here it failed; the server may also end it) while Terraform
    # still held the lock, and the same worker then claims the vine's next job
    worker, job, vine_id = holder(driver)
    assert client.open(url(vine_id), method="LOCK", json=lock_info("left-behind"),
                       headers=basic(worker)).status_code == 200
    driver.status(worker, job["id"], "FAILED")
    again = driver.enqueue("PLAN", vine_id=vine_id)
    assert driver.claim(worker)["job"]["id"] == again["id"]
    taken = client.open(url(vine_id), method="LOCK", json=lock_info("next-job"),
                        headers=basic(worker))
    assert taken.status_code == 200
    # and the new lock is live: a second lock id within this job is still refused
    assert client.open(url(vine_id), method="LOCK", json=lock_info("other"),
                       headers=basic(worker)).status_code == 423


def test_lock_info_must_be_an_object_with_an_id(client: FlaskClient, driver: Driver) -> None:
    worker, _, vine_id = holder(driver)
    for body in (b"[]", b"{", b'{"ID": 5}'):
        response = client.open(url(vine_id), method="LOCK", data=body, headers=basic(worker))
        assert response.status_code == 400
        assert "error" in response.get_json()


def test_missing_basic_auth_names_what_is_needed(client: FlaskClient, driver: Driver) -> None:
    _, _, vine_id = holder(driver)
    response = client.get(url(vine_id))
    assert response.status_code == 401
    assert response.get_json()["error"] == "Basic auth with the worker ID and token required"
