"""The HTTP API end to end over TestClient, on SQLite and PostgreSQL: appends (object, array, JSON
Lines, idempotent retries), reads that are logged as access records, proofs checked with the pure
verifier, trace graphs, checkpoints, verify, holds and erasure, tokens, errors and limits, the
OpenAPI document, and group commit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings
from api.composition import open_ledger
from api.sample import sample_incident
from api.settings import Settings
from api.writer import LedgerWriter
from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.errors import Conflict
from ledger.keys import open_note
from ledger.records import parse_json
from ledger.service import Ledger
from ledger.store_sql import ApiToken
from ledger.verify import verify_ledger
from tests.unit.api.app_fixtures import (  # noqa: F401
    ACCESS,
    Auth,
    artifact,
    auth_fixture,
    client_fixture,
    make_client,
    tokens_fixture,
)

JSONL = {"content-type": "application/x-ndjson"}


def entry(ledger: Ledger, idx: int) -> dict[str, Any]:
    return ledger.get(idx)["record"]


def error(r: Any, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "message"} and body["message"], body
    if code:
        assert body["error"] == code, body
    return body["message"]


# --- appending ------------------------------------------------------------------------------------


def test_append_one_record_an_array_and_json_lines(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    r = client.post("/v1/records", json=artifact(0), headers=auth("service"))
    assert r.status_code == 201 and [a["id"] for a in r.json()] == [0]
    r = client.post("/v1/records", json=[artifact(1), artifact(2, links=[{"rel": "source", "batch": 0}])],
                    headers=auth("service"))
    assert r.status_code == 201 and [a["id"] for a in r.json()] == [1, 2]
    assert entry(ledger, 2)["links"] == [{"rel": "source", "id": 1, "leaf": r.json()[0]["leaf_hash"]}]
    body = "\n".join(json.dumps(x) for x in sample_incident()) + "\n"
    r = client.post("/v1/records", content=body, headers=auth("service", **JSONL))
    assert r.status_code == 201 and [a["id"] for a in r.json()] == list(range(3, 17))
    assert ledger.size() == 17
    assert ledger.latest_checkpoint().size == 17  # type: ignore[union-attr]  # acknowledged with a checkpoint
    for a in r.json():
        assert merkle.leaf_hash(ledger.store.read().__enter__().entry(a["id"]).data).hex() == a["leaf_hash"]


def test_idempotent_retry_answers_200_with_the_earlier_entry(client: TestClient, auth: Auth) -> None:
    rec = artifact(0, idempotency_key="k-1")
    first = client.post("/v1/records", json=rec, headers=auth("service"))
    again = client.post("/v1/records", json=rec, headers=auth("service"))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()[0] == {**first.json()[0], "existing": True}
    other = client.post("/v1/records", json=artifact(1, idempotency_key="k-1"), headers=auth("service"))
    assert "was used for a different record" in error(other, 409, "conflict")


@pytest.mark.parametrize("field,value", [("ledger_time", "2020-01-01T00:00:00Z"), ("idx", 5), ("id", 5),
                                         ("index", 5), ("leaf", "00" * 32), ("sealed", {"x": "00"})])
def test_a_client_cannot_set_the_ledgers_time_or_indices(client: TestClient, auth: Auth, ledger: Ledger,
                                                        field: str, value: Any) -> None:
    before = ledger.size()
    r = client.post("/v1/records", json=artifact(0, **{field: value}), headers=auth("service"))
    assert f"{field}: Extra inputs are not permitted" in error(r, 400, "invalid_input")
    r = client.post("/v1/records", json=artifact(0, links=[{"rel": "x", "id": 0, field: value}]),
                    headers=auth("service"))
    assert r.status_code in (400, 422)
    assert ledger.size() == before


@pytest.mark.parametrize("body,ctype,status,code,says", [
    (b"{not json", "application/json", 400, "invalid_input", "not valid JSON"),
    (b"[]", "application/json", 400, "invalid_input", "no records"),
    (b"42", "application/json", 400, "invalid_input", "must be a record"),
    (b'["x"]', "application/json", 400, "invalid_input", "must be a JSON object"),
    (b'{"kind": "unicorn"}', "application/json", 400, "invalid_input", "unknown kind"),
    (b'{"a": 1, "a": 2}', "application/json", 400, "invalid_input", "duplicate member"),
    (b'{"x": NaN}', "application/json", 400, "invalid_input", "not a JSON number"),
    (b"\xff\xfe", "application/json", 400, "invalid_input", "UTF-8"),
    (b"", "application/json", 400, "invalid_input", "not valid JSON"),
    (b"\n\n", "application/x-ndjson", 400, "invalid_input", "no records"),
    (b'{"kind": "artifact"}\n{oops', "application/x-ndjson", 400, "invalid_input", "line 2"),
    (b"{}", "text/plain", 415, "unsupported_media_type", "application/json"),
    (b"{}", "", 415, "unsupported_media_type", "no Content-Type"),
])
def test_bad_append_bodies_get_clear_4xx(client: TestClient, auth: Auth, ledger: Ledger, body: bytes, ctype: str,
                                         status: int, code: str, says: str) -> None:
    headers = auth("service")
    if ctype:
        headers["content-type"] = ctype
    r = client.post("/v1/records", content=body, headers=headers)
    assert says in error(r, status, code)
    assert ledger.size() == 0


PRINCIPAL = {"kind": "principal", "producer": "svc:test", "produced_at": "2025-12-30T10:00:00Z", "subject": "s",
             "body": {"pseudonym": "p", "principal_type": "user"}}


@pytest.mark.parametrize("record,says", [
    (artifact(0, idempotency_key="a\u0000b"), "idempotency_key"),
    (artifact(0, idempotency_key="a\ud800b"), "idempotency_key"),
    ({**PRINCIPAL, "sensitive": {"k" * 300: "v"}}, "sensitive"),
    ({**PRINCIPAL, "sensitive": {"a\u0000": "v"}}, "sensitive"),
    ({**PRINCIPAL, "sensitive": {"a\ud800": "v"}}, "sensitive"),
    ({**PRINCIPAL, "sensitive": {"email": "\ud800"}}, "surrogate"),
    (artifact(0, body={**artifact(0)["body"], "\ud800": 1}), "valid string"),
])
def test_strings_the_database_cannot_hold_are_400_not_5xx(client: TestClient, auth: Auth, ledger: Ledger,
                                                          record: dict[str, Any], says: str) -> None:
    raw = json.dumps(record).encode()  # \uXXXX escapes: valid JSON text, odd strings
    r = client.post("/v1/records", content=raw, headers=auth("service", **{"content-type": "application/json"}))
    assert says in error(r, 400)
    assert ledger.size() == 0


def test_deeply_nested_bodies_are_refused_cleanly(client: TestClient, auth: Auth) -> None:
    raw = json.dumps(artifact(0))[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = client.post("/v1/records", content=raw, headers=auth("service", **{"content-type": "application/json"}))
    assert "nests too deeply" in error(r, 400)


def test_append_refuses_ledger_kinds_unknown_links_and_half_batches(client: TestClient, auth: Auth,
                                                                  ledger: Ledger) -> None:
    erasure = {"kind": "erasure", "producer": "x", "produced_at": "2025-12-30T10:00:00Z", "subject": "s",
               "body": {"reason": "r", "requested_by": "x"}}
    assert "appended only by the ledger" in error(client.post("/v1/records", json=erasure,
                                                              headers=auth("service")), 400)
    r = client.post("/v1/records", json=artifact(0, links=[{"rel": "x", "id": 99}]), headers=auth("service"))
    assert "does not exist" in error(r, 422, "unknown_link")
    r = client.post("/v1/records", json=[artifact(0), artifact(1, produced_at="yesterday")], headers=auth("service"))
    assert "record 1: produced_at" in error(r, 400)
    assert ledger.size() == 0


def test_size_limits_give_413(settings: Settings, ledger: Ledger, tokens: dict[str, str]) -> None:
    auth = Auth(tokens)
    small = ApiSettings(max_request_bytes=4096, max_batch=3)
    for c in make_client(settings, small):
        big = artifact(0, body={**artifact(0)["body"], "pad": "x" * 5000})
        assert "exceeds 4096 bytes" in error(c.post("/v1/records", json=big, headers=auth("service")), 413,
                                             "request_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
            yield b"["
            for _ in range(50):
                yield json.dumps(artifact(0)).encode() + b","
            yield b"{}]"

        r = c.post("/v1/records", content=chunks(), headers=auth("service", **{"content-type": "application/json"}))
        error(r, 413, "request_too_large")
        r = c.post("/v1/records", json=[artifact(i) for i in range(4)], headers=auth("service"))
        assert "at most 3 records" in error(r, 413, "request_too_large")
        r = c.post("/v1/tokens", content=b'{"name": "' + b"x" * 5000 + b'"}',
                   headers=auth("admin", **{"content-type": "application/json"}))
        error(r, 413, "request_too_large")
    assert ledger.size() == 0


def test_a_record_over_the_ledgers_limit_is_413(settings: Settings, ledger: Ledger, tokens: dict[str, str]) -> None:
    from dataclasses import replace

    for c in make_client(replace(settings, max_record_bytes=2048)):
        big = artifact(0, body={**artifact(0)["body"], "pad": "x" * 3000})
        assert "limit is 2048 bytes" in error(c.post("/v1/records", json=big, headers=Auth(tokens)("service")),
                                              413, "record_too_large")


# --- reading evidence ---------------------------------------------------------------------------


def test_reading_a_record_appends_an_access_record_first(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    r = client.get("/v1/records/8?proof=true", headers=auth("investigator", access=True))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == 8 and out["record"]["kind"] == "artifact" and out["access_id"] == 14
    acc = entry(ledger, 14)
    assert acc["kind"] == "access" and acc["producer"] == "custody:api"
    assert acc["body"] == {"actor": "investigator-1", "role": "investigator", "action": "read_record",
                           "case_id": "case-42", "purpose": "abuse investigation", "records": [8], "via": "http"}
    assert acc["links"] == [{"rel": "read", "id": 8, "leaf": out["leaf_hash"]}]
    # the proof checks out with the pure verifier against the signed checkpoint
    p = out["inclusion"]
    cp = Checkpoint.parse(open_note(p["checkpoint"], ledger.keyring.verifiers).text)
    merkle.verify_inclusion(bytes.fromhex(out["leaf_hash"]), 8, cp.size, [bytes.fromhex(h) for h in p["proof"]],
                            cp.root)
    # sealed values stay sealed: only commitments come back
    prompt = client.get("/v1/records/6", headers=auth("investigator", access=True)).json()["record"]
    assert "text" in prompt["sealed"] and "put her" not in json.dumps(prompt)


@pytest.mark.parametrize("headers,status,code", [
    ({}, 400, "access_context_required"),
    ({"X-Custody-Case": "case-1"}, 400, "access_context_required"),
    ({"X-Custody-Purpose": "why"}, 400, "access_context_required"),
    ({"X-Custody-Case": "bad case id!", "X-Custody-Purpose": "why"}, 422, "validation_error"),
    ({"X-Custody-Case": "c", "X-Custody-Purpose": "   "}, 422, "validation_error"),
])
def test_reads_need_a_case_and_a_purpose(client: TestClient, auth: Auth, ledger: Ledger, headers: dict[str, str],
                                         status: int, code: str) -> None:
    ledger.append([artifact(0)])
    for url in ("/v1/records/0", "/v1/records/0/trace"):
        r = client.get(url, headers=auth("investigator", **headers))
        msg = error(r, status, code)
        if status == 400:
            assert "X-Custody-Case" in msg and "X-Custody-Purpose" in msg
    assert ledger.size() == 1  # nothing read, nothing logged


def test_reading_a_missing_record_is_404_and_not_logged(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append([artifact(0)])
    assert "does not exist" in error(client.get("/v1/records/5", headers=auth("investigator", access=True)), 404,
                                     "not_found")
    error(client.get("/v1/records/5/trace", headers=auth("investigator", access=True)), 404, "not_found")
    error(client.get(f"/v1/records/{1 << 63}", headers=auth("investigator", access=True)), 422)
    error(client.get("/v1/records/-1", headers=auth("investigator", access=True)), 422)
    assert ledger.size() == 1


def test_trace_is_a_graph_of_nodes_and_links_and_is_logged(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    r = client.get("/v1/records/8/trace", headers=auth("investigator", access=True))
    assert r.status_code == 200, r.text
    g = r.json()
    ids = [n["id"] for n in g["nodes"]]
    assert g["root"] == 8 and 8 in ids and 6 in ids and not g["truncated"]
    assert {"source": 7, "target": 6, "rel": "prompt"} in g["links"]
    assert all(ln["source"] in ids and ln["target"] in ids for ln in g["links"])
    acc = entry(ledger, g["access_id"])
    assert acc["body"]["action"] == "trace" and acc["body"]["records"] == ids
    assert acc["links"][0]["rel"] == "trace_root" and acc["links"][0]["id"] == 8
    assert sorted(ln["id"] for ln in acc["links"]) == ids
    # the next trace hides access records unless asked
    again = client.get("/v1/records/8/trace", headers=auth("investigator", access=True)).json()
    assert [n["id"] for n in again["nodes"]] == ids
    shown = client.get("/v1/records/8/trace?include_access=true", headers=auth("investigator", access=True)).json()
    assert {g["access_id"], again["access_id"]} <= {n["id"] for n in shown["nodes"]}
    small = client.get("/v1/records/8/trace?max_nodes=2", headers=auth("investigator", access=True)).json()
    assert small["truncated"] and len(small["nodes"]) <= 2
    error(client.get("/v1/records/8/trace?max_nodes=0", headers=auth("investigator", access=True)), 422)


# --- proofs and checkpoints -----------------------------------------------------------------------


def test_checkpoints_and_proofs(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    ledger.append([artifact(100)])
    latest = client.get("/v1/checkpoints/latest", headers=auth("auditor")).json()
    assert latest["size"] == 15
    cp = Checkpoint.parse(open_note(latest["note"], ledger.keyring.verifiers).text)
    assert cp.root.hex() == latest["root_hex"]
    first = client.get("/v1/checkpoints/1", headers=auth("auditor")).json()
    assert first["size"] == 0
    at14 = client.get("/v1/checkpoints/by-size/14", headers=auth("auditor")).json()
    assert at14["size"] == 14 and at14["id"] != latest["id"]
    assert client.get(f"/v1/checkpoints/{at14['id']}", headers=auth("auditor")).json() == at14
    error(client.get("/v1/checkpoints/999", headers=auth("auditor")), 404, "not_found")
    error(client.get("/v1/checkpoints/by-size/7", headers=auth("auditor")), 404, "not_found")
    error(client.get("/v1/checkpoints/latest", headers=auth("auditor") | {"Authorization": "Bearer x"}), 401)

    c = client.get("/v1/proofs/consistency?old=14&new=15", headers=auth("auditor")).json()
    merkle.verify_consistency(14, 15, bytes.fromhex(at14["root_hex"]), cp.root, [bytes.fromhex(h) for h in c["proof"]])
    assert client.get("/v1/proofs/consistency?old=3", headers=auth("auditor")).json()["new_size"] == 15
    error(client.get("/v1/proofs/consistency?old=9&new=3", headers=auth("auditor")), 400, "invalid_input")
    error(client.get("/v1/proofs/consistency?old=0&new=99", headers=auth("auditor")), 400, "invalid_input")
    error(client.get("/v1/proofs/consistency", headers=auth("auditor")), 422, "validation_error")

    p = client.get("/v1/records/3/inclusion?size=14", headers=auth("service")).json()
    merkle.verify_inclusion(bytes.fromhex(p["leaf_hash"]), 3, 14, [bytes.fromhex(h) for h in p["proof"]],
                            bytes.fromhex(at14["root_hex"]))
    assert "leaf_hash" in p and "record" not in p  # hashes only: no content
    error(client.get("/v1/records/99/inclusion", headers=auth("auditor")), 404)
    error(client.get("/v1/records/3/inclusion?size=99", headers=auth("auditor")), 400)


def test_verify_incremental_by_default_and_full_on_request(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    r = client.post("/v1/verify", headers=auth("auditor"))
    assert r.status_code == 200 and r.json()["ok"] and r.json()["mode"] == "incremental"
    ledger.append([artifact(100)])
    again = client.post("/v1/verify", headers=auth("auditor")).json()
    assert again["ok"] and again["start"] == 14 and again["entries_checked"] == 1
    full = client.post("/v1/verify?mode=full&deep=true", headers=auth("auditor")).json()
    assert full["ok"] and full["mode"] == "full" and full["entries_checked"] == 15
    error(client.post("/v1/verify?mode=sideways", headers=auth("auditor")), 422)


# --- holds and erasure --------------------------------------------------------------------------


def test_holds_block_erasure_until_released(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    subj = {"subject": "subj:u-7f3a", "case_id": "case-9"}
    placed = client.post("/v1/holds", json=subj, headers=auth("legal"))
    assert placed.status_code == 201
    hold = entry(ledger, placed.json()["id"])
    assert hold["kind"] == "legal_hold" and hold["producer"] == "legal-1" and hold["body"]["action"] == "place"
    assert "already on hold" in error(client.post("/v1/holds", json=subj, headers=auth("legal")), 409)
    assert client.get("/v1/holds?subject=subj:u-7f3a", headers=auth("legal")).json() == \
        {"subject": "subj:u-7f3a", "holds": {"case-9": placed.json()["id"]}}
    r = client.post("/v1/erasures", json={"subject": "subj:u-7f3a", "reason": "data subject request"},
                    headers=auth("legal"))
    assert "under legal hold" in error(r, 409, "legal_hold_active")
    assert client.post("/v1/holds/release", json=subj, headers=auth("legal")).status_code == 201
    assert "no active hold" in error(client.post("/v1/holds/release", json=subj, headers=auth("legal")), 409)
    r = client.post("/v1/erasures", json={"subject": "subj:u-7f3a", "reason": "data subject request"},
                    headers=auth("legal"))
    assert r.status_code == 201
    er = entry(ledger, r.json()["id"])
    assert er["kind"] == "erasure" and er["body"] == {"reason": "data subject request", "requested_by": "legal-1"}
    assert "already erased" in error(client.post("/v1/erasures", json={"subject": "subj:u-7f3a", "reason": "again"},
                                                 headers=auth("legal")), 409)
    # a record of the erased subject still reads (commitments only) and still proves
    assert client.get("/v1/records/6?proof=true", headers=auth("investigator", access=True)).status_code == 200


@pytest.mark.parametrize("body", [{}, {"subject": "s"}, {"subject": "bad subject", "case_id": "c"},
                                  {"subject": "s", "case_id": "c", "extra": 1}, {"subject": 1, "case_id": "c"}])
def test_bad_hold_bodies_are_422(client: TestClient, auth: Auth, body: dict[str, Any]) -> None:
    error(client.post("/v1/holds", json=body, headers=auth("legal")), 422, "validation_error")


# --- tokens -------------------------------------------------------------------------------------


def test_tokens_are_issued_once_stored_hashed_and_revocable(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    r = client.post("/v1/tokens", json={"name": "alice", "role": "investigator"}, headers=auth("admin"))
    assert r.status_code == 201
    t = r.json()
    token = t["token"]
    assert token.startswith("cst_") and len(token) == 47 and t["role"] == "investigator" and not t["revoked"]
    listed = client.get("/v1/tokens", headers=auth("admin")).json()
    assert "alice" in [x["name"] for x in listed] and token not in json.dumps(listed)
    with ledger.store.read() as rd:
        rows = rd.conn.execute(ApiToken.__table__.select()).mappings().all()  # type: ignore[attr-defined]
    assert token not in json.dumps([dict(x) for x in rows], default=str)
    import hashlib

    assert hashlib.sha256(token.encode()).hexdigest() in {x["token_sha256"] for x in rows}

    ledger.append([artifact(0)])
    h = {"Authorization": f"Bearer {token}", **ACCESS}
    read = client.get("/v1/records/0", headers=h)
    assert read.status_code == 200 and entry(ledger, read.json()["access_id"])["body"]["actor"] == "alice"
    assert "exists" in error(client.post("/v1/tokens", json={"name": "alice", "role": "auditor"},
                                         headers=auth("admin")), 409, "conflict")
    revoked = client.post("/v1/tokens/alice/revoke", headers=auth("admin")).json()
    assert revoked["revoked"] and revoked["revoked_at"]
    error(client.get("/v1/records/0", headers=h), 401, "unauthenticated")
    assert client.post("/v1/tokens/alice/revoke", headers=auth("admin")).json() == revoked  # idempotent
    error(client.post("/v1/tokens/nobody/revoke", headers=auth("admin")), 404, "not_found")
    assert "exists" in error(client.post("/v1/tokens", json={"name": "alice", "role": "auditor"},
                                         headers=auth("admin")), 409)  # names are never reused


@pytest.mark.parametrize("body", [{"name": "x", "role": "root"}, {"name": "has space", "role": "admin"},
                                  {"name": "a/b", "role": "admin"}, {"name": "x" * 101, "role": "admin"},
                                  {"role": "admin"}, {"name": "x", "role": "admin", "token": "cst_mine"}])
def test_bad_token_requests_are_422(client: TestClient, auth: Auth, body: dict[str, Any]) -> None:
    error(client.post("/v1/tokens", json=body, headers=auth("admin")), 422, "validation_error")


def test_create_token_refuses_bad_roles_and_names(settings: Settings, ledger: Ledger) -> None:
    from api.cli_service import create_token
    from ledger.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown role"):
        create_token(settings, "root", "x")
    with pytest.raises(InvalidInput, match="token name"):
        create_token(settings, "admin", "no spaces please")
    create_token(settings, "admin", "ops")
    with pytest.raises(Conflict):
        create_token(settings, "auditor", "ops")


# --- errors, the document, the app's life -------------------------------------------------------


def test_unknown_query_parameters_are_refused(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append([artifact(0)])
    r = client.get("/v1/records/0?proff=true", headers=auth("investigator", access=True))
    assert "query.proff: unknown query parameter (known: proof, size)" in error(r, 422, "validation_error")
    assert "takes none" in error(client.get("/v1/tokens?all=1", headers=auth("admin")), 422)
    error(client.get("/v1/tokens?all=1"), 401)  # still: who you are first
    assert ledger.size() == 1


def test_unknown_endpoints_and_methods_answer_json(client: TestClient, auth: Auth) -> None:
    assert "no such endpoint" in error(client.get("/v1/nope", headers=auth("admin")), 404, "not_found")
    error(client.delete("/v1/records", headers=auth("service")), 405, "method_not_allowed")


def test_openapi_document_is_served_and_describes_the_api(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert ("POST", "/v1/records") in ops and ("GET", "/v1/records/{record_id}/trace") in ops
    for key, op in ops.items():
        assert op["x-custody-roles"], key
        assert op["security"] == [{"token": []}], key
        assert {"401", "403", "422"} <= set(op["responses"]), key
        assert "ErrorOut" in json.dumps(op["responses"]["401"]), key
    rec = doc["components"]["schemas"]["RecordIn"]
    assert rec["additionalProperties"] is False and "ledger_time" not in rec["properties"]
    assert set(ops[("POST", "/v1/records")]["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    params = {p["name"]: p for p in ops[("GET", "/v1/records/{record_id}")]["parameters"]}
    assert params["X-Custody-Case"]["required"] and params["X-Custody-Purpose"]["in"] == "header"
    assert doc["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


def test_create_app_connects_only_when_called_and_needs_an_initialised_ledger(tmp_path: Any) -> None:
    from api.app import create_app
    from ledger.errors import NotInitialised

    s = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'none.db'}", key_dir=tmp_path / "keys")
    with pytest.raises(NotInitialised):
        create_app(s)


def test_the_ledger_still_verifies_after_a_busy_api(client: TestClient, auth: Auth, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    for i in range(5):
        client.post("/v1/records", json=artifact(100 + i), headers=auth("service"))
        client.get(f"/v1/records/{i}/trace", headers=auth("investigator", access=True))
    report = verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin, deep=True)
    assert report.ok, report.as_dict()


# --- group commit -------------------------------------------------------------------------------


def test_concurrent_appends_share_transactions_and_get_dense_ids(client: TestClient, auth: Auth,
                                                                 ledger: Ledger) -> None:
    n = 60

    def one(i: int) -> list[int]:
        r = client.post("/v1/records", json=artifact(i), headers=auth("service"))
        assert r.status_code == 201, r.text
        return [a["id"] for a in r.json()]

    with ThreadPoolExecutor(16) as pool:
        ids = sorted(i for got in pool.map(one, range(n)) for i in got)
    assert ids == list(range(n))
    for i in range(n):  # each caller got the id of its own record
        assert entry(ledger, i)["body"]["size"] in range(n)
    assert sorted(entry(ledger, i)["body"]["size"] for i in range(n)) == list(range(n))
    assert verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin, deep=True).ok


@pytest.fixture
def paused_writer(settings: Settings, ledger: Ledger) -> Iterator[LedgerWriter]:
    """A writer whose thread starts only when the test says: whatever was queued forms one group."""
    led = open_ledger(settings)
    w = LedgerWriter(led)
    real_start = w.start
    w.start = lambda: None  # type: ignore[method-assign]
    w.go = real_start  # type: ignore[attr-defined]
    yield w
    w.stop()
    led.store.close()


def test_queued_requests_commit_as_one_transaction(paused_writer: LedgerWriter, ledger: Ledger) -> None:
    w = paused_writer
    futures = [w.submit_append([artifact(i)]) for i in range(10)] + [w.submit_append([artifact(10), artifact(11)])]
    w.go()  # type: ignore[attr-defined]
    results = [f.result(10) for f in futures]
    assert [[a.id for a in r] for r in results] == [[i] for i in range(10)] + [[10, 11]]
    assert w.stats == {"transactions": 1, "grouped_requests": 11, "fallbacks": 0}
    assert [c.size for c in ledger.checkpoints()] == [0, 12]  # one checkpoint for the group


def test_a_refused_request_in_a_group_fails_alone(paused_writer: LedgerWriter, ledger: Ledger) -> None:
    w = paused_writer
    ok1 = w.submit_append([artifact(0, idempotency_key="a")])
    dup = w.submit_append([artifact(1, idempotency_key="a")])  # same key, other record: a conflict
    bad_link = w.submit_append([artifact(2, links=[{"rel": "x", "id": 500}])])
    batch = w.submit_append([artifact(3), artifact(4, links=[{"rel": "source", "batch": 0}])])  # never grouped
    ok2 = w.submit_append([artifact(5)])
    invalid = w.submit_append([artifact(6, produced_at="yesterday")])
    w.go()  # type: ignore[attr-defined]
    assert [a.id for a in ok1.result(10)] == [0]
    with pytest.raises(Conflict):
        dup.result(10)
    with pytest.raises(Exception, match="does not exist"):
        bad_link.result(10)
    with pytest.raises(Exception, match="produced_at"):
        invalid.result(10)
    assert len(batch.result(10)) == 2 and len(ok2.result(10)) == 1
    assert w.stats["fallbacks"] == 2  # the group, then the group of valid requests
    assert ledger.size() == 4


def test_an_invalid_request_does_not_break_up_its_group(paused_writer: LedgerWriter, ledger: Ledger) -> None:
    w = paused_writer
    good = [w.submit_append([artifact(i)]) for i in range(5)]
    bad = w.submit_append([artifact(9, produced_at="yesterday")])
    w.go()  # type: ignore[attr-defined]
    assert sorted(f.result(10)[0].id for f in good) == list(range(5))
    with pytest.raises(Exception, match="produced_at"):
        bad.result(10)
    assert w.stats == {"transactions": 1, "grouped_requests": 5, "fallbacks": 1}
    assert verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin, deep=True).ok


def test_erasure_runs_on_the_writer_in_turn(paused_writer: LedgerWriter, ledger: Ledger) -> None:
    ledger.append(sample_incident())
    w = paused_writer
    before = w.submit_append([artifact(50)])
    er = w.submit_call(lambda: w.ledger.erase("subj:u-19c2", reason="r", requested_by="x"))
    w.go()  # type: ignore[attr-defined]
    assert before.result(10)[0].id == 14 and er.result(10).id == 15
    assert parse_json(ledger.store.read().__enter__().entry(15).data)["kind"] == "erasure"


def test_writer_stops_cleanly_and_refuses_work_after(settings: Settings, ledger: Ledger) -> None:
    led = open_ledger(settings)
    w = LedgerWriter(led)
    assert [a.id for a in w.append([artifact(0)])] == [0]
    w.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        w.append([artifact(1)])
    led.store.close()
    assert threading.active_count() >= 1


def test_token_lookups_are_cached_briefly_and_revocation_here_is_immediate(settings: Settings,
                                                                           ledger: Ledger) -> None:
    from api.tokens import TokenStore

    cached = TokenStore(ledger.store, cache_seconds=60)
    uncached = TokenStore(ledger.store)
    token, info = cached.create("auditor", "carol")
    assert cached.authenticate(token) == info == uncached.authenticate(token)
    elsewhere = TokenStore(ledger.store)
    elsewhere.revoke("carol")  # e.g. the CLI, another process
    assert uncached.authenticate(token) is None
    assert cached.authenticate(token) == info  # until the cache entry expires (ApiSettings.token_cache_seconds)
    cached.revoke("carol")
    assert cached.authenticate(token) is None  # a revocation through the same store: at once
    assert cached.authenticate("cst_" + "x" * 43) is None and cached.authenticate("nope") is None


def test_concurrent_identical_holds_do_not_share_a_transaction(paused_writer: LedgerWriter, ledger: Ledger) -> None:
    hold = {"kind": "legal_hold", "producer": "legal", "produced_at": "2025-12-30T10:00:00Z", "subject": "subj:x",
            "body": {"action": "place", "case_id": "c-1"}}
    w = paused_writer
    first, second = w.submit_append([hold], trusted=True), w.submit_append([dict(hold)], trusted=True)
    w.go()  # type: ignore[attr-defined]
    assert first.result(10)[0].id == 0
    with pytest.raises(Conflict, match="already on hold"):
        second.result(10)
