"""Concurrent writers (threads and separate processes) get dense indices: no gaps, no duplicates.

Writers are serialised by the database (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock),
not by the process, so threads sharing one ``Ledger`` and processes each with their own must
interleave without two batches ever getting the same index or leaving a hole. Idempotent
retries racing each other with the same key must return the one entry and append it once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from api.composition import open_ledger
from api.settings import Settings
from ledger.service import Appended, Ledger
from tests.integration.ledger_worker import leaves_digest, make_batch
from tests.integration.writers import (Ack, Worker, check_acked, check_batches_whole, check_verifies,
                                       read_contents)

THREADS = 4
PROCESSES = 3
BATCHES = 12  # per writer
MAX_BATCH = 20


def _run_threads(n: int, fn: Callable[[int], None], extra_start: Callable[[], None] = lambda: None) -> None:
    """Run ``fn(k)`` in ``n`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            barrier.wait(30)
            fn(k)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    extra_start()
    barrier.wait(30)
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a writer thread hung"
    if errors:
        raise errors[0]


def _assert_writers_overlapped(acks: list[Ack]) -> None:
    """The writers really were in flight together (else the test proves nothing about concurrency).

    Their batches need not interleave in index order: under load SQLite's busy handler (a waiting
    writer sleeps, the lock holder takes the lock again at once) can hand each writer one streak.
    So this checks time: each writer called ``append`` while another writer's appends were still
    pending, and some thread and some process were writing at the same time.
    """
    spans: dict[str, tuple[float, float]] = {}
    for a in acks:
        lo, hi = spans.get(a.writer, (a.t0, a.t1))
        spans[a.writer] = (min(lo, a.t0), max(hi, a.t1))
    for w, (lo, hi) in spans.items():
        assert any(olo < hi and lo < ohi for o, (olo, ohi) in spans.items() if o != w), \
            f"writer {w} ran alone: {spans}"
    threads = [s for w, s in spans.items() if w.startswith("thread")]
    procs = [s for w, s in spans.items() if w.startswith("proc")]
    last_start = max(lo for lo, _ in threads + procs)
    assert last_start < min(max(hi for _, hi in threads), max(hi for _, hi in procs)), \
        f"threads and processes did not write at the same time: {spans}"


def test_threads_and_processes_get_dense_indices(ledger: Ledger, settings: Settings) -> None:
    start_size = ledger.size()  # init publishes the empty checkpoint only
    workers = [Worker("append", settings, "--writer", f"proc{p}", "--seed", str(p), "--batches", str(BATCHES),
                      "--max-batch", str(MAX_BATCH)) for p in range(PROCESSES)]
    thread_acks: list[Ack] = []
    lock = threading.Lock()

    def write(k: int) -> None:
        rng = random.Random(100 + k)
        for _ in range(BATCHES):
            batch, recs = make_batch(f"thread{k}", rng.randint(1, MAX_BATCH))
            t0 = time.time()
            out = ledger.append(recs)
            with lock:
                thread_acks.append(Ack(f"thread{k}", batch, [a.id for a in out],
                                       leaves_digest([a.leaf_hash for a in out]), None, t0, time.time()))

    try:
        for w in workers:
            w.wait_for("ready")

        def go() -> None:
            for w in workers:
                w.start()

        _run_threads(THREADS, write, go)
        for w in workers:
            w.finish()
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()

    acks = thread_acks + [a for w in workers for a in w.acks]
    assert len(acks) == (THREADS + PROCESSES) * BATCHES
    ids = [i for a in acks for i in a.ids]
    assert len(ids) == len(set(ids)), "an index was handed out twice"
    assert sorted(ids) == list(range(start_size, start_size + len(ids))), "the acknowledged indices have gaps"

    fresh = open_ledger(settings)
    try:
        contents = read_contents(fresh)  # every stored index is exactly 0..size-1
        assert contents.size == start_size + len(ids)
        check_batches_whole(contents)
        check_acked(contents, acks)
        check_verifies(fresh)
        _assert_writers_overlapped(acks)
    finally:
        fresh.store.close()
    assert ledger.latest_checkpoint() is not None and ledger.latest_checkpoint().size == contents.size


def _keyed(key: str, n: int) -> dict[str, Any]:
    return {"kind": "distribution", "producer": "retrier", "produced_at": "2025-01-01T00:00:00Z",
            "idempotency_key": key, "body": {"action": "share", "channel": "retry", "n": n}}


def test_concurrent_idempotent_retries_append_once(ledger: Ledger) -> None:
    """Eight threads send the same keyed record at once: one append, the same entry for all."""
    for round_ in range(8):
        before = ledger.size()
        rec = _keyed(f"retry-{round_}", round_)
        results: dict[int, Appended] = {}

        def send(k: int) -> None:
            results[k] = ledger.append([dict(rec)])[0]

        _run_threads(8, send)
        assert len({r.id for r in results.values()}) == 1, f"round {round_}: different entries {results}"
        assert len({(r.leaf_hash, r.ledger_time) for r in results.values()}) == 1
        assert sorted(r.existing for r in results.values()) == [False] + [True] * 7, \
            f"round {round_}: expected one first append and seven retries, got {results}"
        assert ledger.size() == before + 1, f"round {round_}: appended {ledger.size() - before} entries"
        got = ledger.get(results[0].id)["record"]
        assert got["body"] == rec["body"] and got["producer"] == rec["producer"]
    check_verifies(ledger)


def test_idempotent_batch_retried_by_threads_and_processes_appends_once(ledger: Ledger,
                                                                       settings: Settings) -> None:
    """The same three-record keyed batch from 3 processes and 4 threads at once: appended once, whole."""
    batch = [_keyed(f"multi-{k}", k) for k in range(3)]
    batch[2]["links"] = [{"rel": "follows", "batch": 0}]
    before = ledger.size()
    workers = [Worker("idem", settings, "--writer", f"proc{p}", "--records", json.dumps(batch))
               for p in range(PROCESSES)]
    results: dict[str, tuple[list[int], list[bool], str]] = {}

    def send(k: int) -> None:
        out = ledger.append([dict(r) for r in batch])
        results[f"thread{k}"] = ([a.id for a in out], [a.existing for a in out],
                                 leaves_digest([a.leaf_hash for a in out]))

    try:
        for w in workers:
            w.wait_for("ready")
        _run_threads(THREADS, send, lambda: [w.start() for w in workers])
        for w in workers:
            w.finish()
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
    for w in workers:
        assert len(w.acks) == 1
        a = w.acks[0]
        results[a.writer] = (a.ids, a.existing or [], a.leaves)

    assert len(results) == THREADS + PROCESSES
    assert len({tuple(ids) for ids, _, _ in results.values()}) == 1, f"different entries: {results}"
    assert len({leaves for _, _, leaves in results.values()}) == 1
    ids = next(iter(results.values()))[0]
    assert ids == [before, before + 1, before + 2]
    firsts = [w for w, (_, ex, _) in results.items() if ex == [False] * 3]
    retries = [w for w, (_, ex, _) in results.items() if ex == [True] * 3]
    assert len(firsts) == 1 and len(retries) == THREADS + PROCESSES - 1, \
        f"expected one writer to append the whole batch and the rest to get it back: {results}"
    assert ledger.size() == before + 3
    assert ledger.get(ids[2])["record"]["links"][0]["id"] == ids[0]
    check_verifies(ledger)


def test_separate_ledger_instances_in_one_process(settings: Settings, ledger: Ledger) -> None:
    """Three ``Ledger`` objects (own engines, own frontier caches) over one database, racing threads."""
    writers = 2
    others = [open_ledger(settings) for _ in range(writers)]
    acks: list[Ack] = []
    lock = threading.Lock()

    def write(k: int) -> None:
        led = others[k % writers] if k < writers else ledger
        rng = random.Random(k)
        for _ in range(BATCHES):
            batch, recs = make_batch(f"inst{k}", rng.randint(1, MAX_BATCH))
            out = led.append(recs)
            with lock:
                acks.append(Ack(f"inst{k}", batch, [a.id for a in out],
                                leaves_digest([a.leaf_hash for a in out])))

    try:
        _run_threads(writers + 1, write)
        contents = read_contents(ledger)
        check_batches_whole(contents)
        check_acked(contents, acks)
        ids = [i for a in acks for i in a.ids]
        assert len(ids) == len(set(ids))
        check_verifies(ledger)
    finally:
        for o in others:
            o.store.close()
