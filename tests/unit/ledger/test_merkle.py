"""ledger.merkle against RFC 6962/9162 published vectors and its own recursive reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import ProofError

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "rfc6962-vectors.json").read_text())
LEAVES = [merkle.leaf_hash(bytes.fromhex(h)) for h in VECTORS["leaf_inputs_hex"]]


def build(n: int) -> tuple[dict[int, bytes], list[bytes]]:
    """Append n leaves the way the ledger does; return the stored nodes and the final compact range."""
    nodes: dict[int, bytes] = {}
    frontier: list[bytes] = []
    for i in range(n):
        leaf = merkle.leaf_hash(i.to_bytes(4, "big"))
        frontier, stored = merkle.append_leaf(i, frontier, leaf)
        for idx, h in stored:
            assert idx not in nodes, "a stored node was written twice"
            nodes[idx] = h
        assert len(nodes) == merkle.stored_hash_count(i + 1)
    return nodes, frontier


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@pytest.mark.parametrize("size", range(9))
def test_published_roots(size: int) -> None:
    assert merkle.root_of(LEAVES[:size]).hex() == VECTORS["roots"][str(size)]
    nodes, frontier = build(0)
    frontier = []
    for i in range(size):
        frontier, _ = merkle.append_leaf(i, frontier, LEAVES[i])
    assert merkle.fold(frontier).hex() == VECTORS["roots"][str(size)]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}-{c['size']}")
def test_published_inclusion_proofs(case: dict) -> None:
    proof = [bytes.fromhex(p) for p in case["proof"]]
    assert merkle.inclusion_proof_of(LEAVES, case["index"], case["size"]) == proof
    assert LEAVES[case["index"]].hex() == case["leaf"]
    merkle.verify_inclusion(LEAVES[case["index"]], case["index"], case["size"], proof,
                            bytes.fromhex(VECTORS["roots"][str(case["size"])]))


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['size1']}-{c['size2']}")
def test_published_consistency_proofs(case: dict) -> None:
    proof = [bytes.fromhex(p) for p in case["proof"]]
    assert merkle.consistency_proof_of(LEAVES, case["size1"], case["size2"]) == proof
    merkle.verify_consistency(case["size1"], case["size2"], bytes.fromhex(VECTORS["roots"][str(case["size1"])]),
                              bytes.fromhex(VECTORS["roots"][str(case["size2"])]), proof)


def test_stored_index_matches_go_tlog_layout() -> None:
    # From tlog's documentation: leaf0@0 leaf1@1 node(1,0)@2 leaf2@3 leaf3@4 node(1,1)@5 node(2,0)@6 leaf4@7
    assert [merkle.stored_hash_index(0, i) for i in range(5)] == [0, 1, 3, 4, 7]
    assert merkle.stored_hash_index(1, 0) == 2
    assert merkle.stored_hash_index(1, 1) == 5
    assert merkle.stored_hash_index(2, 0) == 6


def test_stored_nodes_are_the_complete_subtrees() -> None:
    n = 70
    nodes, _ = build(n)
    ls = leaves(n)
    for level in range(7):
        for index in range(n >> level):
            lo, hi = index << level, (index + 1) << level
            assert nodes[merkle.stored_hash_index(level, index)] == merkle.root_of(ls[lo:hi])


def test_proof_plans_match_reference_for_all_small_trees() -> None:
    n = 65
    nodes, _ = build(n)
    ls = leaves(n)
    for size in range(1, n + 1):
        root = merkle.root_of(ls[:size])
        assert merkle.fold([nodes[merkle.stored_hash_index(*a)] for a in merkle.frontier_addresses(size)]) == root
        for index in range(size):
            proof = merkle.build_proof(merkle.inclusion_plan(index, size), nodes)
            assert proof == merkle.inclusion_proof_of(ls, index, size)
            merkle.verify_inclusion(ls[index], index, size, proof, root)
        for old in range(0, size + 1):
            proof = merkle.build_proof(merkle.consistency_plan(old, size), nodes)
            assert proof == merkle.consistency_proof_of(ls, old, size)
            merkle.verify_consistency(old, size, merkle.root_of(ls[:old]), root, proof)


def test_plan_reads_are_logarithmic() -> None:
    size = 1_000_003
    for index in (0, 1, 524_287, 999_999, size - 1):
        assert len(merkle.plan_indices(merkle.inclusion_plan(index, size))) <= 2 * 21
    for old in (1, 2, 3, 524_288, 777_777, size - 1):
        assert len(merkle.plan_indices(merkle.consistency_plan(old, size))) <= 2 * 21


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(0, 255), st.integers(0, 31))))
def test_any_tampered_inclusion_proof_fails(args: tuple[int, int, int, int]) -> None:
    size, index, which, bit = args
    ls = leaves(size)
    root = merkle.root_of(ls)
    proof = merkle.inclusion_proof_of(ls, index)
    merkle.verify_inclusion(ls[index], index, size, proof, root)
    if proof:
        k = which % len(proof)
        bad = bytearray(proof[k])
        bad[bit] ^= 1
        with pytest.raises(ProofError):
            merkle.verify_inclusion(ls[index], index, size, proof[:k] + [bytes(bad)] + proof[k + 1:], root)
    with pytest.raises(ProofError):  # the same proof does not place the leaf anywhere else
        other = (index + 1) % size
        if other != index:
            merkle.verify_inclusion(ls[index], other, size, proof, root)
        else:
            raise ProofError("single leaf")
    with pytest.raises(ProofError):
        merkle.verify_inclusion(ls[index], index, size, proof + [root], root)


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n - 1), st.integers(0, 255))))
def test_any_tampered_consistency_proof_fails(args: tuple[int, int, int]) -> None:
    size, old, which = args
    ls = leaves(size)
    old_root, new_root = merkle.root_of(ls[:old]), merkle.root_of(ls)
    proof = merkle.consistency_proof_of(ls, old)
    merkle.verify_consistency(old, size, old_root, new_root, proof)
    k = which % len(proof)
    bad = bytearray(proof[k])
    bad[0] ^= 0x80
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, size, old_root, new_root, proof[:k] + [bytes(bad)] + proof[k + 1:])
    with pytest.raises(ProofError):  # a rewritten history (different old leaf) is not consistent
        forged = merkle.root_of([merkle.leaf_hash(b"forged")] + ls[1:old])
        merkle.verify_consistency(old, size, forged, new_root, proof)
    with pytest.raises(ProofError):
        merkle.verify_consistency(old, size, old_root, new_root, proof[:-1])


def test_bad_arguments_are_proof_errors() -> None:
    with pytest.raises(ProofError, match="outside"):
        merkle.inclusion_plan(5, 5)
    with pytest.raises(ProofError):
        merkle.consistency_plan(6, 5)
    with pytest.raises(ProofError, match="32 bytes"):
        merkle.verify_inclusion(b"short", 0, 1, [], merkle.EMPTY_ROOT)
    with pytest.raises(ProofError, match="different roots"):
        merkle.verify_consistency(3, 3, LEAVES[0], LEAVES[1], [])
