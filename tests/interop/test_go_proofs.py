"""Our Merkle proofs against Go's golang.org/x/mod/sumdb/tlog (CheckRecord, CheckTree).

Every inclusion proof for every index of every tree size up to MAX_SIZE, and every
consistency proof between sizes 1 ≤ m ≤ n ≤ MAX_SIZE, go to Go in one process call. Both the
RFC's recursive reference (``*_proof_of``) and the stored-node path the ledger serves from
(``append_leaf`` → plans → ``build_proof``) are checked. Then tampered proofs must fail.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ledger import merkle
from ledger.errors import ProofError

pytestmark = pytest.mark.go

MAX_SIZE = 40
VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "rfc6962-vectors.json").read_text())


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def leaf_data(i: int) -> bytes:
    return f"custody leaf {i}".encode()


LEAVES = [merkle.leaf_hash(leaf_data(i)) for i in range(MAX_SIZE)]
ROOTS = {n: merkle.root_of(LEAVES[:n]) for n in range(MAX_SIZE + 1)}


def record(proof: list[bytes], size: int, root: bytes, index: int, leaf: bytes) -> dict:
    return {"type": "record", "proof": [b64(p) for p in proof], "size": size, "root": b64(root),
            "index": index, "leaf": b64(leaf)}


def tree(proof: list[bytes], size: int, root: bytes, old_size: int, old_root: bytes) -> dict:
    return {"type": "tree", "proof": [b64(p) for p in proof], "size": size, "root": b64(root),
            "old_size": old_size, "old_root": b64(old_root)}


def _stored_nodes(n: int) -> dict[int, bytes]:
    nodes: dict[int, bytes] = {}
    frontier: list[bytes] = []
    for i in range(n):
        frontier, stored = merkle.append_leaf(i, frontier, LEAVES[i])
        nodes.update(stored)
    return nodes


def all_good_checks() -> list[tuple[str, dict]]:
    nodes = _stored_nodes(MAX_SIZE)
    checks: list[tuple[str, dict]] = []
    for n in range(1, MAX_SIZE + 1):
        for i in range(n):
            ref = merkle.inclusion_proof_of(LEAVES, i, n)
            served = merkle.build_proof(merkle.inclusion_plan(i, n), nodes)
            assert served == ref, (i, n)
            checks.append((f"inclusion {i}/{n}", record(ref, n, ROOTS[n], i, leaf_data(i))))
        for m in range(1, n + 1):
            ref = merkle.consistency_proof_of(LEAVES, m, n)
            served = merkle.build_proof(merkle.consistency_plan(m, n), nodes)
            assert served == ref, (m, n)
            checks.append((f"consistency {m}->{n}", tree(ref, n, ROOTS[n], m, ROOTS[m])))
    return checks


def vector_checks() -> list[tuple[str, dict]]:
    """The published RFC 6962 vectors, so Go also confirms the vectors we test against."""
    inputs = [bytes.fromhex(h) for h in VECTORS["leaf_inputs_hex"]]
    roots = {int(k): bytes.fromhex(v) for k, v in VECTORS["roots"].items()}
    checks = []
    for v in VECTORS["inclusion"]:
        proof = [bytes.fromhex(p) for p in v["proof"]]
        checks.append((f"vector inclusion {v['index']}/{v['size']}",
                       record(proof, v["size"], roots[v["size"]], v["index"], inputs[v["index"]])))
    for v in VECTORS["consistency"]:
        proof = [bytes.fromhex(p) for p in v["proof"]]
        checks.append((f"vector consistency {v['size1']}->{v['size2']}",
                       tree(proof, v["size2"], roots[v["size2"]], v["size1"], roots[v["size1"]])))
    return checks


def test_every_proof_up_to_40_verifies_in_go(gocheck) -> None:
    checks = all_good_checks() + vector_checks()
    assert len(checks) > 1600
    results = gocheck([c for _, c in checks])
    failed = [(name, r.get("error")) for (name, _), r in zip(checks, results) if not r["ok"]]
    assert not failed, failed[:20]


def _flip(b: bytes, bit: int = 0) -> bytes:
    return bytes([b[0] ^ (1 << bit)]) + b[1:]


def tampered_checks() -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for n in (1, 2, 3, 5, 8, 13, 21, 32, 33, 40):
        root = ROOTS[n]
        for i in sorted({0, n // 2, n - 1}):
            proof = merkle.inclusion_proof_of(LEAVES, i, n)
            data = leaf_data(i)
            for k in range(len(proof)):
                bad = proof[:k] + [_flip(proof[k])] + proof[k + 1 :]
                out.append((f"inclusion {i}/{n} element {k} flipped", record(bad, n, root, i, data)))
            if proof:
                out.append((f"inclusion {i}/{n} short", record(proof[:-1], n, root, i, data)))
            if len(proof) > 1:
                out.append((f"inclusion {i}/{n} reversed", record(proof[::-1], n, root, i, data)))
            out.append((f"inclusion {i}/{n} long", record(proof + [root], n, root, i, data)))
            out.append((f"inclusion {i}/{n} other leaf", record(proof, n, root, i, leaf_data(i + 1))))
            out.append((f"inclusion {i}/{n} wrong root", record(proof, n, _flip(root), i, data)))
            if n > 1:
                j = (i + 1) % n
                out.append((f"inclusion {i}/{n} as index {j}", record(proof, n, root, j, data)))
        for m in sorted({1, n // 2 or 1, n - 1 or 1}):
            if m >= n:
                continue
            proof = merkle.consistency_proof_of(LEAVES, m, n)
            for k in range(len(proof)):
                bad = proof[:k] + [_flip(proof[k])] + proof[k + 1 :]
                out.append((f"consistency {m}->{n} element {k} flipped", tree(bad, n, root, m, ROOTS[m])))
            out.append((f"consistency {m}->{n} short", tree(proof[:-1], n, root, m, ROOTS[m])))
            out.append((f"consistency {m}->{n} long", tree(proof + [root], n, root, m, ROOTS[m])))
            out.append((f"consistency {m}->{n} wrong old root", tree(proof, n, root, m, _flip(ROOTS[m]))))
            out.append((f"consistency {m}->{n} wrong new root", tree(proof, n, _flip(root), m, ROOTS[m])))
            if m + 1 < n:
                bad_claim = tree(proof, n, root, m + 1, ROOTS[m + 1])
                out.append((f"consistency {m}->{n} claimed from {m + 1}", bad_claim))
    return out


def test_tampered_proofs_fail_in_go_and_in_ours(gocheck) -> None:
    checks = tampered_checks()
    assert len(checks) > 200
    results = gocheck([c for _, c in checks])
    accepted = [name for (name, _), r in zip(checks, results) if r["ok"]]
    assert not accepted, accepted
    # Our verifiers reject exactly the same set.
    for name, c in checks:
        proof = [base64.b64decode(p) for p in c["proof"]]
        root = base64.b64decode(c["root"])
        with pytest.raises(ProofError):
            if c["type"] == "record":
                merkle.verify_inclusion(merkle.leaf_hash(base64.b64decode(c["leaf"])), c["index"], c["size"],
                                        proof, root)
            else:
                old_root = base64.b64decode(c["old_root"])
                merkle.verify_consistency(c["old_size"], c["size"], old_root, root, proof)
