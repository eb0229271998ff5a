"""The offline verifier of evidence bundles: bytes and verifier keys in, PASS/FAIL per check out.

Pure: no database, no network, no clock. :func:`verify_bundle` never raises on a bundle's content —
a malformed or crafted file is a failed check, not a crash. Checks, in order: the zip (sorted, unique,
export timestamps), the BagIt layout and the files the format defines, both payload manifests and
tag manifests byte-exact, the ``bagit`` library as a second opinion (full checksums), the signature
over the bag, bag-info's claims, the checkpoint and the consistency proof, every record's leaf hash
and inclusion proof, links, disclosures, the trace graph, the custody log, the artifacts' bytes, the
replay reports and their signed notes, and the provenance summary. Derived files are recomputed from
the proven records (:mod:`ledger.bundle_format`) and compared byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ledger import merkle
from ledger.bundle_format import (
    ARTIFACT_DIR,
    BYTES_INCLUDED,
    BYTES_WITHHELD,
    FORMAT,
    MAX_BUNDLE_FILES,
    MAX_UNCOMPRESSED,
    REPLAY_DIR,
    REQUIRED_DATA,
    ROOT,
    SHA256_HEX,
    SIGNED_TAG_FILES,
    TAG_FILES,
    ZIP_TIME,
    artifact_index,
    artifacts_file,
    custody_log,
    json_file,
    manifest,
    parse_bag_info,
    provenance,
    record_name,
    replay_note_text,
    replay_reports,
    signed_text,
)
from ledger.checkpoint import Checkpoint
from ledger.errors import CustodyError, FormatError, InvalidInput
from ledger.keys import NoteVerifier, open_note
from ledger.records import canonical_json, parse_json
from ledger.sealing import check_disclosure

# Payload paths the format defines besides REQUIRED_DATA.
_PER_ITEM = re.compile(r"^data/(records|proofs|disclosures)/\d{12}\.json$|^data/artifacts/[0-9a-f]{64}$"
                       r"|^data/replays/[0-9a-f]{64}\.(json|note)$")
_CONTENT_ERRORS = (CustodyError, KeyError, ValueError, TypeError, AttributeError, IndexError, OSError)


@dataclass
class BundleReport:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    case_id: str | None = None
    records: int = 0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        return ok

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "case_id": self.case_id, "records": self.records,
                "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in self.checks]}


@dataclass
class _Proven:
    """What the later checks build on: the signed checkpoint and the records with verified proofs."""

    files: dict[str, bytes]
    payload: dict[str, bytes]
    verifiers: list[NoteVerifier]
    case_id: str
    bag_info: dict[str, str]
    cp: Checkpoint
    records: dict[int, dict[str, Any]]


def _read_zip(data: bytes, report: BundleReport) -> dict[str, bytes] | None:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        report.add("zip", False, f"not a readable zip: {err}")
        return None
    names = [i.filename for i in infos]
    if len(infos) > MAX_BUNDLE_FILES or sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
        report.add("zip", False, "too many files or too large to be a bundle")
        return None
    if names != sorted(names) or len(set(names)) != len(names):
        report.add("zip", False, "members are reordered or duplicated (an export writes them sorted, once)")
        return None
    files: dict[str, bytes] = {}
    for info in infos:
        p = PurePosixPath(info.filename)
        if p.is_absolute() or ".." in p.parts or p.parts[0] != ROOT or info.is_dir():
            report.add("zip", False, f"unexpected member {info.filename!r}")
            return None
        if info.date_time != ZIP_TIME:
            report.add("zip", False, f"{info.filename}: timestamp differs from an export's")
            return None
        try:
            files[str(PurePosixPath(*p.parts[1:]))] = z.read(info)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as err:  # CRC error etc.
            report.add("zip", False, f"{info.filename}: {err}")
            return None
    report.add("zip", True, f"{len(files)} files under {ROOT}/")
    return files


def verify_bundle(data: bytes, vkeys: Sequence[str]) -> BundleReport:
    """Check a bundle completely; needs no database and no network, only the verifier key(s)."""
    report = BundleReport()
    try:
        verifiers = [NoteVerifier.from_vkey(v) for v in vkeys]
    except FormatError as err:
        report.add("key", False, str(err))
        return report
    if not verifiers:
        report.add("key", False, "give the ledger's verifier key (--key)")
        return report
    files = _read_zip(data, report)
    if files is None:
        return report
    try:
        proven = _verify_core(files, verifiers, report)
    except _CONTENT_ERRORS as err:  # malformed content: a finding, not a crash
        report.add("structure", False, f"{type(err).__name__}: {err}")
        return report
    if proven is None:
        return report
    for name, check in (("trace", _check_trace), ("custody log", _check_custody_log), ("artifacts", _check_artifacts),
                        ("replay reports", _check_replays), ("provenance", _check_provenance)):
        _guarded(report, name, check, proven)
    return report


def _guarded(report: BundleReport, name: str, check: Callable[[_Proven], tuple[bool, str]], proven: _Proven) -> None:
    try:
        ok, detail = check(proven)
    except _CONTENT_ERRORS as err:
        ok, detail = False, f"malformed: {type(err).__name__}: {err}"
    report.add(name, ok, detail)


def _verify_core(files: dict[str, bytes], verifiers: list[NoteVerifier], report: BundleReport) -> _Proven | None:
    payload = {n: b for n, b in files.items() if n.startswith("data/")}
    extra = sorted(set(files) - set(payload) - set(TAG_FILES))
    missing = sorted((set(TAG_FILES) | set(REQUIRED_DATA)) - set(files))
    unknown = sorted(n for n in payload if n not in REQUIRED_DATA and not _PER_ITEM.match(n))
    if not report.add("layout", not extra and not missing and not unknown,
                      f"unexpected {extra}" if extra else f"missing {missing}" if missing
                      else f"files the format does not define: {unknown[:5]}" if unknown else "BagIt layout"):
        return None
    # 1. payload ↔ manifests, byte-exact (an export writes canonical manifests)
    for alg in ("sha256", "sha512"):
        name = f"manifest-{alg}.txt"
        same = files[name] == manifest(payload, alg)
        report.add(name, same, "every payload file listed with its hash" if same
                   else "payload files and manifest disagree (a file changed, was added or removed)")
    tagged = {n: files[n] for n in SIGNED_TAG_FILES + ("bundle-signature.txt",)}
    for alg in ("sha256", "sha512"):
        name = f"tagmanifest-{alg}.txt"
        same = files[name] == manifest(tagged, alg)
        report.add(name, same, "tag files listed with their hashes" if same else "tag files and tag manifest disagree")
    report.add("bagit", *_bagit_second_opinion(files))
    # 2. the signature over the bag's description, and what bag-info claims
    try:
        text = open_note(files["bundle-signature.txt"], verifiers).text
        lines = text.rstrip("\n").split("\n")
        report.case_id = lines[1][5:] if len(lines) > 1 and lines[1].startswith("case ") else None
        ok = lines[0] == FORMAT and report.case_id is not None and text == signed_text(report.case_id, files)
        report.add("bundle signature", ok, f"case {report.case_id}" if ok else
                   f"not a {FORMAT} bundle" if lines[0] != FORMAT else "signed hashes do not match the files")
    except CustodyError as err:
        report.add("bundle signature", False, str(err))
    if report.case_id is None:
        return None
    # 3. the checkpoint and the earlier one
    try:
        cp = Checkpoint.parse(open_note(files["data/checkpoint.txt"], verifiers).text)
        report.add("checkpoint", True, f"{cp.origin} size {cp.size}")
    except CustodyError as err:
        report.add("checkpoint", False, str(err))
        return None
    info = parse_bag_info(files["bag-info.txt"])
    claims_ok = (info.get("External-Identifier") == report.case_id
                 and info.get("Custody-Checkpoint-Size") == str(cp.size)
                 and info.get("Custody-Log-Complete-To-Size") == str(cp.size)
                 and info.get("Custody-Redacted") in ("yes", "no")
                 and info.get("Custody-Artifact-Bytes") in (BYTES_INCLUDED, BYTES_WITHHELD))
    report.add("bag-info", claims_ok, f"case {report.case_id}, checkpoint size {cp.size}, artifact bytes "
               f"{info.get('Custody-Artifact-Bytes')}, redacted {info.get('Custody-Redacted')}" if claims_ok
               else "bag-info.txt does not describe this case, checkpoint and options")
    try:
        old = Checkpoint.parse(open_note(files["data/earlier-checkpoint.txt"], verifiers).text)
        c = parse_json(files["data/consistency.json"])
        proof = [bytes.fromhex(h) for h in c["proof"]]
        ok = (c["old_size"], c["new_size"], c["old_root"], c["new_root"]) == (old.size, cp.size, old.root.hex(),
                                                                              cp.root.hex())
        if ok:
            merkle.verify_consistency(old.size, cp.size, old.root, cp.root, proof)
        report.add("consistency", ok and old.origin == cp.origin,
                   f"size {old.size} → {cp.size}" if ok else "proof is not between the two signed checkpoints")
    except CustodyError as err:
        report.add("consistency", False, str(err))
    # 4. records, proofs, links, disclosures
    records: dict[int, dict[str, Any]] = {}
    leaves: dict[int, bytes] = {}
    bad: list[str] = []
    for name in sorted(n for n in payload if n.startswith("data/records/")):
        idx = int(PurePosixPath(name).stem)
        raw = payload[name]
        leaf = merkle.leaf_hash(raw)
        try:
            doc = parse_json(raw)
            if canonical_json(doc) != raw:
                raise FormatError("not canonical JSON")
            p = parse_json(payload[f"data/proofs/{record_name(idx)}"])
            if (p["index"], p["size"], p["leaf_hash"]) != (idx, cp.size, leaf.hex()):
                raise FormatError("proof is for another record or tree")
            merkle.verify_inclusion(leaf, idx, cp.size, [bytes.fromhex(h) for h in p["proof"]], cp.root)
        except (CustodyError, KeyError) as err:
            bad.append(f"record {idx}: {err}")
            continue
        records[idx], leaves[idx] = doc, leaf
    orphans = {int(PurePosixPath(n).stem) for n in payload if n.startswith("data/proofs/")} - set(records)
    bad += [f"proof {i} has no record" for i in sorted(orphans) if f"data/records/{record_name(i)}" not in payload]
    report.records = len(records)
    report.add("records and inclusion proofs", not bad and bool(records),
               "; ".join(bad[:5]) if bad else f"{len(records)} records in the signed tree")
    link_bad = [f"record {i} → {ln['id']}" for i, d in records.items() for ln in d.get("links", [])
                if ln["id"] in leaves and leaves[ln["id"]].hex() != ln["leaf"]]
    report.add("links", not link_bad, "; ".join(link_bad[:5]) or "links carry the linked records' leaf hashes")
    disc_bad = []
    for name in sorted(n for n in payload if n.startswith("data/disclosures/")):
        idx = int(PurePosixPath(name).stem)
        try:
            for fname, d in parse_json(payload[name]).items():
                check_disclosure(records[idx]["sealed"][fname], d["salt"], d["value"])
        except (CustodyError, KeyError) as err:
            disc_bad.append(f"record {idx}: {err}")
    report.add("disclosures", not disc_bad, "; ".join(disc_bad[:5]) or "disclosed values match their commitments")
    return _Proven(files, payload, verifiers, report.case_id, info, cp, records)


# --- the checks on what the proven records imply -----------------------------------------------------


def _check_trace(p: _Proven) -> tuple[bool, str]:
    trace = parse_json(p.payload["data/trace.json"])
    want_edges = sorted({(i, ln["id"], ln["rel"]) for i, d in p.records.items() for ln in d.get("links", [])
                         if ln["id"] in p.records})
    got_edges = sorted((e["src"], e["dst"], e["rel"]) for e in trace["edges"])
    ok = trace["records"] == sorted(p.records) and got_edges == want_edges and trace["case_id"] == p.case_id
    return ok, "graph matches the records' links" if ok else "graph differs from the records and their links"


def _check_custody_log(p: _Proven) -> tuple[bool, str]:
    """Each entry is a proven access record of this case, as recorded, in index order, and no access
    record of this case in the bundle is left out. (Completeness against the whole ledger is the
    exporter's signed claim; the verifier has no ledger to check it with.)"""
    raw = p.payload["data/custody-log.json"]
    log = parse_json(raw)
    if not isinstance(log, list):
        return False, "not a list of entries"
    ids = [e.get("id") if isinstance(e, dict) else None for e in log]
    problems = []
    for e, i in zip(log, ids, strict=True):
        if not isinstance(i, int) or i not in p.records:
            problems.append(f"entry {i!r} is not a record of the bundle with a verified inclusion proof")
        elif p.records[i]["kind"] != "access" or p.records[i]["body"].get("case_id") != p.case_id:
            problems.append(f"record {i} is not an access record of case {p.case_id}")
        elif e != custody_log({i: p.records[i]}, p.case_id)[0]:
            problems.append(f"entry {i} differs from its record")
    if all(isinstance(i, int) for i in ids) and ids != sorted(set(ids)):
        problems.append("entries are not in index order (or repeat)")
    want = custody_log(p.records, p.case_id)
    left_out = sorted({e["id"] for e in want} - {i for i in ids if isinstance(i, int)})
    if left_out:
        problems.append(f"access record(s) {left_out[:5]} of this case are in the bundle but not in the log")
    if not problems and raw != json_file(want):
        problems.append("not in the exporter's canonical form")
    if problems:
        return False, "; ".join(problems[:5])
    return True, (f"{len(log)} recorded accesses, each a proven access record of case {p.case_id}, in index "
                  f"order; complete below size {p.cp.size} by the exporter's signed claim")


def _listing(raw: bytes, what: str) -> list[dict[str, Any]]:
    """A list of objects, in the exporter's canonical form (so it has one byte string per meaning)."""
    items = parse_json(raw)
    if not isinstance(items, list) or not all(isinstance(m, dict) for m in items) or raw != json_file(items):
        raise FormatError(f"{what} is not a canonical JSON list of entries")
    return items


def _check_artifacts(p: _Proven) -> tuple[bool, str]:
    index = artifact_index(p.records)
    withheld = p.bag_info.get("Custody-Artifact-Bytes") == BYTES_WITHHELD
    present = {n[len(ARTIFACT_DIR):]: b for n, b in p.payload.items() if n.startswith(ARTIFACT_DIR)}
    problems = []
    for name, content in sorted(present.items()):
        if hashlib.sha256(content).hexdigest() != name:
            problems.append(f"{ARTIFACT_DIR}{name[:16]}… does not hash to its name")
        elif name not in index:
            problems.append(f"{ARTIFACT_DIR}{name[:16]}… is named by no artifact record in the bundle")
    if withheld and present:
        problems.append("bag-info says hashes only, but artifact bytes are inside")
    missing = _listing(p.payload["data/artifacts-missing.json"], "artifacts-missing.json")
    listed = [m["sha256"] for m in missing]
    if listed != sorted(set(listed)):
        problems.append("artifacts-missing.json is not sorted by sha256 or repeats an entry")
    for m in missing:
        if set(m) != {"sha256", "records", "reason"} or not isinstance(m["reason"], str) or not m["reason"]:
            problems.append(f"artifacts-missing.json: malformed entry for {str(m.get('sha256'))[:16]}…")
        elif m["sha256"] not in index or m["records"] != [r["id"] for r in index[m["sha256"]]]:
            problems.append(f"artifacts-missing.json names {m['sha256'][:16]}…, which the bundle's artifact "
                            f"records do not")
        elif m["sha256"] in present:
            problems.append(f"{m['sha256'][:16]}… is listed as missing but its bytes are inside")
    status: dict[str, str] = {}
    for sha in index:
        if sha in present:
            status[sha] = "included"
        elif sha in listed:
            status[sha] = "missing"
        elif withheld:
            status[sha] = "withheld"
        else:
            status[sha] = "absent"
            problems.append(f"artifact {sha[:16]}… (record {index[sha][0]['id']}): bytes neither inside nor "
                            f"listed as missing")
    if not problems and p.payload["data/artifacts.json"] != json_file(artifacts_file(index, status)):
        problems.append("artifacts.json differs from what the records and files imply")
    if problems:
        return False, "; ".join(problems[:5])
    counts = {s: sum(1 for v in status.values() if v == s) for s in ("included", "withheld", "missing")}
    return True, (f"{counts['included']} artifact file(s) hash to their names and to their records; "
                  f"{counts['withheld']} withheld (hashes only); {counts['missing']} missing, with reasons")


def _check_replays(p: _Proven) -> tuple[bool, str]:
    reports = replay_reports(p.records)
    present = {n[len(REPLAY_DIR):]: b for n, b in p.payload.items() if n.startswith(REPLAY_DIR)}
    named = set(reports.values())
    problems = [f"{REPLAY_DIR}{n[:16]}… is named by no replay_report record in the bundle"
                for n in sorted(present) if n.rsplit(".", 1)[0] not in named]
    missing = _listing(p.payload["data/replays-missing.json"], "replays-missing.json")
    missing_ids = [m["record"] for m in missing]
    if missing_ids != sorted(set(missing_ids)):
        problems.append("replays-missing.json is not sorted by record or repeats an entry")
    for m in missing:
        if (set(m) != {"record", "report_sha256", "reason"} or reports.get(m["record"]) != m["report_sha256"]
                or not isinstance(m["reason"], str) or not m["reason"]):
            problems.append(f"replays-missing.json: entry {m.get('record')!r} is not a replay_report record of the "
                            f"bundle with its report_sha256 and a reason")
    checked = 0
    for rid, sha in reports.items():
        report, note = present.get(f"{sha}.json"), present.get(f"{sha}.note")
        if not isinstance(sha, str) or not SHA256_HEX.match(sha):
            problems.append(f"record {rid}: report_sha256 is not a SHA-256")
            continue
        if report is None and note is None:
            if rid not in missing_ids:
                problems.append(f"record {rid}: report {sha[:16]}… neither inside nor listed as missing")
            continue
        if rid in missing_ids:
            problems.append(f"record {rid}: listed as missing, but the report is inside")
        if report is None or note is None:
            problems.append(f"record {rid}: the report and its signed note must travel together")
            continue
        if hashlib.sha256(report).hexdigest() != sha:
            problems.append(f"record {rid}: the report does not hash to its report_sha256")
            continue
        try:
            text = open_note(note, p.verifiers).text
        except CustodyError as err:
            problems.append(f"record {rid}: the report's signature does not verify with the given key(s): {err}")
            continue
        if text != replay_note_text(p.cp.origin, sha):
            problems.append(f"record {rid}: the signed note names another report or another log than "
                            f"{p.cp.origin}")
            continue
        in_record = p.records[rid]["body"].get("signature")
        if in_record is not None and (not isinstance(in_record, str) or in_record.encode() != note):
            problems.append(f"record {rid}: the note differs from the signature the record carries")
            continue
        checked += 1
    if problems:
        return False, "; ".join(problems[:5])
    return True, (f"{checked} report(s) hash to their records and carry verified signatures naming them and "
                  f"{p.cp.origin}; {len(missing)} missing, with reasons")


def _check_provenance(p: _Proven) -> tuple[bool, str]:
    want = provenance(p.records, p.case_id)
    ok = p.payload["data/provenance.json"] == json_file(want)
    return ok, (f"watermark and Content Credentials findings for {len(want['artifacts'])} output artifact(s) "
                f"equal what the records say" if ok else "provenance.json differs from what the records say")


def _bagit_second_opinion(files: dict[str, bytes]) -> tuple[bool, str]:
    """Validate with the ``bagit`` library (full checksums, never its size-only fast mode)."""
    import bagit

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / ROOT
        try:
            for name, data in files.items():
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        except OSError as err:  # e.g. a member that is both a file and a folder
            return False, f"bagit: the bag cannot be laid out on disk: {err}"
        try:
            bagit.Bag(str(root)).validate(fast=False)
        except (bagit.BagError, bagit.BagValidationError, OSError, UnicodeError) as err:
            return False, f"bagit: {str(err)[:300]}"
    return True, "bagit library validates the bag (full checksums)"


def read_bundle_file(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror}") from None


__all__ = ["BundleReport", "read_bundle_file", "verify_bundle"]
