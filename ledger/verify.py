"""`custody verify`: recompute the ledger from its stored bytes and name the first damage.

What is checked, and what each failure is called:

* every checkpoint's signed note against the trusted verifier keys (``forged_checkpoint``);
  sizes never shrink from one checkpoint to the next (``rolled_back_checkpoint``); no checkpoint
  covers more entries than the log holds (``truncated_log``);
* indices are dense from 0 (``missing_entry``);
* each entry's leaf hash, recomputed from its bytes, equals the stored leaf node
  (``modified_record``, or ``reordered_entry`` when the bytes belong at another index), and
  every interior node the append would have written equals the stored one (``bad_tree_node``);
  stored hashes are read from their tile if the tree (at the size verified) has completed it, else
  from their ``tree_nodes`` row: a complete tile that is missing or not 62 hashes long, and a
  ``tree_nodes`` row that disagrees with the tile covering it (a row written before its tile was
  complete), are ``bad_tree_node`` too, at the entry that wrote the first damaged hash;
* the root recomputed at each checkpoint's size equals the signed root (``rewritten_history``);
* consecutive checkpoints are consistent, by proofs built from the stored nodes
  (``inconsistent_checkpoints``);
* with ``deep``: each entry is canonical JSON and each link carries the linked entry's leaf hash
  (``bad_link``).

Incremental mode starts at the last checkpoint a previous run verified, after checking that the
stored compact range there still folds to that checkpoint's signed root; checkpoints are always
all checked (cheap). Entry streaming is chunked, one short read transaction per chunk.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.errors import CustodyError, ProofError
from ledger.keys import NoteVerifier, open_note
from ledger.records import canonical_json, parse_json
from ledger.service import now_rfc3339
from ledger.store import HASH_SIZE, NodeChunk, Store, tile_hashes

MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    what: str
    message: str
    index: int | None = None  # the first bad entry index, where one is known
    checkpoint: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "message": self.message, "index": self.index, "checkpoint": self.checkpoint}


@dataclass
class VerifyReport:
    mode: str
    size: int = 0
    start: int = 0
    entries_checked: int = 0
    checkpoints_checked: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        idxs = [p.index for p in self.problems if p.index is not None]
        return min(idxs) if idxs else None

    def as_dict(self) -> dict[str, Any]:
        rate = self.entries_checked / self.seconds if self.seconds > 0 else None
        return {"ok": self.ok, "mode": self.mode, "size": self.size, "start": self.start,
                "entries_checked": self.entries_checked, "checkpoints_checked": self.checkpoints_checked,
                "seconds": round(self.seconds, 4), "entries_per_second": round(rate) if rate else None,
                "first_bad_index": self.first_bad_index, "problems": [p.as_dict() for p in self.problems]}


def verify_ledger(store: Store, verifiers: Sequence[NoteVerifier], origin: str, *, incremental: bool = False,
                  deep: bool = False, chunk: int = 20_000,
                  progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    t0 = time.perf_counter()
    report = VerifyReport(mode="incremental" if incremental else "full")
    problems = report.problems
    with store.read() as r:
        size = r.size()
        rows = r.checkpoints()
        last = r.last_verified()
    report.size = size

    # 1. Checkpoints: signature, agreement with the row, monotonic sizes, not beyond the log.
    signed: list[tuple[int, int, bytes]] = []  # (checkpoint id, size, signed root) of the good ones
    high = -1
    for row in rows:
        report.checkpoints_checked += 1
        try:
            cp = Checkpoint.parse(open_note(row.note, verifiers).text)
        except CustodyError as err:
            problems.append(Problem("forged_checkpoint", f"checkpoint #{row.id} (size {row.size}): {err}",
                                    checkpoint=row.id))
            continue
        if cp.origin != origin or cp.size != row.size or cp.root != row.root:
            problems.append(Problem("forged_checkpoint", f"checkpoint #{row.id}: its stored size/root/origin "
                                    f"differ from what its note signs", checkpoint=row.id))
            continue
        if cp.size < high:
            problems.append(Problem("rolled_back_checkpoint", f"checkpoint #{row.id} signs size {cp.size}, "
                                    f"smaller than the earlier checkpoint's {high}", checkpoint=row.id))
        high = max(high, cp.size)
        if cp.size > size:
            problems.append(Problem("truncated_log", f"checkpoint #{row.id} signs {cp.size} entries but the log "
                                    f"holds {size}: entries from index {size} on are gone", index=size,
                                    checkpoint=row.id))
            continue
        signed.append((row.id, cp.size, cp.root))
    if last is not None:
        if last[1] > size:
            problems.append(Problem("truncated_log", f"a verify run saw {last[1]} entries (checkpoint #{last[0]}) "
                                    f"but the log now holds {size}", index=size, checkpoint=last[0]))
        if all(row.id != last[0] for row in rows):
            problems.append(Problem("missing_checkpoint", f"checkpoint #{last[0]} (size {last[1]}), verified "
                                    f"earlier, is gone", checkpoint=last[0]))
    by_size: dict[int, list[tuple[int, bytes]]] = {}
    for cid, s, root in signed:
        by_size.setdefault(s, []).append((cid, root))

    # 2. Where to start streaming.
    start, frontier = 0, []
    if incremental and last is not None:
        base = [(cid, s, root) for cid, s, root in signed if cid == last[0]]
        if base and base[0][1] <= size:
            _, s, root = base[0]
            addrs = merkle.frontier_addresses(s)
            with store.read() as r:
                nodes = r.nodes([merkle.stored_hash_index(*a) for a in addrs])
            try:
                cand = [nodes[merkle.stored_hash_index(*a)] for a in addrs]
            except KeyError:
                cand = None
            if cand is not None and merkle.fold(cand) == root:
                start, frontier = s, cand
            else:
                problems.append(Problem("rewritten_history", f"the stored tree at size {s} no longer folds to the "
                                        f"root of checkpoint #{last[0]}, verified earlier", checkpoint=last[0]))
    report.start = start
    if 0 in by_size:
        for cid, root in by_size[0]:
            if root != merkle.EMPTY_ROOT:
                problems.append(Problem("rewritten_history", f"checkpoint #{cid} (size 0) has a non-empty root",
                                        checkpoint=cid))

    # 3. Stream the entries and the nodes they produced.
    n = start
    stop = False
    sha256 = hashlib.sha256
    append_leaf = merkle.append_leaf
    tile_size = store.tile_size
    complete_tiles = merkle.stored_hash_count(size) // tile_size  # tiles the tree of ``size`` has completed
    for part in store.iter_chunks(start, size, chunk):
        entries = part.entries
        view = _StoredView(part, tile_size, complete_tiles)
        nodes, base = view.hashes, part.first_id
        shadow_entry = None
        if view.bad_row is not None:
            shadow_entry = _writer_of(view.bad_row)
            if shadow_entry < n:  # a row before this chunk, in a tile it shares (incremental runs)
                problems.append(view.bad_row_problem(shadow_entry))
                stop = True
                break
        link_leaves = _link_leaves(store, entries) if deep else {}
        derived = _derived(store, entries) if deep else None
        for idx, data in entries:
            if idx != n:
                problems.append(Problem("missing_entry", f"entry {n} is missing (the next stored entry is {idx})",
                                        index=n))
                stop = True
                break
            data = bytes(data)
            leaf = sha256(b"\x00" + data).digest()
            frontier, stored = append_leaf(n, frontier, leaf)
            for sid, h in stored:
                got = nodes[sid - base]
                if got != h:
                    if got is None:
                        problems.append(Problem("bad_tree_node", f"tree node {sid} (written by entry {n}) is "
                                                f"missing{view.why_missing(sid)}", index=n))
                    elif sid == stored[0][0]:
                        problems.append(_leaf_problem(store, n, leaf, view))
                    else:
                        problems.append(Problem("bad_tree_node", f"tree node {sid} (completed by entry {n}"
                                                f"{view.where(sid)}) differs from the recomputed subtree hash",
                                                index=n))
                    stop = True
                    break
            if not stop and n == shadow_entry:
                problems.append(view.bad_row_problem(n))
                stop = True
            if not stop and deep:
                p = _deep_check(n, data, link_leaves, derived)
                if p:
                    problems.append(p)
                    stop = True
            if stop:
                break
            n += 1
            if n in by_size:
                root = merkle.fold(frontier)
                for cid, signed_root in by_size[n]:
                    if root != signed_root:
                        problems.append(Problem("rewritten_history", f"the tree of the first {n} entries does not "
                                                f"have the root checkpoint #{cid} signed: entries before index {n} "
                                                f"were changed", index=n - 1, checkpoint=cid))
                        stop = True
            if stop:
                break
        report.entries_checked = n - start
        if progress:
            progress(n, size)
        if stop:
            break

    # 4. Consecutive checkpoints are consistent (proofs from the stored nodes, roots from the notes).
    if not stop:
        ordered = sorted({(s, root) for _, s, root in signed})
        with store.read() as r:
            for (s1, r1), (s2, r2) in zip(ordered, ordered[1:]):
                try:
                    plan = merkle.consistency_plan(s1, s2)
                    proof = merkle.build_proof(plan, r.nodes(merkle.plan_indices(plan)))
                    merkle.verify_consistency(s1, s2, r1, r2, proof)
                except ProofError as err:
                    problems.append(Problem("inconsistent_checkpoints", f"checkpoints of size {s1} and {s2}: {err}"))
                    break

    report.seconds = time.perf_counter() - t0
    if report.ok and signed:
        best = max((c for c in signed if c[1] <= size), key=lambda c: (c[1], c[0]))
        with store.write() as w:
            w.record_verified(best[0], best[1], now_rfc3339())
    return report


class _StoredView:
    """A chunk's stored hashes as verify reads them, by stored id: from the tile for a tile the
    verified tree has completed (``complete_tiles``), else from the ``tree_nodes`` row (a later
    append may have completed the tile since: the rows are what the tree of this size wrote),
    else from a tile anyway. Also finds the first ``tree_nodes`` row that disagrees with the
    complete tile covering it."""

    def __init__(self, part: NodeChunk, tile_size: int, complete_tiles: int) -> None:
        k, base, end = tile_size, part.first_id, part.end_id
        self.tile_size, self.base = k, base
        hashes: list[bytes | None] = [None] * (end - base)
        tiles = dict(part.tiles)
        self.bad_tiles: dict[int, str] = {}
        good: dict[int, bytes] = {}
        for t in range(base // k, min(complete_tiles, -(-end // k))):
            blob = tiles.get(t)
            if blob is None:
                self.bad_tiles[t] = "is missing"
            elif len(blob) != k * HASH_SIZE:
                self.bad_tiles[t] = f"holds {len(blob)} bytes, not {k * HASH_SIZE}"
            else:
                good[t] = blob
                lo, hi = max(base, t * k), min(end, t * k + k)
                o = (lo - t * k) * HASH_SIZE
                hashes[lo - base:hi - base] = [blob[p:p + HASH_SIZE]
                                               for p in range(o, o + (hi - lo) * HASH_SIZE, HASH_SIZE)]
        tail = complete_tiles * k  # ids from here on are read from their rows
        self.bad_row: int | None = None
        rows, r, nrows = part.rows, 0, len(part.rows)
        while r < nrows:
            i, h = rows[r]
            if i >= tail:
                if i >= base:
                    hashes[i - base] = h
                r += 1
                continue
            t, o = divmod(i, k)
            blob = good.get(t)
            if (o == 0 and blob is not None and r + k <= nrows and rows[r + k - 1][0] == i + k - 1
                    and b"".join([x for _, x in rows[r:r + k]]) == blob):
                r += k  # a whole tile's worth of rows, all equal to it (a migrated ledger's rows)
                continue
            if self.bad_row is None and blob is not None and blob[o * HASH_SIZE:(o + 1) * HASH_SIZE] != h:
                self.bad_row = i
            r += 1
        # A tail hash without a row, in a tile completed after the size verified (entries were
        # deleted after it was written): read from that tile, like the ledger's reads would.
        for t, blob in part.tiles:
            if t >= complete_tiles and len(blob) == k * HASH_SIZE:
                for i, h in tile_hashes(t, blob, k, base, end):
                    if hashes[i - base] is None:
                        hashes[i - base] = h
        self.hashes = hashes
        self.complete_tiles = complete_tiles

    def where(self, sid: int) -> str:
        t = sid // self.tile_size
        return f", in tile {t}" if t < self.complete_tiles else ""

    def why_missing(self, sid: int) -> str:
        t = sid // self.tile_size
        if t in self.bad_tiles:
            k = self.tile_size
            return f": tile {t} (tree nodes {t * k}..{t * k + k - 1}) {self.bad_tiles[t]}"
        return ""

    def bad_row_problem(self, writer: int) -> Problem:
        sid = self.bad_row
        assert sid is not None
        return Problem("bad_tree_node", f"the tree_nodes row of tree node {sid} (written by entry {writer}) "
                       f"disagrees with tile {sid // self.tile_size}, which also holds it", index=writer)

    def ids_of(self, h: bytes) -> list[int]:
        return [self.base + j for j, x in enumerate(self.hashes) if x == h]


def _writer_of(stored_id: int) -> int:
    """The entry whose append wrote stored hash ``stored_id`` (the last leaf at or before it)."""
    lo, hi = 0, stored_id  # stored_hash_index(0, n) >= n: the answer is at most stored_id
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if merkle.stored_hash_index(0, mid) <= stored_id:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _leaf_problem(store: Store, n: int, leaf: bytes, view: _StoredView) -> Problem:
    """A leaf mismatch: say "reordered" if the bytes' hash is another index's stored leaf."""
    candidates = view.ids_of(leaf)
    if not candidates:  # not in this chunk: look in the whole node table (failure path only)
        with store.read() as r:
            candidates = r.leaf_ids_with_hash(leaf)
    for sid in candidates:
        other = _leaf_index(sid)
        if other is not None and other != n:
            return Problem("reordered_entry", f"entry {n} holds the bytes that belong at index {other}", index=n)
    return Problem("modified_record", f"entry {n} was modified: its bytes no longer hash to its leaf in the tree",
                   index=n)


def _leaf_index(stored_id: int) -> int | None:
    """The leaf index whose stored index is ``stored_id``, or None if it is an interior node."""
    lo, hi = 0, stored_id + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if merkle.stored_hash_index(0, mid) < stored_id:
            lo = mid + 1
        else:
            hi = mid
    return lo if merkle.stored_hash_index(0, lo) == stored_id else None


def _link_leaves(store: Store, entries: list[tuple[int, bytes]]) -> dict[int, bytes]:
    ids: set[int] = set()
    for _, data in entries:
        try:  # damaged bytes are reported by the leaf check in the streaming loop, not here
            ids.update(ln["id"] for ln in parse_json(bytes(data)).get("links", []) if isinstance(ln["id"], int))
        except (CustodyError, KeyError, TypeError, AttributeError):
            continue
    with store.read() as r:
        nodes = r.nodes([merkle.stored_hash_index(0, i) for i in ids])
    return {i: nodes[merkle.stored_hash_index(0, i)] for i in ids if merkle.stored_hash_index(0, i) in nodes}


def _derived(store: Store, entries: list[tuple[int, bytes]]) -> Any:
    if not entries:
        return None
    with store.read() as r:
        return r.derived_rows(entries[0][0], entries[-1][0] + 1)


def _deep_check(n: int, data: bytes, link_leaves: dict[int, bytes], derived: Any) -> Problem | None:
    try:
        doc = parse_json(data)
        if canonical_json(doc) != data:
            return Problem("modified_record", f"entry {n} is not in canonical form", index=n)
    except CustodyError as err:
        return Problem("modified_record", f"entry {n} is not valid JSON: {err}", index=n)
    if not isinstance(doc, dict) or not all(isinstance(ln, dict) and isinstance(ln.get("id"), int)
                                            for ln in doc.get("links", [])):
        return Problem("modified_record", f"entry {n} does not have the shape of a record", index=n)
    for ln in doc.get("links", []):
        if ln["id"] >= n or link_leaves.get(ln["id"], b"").hex() != ln.get("leaf"):
            return Problem("bad_link", f"entry {n} links to entry {ln['id']} with a leaf hash the tree does not hold",
                           index=n)
    if derived is not None:
        cols, links, sealed = derived
        if cols.get(n) != (doc.get("kind"), doc.get("subject")):
            return Problem("bad_index_row", f"entry {n}: the kind/subject columns {cols.get(n)} disagree with its "
                           f"leaf ({doc.get('kind')}, {doc.get('subject')})", index=n)
        if links.get(n, set()) != {(ln["id"], ln["rel"]) for ln in doc.get("links", [])}:
            return Problem("bad_link", f"entry {n}: the links table disagrees with the links in its leaf", index=n)
        if sealed.get(n, set()) != set(doc.get("sealed", {})):
            return Problem("missing_sealed_value", f"entry {n}: sealed values {sorted(sealed.get(n, set()))} "
                           f"disagree with the commitments in its leaf {sorted(doc.get('sealed', {}))}", index=n)
    return None
