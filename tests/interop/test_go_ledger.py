"""A real ledger's output, checked by Go alone: its checkpoints with note.Open (trusting only the
published vkeys), every record's inclusion proof with tlog.CheckRecord over the record's stored
bytes, and consistency between every pair of its checkpoints with tlog.CheckTree."""

from __future__ import annotations

import base64

import pytest

from api.sample import sample_incident
from ledger.service import Ledger

pytestmark = pytest.mark.go


def b64h(hex_: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_)).decode()


def test_go_verifies_a_ledger_end_to_end(ledger: Ledger, gocheck) -> None:  # type: ignore[no-untyped-def]
    ledger.append(sample_incident())
    for b in range(3):
        ledger.append([{"kind": "distribution", "producer": "svc:share", "produced_at": "2025-12-30T11:00:00Z",
                        "body": {"action": "share"}, "links": [{"rel": "artifact", "id": 8}]}] * (b + 2))
    ledger.keyring.rotate()  # the later checkpoints are signed by a second key
    ledger.append(sample_incident())
    vkeys = [v.vkey for v in ledger.keyring.verifiers]
    cps = ledger.checkpoints()
    assert len(cps) >= 6

    checks: list[dict] = [{"type": "note", "vkeys": vkeys, "note": c.note} for c in cps]
    size = ledger.size()
    for i in range(size):
        p = ledger.prove_inclusion(i)
        with ledger.store.read() as r:
            data = r.entry(i).data  # type: ignore[union-attr]
        checks.append({"type": "record", "proof": [b64h(h) for h in p["proof"]], "size": p["size"],
                       "root": b64h(p["root"]), "index": i, "leaf": base64.b64encode(data).decode()})
    for a in cps:
        for b in cps:
            if 1 <= a.size < b.size:
                p = ledger.prove_consistency(a.size, b.size)
                checks.append({"type": "tree", "proof": [b64h(h) for h in p["proof"]], "size": b.size,
                               "root": base64.b64encode(b.root).decode(), "old_size": a.size,
                               "old_root": base64.b64encode(a.root).decode()})
    results = gocheck(checks)
    failed = [(c["type"], r.get("error")) for c, r in zip(checks, results) if not r["ok"]]
    assert not failed, failed[:10]
    # and Go must refuse what it should: the notes under a stranger's key, a record's bytes altered
    stranger = "custody.test/ledger+00000000+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    bad = [{"type": "note", "vkeys": [stranger], "note": cps[-1].note},
           {**checks[len(cps)], "leaf": base64.b64encode(b"{}").decode()}]
    assert [r["ok"] for r in gocheck(bad)] == [False, False]
