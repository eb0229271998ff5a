"""The writer process (``api.sequencer``): real processes, on SQLite and PostgreSQL.

What must hold: concurrent appends share transactions there and each caller gets its own answer;
refusals cross the process boundary as the same HTTP errors; a killed writer process fails what it
held with 503 and the next append starts a new one; the app's shutdown stops it; and the writes
that stay in the server's process (access records, holds) interleave with it on one dense log."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import open_ledger
from api.sequencer import SequencerChannel
from api.settings import Settings
from ledger.errors import InvalidInput, NotInitialised, StorageError, UnknownLink
from ledger.service import Ledger
from ledger.verify import verify_ledger
from tests.unit.api.app_fixtures import ACCESS, artifact, tokens_fixture  # noqa: F401 - fixture

PROCESS = ApiSettings(writer_process=True)


def _headers(tokens: dict[str, str], role: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[role]}", **extra}


def _wait_dead(pid: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # a zombie still answers kill(pid, 0): ask /proc for its state
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(") ", 1)[1].startswith("Z"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} is still running")


def test_concurrent_http_appends_through_the_writer_process(settings: Settings, ledger: Ledger,
                                                           tokens: dict[str, str]) -> None:
    with TestClient(create_app(settings, PROCESS)) as client:
        channel = client.app.state.custody.writer.channel  # type: ignore[attr-defined]
        assert channel is not None and channel.alive and channel.pid != os.getpid()
        h = _headers(tokens, "service")

        def one(i: int) -> Any:
            return client.post("/v1/records", json=artifact(i), headers=h)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(80)))
        assert {r.status_code for r in answers} == {201}
        ids = sorted(r.json()[0]["id"] for r in answers)
        assert ids == list(range(ids[0], ids[0] + 80))  # dense, each caller its own index
        # a batch, and an access record written by the server's own process in between
        batch = client.post("/v1/records", json=[artifact(100), artifact(101)], headers=h)
        assert batch.status_code == 201 and [a["id"] for a in batch.json()] == [ids[-1] + 1, ids[-1] + 2]
        read = client.get(f"/v1/records/{ids[0]}", headers=_headers(tokens, "investigator", **ACCESS))
        assert read.status_code == 200
        after = client.post("/v1/records", json=artifact(102), headers=h)
        assert after.json()[0]["id"] == read.json()["access_id"] + 1
        pid = channel.pid
    _wait_dead(pid)  # the app's shutdown stopped the writer process
    fresh = open_ledger(settings)
    try:
        report = verify_ledger(fresh.store, fresh.keyring.verifiers, fresh.config.origin)
        assert report.ok, report
        assert fresh.size() == ids[0] + 80 + 2 + 1 + 1
    finally:
        fresh.store.close()


def test_refusals_cross_the_process_boundary_and_append_nothing(settings: Settings, ledger: Ledger,
                                                                tokens: dict[str, str]) -> None:
    with TestClient(create_app(settings, PROCESS)) as client:
        h = _headers(tokens, "service")
        size = client.post("/v1/records", json=artifact(1, idempotency_key="k1"), headers=h).json()[0]["id"] + 1
        bad_time = client.post("/v1/records", json=artifact(2, produced_at="yesterday"), headers=h)
        assert bad_time.status_code == 400 and "produced_at" in bad_time.json()["message"]
        conflict = client.post("/v1/records", json=artifact(3, idempotency_key="k1"), headers=h)
        assert conflict.status_code == 409 and "idempotency key" in conflict.json()["message"]
        missing = client.post("/v1/records", json=artifact(4, links=[{"rel": "x", "id": 10_000}]), headers=h)
        assert missing.status_code == UnknownLink.status and "does not exist" in missing.json()["message"]
        half_bad = client.post("/v1/records", json=[artifact(5), {"kind": "nonsense"}], headers=h)
        assert half_bad.status_code == 400 and "record 1" in half_bad.json()["message"]
        retry = client.post("/v1/records", json=artifact(1, idempotency_key="k1"), headers=h)
        assert retry.status_code == 200 and retry.json()[0]["existing"] is True
    fresh = open_ledger(settings)
    try:
        assert fresh.size() == size  # nothing of the refused requests was appended
    finally:
        fresh.store.close()


def test_a_killed_writer_process_fails_what_it_held_and_is_replaced(settings: Settings, ledger: Ledger,
                                                                    tokens: dict[str, str]) -> None:
    with TestClient(create_app(settings, PROCESS)) as client:
        channel = client.app.state.custody.writer.channel  # type: ignore[attr-defined]
        h = _headers(tokens, "service")
        assert client.post("/v1/records", json=artifact(1), headers=h).status_code == 201
        first = channel.pid
        # In flight: the process is stopped, then killed, while it holds the request.
        os.kill(first, signal.SIGSTOP)
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(client.post, "/v1/records", json=artifact(2), headers=h)
            time.sleep(0.5)
            assert not held.done()
            os.kill(first, signal.SIGKILL)
            answer = held.result(30)
        assert answer.status_code == 503
        assert "may or may not have committed" in answer.json()["message"]
        # The next append starts a new process and succeeds.
        again = client.post("/v1/records", json=artifact(3), headers=h)
        assert again.status_code == 201
        assert channel.pid not in (None, first) and channel.starts == 2
    fresh = open_ledger(settings)
    try:
        assert verify_ledger(fresh.store, fresh.keyring.verifiers, fresh.config.origin).ok
    finally:
        fresh.store.close()


def test_the_channel_groups_what_arrives_while_the_process_is_busy(settings: Settings, ledger: Ledger) -> None:
    channel = SequencerChannel(settings)
    checkpoints_before = len(ledger.checkpoints())

    async def main() -> list[Any]:
        await channel.start()
        try:
            first = asyncio.ensure_future(channel.append([artifact(0)]))
            await asyncio.sleep(0)  # sent alone: the process takes it at once
            rest = [asyncio.ensure_future(channel.append([artifact(i)])) for i in range(1, 41)]
            bad = asyncio.ensure_future(channel.append([artifact(99, produced_at="soon")]))
            return list(await asyncio.gather(first, *rest, bad, return_exceptions=True))
        finally:
            await channel.stop()

    out = asyncio.run(main())
    good, bad = out[:-1], out[-1]
    assert isinstance(bad, InvalidInput)
    assert sorted(r[0].id for r in good) == list(range(ledger.size() - 41, ledger.size()))
    # 41 requests, far fewer transactions (each publishes one checkpoint)
    assert len(ledger.checkpoints()) - checkpoints_before < 10
    with pytest.raises(StorageError, match="stopped"):
        asyncio.run(channel.append([artifact(100)]))


def test_a_ledger_the_process_cannot_open_is_reported_at_start(tmp_path: Any) -> None:
    settings = Settings.from_env(tmp_path / "nothing-here", env={})
    with pytest.raises(NotInitialised, match="custody init"):
        asyncio.run(SequencerChannel(settings).start())


def test_the_writer_mode_setting() -> None:
    assert ApiSettings.from_env({}).writer_process is True  # what `custody serve` runs
    assert ApiSettings.from_env({"CUSTODY_API_WRITER": "thread"}).writer_process is False
    with pytest.raises(InvalidInput, match="CUSTODY_API_WRITER must be 'process' or 'thread'"):
        ApiSettings.from_env({"CUSTODY_API_WRITER": "fork"})


def test_an_unreadable_answer_fails_the_waiters_and_the_next_append_starts_afresh(settings: Settings,
                                                                                   ledger: Ledger) -> None:
    from api.sequencer import _LEN

    channel = SequencerChannel(settings)

    async def main() -> tuple[Any, bool, Any]:
        await channel.start()
        try:
            waiting = asyncio.get_running_loop().create_future()
            channel._pending[12345] = waiting
            bad = asyncio.StreamReader()
            bad.feed_data(_LEN.pack(3) + b"xyz")  # not a pickle
            bad.feed_eof()
            await channel._read_answers(bad)
            err = waiting.exception()
            alive = channel.alive
            again = await channel.append([artifact(7)])
            return err, alive, again
        finally:
            await channel.stop()

    err, alive, again = asyncio.run(main())
    assert isinstance(err, StorageError) and "could not be read" in str(err)
    assert alive is False  # the channel gave the process up ...
    assert again[0].id == ledger.size() - 1 and channel.starts == 2  # ... and the next append started a new one


def test_stop_during_a_restart_leaves_no_process(settings: Settings, ledger: Ledger) -> None:
    import multiprocessing

    channel = SequencerChannel(settings)

    async def main() -> Any:
        await channel.start()
        os.kill(channel.pid, signal.SIGKILL)  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        racing = asyncio.ensure_future(channel.append([artifact(8)]))  # starts a new process ...
        await asyncio.sleep(0.05)
        await channel.stop()  # ... which stop() must not leave behind
        return (await asyncio.gather(racing, return_exceptions=True))[0]

    outcome = asyncio.run(main())
    assert isinstance(outcome, StorageError)
    deadline = time.monotonic() + 15
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()
    assert not channel.alive


def test_stop_kills_a_writer_that_does_not_stop(settings: Settings, ledger: Ledger) -> None:
    channel = SequencerChannel(settings)

    async def main() -> tuple[int, float]:
        await channel.start()
        pid = channel.pid
        os.kill(pid, signal.SIGSTOP)  # type: ignore[arg-type]  # it can neither read the stop nor exit
        t0 = time.monotonic()
        await channel.stop(timeout=1.0)
        return pid, time.monotonic() - t0  # type: ignore[return-value]

    pid, took = asyncio.run(main())
    assert took < 20
    _wait_dead(pid)
