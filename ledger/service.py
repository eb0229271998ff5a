"""The ledger service: sequence → integrate → publish; prove; trace; erase and hold.

* **Sequencing** validates records (outside any lock), then, inside the one write transaction,
  assigns dense indices, resolves links and idempotency keys, stamps the ledger's time and
  seals sensitive fields.
* **Integration** hashes the leaves and adds every completed subtree to the node table, in the
  same transaction. When ``append`` returns, that transaction has committed: the entries are
  durable and provable (Tessera's contract: nothing is acknowledged before it is durable).
* **Publishing** signs a checkpoint (a C2SP signed note) for the new size, per batch or on an
  interval, in a transaction of its own. Every checkpoint is kept.

Verification lives in ``ledger.verify``; this class only reads and appends.
"""

from __future__ import annotations

import base64
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.errors import (
    Conflict,
    CustodyError,
    InvalidInput,
    LegalHoldActive,
    NotFound,
    RecordTooLarge,
    SubjectErased,
    UnknownLink,
)
from ledger.keyring import Keyring
from ledger.keys import sign_note
from ledger.records import (
    DEFAULT_MAX_RECORD_BYTES,
    Kind,
    Record,
    leaf_bytes,
    leaf_document,
    parse_json,
    request_fingerprint,
    validate,
)
from ledger.store import CheckpointRow, EntryRow, LinkRow, Reader, SealedRow, Store, Writer

log = logging.getLogger(__name__)
LEDGER_PRODUCER = "custody"
# Kinds shared by huge numbers of records: trace shows them but does not walk back from them.
TRACE_HUBS = frozenset({Kind.MODEL_VERSION.value, Kind.POLICY.value})
# Records *about* reading evidence: a trace shows those that point into the chain, but never walks
# on from them — else every read would join the chains it read, and grow every later trace.
TRACE_LEAVES = frozenset({Kind.ACCESS.value})


# A batch this large pauses the cyclic garbage collector while it is validated and sequenced.
GC_PAUSE_MIN_BATCH = 64
_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextmanager
def gc_paused(n: int) -> Iterator[None]:
    """Pause the cyclic GC for a batch of ``n`` records (``n`` >= ``GC_PAUSE_MIN_BATCH``).

    A batch creates tens of thousands of small containers (the caller's dicts, validated records,
    rows, results) that all stay alive until it commits. Every generation-0 collection that runs
    meanwhile rescans them and finds no garbage: about 15 % of a 1,000-record append (BENCHMARKS.md).
    Nothing in a batch needs the collector (reference counting frees what dies), so it is paused
    and resumed afterwards. Threads share the collector, hence a count: it resumes when the last
    overlapping batch ends, and only if it was running when the first began.
    """
    global _gc_pausers, _gc_was_enabled
    if n < GC_PAUSE_MIN_BATCH:
        yield
        return
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LedgerConfig:
    origin: str
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_batch: int = 100_000
    # Publish a checkpoint after an append once this many seconds have passed since the last one
    # (0: after every batch) or once this many entries are waiting, whichever comes first.
    checkpoint_interval: float = 0.0
    checkpoint_max_pending: int = 100_000


@dataclass(frozen=True)
class Appended:
    id: int
    leaf_hash: str
    ledger_time: str
    existing: bool = False  # True when an idempotent retry returned an earlier entry

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "leaf_hash": self.leaf_hash, "ledger_time": self.ledger_time, "existing": self.existing}


@dataclass(frozen=True)
class SignedCheckpoint:
    id: int
    size: int
    root: bytes
    note: str
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "size": self.size, "root": base64.b64encode(self.root).decode(),
                "root_hex": self.root.hex(), "note": self.note, "created_at": self.created_at}


@dataclass
class Trace:
    root: int
    nodes: dict[int, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"root": self.root, "nodes": [self.nodes[k] for k in sorted(self.nodes)],
                "edges": sorted(self.edges, key=lambda e: (e["src"], e["dst"], e["rel"])), "truncated": self.truncated}


@dataclass
class _Sequenced:
    """What sequencing decided for one batch, ready to integrate."""

    start: int
    entries: list[EntryRow] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    links: list[LinkRow] = field(default_factory=list)
    sealed: list[SealedRow] = field(default_factory=list)
    results: list[Appended] = field(default_factory=list)


def _cp(row: CheckpointRow) -> SignedCheckpoint:
    return SignedCheckpoint(row.id, row.size, row.root, row.note, row.created_at)


class Ledger:
    """Append, read and prove. Construct with a migrated store and the ledger's keyring."""

    def __init__(self, store: Store, keyring: Keyring, config: LedgerConfig,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        # Where ``ledger_time`` comes from (an aware UTC datetime). Only tests replace it: SLA
        # tests need exact gaps between records (see ledger.review).
        self.clock = clock
        self.keyring = keyring
        self.config = config
        self._sealer = keyring.sealer()
        self._frontier: tuple[int, list[bytes]] = (0, [])  # compact range cache: immutable per size
        self._last_publish = 0.0
        self._published_size = 0

    def now(self) -> str:
        """The ledger's time, as stamped on records (fixed width, so string order is time order)."""
        return self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # --- sequencing ----------------------------------------------------------------------------

    def parse_batch(self, raw: bytes | str) -> list[dict[str, Any]]:
        """JSON Lines (or one JSON object / array) into record dicts; errors name the line."""
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InvalidInput(f"input is not valid UTF-8 (byte {err.start})") from None
        stripped = raw.strip()
        if not stripped:
            raise InvalidInput("no records in the input")
        if stripped[0] == "[":
            items = parse_json(stripped, what="input")
            if not isinstance(items, list):
                raise InvalidInput("input is not a JSON array of records")
            return items
        out = []
        for n, line in enumerate(raw.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
            if line.strip():
                out.append(parse_json(line.rstrip("\r"), what=f"line {n}", max_bytes=self.config.max_record_bytes))
        return out

    def _validate(self, items: Sequence[Any], ledger_kinds: bool) -> list[tuple[Record, bool | bytes]]:
        if not items:
            raise InvalidInput("no records to append")
        if len(items) > self.config.max_batch:
            raise InvalidInput(f"a batch holds at most {self.config.max_batch} records; got {len(items)}")
        recs = []
        keys: set[str] = set()
        for pos, item in enumerate(items):
            try:
                rec, fast = validate(item, allow_ledger_kinds=ledger_kinds)
                for link in rec.links:
                    if link.batch is not None and link.batch >= pos:
                        raise UnknownLink(f"links: 'batch' {link.batch} must name an earlier record of this batch")
                if rec.idempotency_key is not None:
                    if rec.idempotency_key in keys:
                        raise Conflict(f"idempotency key {rec.idempotency_key!r} is used twice in one batch")
                    keys.add(rec.idempotency_key)
            except (InvalidInput, Conflict) as err:
                raise type(err)(f"record {pos}: {err}" if len(items) > 1 else str(err)) from None
            recs.append((rec, fast))
        return recs

    def append(self, items: Sequence[Any], *, publish: bool = True, trusted: bool = False,
               check: Callable[[Reader], None] | None = None) -> list[Appended]:
        """Append one batch atomically; returns only after it is durable. Nothing is appended on error.

        ``trusted`` is for Custody's own front ends (CLI, API) appending access records and legal
        holds, kinds a client may not send (``records.LEDGER_ONLY``). ``check`` runs first inside
        the write transaction (writers are serialised there), so a precondition it raises on
        cannot change before the append: e.g. "this item still waits for review"."""
        with gc_paused(len(items)):
            recs = self._validate(items, ledger_kinds=trusted)
            fps = [request_fingerprint(i) if r.idempotency_key else None for i, (r, _) in zip(items, recs, strict=True)]
            with self.store.write() as w:
                if check is not None:
                    check(w)
                out, size, frontier = self._sequence_and_integrate(w, recs, fps)
        self._after_commit(size, frontier, out, publish)
        return out

    def _after_commit(self, size: int, frontier: list[bytes], out: list[Appended], publish: bool) -> None:
        """Cache the compact range and publish. The entries are durable: a publishing failure is
        logged, never reported as a failed append (a retry without an idempotency key would duplicate)."""
        self._frontier = (size, frontier)
        if publish:
            try:
                self.publish(force=False)
            except CustodyError as err:
                log.warning("appended entries %d..%d but could not publish a checkpoint: %s",
                            out[0].id, out[-1].id, err)

    def _sequence_and_integrate(self, w: Writer, recs: Sequence[tuple[Record, bool | bytes]],
                                fps: Sequence[bytes | None]) -> tuple[list[Appended], int, list[bytes]]:
        """Both steps, in the caller's write transaction (so they commit, or vanish, together)."""
        seq = self._sequence(w, recs, fps)
        size, frontier = self._integrate(w, seq)
        return seq.results, size, frontier

    def _sequence(self, w: Writer, recs: Sequence[tuple[Record, bool | bytes]],
                  fps: Sequence[bytes | None]) -> _Sequenced:
        """Give each new record its index and its final bytes: resolve idempotency keys and links,
        seal sensitive fields, stamp the ledger's time. Writes only subject keys."""
        size = w.size()
        seq = _Sequenced(start=size)
        existing = w.by_idempotency_keys([r.idempotency_key for r, _ in recs if r.idempotency_key])

        # Links: every target must exist, in the ledger or earlier in this batch.
        targets = sorted({ln.id for r, _ in recs for ln in r.links if ln.id is not None})
        bad = [t for t in targets if t >= size]
        if bad:
            raise UnknownLink(f"links: record {bad[0]} does not exist (the ledger has {size} records)")
        target_leaves = w.nodes([merkle.stored_hash_index(0, t) for t in targets]) if targets else {}

        ledger_time = self.now()
        # Links by batch position or to earlier lines need each line's index and leaf; a batch
        # without links (the common case) keeps no such bookkeeping.
        linked = any(r.links for r, _ in recs)
        batch_ids: list[int] = []
        batch_leaf: dict[int, bytes] = {}
        subject_keys: dict[str, bytes] = {}
        batch_holds: dict[tuple[str, str], bool] = {}  # (subject, case) → active, after earlier lines
        max_bytes = self.config.max_record_bytes
        entries, leaves, results = seq.entries, seq.leaves, seq.results
        leaf_hash = merkle.leaf_hash
        no_links: list[dict[str, Any]] = []
        no_commitments: dict[str, str] = {}
        for pos, ((rec, fast), fp) in enumerate(zip(recs, fps, strict=True)):
            try:
                if existing and rec.idempotency_key in existing:
                    idx, prior_fp = existing[rec.idempotency_key]
                    if prior_fp != fp:
                        raise Conflict(f"idempotency key {rec.idempotency_key!r} was used for a different "
                                       f"record (entry {idx})")
                    prior = w.entry(idx)
                    assert prior is not None
                    leaf = leaf_hash(prior.data)
                    batch_ids.append(idx)
                    batch_leaf[idx] = leaf
                    results.append(Appended(idx, leaf.hex(), prior.ledger_time, existing=True))
                    continue
                idx = size
                resolved = no_links
                if rec.links:
                    resolved = []
                    for ln in rec.links:
                        dst = ln.id if ln.id is not None else batch_ids[ln.batch]  # type: ignore[index]
                        leaf_of_dst = batch_leaf.get(dst) or target_leaves[merkle.stored_hash_index(0, dst)]
                        resolved.append({"rel": ln.rel, "id": dst, "leaf": leaf_of_dst.hex()})
                        seq.links.append(LinkRow(idx, dst, ln.rel))
                    if len({(x["rel"], x["id"]) for x in resolved}) != len(resolved):
                        raise InvalidInput("links: the same link is listed twice")
                commitments = no_commitments
                if rec.sensitive:
                    commitments = {}
                    key = self._subject_key(w, rec.subject, subject_keys)  # type: ignore[arg-type]
                    for fname, value in sorted(rec.sensitive.items()):
                        c, blob = self._sealer.seal(key, fname, value)
                        commitments[fname] = c
                        seq.sealed.append(SealedRow(idx, fname, rec.subject, blob))  # type: ignore[arg-type]
                if rec.kind is Kind.LEGAL_HOLD:
                    self._check_hold_change(w, rec, batch_holds)
                data = leaf_bytes(leaf_document(rec, ledger_time=ledger_time, links=resolved, sealed=commitments), fast)
                if len(data) > max_bytes:
                    raise RecordTooLarge(f"the record is {len(data)} bytes as stored; the limit is "
                                         f"{max_bytes} bytes")
            except (InvalidInput, Conflict, SubjectErased) as err:
                raise type(err)(f"record {pos}: {err}" if len(recs) > 1 else str(err)) from None
            leaf = leaf_hash(data)
            entries.append(EntryRow(idx, data, rec.kind.value, rec.subject, ledger_time, rec.idempotency_key, fp))
            leaves.append(leaf)
            if linked:
                batch_ids.append(idx)
                batch_leaf[idx] = leaf
            results.append(Appended(idx, leaf.hex(), ledger_time))
            size += 1
        return seq

    def _integrate(self, w: Writer, seq: _Sequenced) -> tuple[int, list[bytes]]:
        """Add the sequenced leaves to the tree: O(log n) new nodes per leaf, all rows inserted in the
        caller's transaction. Returns the new size and compact range."""
        size = seq.start
        cached_size, frontier = self._frontier
        if cached_size != size:  # another writer (thread or process) appended since: read the range
            addrs = [merkle.stored_hash_index(*a) for a in merkle.frontier_addresses(size)]
            nodes = w.nodes(addrs)
            frontier = [nodes[i] for i in addrs]
        new_nodes: list[tuple[int, bytes]] = []
        for leaf in seq.leaves:
            frontier, stored = merkle.append_leaf(size, frontier, leaf)
            new_nodes.extend(stored)
            size += 1
        if seq.entries:
            w.insert_entries(seq.entries)
            w.insert_nodes(new_nodes)
            w.insert_links(seq.links)
            w.insert_sealed(seq.sealed)
        return size, frontier

    def _subject_key(self, w: Writer, subject: str, cache: dict[str, bytes]) -> bytes:
        if subject in cache:
            return cache[subject]
        wrapped = w.subject_key(subject)
        if wrapped is not None:
            key = self._sealer.unwrap(subject, wrapped)
        else:
            erased = w.subject_entries(subject, Kind.ERASURE.value)
            if erased:
                raise SubjectErased(f"subject {subject!r} was erased (entry {erased[0].idx}); "
                                    f"new sensitive data for it is refused")
            key, wrapped = self._sealer.new_subject_key(subject)
            w.put_subject_key(subject, wrapped, now_rfc3339())
        cache[subject] = key
        return key

    # --- legal holds and erasure -------------------------------------------------------------------

    @staticmethod
    def active_holds(r: Reader, subject: str) -> dict[str, int]:
        """case id → index of the legal_hold record that placed a still-active hold."""
        active: dict[str, int] = {}
        for e in r.subject_entries(subject, Kind.LEGAL_HOLD.value):
            body = parse_json(e.data)["body"]
            if body["action"] == "place":
                active[body["case_id"]] = e.idx
            else:
                active.pop(body["case_id"], None)
        return active

    def _check_hold_change(self, w: Writer, rec: Record, batch: dict[tuple[str, str], bool]) -> None:
        """A hold is placed only if not active, released only if active — counting earlier lines of
        the same batch, whose records are not in the database yet."""
        subject, case = rec.subject, rec.body["case_id"]
        key = (subject, case)
        active = batch[key] if key in batch else case in self.active_holds(w, subject)  # type: ignore[arg-type]
        if rec.body["action"] == "place" and active:
            raise Conflict(f"subject {subject!r} is already on hold for case {case!r}")
        if rec.body["action"] == "release" and not active:
            raise Conflict(f"subject {subject!r} has no active hold for case {case!r} to release")
        batch[key] = rec.body["action"] == "place"  # type: ignore[index]

    def holds(self, subject: str) -> dict[str, int]:
        with self.store.read() as r:
            return self.active_holds(r, subject)

    def erase(self, subject: str, *, reason: str, requested_by: str) -> Appended:
        """Crypto-shred a subject: append an ``erasure`` record and destroy the subject's key, atomically.

        Refused while any legal hold on the subject is active. Proofs are unaffected: leaves hold
        only commitments, and the commitments stay.
        """
        rec = validate({"kind": "erasure", "producer": LEDGER_PRODUCER, "produced_at": now_rfc3339(),
                               "subject": subject, "body": {"reason": reason, "requested_by": requested_by}},
                        allow_ledger_kinds=True)
        with self.store.write() as w:
            holds = self.active_holds(w, subject)
            if holds:
                cases = ", ".join(f"{c!r} (entry {i})" for c, i in sorted(holds.items()))
                raise LegalHoldActive(f"subject {subject!r} is under legal hold for case {cases}; "
                                      f"release the hold before erasing")
            prior = w.subject_entries(subject, Kind.ERASURE.value)
            if prior:
                raise Conflict(f"subject {subject!r} was already erased (entry {prior[0].idx})")
            out, size, frontier = self._sequence_and_integrate(w, [rec], [None])
            w.destroy_subject_key(subject)
        self._after_commit(size, frontier, out, True)
        return out[0]

    def reveal(self, idx: int) -> dict[str, Any]:
        """Decrypt a record's sealed fields: field → {value, salt} (a disclosure a verifier can check)."""
        with self.store.read() as r:
            entry = self._entry(r, idx)
            rows = r.sealed(idx)
            if not rows:
                return {}
            wrapped = r.subject_key(rows[0].subject)
        if wrapped is None:
            raise SubjectErased(f"record {idx}: subject {rows[0].subject!r} was erased; its sealed fields are gone")
        key = self._sealer.unwrap(rows[0].subject, wrapped)
        commitments = parse_json(entry.data)["sealed"]
        out = {}
        for row in rows:
            value, salt = self._sealer.open(key, row.field, commitments[row.field], row.blob)
            out[row.field] = {"value": value, "salt": base64.b64encode(salt).decode()}
        return out

    # --- publishing ------------------------------------------------------------------------------

    def publish(self, *, force: bool = True) -> SignedCheckpoint | None:
        """Sign a checkpoint for the current size unless one covers it already.

        With ``force=False`` this follows the configured interval / pending-entries policy.
        """
        if not force and self.config.checkpoint_interval > 0:
            pending = self._frontier[0] - self._published_size
            if (time.monotonic() - self._last_publish < self.config.checkpoint_interval
                    and pending < self.config.checkpoint_max_pending):
                return None
        with self.store.write() as w:
            size = w.size()
            latest = w.latest_checkpoint()
            if latest is not None and latest.size == size:
                self._last_publish = time.monotonic()
                return _cp(latest) if force else None
            root = self._root(w, size)
            body = Checkpoint(self.config.origin, size, root).body()
            note = sign_note(body, [self.keyring.signer()])
            created = now_rfc3339()
            cid = w.insert_checkpoint(size, root, note, created)
        self._last_publish = time.monotonic()
        self._published_size = size
        return SignedCheckpoint(cid, size, root, note, created)

    # --- reading and proving -------------------------------------------------------------------

    def size(self) -> int:
        with self.store.read() as r:
            return r.size()

    def _root(self, r: Reader, size: int) -> bytes:
        cached_size, cached = self._frontier  # read once: another thread may replace it
        if size == cached_size:
            return merkle.fold(cached)
        addrs = merkle.frontier_addresses(size)
        nodes = r.nodes([merkle.stored_hash_index(*a) for a in addrs])
        return merkle.fold([nodes[merkle.stored_hash_index(*a)] for a in addrs])

    def root(self, size: int | None = None) -> bytes:
        with self.store.read() as r:
            n = r.size()
            size = n if size is None else size
            if not 0 <= size <= n:
                raise InvalidInput(f"size {size} is beyond the tree (size {n})")
            return self._root(r, size)

    @staticmethod
    def _entry(r: Reader, idx: int) -> EntryRow:
        if idx < 0:
            raise InvalidInput(f"record id {idx} is negative")
        e = r.entry(idx)
        if e is None:
            raise NotFound(f"record {idx} does not exist (the ledger has {r.size()} records)")
        return e

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self.store.read() as r:
            row = r.latest_checkpoint()
        return _cp(row) if row else None

    def checkpoint(self, checkpoint_id: int) -> SignedCheckpoint:
        with self.store.read() as r:
            row = r.checkpoint(checkpoint_id)
        if row is None:
            raise NotFound(f"checkpoint {checkpoint_id} does not exist")
        return _cp(row)

    def checkpoints(self) -> list[SignedCheckpoint]:
        with self.store.read() as r:
            return [_cp(c) for c in r.checkpoints()]

    def _checkpoint_for(self, r: Reader, size: int | None) -> tuple[int, SignedCheckpoint | None]:
        """The size to prove against: ``size`` if given, else the latest checkpoint's."""
        if size is not None:
            n = r.size()
            if not 0 <= size <= n:
                raise InvalidInput(f"size {size} is beyond the tree (size {n})")
            match = r.checkpoint_at(size)
            return size, (_cp(match) if match else None)
        latest = r.latest_checkpoint()
        if latest is None:
            raise NotFound("no checkpoint has been published yet (run `custody checkpoint`)")
        return latest.size, _cp(latest)

    def get(self, idx: int, *, proof: bool = False, size: int | None = None) -> dict[str, Any]:
        with self.store.read() as r:
            e = self._entry(r, idx)
            out: dict[str, Any] = {"id": idx, "leaf_hash": merkle.leaf_hash(e.data).hex(),
                                   "record": parse_json(e.data)}
            if proof:
                out["inclusion"] = self._inclusion(r, idx, size)
        return out

    def prove_inclusion(self, idx: int, size: int | None = None) -> dict[str, Any]:
        with self.store.read() as r:
            if idx < 0:
                raise InvalidInput(f"record id {idx} is negative")
            return self._inclusion(r, idx, size)

    def _inclusion(self, r: Reader, idx: int, size: int | None) -> dict[str, Any]:
        """A proof needs no entry bytes: the plan's O(log n) nodes (and the leaf) in one read."""
        n, cp = self._checkpoint_for(r, size)
        if idx >= n:
            total = r.size()
            if idx >= total:
                raise NotFound(f"record {idx} does not exist (the ledger has {total} records)")
            raise InvalidInput(f"record {idx} is not in the tree of size {n}"
                               + ("" if size is not None else " (the latest checkpoint; run `custody checkpoint`)"))
        plan = merkle.inclusion_plan(idx, n)
        leaf_id = merkle.stored_hash_index(0, idx)
        want = merkle.plan_indices(plan) + [leaf_id]
        if cp is None:
            want += [merkle.stored_hash_index(*a) for a in merkle.frontier_addresses(n)]
        nodes = r.nodes(want)
        root = cp.root if cp else merkle.fold([nodes[merkle.stored_hash_index(*a)] for a in merkle.frontier_addresses(n)])
        return {"index": idx, "size": n, "leaf_hash": nodes[leaf_id].hex(),
                "proof": [h.hex() for h in merkle.build_proof(plan, nodes)], "root": root.hex(),
                "checkpoint": cp.note if cp else None}

    def prove_consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        """Proof and both roots from one read of O(log n) stored nodes."""
        with self.store.read() as r:
            n = r.size()
            new = n if new is None else new
            if not 0 <= old <= new:
                raise InvalidInput(f"old size {old} must be between 0 and new size {new}")
            if new > n:
                raise InvalidInput(f"size {new} is beyond the tree (size {n})")
            plan = merkle.consistency_plan(old, new)
            ends = {s: [merkle.stored_hash_index(*a) for a in merkle.frontier_addresses(s)] for s in (old, new)}
            nodes = r.nodes(sorted(set(merkle.plan_indices(plan)) | set(ends[old]) | set(ends[new])))
            proof = merkle.build_proof(plan, nodes)
            roots = {s: merkle.fold([nodes[i] for i in ids]) for s, ids in ends.items()}
            return {"old_size": old, "new_size": new, "old_root": roots[old].hex(),
                    "new_root": roots[new].hex(), "proof": [h.hex() for h in proof]}

    def trace(self, idx: int, *, max_nodes: int = 10_000) -> Trace:
        """The connected chain of ``idx`` through links, both directions (breadth-first).

        Hubs (model versions, policies) appear in the graph but the walk does not go back
        through them, or every trace would hold every generation the model ever made.
        """
        t = Trace(root=idx)
        seen_edges: set[tuple[int, int, str]] = set()
        with self.store.read() as r:
            self._entry(r, idx)
            queue = deque([idx])
            queued = {idx}
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), 500))]
                for i in batch:
                    t.nodes[i] = self._node_summary(r, i)
                walk = [i for i in batch if t.nodes[i]["kind"] not in TRACE_LEAVES or i == idx]
                expand_back = [i for i in walk if t.nodes[i]["kind"] not in TRACE_HUBS or i == idx]
                for ln in r.links_from(walk) + r.links_to(expand_back):
                    key = (ln.src, ln.dst, ln.rel)
                    if key not in seen_edges:
                        seen_edges.add(key)
                        t.edges.append({"src": ln.src, "dst": ln.dst, "rel": ln.rel})
                    for other in (ln.src, ln.dst):
                        if other not in queued:
                            if len(queued) >= max_nodes:
                                t.truncated = True
                                continue
                            queued.add(other)
                            queue.append(other)
        t.edges = [e for e in t.edges if e["src"] in t.nodes and e["dst"] in t.nodes]
        return t

    def _node_summary(self, r: Reader, i: int) -> dict[str, Any]:
        e = self._entry(r, i)
        doc = parse_json(e.data)
        return {"id": i, "kind": e.kind, "leaf_hash": merkle.leaf_hash(e.data).hex(), "ledger_time": e.ledger_time,
                "producer": doc["producer"], "subject": e.subject,
                "body": doc["body"]}
