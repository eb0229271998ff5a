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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ledger import make_records, pm_bytes, pymerkle_tree

from ledger import merkle

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    records = make_records(0, a.records)
    work = Path(tempfile.mkdtemp(prefix="custody-layout-"))
    try:  # bad input is refused, naming the field
        Prototype(work / "refusal.db").append([{**records[0], "produced_at": "yesterday"}])
        raise SystemExit("the prototype accepted a bad timestamp")
    except msgspec.ValidationError as err:
        print(f"refused as it should be: {err}")
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
