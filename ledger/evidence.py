"""Evidence bundles: a case exported as a BagIt bag (RFC 8493) in a zip, and its offline verifier.

Layout (one root folder ``custody-bundle/`` in the zip)::

    bagit.txt  bag-info.txt  manifest-sha256.txt  manifest-sha512.txt
    bundle-signature.txt       signed note over the hashes of the four files above
    tagmanifest-sha256.txt  tagmanifest-sha512.txt
    data/README.txt            for the court: what is inside, how to check it by hand
    data/checkpoint.txt        the signed checkpoint every proof is against
    data/consistency.json      proof from an earlier signed checkpoint (data/earlier-checkpoint.txt)
    data/keys.txt              the ledger's verifier keys (informational: trust the one you were given)
    data/records/N.json        each record's leaf bytes (RFC 8785 canonical JSON), N zero-padded
    data/proofs/N.json         its RFC 9162 inclusion proof against data/checkpoint.txt
    data/disclosures/N.json    sealed values with their salts (left out of a redacted bundle)
    data/trace.json            the case's graph: record ids and links
    data/custody-log.json      the `access` records of this case up to the checkpoint

Exports are deterministic: the same case at the same checkpoint gives the same bytes (sorted
members, fixed zip timestamps, canonical JSON, Bagging-Date = the checkpoint's date). That is why
the log of *this* export is not inside the bundle: the exporter's `access` record, which names the
bundle's SHA-256, is appended to the ledger, and the next bundle of the case carries it.

We write the bag ourselves rather than with ``bagit.make_bag``: that function changes the
process's working directory (unsafe in a threaded server) and stamps today's date (which would
break byte-identical exports). The verifier uses ``bagit`` to validate, as a second opinion to
its own byte-exact checks, so an independent implementation looks at every bundle.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.errors import CustodyError, FormatError, InvalidInput, NotFound, SubjectErased
from ledger.keys import NoteVerifier, open_note, sign_note
from ledger.records import canonical_json, parse_json
from ledger.sealing import check_disclosure

FORMAT = "custody-bundle/v1"
ROOT = "custody-bundle"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
SIGNED_TAG_FILES = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt")
TAG_FILES = SIGNED_TAG_FILES + ("bundle-signature.txt", "tagmanifest-sha256.txt", "tagmanifest-sha512.txt")
BAGIT_TXT = b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n"
MAX_BUNDLE_FILES = 200_000
MAX_UNCOMPRESSED = 4 << 30


def _name(idx: int) -> str:
    return f"{idx:012d}.json"


def _json(obj: Any) -> bytes:
    return canonical_json(obj) + b"\n"


def _manifest(files: dict[str, bytes], alg: str) -> bytes:
    return "".join(f"{hashlib.new(alg, files[p]).hexdigest()}  {p}\n" for p in sorted(files)).encode()


def _signed_text(case_id: str, tag: dict[str, bytes]) -> str:
    lines = [FORMAT, f"case {case_id}"] + [f"{n} {hashlib.sha256(tag[n]).hexdigest()}" for n in SIGNED_TAG_FILES]
    return "\n".join(lines) + "\n"


# --- export ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    case_id: str
    checkpoint_size: int
    record_ids: list[int]
    redacted: bool


def export_bundle(ledger: Any, case_id: str, record_ids: Sequence[int], *, earlier_size: int | None = None,
                  redact: bool = False, tool_version: str = "custody-ledger") -> Bundle:
    """Build the case's bundle at the latest checkpoint. ``ledger`` is a ``ledger.service.Ledger``.

    The case is the union of the traces of ``record_ids`` (records beyond the checkpoint left out).
    """
    if not record_ids:
        raise InvalidInput("name at least one record for the case")
    cp = ledger.latest_checkpoint()
    if cp is None or cp.size == 0:
        raise NotFound("no checkpoint covers any record yet (run `custody checkpoint`)")
    ids: set[int] = set()
    edges: list[dict[str, Any]] = []
    for rid in record_ids:
        if rid >= cp.size:
            raise InvalidInput(f"record {rid} is not covered by the latest checkpoint (size {cp.size})")
        t = ledger.trace(rid).as_dict()
        if t["truncated"]:
            raise InvalidInput(f"the chain of record {rid} has more than the trace limit of records; "
                               f"name narrower records for the case")
        ids |= {n["id"] for n in t["nodes"] if n["id"] < cp.size}
        edges += t["edges"]
    ids_sorted = sorted(ids)
    edges = sorted({(e["src"], e["dst"], e["rel"]) for e in edges if e["src"] in ids and e["dst"] in ids})

    cps = ledger.checkpoints()
    if earlier_size is None:
        earlier = next((c for c in cps if 0 < c.size <= cp.size), cp)
    else:
        match = [c for c in cps if c.size == earlier_size]
        if not match or earlier_size > cp.size:
            raise InvalidInput(f"no checkpoint of size {earlier_size} at or before the latest (size {cp.size})")
        earlier = match[0]

    files: dict[str, bytes] = {"data/checkpoint.txt": cp.note.encode(),
                               "data/earlier-checkpoint.txt": earlier.note.encode(),
                               "data/keys.txt": "".join(v.vkey + "\n" for v in ledger.keyring.verifiers).encode()}
    consistency = ledger.prove_consistency(earlier.size, cp.size)
    files["data/consistency.json"] = _json(consistency)
    custody_log = []
    for i in ids_sorted:
        rec = ledger.get(i)
        with ledger.store.read() as r:
            data = r.entry(i).data
        files[f"data/records/{_name(i)}"] = data
        p = ledger.prove_inclusion(i, cp.size)
        files[f"data/proofs/{_name(i)}"] = _json({k: p[k] for k in ("index", "size", "leaf_hash", "proof")})
        doc = rec["record"]
        if doc["kind"] == "access" and doc["body"].get("case_id") == case_id:
            custody_log.append({"id": i, "ledger_time": doc["ledger_time"], **doc["body"]})
        if doc.get("sealed") and not redact:
            try:
                files[f"data/disclosures/{_name(i)}"] = _json(ledger.reveal(i))
            except SubjectErased:
                pass  # crypto-shredded: the commitment stays, the value is gone for everyone
    files["data/trace.json"] = _json({"case_id": case_id, "records": ids_sorted,
                                      "edges": [{"src": s, "dst": d, "rel": r} for s, d, r in edges]})
    files["data/custody-log.json"] = _json(custody_log)
    files["data/README.txt"] = _readme(case_id, cp, earlier, len(ids_sorted), redact).encode()

    payload = files
    oxum = f"{sum(len(b) for b in payload.values())}.{len(payload)}"
    bag_info = (f"Bag-Software-Agent: {tool_version}\nBagging-Date: {cp.created_at[:10]}\n"
                f"External-Identifier: {case_id}\nCustody-Checkpoint-Size: {cp.size}\n"
                f"Custody-Redacted: {'yes' if redact else 'no'}\nPayload-Oxum: {oxum}\n").encode()
    tag = {"bagit.txt": BAGIT_TXT, "bag-info.txt": bag_info,
           "manifest-sha256.txt": _manifest(payload, "sha256"), "manifest-sha512.txt": _manifest(payload, "sha512")}
    tag["bundle-signature.txt"] = sign_note(_signed_text(case_id, tag), [ledger.keyring.signer()]).encode()
    tagged = {n: tag[n] for n in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt",
                                  "bundle-signature.txt")}
    tag["tagmanifest-sha256.txt"] = _manifest(tagged, "sha256")
    tag["tagmanifest-sha512.txt"] = _manifest(tagged, "sha512")

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted({**payload, **tag}):
            info = zipfile.ZipInfo(f"{ROOT}/{name}", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            z.writestr(info, {**payload, **tag}[name])
    data = buf.getvalue()
    return Bundle(data, hashlib.sha256(data).hexdigest(), case_id, cp.size, ids_sorted, redact)


def record_export(ledger: Any, case_id: str, record_ids: Sequence[int], *, actor: str, role: str, purpose: str,
                  earlier_size: int | None = None, redact: bool = False) -> tuple[Bundle, Any]:
    """Export, then append the export's `access` record (naming the bundle's hash) to the ledger."""
    from ledger.service import now_rfc3339

    bundle = export_bundle(ledger, case_id, record_ids, earlier_size=earlier_size, redact=redact)
    [receipt] = ledger.append([{
        "kind": "access", "producer": "custody", "produced_at": now_rfc3339(),
        "links": [{"rel": "exported", "id": i} for i in sorted(set(record_ids))[:1000]],
        "body": {"actor": actor, "role": role, "action": "export", "case_id": case_id, "purpose": purpose,
                 "bundle_sha256": bundle.sha256, "checkpoint_size": bundle.checkpoint_size,
                 "records": len(bundle.record_ids), "redacted": redact}}], trusted=True)
    return bundle, receipt


def _readme(case_id: str, cp: Any, earlier: Any, n: int, redact: bool) -> str:
    return f"""Custody evidence bundle — case {case_id}

This is a BagIt bag (RFC 8493) of {n} records from a Custody ledger, an append-only Merkle log
(RFC 9162). Everything here can be checked without the ledger, its database or its operator;
you need only the ledger's verifier key, obtained independently of this bundle.

Check it with the verifier:   custody verify-bundle BUNDLE.zip --key 'VERIFIER KEY'

Or by hand:
1. Every payload file's SHA-256 is listed in manifest-sha256.txt (sha256sum -c manifest-sha256.txt).
2. bundle-signature.txt is a signed note (C2SP signed-note, Ed25519) over the SHA-256 of bagit.txt,
   bag-info.txt and both payload manifests; checked with the verifier key.
3. data/checkpoint.txt is the log's signed tree head (C2SP tlog-checkpoint): origin, tree size
   ({cp.size}) and root hash, signed with the same key.
4. Each record's leaf hash is SHA-256 of the byte 0x00 followed by the bytes of data/records/N.json;
   data/proofs/N.json is its inclusion proof (RFC 9162 section 2.1.3.2) up to that root.
5. data/consistency.json proves the tree of data/earlier-checkpoint.txt (size {earlier.size}) is a
   prefix of the current one (RFC 9162 section 2.1.4.2): the log was not rewritten in between.
6. In records, "sealed" holds SHA-256("custody-seal-v1" 0x00 || salt || canonical JSON of the value)
   for each sensitive field. {"This bundle is redacted: values are not included." if redact else
   "data/disclosures/N.json gives each value and its salt so the commitment can be recomputed."}
7. Each link in a record carries the linked record's leaf hash.

data/custody-log.json lists the recorded accesses to this case up to the checkpoint. The export
that produced this file is itself recorded in the ledger, with this bundle's SHA-256.
"""


# --- verification (pure: bytes and keys in, findings out) ----------------------------------------


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
        _verify_files(files, verifiers, report)
    except (CustodyError, KeyError, ValueError, TypeError, AttributeError, IndexError, OSError) as err:
        # malformed content: a finding, not a crash
        report.add("structure", False, f"{type(err).__name__}: {err}")
    return report


def _verify_files(files: dict[str, bytes], verifiers: list[NoteVerifier], report: BundleReport) -> None:
    payload = {n: b for n, b in files.items() if n.startswith("data/")}
    extra = sorted(set(files) - set(payload) - set(TAG_FILES))
    missing_tags = sorted(set(TAG_FILES) - set(files))
    if not report.add("layout", not extra and not missing_tags,
                      f"unexpected {extra}" if extra else f"missing {missing_tags}" if missing_tags else "BagIt layout"):
        return
    # 1. payload ↔ manifests, byte-exact (an export writes canonical manifests)
    for alg in ("sha256", "sha512"):
        name = f"manifest-{alg}.txt"
        report.add(name, files[name] == _manifest(payload, alg),
                   "every payload file listed with its hash" if files[name] == _manifest(payload, alg)
                   else "payload files and manifest disagree (a file changed, was added or removed)")
    tagged = {n: files[n] for n in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt",
                                    "bundle-signature.txt")}
    for alg in ("sha256", "sha512"):
        name = f"tagmanifest-{alg}.txt"
        report.add(name, files[name] == _manifest(tagged, alg), "tag files listed with their hashes"
                   if files[name] == _manifest(tagged, alg) else "tag files and tag manifest disagree")
    report.add("bagit", *_bagit_second_opinion(files))
    # 2. the signature over the bag's description
    try:
        text = open_note(files["bundle-signature.txt"], verifiers).text
        lines = text.rstrip("\n").split("\n")
        ok = lines[0] == FORMAT and lines[1].startswith("case ") and text == _signed_text(lines[1][5:], files)
        report.case_id = lines[1][5:] if len(lines) > 1 else None
        report.add("bundle signature", ok, f"case {report.case_id}" if ok else "signed hashes do not match the files")
    except CustodyError as err:
        report.add("bundle signature", False, str(err))
    # 3. the checkpoint and the earlier one
    try:
        cp = Checkpoint.parse(open_note(files["data/checkpoint.txt"], verifiers).text)
        report.add("checkpoint", True, f"{cp.origin} size {cp.size}")
    except CustodyError as err:
        report.add("checkpoint", False, str(err))
        return
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
        proof_name = f"data/proofs/{_name(idx)}"
        try:
            doc = parse_json(raw)
            if canonical_json(doc) != raw:
                raise FormatError("not canonical JSON")
            p = parse_json(payload[proof_name])
            if (p["index"], p["size"], p["leaf_hash"]) != (idx, cp.size, leaf.hex()):
                raise FormatError("proof is for another record or tree")
            merkle.verify_inclusion(leaf, idx, cp.size, [bytes.fromhex(h) for h in p["proof"]], cp.root)
        except (CustodyError, KeyError) as err:
            bad.append(f"record {idx}: {err}")
            continue
        records[idx], leaves[idx] = doc, leaf
    orphans = {int(PurePosixPath(n).stem) for n in payload if n.startswith("data/proofs/")} - set(records)
    bad += [f"proof {i} has no record" for i in sorted(orphans) if f"data/records/{_name(i)}" not in payload]
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
    # 5. the trace graph and the custody log agree with the records
    trace = parse_json(payload["data/trace.json"])
    want_edges = sorted({(i, ln["id"], ln["rel"]) for i, d in records.items() for ln in d.get("links", [])
                         if ln["id"] in records})
    got_edges = sorted((e["src"], e["dst"], e["rel"]) for e in trace["edges"])
    report.add("trace", trace["records"] == sorted(records) and got_edges == want_edges
               and trace["case_id"] == report.case_id, "graph matches the records' links")
    log = parse_json(payload["data/custody-log.json"])
    log_ok = all(e["id"] in records and records[e["id"]]["kind"] == "access"
                 and records[e["id"]]["body"].get("case_id") == report.case_id for e in log)
    report.add("custody log", log_ok, f"{len(log)} recorded accesses, each a proven record")


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

