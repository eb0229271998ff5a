"""Crash safety: SIGKILL a process appending batches at random moments; after each kill, every
acknowledged append is present, no partial batch is visible, indices are dense and verify passes.

The worker (``ledger_worker.py crash``) opens the ledger with the durable settings (SQLite: WAL,
synchronous=FULL), appends batches of random size (a checkpoint is published after each batch)
and prints a batch's ids only after ``append`` returned. Kills land at a random delay after the
worker is ready (5-300 ms: before, during and after commits and checkpoint publishing), and
every other round shortly after an acknowledgement (so some land in the next commit or in the
checkpoint transaction that follows an append). The ledger accumulates across rounds, so
later rounds also check that earlier acknowledged batches survived the later crashes.
"""

from __future__ import annotations

import os
import random
import signal
import time

from api.composition import open_ledger
from api.settings import Settings
from ledger.service import Ledger
from tests.integration.writers import (Ack, Worker, check_acked, check_batches_whole, check_verifies,
                                       read_contents, wait_for_killed_sessions)

SQLITE_KILLS = 24
POSTGRES_KILLS = 6


def _kill_round(settings: Settings, rng: random.Random, n: int) -> tuple[list[Ack], float]:
    w = Worker("crash", settings, "--writer", f"crash{n}", "--seed", str(rng.randrange(1 << 30)),
               "--max-batch", "40")
    try:
        w.wait_for("ready")
        if n % 2 == 0:
            delay = rng.uniform(0.005, 0.300)
            time.sleep(delay)
        else:  # just after the k-th acknowledgement: inside the next commit or the checkpoint
            w.wait_for("ids")
            for _ in range(rng.randint(0, 3)):
                w.wait_for("ids")
            delay = rng.uniform(0.0, 0.010)
            time.sleep(delay)
        os.kill(w.proc.pid, signal.SIGKILL)
    finally:
        if w.proc.poll() is None:
            w.proc.kill()  # only reached when the round failed before its planned kill
        rc = w.join_after_kill()
    assert rc == -signal.SIGKILL, f"the worker ended by itself ({rc}): {w.stderr.decode()[-3000:]}"
    return w.acks, delay


def test_sigkill_while_appending_loses_nothing_acknowledged(ledger: Ledger, settings: Settings) -> None:
    kills = SQLITE_KILLS if settings.database_url.startswith("sqlite") else POSTGRES_KILLS
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    acked: list[Ack] = []
    for n in range(kills):
        acks, delay = _kill_round(settings, rng, n)
        acked.extend(acks)
        wait_for_killed_sessions(settings)  # PostgreSQL may still be committing the killed worker's batch
        fresh = open_ledger(settings)  # what a restarted process sees
        try:
            contents = read_contents(fresh)  # dense 0..size-1
            check_batches_whole(contents)  # no partial batch
            check_acked(contents, acked)  # this round's and every earlier round's acknowledgements
            check_verifies(fresh)
        except AssertionError as err:
            raise AssertionError(f"after kill {n + 1} (seed {seed}, delay {delay * 1000:.1f} ms, "
                                 f"{len(acks)} batches acknowledged this round): {err}") from err
        finally:
            fresh.store.close()
        committed_unacked = len(contents.batches) - len(acked)  # killed between commit and acknowledgement
        print(f"kill {n + 1}: {delay * 1000:.1f} ms, {len(acks)} acknowledged, size {contents.size}, "
              f"{committed_unacked} committed-unacknowledged so far")
    assert len(acked) >= kills, f"the workers acknowledged only {len(acked)} batches in {kills} rounds"
