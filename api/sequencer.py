"""The ledger writer in a process of its own: where the HTTP server's appends are sequenced,
integrated and published (Tessera's sequencer, beside its HTTP front end).

Why a process: one CPython process runs Python on one core at a time. With the writer on a thread
of the server, each transaction's Python work (validation, canonical bytes, hashing, SQL binding,
signing) holds the GIL that the event loop needs, and the loop, which lets the GIL go on every
socket call, waits to get it back. Under 16 concurrent clients the server then spent about 500 µs
of CPU per single-record append against the no-op endpoint's 310 µs (BENCHMARKS.md, "Appends over
HTTP"). In a process of its own the writer uses the other core; the event loop only pickles
records onto a socket.

**Group commit happens in the writer process.** The server sends each request as it arrives
(one frame per turn of the event loop, holding every request that turn produced). The writer
process, whenever it is free, takes the next frame and every further frame that has arrived,
until the group holds ``max_group_records`` records, and runs them through ``api.writer.LedgerWriter._process``, the same code as the writer
thread: one shared transaction for the requests that may share one, the same fallbacks when it is
refused (each caller gets the answer it would have had alone), then a checkpoint per the publishing
policy. Only then does it answer, one frame per group, each answer tagged with its request's id. A
request is acknowledged after its transaction committed, as before.

**What stays in the server's process.** Only the append route (``LedgerWriter.append_async``)
comes here. Access records, holds, erasures and review decisions keep the writer thread: some
carry code (a checked append) that cannot cross a socket, and they are not the hot path. Both
processes append to one database, whose write lock serialises them; each ``Ledger`` re-reads the
tree's compact range when another writer appended since (``Ledger._integrate``).

**A lost process.** If the writer process dies (killed, out of memory), the requests it held fail
with ``StorageError`` (503): their transaction may or may not have committed, as when a database
connection drops during a commit, so a client retries with an idempotency key. The next append
starts a new process.

Frames are those of ``multiprocessing.connection``: a 4-byte big-endian signed length (−1 then an
8-byte length for frames over 2 GiB), then a pickle. Only our own two processes speak on this
socket pair; nothing from the network is unpickled (records are parsed from JSON by the route).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from api.settings import Settings
from ledger.errors import CustodyError, StorageError
from ledger.service import Appended

log = logging.getLogger("custody.api.sequencer")

# server → writer: [(request id, records), ...] per frame; None asks the writer to stop.
# writer → server: [(request id, True, [(id, leaf_hash, ledger_time, existing), ...]) or
#                   (request id, False, exception), ...] per group.
_LEN = struct.Struct("!i")
_LEN64 = struct.Struct("!Q")


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > 0x7FFFFFFF:
        return _LEN.pack(-1) + _LEN64.pack(len(data)) + data
    return _LEN.pack(len(data)) + data


def _answer(rid: int, outcome: Any) -> tuple[int, bool, Any]:
    err = outcome.exception()
    if err is None:
        return rid, True, [(a.id, a.leaf_hash, a.ledger_time, a.existing) for a in outcome.result()]
    try:
        pickle.loads(pickle.dumps(err))  # both ways: an exception with its own __init__ may not load
    except Exception:  # noqa: BLE001 - an exception that cannot cross the socket: keep its words
        err = StorageError(f"the ledger writer failed: {type(err).__name__}: {err}")
    return rid, False, err


# --- the writer process -------------------------------------------------------------------------


def serve(settings: Settings, conn: Connection, group_commit: bool, max_group_records: int) -> None:
    """The writer process: open the ledger, say ready, then group and append what arrives."""
    # Ctrl-C reaches the whole process group, and a service manager may send SIGTERM to every process
    # of the service: the server's shutdown, not the signal, ends this process, after the transaction
    # in hand (``SequencerChannel.stop``; a process that does not stop in time is killed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from api.composition import open_ledger
    from api.writer import LedgerWriter, _Job, _Outcome, groupable

    try:
        ledger = open_ledger(settings)
    except BaseException as err:  # noqa: BLE001 - reported to the server, which raises it
        conn.send_bytes(pickle.dumps((False, err if isinstance(err, CustodyError)
                                      else StorageError(f"the ledger writer cannot open the ledger: {err}"))))
        return
    writer = LedgerWriter(ledger, group_commit=group_commit, max_group_records=max_group_records)  # never started
    conn.send_bytes(pickle.dumps((True, os.getpid())))
    stop = False
    try:
        while not stop:
            try:
                first = pickle.loads(conn.recv_bytes())
            except EOFError:  # the server is gone
                break
            if first is None:
                break
            requests = list(first)
            n = sum(len(items) for _, items in requests)
            while n < max_group_records and conn.poll(0):  # whatever arrived meanwhile joins the group
                more = pickle.loads(conn.recv_bytes())
                if more is None:
                    stop = True
                    break
                requests.extend(more)
                n += sum(len(items) for _, items in more)
            jobs = [_Job(_Outcome(), items, group_commit and len(items) < max_group_records and groupable(items))
                    for _, items in requests]
            writer._process(jobs)
            conn.send_bytes(pickle.dumps([_answer(rid, j.future) for (rid, _), j in zip(requests, jobs, strict=True)],
                                         protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        ledger.store.close()


# --- the server's side --------------------------------------------------------------------------


class SequencerChannel:
    """The server's end, on its event loop: ``append`` sends records to the writer process and
    waits for its answer. Started by the app's lifespan; restarted by the next append after a crash."""

    def __init__(self, settings: Settings, *, group_commit: bool = True, max_group_records: int = 1000,
                 start_timeout: float = 120.0) -> None:
        self.settings = settings
        self.group_commit = group_commit
        self.max_group_records = max_group_records
        self.start_timeout = start_timeout
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self._proc: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[list[Appended]]] = {}
        self._outbox: list[tuple[int, list[Any]]] = []
        self._next_id = 0
        self._starting: asyncio.Lock | None = None
        self._closed = False
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._writer is not None and self._proc is not None and self._proc.is_alive()

    # --- lifecycle ---------------------------------------------------------------------------

    def _spawn(self) -> tuple[Any, socket.socket]:
        """Blocking (about a second of imports): start the process and wait for it to open the ledger."""
        parent, child = self._ctx.Pipe(duplex=True)  # a socket pair on POSIX
        proc = self._ctx.Process(target=serve, name="custody-ledger-writer", daemon=True,
                                 args=(self.settings, child, self.group_commit, self.max_group_records))
        proc.start()
        child.close()
        try:
            if not parent.poll(self.start_timeout):
                raise StorageError(f"the ledger writer process did not start within {self.start_timeout:g} s")
            ok, value = pickle.loads(parent.recv_bytes())
        except (EOFError, OSError):
            ok, value = False, StorageError(f"the ledger writer process exited while starting "
                                            f"(exit code {proc.exitcode})")
        except BaseException:
            proc.kill()
            proc.join(5)
            parent.close()
            raise
        if not ok:
            proc.join(5)
            parent.close()
            raise value
        sock = socket.socket(fileno=os.dup(parent.fileno()))
        parent.close()
        sock.setblocking(False)
        return proc, sock

    async def start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._closed:
                raise StorageError("the ledger writer was stopped")
            if self.alive:
                return
            await self._discard()
            spawning = asyncio.ensure_future(asyncio.to_thread(self._spawn))
            try:
                proc, sock = await asyncio.shield(spawning)
            except asyncio.CancelledError:  # the caller went away; the process it started must not linger
                spawning.add_done_callback(_abandon)
                raise
            if self._closed:  # stop() ran meanwhile: this process is not wanted
                _abandon(spawning)
                raise StorageError("the ledger writer was stopped")
            reader, writer = await asyncio.open_unix_connection(sock=sock)
            self._proc, self._writer = proc, writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read_answers(reader))
            self.starts += 1

    async def stop(self, timeout: float = 30.0) -> None:
        """Let the process finish what it has, then stop it (killed if it has not within ``timeout``)."""
        self._closed = True
        if self._starting is not None:
            async with self._starting:  # a start in progress finishes (and sees _closed) first
                await self._stop(timeout)
        else:
            await self._stop(timeout)

    async def _stop(self, timeout: float) -> None:
        if self._writer is not None and self._proc is not None and self._proc.is_alive():
            self._flush()
            try:
                self._writer.write(_frame(None))
                await asyncio.wait_for(self._writer.drain(), timeout)
            except (TimeoutError, ConnectionError, OSError):
                pass
            proc = self._proc
            await asyncio.to_thread(proc.join, timeout)
            if proc.is_alive():
                log.warning("the ledger writer process did not stop within %g s; killing it", timeout)
        await self._discard()

    async def _discard(self) -> None:
        """Forget the current process (dead or unreachable): fail what waits on it."""
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - it only resolves futures
                pass
        if self._proc is not None:
            await asyncio.to_thread(_end, self._proc)
            self._proc = None
        self._fail_pending(StorageError("the ledger writer process stopped before answering; the append may or "
                                        "may not have committed: retry with an idempotency key"))

    def _fail_pending(self, err: CustodyError) -> None:
        pending, self._pending = self._pending, {}
        self._outbox.clear()
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(err)

    # --- appending ---------------------------------------------------------------------------

    async def append(self, items: Sequence[Any]) -> list[Appended]:
        if self._closed:
            raise StorageError("the ledger writer was stopped")
        if not self.alive:
            await self.start()
        loop = asyncio.get_running_loop()
        rid = self._next_id
        self._next_id += 1
        fut: asyncio.Future[list[Appended]] = loop.create_future()
        self._pending[rid] = fut
        if not self._outbox:
            loop.call_soon(self._flush)  # one frame for every request of this turn of the loop
        self._outbox.append((rid, list(items)))
        try:
            return await fut
        finally:
            self._pending.pop(rid, None)  # answered, or the client went away (the append goes on)

    def _flush(self) -> None:
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        try:
            if self._writer is None:
                raise ConnectionError("the process is gone")
            self._writer.write(_frame(batch))
        except (ConnectionError, OSError, RuntimeError) as err:
            for rid, _ in batch:
                fut = self._pending.get(rid)
                if fut is not None and not fut.done():
                    fut.set_exception(StorageError(f"cannot reach the ledger writer process: {err}"))

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (n,) = _LEN.unpack(await reader.readexactly(4))
                if n == -1:
                    (n,) = _LEN64.unpack(await reader.readexactly(8))
                for rid, ok, value in pickle.loads(await reader.readexactly(n)):
                    fut = self._pending.get(rid)
                    if fut is None or fut.done():
                        continue
                    if ok:
                        fut.set_result([Appended(*t) for t in value])
                    else:
                        fut.set_exception(value if isinstance(value, BaseException) and not isinstance(
                            value, StopIteration) else StorageError(f"the ledger writer failed: {value!r}"))
        except asyncio.CancelledError:
            raise
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            if self._closed:
                return  # stop() asked it to end
            code = self._proc.exitcode if self._proc is not None else None
            self._lost(f"the ledger writer process exited (exit code {code}) before answering; the append may "
                       f"or may not have committed: retry with an idempotency key")
        except Exception as err:
            log.exception("unreadable answer from the ledger writer process")
            self._lost(f"the ledger writer's answer could not be read ({type(err).__name__}); the append may or "
                       f"may not have committed: retry with an idempotency key")

    def _lost(self, message: str) -> None:
        """The process is gone or cannot be understood: fail what waits, and let the next append start anew."""
        log.error("%s", message)
        if self._writer is not None:
            self._writer.close()
        self._writer = None  # not alive: the next append starts a new process (start() ends this one)
        self._fail_pending(StorageError(message))


def _end(proc: Any, grace: float = 5.0) -> None:
    """Blocking: make sure ``proc`` is gone (terminate, then kill: a stopped process ignores SIGTERM)."""
    if proc.is_alive():
        proc.terminate()
        proc.join(grace)
    if proc.is_alive():
        proc.kill()
    proc.join(grace)


def _abandon(spawning: asyncio.Future[Any]) -> None:
    """A process started for nobody (its start was cancelled or the channel stopped): end it."""
    if spawning.cancelled() or spawning.exception() is not None:
        return
    proc, sock = spawning.result()
    sock.close()
    threading.Thread(target=_end, args=(proc,), daemon=True).start()
