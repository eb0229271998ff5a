"""The ledger service on every backend: append, links, idempotency, bad input, proofs, trace,
sealed fields, erasure and legal holds, key rotation."""

from __future__ import annotations

import json

import pytest

from api.sample import sample_incident
from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.errors import (Conflict, InvalidInput, LegalHoldActive, NotFound, RecordTooLarge, SubjectErased,
                           UnknownLink)
from ledger.keys import open_note
from ledger.records import parse_json
from ledger.service import Ledger

T = "2025-12-30T10:00:00Z"


def artifact(n: int, **over: object) -> dict:
    rec = {"kind": "artifact", "producer": "svc:test", "produced_at": T,
           "body": {"sha256": f"{n:064x}", "media_type": "image/png", "size": n, "storage_ref": f"blob://{n}"}}
    rec.update(over)
    return rec


def state(ledger: Ledger) -> tuple[int, bytes, int]:
    return ledger.size(), ledger.root(), len(ledger.checkpoints())


def check_proof(ledger: Ledger, idx: int) -> None:
    """Check an inclusion proof the way an outsider would: signed note + pure verifier."""
    p = ledger.prove_inclusion(idx)
    cp = Checkpoint.parse(open_note(p["checkpoint"], ledger.keyring.verifiers).text)
    merkle.verify_inclusion(bytes.fromhex(p["leaf_hash"]), idx, cp.size, [bytes.fromhex(h) for h in p["proof"]],
                            cp.root)
    rec = ledger.get(idx)
    assert merkle.leaf_hash(json.dumps(rec["record"], ensure_ascii=False, sort_keys=True,
                                       separators=(",", ":")).encode()).hex() == p["leaf_hash"]


def test_init_publishes_the_empty_checkpoint(ledger: Ledger) -> None:
    cps = ledger.checkpoints()
    assert [c.size for c in cps] == [0]
    assert cps[0].root == merkle.EMPTY_ROOT
    assert Checkpoint.parse(open_note(cps[0].note, ledger.keyring.verifiers).text).origin == "custody.test/ledger"


def test_sample_incident_appends_with_links_and_proofs(ledger: Ledger) -> None:
    out = ledger.append(sample_incident())
    assert [a.id for a in out] == list(range(14))
    assert ledger.latest_checkpoint().size == 14  # type: ignore[union-attr]
    for i in range(14):
        check_proof(ledger, i)
    gen = ledger.get(7)["record"]
    assert {ln["rel"]: ln["id"] for ln in gen["links"]} == {"prompt": 6, "model_version": 2, "source_asset": 5}
    # a link commits to the linked record's leaf hash
    assert all(ln["leaf"] == ledger.get(ln["id"])["leaf_hash"] for ln in gen["links"])
    # the prompt text is not in the leaf, only a commitment
    prompt = ledger.get(6)
    assert "b1kini" not in json.dumps(prompt)
    assert set(prompt["record"]["sealed"]) == {"text"}
    assert ledger.reveal(6)["text"]["value"] == "put her in a b1kini, make it look real"


def test_root_matches_reference_after_many_batches(ledger: Ledger) -> None:
    for b in range(7):
        ledger.append([artifact(100 * b + i) for i in range(b + 1)])
    leaves = [bytes.fromhex(ledger.get(i)["leaf_hash"]) for i in range(ledger.size())]
    assert ledger.root() == merkle.root_of(leaves)
    for old in range(ledger.size() + 1):
        p = ledger.prove_consistency(old)
        merkle.verify_consistency(old, ledger.size(), bytes.fromhex(p["old_root"]), bytes.fromhex(p["new_root"]),
                                  [bytes.fromhex(h) for h in p["proof"]])
        assert p["old_root"] == merkle.root_of(leaves[:old]).hex()


def test_every_checkpoint_is_kept_and_consistent(ledger: Ledger) -> None:
    for b in range(4):
        ledger.append([artifact(b * 10 + i) for i in range(3)])
    cps = ledger.checkpoints()
    assert [c.size for c in cps] == [0, 3, 6, 9, 12]
    for a, b in zip(cps, cps[1:]):
        p = ledger.prove_consistency(a.size, b.size)
        merkle.verify_consistency(a.size, b.size, a.root, b.root, [bytes.fromhex(h) for h in p["proof"]])
    # checkpoint signs one only if none covers the current size
    assert ledger.publish(force=True).id == cps[-1].id  # type: ignore[union-attr]


def test_inclusion_proof_against_an_older_size(ledger: Ledger) -> None:
    ledger.append([artifact(i) for i in range(5)])
    ledger.append([artifact(10 + i) for i in range(5)])
    p = ledger.prove_inclusion(2, size=5)
    assert p["size"] == 5 and p["checkpoint"] is not None
    merkle.verify_inclusion(bytes.fromhex(p["leaf_hash"]), 2, 5, [bytes.fromhex(h) for h in p["proof"]],
                            bytes.fromhex(p["root"]))


def test_batch_links_and_unknown_links(ledger: Ledger) -> None:
    ledger.append([artifact(1)])
    before = state(ledger)
    with pytest.raises(UnknownLink, match="record 5 does not exist"):
        ledger.append([artifact(2, links=[{"rel": "source", "id": 5}])])
    with pytest.raises(UnknownLink, match="record 1: links: 'batch' 1 must name an earlier record"):
        ledger.append([artifact(2), artifact(3, links=[{"rel": "x", "batch": 1}])])
    with pytest.raises(UnknownLink):  # a link to itself (the next index) does not exist yet
        ledger.append([artifact(2, links=[{"rel": "self", "id": 1}])])
    assert state(ledger) == before
    out = ledger.append([artifact(2, links=[{"rel": "source", "id": 0}]),
                         artifact(3, links=[{"rel": "derived_from", "batch": 0}])])
    assert ledger.get(out[1].id)["record"]["links"] == [
        {"rel": "derived_from", "id": out[0].id, "leaf": out[0].leaf_hash}]


@pytest.mark.parametrize("bad,err,match", [
    ([{"kind": "nope"}], InvalidInput, "unknown kind"),
    ([artifact(1, body={"sha256": "ab" * 32})], InvalidInput, "body.media_type"),
    ([artifact(1), artifact(2, body=[1])], InvalidInput, "record 1: body"),
    ([artifact(1, body={"sha256": "ab" * 32, "media_type": "image/png", "size": 1, "storage_ref": "b",
                        "huge": "x" * 5000})], RecordTooLarge, "limit is 4096"),
    ([artifact(1, links=[{"rel": "a", "id": 99}])], UnknownLink, "does not exist"),
    ([artifact(1, body={"sha256": "ab" * 32, "media_type": "image/png", "size": 2**60, "storage_ref": "b"})],
     InvalidInput, "outside"),
    ([], InvalidInput, "no records"),
])
def test_bad_input_changes_nothing(settings, bad: list, err: type, match: str) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from api.composition import init_ledger

    ledger = init_ledger(replace(settings, max_record_bytes=4096), origin="custody.test/ledger")
    ledger.append([artifact(0)])
    before = state(ledger)
    with pytest.raises(err, match=match):
        ledger.append(bad)
    assert state(ledger) == before


@pytest.mark.parametrize("raw,match", [
    (b"", "no records"),
    (b'{"kind": "artifact"\n', "line 1 is not valid JSON"),
    (b'{"a": NaN}', "NaN"),
    (b"\xc3\x28", "not valid UTF-8"),
    (b"[1, 2", "not valid JSON"),
])
def test_parse_batch_errors(ledger: Ledger, raw: bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        ledger.parse_batch(raw)


def test_idempotent_retries(ledger: Ledger) -> None:
    first = ledger.append([artifact(1, idempotency_key="k1"), artifact(2, idempotency_key="k2")])
    before = state(ledger)
    again = ledger.append([artifact(1, idempotency_key="k1"), artifact(2, idempotency_key="k2")])
    assert [a.id for a in again] == [a.id for a in first]
    assert [a.leaf_hash for a in again] == [a.leaf_hash for a in first]
    assert all(a.existing for a in again)
    assert state(ledger) == before
    with pytest.raises(Conflict, match="used for a different record"):
        ledger.append([artifact(3, idempotency_key="k1")])
    with pytest.raises(Conflict, match="twice in one batch"):
        ledger.append([artifact(4, idempotency_key="k9"), artifact(5, idempotency_key="k9")])
    assert state(ledger) == before
    # a partly retried batch: the old record comes back, the new one is appended
    mixed = ledger.append([artifact(1, idempotency_key="k1"), artifact(6, idempotency_key="k6")])
    assert mixed[0].id == first[0].id and mixed[0].existing and not mixed[1].existing


def test_get_and_prove_bad_ids(ledger: Ledger) -> None:
    ledger.append([artifact(1)])
    with pytest.raises(NotFound, match="record 9 does not exist"):
        ledger.get(9)
    with pytest.raises(InvalidInput, match="negative"):
        ledger.get(-1)
    with pytest.raises(InvalidInput, match="beyond the tree"):
        ledger.prove_inclusion(0, size=5)
    with pytest.raises(InvalidInput, match="beyond the tree"):
        ledger.prove_consistency(1, 7)
    with pytest.raises(InvalidInput, match="between 0 and"):
        ledger.prove_consistency(2, 1)


def test_trace_walks_both_directions_and_stops_at_hubs(ledger: Ledger) -> None:
    ledger.append(sample_incident())
    # a second, unrelated generation by the same model: must not appear in the incident's trace
    other = ledger.append([{"kind": "generation", "producer": "svc:x", "produced_at": T,
                            "body": {"surface": "api", "parameters": {}, "seed": 1},
                            "links": [{"rel": "model_version", "id": 2}]}])[0].id
    t = ledger.trace(13).as_dict()  # from the takedown, back to everything
    ids = {n["id"] for n in t["nodes"]}
    assert {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13} <= ids
    assert other not in ids
    assert {"src": 7, "dst": 6, "rel": "prompt"} in t["edges"]
    assert not t["truncated"]
    small = ledger.trace(13, max_nodes=3)
    assert small.truncated and len(small.nodes) <= 3
    with pytest.raises(NotFound):
        ledger.trace(999)


def test_erasure_shreds_but_proofs_still_verify(ledger: Ledger) -> None:
    ledger.append(sample_incident())
    root_before = ledger.root()
    a = ledger.erase("subj:u-7f3a", reason="GDPR art. 17 request", requested_by="dpo")
    erasure = ledger.get(a.id)["record"]
    assert erasure["kind"] == "erasure" and erasure["subject"] == "subj:u-7f3a"
    with pytest.raises(SubjectErased):
        ledger.reveal(6)
    assert ledger.reveal(1)["real_name"]["value"] == "Jane Example"  # other subjects untouched
    for i in range(a.id + 1):
        check_proof(ledger, i)
    assert ledger.root(14) == root_before
    with pytest.raises(Conflict, match="already erased"):
        ledger.erase("subj:u-7f3a", reason="again", requested_by="dpo")
    before = state(ledger)
    with pytest.raises(SubjectErased, match="was erased"):
        ledger.append([{"kind": "prompt", "producer": "svc:x", "produced_at": T, "subject": "subj:u-7f3a",
                        "body": {"surface": "chat"}, "sensitive": {"text": "new"}}])
    assert state(ledger) == before


def test_legal_hold_blocks_erasure_until_released(ledger: Ledger) -> None:
    ledger.append(sample_incident())

    def hold(action: str, case: str = "case-1") -> dict:
        return {"kind": "legal_hold", "producer": "svc:legal", "produced_at": T, "subject": "subj:u-7f3a",
                "body": {"action": action, "case_id": case}}

    with pytest.raises(InvalidInput, match="appended only by the ledger"):
        ledger.append([hold("place")])  # a client (a service) may not place — or release — holds
    ledger.append([hold("place")], trusted=True)
    assert set(ledger.holds("subj:u-7f3a")) == {"case-1"}
    before = state(ledger)
    with pytest.raises(LegalHoldActive, match="legal hold for case 'case-1'"):
        ledger.erase("subj:u-7f3a", reason="request", requested_by="dpo")
    assert state(ledger) == before
    assert ledger.reveal(6)["text"]["value"].startswith("put her")  # the key survived
    with pytest.raises(Conflict, match="already on hold"):
        ledger.append([hold("place")], trusted=True)
    with pytest.raises(Conflict, match="no active hold"):
        ledger.append([hold("release", "case-2")], trusted=True)
    with pytest.raises(InvalidInput, match="appended only by the ledger"):
        ledger.append([hold("release")])
    ledger.append([hold("release")], trusted=True)
    assert ledger.holds("subj:u-7f3a") == {}
    ledger.erase("subj:u-7f3a", reason="request", requested_by="dpo")
    with pytest.raises(SubjectErased):
        ledger.reveal(6)


def test_sealed_value_disclosure_checks_against_commitment(ledger: Ledger) -> None:
    from ledger.errors import VerificationError
    from ledger.sealing import check_disclosure

    ledger.append(sample_incident())
    rec = ledger.get(0)["record"]
    rev = ledger.reveal(0)
    for field, d in rev.items():
        check_disclosure(rec["sealed"][field], d["salt"], d["value"])
    with pytest.raises(VerificationError):
        check_disclosure(rec["sealed"]["email"], rev["email"]["salt"], "someone.else@example.invalid")


def test_key_rotation_keeps_old_checkpoints_verifiable(ledger: Ledger) -> None:
    ledger.append([artifact(1)])
    old_cp = ledger.latest_checkpoint()
    old_vkey = ledger.keyring.active
    new_vkey = ledger.keyring.rotate()
    assert new_vkey.vkey != old_vkey.vkey
    ledger.append([artifact(2)])
    new_cp = ledger.latest_checkpoint()
    assert open_note(new_cp.note, [new_vkey]).verified  # type: ignore[union-attr]
    assert open_note(old_cp.note, [old_vkey]).verified  # type: ignore[union-attr]
    info = ledger.keyring.info()
    assert [k.active for k in info] == [False, True]
    assert not info[0].private_key_present and info[1].private_key_present
    from ledger.verify import verify_ledger

    assert verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin).ok


def test_signing_key_file_is_private(ledger: Ledger) -> None:
    import os
    import stat

    path = ledger.keyring.dir / f"checkpoint-{ledger.keyring.active.key_id.hex()}.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ledger.keyring.dir / "sealing.key").st_mode) == 0o600


def test_leaf_bytes_are_canonical_json(ledger: Ledger) -> None:
    from ledger.records import canonical_json

    ledger.append(sample_incident())
    with ledger.store.read() as r:
        for i in range(ledger.size()):
            data = r.entry(i).data  # type: ignore[union-attr]
            assert canonical_json(parse_json(data)) == data


@pytest.mark.parametrize("over,match", [
    ({"idempotency_key": "k\x00"}, "idempotency_key"),
    ({"subject": "s", "sensitive": {"x" * 201: "v"}}, "field name"),
    ({"subject": "s", "sensitive": {"a\x00b": "v"}}, "field name"),
    ({"subject": "s", "sensitive": {"\ud800": "v"}}, "field name"),
])
def test_unstorable_strings_are_refused_before_the_database(ledger: Ledger, over: dict, match: str) -> None:
    ledger.append([artifact(1)])
    before = state(ledger)
    with pytest.raises(InvalidInput, match=match):
        ledger.append([artifact(2, **over)])
    assert state(ledger) == before


def test_legal_holds_within_one_batch_count_earlier_lines(ledger: Ledger) -> None:
    hold = {"kind": "legal_hold", "producer": "svc:legal", "produced_at": T, "subject": "subj:x"}
    place = {**hold, "body": {"action": "place", "case_id": "c"}}
    release = {**hold, "body": {"action": "release", "case_id": "c"}}
    before = state(ledger)
    with pytest.raises(Conflict, match="record 1: .*already on hold"):
        ledger.append([place, place], trusted=True)
    assert state(ledger) == before
    ledger.append([place, release], trusted=True)  # placed and released in one batch: fine
    assert ledger.holds("subj:x") == {}
    with pytest.raises(Conflict, match="no active hold"):
        ledger.append([release], trusted=True)


def test_checkpoint_by_id(ledger: Ledger) -> None:
    ledger.append([artifact(1)])
    cp = ledger.latest_checkpoint()
    assert ledger.checkpoint(cp.id) == cp  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        ledger.checkpoint(999)


def test_clients_cannot_append_access_records(ledger: Ledger) -> None:
    forged = {"kind": "access", "producer": "svc:x", "produced_at": T,
              "body": {"actor": "legal1", "role": "legal", "action": "export", "case_id": "c1", "purpose": "p"}}
    with pytest.raises(InvalidInput, match="appended only by the ledger"):
        ledger.append([forged])


def test_non_ascii_sensitive_names_are_refused(ledger: Ledger) -> None:
    rec = artifact(1, subject="s", sensitive={"\ue000": 1, "\U0001f600": 2})
    with pytest.raises(InvalidInput, match="ASCII"):
        ledger.append([rec])


def test_access_records_do_not_join_or_flood_traces(ledger: Ledger) -> None:
    """Reads (access records) show in a trace but are never walked through (review finding)."""
    x, y = (a.id for a in ledger.append([artifact(1), artifact(2)]))
    reads = [{"kind": "access", "producer": "custody:api", "produced_at": T,
              "links": [{"rel": "read", "id": x}, {"rel": "read", "id": y}],
              "body": {"actor": "a", "role": "investigator", "action": "read", "case_id": "c", "purpose": "p"}}]
    for _ in range(30):
        ledger.append(reads, trusted=True)
    child = ledger.append([artifact(3, links=[{"rel": "source", "id": x}])])[0].id
    t = ledger.trace(x, max_nodes=40)
    assert child in t.nodes and y not in t.nodes  # y is joined to x only through the reads


def test_a_large_batch_pauses_the_cyclic_gc_and_resumes_it(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector is paused while a large batch is validated and sequenced, resumed after it
    (also after a refused batch), and left alone for small appends and when it was already off."""
    import gc

    import ledger.service as service

    seen: list[bool] = []
    real = service.validate

    def spy(item, **kw):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return real(item, **kw)

    monkeypatch.setattr(service, "validate", spy)
    n = service.GC_PAUSE_MIN_BATCH
    assert gc.isenabled()
    ledger.append([artifact(i) for i in range(n)], publish=False)
    assert seen == [False] * n and gc.isenabled()

    seen.clear()
    ledger.append([artifact(1000)], publish=False)
    assert seen == [True] and gc.isenabled()

    seen.clear()
    size = ledger.size()
    with pytest.raises(InvalidInput):
        ledger.append([artifact(2000 + i) for i in range(n - 1)] + [{"kind": "nope"}], publish=False)
    assert ledger.size() == size and gc.isenabled() and not any(seen)

    gc.disable()
    try:
        ledger.append([artifact(3000 + i) for i in range(n)], publish=False)
        assert not gc.isenabled()  # it was off before: a batch does not turn it on
    finally:
        gc.enable()
