"""Helpers for the crash and concurrency tests: drive ``ledger_worker.py`` subprocesses and check
what a ledger holds against what its writers were told."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from api.settings import Settings
from ledger import merkle
from ledger.service import Ledger
from ledger.verify import verify_ledger
from tests.integration.ledger_worker import leaves_digest, payload

WORKER = Path(__file__).with_name("ledger_worker.py")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Ack:
    """One acknowledged batch: what ``append`` returned to its writer."""

    writer: str
    batch: str | None
    ids: list[int]
    leaves: str
    existing: list[bool] | None = None
    t0: float = 0.0  # wall clock: append called
    t1: float = 0.0  # wall clock: append returned


class Worker:
    """A ``ledger_worker.py`` subprocess whose stdout is drained by a thread (complete lines only)."""

    def __init__(self, mode: str, settings: Settings, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), mode, str(settings.data_dir), settings.database_url,
             str(settings.key_dir), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.acks: list[Ack] = []
        self.stderr = b""
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if not raw.endswith(b"\n"):
                break  # cut short by a kill: never acknowledged
            msg = json.loads(raw)
            if "ids" in msg:
                self.acks.append(Ack(msg["writer"], msg["batch"], msg["ids"], msg["leaves"],
                                     msg.get("existing"), msg.get("t0", 0.0), msg.get("t1", 0.0)))
            self.lines.put(msg)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait_for(self, key: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"worker {self.proc.pid} sent no {key!r} in {timeout}s")
            try:
                msg = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if msg is None:
                self.proc.wait()
                self._err.join(5)
                raise AssertionError(f"worker exited ({self.proc.returncode}) before {key!r}: "
                                     f"{self.stderr.decode(errors='replace')[-3000:]}")
            if key in msg:
                return msg

    def start(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 120.0) -> None:
        """Wait for a clean exit; fail with the worker's stderr otherwise."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker {self.proc.pid} did not finish in {timeout}s") from None
        self._out.join(10)
        self._err.join(10)
        if rc != 0:
            raise AssertionError(f"worker exited with {rc}: {self.stderr.decode(errors='replace')[-3000:]}")

    def join_after_kill(self) -> int:
        rc = self.proc.wait(30)
        self._out.join(10)
        self._err.join(10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return rc


@dataclass
class Contents:
    size: int
    # batch id -> [(index, body, leaf bytes)] in index order
    batches: dict[str, list[tuple[int, dict[str, Any], bytes]]] = field(default_factory=dict)


def read_contents(ledger: Ledger) -> Contents:
    """Every entry, grouped by its ``batch`` tag; asserts the indices are exactly 0..size-1."""
    with ledger.store.read() as r:
        size = r.size()
        rows = r.entries(0, size)
    idxs = [i for i, _ in rows]
    assert idxs == list(range(size)), f"indices are not dense: {_gaps(idxs, size)}"
    out = Contents(size)
    grouped: dict[str, list[tuple[int, dict[str, Any], bytes]]] = defaultdict(list)
    for idx, data in rows:
        data = bytes(data)
        body = json.loads(data)["body"]
        if "batch" in body:
            grouped[body["batch"]].append((idx, body, data))
    out.batches = dict(grouped)
    return out


def _gaps(idxs: list[int], size: int) -> str:
    seen = set(idxs)
    missing = [i for i in range(size) if i not in seen][:10]
    dups = sorted({i for i in idxs if idxs.count(i) > 1})[:10] if len(seen) != len(idxs) else []
    return f"size {size}, {len(idxs)} rows, missing {missing}, duplicated {dups}"


def check_batches_whole(contents: Contents) -> None:
    """Each batch is all there, in order, at consecutive indices, with the bytes its writer built."""
    for batch, items in contents.batches.items():
        k = items[0][1]["batch_size"]
        assert len(items) == k, f"batch {batch} is partial: {len(items)} of {k} records visible"
        seqs = [b["seq"] for _, b, _ in items]
        assert seqs == list(range(k)), f"batch {batch} records out of order: {seqs}"
        idxs = [i for i, _, _ in items]
        assert idxs == list(range(idxs[0], idxs[0] + k)), f"batch {batch} is not contiguous: {idxs}"
        for _, body, _ in items:
            assert body["payload"] == payload(batch, body["seq"]), f"batch {batch} seq {body['seq']} altered"


def check_acked(contents: Contents, acks: list[Ack]) -> None:
    """Every acknowledged batch is stored, at the ids its writer was given, with the same leaves."""
    for ack in acks:
        assert ack.batch in contents.batches, \
            f"acknowledged batch {ack.batch} ({ack.writer}, ids {ack.ids}) is gone"
        items = contents.batches[ack.batch]
        stored = [i for i, _, _ in items]
        assert stored == ack.ids, f"batch {ack.batch}: stored at {stored}, acknowledged as {ack.ids}"
        assert all(b["writer"] == ack.writer for _, b, _ in items)
        assert leaves_digest([merkle.leaf_hash(d).hex() for _, _, d in items]) == ack.leaves, \
            f"batch {ack.batch}: stored bytes differ from the acknowledged leaves"


def wait_for_killed_sessions(settings: Settings, timeout: float = 15.0) -> None:
    """Wait until the database runs no transaction but ours: a SIGKILLed client's COMMIT may still be completing.

    PostgreSQL finishes a COMMIT it has received even when the client that sent it is gone (the answer is
    simply never read), and ends the session only afterwards. A check that reads the ledger while that
    backend still runs can see the log grow between two of its reads (a committed, unacknowledged batch:
    allowed, but not yet there at the first read). SQLite has no server: its commit ends with the process.
    """
    if not settings.database_url.startswith("postgresql"):
        return
    dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    deadline = time.monotonic() + timeout
    # autocommit: pg_stat_activity is a snapshot per transaction, so each poll must be a transaction of its own
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')").fetchone()[0]
            if busy == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{busy} database sessions still busy {timeout:.0f} s after the kill")
            time.sleep(0.05)


def check_verifies(ledger: Ledger) -> None:
    """Incremental verify (from the checkpoint an earlier run verified, if any), then a full one."""
    size = ledger.size()
    for incremental in (True, False):
        report = verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin,
                               incremental=incremental)
        assert report.ok, f"{report.mode} verify failed: {[p.as_dict() for p in report.problems]}"
        assert report.size == size
        assert report.start + report.entries_checked == size
