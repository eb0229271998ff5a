"""The replay report: canonical JSON, stored content-addressed, signed, appended; and reading it back.

The report is canonical JSON (``ledger.records.canonical_json``) stored as
``<data dir>/replays/<sha256>.json``; a signed note over its SHA-256 by the ledger's key
(``<sha256>.note`` beside it, and in the record) whose first line is :data:`NOTE_HEADER` (never a
checkpoint origin); appended as a ``replay_report`` linked to every input (``replayed`` → what was
replayed, ``recorded_decision`` → safety decisions, ``evidence`` → the rest).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.errors import InvalidInput, NotFound, VerificationError
from ledger.keys import open_note, sign_note
from ledger.records import Kind, canonical_json, parse_json
from ledger.service import LEDGER_PRODUCER, Ledger, now_rfc3339

REPORT_TYPE = "custody.replay-report/v1"
NOTE_HEADER = "custody.replay-report/v1"  # first line of the signed note: never a checkpoint origin
REL = {"prompt": "replayed", "artifact": "replayed", "generation": "replayed",
       "recorded_decision": "recorded_decision", "evidence": "evidence"}


def prompt_summary(decision: dict[str, Any] | None, error: dict[str, Any] | None, label: str) -> dict[str, Any]:
    if decision is None:
        return {"policy": label, "action": None, "error": error}
    return {"policy": label, "action": decision["action"], "escalate": decision["escalate"],
            "policy_id": decision["policy_id"], "policy_version": decision["policy_version"],
            "policy_sha256": decision["policy_sha256"], "stage_version": decision["stage_version"],
            "prompt_sha256": decision["prompt_sha256"], "prompt_chars": decision["prompt_chars"],
            "flagged": sorted(c["category"] for c in decision["categories"] if c["action"] != "allow"),
            "risk": {c["category"]: c["risk"] for c in decision["categories"] if c["risk"] > 0},
            "matched_rules": [{k: m[k] for k in ("rule_id", "category", "weight", "scope")}
                              for m in decision["matched_rules"]],
            "normalisation_flags": decision["normalisation_flags"], "masks_applied": decision["masks_applied"]}



def store_report(data_dir: Path, report: dict[str, Any], ledger: Ledger) -> tuple[bytes, str, str]:
    raw = canonical_json(report)
    sha = hashlib.sha256(raw).hexdigest()
    note = sign_note(f"{NOTE_HEADER}\n{ledger.config.origin}\nsha256:{sha}\n", [ledger.keyring.signer()])
    folder = Path(data_dir) / "replays"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ((f"{sha}.json", raw), (f"{sha}.note", note.encode())):
        path = folder / name
        if not path.exists():
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(content)
            os.replace(tmp, path)
    return raw, sha, note


def append_report(ledger: Ledger, report: dict[str, Any], sha: str, note: str,
                   roles: dict[int, str], in_ledger: set[int]) -> dict[str, Any]:
    body = {"report_sha256": sha, "report_type": REPORT_TYPE, "mode": report["mode"], "status": report["status"],
            "target": report["target"], "chain": report["chain"], "backend": report["runner"].get("backend"),
            "isolation_weaker": report["runner"].get("isolation", {}).get("weaker"),
            "image_id": report["runner"].get("image_id"), "checkpoint_size": report["checkpoint"].get("size"),
            "prompts": len([i for i, r in roles.items() if r == "prompt"]),
            "artifacts": len([i for i, r in roles.items() if r == "artifact"]),
            "generations": len([i for i, r in roles.items() if r == "generation"]),
            "quarantined": sorted({s["quarantine"] for s in report["steps"] if s.get("quarantine")}),
            "differences": len(report["differences"]),
            "findings": sorted({f["code"] for f in report["findings"]}),
            "errors": sum(1 for f in report["findings"] if f["severity"] == "error"),
            "signature": note}
    links = [{"rel": REL[roles[i]], "id": i} for i in sorted(roles) if i in in_ledger]
    a = ledger.append([{"kind": Kind.REPLAY_REPORT.value, "producer": LEDGER_PRODUCER, "produced_at": now_rfc3339(),
                        "links": links, "body": body}])[0]
    return a.as_dict()


# --- show ------------------------------------------------------------------------------------------

def show(ledger: Ledger, report_id: int, *, data_dir: Path) -> dict[str, Any]:
    """Load replay report ``report_id`` and check it: the record's inclusion in the latest checkpoint,
    the stored file's SHA-256 against the record's ``report_sha256`` and the signed note (the ledger's
    verifiers; its text must name that SHA-256). Raises VerificationError if any check fails."""
    got = ledger.get(report_id, proof=True)
    rec = got["record"]
    if rec["kind"] != Kind.REPLAY_REPORT.value:
        raise InvalidInput(f"record {report_id} is a {rec['kind']!r}, not a replay_report")
    checks: dict[str, Any] = {}
    inc = got["inclusion"]
    cp_note = inc.get("checkpoint")
    if cp_note is None:
        raise VerificationError(f"no signed checkpoint covers record {report_id}")
    cp = Checkpoint.parse(open_note(cp_note, ledger.keyring.verifiers).text)
    merkle.verify_inclusion(bytes.fromhex(got["leaf_hash"]), report_id, cp.size, [bytes.fromhex(h) for h in inc["proof"]], cp.root)
    with ledger.store.read() as r:
        data = r.entry(report_id).data
    if merkle.leaf_hash(data).hex() != got["leaf_hash"]:
        raise VerificationError(f"record {report_id}'s stored bytes are not its leaf")
    checks["inclusion"] = f"verified against checkpoint size {cp.size}"
    sha = rec["body"]["report_sha256"]
    path = Path(data_dir) / "replays" / f"{sha}.json"
    if not path.exists():
        raise NotFound(f"the report file {path} is missing")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != sha:
        raise VerificationError(f"{path} does not hash to the recorded {sha}: the report file was altered")
    checks["sha256"] = "matches the record"
    note = rec["body"].get("signature")
    if not note:
        note_path = path.with_suffix(".note")
        note = note_path.read_text() if note_path.exists() else None
    if not note:
        raise VerificationError(f"replay report {report_id} carries no signature")
    opened = open_note(note, ledger.keyring.verifiers)
    if opened.text != f"{NOTE_HEADER}\n{ledger.config.origin}\nsha256:{sha}\n":
        raise VerificationError("the signature's text does not name this report")
    checks["signature"] = "verified by " + ", ".join(f"{n}+{k}" for n, k in opened.verified)
    report = parse_json(raw, what=str(path))
    return {"id": report_id, "report_sha256": sha, "path": str(path), "checks": checks, "report": report}


__all__ = ["NOTE_HEADER", "REPORT_TYPE", "append_report", "prompt_summary", "show", "store_report"]
