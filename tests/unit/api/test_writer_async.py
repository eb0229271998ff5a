"""``LedgerWriter.append_async``: answers reach the event loop a group at a time (one wake-up per
transaction), each request gets its own slice or its own error, and a cancelled waiter does not
disturb the others or the writer."""

from __future__ import annotations

import asyncio

import pytest

from api.composition import init_ledger
from api.settings import Settings
from api.writer import LedgerWriter
from ledger.errors import InvalidInput

T = "2025-12-30T10:00:00Z"


def artifact(n: int) -> dict:
    return {"kind": "artifact", "producer": "svc:t", "produced_at": T,
            "body": {"sha256": f"{n:064x}", "media_type": "image/png", "size": n, "storage_ref": f"b://{n}"}}


def test_async_appends_share_a_transaction_and_get_their_own_answers(settings: Settings) -> None:
    ledger = init_ledger(settings, origin="custody.test/ledger")
    w = LedgerWriter(ledger)
    real_start = w.start
    w.start = lambda: None  # type: ignore[method-assign]  # queue everything first: one group

    async def main() -> list[object]:
        tasks = [asyncio.ensure_future(w.append_async([artifact(i)])) for i in range(6)]
        bad = asyncio.ensure_future(w.append_async([{"kind": "nonsense"}]))
        cancelled = asyncio.ensure_future(w.append_async([artifact(99)]))
        await asyncio.sleep(0)  # every task has queued its job
        cancelled.cancel()
        real_start()
        out = await asyncio.gather(*tasks, bad, return_exceptions=True)
        return list(out)

    try:
        out = asyncio.run(main())
        assert [[a.id for a in r] for r in out[:6]] == [[i] for i in range(6)]  # type: ignore[union-attr]
        assert isinstance(out[6], InvalidInput)
        # The cancelled request's record may still be appended (the caller gave up waiting, the
        # writer did not); it is the last one and the ledger stays dense and verifiable.
        assert ledger.size() in (6, 7)
        assert w.stats["grouped_requests"] >= 6
        assert w.append([artifact(100)])[0].id == ledger.size() - 1  # the writer still works
    finally:
        w.stop()
        ledger.store.close()


def test_async_append_after_stop_is_refused(settings: Settings) -> None:
    ledger = init_ledger(settings, origin="custody.test/ledger")
    w = LedgerWriter(ledger)
    w.start()
    w.stop()
    try:
        with pytest.raises(RuntimeError):
            asyncio.run(w.append_async([artifact(1)]))
    finally:
        ledger.store.close()
