"""Evidence bundles: export, the offline verifier, determinism, redaction, hashes-only, artifacts' bytes,
replay reports, provenance, the custody log, and tampering of every file."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.sample import sample_incident
from api.settings import Settings
from ledger.artifacts import artifact_store_for, ref_for
from ledger.bundle_format import REPLAY_NOTE_HEADER, pack, parse_bag_info, replay_note_text
from ledger.errors import InvalidInput, VerificationError
from ledger.evidence import ROOT, Bundle, export_bundle, record_export, verify_bundle
from ledger.keys import NoteSigner, sign_note
from ledger.records import canonical_json
from ledger.service import Ledger

UPLOAD = b"\xff\xd8\xff\xe0 an uploaded photo (stand-in bytes)"
OUTPUT = b"\x89PNG\r\n\x1a\n the marked output (stand-in bytes)"


@pytest.fixture
def data_dir(settings: Settings) -> Path:
    return settings.data_dir


@pytest.fixture
def case(ledger: Ledger) -> Ledger:
    ledger.append(sample_incident())
    ledger.append([{"kind": "distribution", "producer": "svc:share", "produced_at": "2025-12-30T12:00:00Z",
                    "body": {"action": "share"}, "links": [{"rel": "artifact", "id": 8}]}])
    return ledger


def store_report(ledger: Ledger, data_dir: Path, report: dict[str, Any],
                 signer: NoteSigner | None = None) -> tuple[str, str]:
    """A replay report stored the way sandbox.report.store_report stores it, but signed by ``signer``."""
    raw = canonical_json(report)
    sha = hashlib.sha256(raw).hexdigest()
    note = sign_note(replay_note_text(ledger.config.origin, sha), [signer or ledger.keyring.signer()])
    folder = data_dir / "replays"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{sha}.json").write_bytes(raw)
    (folder / f"{sha}.note").write_text(note)
    return sha, note


def replay_record(sha: str, note: str, prompt: int, decision: int) -> dict[str, Any]:
    return {"kind": "replay_report", "producer": "custody", "produced_at": "2025-12-31T09:00:00Z",
            "links": [{"rel": "replayed", "id": prompt}, {"rel": "recorded_decision", "id": decision}],
            "body": {"report_sha256": sha, "report_type": "custody.replay-report/v1", "mode": "remoderate",
                     "status": "completed", "signature": note}}


def gateway_chain(ledger: Ledger, data_dir: Path, *, output_ref: str | None = None) -> dict[str, int]:
    """What the gateway appends for an edit of an uploaded photo (bytes in the evidence store), with the
    analysis decision's watermark and C2PA signals, then a replay report of the prompt."""
    store = artifact_store_for(data_dir)
    su, so = store.put(UPLOAD), hashlib.sha256(OUTPUT).hexdigest()
    if output_ref is None:
        store.put(OUTPUT)
    t = "2025-12-30T11:00:00Z"
    first = ledger.append([
        {"kind": "artifact", "producer": "custody:gateway", "produced_at": t,
         "body": {"sha256": su, "media_type": "image/jpeg", "size": len(UPLOAD), "storage_ref": ref_for(su),
                  "role": "upload"}, "links": [{"rel": "uploaded_by", "id": 0}, {"rel": "depicts", "id": 1}]},
        {"kind": "prompt", "producer": "custody:gateway", "produced_at": t, "subject": "subj:u-7f3a",
         "body": {"surface": "edit"}, "sensitive": {"text": "make her swimsuit smaller"},
         "links": [{"rel": "principal", "id": 0}, {"rel": "source", "batch": 0}]},
        {"kind": "generation", "producer": "custody:gateway", "produced_at": t,
         "body": {"surface": "edit", "parameters": {"steps": 4}, "seed": 7},
         "links": [{"rel": "prompt", "batch": 1}, {"rel": "model_version", "id": 2},
                   {"rel": "source_asset", "batch": 0}]}])
    gen = first[2].id
    payload = f"{gen:016x}"
    second = ledger.append([
        {"kind": "artifact", "producer": "custody:gateway", "produced_at": t,
         "body": {"sha256": so, "media_type": "image/png", "size": len(OUTPUT),
                  "storage_ref": output_ref or ref_for(so), "role": "output", "watermark_payload": payload,
                  "c2pa_manifest": "urn:c2pa:test-manifest"}, "links": [{"rel": "generation", "id": gen}]},
        {"kind": "safety_decision", "producer": "custody:gateway", "produced_at": t,
         "body": {"action": "hold", "stage": "analysis", "policy_id": "content-safety", "policy_version": "2025-11",
                  "pipeline_version": "a" * 64, "risk": 0.7,
                  "signals": {"nudity.exposed": 0.7, "watermark.checked": True, "watermark.found": True,
                              "watermark.payload": payload, "watermark.confidence": 0.97, "c2pa.present": True,
                              "c2pa.state": "Trusted", "c2pa.trusted": True, "c2pa.ours": True,
                              "c2pa.ai_generated": True, "c2pa.watermark_payload": payload,
                              "provenance.mismatch": False}},
         "links": [{"rel": "artifact", "batch": 0}, {"rel": "generation", "id": gen}, {"rel": "policy", "id": 3}]}])
    from sandbox.report import store_report as sandbox_store_report  # the replay's own code path

    _raw, sha, note = sandbox_store_report(data_dir, {"report_type": "custody.replay-report/v1",
                                                      "target": first[1].id, "status": "completed", "steps": []},
                                           ledger)
    [rep] = ledger.append([replay_record(sha, note, first[1].id, second[1].id)])
    return {"upload": first[0].id, "prompt": first[1].id, "generation": gen, "output": second[0].id,
            "decision": second[1].id, "replay": rep.id, "report_sha256": sha}  # type: ignore[dict-item]


@pytest.fixture
def rich(case: Ledger, data_dir: Path) -> tuple[Ledger, dict[str, int]]:
    return case, gateway_chain(case, data_dir)


def vkeys(ledger: Ledger) -> list[str]:
    return [ledger.keyring.active.vkey]


def members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i, z.read(i)) for i in z.infolist()]


def files_of(data: bytes) -> dict[str, bytes]:
    return {i.filename[len(ROOT) + 1:]: c for i, c in members(data)}


def rezip(items: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info, content in items:
            z.writestr(info, content)
    return buf.getvalue()


def resigned(ledger: Ledger, bundle: Bundle, change: Callable[[dict[str, bytes]], None]) -> bytes:
    """The bundle with its payload changed by ``change`` and manifests + signature made afresh with the
    ledger's own key: what a faulty or dishonest exporter holding the key could produce. Only the
    verifier's semantic checks can catch these."""
    files = files_of(bundle.data)
    info = parse_bag_info(files["bag-info.txt"])
    info.pop("Payload-Oxum")
    payload = {n: b for n, b in files.items() if n.startswith("data/")}
    change(payload)
    return pack(payload, info, bundle.case_id, ledger.keyring.signer())


def failed(report: Any) -> set[str]:
    return {name for name, ok, _ in report.checks if not ok}


def checks(report: Any) -> dict[str, str]:
    return {name: detail for name, _, detail in report.checks}


# --- the basics ------------------------------------------------------------------------------------


def test_export_verifies_and_is_deterministic(case: Ledger, data_dir: Path) -> None:
    a = export_bundle(case, "case-1", [8], data_dir=data_dir)
    b = export_bundle(case, "case-1", [8], data_dir=data_dir)
    assert a.data == b.data and a.sha256 == b.sha256
    report = verify_bundle(a.data, vkeys(case))
    assert report.ok, report.as_dict()
    assert report.case_id == "case-1" and report.records == 15
    names = [i.filename for i, _ in members(a.data)]
    assert names == sorted(names) and f"{ROOT}/data/records/000000000008.json" in names
    # the consistency proof starts at the first non-empty checkpoint (size 14)
    cons = json.loads(files_of(a.data)["data/consistency.json"])
    assert (cons["old_size"], cons["new_size"]) == (14, 15)


def test_export_is_recorded_and_appears_in_the_next_bundle(case: Ledger, data_dir: Path) -> None:
    first, receipt = record_export(case, "case-7", [8], actor="counsel", role="legal", purpose="court order",
                                   data_dir=data_dir)
    rec = case.get(receipt.id)["record"]
    assert rec["kind"] == "access" and rec["body"]["bundle_sha256"] == first.sha256
    assert rec["body"]["hashes_only"] is False
    second, _ = record_export(case, "case-7", [8], actor="counsel", role="legal", purpose="appeal",
                              data_dir=data_dir)
    log = json.loads(files_of(second.data)["data/custody-log.json"])
    assert [e["id"] for e in log] == [receipt.id] and log[0]["bundle_sha256"] == first.sha256
    assert verify_bundle(second.data, vkeys(case)).ok


def test_redacted_bundle_has_no_sensitive_values_and_still_verifies(case: Ledger, data_dir: Path) -> None:
    full = export_bundle(case, "c", [8], data_dir=data_dir)
    red = export_bundle(case, "c", [8], data_dir=data_dir, redact=True)
    assert b"b1kini" in b"".join(c for _, c in members(full.data))
    assert all(b"b1kini" not in c and b"Jane Example" not in c for _, c in members(red.data))
    assert not any("disclosures" in i.filename for i, _ in members(red.data))
    assert verify_bundle(red.data, vkeys(case)).ok


def test_wrong_key_and_garbage_fail_cleanly(case: Ledger, data_dir: Path) -> None:
    data = export_bundle(case, "c", [8], data_dir=data_dir).data
    other = "custody.test/ledger+6e2d1a3b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    bad = verify_bundle(data, [other])
    assert not bad.ok
    assert not verify_bundle(b"not a zip", vkeys(case)).ok
    assert not verify_bundle(data[: len(data) // 2], vkeys(case)).ok
    assert not verify_bundle(data, ["not a key"]).ok


# --- artifacts, replay reports, provenance -------------------------------------------------------------


def test_bundle_carries_artifact_bytes_replay_reports_and_provenance(rich: tuple[Ledger, dict[str, int]],
                                                                     data_dir: Path) -> None:
    ledger, ids = rich
    a = export_bundle(ledger, "case-9", [ids["output"]], data_dir=data_dir)
    assert export_bundle(ledger, "case-9", [ids["output"]], data_dir=data_dir).data == a.data  # byte-identical
    report = verify_bundle(a.data, vkeys(ledger))
    assert report.ok, report.as_dict()
    f = files_of(a.data)
    su, so = hashlib.sha256(UPLOAD).hexdigest(), hashlib.sha256(OUTPUT).hexdigest()
    assert f[f"data/artifacts/{su}"] == UPLOAD and f[f"data/artifacts/{so}"] == OUTPUT
    index = {e["sha256"]: e for e in json.loads(f["data/artifacts.json"])}
    assert index[so]["bytes"] == "included" and index[so]["records"] == [
        {"id": ids["output"], "media_type": "image/png", "size": len(OUTPUT)}]
    # the sample incident's artifacts are kept outside Custody: listed, with the reason
    missing = json.loads(f["data/artifacts-missing.json"])
    assert {m["records"][0] for m in missing} == {5, 8}
    assert all("outside Custody" in m["reason"] and "blob://" in m["reason"] for m in missing)
    assert (a.artifacts_included, a.artifacts_withheld, a.artifacts_missing) == (2, 0, 2)
    sha = ids["report_sha256"]
    assert f[f"data/replays/{sha}.json"] == (data_dir / "replays" / f"{sha}.json").read_bytes()
    assert f[f"data/replays/{sha}.note"].decode() == ledger.get(ids["replay"])["record"]["body"]["signature"]
    assert json.loads(f["data/replays-missing.json"]) == []
    prov = json.loads(f["data/provenance.json"])
    [entry] = prov["artifacts"]
    payload = f"{ids['generation']:016x}"
    assert entry["artifact"] == ids["output"] and entry["embedded"]["watermark_payload"] == payload
    [finding] = entry["findings"]
    assert finding["decision"] == ids["decision"] and finding["watermark"]["payload"] == payload
    assert finding["c2pa"]["state"] == "Trusted" and finding["provenance"] == {"mismatch": False}
    assert finding["watermark_matches_embedded"] is True and "nudity.exposed" not in json.dumps(finding)
    detail = checks(report)
    assert "2 artifact file(s)" in detail["artifacts"] and "1 report(s)" in detail["replay reports"]
    assert "1 output artifact(s)" in detail["provenance"]
    readme = f["data/README.txt"].decode()
    assert "data/artifacts/" in readme and "sha256sum" in readme and "2.1.3.2" in readme


def test_hashes_only_leaves_bytes_out_and_says_so(rich: tuple[Ledger, dict[str, int]], data_dir: Path) -> None:
    ledger, ids = rich
    for redact in (False, True):  # independent options
        b = export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir, hashes_only=True, redact=redact)
        report = verify_bundle(b.data, vkeys(ledger))
        assert report.ok, report.as_dict()
        f = files_of(b.data)
        assert not any(n.startswith("data/artifacts/") for n in f)
        assert all(UPLOAD not in c and OUTPUT not in c for c in f.values())
        assert b"Custody-Artifact-Bytes: withheld (hashes only)" in f["bag-info.txt"]
        assert f"Custody-Redacted: {'yes' if redact else 'no'}".encode() in f["bag-info.txt"]
        assert "HASHES ONLY" in f["data/README.txt"].decode()
        index = {e["sha256"]: e["bytes"] for e in json.loads(f["data/artifacts.json"])}
        assert index[hashlib.sha256(OUTPUT).hexdigest()] == "withheld"
        out = json.loads(f[f"data/records/{ids['output']:012d}.json"])
        assert out["body"]["sha256"] == hashlib.sha256(OUTPUT).hexdigest()  # the records keep the hashes
        assert (b.artifacts_included, b.artifacts_withheld) == (0, 2)
    _, receipt = record_export(ledger, "c", [ids["output"]], actor="a", role="legal", purpose="p",
                               data_dir=data_dir, hashes_only=True)
    assert ledger.get(receipt.id)["record"]["body"]["hashes_only"] is True


def test_lost_bytes_are_listed_never_skipped(case: Ledger, data_dir: Path) -> None:
    so = hashlib.sha256(OUTPUT).hexdigest()
    ids = gateway_chain(case, data_dir, output_ref=ref_for(so))  # names the store, bytes never put there
    b = export_bundle(case, "c", [ids["output"]], data_dir=data_dir)
    assert verify_bundle(b.data, vkeys(case)).ok
    missing = {m["sha256"]: m for m in json.loads(files_of(b.data)["data/artifacts-missing.json"])}
    assert missing[so]["records"] == [ids["output"]] and "lost" in missing[so]["reason"]
    assert f"data/artifacts/{so}" not in files_of(b.data)


def test_bytes_that_contradict_the_record_refuse_the_export(rich: tuple[Ledger, dict[str, int]],
                                                            data_dir: Path) -> None:
    ledger, ids = rich
    path = artifact_store_for(data_dir)._path(hashlib.sha256(OUTPUT).hexdigest())
    path.chmod(0o600)
    path.write_bytes(OUTPUT + b"x")  # altered on disk
    with pytest.raises(VerificationError, match=rf"artifact record\(s\) {ids['output']}.*refused"):
        export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir)
    with pytest.raises(VerificationError):  # hashes-only still checks what it withholds
        export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir, hashes_only=True)


def test_a_storage_ref_naming_other_bytes_refuses_the_export(case: Ledger, data_dir: Path) -> None:
    ids = gateway_chain(case, data_dir, output_ref=ref_for(hashlib.sha256(UPLOAD).hexdigest()))
    with pytest.raises(VerificationError, match="storage_ref names the bytes"):
        export_bundle(case, "c", [ids["output"]], data_dir=data_dir)


def test_replay_report_problems(rich: tuple[Ledger, dict[str, int]], data_dir: Path) -> None:
    ledger, ids = rich
    sha = ids["report_sha256"]
    folder = data_dir / "replays"
    # a report whose note another key signed: the export refuses; the record's signature is that note
    stranger = NoteSigner.generate(ledger.config.origin)
    sha2, note2 = store_report(ledger, data_dir, {"report_type": "x", "target": ids["prompt"]}, signer=stranger)
    [rec2] = ledger.append([replay_record(sha2, note2, ids["prompt"], ids["decision"])])
    with pytest.raises(VerificationError, match=f"replay report record {rec2.id}: its signature"):
        export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir)
    (folder / f"{sha2}.json").unlink()
    (folder / f"{sha2}.note").unlink()
    b = export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir)  # gone from disk: listed, not skipped
    assert verify_bundle(b.data, vkeys(ledger)).ok
    [m] = json.loads(files_of(b.data)["data/replays-missing.json"])
    assert (m["record"], m["report_sha256"]) == (rec2.id, sha2) and str(folder) in m["reason"]
    assert b.replay_reports_missing == 1
    # an altered report file refuses the export
    path = folder / f"{sha}.json"
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(VerificationError, match=f"{sha}.json does not hash"):
        export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir)


def test_replay_note_header_is_the_sandboxs() -> None:
    from sandbox.report import NOTE_HEADER

    assert REPLAY_NOTE_HEADER == NOTE_HEADER


# --- the verifier's semantic checks, against bundles re-signed with the ledger's own key ----------------


def test_semantic_checks_catch_a_dishonest_exporter(rich: tuple[Ledger, dict[str, int]], data_dir: Path) -> None:
    ledger, ids = rich
    b = export_bundle(ledger, "case-9", [ids["output"]], data_dir=data_dir)
    assert verify_bundle(resigned(ledger, b, lambda p: None), vkeys(ledger)).ok  # the helper itself is faithful
    so, sha = hashlib.sha256(OUTPUT).hexdigest(), ids["report_sha256"]
    stranger = NoteSigner.generate(ledger.config.origin)
    other_bytes = b"bytes no record names"

    def replace(name: str, content: bytes) -> Callable[[dict[str, bytes]], None]:
        return lambda p: p.__setitem__(name, content)

    def json_edit(name: str, fn: Callable[[Any], Any]) -> Callable[[dict[str, bytes]], None]:
        return lambda p: p.__setitem__(name, canonical_json(fn(json.loads(p[name]))) + b"\n")

    def drop(name: str) -> Callable[[dict[str, bytes]], None]:
        return lambda p: p.pop(name)

    cases: dict[str, tuple[Callable[[dict[str, bytes]], None], str]] = {
        "unnamed artifact file": (replace(f"data/artifacts/{hashlib.sha256(other_bytes).hexdigest()}", other_bytes),
                                  "artifacts"),
        "artifact bytes swapped": (replace(f"data/artifacts/{so}", UPLOAD), "artifacts"),
        "artifact dropped silently": (drop(f"data/artifacts/{so}"), "artifacts"),
        "missing list emptied": (replace("data/artifacts-missing.json", b"[]\n"), "artifacts"),
        "index says withheld": (json_edit("data/artifacts.json", lambda x: [{**e, "bytes": "withheld", "file": None}
                                                                           for e in x]), "artifacts"),
        "note by another key": (replace(f"data/replays/{sha}.note",
                                        sign_note(replay_note_text(ledger.config.origin, sha), [stranger]).encode()),
                                "replay reports"),
        "note for another origin": (replace(f"data/replays/{sha}.note", sign_note(
            replay_note_text("elsewhere.example/log", sha), [ledger.keyring.signer()]).encode()), "replay reports"),
        "report altered": (replace(f"data/replays/{sha}.json", b"{}"), "replay reports"),
        "report dropped silently": (lambda p: (p.pop(f"data/replays/{sha}.json"), p.pop(f"data/replays/{sha}.note")),
                                    "replay reports"),
        "unnamed report": (replace(f"data/replays/{'0' * 64}.json", b"{}"), "replay reports"),
        "provenance edited": (json_edit("data/provenance.json",
                                        lambda x: {**x, "artifacts": [{**e, "findings": []} for e in x["artifacts"]]}),
                              "provenance"),
        "provenance emptied": (json_edit("data/provenance.json", lambda x: {**x, "artifacts": []}), "provenance"),
    }
    # custody log: an export recorded for this case, then the log tampered with
    _, receipt = record_export(ledger, "case-9", [ids["output"]], actor="a", role="legal", purpose="p",
                               data_dir=data_dir)
    _, receipt2 = record_export(ledger, "case-9", [ids["output"]], actor="b", role="legal", purpose="q",
                                data_dir=data_dir)
    ledger.publish(force=True)
    b2 = export_bundle(ledger, "case-9", [ids["output"]], data_dir=data_dir)
    log_cases: dict[str, tuple[Callable[[dict[str, bytes]], None], str]] = {
        "entry left out": (json_edit("data/custody-log.json", lambda x: x[:1]), "custody log"),
        "entries reordered": (json_edit("data/custody-log.json", lambda x: x[::-1]), "custody log"),
        "entry edited": (json_edit("data/custody-log.json", lambda x: [{**x[0], "purpose": "other"}, x[1]]),
                         "custody log"),
        "entry not a record": (json_edit("data/custody-log.json", lambda x: x + [{**x[1], "id": 10 ** 6}]),
                               "custody log"),
        "entry of another kind": (json_edit("data/custody-log.json", lambda x: x + [{**x[1], "id": 9}]),
                                  "custody log"),
    }
    assert [e["id"] for e in json.loads(files_of(b2.data)["data/custody-log.json"])] == [receipt.id, receipt2.id]
    for what, (change, check) in {**cases, **log_cases}.items():
        bundle = b2 if what in log_cases else b
        report = verify_bundle(resigned(ledger, bundle, change), vkeys(ledger))
        assert not report.ok and check in failed(report), (what, report.as_dict())
    # a hashes-only bundle that carries bytes anyway
    h = export_bundle(ledger, "case-9", [ids["output"]], data_dir=data_dir, hashes_only=True)
    report = verify_bundle(resigned(ledger, h, replace(f"data/artifacts/{so}", OUTPUT)), vkeys(ledger))
    assert "artifacts" in failed(report)
    # a file the format does not define, even when listed in the signed manifest
    report = verify_bundle(resigned(ledger, b, replace("data/zz.txt", b"x")), vkeys(ledger))
    assert "layout" in failed(report)


def test_custody_log_holds_every_access_of_the_case(rich: tuple[Ledger, dict[str, int]], data_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, ids = rich
    monkeypatch.setattr("ledger.evidence.ACCESS_PAGE", 1)  # page through the access records one by one
    t = "2025-12-31T10:00:00Z"
    # an investigator read a record outside the case's chain under this case id; another case's read
    appended = ledger.append([
        {"kind": "model_version", "producer": "svc:model-registry", "produced_at": t,
         "body": {"name": "other", "version": "1"}},
        {"kind": "access", "producer": "custody:api", "produced_at": t, "links": [{"rel": "read", "batch": 0}],
         "body": {"actor": "inv-1", "role": "investigator", "action": "read", "case_id": "case-9",
                  "purpose": "triage", "records": []}},
        {"kind": "access", "producer": "custody:api", "produced_at": t, "links": [{"rel": "read", "id": ids["output"]}],
         "body": {"actor": "inv-2", "role": "investigator", "action": "read", "case_id": "case-other",
                  "purpose": "other", "records": [ids["output"]]}}], trusted=True)
    assert appended[1].id not in ledger.trace(ids["output"]).nodes  # no trace of the case reaches it
    b = export_bundle(ledger, "case-9", [ids["output"]], data_dir=data_dir)
    assert verify_bundle(b.data, vkeys(ledger)).ok
    log = json.loads(files_of(b.data)["data/custody-log.json"])
    assert [e["id"] for e in log] == [appended[1].id] and log[0]["actor"] == "inv-1"
    _, receipt = record_export(ledger, "case-9", [ids["output"]], actor="counsel", role="legal", purpose="p",
                               data_dir=data_dir)
    ledger.publish(force=True)
    log = json.loads(files_of(export_bundle(ledger, "case-9", [ids["output"]], data_dir=data_dir).data)
                     ["data/custody-log.json"])
    assert [e["id"] for e in log] == [appended[1].id, receipt.id]
    assert appended[1].id in b.record_ids
    assert b"Custody-Log-Complete-To-Size" in files_of(b.data)["bag-info.txt"]
    # the other case's read links to the case's output, so the trace reaches it; the bundle keeps it out
    assert appended[2].id in ledger.trace(ids["output"]).nodes and appended[2].id not in b.record_ids
    assert all(b"case-other" not in content for content in files_of(b.data).values())
    assert "1 access record(s) of other cases" in files_of(b.data)["data/README.txt"].decode()
    # naming the other case's read as a record of this case is refused, not exported as its reads
    with pytest.raises(InvalidInput, match="access record of another case"):
        export_bundle(ledger, "case-9", [appended[2].id], data_dir=data_dir)


# --- tampering ---------------------------------------------------------------------------------------


def test_every_single_byte_flip_in_every_file_is_detected(rich: tuple[Ledger, dict[str, int]],
                                                          data_dir: Path) -> None:
    ledger, ids = rich
    items = members(export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir).data)
    names = {i.filename for i, _ in items}
    for must in ("data/artifacts/", "data/replays/", "data/provenance.json", "data/artifacts.json",
                 "data/artifacts-missing.json", "data/replays-missing.json"):
        assert any(n.startswith(f"{ROOT}/{must}") for n in names), must
    for k, (info, content) in enumerate(items):
        for pos in sorted({0, len(content) // 2, len(content) - 1}):
            flipped = bytearray(content)
            flipped[pos] ^= 0x01  # the smallest change: one bit
            tampered = rezip(items[:k] + [(info, bytes(flipped))] + items[k + 1:])
            assert not verify_bundle(tampered, vkeys(ledger)).ok, f"{info.filename} byte {pos} flip went unnoticed"


def test_reordered_dropped_and_added_files_are_detected(rich: tuple[Ledger, dict[str, int]], data_dir: Path) -> None:
    ledger, ids = rich
    items = members(export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir).data)
    assert verify_bundle(rezip(items), vkeys(ledger)).ok  # re-zipping unchanged members is fine
    assert not verify_bundle(rezip(items[1:2] + items[:1] + items[2:]), vkeys(ledger)).ok
    for k in range(len(items)):
        assert not verify_bundle(rezip(items[:k] + items[k + 1:]), vkeys(ledger)).ok, items[k][0].filename
    for extra in (f"{ROOT}/data/records/000000000099.json", f"{ROOT}/data/zz.txt", f"{ROOT}/zz.txt",
                  f"{ROOT}/data/artifacts/{hashlib.sha256(b'{}').hexdigest()}",
                  f"{ROOT}/data/replays/{hashlib.sha256(b'{}').hexdigest()}.json"):
        info = zipfile.ZipInfo(extra, date_time=(1980, 1, 1, 0, 0, 0))
        added = sorted(items + [(info, b"{}")], key=lambda x: x[0].filename)
        assert not verify_bundle(rezip(added), vkeys(ledger)).ok, extra


def test_crafted_content_is_a_finding_not_a_crash(rich: tuple[Ledger, dict[str, int]], data_dir: Path) -> None:
    ledger, ids = rich
    b = export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir)
    items = members(b.data)
    for k, (info, _) in enumerate(items):
        for junk in (b"[]", b"not json", b'{"text": []}'):
            report = verify_bundle(rezip(items[:k] + [(info, junk)] + items[k + 1:]), vkeys(ledger))
            assert not report.ok, info.filename
    clash = zipfile.ZipInfo(f"{ROOT}/data/records", date_time=(1980, 1, 1, 0, 0, 0))
    report = verify_bundle(rezip(sorted(items + [(clash, b"x")], key=lambda x: x[0].filename)), vkeys(ledger))
    assert not report.ok
    # junk in the derived files, re-signed: each is its check's failure, never an exception
    original = files_of(b.data)
    for name in ("data/custody-log.json", "data/artifacts.json", "data/artifacts-missing.json",
                 "data/replays-missing.json", "data/provenance.json"):
        for junk in (b"[]\n", b"{}\n", b'[{"id": "x", "sha256": 1, "record": []}]\n', b"not json"):
            if junk == original[name]:
                continue  # e.g. an empty custody log is this case's true log
            report = verify_bundle(resigned(ledger, b, lambda p, n=name, j=junk: p.__setitem__(n, j)), vkeys(ledger))
            assert not report.ok, (name, junk)
            assert all(n != "structure" for n, _, _ in report.checks), (name, junk, report.as_dict())


def test_cli_verifies_offline_without_network_or_database(rich: tuple[Ledger, dict[str, int]], data_dir: Path,
                                                          tmp_path: Path) -> None:
    ledger, ids = rich
    bundle = tmp_path / "b.zip"
    bundle.write_bytes(export_bundle(ledger, "c", [ids["output"]], data_dir=data_dir).data)
    env = {"PATH": "/usr/bin:/bin", "CUSTODY_DATABASE_URL": "postgresql+psycopg://nobody@203.0.113.1/none",
           "CUSTODY_DATA_DIR": str(tmp_path / "nothing-here")}
    cmd = [sys.executable, "-m", "api.cli", "verify-bundle", str(bundle), "--key", ledger.keyring.active.vkey]
    unshare = shutil.which("unshare")
    assert unshare, "util-linux unshare is needed to test with networking off"
    p = subprocess.run([unshare, "-n", *cmd], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "bundle verifies" in p.stdout and "FAIL" not in p.stdout
    for check in ("artifacts", "replay reports", "provenance", "custody log"):
        assert f"PASS  {check}:" in p.stdout, check
    bundle.write_bytes(bundle.read_bytes()[:-10])
    p = subprocess.run([unshare, "-n", *cmd], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 5 and "Traceback" not in p.stderr


def test_a_truncated_trace_is_not_exported_as_a_case(case: Ledger, data_dir: Path) -> None:
    orig = case.trace
    case.trace = lambda rid, **kw: orig(rid, max_nodes=3)  # type: ignore[method-assign]
    with pytest.raises(InvalidInput, match="trace limit"):
        export_bundle(case, "c", [8], data_dir=data_dir)


def test_cli_export_with_and_without_artifact_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli import main

    for var in ("CUSTODY_DATABASE_URL", "CUSTODY_KEY_DIR", "CUSTODY_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    d = tmp_path / "ledger"
    assert main(["init", "--data-dir", str(d), "--origin", "custody.test/cli"]) == 0
    sha = artifact_store_for(d).put(OUTPUT)
    batch = tmp_path / "b.jsonl"
    batch.write_text(json.dumps({"kind": "artifact", "producer": "svc:x", "produced_at": "2025-12-30T10:00:00Z",
                                 "body": {"sha256": sha, "media_type": "image/png", "size": len(OUTPUT),
                                          "storage_ref": ref_for(sha)}}) + "\n")
    assert main(["append", str(batch), "--data-dir", str(d), "--json"]) == 0
    outs = {}
    for flag in ([], ["--hashes-only"]):
        out = tmp_path / f"b{len(flag)}.zip"
        capsys.readouterr()
        assert main(["export", "case-1", "--record", "0", "--out", str(out), "--purpose", "court order",
                     "--data-dir", str(d), "--json", *flag]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["hashes_only"] is bool(flag)
        assert info["artifacts"] == ({"included": 0, "withheld": 1, "missing": 0} if flag
                                     else {"included": 1, "withheld": 0, "missing": 0})
        outs[bool(flag)] = files_of(out.read_bytes())
        assert main(["verify-bundle", str(out), "--key", info["vkey"]]) == 0
    assert outs[False][f"data/artifacts/{sha}"] == OUTPUT
    assert not any(n.startswith("data/artifacts/") for n in outs[True])
