"""Evidence bundles over HTTP: a job, its state, the download — and the download verifies offline."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api.sample import sample_incident
from ledger.evidence import verify_bundle
from ledger.service import Ledger
from tests.unit.api.app_fixtures import (  # noqa: F401
    Auth,
    auth_fixture,
    client_fixture,
    tokens_fixture,
    wait_for_job,
)


def wait(client: TestClient, auth: Auth, job: str) -> dict[str, Any]:
    return wait_for_job(client, f"/v1/jobs/{job}", auth("legal"))


def test_export_job_download_and_offline_verify(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    r = client.post("/v1/bundles", json={"case_id": "case-77", "record_ids": [8], "purpose": "court order"},
                    headers=auth("legal"))
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running", "done")
    job = wait(client, auth, r.json()["id"])
    assert job["state"] == "done", job
    z = client.get(f"/v1/bundles/{job['id']}", headers=auth("legal"))
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    report = verify_bundle(z.content, [ledger.keyring.active.vkey])
    assert report.ok and report.case_id == "case-77"
    access = ledger.get(job["result"]["access_record"])["record"]
    assert access["body"]["bundle_sha256"] == job["result"]["sha256"] and access["body"]["actor"] == "legal-1"


def test_failed_and_unknown_jobs(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    r = client.post("/v1/bundles", json={"case_id": "c", "record_ids": [9999], "purpose": "p"}, headers=auth("legal"))
    job = wait(client, auth, r.json()["id"])
    assert job["state"] == "failed" and "not covered" in job["error"]["message"]
    assert client.get(f"/v1/bundles/{job['id']}", headers=auth("legal")).status_code == 409
    assert client.get("/v1/jobs/" + "0" * 32, headers=auth("legal")).status_code == 404
    assert client.get("/v1/jobs/not-a-job", headers=auth("legal")).status_code == 422
    bad = client.post("/v1/bundles", json={"case_id": "c", "record_ids": [], "purpose": "p"}, headers=auth("legal"))
    assert bad.status_code == 422


def test_hashes_only_export_over_http(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    r = client.post("/v1/bundles", json={"case_id": "case-78", "record_ids": [8], "purpose": "court order",
                                         "hashes_only": True, "redact": True}, headers=auth("legal"))
    job = wait(client, auth, r.json()["id"])
    assert job["state"] == "done", job
    assert job["result"]["hashes_only"] is True and job["result"]["redacted"] is True
    # the sample's artifacts are kept outside Custody: listed as missing, with the reason
    assert job["result"]["artifacts"] == {"included": 0, "withheld": 0, "missing": 2}
    z = client.get(f"/v1/bundles/{job['id']}", headers=auth("legal"))
    assert verify_bundle(z.content, [ledger.keyring.active.vkey]).ok
    import io
    import zipfile

    info = zipfile.ZipFile(io.BytesIO(z.content)).read("custody-bundle/bag-info.txt")
    assert b"Custody-Artifact-Bytes: withheld (hashes only)" in info and b"Custody-Redacted: yes" in info
    access = ledger.get(job["result"]["access_record"])["record"]
    assert access["body"]["hashes_only"] is True
    bad = client.post("/v1/bundles", json={"case_id": "c", "record_ids": [8], "purpose": "p", "hashes_only": "yes"},
                      headers=auth("legal"))
    assert bad.status_code == 422
