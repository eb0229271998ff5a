"""RFC 9162 (§2.1) Merkle tree math: small pure functions over bytes.

Nothing here touches storage. The ledger stores every *complete* subtree hash once, at the
position Go's ``golang.org/x/mod/sumdb/tlog`` calls the "stored hash index" (level-L node N
is written right after everything it depends on, so the node table only ever grows at its end).
An append then costs O(log n) hashes (``append_leaf``), and a proof is a *plan* of O(log n)
stored nodes to read (``inclusion_plan`` / ``consistency_plan``) that ``build_proof`` folds into
the RFC 9162 proof. Verification (``verify_inclusion`` / ``verify_consistency``) follows the
RFC's algorithms literally and needs nothing but the proof, the sizes and the roots.

The ``*_of`` functions are the RFC's recursive definitions over a list of leaf hashes. They
are the reference the efficient code is tested against, and are never used on a real ledger.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ledger.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Address = tuple[int, int]  # (level, index): the complete subtree over leaves [index·2^level, (index+1)·2^level)
Plan = list[list[Address]]  # one proof element per entry; each is the hash of these subtrees, folded


def leaf_hash(data: bytes) -> bytes:
    """MTH of one leaf: SHA-256(0x00 ‖ data). The 0x00 prefix keeps leaves and nodes apart."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n ≥ 2)."""
    if n < 2:
        raise ValueError("split_point needs n >= 2")
    return 1 << ((n - 1).bit_length() - 1)


# --- where complete subtrees are stored -------------------------------------------------------


def stored_hash_index(level: int, index: int) -> int:
    """Position of node (level, index) in the append-only node table (Go tlog's StoredHashIndex).

    Go walks down to level 0 (n → 2n+1 per level) and sums n + n/2 + n/4 + …; both have closed
    forms: n·2^level + 2^level − 1, and Σ n>>k = 2n − popcount(n).
    """
    n = (index << level) | ((1 << level) - 1)
    return 2 * n - n.bit_count() + level


def stored_hash_count(size: int) -> int:
    """How many nodes a tree of ``size`` leaves has stored (Go tlog's StoredHashCount)."""
    if size == 0:
        return 0
    count = stored_hash_index(0, size - 1) + 1
    i = size - 1
    while i & 1:
        count += 1
        i >>= 1
    return count


def frontier_addresses(size: int) -> list[Address]:
    """The complete subtrees covering leaves [0, size), left to right (a "compact range")."""
    out: list[Address] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


def append_leaf(size: int, frontier: Sequence[bytes], leaf: bytes) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    """Add leaf number ``size`` to a tree whose compact range is ``frontier``.

    Returns the compact range of the tree of ``size + 1`` leaves and the ``(stored index, hash)``
    pairs to store: the leaf hash and every subtree this leaf completes (consecutive indices).
    """
    first = 2 * size - size.bit_count()  # stored_hash_index(0, size); the rest follow it directly
    out = [(first, leaf)]
    new_frontier = list(frontier)
    h, index = leaf, size
    while index & 1:
        h = node_hash(new_frontier.pop(), h)
        index >>= 1
        out.append((first + len(out), h))
    new_frontier.append(h)
    return new_frontier, out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of adjacent complete subtrees given left to right (largest first), combined right to left."""
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def range_addresses(lo: int, hi: int) -> list[Address]:
    """Split leaves [lo, hi) into complete subtrees, left to right.

    For the ranges RFC 9162's recursion produces (``lo`` aligned to a power of two ≥ hi−lo),
    folding their hashes gives MTH(D[lo:hi]).
    """
    out: list[Address] = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else (hi - lo).bit_length() - 1
        while lo + (1 << level) > hi:
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


# --- proof plans: which stored nodes make up a proof ---------------------------------------------


def inclusion_plan(index: int, size: int) -> Plan:
    """RFC 9162 PATH(index, D[0:size]) as ranges of stored nodes, leaf end first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    plan: Plan = []
    lo, hi = 0, size
    ranges: list[tuple[int, int]] = []
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
    for r in reversed(ranges):
        plan.append(range_addresses(*r))
    return plan


def consistency_plan(old_size: int, new_size: int) -> Plan:
    """RFC 9162 PROOF(old_size, D[0:new_size]) (SUBPROOF with the "b" flag) as ranges of stored nodes."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    ranges: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                ranges.append((lo, hi))
            break
        k = split_point(n)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    return [range_addresses(*r) for r in reversed(ranges)]


def plan_indices(plan: Plan) -> list[int]:
    """Stored indices a plan needs, deduplicated, in ascending order."""
    return sorted({stored_hash_index(level, i) for element in plan for level, i in element})


def build_proof(plan: Plan, nodes: Mapping[int, bytes]) -> list[bytes]:
    """Assemble a proof from a plan and the stored nodes it names (by stored index)."""
    try:
        return [fold([nodes[stored_hash_index(level, i)] for level, i in element]) for element in plan]
    except KeyError as missing:
        raise ProofError(f"stored node {missing.args[0]} is missing: the tree is incomplete") from None


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------------------


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{name} must be {HASH_SIZE} bytes")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for ``leaf`` at ``index`` in a tree of ``size`` leaves."""
    _check_hash("leaf hash", leaf)
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(f"proof element {i}", p)
        if sn == 0:
            raise ProofError(f"inclusion proof is too long ({len(proof)} elements)")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof is too short ({len(proof)} elements)")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows ``leaf`` at ``index`` in the tree with ``root``."""
    _check_hash("root", root)
    if root_from_inclusion(leaf, index, size, proof) != root:
        raise ProofError(f"inclusion proof for index {index} does not lead to the root of size {size}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ProofError unless ``proof`` shows the tree of ``old_size`` is a prefix of ``new_size``'s."""
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    for i, p in enumerate(proof):
        _check_hash(f"proof element {i}", p)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        if old_root != EMPTY_ROOT:
            raise ProofError("the root of the empty tree is not SHA-256('')")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof is too long ({len(proof)} elements)")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof is too short ({len(proof)} elements)")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the old root (size {old_size})")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the new root (size {new_size})")


# --- reference definitions (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1) over in-memory leaf hashes -----


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) by the RFC's recursive definition, from leaf hashes."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = split_point(n)
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def inclusion_proof_of(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(index, D[0:size]) by the RFC's recursive definition."""
    d = leaves[: len(leaves) if size is None else size]
    if not 0 <= index < len(d):
        raise ProofError(f"index {index} is outside a tree of size {len(d)}")
    if len(d) == 1:
        return []
    k = split_point(len(d))
    if index < k:
        return inclusion_proof_of(d[:k], index) + [root_of(d[k:])]
    return inclusion_proof_of(d[k:], index - k) + [root_of(d[:k])]


def consistency_proof_of(leaves: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) by the RFC's recursive definition."""
    d = leaves[: len(leaves) if new_size is None else new_size]
    if not 0 <= old_size <= len(d):
        raise ProofError(f"no consistency proof from size {old_size} to size {len(d)}")
    if old_size in (0, len(d)):
        return []

    def subproof(m: int, d: Sequence[bytes], complete: bool) -> list[bytes]:
        if m == len(d):
            return [] if complete else [root_of(d)]
        k = split_point(len(d))
        if m <= k:
            return subproof(m, d[:k], complete) + [root_of(d[k:])]
        return subproof(m - k, d[k:], False) + [root_of(d[:k])]

    return subproof(old_size, d, True)
