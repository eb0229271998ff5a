"""Evidence bundles: a case exported as a BagIt bag (RFC 8493) in a zip. The offline verifier is
:mod:`ledger.bundle_verify` (re-exported here); the layout and the derived files are
:mod:`ledger.bundle_format`.

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
    data/custody-log.json      every `access` record of this case up to the checkpoint (derived)
    data/artifacts/<sha256>    an artifact's original bytes (left out of a hashes-only bundle)
    data/artifacts.json        each artifact's records, media types and whether its bytes are here (derived)
    data/artifacts-missing.json  artifacts whose bytes Custody does not hold, with the reason
    data/replays/<sha256>.json   a replay report, byte for byte as stored
    data/replays/<sha256>.note   its signed note (names the report's SHA-256 and the log's origin)
    data/replays-missing.json  replay reports whose file is not on disk, with the reason
    data/provenance.json       per output artifact: watermark and Content Credentials findings (derived)

The case is the union of the traces of the records named, plus every ``access`` record carrying the
case id anywhere in the ledger below the checkpoint (the custody log must be complete, and a trace
only reaches accesses that link to the case's records), less the access records of *other* cases
that the traces reach (they read this case's records; what they say belongs to their own case, and
the README gives only their number).

Exports are deterministic: the same case at the same checkpoint gives the same bytes (sorted
members, fixed zip timestamps, canonical JSON, Bagging-Date = the checkpoint's date). That is why
the log of *this* export is not inside the bundle: the exporter's `access` record, which names the
bundle's SHA-256, is appended to the ledger, and the next bundle of the case carries it.

**Artifacts.** For each ``artifact`` record, the bytes are looked up in the evidence store
(``<data dir>/artifacts``) by the record's SHA-256 — whether the ``storage_ref`` is ``cas:sha256:…`` or
names a store outside Custody (the gateway may have kept a copy). Bytes that do not hash to the
record's SHA-256, or a ``cas:`` reference naming other bytes than the record's SHA-256, make the export
refuse (``VerificationError``): a bundle never carries bytes its records contradict. Bytes Custody
does not hold are listed in ``artifacts-missing.json`` with the reason, never silently skipped.
``hashes_only`` leaves every artifact's bytes out (abuse imagery that must not travel); the store is
still checked, and the index says ``withheld (hashes only)``. ``redact`` and ``hashes_only`` are
independent: redaction concerns sealed values in records, hashes-only the artifacts' bytes.

**Replay reports.** For each ``replay_report`` record, ``<data dir>/replays/<sha256>.json`` and its
note. The export refuses if the file does not hash to the record's ``report_sha256``, if the note
file differs from the signature the record carries, or if the note does not verify with the
ledger's keys or names another report or origin. A report file that is gone is listed in
``replays-missing.json``.

We write the bag ourselves rather than with ``bagit.make_bag``: that function changes the
process's working directory (unsafe in a threaded server) and stamps today's date (which would
break byte-identical exports). The verifier uses ``bagit`` to validate, as a second opinion to
its own byte-exact checks, so an independent implementation looks at every bundle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.artifacts import ArtifactStore, artifact_store_for, sha256_from_ref
from ledger.bundle_format import (
    ARTIFACT_DIR,
    BYTES_INCLUDED,
    BYTES_WITHHELD,
    FORMAT,
    REPLAY_DIR,
    ROOT,
    ZIP_TIME,
    artifact_index,
    artifacts_file,
    custody_log,
    json_file,
    pack,
    provenance,
    record_name,
    replay_note_text,
    replay_reports,
)
from ledger.bundle_verify import BundleReport, read_bundle_file, verify_bundle
from ledger.errors import InvalidInput, NotFound, StorageError, SubjectErased, VerificationError
from ledger.keys import open_note
from ledger.records import Kind, parse_json

ACCESS_PAGE = 1000


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    case_id: str
    checkpoint_size: int
    record_ids: list[int]
    redacted: bool
    hashes_only: bool = False
    artifacts_included: int = 0
    artifacts_withheld: int = 0
    artifacts_missing: int = 0
    replay_reports: int = 0
    replay_reports_missing: int = 0


def export_bundle(ledger: Any, case_id: str, record_ids: Sequence[int], *, data_dir: str | Path,
                  earlier_size: int | None = None, redact: bool = False, hashes_only: bool = False,
                  tool_version: str = "custody-ledger") -> Bundle:
    """Build the case's bundle at the latest checkpoint. ``ledger`` is a ``ledger.service.Ledger``;
    ``data_dir`` is its data folder (the evidence store and the replay reports live there).

    The case is the union of the traces of ``record_ids`` (records beyond the checkpoint left out)
    and every access record of ``case_id`` below the checkpoint.
    """
    if not record_ids:
        raise InvalidInput("name at least one record for the case")
    cp = ledger.latest_checkpoint()
    if cp is None or cp.size == 0:
        raise NotFound("no checkpoint covers any record yet (run `custody checkpoint`)")
    ids: set[int] = set()
    for rid in record_ids:
        if rid >= cp.size:
            raise InvalidInput(f"record {rid} is not covered by the latest checkpoint (size {cp.size})")
        t = ledger.trace(rid).as_dict()
        if t["truncated"]:
            raise InvalidInput(f"the chain of record {rid} has more than the trace limit of records; "
                               f"name narrower records for the case")
        ids |= {n["id"] for n in t["nodes"] if n["id"] < cp.size}
    ids |= set(_case_accesses(ledger, case_id, cp.size))
    leaves: dict[int, bytes] = {}
    for i in sorted(ids):
        with ledger.store.read() as r:
            leaves[i] = r.entry(i).data
    docs: dict[int, dict[str, Any]] = {i: parse_json(data) for i, data in leaves.items()}
    # Another case's reads of these records belong to that case: its id, purpose and investigator
    # are confidential to it and stay out (the trace reaches them because they link here). Their
    # number is stated in the README; the ledger keeps them for an auditor.
    others = [i for i, d in docs.items() if d["kind"] == Kind.ACCESS.value and d["body"].get("case_id") != case_id]
    named_others = sorted(set(others) & set(record_ids))
    if named_others:
        raise InvalidInput(f"record {named_others[0]} is an access record of another case; name the records of "
                           f"case {case_id!r} (another case's reads are not exported with it)")
    for i in others:
        del docs[i], leaves[i]
    ids_sorted = sorted(docs)
    if not ids_sorted:  # pragma: no cover - a named record is always kept (see above)
        raise InvalidInput("the case has no records to export")

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
    files["data/consistency.json"] = json_file(ledger.prove_consistency(earlier.size, cp.size))
    for i in ids_sorted:
        files[f"data/records/{record_name(i)}"] = leaves[i]
        p = ledger.prove_inclusion(i, cp.size)
        files[f"data/proofs/{record_name(i)}"] = json_file({k: p[k] for k in ("index", "size", "leaf_hash", "proof")})
        if docs[i].get("sealed") and not redact:
            try:
                files[f"data/disclosures/{record_name(i)}"] = json_file(ledger.reveal(i))
            except SubjectErased:
                pass  # crypto-shredded: the commitment stays, the value is gone for everyone
    edges = sorted({(i, ln["id"], ln["rel"]) for i, d in docs.items() for ln in d.get("links", []) if ln["id"] in docs})
    files["data/trace.json"] = json_file({"case_id": case_id, "records": ids_sorted,
                                          "edges": [{"src": s, "dst": d, "rel": r} for s, d, r in edges]})
    files["data/custody-log.json"] = json_file(custody_log(docs, case_id))

    index = artifact_index(docs)
    store = artifact_store_for(data_dir)
    status: dict[str, str] = {}
    missing: list[dict[str, Any]] = []
    for sha, recs in index.items():
        content, reason = _artifact_bytes(store, sha, [r["id"] for r in recs], docs)
        if content is None:
            status[sha] = "missing"
            missing.append({"sha256": sha, "records": [r["id"] for r in recs], "reason": reason})
        elif hashes_only:
            status[sha] = "withheld"
        else:
            status[sha] = "included"
            files[f"{ARTIFACT_DIR}{sha}"] = content
    files["data/artifacts.json"] = json_file(artifacts_file(index, status))
    files["data/artifacts-missing.json"] = json_file(missing)

    origin = ledger.config.origin
    replays_missing = _replay_files(ledger, docs, Path(data_dir) / "replays", origin, files)
    files["data/replays-missing.json"] = json_file(replays_missing)
    files["data/provenance.json"] = json_file(provenance(docs, case_id))
    counts = {s: sum(1 for v in status.values() if v == s) for s in ("included", "withheld", "missing")}
    n_replays = len(set(replay_reports(docs).values()))
    files["data/README.txt"] = _readme(case_id, origin, cp, earlier, len(ids_sorted), redact, hashes_only, counts,
                                       n_replays, len(replays_missing), len(others)).encode()

    bag_info = {"Bag-Software-Agent": tool_version, "Bagging-Date": cp.created_at[:10],
                "External-Identifier": case_id, "Custody-Checkpoint-Size": str(cp.size),
                "Custody-Redacted": "yes" if redact else "no",
                "Custody-Artifact-Bytes": BYTES_WITHHELD if hashes_only else BYTES_INCLUDED,
                "Custody-Log-Complete-To-Size": str(cp.size)}
    data = pack(files, bag_info, case_id, ledger.keyring.signer())
    return Bundle(data, hashlib.sha256(data).hexdigest(), case_id, cp.size, ids_sorted, redact, hashes_only,
                  counts["included"], counts["withheld"], counts["missing"], n_replays, len(replays_missing))


def _case_accesses(ledger: Any, case_id: str, size: int) -> list[int]:
    """Every ``access`` record of ``case_id`` at an index below ``size``.

    Pages through the access records by the ``(kind, ledger_time, idx)`` index (each page its own
    short read transaction) and reads their bodies: O(access records), not O(ledger). The custody
    log must be complete, which no trace guarantees (an access under this case id may have read
    records outside the case's chain)."""
    out: list[int] = []
    after: tuple[str, int] | None = None
    while True:
        with ledger.store.read() as r:
            page = r.kind_entries(Kind.ACCESS.value, after=after, limit=ACCESS_PAGE)
        out += [e.idx for e in page if e.idx < size and parse_json(e.data)["body"].get("case_id") == case_id]
        if len(page) < ACCESS_PAGE:
            return sorted(out)
        after = (page[-1].ledger_time, page[-1].idx)


def _artifact_bytes(store: ArtifactStore, sha: str, rec_ids: list[int],
                    docs: dict[int, dict[str, Any]]) -> tuple[bytes | None, str]:
    """The bytes of the artifact ``sha`` from the evidence store, checked; or None and why not."""
    named = ", ".join(str(i) for i in rec_ids)
    refs = sorted({str(docs[i]["body"].get("storage_ref")) for i in rec_ids})
    for i in rec_ids:
        ref_sha = sha256_from_ref(docs[i]["body"].get("storage_ref"))
        if ref_sha is not None and ref_sha != sha:
            raise VerificationError(f"artifact record {i}: its storage_ref names the bytes {ref_sha}, but its "
                                    f"sha256 is {sha}; the export is refused")
    if not store.has(sha):
        if any(sha256_from_ref(ref) for ref in refs):
            return None, (f"record(s) {named} name Custody's evidence store, but the store has no file "
                          f"for these bytes: they were lost")
        return None, (f"the bytes are kept outside Custody ({', '.join(refs)}); the evidence store holds no copy")
    try:
        content = store.get(sha)
    except VerificationError as err:
        raise VerificationError(f"artifact record(s) {named}: {err}; the export is refused") from None
    if hashlib.sha256(content).hexdigest() != sha:  # the store re-hashes too; never trust one check
        raise VerificationError(f"artifact record(s) {named}: the stored bytes do not hash to {sha}; "
                                f"the export is refused")
    return content, ""


def _replay_files(ledger: Any, docs: dict[int, dict[str, Any]], folder: Path, origin: str,
                  files: dict[str, bytes]) -> list[dict[str, Any]]:
    """Add each replay report of the case and its note to ``files``, checked; return those missing."""
    missing: list[dict[str, Any]] = []
    for rid, sha in replay_reports(docs).items():
        path = folder / f"{sha}.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            missing.append({"record": rid, "report_sha256": sha, "reason": f"the report file is not in {folder}"})
            continue
        except OSError as err:
            raise StorageError(f"cannot read replay report {path}: {err.strerror}") from None
        if hashlib.sha256(raw).hexdigest() != sha:
            raise VerificationError(f"replay report {path} does not hash to record {rid}'s report_sha256 {sha}: "
                                    f"the file was altered; the export is refused")
        in_record = docs[rid]["body"].get("signature")
        note_path = path.with_suffix(".note")
        try:
            note = note_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            note = in_record if isinstance(in_record, str) else None
        except (OSError, UnicodeError) as err:
            raise StorageError(f"cannot read {note_path}: {err}") from None
        if note is None:
            raise VerificationError(f"replay report record {rid} carries no signature and {note_path} is missing")
        if in_record is not None and note != in_record:
            raise VerificationError(f"{note_path} differs from the signature in record {rid}; the export is refused")
        try:
            text = open_note(note, ledger.keyring.verifiers).text
        except VerificationError as err:
            raise VerificationError(f"replay report record {rid}: its signature does not verify with this "
                                    f"ledger's keys ({err}); the export is refused") from None
        if text != replay_note_text(origin, sha):
            raise VerificationError(f"replay report record {rid}: its signed note names another report or origin; "
                                    f"the export is refused")
        files[f"{REPLAY_DIR}{sha}.json"] = raw
        files[f"{REPLAY_DIR}{sha}.note"] = note.encode()
    return missing


def record_export(ledger: Any, case_id: str, record_ids: Sequence[int], *, actor: str, role: str, purpose: str,
                  data_dir: str | Path, earlier_size: int | None = None, redact: bool = False,
                  hashes_only: bool = False) -> tuple[Bundle, Any]:
    """Export, then append the export's `access` record (naming the bundle's hash) to the ledger."""
    from ledger.service import now_rfc3339

    bundle = export_bundle(ledger, case_id, record_ids, data_dir=data_dir, earlier_size=earlier_size,
                           redact=redact, hashes_only=hashes_only)
    [receipt] = ledger.append([{
        "kind": "access", "producer": "custody", "produced_at": now_rfc3339(),
        "links": [{"rel": "exported", "id": i} for i in sorted(set(record_ids))[:1000]],
        "body": {"actor": actor, "role": role, "action": "export", "case_id": case_id, "purpose": purpose,
                 "bundle_sha256": bundle.sha256, "checkpoint_size": bundle.checkpoint_size,
                 "records": len(bundle.record_ids), "redacted": redact, "hashes_only": hashes_only}}], trusted=True)
    return bundle, receipt


def _readme(case_id: str, origin: str, cp: Any, earlier: Any, n: int, redact: bool, hashes_only: bool,
            artifacts: dict[str, int], replays: int, replays_missing: int, other_cases: int) -> str:
    if hashes_only:
        art = (f"This bundle is HASHES ONLY: no artifact's bytes are inside ({artifacts['withheld']} withheld,\n"
               f"held by the ledger's operator). Each artifact record still carries its SHA-256, so bytes\n"
               f"obtained separately can be checked against it with sha256sum.")
    else:
        art = (f"data/artifacts/ holds the original bytes of {artifacts['included']} artifact(s), each file named\n"
               f"by its SHA-256: `sha256sum data/artifacts/*` must print each file's own name, and that name\n"
               f"is the sha256 of the artifact record(s) listed for it in data/artifacts.json.")
    return f"""Custody evidence bundle — case {case_id}

This is a BagIt bag (RFC 8493) of {n} records from a Custody ledger, an append-only Merkle log
(RFC 9162). Everything here can be checked without the ledger, its database or its operator;
you need only the ledger's verifier key(s), obtained independently of this bundle (all of them,
if the ledger's key was rotated: older signatures are by older keys).

Check it with the verifier:   custody verify-bundle BUNDLE.zip --key 'VERIFIER KEY'

Or by hand (in the custody-bundle folder):
1. sha256sum -c manifest-sha256.txt  (every payload file, and nothing else: compare the list with
   the files under data/).
2. bundle-signature.txt is a signed note (C2SP signed-note, Ed25519) over the SHA-256 of bagit.txt,
   bag-info.txt and both payload manifests; checked with the verifier key.
3. data/checkpoint.txt is the log's signed tree head (C2SP tlog-checkpoint): origin ({origin}),
   tree size ({cp.size}) and root hash (base64), signed with the same key.
4. Each record's leaf hash is SHA-256 of the byte 0x00 followed by the bytes of data/records/N.json.
   data/proofs/N.json is its inclusion proof (RFC 9162 section 2.1.3.2): with fn = N, sn = size - 1
   and r = the leaf hash, for each hash p in the proof: if sn = 0 fail; if fn is odd or fn = sn,
   r = SHA-256(0x01 || p || r) and, while fn is even and fn != 0, shift fn and sn right once;
   otherwise r = SHA-256(0x01 || r || p); then shift fn and sn right once. At the end sn must be 0
   and r must equal the checkpoint's root hash.
5. data/consistency.json proves the tree of data/earlier-checkpoint.txt (size {earlier.size}) is a
   prefix of the current one (RFC 9162 section 2.1.4.2): the log was not rewritten in between.
6. In records, "sealed" holds SHA-256("custody-seal-v1" 0x00 || salt || canonical JSON of the value)
   for each sensitive field. {"This bundle is REDACTED: those values are not included." if redact else
   "data/disclosures/N.json gives each value and its salt so the commitment can be recomputed."}
7. Each link in a record carries the linked record's leaf hash.

Artifacts. {art}
data/artifacts-missing.json lists artifacts whose bytes the ledger's operator does not hold ({artifacts['missing']}),
with the reason. Redaction (sealed values) and hashes-only (artifact bytes) are independent options.

Replay reports ({replays}). data/replays/SHA.json is a report byte for byte (sha256sum prints SHA, the
report_sha256 of its replay_report record); data/replays/SHA.note is a signed note, checked with the
verifier key, whose text is "{replay_note_text(origin, 'SHA').rstrip()}" on three lines.
Reports whose file is no longer on disk: data/replays-missing.json ({replays_missing}).

data/provenance.json summarises, for each output artifact, the watermark payload and Content
Credentials (C2PA) state the pipeline recorded when it analysed the marked output (the "watermark.*",
"c2pa.*" and "provenance.*" signals of the safety_decision records with stage "analysis"), beside
what the artifact record says was embedded. It is derived from the records; the verifier recomputes it.

Custody log. data/custody-log.json lists every recorded access to this case (access records with
case id {case_id}) in the ledger below the checkpoint (size {cp.size}), in index order; each entry is one
of the records above, with its inclusion proof. The verifier checks that each entry is a proven
record naming this case and that no access record of this case in the bundle is left out. It
cannot check that the ledger holds no other access record of this case: that completeness is the
exporter's claim (bag-info.txt Custody-Log-Complete-To-Size, signed). A court can test it against
any later bundle of the same case, which must list the same accesses, or against the ledger. The
export that produced this file is itself recorded in the ledger, with this bundle's SHA-256, and
appears in the next bundle of the case.

Reads made for other cases. {other_cases} access record(s) of other cases read records of this case
below the checkpoint. They are not in this bundle: their case ids, purposes and investigators
belong to those cases. The ledger keeps them; an auditor can examine them there.
"""


__all__ = [
    "FORMAT",
    "ROOT",
    "ZIP_TIME",
    "Bundle",
    "BundleReport",
    "export_bundle",
    "read_bundle_file",
    "record_export",
    "verify_bundle",
]
