"""A separate process that appends to a ledger: the writer the crash and concurrency tests drive.

Run as ``python ledger_worker.py MODE DATA_DIR DATABASE_URL KEY_DIR [options]``. It opens the ledger
the way the CLI does (``api.composition.open_ledger(Settings(...))``) and reports on stdout, one JSON
object per line, flushed:

* ``{"ready": true}`` once the ledger is open;
* ``{"writer": W, "batch": B, "ids": [...], "leaves": H}`` for each batch, printed only after
  ``append`` has returned (the batch is acknowledged): ``H`` is the SHA-256 of the batch's leaf
  hashes in order, so the parent can check the stored bytes are the ones acknowledged (mode
  ``append`` adds ``t0``/``t1``: wall-clock time when ``append`` was called and returned);
* ``{"done": true}`` at the end (modes that end).

Modes:

* ``crash``: append batches of random size forever (until killed). ``--seed`` seeds the sizes.
* ``append``: wait for a line on stdin (the start signal), append ``--batches`` batches of random
  size in ``1..--max-batch``, then exit.
* ``idem``: wait for the start signal, append the batch given as JSON in ``--records`` (records
  with idempotency keys) and report it, then exit.

Every record this worker makes is a ``distribution`` record whose body carries ``batch`` (a uuid),
``batch_size``, ``seq`` (position in the batch), ``writer`` and ``payload`` (derived from
batch and seq), so a reader can group entries by batch and check each is whole and unaltered.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def payload(batch: str, seq: int) -> str:
    return hashlib.sha256(f"{batch}:{seq}".encode()).hexdigest()


def make_batch(writer: str, size: int, batch: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    batch = batch or uuid.uuid4().hex
    recs = [{"kind": "distribution", "producer": "test-worker", "produced_at": "2025-01-01T00:00:00Z",
             "body": {"action": "publish", "channel": "test", "writer": writer, "batch": batch,
                      "batch_size": size, "seq": seq, "payload": payload(batch, seq)}}
            for seq in range(size)]
    return batch, recs


def leaves_digest(leaf_hashes: list[str]) -> str:
    return hashlib.sha256("".join(leaf_hashes).encode()).hexdigest()


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["crash", "append", "idem"])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("database_url")
    ap.add_argument("key_dir", type=Path)
    ap.add_argument("--writer", default="p0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--max-batch", type=int, default=20)
    ap.add_argument("--records", default="[]")
    args = ap.parse_args(argv)

    from api.composition import open_ledger
    from api.settings import Settings

    settings = Settings(data_dir=args.data_dir, database_url=args.database_url, key_dir=args.key_dir)
    ledger = open_ledger(settings)
    rng = random.Random(args.seed)
    emit({"ready": True})

    if args.mode == "crash":
        while True:
            batch, recs = make_batch(args.writer, rng.randint(1, args.max_batch))
            out = ledger.append(recs)
            emit({"writer": args.writer, "batch": batch, "ids": [a.id for a in out],
                  "leaves": leaves_digest([a.leaf_hash for a in out])})

    sys.stdin.readline()  # the start signal: every writer begins at once
    if args.mode == "append":
        for _ in range(args.batches):
            batch, recs = make_batch(args.writer, rng.randint(1, args.max_batch))
            t0 = time.time()
            out = ledger.append(recs)
            emit({"writer": args.writer, "batch": batch, "ids": [a.id for a in out],
                  "leaves": leaves_digest([a.leaf_hash for a in out]), "t0": t0, "t1": time.time()})
    else:
        out = ledger.append(json.loads(args.records))
        emit({"writer": args.writer, "batch": None, "ids": [a.id for a in out],
              "leaves": leaves_digest([a.leaf_hash for a in out]), "existing": [a.existing for a in out]})
    emit({"done": True})
    ledger.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
