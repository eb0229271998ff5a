"""The API's writer thread publishes the tail of a burst on the checkpoint interval, even when idle,
and never leaves a write queued after it stopped unanswered."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from api.composition import init_ledger
from api.settings import Settings
from api.writer import LedgerWriter

T = "2025-12-30T10:00:00Z"


def artifact(n: int) -> dict:
    return {"kind": "artifact", "producer": "svc:t", "produced_at": T,
            "body": {"sha256": f"{n:064x}", "media_type": "image/png", "size": n, "storage_ref": f"b://{n}"}}


def test_idle_writer_publishes_on_the_interval(settings: Settings) -> None:
    ledger = init_ledger(replace(settings, checkpoint_interval=0.3), origin="custody.test/ledger")
    w = LedgerWriter(ledger)
    w.start()
    try:
        w.append([artifact(1)])
        w.append([artifact(2)])  # within the interval: not yet published
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and ledger.latest_checkpoint().size < 2:  # type: ignore[union-attr]
            time.sleep(0.05)
        assert ledger.latest_checkpoint().size == 2  # type: ignore[union-attr]
    finally:
        w.stop()
        ledger.store.close()


def test_a_write_queued_after_stop_is_answered(settings: Settings) -> None:
    ledger = init_ledger(settings, origin="custody.test/ledger")
    w = LedgerWriter(ledger)
    w.start()
    w.stop()
    with pytest.raises(RuntimeError):
        w.append([artifact(1)])  # refused (stopped) rather than hanging
    ledger.store.close()
