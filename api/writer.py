"""One writer thread for every ledger write the API makes, with group commit.

Requests hand their records to a queue and wait; the writer thread takes whatever has queued up
while the previous transaction was committing and appends it as **one** durable transaction
(then signs a checkpoint, per the ledger's publishing policy), and only then acknowledges each
request with its own slice of the results. Under load many concurrent single-record appends
share one fsync; with one client at a time nothing waits for company (there is no timer).

Which requests may share a transaction: those with fewer than ``max_group_records`` records,
no ``{"batch": N}`` links (a batch link names a position in *its own* request, which a shared
batch would shift) and no legal holds (see ``groupable``). If the shared append is refused (a record fails validation, an
idempotency-key conflict, a link to a missing record, a hold conflict), nothing was committed:
requests that fail validation are then appended alone (refused without touching the database),
the others get one more shared try, and if that is refused too each goes alone, so every
caller gets exactly the answer it would have had alone. A storage error fails the whole
group with that error and is not retried: a commit that failed in flight may have succeeded,
and retrying could append records twice.

Routing every write of this process through one thread also keeps the ledger's in-process
caches (its compact-range frontier) written by one thread only.

Waking the event loop: ``append_async`` waits on an asyncio future, and the writer hands a whole
group's answers to the loop in one ``call_soon_threadsafe`` (one wake-up of the loop per
transaction, not one per request).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ledger.errors import Conflict, CustodyError, InvalidInput, SubjectErased
from ledger.records import validate
from ledger.service import Appended, Ledger

if TYPE_CHECKING:
    from api.sequencer import SequencerChannel

log = logging.getLogger("custody.api.writer")
T = TypeVar("T")
# Refusals decided before anything is written: safe to retry each request alone.
_RETRY_ALONE = (InvalidInput, Conflict, SubjectErased)


class _Outcome:
    """The part of ``concurrent.futures.Future`` the writer uses, without its lock and condition
    (set on the writer thread, read on the event loop after ``_wake`` hands it over)."""

    __slots__ = ("_done", "_result", "_error")

    def __init__(self) -> None:
        self._done = False
        self._result: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any) -> None:
        self._result, self._done = result, True

    def set_exception(self, error: BaseException) -> None:
        self._error, self._done = error, True

    def exception(self) -> BaseException | None:
        return self._error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result


@dataclass
class _Job:
    future: Future[Any] | _Outcome
    items: Sequence[Any] = ()
    groupable: bool = False
    fn: Callable[[], Any] | None = None
    trusted: bool = False  # the API's own records (access, legal_hold): kinds a client may not append
    # For append_async: the loop and the asyncio future that get ``future``'s outcome (see _wake).
    waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]] | None = None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = max(1, len(self.items))


def groupable(items: Sequence[Any]) -> bool:
    """True if these records can share a transaction with other requests' records: no batch
    links, no legal holds (cheap to see; validation is left to the ledger, see ``_append_group``).

    Legal holds go alone because the ledger checks a hold change against the holds already
    stored, not against others in the same batch: two requests placing the same hold would
    both succeed in one shared batch, where alone the second gets its 409."""
    for item in items:
        if not isinstance(item, dict) or item.get("kind") == "legal_hold":
            return False
        links = item.get("links")
        if isinstance(links, list) and any(isinstance(ln, dict) and "batch" in ln for ln in links):
            return False
    return True


def _valid(items: Sequence[Any]) -> bool:
    try:
        for item in items:
            validate(item)
    except CustodyError:
        return False
    return True


def _deliver(jobs: Sequence[_Job]) -> None:
    """On the event loop: copy each job's outcome to its asyncio future (unless it was cancelled)."""
    for j in jobs:
        fut = j.waiter[1]  # type: ignore[index]
        if fut.done():
            continue
        err = j.future.exception()
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(j.future.result())


class LedgerWriter:
    """Serialises this process's ledger writes onto one thread; groups compatible appends."""

    def __init__(self, ledger: Ledger, *, group_commit: bool = True, max_group_records: int = 1000,
                 channel: SequencerChannel | None = None) -> None:
        self.ledger = ledger
        # With a channel, ``append_async`` (the HTTP append route) is served by the writer process
        # behind it (api.sequencer); everything else still runs on this thread.
        self.channel = channel
        self.group_commit = group_commit
        self.max_group_records = max_group_records
        self._q: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.stats = {"transactions": 0, "grouped_requests": 0, "fallbacks": 0}

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._stopped:
                raise RuntimeError("the ledger writer was stopped")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="custody-ledger-writer", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued work, then stop the thread."""
        with self._lock:
            self._stopped = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._q.put(None)
            thread.join(timeout)

    # --- submitting ------------------------------------------------------------------------

    def _submit(self, job: _Job) -> Future[Any] | _Outcome:
        self.start()
        self._q.put(job)
        return job.future

    def submit_append(self, items: Sequence[Any], *, group: bool | None = None,
                      trusted: bool = False) -> Future[list[Appended]]:
        """Queue an append; ``group=None`` decides with ``groupable`` (which validates the records).
        ``trusted`` marks the API's own records (access, legal holds); they always go alone."""
        return self._submit(self._append_job(items, group, trusted))  # type: ignore[return-value]

    def _append_job(self, items: Sequence[Any], group: bool | None, trusted: bool,
                    outcome: Future[Any] | _Outcome | None = None) -> _Job:
        items = list(items)
        g = (not trusted and self.group_commit and len(items) < self.max_group_records
             and (groupable(items) if group is None else group))
        return _Job(Future() if outcome is None else outcome, items, g, trusted=trusted)

    def submit_call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` (e.g. an erasure) on the writer thread, in turn with the appends."""
        return self._submit(_Job(Future(), fn=fn))  # type: ignore[return-value]

    def append(self, items: Sequence[Any], *, group: bool | None = None, trusted: bool = False) -> list[Appended]:
        """Blocking form (for code already on a worker thread)."""
        return self.submit_append(items, group=group, trusted=trusted).result()

    def call(self, fn: Callable[[], T]) -> T:
        return self.submit_call(fn).result()

    async def append_async(self, items: Sequence[Any], *, group: bool | None = None) -> list[Appended]:
        if self.channel is not None and group is None:
            return await self.channel.append(items)
        job = self._append_job(items, group, False, _Outcome())
        loop = asyncio.get_running_loop()
        job.waiter = (loop, loop.create_future())
        self._submit(job)
        return await job.waiter[1]  # type: ignore[no-any-return]

    async def call_async(self, fn: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self.submit_call(fn))

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        interval = self.ledger.config.checkpoint_interval
        while not stop:
            try:
                # With a checkpoint interval, an idle writer still publishes the tail of a burst.
                job = self._q.get(timeout=interval) if interval > 0 else self._q.get()
            except queue.Empty:
                self._publish()
                continue
            if job is None:
                break
            jobs = [job]
            n = job.size
            while n < self.max_group_records:  # take what queued up meanwhile, up to the cap
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
                n += nxt.size
            try:
                self._process(jobs)
            except BaseException as err:  # pragma: no cover - _process resolves every future itself
                log.exception("ledger writer failed")
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(err)
            finally:
                self._wake(jobs)
        # Stopped: anything queued after the stop marker is answered, never left hanging.
        while True:
            try:
                late = self._q.get_nowait()
            except queue.Empty:
                break
            if late is not None and not late.future.done():
                late.future.set_exception(RuntimeError("the ledger writer stopped before this write ran"))
                self._wake([late])

    @staticmethod
    def _wake(jobs: Sequence[_Job]) -> None:
        """Hand finished jobs' outcomes to their event loops: one call per loop, not per job."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for j in jobs:
            if j.waiter is not None:
                by_loop.setdefault(j.waiter[0], []).append(j)
        for loop, js in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, js)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _process(self, jobs: list[_Job]) -> None:
        group = [j for j in jobs if j.fn is None and j.groupable]
        alone = [j for j in jobs if j not in group]
        if len(group) == 1:
            alone.insert(0, group.pop())
        if group:
            self._append_group(group)
        for j in alone:
            if j.fn is not None:
                self._resolve(j, j.fn)
            else:
                self._resolve(j, lambda j=j: self._append(j.items, j.trusted))  # type: ignore[misc]

    def _append(self, items: Sequence[Any], trusted: bool = False) -> list[Appended]:
        out = self.ledger.append(items, publish=False, trusted=trusted)
        self.stats["transactions"] += 1
        self._publish()
        return out

    def _publish(self) -> None:
        """Sign a checkpoint (per policy) before acknowledging, so a proof can follow at once.
        The entries are already durable: a failure here is logged, not reported as a failed append."""
        try:
            self.ledger.publish(force=False)
        except CustodyError:
            log.exception("checkpoint publishing failed after a durable append; the next append retries it")

    @staticmethod
    def _resolve(job: _Job, fn: Callable[[], Any]) -> None:
        try:
            result = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting request
            job.future.set_exception(err)
        else:
            job.future.set_result(result)

    def _append_group(self, jobs: list[_Job], *, first_try: bool = True) -> None:
        items = [it for j in jobs for it in j.items]
        try:
            results = self.ledger.append(items, publish=False)
        except _RETRY_ALONE:
            # Refused before anything was written. Requests that fail validation alone go alone (the
            # ledger refuses them without touching the database); the rest get one more shared try.
            self.stats["fallbacks"] += 1
            valid = [j for j in jobs if _valid(j.items)] if first_try else []
            for j in jobs:
                if j not in valid:
                    self._resolve(j, lambda j=j: self._append(j.items))  # type: ignore[misc]
            if len(valid) == 1:
                self._resolve(valid[0], lambda: self._append(valid[0].items))
            elif valid:
                self._append_group(valid, first_try=False)
            return
        except BaseException as err:  # noqa: BLE001 - storage errors: not retried (see module doc)
            for j in jobs:
                j.future.set_exception(err)
            return
        self.stats["transactions"] += 1
        self.stats["grouped_requests"] += len(jobs)
        self._publish()
        k = 0
        for j in jobs:
            j.future.set_result(results[k:k + len(j.items)])
            k += len(j.items)
