#!/usr/bin/env python
"""On-demand benchmarks for the Custody ledger, side by side with pymerkle 7's ``SqliteTree``.

Not a test: nothing here runs in CI. Run with the project's venv, e.g.::

    python bench/bench_ledger.py all --quick                # a small smoke run (about 15 s)
    python bench/bench_ledger.py all --repeat 3 --rebuild   # the full run behind BENCHMARKS.md (~12 min)
    python bench/bench_ledger.py batch --repeat 3           # one part only (see --help)
    python bench/bench_ledger.py proof-breakdown            # where a proof's time goes
    python bench/bench_ledger.py profile                    # cProfile of appends and verify

Parts: batch, single, pg, build, proofs, verify, breakdown (``all`` runs these), and
proof-breakdown, profile, migrate (migration 0005 down and up on a copy of the cached ledger), machine.

Every part prints a Markdown table and writes its raw figures as JSON under the work directory
(``--workdir``, default /tmp/custody-bench/results/). The 1,000,000-entry ledgers (Custody and
pymerkle, built from the same records) are kept in the work directory and reused by ``proofs``
and ``verify``; ``build`` makes them (and measures append cost at 10k, 100k and 1M on the way),
``--rebuild`` forces a new build.

What is compared is "records in → durable and provable": the timings start from record dicts,
so canonicalising a record to bytes counts on both sides (pymerkle is handed
``json.dumps(record, sort_keys=True, separators=(",", ":")).encode()``). Both sides are durable:
Custody's SQLite store runs WAL + ``synchronous=FULL`` (ledger/store_sql.py), and the benchmark
sets the same two pragmas on pymerkle's own connection (``tree.con``) right after opening it;
both are read back and reported. PostgreSQL runs with ``synchronous_commit=on`` (read back too).

pymerkle is GPLv3: it is only imported and called here, never copied.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import math
import os
import platform
import pstats
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.composition import init_ledger, open_ledger
from api.settings import Settings
from ledger import merkle
from ledger.service import Ledger
from ledger.verify import verify_ledger

RECORDS_VERSION = 1  # bump when make_record changes: cached ledgers are rebuilt
MILESTONES = (10_000, 100_000, 1_000_000)
DEFAULT_PG = "postgresql+psycopg://custody:custody@127.0.0.1:5432/custody_test"
PG_BENCH_DB = "custody_bench"


# --- records ---------------------------------------------------------------------------------


def _hex(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def make_record(i: int) -> dict[str, Any]:
    """Record number ``i`` of the benchmark stream: a fixed mix of kinds, no links, no sealed fields.

    Mix (by i mod 20): 10 artifacts, 4 generations, 3 safety decisions (a float risk score, so
    these take the rfc8785 canonicalisation path), 2 distributions, 1 review decision.
    Links and sealed fields are left out on purpose: pymerkle has no equivalent of either.
    """
    t = f"2025-12-30T10:{(i // 60) % 60:02d}:{i % 60:02d}Z"
    m = i % 20
    if m < 10:
        return {"kind": "artifact", "producer": "svc:bench", "produced_at": t,
                "body": {"sha256": _hex(f"artifact-{i}"), "media_type": "image/png", "size": 1000 + i,
                         "storage_ref": f"blob://generated/{i:08d}"}}
    if m < 14:
        return {"kind": "generation", "producer": "svc:imagine", "produced_at": t,
                "body": {"surface": "imagine", "parameters": {"steps": 30, "guidance": "7.5", "width": 1024},
                         "seed": i * 7919 % 1_000_003}}
    if m < 17:
        return {"kind": "safety_decision", "producer": "svc:safety", "produced_at": t,
                "body": {"action": "allow", "policy_id": "content-safety", "policy_version": "2025-11",
                         "pipeline_version": "filter-4", "risk": round((i % 997) / 997, 4),
                         "signals": {"nudity": round((i % 89) / 89, 3), "face": 0.5}}}
    if m < 19:
        return {"kind": "distribution", "producer": "svc:timeline", "produced_at": t,
                "body": {"action": "publish", "channel": "timeline", "post": f"p-{i}"}}
    return {"kind": "review_decision", "producer": "svc:review", "produced_at": t,
            "body": {"action": "approve", "reviewer": f"rev-{i % 50:03d}", "reason": "within policy"}}


def make_records(start: int, stop: int) -> list[dict[str, Any]]:
    return [make_record(i) for i in range(start, stop)]


def pm_bytes(rec: dict[str, Any]) -> bytes:
    """What pymerkle is handed for a record (timed on pymerkle's side)."""
    return json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()


# --- the two systems under test ----------------------------------------------------------------


def sqlite_ledger(d: Path, origin: str = "bench.custody.example/sqlite", interval: float = 0.0) -> Ledger:
    s = Settings(data_dir=d, database_url=f"sqlite:///{d / 'ledger.db'}", key_dir=d / "keys",
                 checkpoint_interval=interval)
    return init_ledger(s, origin=origin)


def pg_ledger(d: Path, url: str, interval: float = 0.0) -> Ledger:
    s = Settings(data_dir=d, database_url=url, key_dir=d / "keys", checkpoint_interval=interval)
    return init_ledger(s, origin="bench.custody.example/pg")


def fresh_pg(base_url: str) -> str:
    """Drop and create the benchmark's own database; returns its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(base_url)
    admin = u.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {PG_BENCH_DB}")
    return u.set(database=PG_BENCH_DB).render_as_string(hide_password=False)


def ledger_pragmas(ledger: Ledger) -> dict[str, Any]:
    with ledger.store.engine.connect() as c:
        if ledger.store.dialect == "sqlite":
            return {"journal_mode": c.exec_driver_sql("PRAGMA journal_mode").scalar(),
                    "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
                        c.exec_driver_sql("PRAGMA synchronous").scalar()]}
        return {"synchronous_commit": c.exec_driver_sql("SHOW synchronous_commit").scalar(),
                "fsync": c.exec_driver_sql("SHOW fsync").scalar(),
                "server_version": c.exec_driver_sql("SHOW server_version").scalar()}


def pymerkle_tree(path: Path) -> Any:
    """pymerkle's SqliteTree, made durable: WAL + synchronous=FULL on its own connection.

    SqliteTree opens ``sqlite3.connect(dbfile)`` (default journal, Python's implicit
    transactions) and commits each ``append_entry`` / ``append_entries`` call with ``with
    self.con:``. The pragmas are set on that same connection before any append.
    """
    from pymerkle import SqliteTree

    tree = SqliteTree(str(path))
    mode = tree.con.execute("PRAGMA journal_mode=WAL").fetchone()
    tree.con.execute("PRAGMA synchronous=FULL")
    sync = tree.con.execute("PRAGMA synchronous").fetchone()
    assert mode == "wal" and sync == 2, (mode, sync)
    return tree


def custody_batch_rate(led: Any, records: int, batch: int) -> float:
    """Records/s of durable ``Ledger.append`` batches of ``batch`` (``publish=True``), only the appends timed."""
    spent = 0.0
    for start in range(0, records, batch):
        recs = make_records(start, start + batch)
        t = time.perf_counter()
        led.append(recs, publish=True)
        spent += time.perf_counter() - t
    return records / spent


def pymerkle_batch_rate(records: int, batch: int) -> float:
    """Records/s of pymerkle's ``append_entries`` on a fresh durable tree, batches of ``batch``, with
    ``json.dumps`` timed on its side (the small on-demand scripts beside this one compare against it)."""
    import tempfile

    tree = pymerkle_tree(Path(tempfile.mkdtemp()) / "pm.db")
    spent = 0.0
    for start in range(0, records, batch):
        recs = make_records(start, start + batch)
        t = time.perf_counter()
        tree.append_entries([pm_bytes(r) for r in recs])
        spent += time.perf_counter() - t
    return records / spent


def pymerkle_pragmas(tree: Any) -> dict[str, Any]:
    return {"journal_mode": tree.con.execute("PRAGMA journal_mode").fetchone(),
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
                tree.con.execute("PRAGMA synchronous").fetchone()]}


# --- helpers -------------------------------------------------------------------------------------


def now() -> float:
    return time.perf_counter()


def pct(xs: Sequence[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]  # nearest rank


def ms_stats(samples_s: Sequence[float]) -> dict[str, float]:
    return {"n": len(samples_s), "median_ms": statistics.median(samples_s) * 1e3,
            "p99_ms": pct(samples_s, 99) * 1e3, "mean_ms": statistics.fmean(samples_s) * 1e3}


def us_stats(samples_s: Sequence[float]) -> dict[str, float]:
    return {"n": len(samples_s), "median_us": statistics.median(samples_s) * 1e6,
            "p99_us": pct(samples_s, 99) * 1e6}


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


class Work:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "results").mkdir(exist_ok=True)
        self.scratch = root / "scratch"

    def fresh(self, name: str) -> Path:
        d = self.scratch / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def save(self, part: str, data: dict[str, Any]) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        p = self.root / "results" / f"{part}-{stamp}.json"
        p.write_text(json.dumps(data, indent=2, default=str))
        return p


def machine_info(pg_url: str | None) -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    import pymerkle
    import sqlalchemy

    info: dict[str, Any] = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "ram": mem,
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__, "pymerkle": pymerkle.__version__,
        "kernel": platform.release(), "loadavg_start": loadavg(),
    }
    try:
        info["git_head"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                          capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "ledger", "api", "migrations"],
                               capture_output=True, text=True, check=False).stdout.split("\n")
        info["uncommitted_in_ledger_api"] = [x.strip() for x in dirty if x.strip()]
    except OSError:
        pass
    if pg_url:
        try:
            import psycopg
            from sqlalchemy.engine import make_url

            u = make_url(pg_url).set(drivername="postgresql")
            with psycopg.connect(u.render_as_string(hide_password=False)) as c:
                info["postgresql"] = c.execute("SHOW server_version").fetchone()[0]
        except Exception as err:  # noqa: BLE001 - informational only
            info["postgresql"] = f"unavailable: {err.__class__.__name__}"
    return info


# --- parts -----------------------------------------------------------------------------------------


def custody_batched(ledger: Ledger, recs: list[dict[str, Any]], batch: int, publish: bool) -> float:
    gc.collect()
    t = now()
    for k in range(0, len(recs), batch):
        ledger.append(recs[k:k + batch], publish=publish)
    return len(recs) / (now() - t)


def pymerkle_batched(tree: Any, recs: list[dict[str, Any]], batch: int) -> float:
    gc.collect()
    t = now()
    for k in range(0, len(recs), batch):
        tree.append_entries([pm_bytes(r) for r in recs[k:k + batch]])
    return len(recs) / (now() - t)


def custody_single(ledger: Ledger, recs: list[dict[str, Any]], publish: bool) -> float:
    gc.collect()
    t = now()
    for r in recs:
        ledger.append([r], publish=publish)
    return len(recs) / (now() - t)


def pymerkle_single(tree: Any, recs: list[dict[str, Any]]) -> float:
    gc.collect()
    t = now()
    for r in recs:
        tree.append_entry(pm_bytes(r))
    return len(recs) / (now() - t)


def part_batch(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """Durable batched appends on fresh stores, Custody vs pymerkle, same records, same batch sizes."""
    n = args.batch_records
    recs = make_records(0, n)
    sizes = [1000, 10_000] if not args.quick else [1000]
    out: dict[str, Any] = {"records": n, "runs": []}
    for rep in range(args.repeat):
        for bs in sizes:
            row: dict[str, Any] = {"repeat": rep, "batch": bs, "loadavg": loadavg()}
            order = ["custody", "custody_nopub", "pymerkle"]
            if rep % 2:
                order.reverse()
            for who in order:
                d = w.fresh(f"batch-{who}")
                if who == "pymerkle":
                    tree = pymerkle_tree(d / "pymerkle.db")
                    row["pymerkle_pragmas"] = pymerkle_pragmas(tree)
                    row[who] = pymerkle_batched(tree, recs, bs)
                    assert tree.get_size() == n
                    tree.close()
                else:
                    led = sqlite_ledger(d)
                    row["custody_pragmas"] = ledger_pragmas(led)
                    row[who] = custody_batched(led, recs, bs, publish=(who == "custody"))
                    assert led.size() == n
                    led.store.close()
            row["ratio"] = row["custody"] / row["pymerkle"]
            row["ratio_nopub"] = row["custody_nopub"] / row["pymerkle"]
            print(f"  batch={bs} rep={rep}: custody {row['custody']:,.0f}/s (no checkpoint "
                  f"{row['custody_nopub']:,.0f}/s), pymerkle {row['pymerkle']:,.0f}/s, "
                  f"ratio {row['ratio']:.2f}", file=sys.stderr)
            out["runs"].append(row)
    out["summary"] = {bs: {k: med([r[k] for r in out["runs"] if r["batch"] == bs])
                           for k in ("custody", "custody_nopub", "pymerkle", "ratio", "ratio_nopub")}
                      for bs in sizes}
    return out


def part_single(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """Single durable appends, one transaction each (plus variants with checkpoint publishing)."""
    n = args.single_records
    warm = make_records(0, 1000)
    recs = make_records(1000, 1000 + n)
    out: dict[str, Any] = {"records": n, "preloaded": 1000, "runs": []}
    for rep in range(args.repeat):
        row: dict[str, Any] = {"repeat": rep, "loadavg": loadavg()}
        order = ["custody", "custody_pub_each", "custody_pub_1s", "pymerkle"]
        if rep % 2:
            order.reverse()
        for who in order:
            d = w.fresh(f"single-{who}")
            if who == "pymerkle":
                tree = pymerkle_tree(d / "pymerkle.db")
                tree.append_entries([pm_bytes(r) for r in warm])
                row[who] = pymerkle_single(tree, recs)
                tree.close()
            else:
                led = sqlite_ledger(d, interval=1.0 if who == "custody_pub_1s" else 0.0)
                led.append(warm)
                row[who] = custody_single(led, recs, publish=(who != "custody"))
                led.store.close()
        print(f"  single rep={rep}: custody {row['custody']:,.0f}/s, +checkpoint each "
              f"{row['custody_pub_each']:,.0f}/s, +checkpoint ≤1/s {row['custody_pub_1s']:,.0f}/s, "
              f"pymerkle {row['pymerkle']:,.0f}/s", file=sys.stderr)
        out["runs"].append(row)
    out["summary"] = {k: med([r[k] for r in out["runs"]])
                      for k in ("custody", "custody_pub_each", "custody_pub_1s", "pymerkle")}
    return out


def part_pg(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """PostgreSQL (synchronous_commit=on): batched and single appends, same records."""
    nb, ns = args.batch_records, args.single_records
    recs = make_records(0, nb)
    singles = make_records(nb, nb + ns)
    out: dict[str, Any] = {"batch_records": nb, "single_records": ns, "runs": []}
    for rep in range(args.repeat):
        row: dict[str, Any] = {"repeat": rep, "loadavg": loadavg()}
        for who, bs, pub in (("batch1000", 1000, True), ("batch1000_nopub", 1000, False),
                             ("batch10000", 10_000, True)):
            if args.quick and who == "batch10000":
                continue
            url = fresh_pg(args.pg_url)
            led = pg_ledger(w.fresh("pg"), url)
            row["pg"] = ledger_pragmas(led)
            row[who] = custody_batched(led, recs, bs, publish=pub)
            if who == "batch1000":  # singles on top of a 10k+ ledger
                row["single"] = custody_single(led, singles[: ns // 2], publish=False)
                row["single_pub_each"] = custody_single(led, singles[ns // 2:], publish=True)
            led.store.close()
        print(f"  pg rep={rep}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in row.items()
                                               if isinstance(v, float)), file=sys.stderr)
        out["runs"].append(row)
    keys = [k for k in out["runs"][0] if isinstance(out["runs"][0][k], float)]
    out["summary"] = {k: med([r[k] for r in out["runs"]]) for k in keys}
    return out


# --- the cached 1M-entry ledgers ---------------------------------------------------------------


def build_paths(w: Work, n: int) -> tuple[Path, Path, Path]:
    d = w.root / f"ledger-{n}"
    return d, w.root / f"pymerkle-{n}.db", w.root / f"build-{n}.json"


def build(w: Work, n: int, rebuild: bool, milestones: Sequence[int], batch: int = 1000,
          single_window: int = 1000, batch_window: int = 9) -> dict[str, Any]:
    """Build (or reuse) an ``n``-entry Custody ledger and pymerkle tree from the same records.

    Appends in durable batches of ``batch`` (publish=True: one signed checkpoint per batch).
    Just before each milestone M the last ``single_window`` entries are appended one per
    transaction (publish=False) and a checkpoint is published at exactly M. Throughput at M is
    reported for the ``batch_window`` batches before that window and for the single window.
    """
    d, pm_path, manifest = build_paths(w, n)
    if manifest.exists() and not rebuild:
        m = json.loads(manifest.read_text())
        if m.get("records_version") == RECORDS_VERSION and m.get("size") == n:
            return m
    shutil.rmtree(d, ignore_errors=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(pm_path) + suffix).unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)
    led = sqlite_ledger(d, origin="bench.custody.example/1m")
    tree = pymerkle_tree(pm_path)
    stats: dict[str, Any] = {"custody": {}, "pymerkle": {}}
    size, t_build = 0, now()
    ms = sorted(m for m in milestones if m <= n)
    batch_times: dict[str, list[tuple[int, int, float]]] = {"custody": [], "pymerkle": []}
    while size < n:
        target = next((m for m in ms if m > size), n)
        stop_batches = target - single_window if target in ms else target
        while size < stop_batches:
            b = min(batch, stop_batches - size)
            recs = make_records(size, size + b)
            t = now()
            led.append(recs, publish=True)
            t1 = now()
            tree.append_entries([pm_bytes(r) for r in recs])
            t2 = now()
            batch_times["custody"].append((size, b, t1 - t))
            batch_times["pymerkle"].append((size, b, t2 - t1))
            size += b
        if target in ms:
            recs = make_records(size, size + single_window)
            gc.collect()
            t = now()
            for r in recs:
                led.append([r], publish=False)
            t1 = now()
            led.publish()
            for r in recs:
                tree.append_entry(pm_bytes(r))
            t2 = now()
            size += single_window
            for who, secs in (("custody", t1 - t), ("pymerkle", t2 - t1)):
                lo = target - single_window - batch_window * batch
                win = [(cnt, dt) for s, cnt, dt in batch_times[who] if lo <= s < target - single_window]
                stats[who][str(target)] = {
                    "batched_per_s": sum(c for c, _ in win) / sum(dt for _, dt in win),
                    "batched_window": [max(lo, 0), target - single_window],
                    "single_per_s": single_window / secs,
                    "single_window": [target - single_window, target]}
            c, p = stats["custody"][str(target)], stats["pymerkle"][str(target)]
            print(f"  build: reached {target:,}: custody batched {c['batched_per_s']:,.0f}/s single "
                  f"{c['single_per_s']:,.0f}/s; pymerkle batched {p['batched_per_s']:,.0f}/s single "
                  f"{p['single_per_s']:,.0f}/s  ({now() - t_build:,.0f}s)", file=sys.stderr)
    led.publish()
    assert led.size() == n and tree.get_size() == n
    m = {"records_version": RECORDS_VERSION, "size": n, "built_at": datetime.now(UTC).isoformat(),
         "build_seconds": now() - t_build, "batch": batch, "scaling": stats,
         "checkpoints": len(led.checkpoints()), "custody_pragmas": ledger_pragmas(led),
         "pymerkle_pragmas": pymerkle_pragmas(tree),
         "db_bytes": {"custody": sum(f.stat().st_size for f in d.glob("ledger.db*")),
                      "pymerkle": sum(Path(str(pm_path) + s).stat().st_size for s in ("", "-wal")
                                      if Path(str(pm_path) + s).exists())}}
    led.store.close()
    tree.close()
    manifest.write_text(json.dumps(m, indent=2))
    return m


def part_build(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    n = args.size
    ms = [x for x in MILESTONES if x <= n] if not args.quick else [n // 10, n]
    runs = []
    for rep in range(args.build_repeat):
        runs.append(build(w, n, rebuild=args.rebuild or rep > 0, milestones=ms))
    out: dict[str, Any] = {"size": n, "runs": runs}
    summary: dict[str, Any] = {}
    for who in ("custody", "pymerkle"):
        for m in runs[0]["scaling"][who]:
            for k in ("batched_per_s", "single_per_s"):
                summary.setdefault(who, {}).setdefault(m, {})[k] = med([r["scaling"][who][m][k] for r in runs])
    out["summary"] = summary
    return out


def open_cached(w: Work, n: int) -> tuple[Ledger, Any]:
    from pymerkle import SqliteTree

    d, pm_path, manifest = build_paths(w, n)
    if not manifest.exists():
        raise SystemExit(f"no cached {n}-entry ledger in {w.root}: run `bench_ledger.py build` first")
    s = Settings(data_dir=d, database_url=f"sqlite:///{d / 'ledger.db'}", key_dir=d / "keys")
    led = open_ledger(s)
    tree = SqliteTree(str(pm_path))
    tree.con.execute("PRAGMA journal_mode=WAL")
    tree.con.execute("PRAGMA synchronous=FULL")
    return led, tree


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter_ns()
    r = fn()
    return (time.perf_counter_ns() - t) / 1e9, r


def part_proofs(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """Inclusion and consistency proofs via the service methods (DB reads included), on the cached ledger."""
    from pymerkle import verify_inclusion as pm_vi

    n, k = args.size, args.samples
    led, tree = open_cached(w, n)
    assert led.size() == n, led.size()
    latest = led.latest_checkpoint()
    assert latest is not None and latest.size == n
    out: dict[str, Any] = {"size": n, "samples": k, "checkpoints": len(led.checkpoints()), "runs": []}
    for rep in range(args.repeat):
        rng = random.Random(1000 + rep)
        inc_latest = [rng.randrange(n) for _ in range(k)]
        inc_pairs = []
        for _ in range(k):
            s = rng.randint(1, n)
            inc_pairs.append((rng.randrange(s), s))
        cons_pairs = []
        for _ in range(k):
            a, b = sorted(rng.sample(range(1, n + 1), 2))
            cons_pairs.append((a, b))
        cons_to_n = [rng.randint(1, n - 1) for _ in range(k)]
        row: dict[str, Any] = {"repeat": rep, "loadavg": loadavg()}
        for i in inc_latest[:50]:  # warm the connection pool and page cache a little
            led.prove_inclusion(i)

        samples, proofs = [], []
        for i in inc_latest:
            dt, p = timed(lambda i=i: led.prove_inclusion(i))
            samples.append(dt)
            proofs.append(p)
        row["inclusion_latest"] = ms_stats(samples)
        samples = []
        for i, s in inc_pairs:
            dt, _ = timed(lambda i=i, s=s: led.prove_inclusion(i, s))
            samples.append(dt)
        row["inclusion_random_size"] = ms_stats(samples)
        samples, cproofs = [], []
        for a, b in cons_pairs:
            dt, p = timed(lambda a=a, b=b: led.prove_consistency(a, b))
            samples.append(dt)
            cproofs.append(p)
        row["consistency_random"] = ms_stats(samples)
        samples = []
        for a in cons_to_n:
            dt, _ = timed(lambda a=a: led.prove_consistency(a, n))
            samples.append(dt)
        row["consistency_to_latest"] = ms_stats(samples)

        # The pure functions: verifying a proof client-side, no database.
        vs = []
        for p in proofs:
            leaf, path, root = bytes.fromhex(p["leaf_hash"]), [bytes.fromhex(h) for h in p["proof"]], bytes.fromhex(p["root"])
            dt, _ = timed(lambda leaf=leaf, p=p, path=path, root=root:
                          merkle.verify_inclusion(leaf, p["index"], p["size"], path, root))
            vs.append(dt)
        row["verify_inclusion_pure"] = us_stats(vs)
        vs = []
        for p in cproofs:
            path = [bytes.fromhex(h) for h in p["proof"]]
            o, nr = bytes.fromhex(p["old_root"]), bytes.fromhex(p["new_root"])
            dt, _ = timed(lambda p=p, o=o, nr=nr, path=path:
                          merkle.verify_consistency(p["old_size"], p["new_size"], o, nr, path))
            vs.append(dt)
        row["verify_consistency_pure"] = us_stats(vs)
        print(f"  proofs rep={rep}: " + ", ".join(
            f"{key} {v.get('median_ms', v.get('median_us')):.4f}" for key, v in row.items() if isinstance(v, dict)),
              file=sys.stderr)
        out["runs"].append(row)

    # pymerkle on its own 1M tree (indices count from 1). Its subroot cache (LRU, 1 GiB by
    # default) makes repeated proofs cheaper, so it is measured cold (cache cleared before each
    # proof) and warm (one object answering the whole random sequence, cache kept).
    pk = args.pm_samples
    rng = random.Random(7)
    pm_inc = [rng.randrange(n) + 1 for _ in range(pk)]
    pm_cons = [tuple(sorted(rng.sample(range(1, n + 1), 2))) for _ in range(pk)]
    pm: dict[str, Any] = {"samples": pk, "loadavg": loadavg()}
    t_root, pm_root = timed(lambda: tree.get_root(n))
    pm["get_root_cold_s"] = t_root
    tree.cache_clear()
    cold, pproofs = [], []
    for i in pm_inc:
        tree.cache_clear()
        dt, p = timed(lambda i=i: tree.prove_inclusion(i, n))
        cold.append(dt)
        pproofs.append((i, p))
    pm["inclusion_cold"] = ms_stats(cold)
    cold = []
    for a, b in pm_cons:
        tree.cache_clear()
        dt, _ = timed(lambda a=a, b=b: tree.prove_consistency(a, b))
        cold.append(dt)
    pm["consistency_cold"] = ms_stats(cold)
    tree.cache_clear()
    rng = random.Random(8)
    warm_inc = [rng.randrange(n) + 1 for _ in range(k)]
    warm = [timed(lambda i=i: tree.prove_inclusion(i, n))[0] for i in warm_inc]
    pm["inclusion_warm_sequence"] = ms_stats(warm)
    pm["inclusion_warm_last_half"] = ms_stats(warm[k // 2:])
    warm_cons = [tuple(sorted(rng.sample(range(1, n + 1), 2))) for _ in range(k)]
    warm = [timed(lambda a=a, b=b: tree.prove_consistency(a, b))[0] for a, b in warm_cons]
    pm["consistency_warm_sequence"] = ms_stats(warm)
    pm["consistency_warm_last_half"] = ms_stats(warm[k // 2:])
    pm["cache_info"] = str(tree.get_cache_info())
    vs = []
    for i, p in pproofs:
        base = tree.get_leaf(i)
        dt, _ = timed(lambda base=base, p=p: pm_vi(base, pm_root, p))
        vs.append(dt)
    pm["verify_inclusion_pure"] = us_stats(vs)
    print(f"  pymerkle proofs: inclusion cold {pm['inclusion_cold']['median_ms']:.2f} ms, consistency cold "
          f"{pm['consistency_cold']['median_ms']:.2f} ms, inclusion warm(2nd half) "
          f"{pm['inclusion_warm_last_half']['median_ms']:.3f} ms", file=sys.stderr)
    out["pymerkle"] = pm
    keys = [key for key in out["runs"][0] if isinstance(out["runs"][0][key], dict)]
    out["summary"] = {key: {s: med([r[key][s] for r in out["runs"]]) for s in out["runs"][0][key] if s != "n"}
                      for key in keys}
    led.store.close()
    tree.close()
    return out


def part_verify(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """Full verification of the cached ledger, then incremental verification after 10k more entries (on a copy)."""
    n = args.size
    led, tree = open_cached(w, n)
    tree.close()
    out: dict[str, Any] = {"size": n, "runs": []}
    for rep in range(args.repeat):
        gc.collect()
        t = now()
        rep_ = verify_ledger(led.store, led.keyring.verifiers, led.config.origin, incremental=False)
        wall = now() - t
        assert rep_.ok, rep_.as_dict()["problems"][:3]
        row = {"repeat": rep, "loadavg": loadavg(), "entries": rep_.entries_checked,
               "checkpoints": rep_.checkpoints_checked, "seconds": rep_.seconds, "wall_seconds": wall,
               "entries_per_s": rep_.entries_checked / rep_.seconds}
        print(f"  verify rep={rep}: {row['entries_per_s']:,.0f} entries/s ({rep_.seconds:.2f} s, "
              f"{rep_.checkpoints_checked} checkpoints)", file=sys.stderr)
        out["runs"].append(row)
    out["summary"] = {"entries_per_s": med([r["entries_per_s"] for r in out["runs"]]),
                      "seconds": med([r["seconds"] for r in out["runs"]])}
    led.store.close()

    # Incremental: copy the ledger, append 10k entries in batches of 1000, verify incrementally.
    src, _, _ = build_paths(w, n)
    dst = w.fresh("verify-incremental")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    s = Settings(data_dir=dst, database_url=f"sqlite:///{dst / 'ledger.db'}", key_dir=dst / "keys")
    led = open_ledger(s)
    verify_ledger(led.store, led.keyring.verifiers, led.config.origin, incremental=True)  # marks size n verified
    extra = make_records(n, n + 10_000)
    for k0 in range(0, len(extra), 1000):
        led.append(extra[k0:k0 + 1000])
    rep_ = verify_ledger(led.store, led.keyring.verifiers, led.config.origin, incremental=True)
    assert rep_.ok
    out["incremental"] = {"start": rep_.start, "entries": rep_.entries_checked, "seconds": rep_.seconds,
                          "checkpoints": rep_.checkpoints_checked,
                          "entries_per_s": rep_.entries_checked / rep_.seconds}
    print(f"  incremental verify: {rep_.entries_checked} entries from {rep_.start} in {rep_.seconds:.3f} s",
          file=sys.stderr)
    led.store.close()
    shutil.rmtree(dst, ignore_errors=True)
    return out


def part_breakdown(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """Where a batched append's time goes, stage by stage, without a profiler's overhead.

    Each stage is timed on its own over the same 20,000 records (batches of 1,000), using the
    ledger's own functions: validation (``Ledger._validate``), leaf bytes (``leaf_document`` +
    ``leaf_bytes``), hashing (``leaf_hash`` + ``append_leaf``) and the inserts and commit
    (``insert_entries`` + ``insert_nodes`` in one ``store.write()``), then the whole
    ``Ledger.append``; pymerkle likewise (``json.dumps``, leaf hash, ``append_entries`` of
    ready bytes). Internal names may drift as the ledger changes: this part is best effort.
    """
    from ledger.records import leaf_bytes, leaf_document
    from ledger.service import gc_paused
    from ledger.store import EntryRow

    n, bs = 20_000, 1000
    recs = make_records(0, n)
    kinds = [r["kind"] for r in recs]
    out: dict[str, Any] = {"records": n, "batch": bs, "runs": []}
    for rep in range(args.repeat):
        row: dict[str, Any] = {"repeat": rep, "loadavg": loadavg()}
        led = sqlite_ledger(w.fresh("breakdown-full"))
        gc.collect()
        t = now()
        for k in range(0, n, bs):
            led.append(recs[k:k + bs], publish=False)
        row["custody_total"] = now() - t
        led.store.close()

        # Each stage is timed with the cyclic GC paused, as ``Ledger.append`` pauses it for a batch
        # (``gc_paused``); timed with it running, the stages paid rescans the real path does not, and
        # "rest of append" (the total minus the stages) came out negative (session 6).
        led = sqlite_ledger(w.fresh("breakdown-stages"))
        gc.collect()
        t = now()
        validated = []
        with gc_paused(n):
            for k in range(0, n, bs):
                validated.extend(led._validate(recs[k:k + bs], ledger_kinds=False))
        row["validate"] = now() - t
        per_kind_v: dict[str, float] = {}
        per_kind_c: dict[str, float] = {}
        lt = "2025-12-30T10:00:00.000000Z"
        datas = []
        gc.collect()
        t = now()
        with gc_paused(n):
            for rec, fast in validated:
                datas.append(leaf_bytes(leaf_document(rec, ledger_time=lt, links=[], sealed={}), fast))
        row["leaf_bytes"] = now() - t
        gc.collect()
        for kind in sorted(set(kinds)):
            idx = [i for i, x in enumerate(kinds) if x == kind]
            sub = [recs[i] for i in idx]
            tv, tc = [], []
            for _ in range(3):  # best of 3, after a collection: per-kind costs, not GC pauses
                gc.collect()
                t = now()
                vs = led._validate(sub, ledger_kinds=False)
                tv.append(now() - t)
                gc.collect()
                t = now()
                for rec, fast in vs:
                    leaf_bytes(leaf_document(rec, ledger_time=lt, links=[], sealed={}), fast)
                tc.append(now() - t)
            per_kind_v[kind] = min(tv) / len(sub) * 1e6
            per_kind_c[kind] = min(tc) / len(sub) * 1e6
        row["validate_us_by_kind"] = per_kind_v
        row["leaf_bytes_us_by_kind"] = per_kind_c
        gc.collect()
        t = now()
        frontier: list[bytes] = []
        nodes: list[tuple[int, bytes]] = []
        with gc_paused(n):
            for i, data in enumerate(datas):
                frontier, stored = merkle.append_leaf(i, frontier, merkle.leaf_hash(data))
                nodes.extend(stored)
        row["hash_and_tree"] = now() - t
        entries = [EntryRow(i, d, rec.kind.value, rec.subject, lt, rec.idempotency_key, None)
                   for i, (d, (rec, _)) in enumerate(zip(datas, validated, strict=True))]
        row["stored_nodes_per_entry"] = len(nodes) / n
        gc.collect()
        t = now()
        lo = 0
        with gc_paused(n):
            for k in range(0, n, bs):
                hi = merkle.stored_hash_count(k + bs)
                with led.store.write() as wr:
                    wr.insert_entries(entries[k:k + bs])
                    wr.insert_nodes(nodes[lo:hi])
                lo = hi
        row["sql_insert_commit"] = now() - t
        led.store.close()

        d = w.fresh("breakdown-pymerkle")
        tree = pymerkle_tree(d / "pm.db")
        gc.collect()
        t = now()
        for k in range(0, n, bs):
            tree.append_entries([pm_bytes(r) for r in recs[k:k + bs]])
        row["pymerkle_total"] = now() - t
        tree.close()
        t = now()
        pdatas = [pm_bytes(r) for r in recs]
        row["pymerkle_json_dumps"] = now() - t
        t = now()
        for x in pdatas:
            hashlib.sha256(b"\x00" + x).digest()
        row["pymerkle_hash"] = now() - t
        tree = pymerkle_tree(w.fresh("breakdown-pymerkle2") / "pm.db")
        t = now()
        for k in range(0, n, bs):
            tree.append_entries(pdatas[k:k + bs])
        row["pymerkle_append_ready_bytes"] = now() - t
        tree.close()
        out["runs"].append(row)
        print(f"  breakdown rep={rep}: custody {row['custody_total'] / n * 1e6:.1f} µs/record "
              f"(validate {row['validate'] / n * 1e6:.1f}, leaf bytes {row['leaf_bytes'] / n * 1e6:.1f}, "
              f"hash+tree {row['hash_and_tree'] / n * 1e6:.1f}, SQL {row['sql_insert_commit'] / n * 1e6:.1f}); "
              f"pymerkle {row['pymerkle_total'] / n * 1e6:.1f} µs/record", file=sys.stderr)
    keys = [k for k, v in out["runs"][0].items() if isinstance(v, float) and k not in ("stored_nodes_per_entry",)]
    out["summary_us_per_record"] = {k: med([r[k] for r in out["runs"]]) / n * 1e6 for k in keys}
    out["summary_us_per_record"]["stored_nodes_per_entry"] = out["runs"][0]["stored_nodes_per_entry"]
    for key in ("validate_us_by_kind", "leaf_bytes_us_by_kind"):
        out[key] = {kind: med([r[key][kind] for r in out["runs"]]) for kind in out["runs"][0][key]}
    return out


def md_breakdown(r: dict[str, Any]) -> str:
    s = r["summary_us_per_record"]
    c = ("validate", "leaf_bytes", "hash_and_tree", "sql_insert_commit")
    p = ("pymerkle_json_dumps", "pymerkle_hash", "pymerkle_append_ready_bytes")
    lines = ["| stage | µs / record | share |", "|---|---:|---:|"]
    for k in c:
        lines.append(f"| Custody: {k} | {s[k]:.1f} | {s[k] / s['custody_total'] * 100:.0f}% |")
    rest = s["custody_total"] - sum(s[k] for k in c)
    lines.append(f"| Custody: rest of append (bookkeeping, result objects, size read) | {rest:.1f} | "
                 f"{rest / s['custody_total'] * 100:.0f}% |")
    lines.append(f"| **Custody: `Ledger.append` total** | **{s['custody_total']:.1f}** | |")
    for k in p:
        lines.append(f"| pymerkle: {k.removeprefix('pymerkle_')} | {s[k]:.1f} | {s[k] / s['pymerkle_total'] * 100:.0f}% |")
    lines.append(f"| **pymerkle: `append_entries` total (incl. json.dumps)** | **{s['pymerkle_total']:.1f}** | |")
    lines += ["", "| kind | validate µs | leaf bytes µs |", "|---|---:|---:|"]
    for kind in r["validate_us_by_kind"]:
        lines.append(f"| {kind} | {r['validate_us_by_kind'][kind]:.1f} | {r['leaf_bytes_us_by_kind'][kind]:.1f} |")
    return "\n".join(lines)


def part_proof_breakdown(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """Where a proof's time goes on the cached ledger: transaction, reads, plan math, whole call."""
    n, k = args.size, args.samples
    led, tree = open_cached(w, n)
    tree.close()
    rng = random.Random(3)
    inc = [rng.randrange(n) for _ in range(k)]
    cons = [tuple(sorted(rng.sample(range(1, n + 1), 2))) for _ in range(k)]
    for i in inc[:100]:
        led.prove_inclusion(i)

    def per_call(fn: Callable[[Any], Any], xs: Sequence[Any]) -> float:
        samples = []
        for x in xs:
            t = time.perf_counter_ns()
            fn(x)
            samples.append((time.perf_counter_ns() - t) / 1e3)
        return statistics.median(samples)

    def empty_txn(_: Any) -> None:
        with led.store.read():
            pass

    def txn_latest(_: Any) -> None:
        with led.store.read() as r:
            r.latest_checkpoint()

    def txn_nodes(i: int) -> None:
        plan = merkle.inclusion_plan(i, n)
        ids = merkle.plan_indices(plan)
        with led.store.read() as r:
            r.nodes(ids)

    out: dict[str, Any] = {"size": n, "samples": k, "loadavg": loadavg(), "median_us": {
        "read_txn_empty": per_call(empty_txn, inc),
        "read_txn_latest_checkpoint": per_call(txn_latest, inc),
        "inclusion_plan_and_indices": per_call(lambda i: merkle.plan_indices(merkle.inclusion_plan(i, n)), inc),
        "consistency_plan_and_indices": per_call(lambda ab: merkle.plan_indices(merkle.consistency_plan(*ab)), cons),
        "read_txn_plan_nodes (inclusion)": per_call(txn_nodes, inc),
        "prove_inclusion (whole)": per_call(lambda i: led.prove_inclusion(i), inc),
        "prove_consistency (whole)": per_call(lambda ab: led.prove_consistency(*ab), cons),
    }}
    print("  " + ", ".join(f"{key} {v:.0f} µs" for key, v in out["median_us"].items()), file=sys.stderr)
    led.store.close()
    return out


def md_proof_breakdown(r: dict[str, Any]) -> str:
    return "\n".join(["| step | median µs |", "|---|---:|"]
                     + [f"| {key} | {v:.0f} |" for key, v in r["median_us"].items()])


def part_profile(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """cProfile of batched appends, single appends and full verify (top functions by own and cumulative time)."""
    out: dict[str, Any] = {}
    recs = make_records(0, 20_000)

    def prof(name: str, fn: Callable[[], Any]) -> None:
        pr = cProfile.Profile()
        pr.enable()
        fn()
        pr.disable()
        for sort in ("tottime", "cumulative"):
            s = io.StringIO()
            pstats.Stats(pr, stream=s).strip_dirs().sort_stats(sort).print_stats(args.top)
            out[f"{name}_{sort}"] = s.getvalue()
            path = w.root / "results" / f"profile-{name}-{sort}.txt"
            path.write_text(s.getvalue())
        pr.dump_stats(str(w.root / "results" / f"profile-{name}.pstats"))

    led = sqlite_ledger(w.fresh("profile-batch"))
    prof("batch", lambda: [led.append(recs[k:k + 1000]) for k in range(0, len(recs), 1000)])
    prof("single", lambda: [led.append([r], publish=False) for r in make_records(20_000, 22_000)])
    led.store.close()
    if not args.no_pg:
        led = pg_ledger(w.fresh("profile-pg"), fresh_pg(args.pg_url))
        led.append(recs[:1000])
        prof("pg_single", lambda: [led.append([r], publish=False) for r in make_records(20_000, 21_000)])
        led.store.close()
    try:
        led, tree = open_cached(w, args.size)
        tree.close()
        prof("verify", lambda: verify_ledger(led.store, led.keyring.verifiers, led.config.origin))
        led.store.close()
    except SystemExit:
        pass
    for key, text in out.items():
        print(f"\n### {key}\n{text}")
    return {"files": sorted(str(p) for p in (w.root / "results").glob("profile-*"))}


# --- Markdown ----------------------------------------------------------------------------------------


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def md_batch(r: dict[str, Any]) -> str:
    lines = [("| batch size | Custody (+checkpoint per batch) | Custody (no checkpoint) | pymerkle `append_entries` | "
              "ratio | ratio (no checkpoint) |"), "|---:|---:|---:|---:|---:|---:|"]
    for bs, s in r["summary"].items():
        lines.append(f"| {int(bs):,} | {fmt(s['custody'])}/s | {fmt(s['custody_nopub'])}/s | {fmt(s['pymerkle'])}/s "
                     f"| {s['ratio']:.2f}× | {s['ratio_nopub']:.2f}× |")
    return "\n".join(lines)


def md_single(r: dict[str, Any]) -> str:
    s = r["summary"]
    return "\n".join([
        "| Custody (1 txn) | Custody + checkpoint each append | Custody + checkpoint ≤ 1/s | pymerkle `append_entry` |",
        "|---:|---:|---:|---:|",
        (f"| {fmt(s['custody'])}/s | {fmt(s['custody_pub_each'])}/s | {fmt(s['custody_pub_1s'])}/s | "
         f"{fmt(s['pymerkle'])}/s |")])


def md_pg(r: dict[str, Any]) -> str:
    s = r["summary"]
    return "\n".join(["| figure | records/s |", "|---|---:|"] + [f"| {k} | {fmt(v)} |" for k, v in s.items()])


def md_build(r: dict[str, Any]) -> str:
    s = r["summary"]
    lines = ["| ledger size | Custody batched (1000) | Custody single | pymerkle batched (1000) | pymerkle single |",
             "|---:|---:|---:|---:|---:|"]
    for m in s["custody"]:
        c, p = s["custody"][m], s["pymerkle"][m]
        lines.append(f"| {int(m):,} | {fmt(c['batched_per_s'])}/s | {fmt(c['single_per_s'])}/s | "
                     f"{fmt(p['batched_per_s'])}/s | {fmt(p['single_per_s'])}/s |")
    return "\n".join(lines)


def md_proofs(r: dict[str, Any]) -> str:
    s = r["summary"]
    lines = ["| Custody (service method, DB reads included) | median | p99 |", "|---|---:|---:|"]
    for key in ("inclusion_latest", "inclusion_random_size", "consistency_random", "consistency_to_latest"):
        lines.append(f"| {key} | {s[key]['median_ms']:.3f} ms | {s[key]['p99_ms']:.3f} ms |")
    for key in ("verify_inclusion_pure", "verify_consistency_pure"):
        lines.append(f"| {key} (no DB) | {s[key]['median_us']:.1f} µs | {s[key]['p99_us']:.1f} µs |")
    pm = r["pymerkle"]
    lines += ["", "| pymerkle `SqliteTree` | median | p99 |", "|---|---:|---:|"]
    for key in ("inclusion_cold", "consistency_cold", "inclusion_warm_sequence", "inclusion_warm_last_half",
                "consistency_warm_sequence", "consistency_warm_last_half"):
        lines.append(f"| {key} | {pm[key]['median_ms']:.3f} ms | {pm[key]['p99_ms']:.3f} ms |")
    lines.append(f"| verify_inclusion_pure | {pm['verify_inclusion_pure']['median_us']:.1f} µs | "
                 f"{pm['verify_inclusion_pure']['p99_us']:.1f} µs |")
    return "\n".join(lines)


def md_verify(r: dict[str, Any]) -> str:
    s, i = r["summary"], r["incremental"]
    return "\n".join(["| figure | value |", "|---|---:|",
                      f"| full verify, {r['size']:,} entries | {fmt(s['entries_per_s'])} entries/s ({s['seconds']:.2f} s) |",
                      (f"| incremental verify, {i['entries']:,} new entries | {fmt(i['entries_per_s'])} entries/s "
                       f"({i['seconds']:.3f} s incl. {i['checkpoints']} checkpoint signatures) |")])


def part_migrate(w: Work, args: argparse.Namespace) -> dict[str, Any]:
    """Migration 0005 (node tiles) on a copy of the cached ledger: downgrade to 0004 (every hash that only
    a tile holds gets its tree_nodes row, the tiles are dropped: a ledger as it was before tiles), then
    upgrade again (the backfill), both timed; database sizes; a full verify of the migrated ledger, which
    now holds every hash twice (rows and tiles) and checks both."""
    import sqlalchemy as sa
    from alembic import command

    from ledger.store_sql import SqlStore
    from migrations import alembic_config, upgrade

    n = args.size
    src, _, manifest = build_paths(w, n)
    if not manifest.exists():
        raise SystemExit(f"no cached {n}-entry ledger in {w.root}: run `bench_ledger.py build` first")
    dst = w.fresh("migrate")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    url = f"sqlite:///{dst / 'ledger.db'}"

    def db() -> dict[str, int]:
        with SqlStore(url).engine.connect() as c:
            out = {"bytes": c.exec_driver_sql("PRAGMA page_count").scalar() * c.exec_driver_sql("PRAGMA page_size").scalar(),
                   "rows": c.exec_driver_sql("SELECT COUNT(*) FROM tree_nodes").scalar()}
            has_tiles = sa.inspect(c).has_table("node_tiles")
            out["tiles"] = c.exec_driver_sql("SELECT COUNT(*) FROM node_tiles").scalar() if has_tiles else 0
        return out

    out: dict[str, Any] = {"size": n, "loadavg": loadavg(), "start": db()}
    store = SqlStore(url)
    t = now()
    command.downgrade(alembic_config(store.engine), "0004")
    out["downgrade_seconds"] = now() - t
    out["at_0004"] = db()
    t = now()
    upgrade(store.engine)
    out["upgrade_seconds"] = now() - t
    out["at_0005"] = db()
    store.close()
    led = open_ledger(Settings(data_dir=dst, database_url=url, key_dir=dst / "keys"))
    rep_ = verify_ledger(led.store, led.keyring.verifiers, led.config.origin)
    assert rep_.ok, rep_.as_dict()["problems"][:3]
    out["verify_entries_per_s"] = rep_.entries_checked / rep_.seconds
    out["verify_seconds"] = rep_.seconds
    out["loadavg_end"] = loadavg()
    led.store.close()
    print(f"  migrate: downgrade {out['downgrade_seconds']:.2f} s, upgrade {out['upgrade_seconds']:.2f} s, "
          f"verify {out['verify_entries_per_s']:,.0f} entries/s", file=sys.stderr)
    shutil.rmtree(dst, ignore_errors=True)
    return out


def md_migrate(r: dict[str, Any]) -> str:
    def d(x: dict[str, int]) -> str:
        return f"{x['bytes'] / 1e6:,.0f} MB, {x['rows']:,} rows, {x['tiles']:,} tiles"
    return "\n".join(["| step | seconds | database after it |", "|---|---:|---|",
                      f"| (the cached ledger) | | {d(r['start'])} |",
                      f"| downgrade to 0004 (rows for tile-only hashes, tiles dropped) | {r['downgrade_seconds']:.2f} | {d(r['at_0004'])} |",
                      f"| upgrade to 0005 (backfill) | {r['upgrade_seconds']:.2f} | {d(r['at_0005'])} |",
                      (f"| full verify of the migrated ledger | {r['verify_seconds']:.2f} | "
                       f"{fmt(r['verify_entries_per_s'])} entries/s |")])


PARTS: dict[str, tuple[Callable[[Work, argparse.Namespace], dict[str, Any]], Callable[[dict[str, Any]], str] | None]] = {
    "batch": (part_batch, md_batch),
    "single": (part_single, md_single),
    "pg": (part_pg, md_pg),
    "build": (part_build, md_build),
    "proofs": (part_proofs, md_proofs),
    "verify": (part_verify, md_verify),
    "breakdown": (part_breakdown, md_breakdown),
    "proof-breakdown": (part_proof_breakdown, md_proof_breakdown),
    "profile": (part_profile, None),
    "migrate": (part_migrate, md_migrate),
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=[*PARTS, "all", "machine"], help="which benchmark to run ('all': every part but profile)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures")
    ap.add_argument("--repeat", type=int, default=None, help="repeat key figures N times, report the median (default 3; 1 with --quick)")
    ap.add_argument("--build-repeat", type=int, default=1, help="build the big ledgers this many times (the last is kept)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached ledgers")
    ap.add_argument("--size", type=int, default=None, help="entries in the cached ledgers (default 1,000,000; 20,000 with --quick)")
    ap.add_argument("--samples", type=int, default=None, help="proof samples per kind (default 2000; 200 with --quick)")
    ap.add_argument("--pm-samples", type=int, default=None, help="pymerkle cold-proof samples (default 100; 20 with --quick)")
    ap.add_argument("--batch-records", type=int, default=None, help="records per batched-append run (default 100,000)")
    ap.add_argument("--single-records", type=int, default=None, help="records per single-append run (default 2,000)")
    ap.add_argument("--top", type=int, default=30, help="profile: how many functions to show")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/custody-bench"))
    ap.add_argument("--pg-url", default=os.environ.get("CUSTODY_BENCH_PG_URL", DEFAULT_PG),
                    help=f"a PostgreSQL SQLAlchemy URL; the benchmark creates its own database {PG_BENCH_DB!r} there")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL in 'all'")
    args = ap.parse_args(argv)
    q = args.quick
    args.repeat = args.repeat or (1 if q else 3)
    args.size = args.size or (20_000 if q else 1_000_000)
    args.samples = args.samples or (200 if q else 2000)
    args.pm_samples = args.pm_samples or (20 if q else 100)
    args.batch_records = args.batch_records or (10_000 if q else 100_000)
    args.single_records = args.single_records or (200 if q else 2000)
    w = Work(args.workdir.resolve())

    info = machine_info(None if args.no_pg else args.pg_url)
    print(f"<!-- machine: {json.dumps(info)} -->")
    if args.part == "machine":
        print(json.dumps(info, indent=2))
        return 0
    parts = ["batch", "single", "pg", "build", "proofs", "verify", "breakdown"] if args.part == "all" else [args.part]
    if args.no_pg and "pg" in parts and args.part == "all":
        parts.remove("pg")
    cmd = "python bench/bench_ledger.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for part in parts:
        fn, md = PARTS[part]
        print(f"[{part}] …", file=sys.stderr)
        t = now()
        res = fn(w, args)
        res["_meta"] = {"command": cmd, "machine": info, "seconds": now() - t, "loadavg_end": loadavg(),
                        "args": {k: str(v) for k, v in vars(args).items()}}
        path = w.save(part, res)
        print(f"\n## {part}  ({now() - t:,.0f} s, raw: {path})\n")
        if md:
            print(md(res))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
