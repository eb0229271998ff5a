"""The evidence bundle's format: layout, packing, and the files derived from the records.

Shared by the exporter (:mod:`ledger.evidence`) and the offline verifier
(:mod:`ledger.bundle_verify`). Every *derived* file — the custody log, the artifact index and the
provenance summary — is computed here by one pure function of the bundle's records, so the verifier
recomputes it from the records it has proven and compares bytes: a derived file can say nothing the
signed records do not.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Mapping
from typing import Any

from ledger.keys import NoteSigner, sign_note
from ledger.records import canonical_json

FORMAT = "custody-bundle/v2"
ROOT = "custody-bundle"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
SIGNED_TAG_FILES = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt")
TAG_FILES = SIGNED_TAG_FILES + ("bundle-signature.txt", "tagmanifest-sha256.txt", "tagmanifest-sha512.txt")
BAGIT_TXT = b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n"
MAX_BUNDLE_FILES = 200_000
MAX_UNCOMPRESSED = 4 << 30

# Payload files every bundle has (the rest are per record, per artifact, per replay report).
REQUIRED_DATA = ("data/README.txt", "data/checkpoint.txt", "data/earlier-checkpoint.txt", "data/consistency.json",
                 "data/keys.txt", "data/trace.json", "data/custody-log.json", "data/artifacts.json",
                 "data/artifacts-missing.json", "data/replays-missing.json", "data/provenance.json")
ARTIFACT_DIR = "data/artifacts/"
REPLAY_DIR = "data/replays/"
# The first line of a replay report's signed note. Must equal ``sandbox.report.NOTE_HEADER`` (a test
# checks); defined here so the verifier does not import the sandbox.
REPLAY_NOTE_HEADER = "custody.replay-report/v1"
# bag-info values for the artifacts' bytes (the bag-info is covered by the bundle's signature)
BYTES_INCLUDED = "included"
BYTES_WITHHELD = "withheld (hashes only)"

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def record_name(idx: int) -> str:
    return f"{idx:012d}.json"


def json_file(obj: Any) -> bytes:
    """A JSON file in the bundle: RFC 8785 canonical JSON and a newline."""
    return canonical_json(obj) + b"\n"


def manifest(files: Mapping[str, bytes], alg: str) -> bytes:
    return "".join(f"{hashlib.new(alg, files[p]).hexdigest()}  {p}\n" for p in sorted(files)).encode()


def signed_text(case_id: str, tag: Mapping[str, bytes]) -> str:
    lines = [FORMAT, f"case {case_id}"] + [f"{n} {hashlib.sha256(tag[n]).hexdigest()}" for n in SIGNED_TAG_FILES]
    return "\n".join(lines) + "\n"


def replay_note_text(origin: str, sha256: str) -> str:
    """The text sandbox.replay signs for a stored report."""
    return f"{REPLAY_NOTE_HEADER}\n{origin}\nsha256:{sha256}\n"


def parse_bag_info(raw: bytes) -> dict[str, str]:
    """``Label: value`` lines (RFC 8493 §2.2.2; an export writes no continuation lines)."""
    out: dict[str, str] = {}
    for line in raw.decode("utf-8").splitlines():
        label, sep, value = line.partition(": ")
        if not sep or label in out:
            raise ValueError(f"bag-info.txt: malformed or repeated line {line[:80]!r}")
        out[label] = value
    return out


def pack(payload: Mapping[str, bytes], bag_info: Mapping[str, str], case_id: str, signer: NoteSigner) -> bytes:
    """The bag as a zip: payload + tag files, manifests signed by ``signer``; deterministic bytes
    (sorted members, fixed timestamps and permissions)."""
    oxum = f"{sum(len(b) for b in payload.values())}.{len(payload)}"
    info = "".join(f"{k}: {v}\n" for k, v in {**bag_info, "Payload-Oxum": oxum}.items()).encode()
    tag = {"bagit.txt": BAGIT_TXT, "bag-info.txt": info,
           "manifest-sha256.txt": manifest(payload, "sha256"), "manifest-sha512.txt": manifest(payload, "sha512")}
    tag["bundle-signature.txt"] = sign_note(signed_text(case_id, tag), [signer]).encode()
    tagged = dict(tag)
    tag["tagmanifest-sha256.txt"] = manifest(tagged, "sha256")
    tag["tagmanifest-sha512.txt"] = manifest(tagged, "sha512")
    members = {**payload, **tag}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(members):
            zi = zipfile.ZipInfo(f"{ROOT}/{name}", date_time=ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zi.create_system = 3
            z.writestr(zi, members[name])
    return buf.getvalue()


# --- files derived from the records (records: ledger index → the record's leaf document) ------------


def custody_log(records: Mapping[int, dict[str, Any]], case_id: str) -> list[dict[str, Any]]:
    """Every ``access`` record of the case among ``records``, in index order."""
    return [{"id": i, "ledger_time": d["ledger_time"], **d["body"]} for i, d in sorted(records.items())
            if d["kind"] == "access" and d["body"].get("case_id") == case_id]


def artifact_index(records: Mapping[int, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """SHA-256 → the artifact records that name those bytes (id, media type, size), in index order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i, d in sorted(records.items()):
        if d["kind"] == "artifact":
            b = d["body"]
            out.setdefault(b["sha256"], []).append({"id": i, "media_type": b["media_type"], "size": b["size"]})
    return dict(sorted(out.items()))


def artifacts_file(index: Mapping[str, list[dict[str, Any]]], status: Mapping[str, str]) -> list[dict[str, Any]]:
    """``data/artifacts.json``: each artifact's records and whether its bytes are in the bundle."""
    return [{"sha256": sha, "records": recs, "bytes": status[sha],
             "file": f"{ARTIFACT_DIR}{sha}" if status[sha] == "included" else None} for sha, recs in index.items()]


def _prefixed(signals: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in sorted(signals.items()) if k.startswith(prefix)}


def provenance(records: Mapping[int, dict[str, Any]], case_id: str) -> dict[str, Any]:
    """``data/provenance.json``: per output artifact of the case, what was embedded (the artifact
    record's ``watermark_payload`` and ``c2pa_manifest``) and what the analysis stage found in the
    marked bytes (``watermark.*``, ``c2pa.*``, ``provenance.*`` signals of each ``safety_decision``
    with ``stage: analysis`` that links to it). Output artifacts: those an analysis decision names,
    and those recorded with ``role: output``."""
    decisions: dict[int, list[int]] = {}
    for i, d in sorted(records.items()):
        if d["kind"] == "safety_decision" and d["body"].get("stage") == "analysis":
            for ln in d.get("links", []):
                target = records.get(ln["id"])
                if ln["rel"] == "artifact" and target is not None and target["kind"] == "artifact":
                    decisions.setdefault(ln["id"], [])
                    if i not in decisions[ln["id"]]:
                        decisions[ln["id"]].append(i)
    outputs = sorted(set(decisions) | {i for i, d in records.items()
                                       if d["kind"] == "artifact" and d["body"].get("role") == "output"})
    entries = []
    for a in outputs:
        body = records[a]["body"]
        embedded = body.get("watermark_payload")
        findings = []
        for dec in decisions.get(a, []):
            db = records[dec]["body"]
            signals = db.get("signals") if isinstance(db.get("signals"), dict) else {}
            wm = _prefixed(signals, "watermark.")
            findings.append({"decision": dec, "action": db.get("action"), "watermark": wm,
                             "c2pa": _prefixed(signals, "c2pa."), "provenance": _prefixed(signals, "provenance."),
                             "watermark_matches_embedded": (None if embedded is None or not wm.get("checked")
                                                            else wm.get("payload") == embedded)})
        entries.append({"artifact": a, "sha256": body["sha256"], "role": body.get("role"),
                        "embedded": {"watermark_payload": embedded, "c2pa_manifest": body.get("c2pa_manifest")},
                        "findings": findings})
    return {"case_id": case_id, "artifacts": entries}


def replay_reports(records: Mapping[int, dict[str, Any]]) -> dict[int, str]:
    """``replay_report`` record id → the report's SHA-256."""
    return {i: d["body"]["report_sha256"] for i, d in sorted(records.items()) if d["kind"] == "replay_report"}
