#!/usr/bin/env python
"""How much of a batched append is the SQL itself, and what would a leaner schema cost?

On-demand, not a test. Raw ``sqlite3`` (WAL + ``synchronous=FULL``, ``BEGIN IMMEDIATE`` …
``COMMIT`` per batch, as the ledger does), the same precomputed rows each time, so only the
schema differs:

* ``current``: the schema of migrations 0001: ``entries`` with the
  ``(subject, kind)`` index and the UNIQUE ``idempotency_key``, plus one ``tree_nodes`` row
  per stored hash (about 2 per entry);
* ``m0003``: ``current`` + ``ix_entries_kind_time (kind, ledger_time, idx)`` (migration 0003);
* ``m0004``: the ledger's schema now (migration 0004): partial indexes + ``ix_entries_kind_time``;
* ``m0004_no_kind_time``: ``m0004`` without ``ix_entries_kind_time`` (what that index costs);
* ``m0004_kind_time_2col``: ``m0004`` with ``(kind, ledger_time)``: in SQLite every index ends
  with the rowid (= ``idx``), so this serves the same queries in the same order;
* ``partial_indexes``: the same, with both ``entries`` indexes made partial
  (``WHERE subject IS NOT NULL`` / ``WHERE idempotency_key IS NOT NULL``), so records without a
  subject or key add no index entries;
* ``partial_indexes_tiled_nodes``: partial indexes, and each batch's new hashes stored as one
  blob row (a lower bound for tile storage: Tessera/Trillian-style tiles of 256 hashes);
* ``entries_only``: partial indexes, no node rows at all (a floor, not a design);
* ``pymerkle_like``: one table ``(id INTEGER PRIMARY KEY AUTOINCREMENT, entry, hash)``.

    python bench/sql_variants.py [--records 20000] [--batch 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ledger import make_records

ENTRIES = """CREATE TABLE entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, kind VARCHAR(32) NOT NULL,
    subject VARCHAR(200), ledger_time VARCHAR(40) NOT NULL, idempotency_key VARCHAR(200){unique},
    request_hash BLOB)"""
NODES = "CREATE TABLE tree_nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)"
KIND_TIME = "CREATE INDEX ix_entries_kind_time ON entries (kind, ledger_time, idx)"
PARTIAL = ["CREATE INDEX ix_entries_subject_kind ON entries (subject, kind) WHERE subject IS NOT NULL",
           "CREATE UNIQUE INDEX ux_entries_idempotency_key ON entries (idempotency_key) WHERE idempotency_key IS NOT NULL"]

VARIANTS = {
    "current": [ENTRIES.format(unique=" UNIQUE"), "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind)", NODES],
    "m0003": [ENTRIES.format(unique=" UNIQUE"), "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind)",
              KIND_TIME, NODES],
    "m0004": [ENTRIES.format(unique=""), *PARTIAL, KIND_TIME, NODES],
    "m0004_no_kind_time": [ENTRIES.format(unique=""), *PARTIAL, NODES],
    "m0004_kind_time_2col": [ENTRIES.format(unique=""), *PARTIAL,
                             "CREATE INDEX ix_entries_kind_time ON entries (kind, ledger_time)", NODES],
    "partial_indexes": [ENTRIES.format(unique=""),
                        "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind) WHERE subject IS NOT NULL",
                        "CREATE UNIQUE INDEX ux_idem ON entries (idempotency_key) WHERE idempotency_key IS NOT NULL",
                        NODES],
    "partial_indexes_tiled_nodes": [ENTRIES.format(unique=""),
                                    "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind) WHERE subject IS NOT NULL",
                                    "CREATE UNIQUE INDEX ux_idem ON entries (idempotency_key) WHERE idempotency_key IS NOT NULL",
                                    "CREATE TABLE tiles (id INTEGER PRIMARY KEY, hashes BLOB NOT NULL)"],
    "entries_only": [ENTRIES.format(unique=""),
                     "CREATE INDEX ix_entries_subject_kind ON entries (subject, kind) WHERE subject IS NOT NULL",
                     "CREATE UNIQUE INDEX ux_idem ON entries (idempotency_key) WHERE idempotency_key IS NOT NULL"],
    "pymerkle_like": ["CREATE TABLE leaf (id INTEGER PRIMARY KEY AUTOINCREMENT, entry BLOB, hash BLOB)"],
}


def rows(n: int) -> tuple[list[tuple], list[tuple[int, bytes]]]:
    lt = "2025-12-30T10:00:00.000000Z"
    entries, nodes, sid = [], [], 0
    for i, rec in enumerate(make_records(0, n)):
        data = json.dumps({**rec, "ledger_time": lt, "links": [], "schema": 1}, sort_keys=True,
                          separators=(",", ":")).encode()
        entries.append((i, data, rec["kind"], None, lt, None, None))
        # ~2 stored hashes per entry, consecutive ids (the leaf, then the subtrees it completes)
        for _ in range(1 + ((i + 1) & -(i + 1)).bit_length() - 1):
            nodes.append((sid, hashlib.sha256(data + bytes([sid & 255])).digest()))
            sid += 1
    return entries, nodes


def run(variant: str, d: Path, entries: list[tuple], nodes: list[tuple[int, bytes]], batch: int) -> float:
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    con = sqlite3.connect(d / "db.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    for ddl in VARIANTS[variant]:
        con.execute(ddl)
    per_batch = len(nodes) / len(entries)
    t = time.perf_counter()
    lo = 0
    for k in range(0, len(entries), batch):
        part = entries[k:k + batch]
        hi = min(len(nodes), round((k + len(part)) * per_batch))
        con.execute("BEGIN IMMEDIATE")
        if variant == "pymerkle_like":
            con.executemany("INSERT INTO leaf (entry, hash) VALUES (?, ?)",
                            [(e[1], hashlib.sha256(b"\x00" + e[1]).digest()) for e in part])
        else:
            con.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", part)
            if variant == "partial_indexes_tiled_nodes":
                con.execute("INSERT INTO tiles VALUES (?, ?)", (k, b"".join(h for _, h in nodes[lo:hi])))
            elif variant != "entries_only":
                con.executemany("INSERT INTO tree_nodes VALUES (?, ?)", nodes[lo:hi])
        con.execute("COMMIT")
        lo = hi
    dt = time.perf_counter() - t
    con.close()
    return dt / len(entries) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/custody-bench/scratch/sql-variants"))
    args = ap.parse_args()
    entries, nodes = rows(args.records)
    res: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for rep in range(args.repeat):
        for v in (VARIANTS if rep % 2 == 0 else reversed(list(VARIANTS))):
            res[v].append(run(v, args.workdir / v, entries, nodes, args.batch))
    print(f"{args.records:,} rows, batches of {args.batch:,}, {len(nodes) / len(entries):.2f} stored hashes per entry; "
          f"median of {args.repeat}\n")
    print("| schema | µs / record (insert + commit) |\n|---|---:|")
    for v, xs in res.items():
        print(f"| {v} | {statistics.median(xs):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
