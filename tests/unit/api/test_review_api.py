"""The review queue over HTTP and on the command line, on SQLite and PostgreSQL: the same service
object behind both, access records for queue reads, clear refusals that append nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.cli import main
from api.settings import Settings
from ledger.service import Ledger
from tests.unit.api.app_fixtures import Auth, T, artifact, auth_fixture, client_fixture, tokens_fixture  # noqa: F401


def hold(item: int, risk: float = 0.7, action: str = "hold") -> dict[str, Any]:
    return {"kind": "safety_decision", "producer": "svc:safety", "produced_at": T,
            "links": [{"rel": "artifact", "id": item}],
            "body": {"action": action, "policy_id": "custody-default", "policy_version": "1.1.0",
                     "pipeline_version": "p-1", "risk": risk, "signals": {},
                     "categories": [{"category": "nonconsensual_intimate_edit", "risk": risk, "action": action}]}}


@pytest.fixture
def held(ledger: Ledger) -> dict[str, int]:
    """0, 1: artifacts; 2: 0 held; 3: 1 published; 4: 1 held; 5: an allowed artifact; 6: its decision."""
    ledger.append([artifact(0), artifact(1)])
    ledger.append([hold(0)])
    ledger.append([{"kind": "distribution", "producer": "svc:feed", "produced_at": T,
                    "links": [{"rel": "artifact", "id": 1}], "body": {"action": "publish"}}])
    ledger.append([hold(1, 0.9)])
    ledger.append([artifact(5)])
    ledger.append([hold(5, 0.1, "allow")])
    return {"a": 0, "b": 1, "hold_a": 2, "hold_b": 4, "allowed": 5}


def test_queue_read_is_logged_as_access(client: TestClient, auth: Auth, ledger: Ledger, held: dict[str, int]) -> None:
    size = ledger.size()
    r = client.get("/v1/review/queue", headers=auth("reviewer"))  # no case / purpose
    assert r.status_code == 400 and r.json()["error"] == "access_context_required"
    assert ledger.size() == size

    r = client.get("/v1/review/queue?limit=1", headers=auth("reviewer", access=True))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["item"] for i in body["items"]] == [0] and body["next_after"] == held["hold_a"]
    assert body["items"][0]["categories"] == ["nonconsensual_intimate_edit"]
    acc = ledger.get(body["access_id"])["record"]
    assert acc["kind"] == "access" and acc["body"]["action"] == "review_queue"
    assert acc["body"]["actor"] == "reviewer-1" and acc["body"]["role"] == "reviewer"
    assert acc["body"]["records"] == [0, held["hold_a"]]
    assert {(ln["rel"], ln["id"]) for ln in acc["links"]} == {("read", 0), ("read", held["hold_a"])}

    r = client.get(f"/v1/review/queue?after={body['next_after']}", headers=auth("reviewer", access=True))
    assert [i["item"] for i in r.json()["items"]] == [1] and r.json()["next_after"] is None


def test_decide_over_http(client: TestClient, auth: Auth, ledger: Ledger, held: dict[str, int]) -> None:
    size = ledger.size()
    refusals = [
        (0, {"action": "approve", "reason": ""}, 422),  # schema: empty reason
        (0, {"action": "approve", "reason": "   "}, 400),  # blank reason: the service says why
        (0, {"action": "delete", "reason": "x"}, 422),
        (0, {"action": "approve"}, 422),
        (0, {"action": "approve", "reason": "x", "reviewer": "someone-else"}, 422),  # the token names the reviewer
        (held["allowed"], {"action": "approve", "reason": "x"}, 409),
        (held["hold_a"], {"action": "approve", "reason": "x"}, 400),  # a decision is not an item
        (10_000, {"action": "approve", "reason": "x"}, 404),
    ]
    for item, payload, status in refusals:
        r = client.post(f"/v1/review/{item}/decision", json=payload, headers=auth("reviewer"))
        assert r.status_code == status, (item, payload, r.text)
    assert ledger.size() == size

    r = client.post("/v1/review/1/decision", json={"action": "remove", "reason": "non-consensual edit"},
                    headers=auth("reviewer"))
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["resolves"] == held["hold_b"] and d["takedown_required"] is True and d["pending"] is False
    rec = ledger.get(d["id"])["record"]
    assert rec["body"]["reviewer"] == "reviewer-1" and rec["body"]["reason"] == "non-consensual edit"

    r = client.post("/v1/review/1/decision", json={"action": "approve", "reason": "changed my mind"},
                    headers=auth("reviewer"))
    assert r.status_code == 409 and r.json()["error"] == "conflict" and "already decided" in r.json()["message"]
    assert ledger.size() == size + 1


def test_sla_over_http(client: TestClient, auth: Auth, held: dict[str, int]) -> None:
    r = client.get("/v1/review/sla", headers=auth("auditor"))
    assert r.status_code == 200, r.text
    rep = r.json()
    assert set(rep["slos"]) == {"automated_hold", "human_review", "takedown"}
    assert rep["slos"]["human_review"]["value"]["pending"] == 2  # both holds still wait
    assert "ledger_time" in rep["timestamps"]
    for query in ("since=yesterday", "since=2026-01-01T00:00:00", "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
                  "since=0001-01-01T00:00:00%2B01:00", "hold_threshold=2", "sincee=2026-01-01T00:00:00Z"):
        r = client.get(f"/v1/review/sla?{query}", headers=auth("reviewer"))
        assert r.status_code in (400, 422), (query, r.text)


# --- the CLI -------------------------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = main(list(args))
    cap = capsys.readouterr()
    try:
        return code, json.loads(cap.out), cap.err
    except json.JSONDecodeError:
        return code, cap.out, cap.err


@pytest.fixture
def cli_env(settings: Settings, ledger: Ledger, held: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CUSTODY_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CUSTODY_KEY_DIR", str(settings.key_dir))
    return str(settings.data_dir)


def test_review_cli(cli_env: str, ledger: Ledger, held: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    d = cli_env
    code, out, _ = cli(capsys, "review", "queue", "--data-dir", d, "--json")
    assert code == 0 and [i["item"] for i in out["items"]] == [0, 1]
    code, out, _ = cli(capsys, "review", "queue", "--data-dir", d)
    assert code == 0 and "review queue as of" in out  # a table (its width follows the terminal)

    size = ledger.size()
    for args, exit_code, msg in [
        (["0", "--action", "approve", "--reason", " ", "--reviewer", "rev-1"], 2, "needs a reason"),
        (["0", "--action", "ban", "--reason", "x", "--reviewer", "rev-1"], 2, "action must be one of"),
        (["0", "--action", "approve", "--reason", "x", "--reviewer", "not a name"], 2, "body.reviewer"),
        ([str(held["allowed"]), "--action", "approve", "--reason", "x", "--reviewer", "rev-1"], 4, "is 'allow'"),
        (["999", "--action", "approve", "--reason", "x", "--reviewer", "rev-1"], 3, "does not exist"),
    ]:
        code, _, err = cli(capsys, "review", "decide", *args, "--data-dir", d)
        assert code == exit_code and msg in err and len(err.strip().splitlines()) == 1, (args, code, err)
    assert ledger.size() == size

    code, out, _ = cli(capsys, "review", "decide", "0", "--action", "escalate", "--reason", "senior call",
                       "--reviewer", "rev-1", "--data-dir", d)
    assert code == 0 and "still waiting" in out
    code, out, _ = cli(capsys, "review", "decide", "0", "--action", "approve", "--reason", "stock photo",
                       "--reviewer", "rev-2", "--data-dir", d, "--json")
    assert code == 0 and out["resolves"] == held["hold_a"] and out["pending"] is False
    code, _, err = cli(capsys, "review", "decide", "0", "--action", "remove", "--reason", "x", "--reviewer", "rev-3",
                       "--data-dir", d)
    assert code == 4 and "already decided" in err
    assert ledger.size() == size + 2

    code, out, _ = cli(capsys, "review", "sla", "--data-dir", d, "--json")
    assert code == 0 and out["slos"]["human_review"]["value"] == {**out["slos"]["human_review"]["value"],
                                                                   "reviewed": 1, "pending": 1}
    code, out, _ = cli(capsys, "review", "sla", "--data-dir", d)
    assert code == 0 and "human_review" in out and "automated_hold" in out
    code, _, err = cli(capsys, "review", "sla", "--since", "last week", "--data-dir", d)
    assert code == 2 and "not an RFC 3339 time" in err
