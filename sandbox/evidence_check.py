"""Evidence discipline: nothing runs until every input checks out.

* :func:`check_records` — the latest checkpoint is opened with the ledger's verifiers and its origin
  compared with the ledger's; every input's *stored bytes* are hashed and ``merkle.verify_inclusion`` is
  run against that checkpoint's root; each link between inputs must carry the verified leaf hash of its
  target.
* :func:`check_artifact_bytes` — every artifact whose bytes the replay needs is read from the evidence
  store (``ledger.artifacts.artifact_store_for``) by the SHA-256 its *verified* record holds; the store
  re-hashes what it returns. Bytes that are altered, missing although the record names the store
  (``cas:sha256:…``), of the wrong size, or a reference naming other bytes than the record's
  ``sha256`` are **errors**: the replay refuses. Older records whose ``storage_ref`` points elsewhere
  (``blob://…``: bytes the evidence store never held) are a **warning**, and only what needs those
  bytes is skipped.

A finding of severity ``error`` here stops the replay before anything runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from ledger import merkle
from ledger.artifacts import SHA256_HEX, LocalArtifactStore, sha256_from_ref
from ledger.checkpoint import Checkpoint
from ledger.errors import CustodyError, NotFound, VerificationError
from ledger.keys import open_note
from ledger.records import parse_json
from ledger.service import Ledger


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # "error" (stops or invalidates the replay), "warning", "info"
    message: str
    record_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_records(ledger: Ledger, roles: dict[int, str], findings: list[Finding]) -> tuple[dict[str, Any], dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """Checkpoint (opened), per-input leaf documents, and the inputs' entries for the report."""
    cp = ledger.latest_checkpoint()
    if cp is None:
        raise NotFound("no checkpoint has been published yet (run `custody checkpoint`)")
    cp_info: dict[str, Any] = {"id": cp.id, "size": cp.size, "root_hex": cp.root.hex(),
                               "note_sha256": hashlib.sha256(cp.note.encode()).hexdigest(), "verified_by": []}
    root = None
    try:
        opened = open_note(cp.note, ledger.keyring.verifiers)
        parsed = Checkpoint.parse(opened.text)
        if parsed.origin != ledger.config.origin:
            raise VerificationError(f"checkpoint origin {parsed.origin!r} is not this ledger's {ledger.config.origin!r}")
        if parsed.size != cp.size or parsed.root != cp.root:
            raise VerificationError("the signed checkpoint text does not match the stored size / root")
        cp_info["verified_by"] = [f"{n}+{k}" for n, k in opened.verified]
        root = parsed.root
    except CustodyError as err:
        findings.append(Finding("checkpoint_unverified", "error", f"checkpoint {cp.id}: {err}"))
    docs: dict[int, dict[str, Any]] = {}
    leaves: dict[int, str] = {}
    inputs = []
    for idx in sorted(roles):
        row: dict[str, Any] = {"id": idx, "role": roles[idx], "kind": None, "leaf_hash": None, "inclusion": "not checked"}
        with ledger.store.read() as r:
            e = r.entry(idx)
        if e is None:
            findings.append(Finding("missing_record", "error", f"record {idx} is not in the ledger", idx))
            row["inclusion"] = "missing"
            inputs.append(row)
            continue
        leaf = merkle.leaf_hash(e.data)
        row["kind"], row["leaf_hash"] = e.kind, leaf.hex()
        if idx >= cp.size:
            findings.append(Finding("not_covered_by_checkpoint", "error",
                                    f"record {idx} is not covered by checkpoint {cp.id} (size {cp.size}); "
                                    f"publish a checkpoint first", idx))
            row["inclusion"] = "not covered"
        elif root is not None:
            try:
                p = ledger.prove_inclusion(idx, cp.size)
                merkle.verify_inclusion(leaf, idx, cp.size, [bytes.fromhex(h) for h in p["proof"]], root)
                row["inclusion"] = "verified"
            except CustodyError as err:
                findings.append(Finding("inclusion_proof_failed", "error",
                                        f"record {idx}: its stored bytes are not the leaf the signed checkpoint "
                                        f"covers ({err}); the evidence may have been tampered with", idx))
                row["inclusion"] = "failed"
        try:
            docs[idx] = parse_json(e.data, what=f"record {idx}")
            if row["inclusion"] == "verified":
                leaves[idx] = leaf.hex()
        except CustodyError as err:
            findings.append(Finding("unparseable_record", "error", f"record {idx}: {err}", idx))
        inputs.append(row)
    # Links between inputs must carry the verified leaf hash of their target.
    for idx, doc in docs.items():
        for ln in doc.get("links", []):
            dst = ln.get("id")
            if dst in leaves and ln.get("leaf") != leaves[dst]:
                findings.append(Finding("link_leaf_mismatch", "error",
                                        f"record {idx}'s link {ln.get('rel')!r} to {dst} names leaf {ln.get('leaf')}, "
                                        f"not {dst}'s verified leaf {leaves[dst]}", idx))
    return cp_info, docs, inputs


def check_artifact_bytes(store: LocalArtifactStore, docs: dict[int, dict[str, Any]], wanted: list[int],
                         findings: list[Finding]) -> dict[int, bytes]:
    """Artifact id → its verified bytes, for the ``wanted`` artifacts whose records verified (``docs``).
    Appends findings (see the module docstring); an artifact left out of the result is not replayable."""
    out: dict[int, bytes] = {}
    for a in sorted(set(wanted)):
        doc = docs.get(a)
        if doc is None:
            continue  # its record already failed a check
        body = doc.get("body") or {}
        sha, ref = body.get("sha256"), body.get("storage_ref")
        ref_sha = sha256_from_ref(ref) if isinstance(ref, str) else None
        if ref_sha is not None and ref_sha != sha:
            findings.append(Finding("artifact_ref_mismatch", "error",
                                    f"artifact {a}: storage_ref {ref} names other bytes than its sha256 {sha}", a))
            continue
        if ref_sha is None and not (isinstance(sha, str) and SHA256_HEX.match(sha) and store.has(sha)):
            findings.append(Finding("artifact_bytes_unavailable", "warning",
                                    f"artifact {a}: bytes not in the evidence store (storage_ref {ref!r}); "
                                    f"what needs them is not replayed", a))
            continue
        try:
            data = store.get(sha)
        except NotFound:
            findings.append(Finding("artifact_bytes_missing", "error",
                                    f"artifact {a}: its bytes ({sha}) are missing from the evidence store", a))
            continue
        except VerificationError as err:
            findings.append(Finding("artifact_bytes_tampered", "error",
                                    f"artifact {a}: the evidence store's file does not hash to the ledger's "
                                    f"sha256 {sha}: {err}", a))
            continue
        except CustodyError as err:
            findings.append(Finding("artifact_bytes_unreadable", "error", f"artifact {a}: {err}", a))
            continue
        if hashlib.sha256(data).hexdigest() != sha:  # the store checks too; never trust one check
            findings.append(Finding("artifact_bytes_tampered", "error",
                                    f"artifact {a}: bytes do not hash to the ledger's sha256 {sha}", a))
            continue
        size = body.get("size")
        if isinstance(size, int) and not isinstance(size, bool) and size != len(data):
            findings.append(Finding("artifact_size_mismatch", "error",
                                    f"artifact {a}: {len(data)} bytes, the ledger records {size}", a))
            continue
        out[a] = data
    return out


__all__ = ["Finding", "check_artifact_bytes", "check_records"]
