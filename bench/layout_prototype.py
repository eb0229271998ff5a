#!/usr/bin/env python
"""Issue 2's batched-append target (≥ 1.5× pymerkle): could another storage layout reach it?

On demand, a throwaway-grade prototype, not the ledger. It times the whole per-record path of a
durable batched append — records in → validated → canonical leaf bytes → leaf hash → Merkle tree →
durably stored and provable — for a layout the ledger does not use yet, beside pymerkle 7's
``SqliteTree.append_entries`` on the same records in the same run (``bench_ledger.make_records``;
pymerkle is handed ``json.dumps(record, sort_keys=True)``, timed on its side, as in bench_ledger):

* validation with **msgspec** (one ``convert`` of the batch into tagged per-kind structs with the
  same required fields, types and patterns as ``ledger.records``; pydantic stays in the ledger);
* leaf bytes with **orjson** (the fast path the ledger uses since `c051058`);
* the ledger's own ``merkle.append_leaf`` for the tree;
* storage in the **Tessera / C2SP tlog-tiles** manner: one *entry bundle* row per batch (the leaf
  bytes concatenated, with their offsets), one row per batch for the new hashes (a tile-like blob),
  and per-record index rows only where a record needs one (here the ``(kind, ledger_time)`` index
  for the kinds read by time: safety and review decisions, 20 % of this mix). SQLite WAL +
  ``synchronous=FULL``, ``BEGIN IMMEDIATE`` … ``COMMIT`` per batch.

What it leaves out, and the ledger would need: reading a record by index from a bundle, verify and
tamper detection over bundles, the partial-tile bookkeeping, links, sealed fields, idempotency keys,
PostgreSQL. It answers one question: is the target within reach of a layout change, or not at all?

    python bench/layout_prototype.py [--records 100000] [--batch 1000] [--repeat 3]
    python bench/layout_prototype.py --variants [--batch 1000] [--repeat 3] [--only a,b]  # stage split, options
    python bench/layout_prototype.py --gil-check   # does sqlite3 let the GIL go during insert + COMMIT?

``--variants`` (the issue-2 follow-up) runs the path as ``Lean``, one list comprehension per stage so
each stage is timed, with options: the encoder, an RFC 8785 guard, the tree level by level, the GC,
and a pipelined writer thread; pymerkle runs beside it, plain, with the GC off and pipelined too.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing
import queue
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from functools import partial
from itertools import accumulate, chain
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec
import orjson
import rfc8785

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ledger import make_records, pm_bytes, pymerkle_tree

from ledger import merkle
from ledger.records import _fast_path_ok

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]
Time = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")]
Hex64 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class ArtifactBody(msgspec.Struct, forbid_unknown_fields=False):
    sha256: Hex64
    media_type: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    size: Annotated[int, msgspec.Meta(ge=0)]
    storage_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class GenerationBody(msgspec.Struct, forbid_unknown_fields=False):
    surface: Name
    parameters: dict[str, Any] = {}
    seed: int | None = None


class SafetyBody(msgspec.Struct, forbid_unknown_fields=False):
    action: Literal["allow", "hold", "block"]
    policy_id: Name
    policy_version: Name
    pipeline_version: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    risk: Annotated[float, msgspec.Meta(ge=0, le=1)]
    signals: dict[str, Any] = {}


class DistributionBody(msgspec.Struct, forbid_unknown_fields=False):
    action: Literal["publish", "share", "report", "takedown"]
    channel: Name | None = None


class ReviewBody(msgspec.Struct, forbid_unknown_fields=False):
    action: Literal["approve", "reject", "escalate"]
    reviewer: Name
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


def _rec(kind: str, body: Any) -> Any:
    return msgspec.defstruct(f"Rec_{kind}", [("producer", Name), ("produced_at", Time), ("body", body),
                                             ("links", list[dict[str, Any]], []), ("subject", Name | None, None)],
                             tag_field="kind", tag=kind, forbid_unknown_fields=True)


RECORD = Union[_rec("artifact", ArtifactBody), _rec("generation", GenerationBody),  # type: ignore[misc]
               _rec("safety_decision", SafetyBody), _rec("distribution", DistributionBody),
               _rec("review_decision", ReviewBody)]
BY_TIME = frozenset({"safety_decision", "review_decision"})

SCHEMA = """
CREATE TABLE bundles (first INTEGER PRIMARY KEY, n INTEGER NOT NULL, offsets BLOB NOT NULL, data BLOB NOT NULL);
CREATE TABLE tiles (first_node INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
CREATE TABLE by_time (kind TEXT NOT NULL, ledger_time TEXT NOT NULL, idx INTEGER NOT NULL,
                      PRIMARY KEY (kind, ledger_time, idx)) WITHOUT ROWID;
"""


class Prototype:
    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, isolation_level=None)
        assert self.con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.executescript(SCHEMA)
        self.size = 0
        self.frontier: list[bytes] = []

    def append(self, records: list[dict[str, Any]]) -> list[str]:
        recs = msgspec.convert(records, list[RECORD], strict=True)  # raises naming the field on bad input
        ledger_time = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        size, frontier = self.size, self.frontier
        chunks, offsets, node_blobs, by_time, out = [], [], [], [], []
        sha256, dumps, opt, append_leaf = hashlib.sha256, orjson.dumps, orjson.OPT_SORT_KEYS, merkle.append_leaf
        first_node = 2 * size - size.bit_count()
        pos = 0
        # RFC 8785 members in key order, written around the body's canonical bytes: the envelope's
        # strings are pattern-checked names and timestamps (no character JSON would escape).
        tail = f',"ledger_time":"{ledger_time}","links":[],"produced_at":"'.encode()
        for raw, rec in zip(records, recs, strict=True):
            data = b"".join((b'{"body":', dumps(raw["body"], option=opt), b',"kind":"', raw["kind"].encode(), b'"', tail,
                             rec.produced_at.encode(), b'","producer":"', rec.producer.encode(),
                             b'","schema_version":1,"sealed":{}}'))
            leaf = sha256(b"\x00" + data).digest()
            frontier, stored = append_leaf(size, frontier, leaf)
            node_blobs.extend(h for _, h in stored)
            chunks.append(data)
            offsets.append(pos)
            pos += len(data)
            if raw["kind"] in BY_TIME:
                by_time.append((raw["kind"], ledger_time, size))
            out.append(leaf.hex())
            size += 1
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("INSERT INTO bundles VALUES (?, ?, ?, ?)",
                        (self.size, len(records), b"".join(o.to_bytes(4, "big") for o in offsets), b"".join(chunks)))
            con.execute("INSERT INTO tiles VALUES (?, ?)", (first_node, b"".join(node_blobs)))
            if by_time:
                con.executemany("INSERT INTO by_time VALUES (?, ?, ?)", by_time)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.size, self.frontier = size, frontier
        return out


# --- issue 2 follow-up: the same path stage by stage, with options (see BENCHMARKS.md) ----------
#
# ``Lean`` is the prototype's path written as one list comprehension per stage, so each stage can
# be timed and swapped: the encoder (orjson around the body as above, msgspec around the body, or
# msgspec over the whole document), an RFC 8785 guard (the ledger's ``_fast_path_ok`` with the
# ``rfc8785`` fallback: without it the integral floats of this mix, 183 records in 100,000, are
# written "0.0" where RFC 8785 writes "0"), the tree (``merkle.append_leaf`` per leaf, or the
# batch level by level, stored as one row per level), the cyclic GC (on, off, frozen), and the
# commit (in the caller's thread, or pipelined to a writer thread with its own connection).

LEVEL_SCHEMA = ("CREATE TABLE levels (first_node INTEGER PRIMARY KEY, level INTEGER NOT NULL, first INTEGER NOT NULL, "
                "hashes BLOB NOT NULL);")
STAGES = ("validate", "leaf_bytes", "guard", "leaf_hash", "tree", "result", "sql_insert", "commit")
RECLIST = list[RECORD]  # type: ignore[valid-type]
_ENC = msgspec.json.Encoder(order="sorted")
MP = multiprocessing.get_context("fork")


def connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.execute("PRAGMA synchronous=FULL")
    assert con.execute("PRAGMA synchronous").fetchone()[0] == 2
    return con


def levels_append(size: int, frontier: list[bytes], leaves: list[bytes],
                  sha: Any = hashlib.sha256) -> tuple[list[bytes], list[tuple[int, int, list[bytes]]]]:
    """Add ``leaves`` (numbers size, size+1, …) to the tree with compact range ``frontier``, a level
    at a time: returns the new compact range and, per level, (level, first index, the new complete
    nodes of that level). Level l gets the nodes [size >> l, (size + n) >> l); when the first is
    odd, its left sibling is the old frontier's last hash (bit l of size is set)."""
    fr = list(frontier)
    lvl, start, cur = 0, size, leaves
    out = []
    while cur:
        out.append((lvl, start, cur))
        ext = cur
        if start & 1:
            ext = [fr.pop(), *cur]
            start -= 1
        it = iter(ext)
        cur = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it)]
        lvl, start = lvl + 1, start >> 1
    # levels above the last one with new nodes keep their old frontier hashes (not popped above)
    end = size + len(leaves)
    tail = [nodes[-1] for lv, _, nodes in reversed(out) if (end >> lv) & 1]
    return fr + tail, out


class Lean:
    def __init__(self, path: Path, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.con = connect(path)
        self.con.executescript(SCHEMA + LEVEL_SCHEMA)
        self.size = 0
        self.frontier: list[bytes] = []
        self.t = dict.fromkeys(STAGES, 0.0)

    def prepare(self, records: list[dict[str, Any]]) -> tuple[Any, ...]:
        """Everything up to the SQL: validate, leaf bytes, hashes, tree. Advances size and frontier."""
        o, t, T = self.opts, self.t, time.perf_counter
        t0 = T()
        recs = msgspec.convert(records, RECLIST, strict=True)
        t1 = T()
        ledger_time = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        size, n = self.size, len(records)
        if o.enc == "msgspec-doc":  # the envelope is validated (no unknown members): merge and encode once
            enc = _ENC.encode
            extra = {"ledger_time": ledger_time, "links": [], "schema_version": 1, "sealed": {}}
            datas = [enc({**raw, **extra}) for raw in records]
        else:
            dumps = _ENC.encode if o.enc == "msgspec-join" else partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)
            tail = f',"ledger_time":"{ledger_time}","links":[],"produced_at":"'.encode()
            datas = [b"".join((b'{"body":', dumps(raw["body"]), b',"kind":"', raw["kind"].encode(), b'"', tail,
                               rec.produced_at.encode(), b'","producer":"', rec.producer.encode(),
                               b'","schema_version":1,"sealed":{}}')) for raw, rec in zip(records, recs, strict=True)]
        t2 = T()
        if o.guard:  # RFC 8785 where msgspec/orjson would differ from it (the ledger's rule)
            ok = _fast_path_ok
            for i in [i for i, raw in enumerate(records) if not ok(raw["body"])]:
                raw = records[i]
                datas[i] = rfc8785.dumps({"body": raw["body"], "kind": raw["kind"], "ledger_time": ledger_time,
                                          "links": [], "produced_at": raw["produced_at"], "producer": raw["producer"],
                                          "schema_version": 1, "sealed": {}})
        t3 = T()
        sha = hashlib.new if o.hash == "new" else hashlib.sha256
        if o.hash == "new":
            leaves = [sha("sha256", b"\x00" + d).digest() for d in datas]
        else:
            leaves = [sha(b"\x00" + d).digest() for d in datas]
        t4 = T()
        if o.tree == "levels":
            frontier, lv = levels_append(size, self.frontier, leaves)
            tiles = [(merkle.stored_hash_index(level, first), level, first, b"".join(h)) for level, first, h in lv]
        else:
            frontier, append_leaf, blobs = self.frontier, merkle.append_leaf, []
            for i, leaf in enumerate(leaves, size):
                frontier, stored = append_leaf(i, frontier, leaf)
                blobs.extend(h for _, h in stored)
            tiles = [(2 * size - size.bit_count(), b"".join(blobs))]
        t5 = T()
        offsets = struct.pack(f">{n}I", 0, *accumulate(map(len, datas[:-1])))
        by_time = [(raw["kind"], ledger_time, i) for i, raw in enumerate(records, size) if raw["kind"] in BY_TIME]
        out = list(map(bytes.hex, leaves))
        prep = (size, n, offsets, b"".join(datas), tiles, by_time, out)
        t6 = T()
        self.size, self.frontier = size + n, frontier
        t["validate"] += t1 - t0
        t["leaf_bytes"] += t2 - t1
        t["guard"] += t3 - t2
        t["leaf_hash"] += t4 - t3
        t["tree"] += t5 - t4
        t["result"] += t6 - t5
        return prep

    def write(self, con: sqlite3.Connection, prep: tuple[Any, ...], t: dict[str, float]) -> list[str]:
        """One durable transaction for a prepared batch (in whichever thread owns ``con``)."""
        return write_batch(con, prep, self.opts.tree == "levels", t)


def write_batch(con: sqlite3.Connection, prep: tuple[Any, ...], levels: bool, t: dict[str, float]) -> list[str]:
    size, n, offsets, data, tiles, by_time, out = prep
    t0 = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute("INSERT INTO bundles VALUES (?, ?, ?, ?)", (size, n, offsets, data))
        # One statement per table (multi-row VALUES, not executemany): sqlite3 lets the GIL go around
        # every sqlite3_step, and a writer thread then waits for it once per step.
        if levels:
            con.execute("INSERT INTO levels VALUES " + ",".join(["(?,?,?,?)"] * len(tiles)), [*chain(*tiles)])
        else:
            con.execute("INSERT INTO tiles VALUES (?, ?)", tiles[0])
        if by_time:
            con.execute("INSERT INTO by_time VALUES " + ",".join(["(?,?,?)"] * len(by_time)), [*chain(*by_time)])
        t1 = time.perf_counter()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    t["sql_insert"] += t1 - t0
    t["commit"] += time.perf_counter() - t1
    return out


def _process_writer(conn: Any, path: str, levels: bool) -> None:
    """The writer process (as api/sequencer.py does for the HTTP server): commits each prepared batch
    it receives, on its own connection, and answers only after COMMIT returned. A reader thread
    drains the socket, so the caller's send of batch k+1 does not wait for batch k's fsync."""
    con = connect(Path(path))
    t = dict.fromkeys(STAGES, 0.0)
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def reader() -> None:
        while (item := conn.recv()) is not None:
            q.put(item)
        q.put(None)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    failed = None
    while (prep := q.get()) is not None:
        if failed is not None:
            conn.send((False, prep[0], failed))
            continue
        try:
            write_batch(con, (*prep, None), levels, t)
            conn.send((True, prep[0], prep[1]))
        except Exception as err:  # noqa: BLE001 - answered to the caller; later batches fail too
            failed = repr(err)
            conn.send((False, prep[0], failed))
    th.join()
    con.close()
    conn.send({"cpu_s": time.process_time(), **t})


def _pymerkle_process(conn: Any, path: str) -> None:
    tree = pymerkle_tree(Path(path))
    while (entries := conn.recv()) is not None:
        tree.append_entries(entries)
        conn.send(True)
    tree.con.close()
    conn.send(time.process_time())


class PipelinedWriter(threading.Thread):
    """Tessera's shape: the caller sequences and integrates batch k+1 while this thread commits batch
    k on its own connection; a batch's future is resolved only after its COMMIT returned. A failed
    commit fails that batch and every later one (their indices assumed it), and stops the writer."""

    def __init__(self, lean: Lean, path: Path) -> None:
        super().__init__(daemon=True)
        self.lean, self.path = lean, path
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.t = dict.fromkeys(STAGES, 0.0)

    def run(self) -> None:
        con = connect(self.path)
        failed: BaseException | None = None
        while (item := self.q.get()) is not None:
            prep, fut = item
            if failed is not None:
                fut.set_exception(failed)
                continue
            try:
                fut.set_result(self.lean.write(con, prep, self.t))
            except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
                failed = err
                fut.set_exception(err)
        con.close()


def gc_ctx(mode: str) -> Any:
    if mode == "off":
        gc.disable()
    elif mode == "freeze":
        gc.collect()
        gc.freeze()  # the benchmark's 100,000 input dicts are no longer scanned by every collection


def gc_restore(mode: str) -> None:
    gc.enable()
    if mode == "freeze":
        gc.unfreeze()


def run_lean(records: list[dict[str, Any]], opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    lean = Lean(work / "lean.db", opts)
    b = opts.batch
    gc_ctx(opts.gc)
    old_si = sys.getswitchinterval()
    sys.setswitchinterval(opts.switch_ms / 1e3)
    extra_cpu = 0.0
    if opts.pipe == "process":
        parent, child = MP.Pipe()
        proc = MP.Process(target=_process_writer, args=(child, str(work / "lean.db"), opts.tree == "levels"))
        proc.start()
    c0, t0 = time.process_time(), time.perf_counter()
    try:
        if opts.pipe == "process":
            sent = acked = 0
            acks: list[Any] = []
            for i in range(0, len(records), b):
                prep = lean.prepare(records[i:i + b])
                if sent - acked >= opts.depth:
                    ok, first, info = parent.recv()
                    assert ok, info
                    acks.append(range(first, first + info))
                    acked += 1
                parent.send(prep[:6])  # the leaf hashes' hex stays here, for the acknowledgement
                sent += 1
            while acked < sent:  # the last batch is durable
                ok, first, info = parent.recv()
                assert ok, info
                acks.append(range(first, first + info))
                acked += 1
            elapsed = time.perf_counter() - t0
            parent.send(None)
            wt = parent.recv()
            proc.join()
            extra_cpu = wt.pop("cpu_s")
            for k in ("sql_insert", "commit"):
                lean.t[k] = wt[k]
        elif opts.pipe == "thread":
            writer = PipelinedWriter(lean, work / "lean.db")
            writer.start()
            futs: list[Future[list[str]]] = []
            for i in range(0, len(records), b):
                prep = lean.prepare(records[i:i + b])
                if len(futs) >= opts.depth:  # back-pressure: at most `depth` batches in flight
                    futs[-opts.depth].result()
                fut: Future[list[str]] = Future()
                writer.q.put((prep, fut))
                futs.append(fut)
            acks = [f.result() for f in futs]  # the last batch is durable
            elapsed = time.perf_counter() - t0
            writer.q.put(None)
            writer.join()
            for k in ("sql_insert", "commit"):
                lean.t[k] = writer.t[k]
        else:
            acks = [lean.write(lean.con, lean.prepare(records[i:i + b]), lean.t) for i in range(0, len(records), b)]
            elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0 + extra_cpu
    finally:
        gc_restore(opts.gc)
        sys.setswitchinterval(old_si)
    assert sum(len(a) for a in acks) == len(records)
    return {"us": elapsed / len(records) * 1e6, "cpu_us": cpu / len(records) * 1e6,
            "stages_us": {k: v / len(records) * 1e6 for k, v in lean.t.items()}, "lean": lean}


def check_lean(lean: Lean, records: list[dict[str, Any]], full: bool) -> int:
    """Read everything back: the root from stored leaves equals merkle.root_of, stored tree hashes
    equal merkle.append_leaf's, every record's bytes parse to it, and (``full``) the leaf bytes
    equal rfc8785 for every record whose body leaves the fast path plus every 50th. Returns the
    number of records whose bytes are not RFC 8785 (expected 0 with the guard)."""
    con, leaves, bad = lean.con, [], 0
    idx = 0
    for offs_b, data, n in con.execute("SELECT offsets, data, n FROM bundles ORDER BY first"):
        offs = [*struct.unpack(f">{n}I", offs_b), len(data)]
        for k in range(n):
            d = data[offs[k]:offs[k + 1]]
            leaves.append(merkle.leaf_hash(d))
            raw = records[idx]
            if full or idx < 100:
                doc = json.loads(d)
                assert doc["body"] == raw["body"] and doc["kind"] == raw["kind"] and doc["producer"] == raw["producer"]
                if not _fast_path_ok(raw["body"]) or idx % 50 == 0:
                    bad += rfc8785.dumps(doc) != d
            idx += 1
    assert len(leaves) == len(records) and lean.size == len(records)
    assert merkle.fold(lean.frontier) == merkle.root_of(leaves), "root mismatch"
    if full:  # the stored tree hashes are the ones append_leaf stores
        ref: dict[int, bytes] = {}
        fr: list[bytes] = []
        for i, leaf in enumerate(leaves):
            fr, stored = merkle.append_leaf(i, fr, leaf)
            ref.update(stored)
        got: dict[int, bytes] = {}
        if lean.opts.tree == "levels":
            for first_node, level, first, blob in con.execute("SELECT first_node, level, first, hashes FROM levels"):
                assert first_node == merkle.stored_hash_index(level, first)
                for k in range(0, len(blob), 32):
                    got[merkle.stored_hash_index(level, first + k // 32)] = blob[k:k + 32]
        else:
            for first_node, blob in con.execute("SELECT first_node, hashes FROM tiles"):
                for k in range(0, len(blob), 32):
                    got[first_node + k // 32] = blob[k:k + 32]
        assert got == ref, "stored tree hashes differ from merkle.append_leaf's"
    return bad


def run_pymerkle(records: list[dict[str, Any]], batch: int, work: Path, mode: str) -> float:
    path = work / f"pymerkle-{mode}.db"
    if mode == "thread":  # the same pipelining for pymerkle: bytes for batch k+1 while batch k commits
        q: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def writer() -> None:
            tree = pymerkle_tree(path)  # its connection lives in this thread
            while (item := q.get()) is not None:
                entries, fut = item
                tree.append_entries(entries)
                fut.set_result(None)
            tree.con.close()

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        t0 = time.perf_counter()
        futs: list[Future[None]] = []
        for i in range(0, len(records), batch):
            entries = [pm_bytes(r) for r in records[i:i + batch]]
            if len(futs) >= 2:
                futs[-2].result()
            futs.append(Future())
            q.put((entries, futs[-1]))
        for f in futs:
            f.result()
        el = time.perf_counter() - t0
        q.put(None)
        th.join()
        return el / len(records) * 1e6
    if mode == "process":  # and in a writer process: dumps here, hash + insert + commit there
        parent, child = MP.Pipe()
        proc = MP.Process(target=_pymerkle_process, args=(child, str(path)))
        proc.start()
        t0 = time.perf_counter()
        sent = acked = 0
        for i in range(0, len(records), batch):
            entries = [pm_bytes(r) for r in records[i:i + batch]]
            if sent - acked >= 2:
                assert parent.recv() is True
                acked += 1
            parent.send(entries)
            sent += 1
        while acked < sent:
            assert parent.recv() is True
            acked += 1
        el = time.perf_counter() - t0
        parent.send(None)
        parent.recv()
        proc.join()
        return el / len(records) * 1e6
    tree = pymerkle_tree(path)
    if mode == "gcoff":
        gc.disable()
    try:
        t0 = time.perf_counter()
        for i in range(0, len(records), batch):
            tree.append_entries([pm_bytes(r) for r in records[i:i + batch]])
        el = time.perf_counter() - t0
    finally:
        gc.enable()
    tree.con.close()
    return el / len(records) * 1e6


def gil_check(work: Path, blob_kb: int = 250, commits: int = 40) -> dict[str, float]:
    """Does sqlite3 let go of the GIL while it inserts and commits (fsyncs)? A counting loop runs in
    this thread alone, then while another thread inserts and commits ``commits`` blobs; if the loop
    keeps ~its solo rate during the commits, the GIL was free."""
    path = work / f"gil-{blob_kb}-{sys.getswitchinterval()}.db"
    con = connect(path)
    con.execute("CREATE TABLE b (k INTEGER PRIMARY KEY, v BLOB)")
    blob = bytes(blob_kb * 1024)
    done = threading.Event()
    spent = [0.0]

    def committer(base: int = 0) -> None:
        t0 = time.perf_counter()
        for k in range(base, base + commits):
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO b VALUES (?, ?)", (k, blob))
            con.execute("COMMIT")
        spent[0] = time.perf_counter() - t0
        done.set()

    def spin(until: Any) -> float:
        n, t0 = 0, time.perf_counter()
        while not until():
            for _ in range(1000):
                n += 1
        return n / (time.perf_counter() - t0)

    committer(10_000)  # alone: what a commit costs with nobody holding the GIL
    alone = spent[0]
    done.clear()
    t_end = time.perf_counter() + 0.5
    solo = spin(lambda: time.perf_counter() > t_end)
    th = threading.Thread(target=committer)
    th.start()
    during = spin(done.is_set)
    th.join()
    con.close()
    return {"switch_interval_ms": sys.getswitchinterval() * 1e3, "commit_alone_ms": alone / commits * 1e3,
            "commit_beside_spinner_ms": spent[0] / commits * 1e3, "spin_solo_per_s": solo, "spin_during_per_s": during,
            "spin_ratio": during / solo}


G = {"enc": "msgspec-doc", "guard": True, "tree": "levels"}
VARIANTS: dict[str, dict[str, Any]] = {
    # name: options (defaults: enc orjson-join, guard off, tree per-leaf, hash sha256, gc on, pipe sync)
    "proto": {},  # the original Prototype class above (not Lean)
    "lean": {},
    "lean+guard": {"guard": True},
    "msgspec-join+guard": {"enc": "msgspec-join", "guard": True},
    "msgspec-doc+guard": {"enc": "msgspec-doc", "guard": True},
    "msgspec-doc+guard+levels": G,
    "msgspec-doc+guard+levels+hashnew": {**G, "hash": "new"},
    "msgspec-doc+guard+levels+freeze": {**G, "gc": "freeze"},
    "msgspec-doc+guard+levels+gcoff": {**G, "gc": "off"},
    "…+gcoff+thread": {**G, "gc": "off", "pipe": "thread"},
    "…+gcoff+thread(switch 0.5 ms)": {**G, "gc": "off", "pipe": "thread", "switch_ms": 0.5},
    "…+gcoff+thread(switch 1 ms)": {**G, "gc": "off", "pipe": "thread", "switch_ms": 1.0},
    "…+gcoff+process": {**G, "gc": "off", "pipe": "process"},
    "…+freeze+process": {**G, "gc": "freeze", "pipe": "process"},
    "no guard: msgspec-doc+levels+gcoff": {**G, "guard": False, "gc": "off"},
    "no guard: msgspec-doc+levels+gcoff+process": {**G, "guard": False, "gc": "off", "pipe": "process"},
}
DEFAULTS = {"enc": "orjson-join", "guard": False, "tree": "per-leaf", "hash": "sha256", "gc": "on", "pipe": "sync",
            "depth": 2, "switch_ms": 5.0}


def run(records: list[dict[str, Any]], batch: int, work: Path) -> dict[str, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    proto = Prototype(work / "proto.db")
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        proto.append(records[i:i + batch])
    t_proto = time.perf_counter() - t0
    # the leaf bytes are exactly orjson's (RFC 8785 on this data) of the whole document
    row = proto.con.execute("SELECT offsets, data FROM bundles ORDER BY first LIMIT 1").fetchone()
    first_len = int.from_bytes(row[0][4:8], "big")
    doc = orjson.loads(row[1][:first_len])
    assert orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) == row[1][:first_len] and doc["body"] == records[0]["body"]
    # the prototype's tree agrees with the ledger's own merkle code
    leaves = []
    for row in proto.con.execute("SELECT offsets, data, n FROM bundles ORDER BY first"):
        offs = [int.from_bytes(row[0][k:k + 4], "big") for k in range(0, len(row[0]), 4)] + [len(row[1])]
        leaves += [merkle.leaf_hash(row[1][offs[k]:offs[k + 1]]) for k in range(row[2])]
    assert len(leaves) == len(records) and merkle.fold(proto.frontier) == merkle.root_of(leaves)
    tree = pymerkle_tree(work / "pymerkle.db")
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        tree.append_entries([pm_bytes(r) for r in records[i:i + batch]])
    t_pm = time.perf_counter() - t0
    tree.con.close()
    proto.con.close()
    return {"prototype_per_s": len(records) / t_proto, "pymerkle_per_s": len(records) / t_pm,
            "prototype_us": t_proto / len(records) * 1e6, "pymerkle_us": t_pm / len(records) * 1e6}


def run_proto(records: list[dict[str, Any]], batch: int, work: Path) -> float:
    proto = Prototype(work / "proto.db")
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        proto.append(records[i:i + batch])
    el = time.perf_counter() - t0
    proto.con.close()
    return el / len(records) * 1e6


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def variants_main(a: argparse.Namespace, records: list[dict[str, Any]], work: Path) -> None:
    """--variants: every variant and pymerkle (plain, GC off, pipelined), interleaved, per repeat."""
    names = [v for v in VARIANTS if not a.only or any(s in v for s in a.only.split(","))]
    res: dict[str, list[dict[str, Any]]] = {}
    loads = [loadavg()]
    for rep in range(a.repeat):
        d = work / f"v{rep}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        for pm in ("pymerkle", "pymerkle-gcoff", "pymerkle-thread", "pymerkle-process"):
            us = run_pymerkle(records, a.batch, d, pm.partition("-")[2] or "plain")
            res.setdefault(pm, []).append({"us": us})
        for name in names:
            vd = d / name.replace(" ", "_").replace("(", "").replace(")", "")
            vd.mkdir()
            if name == "proto":
                res.setdefault(name, []).append({"us": run_proto(records, a.batch, vd)})
                continue
            opts = argparse.Namespace(**{**DEFAULTS, **VARIANTS[name], "batch": a.batch})
            r = run_lean(records, opts, vd)
            lean = r.pop("lean")
            r["not_rfc8785"] = check_lean(lean, records, full=(rep == 0))
            if opts.guard:
                assert r["not_rfc8785"] == 0
            lean.con.close()
            res.setdefault(name, []).append(r)
        shutil.rmtree(d, ignore_errors=True)
        loads.append(loadavg())
        pm = res["pymerkle"][-1]["us"]
        print(f"repeat {rep + 1} (load {loads[-1]}): pymerkle {pm:.2f} µs; " + ", ".join(
            f"{n} {res[n][-1]['us']:.2f} µs ({pm / res[n][-1]['us']:.2f}×)" for n in names), flush=True)
    pm_med = statistics.median(r["us"] for r in res["pymerkle"])
    print(f"\n### batch {a.batch}, {len(records):,} records, median of {a.repeat}; load avg before/after repeats: {loads}\n")
    print("| variant | µs / record (min–max) | CPU µs / record | ratio vs pymerkle (median) | not RFC 8785 |")
    print("|---|---:|---:|---:|---:|")
    summary = {}
    for n, rows in res.items():
        us = [r["us"] for r in rows]
        med = statistics.median(us)
        cpu = statistics.median(r["cpu_us"] for r in rows) if "cpu_us" in rows[0] else None
        bad = rows[0].get("not_rfc8785", "")
        cpu_s = f"{cpu:.2f}" if cpu is not None else ""
        print(f"| {n} | {med:.2f} ({min(us):.2f}–{max(us):.2f}) | {cpu_s} | {pm_med / med:.2f}× | {bad} |")
        summary[n] = {"median_us": med, "all_us": us, "ratio": pm_med / med, "cpu_us": cpu,
                      "stages_us": {k: statistics.median(r["stages_us"][k] for r in rows) for k in STAGES}
                      if "stages_us" in rows[0] else None, "not_rfc8785": bad}
    print("\nstages (µs / record, median; for thread variants sql_insert/commit run in the writer thread):")
    print("| variant | " + " | ".join(STAGES) + " | sum |")
    print("|---|" + "---:|" * (len(STAGES) + 1))
    for n, s in summary.items():
        if s["stages_us"]:
            st = s["stages_us"]
            print(f"| {n} | " + " | ".join(f"{st[k]:.2f}" for k in STAGES) + f" | {sum(st.values()):.2f} |")
    out = Path(a.json or f"/tmp/layout-variants-{a.batch}.json")
    out.write_text(json.dumps({"records": len(records), "batch": a.batch, "repeat": a.repeat, "load": loads,
                               "variants": summary}, indent=1))
    print(f"\nraw: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variants", action="store_true", help="the issue-2 follow-up: every variant beside pymerkle")
    ap.add_argument("--only", default="", help="with --variants: comma-separated substrings of variant names")
    ap.add_argument("--gil-check", action="store_true", help="does sqlite3 release the GIL during insert + commit?")
    ap.add_argument("--json", default="", help="with --variants: where to write the raw figures")
    a = ap.parse_args()
    records = make_records(0, a.records)
    work = Path(tempfile.mkdtemp(prefix="custody-layout-"))
    try:  # bad input is refused, naming the field
        Prototype(work / "refusal.db").append([{**records[0], "produced_at": "yesterday"}])
        raise SystemExit("the prototype accepted a bad timestamp")
    except msgspec.ValidationError as err:
        print(f"refused as it should be: {err}")
    try:
        Lean(work / "refusal2.db", argparse.Namespace(**DEFAULTS)).prepare([{**records[1], "produced_at": "yesterday"}])
        raise SystemExit("Lean accepted a bad timestamp")
    except msgspec.ValidationError:
        pass
    for size in (0, 1, 5, 8, 1000, 1023, 1024):  # levels_append agrees with append_leaf, aligned or not
        ls = [hashlib.sha256(bytes([k % 256, k // 256])).digest() for k in range(size + 777)]
        fr: list[bytes] = []
        for i in range(size):
            fr, _ = merkle.append_leaf(i, fr, ls[i])
        fr2, _ = levels_append(size, fr, ls[size:])
        assert merkle.fold(fr2) == merkle.root_of(ls), size
    if a.gil_check:
        for si in (0.005, 0.0002):
            sys.setswitchinterval(si)
            for kb in (30, 250, 2500):
                print(f"blob {kb} KB:", json.dumps(gil_check(work, kb)))
        sys.setswitchinterval(0.005)
        shutil.rmtree(work, ignore_errors=True)
        return
    if a.variants:
        variants_main(a, records, work)
        shutil.rmtree(work, ignore_errors=True)
        return
    rows = []
    for rep in range(a.repeat):
        r = run(records, a.batch, work / str(rep))
        rows.append(r)
        print(f"repeat {rep + 1}: prototype {r['prototype_per_s']:,.0f}/s ({r['prototype_us']:.1f} µs), "
              f"pymerkle {r['pymerkle_per_s']:,.0f}/s ({r['pymerkle_us']:.1f} µs), "
              f"ratio {r['prototype_per_s'] / r['pymerkle_per_s']:.2f}×", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(json.dumps({"records": a.records, "batch": a.batch, "median": med,
                      "ratio": med["prototype_per_s"] / med["pymerkle_per_s"]}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
