"""What pausing the cyclic GC during a batched append is worth (``ledger.service.gc_paused``).

Not a test. Appends 100,000 benchmark records (``bench_ledger.make_records``) in batches of 1,000 to a fresh
SQLite ledger (WAL, synchronous=FULL), three ways in each repeat: with the pause (as shipped), without it
(``GC_PAUSE_MIN_BATCH`` raised above the batch size, so the collector runs as it did before), and pymerkle's
``append_entries`` on the same records for scale. Prints records/s per repeat and the medians::

    python bench/gc_pause.py [--repeat 3] [--records 100000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ledger.service as service  # noqa: E402
from bench_ledger import custody_batch_rate, pymerkle_batch_rate, sqlite_ledger  # noqa: E402


def custody(records: int, batch: int, paused: bool) -> float:
    led = sqlite_ledger(Path(tempfile.mkdtemp()) / "c", origin="gc.bench.example/1")
    saved = service.GC_PAUSE_MIN_BATCH
    service.GC_PAUSE_MIN_BATCH = saved if paused else batch + 1
    try:
        return custody_batch_rate(led, records, batch)
    finally:
        service.GC_PAUSE_MIN_BATCH = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1_000)
    a = ap.parse_args()
    runs: dict[str, list[float]] = {"custody, GC paused": [], "custody, GC running": [], "pymerkle": []}
    for _ in range(a.repeat):
        for name, fn in (("custody, GC paused", lambda: custody(a.records, a.batch, True)),
                         ("custody, GC running", lambda: custody(a.records, a.batch, False)),
                         ("pymerkle", lambda: pymerkle_batch_rate(a.records, a.batch))):
            gc.collect()
            runs[name].append(fn())
    pm = statistics.median(runs["pymerkle"])
    for name, xs in runs.items():
        med = statistics.median(xs)
        print(f"{name:22} median {med:9,.0f}/s  ({med / pm:.2f}× pymerkle)  runs: "
              + ", ".join(f"{x:,.0f}" for x in xs))


if __name__ == "__main__":
    main()
