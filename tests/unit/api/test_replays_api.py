"""Replays over HTTP: refused early when nothing can be replayed, run as jobs, reports read back checked;
every start and read is an access record; jobs are visible to their owner only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.cli_service import create_token
from api.settings import Settings
from ledger.service import Ledger
from tests.unit.api.app_fixtures import (  # noqa: F401
    Auth,
    auth_fixture,
    client_fixture,
    tokens_fixture,
    wait_for_job,
)

T = "2025-12-30T10:00:00Z"


def _wait(client: TestClient, auth: Auth, job: str) -> dict:
    return wait_for_job(client, f"/v1/replay-jobs/{job}", auth("investigator"))


def test_replay_job_of_a_gateway_generation(client: TestClient, auth: Auth, ledger: Ledger, settings: Settings) -> None:
    [u] = ledger.append([{"kind": "principal", "producer": "svc:t", "produced_at": T, "subject": "subj:u",
                          "body": {"pseudonym": "u", "principal_type": "user"}}])
    g = client.post("/v1/generations", headers=auth("service"),
                    json={"principal_id": u.id, "surface": "imagine", "prompt": "a lighthouse", "seed": 4,
                          "parameters": {"width": 128, "height": 128}})
    assert g.status_code == 201, g.text
    gen = next(r["id"] for r in g.json()["records"] if r["kind"] == "generation")

    size = ledger.size()
    r = client.post("/v1/replays", json={"record_id": gen, "mode": "both", "backend": "process"},
                    headers=auth("investigator", access=True))
    assert r.status_code == 202, r.text
    assert ledger.get(size)["record"]["body"]["action"] == "replay"  # logged before the job runs
    j = _wait(client, auth, r.json()["id"])
    assert j["state"] == "done", j
    res = j["result"]
    assert res["backend"] == "process" and res["status"] in ("completed", "completed_with_findings")

    shown = client.get(f"/v1/replays/{res['report_id']}", headers=auth("investigator", access=True))
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["report_sha256"] == res["report_sha256"] and set(body["checks"]) >= {"inclusion", "sha256", "signature"}
    regen = [s for s in body["report"]["steps"] if s.get("step") == "generation"]
    assert regen and regen[0]["result"] == "bit_identical"

    # another investigator does not see the job
    other = create_token(settings, "investigator", "investigator-2")
    r2 = client.get(f"/v1/replay-jobs/{r.json()['id']}", headers={"Authorization": f"Bearer {other}"})
    assert r2.status_code == 404


def test_nothing_to_replay_is_refused_up_front(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append([{"kind": "artifact", "producer": "svc:t", "produced_at": T,
                    "body": {"sha256": "0" * 64, "media_type": "image/png", "size": 1, "storage_ref": "blob://x"}}])
    size = ledger.size()
    for body, code in [({"record_id": 0}, 400), ({"record_id": 999}, 404), ({"record_id": 0, "mode": "fast"}, 422),
                       ({"record_id": 0, "backend": "vm"}, 422)]:
        r = client.post("/v1/replays", json=body, headers=auth("investigator", access=True))
        assert r.status_code == code, (body, r.text)
    r = client.post("/v1/replays", json={"record_id": 0}, headers=auth("investigator"))  # no case / purpose
    assert r.status_code == 400 and "X-Custody-Case" in r.text
    assert client.get("/v1/replays/0", headers=auth("investigator", access=True)).status_code == 400  # not a report
    assert ledger.size() == size
