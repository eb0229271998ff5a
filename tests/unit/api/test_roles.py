"""Who may call what: every endpoint against every role, a missing, malformed, unknown and revoked
token. The routes come from the app itself, so an endpoint added without a rule (or without a row
in EXPECTED and an example request here) fails this file."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from api.app import append_router, require_role_rules, router
from api.auth import allow, api_routes, route_roles
from api.cli_service import create_token
from api.composition import open_ledger
from api.settings import Settings
from api.tokens import Role, TokenStore
from ledger.service import Ledger
from tests.unit.api.app_fixtures import (  # noqa: F401
    ACCESS,
    Auth,
    artifact,
    auth_fixture,
    client_fixture,
    tokens_fixture,
    wait_for_job,
)

S, I, L, A, ADM = Role.SERVICE, Role.INVESTIGATOR, Role.LEGAL, Role.AUDITOR, Role.ADMIN
REV = Role.REVIEWER
PROOF_READERS = {S, I, L, A}

# The role table of api.auth's docstring, pinned: changing a rule is a deliberate edit here too.
EXPECTED: dict[tuple[str, str], set[Role]] = {
    ("POST", "/v1/records"): {S},
    ("GET", "/v1/records/{record_id}"): {I},
    ("GET", "/v1/records/{record_id}/trace"): {I},
    ("GET", "/v1/records/{record_id}/inclusion"): PROOF_READERS,
    ("GET", "/v1/checkpoints/latest"): PROOF_READERS,
    ("GET", "/v1/checkpoints/by-size/{size}"): PROOF_READERS,
    ("GET", "/v1/checkpoints/{checkpoint_id}"): PROOF_READERS,
    ("GET", "/v1/proofs/consistency"): {I, L, A},
    ("POST", "/v1/verify"): {A},
    ("POST", "/v1/holds"): {L},
    ("POST", "/v1/holds/release"): {L},
    ("GET", "/v1/holds"): {L},
    ("POST", "/v1/erasures"): {L},
    ("POST", "/v1/tokens"): {ADM},
    ("GET", "/v1/tokens"): {ADM},
    ("POST", "/v1/tokens/{name}/revoke"): {ADM},
    ("POST", "/v1/bundles"): {L},
    ("GET", "/v1/jobs/{job_id}"): {L},
    ("GET", "/v1/bundles/{job_id}"): {L},
    ("GET", "/v1/review/queue"): {REV},
    ("POST", "/v1/review/{item_id}/decision"): {REV},
    ("GET", "/v1/review/sla"): {A, REV},
    ("POST", "/v1/generations"): {S},
    ("POST", "/v1/replays"): {I},
    ("GET", "/v1/replays/{report_id}"): {I},
    ("GET", "/v1/replay-jobs/{job_id}"): {I},
    ("GET", "/v1/records/{record_id}/content"): {I},
}

REPLAY = {"record_id": 5, "mode": "remoderate", "backend": "process"}  # record 5 is the world's prompt

# A valid request for each endpoint (the state it needs is made by ``world``).
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/records"): {"url": "/v1/records", "json": artifact(1000)},
    ("GET", "/v1/records/{record_id}"): {"url": "/v1/records/0?proof=true"},
    ("GET", "/v1/records/{record_id}/trace"): {"url": "/v1/records/0/trace"},
    ("GET", "/v1/records/{record_id}/inclusion"): {"url": "/v1/records/0/inclusion"},
    ("GET", "/v1/checkpoints/latest"): {"url": "/v1/checkpoints/latest"},
    ("GET", "/v1/checkpoints/by-size/{size}"): {"url": "/v1/checkpoints/by-size/0"},
    ("GET", "/v1/checkpoints/{checkpoint_id}"): {"url": "/v1/checkpoints/1"},
    ("GET", "/v1/proofs/consistency"): {"url": "/v1/proofs/consistency?old=0&new=2"},
    ("POST", "/v1/verify"): {"url": "/v1/verify"},
    ("POST", "/v1/holds"): {"url": "/v1/holds", "json": {"subject": "subj:held", "case_id": "case-new"}},
    ("POST", "/v1/holds/release"): {"url": "/v1/holds/release", "json": {"subject": "subj:held", "case_id": "case-1"}},
    ("GET", "/v1/holds"): {"url": "/v1/holds?subject=subj:held"},
    ("POST", "/v1/erasures"): {"url": "/v1/erasures", "json": {"subject": "subj:gone", "reason": "subject request"}},
    ("POST", "/v1/tokens"): {"url": "/v1/tokens", "json": {"name": "new-auditor", "role": "auditor"}},
    ("GET", "/v1/tokens"): {"url": "/v1/tokens"},
    ("POST", "/v1/tokens/{name}/revoke"): {"url": "/v1/tokens/victim/revoke"},
    ("POST", "/v1/bundles"): {"url": "/v1/bundles", "json": {"case_id": "case-9", "record_ids": [0],
                                                             "purpose": "court order"}},
    ("GET", "/v1/jobs/{job_id}"): {"url": "/v1/jobs/{job}"},
    ("GET", "/v1/bundles/{job_id}"): {"url": "/v1/bundles/{job}"},
    ("GET", "/v1/review/queue"): {"url": "/v1/review/queue?limit=10"},
    ("POST", "/v1/review/{item_id}/decision"): {"url": "/v1/review/0/decision",  # the world holds record 0
                                                "json": {"action": "approve", "reason": "a stock photo"}},
    ("GET", "/v1/review/sla"): {"url": "/v1/review/sla?since=2025-01-01T00:00:00Z"},
    ("POST", "/v1/generations"): {"url": "/v1/generations",  # record 4 is the world's principal
                                  "json": {"principal_id": 4, "surface": "imagine", "prompt": "a lighthouse", "seed": 1,
                                           "parameters": {"width": 128, "height": 128}}},
    ("POST", "/v1/replays"): {"url": "/v1/replays", "json": REPLAY},
    ("GET", "/v1/replays/{report_id}"): {"url": "/v1/replays/{replay_report}"},
    ("GET", "/v1/replay-jobs/{job_id}"): {"url": "/v1/replay-jobs/{replay_job}"},
    ("GET", "/v1/records/{record_id}/content"): {"url": "/v1/records/6/content"},  # the world's stored artifact
}


def all_routes() -> list[Any]:
    """Every route ``create_app`` includes: the main router's and the bundle router's."""
    from pathlib import Path

    from api.app import _responses
    from api.artifact_routes import artifact_router
    from api.bundles import bundle_router
    from api.generations import generation_router
    from api.replays import investigator_jobs_router, replay_router
    from api.review_routes import review_router

    return (list(api_routes(append_router.routes)) + list(api_routes(router.routes))
            + list(api_routes(bundle_router(None, None, Path("."), _responses).routes))  # type: ignore[arg-type]
            + list(api_routes(generation_router(None, _responses).routes))  # type: ignore[arg-type]
            + list(api_routes(review_router(_responses).routes))
            + list(api_routes(replay_router(None, None, Path("."), _responses).routes))  # type: ignore[arg-type]
            + list(api_routes(investigator_jobs_router(None, _responses).routes))  # type: ignore[arg-type]
            + list(api_routes(artifact_router(None, _responses).routes)))  # type: ignore[arg-type]


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app (what ``create_app`` includes)."""
    return sorted((m, r.path) for r in all_routes() for m in r.methods)


def test_every_route_has_a_pinned_rule_and_an_example() -> None:
    routes = app_routes()
    assert routes, "no routes found"
    assert set(routes) == set(EXPECTED), "add the new endpoint to EXPECTED (and to api.auth's role table)"
    assert set(routes) == set(EXAMPLES), "add an example request for the new endpoint"
    for r in all_routes():
        for m in r.methods:
            assert route_roles(r) == EXPECTED[(m, r.path)], (m, r.path)


def test_an_app_with_a_route_without_a_rule_is_refused() -> None:
    app = FastAPI()

    @app.get("/ruled")
    def ruled(caller: Annotated[Any, Depends(allow(Role.ADMIN))]) -> None: ...

    require_role_rules(app)  # fine so far

    sub = APIRouter(prefix="/sub")

    @sub.get("/unruled")
    def unruled() -> None: ...

    app.include_router(sub)  # inside an included router too
    with pytest.raises(RuntimeError, match="declares no roles"):
        require_role_rules(app)


@pytest.fixture
def world(ledger: Ledger, settings: Settings, tokens: dict[str, str]) -> dict[str, str]:
    """Records 0-2 (0 held for review), a hold to release, a token to revoke, and a revoked token of every role."""
    ledger.append([artifact(0), artifact(1, links=[{"rel": "source", "batch": 0}]), artifact(2)])
    ledger.append([{"kind": "legal_hold", "producer": "legal", "produced_at": "2025-12-30T10:00:00Z",
                    "subject": "subj:held", "body": {"action": "place", "case_id": "case-1"}}], trusted=True)
    [p] = ledger.append([{"kind": "principal", "producer": "svc:test", "produced_at": "2025-12-30T10:00:00Z",
                          "subject": "subj:u-1", "body": {"pseudonym": "u-1", "principal_type": "user"}}])
    assert p.id == 4  # the generation example names it
    [q] = ledger.append([{"kind": "prompt", "producer": "svc:test", "produced_at": "2025-12-30T10:00:00Z",
                          "subject": "subj:u-1", "body": {"surface": "chat"}, "links": [{"rel": "principal", "id": 4}],
                          "sensitive": {"text": "a lighthouse at dusk"}}])
    assert q.id == 5  # the replay examples name it
    from ledger.artifacts import artifact_store_for, ref_for

    sha = artifact_store_for(settings.data_dir).put(b"\x89PNG evidence bytes")
    [c] = ledger.append([{"kind": "artifact", "producer": "svc:test", "produced_at": "2025-12-30T10:00:00Z",
                          "body": {"sha256": sha, "media_type": "image/png", "size": 19, "storage_ref": ref_for(sha)}}])
    assert c.id == 6  # the content example names it
    ledger.append([{"kind": "safety_decision", "producer": "svc:safety", "produced_at": "2025-12-30T10:00:00Z",
                    "links": [{"rel": "artifact", "id": 0}],  # record 0 waits for review
                    "body": {"action": "hold", "policy_id": "p", "policy_version": "1", "pipeline_version": "v1",
                             "risk": 0.7, "signals": {}}}])
    create_token(settings, "service", "victim")
    revoked = {r.value: create_token(settings, r.value, f"revoked-{r.value}") for r in Role}
    led = open_ledger(settings)
    try:
        store = TokenStore(led.store)
        for r in Role:
            store.revoke(f"revoked-{r.value}")
    finally:
        led.store.close()
    return revoked


def finished_job(client: TestClient, auth: Auth) -> str:
    r = client.post("/v1/bundles", json={"case_id": "case-9", "record_ids": [0], "purpose": "court order"},
                    headers=auth("legal"))
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    assert wait_for_job(client, f"/v1/jobs/{job}", auth("legal"))["state"] == "done"
    return job


def finished_replay(client: TestClient, auth: Auth) -> tuple[str, int]:
    r = client.post("/v1/replays", json=REPLAY, headers=auth("investigator", access=True))
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    j = wait_for_job(client, f"/v1/replay-jobs/{job}", auth("investigator"))
    assert j["state"] == "done", j
    return job, j["result"]["report_id"]


@pytest.mark.parametrize("method,path", app_routes())
def test_role_matrix(method: str, path: str, client: TestClient, auth: Auth, world: dict[str, str]) -> None:
    example = EXAMPLES[(method, path)]
    allowed = EXPECTED[(method, path)]

    url = example["url"]
    if "{job}" in url:  # a finished export job to ask about
        url = url.replace("{job}", finished_job(client, auth))
    if "{replay_job}" in url or "{replay_report}" in url:  # a finished replay and its report
        job, report = finished_replay(client, auth)
        url = url.replace("{replay_job}", job).replace("{replay_report}", str(report))

    def call(headers: dict[str, str]) -> Any:
        kw = {k: v for k, v in example.items() if k != "url"}
        return client.request(method, url, headers={**ACCESS, **headers}, **kw)

    bad_credentials = {
        "no token": {},
        "empty bearer": {"Authorization": "Bearer "},
        "not bearer": {"Authorization": f"Basic {auth.tokens['admin']}"},
        "malformed": {"Authorization": "Bearer not-a-token"},
        "unknown": {"Authorization": "Bearer cst_" + "A" * 43},
        **{f"revoked {r}": {"Authorization": f"Bearer {t}"} for r, t in world.items()},
    }
    for what, headers in bad_credentials.items():
        r = call(headers)
        assert r.status_code == 401, (what, r.status_code, r.text)
        assert r.json()["error"] == "unauthenticated" and r.headers["www-authenticate"] == "Bearer"

    for role in sorted(set(Role) - allowed):
        r = call(auth(role.value))
        assert r.status_code == 403, (role, r.status_code, r.text)
        assert r.json()["error"] == "forbidden"

    for role in sorted(allowed):
        r = call(auth(role.value))
        assert r.status_code in (200, 201, 202), (role, r.status_code, r.text)


def test_auth_comes_before_validation(client: TestClient, auth: Auth) -> None:
    """A caller without a (fitting) token learns nothing about what a valid request looks like."""
    r = client.post("/v1/holds", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 401
    r = client.get("/v1/records/not-a-number")
    assert r.status_code == 401
    r = client.get("/v1/records/not-a-number", headers=auth("auditor"))
    assert r.status_code == 403
    r = client.get("/v1/records/0", headers=auth("auditor"))  # no access headers either: still 403
    assert r.status_code == 403
    r = client.post("/v1/tokens", json={"name": "x", "role": "root"}, headers=auth("service"))
    assert r.status_code == 403
    r = client.post("/v1/tokens", json={"name": "x", "role": "root"}, headers=auth("admin"))
    assert r.status_code == 422


def test_admin_cannot_read_evidence_or_append(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append([artifact(0)])
    assert client.get("/v1/records/0", headers=auth("admin", access=True)).status_code == 403
    assert client.get("/v1/records/0/trace", headers=auth("admin", access=True)).status_code == 403
    assert client.post("/v1/records", json=artifact(1), headers=auth("admin")).status_code == 403
    assert ledger.size() == 1
