"""GET /v1/records/{id}/content: the bytes the record names, checked, logged; never anything else."""

from __future__ import annotations

import os

from fastapi.testclient import TestClient

from api.settings import Settings
from ledger.artifacts import artifact_store_for, ref_for
from ledger.service import Ledger
from tests.unit.api.app_fixtures import Auth, auth_fixture, client_fixture, tokens_fixture  # noqa: F401

T = "2025-12-30T10:00:00Z"


def _art(sha: str, size: int, ref: str) -> dict:
    return {"kind": "artifact", "producer": "svc:t", "produced_at": T,
            "body": {"sha256": sha, "media_type": "image/png", "size": size, "storage_ref": ref}}


def test_content(client: TestClient, auth: Auth, ledger: Ledger, settings: Settings) -> None:
    store = artifact_store_for(settings.data_dir)
    data = b"\x89PNG not really, but evidence"
    sha = store.put(data)
    a, b, c = ledger.append([_art(sha, len(data), ref_for(sha)), _art("1" * 64, 5, "blob://elsewhere/1"),
                             {"kind": "principal", "producer": "svc:t", "produced_at": T,
                              "body": {"pseudonym": "p", "principal_type": "user"}}])
    size = ledger.size()
    r = client.get(f"/v1/records/{a.id}/content", headers=auth("investigator", access=True))
    assert r.status_code == 200 and r.content == data
    assert r.headers["x-custody-artifact-sha256"] == sha and r.headers["x-content-type-options"] == "nosniff"
    acc = ledger.get(size)["record"]
    assert acc["kind"] == "access" and acc["body"]["action"] == "read_artifact" and acc["body"]["records"] == [a.id]

    size = ledger.size()
    assert client.get(f"/v1/records/{b.id}/content", headers=auth("investigator", access=True)).status_code == 404
    assert client.get(f"/v1/records/{c.id}/content", headers=auth("investigator", access=True)).status_code == 400
    assert client.get(f"/v1/records/{a.id}/content", headers=auth("investigator")).status_code == 400  # no case
    # bytes altered on disk are refused, never served
    path = settings.data_dir / "artifacts" / "sha256" / sha[:2] / sha
    os.chmod(path, 0o600)
    path.write_bytes(b"swapped")
    r = client.get(f"/v1/records/{a.id}/content", headers=auth("investigator", access=True))
    assert 400 <= r.status_code < 500 and "altered" in r.json()["message"]
    assert ledger.size() == size
