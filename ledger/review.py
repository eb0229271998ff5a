"""The human review queue, and the SLA report of the safety process, from the ledger's own records.

No HTTP and no CLI here: ``api.review_routes`` and ``custody review …`` call this one object.

**Items and holds.** An *item* is an ``artifact`` or a ``prompt``. A ``safety_decision`` names the
item it decided about by a link whose ``rel`` is the item's kind (``{"rel": "artifact", "id": 8}``,
as the pipeline's callers and ``api.sample`` write it); its other links (policy, generation) are
context. An item *waits for review* when its most recent safety decision says ``hold`` and no final
``review_decision`` (``approve`` or ``remove``) came after it. A review decision is about an item
when it links to the item (rel ``artifact``, ``prompt`` or ``item``) or to one of the item's safety
decisions (``decide`` writes both). ``escalate`` is recorded but leaves the item waiting: a senior
reviewer still has to decide, and the clock keeps running.

**Episodes.** Walking an item's decisions in ledger order, a wait (episode) opens at the first
``hold`` and closes at the first final review after it (a re-analysis that holds again keeps the
same wait open: the item has been waiting since the first hold); a later ``allow`` or ``block``
closes it without a human (counted apart in the report, not as a review). A hold after a closed
wait opens a new one.

**Removal and takedown.** ``remove`` records the verified violation; it does not take anything
down. Taking a published artifact down is the enforcement service's job, recorded as a
``distribution`` record with ``action: takedown`` linking the artifact (and the review, rel
``review``), as ``api.sample`` shows: the SLA report measures the gap between the two records.
``decide`` says ``takedown_required`` when the artifact was published or shared.

**Time.** Every latency uses ``ledger_time``, the time the ledger stamped when it made a record
durable (see ``sla_report``). Reading the queue is O(hold decisions after the cursor) and never
loads the ledger: it pages through safety decisions by the (kind, ledger_time, idx) index and asks
for each page's items' links; the report reads the records of its window the same way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.records import Kind, parse_json
from ledger.service import Ledger
from ledger.store import EntryRow, Reader

ITEM_KINDS = (Kind.ARTIFACT.value, Kind.PROMPT.value)
REVIEW_LINK_RELS = frozenset({Kind.ARTIFACT.value, Kind.PROMPT.value, "item"})
FINAL_ACTIONS = frozenset({"approve", "remove"})
DECIDE_ACTIONS = ("approve", "remove", "escalate")
REVIEW_PRODUCER = "custody:review"

# The seed's service-level objectives (issue 3, "Review queue and SLAs").
HOLD_WITHIN_S = 60.0
HOLD_SHARE_TARGET = 0.95  # strictly more than this share of high-risk items
REVIEW_MEDIAN_S = 3600.0  # strictly less
REVIEW_P95_S = 4 * 3600.0  # strictly less
TAKEDOWN_WITHIN_S = 24 * 3600.0
MAX_LISTED = 1000  # breaching records listed per SLO (the count is always complete)
PAGE = 500

TIMESTAMPS = ("Every time is the record's ledger_time: stamped by the ledger inside the transaction that made the "
              "record durable, from the ledger's own clock. produced_at is the producer's claim (a service with a "
              "slow or wrong clock, or one that backdates, would move it); ledger_time is ours and is committed in "
              "the leaf, so the report can be recomputed from the signed log. Its limit: it is when the ledger "
              "learned of an event, so a producer that records late shifts both ends of a gap, and a generation "
              "appended in the same batch as its decision shows a gap of 0.")
PERCENTILES = ("linear interpolation between closest ranks (Hyndman-Fan type 7, numpy's default; "
               "statistics.quantiles(method='inclusive')); median = statistics.median")


def parse_time(value: str | datetime, what: str) -> datetime:
    """An RFC 3339 time (or aware datetime) → aware UTC datetime; InvalidInput otherwise."""
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise InvalidInput(f"{what}: {value[:60]!r} is not an RFC 3339 time, e.g. 2025-12-30T10:00:00Z") from None
    if dt.tzinfo is None:
        raise InvalidInput(f"{what}: give a time zone (e.g. a trailing Z for UTC)")
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:
        dt = datetime.min.replace(tzinfo=UTC)
    if not 1970 <= dt.year <= 9999:  # ledger_time strings compare as times only with 4-digit years
        raise InvalidInput(f"{what}: {dt.isoformat()} is outside the years 1970-9999")
    return dt


def ledger_format(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Event:
    """A decision or distribution record, as much of it as the queue and the report need."""

    id: int
    kind: str
    at: datetime
    ledger_time: str
    action: str | None
    body: dict[str, Any]
    links: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, e: EntryRow) -> Event:
        doc = parse_json(e.data)
        body = doc.get("body") or {}
        return cls(e.idx, e.kind, parse_time(e.ledger_time, "ledger_time"), e.ledger_time,
                   body.get("action") if isinstance(body.get("action"), str) else None, body,
                   tuple((ln["rel"], ln["id"]) for ln in doc.get("links", ())))

    def items(self) -> list[int]:
        """What a safety decision decided about (its links whose rel is an item kind)."""
        return [i for rel, i in self.links if rel in ITEM_KINDS]

    @property
    def risk(self) -> float | None:
        r = self.body.get("risk")
        return float(r) if isinstance(r, (int, float)) and not isinstance(r, bool) else None


@dataclass
class Episode:
    """One wait for a human: opened by a hold, closed by a final review (or by a later non-hold decision)."""

    item: int
    start: Event
    holds: list[Event] = field(default_factory=list)
    escalations: list[Event] = field(default_factory=list)
    review: Event | None = None
    closed_by_decision: Event | None = None

    @property
    def latest_hold(self) -> Event:
        return self.holds[-1]

    @property
    def open(self) -> bool:
        return self.review is None and self.closed_by_decision is None


@dataclass
class History:
    """An item's record and everything about it the queue needs, up to a moment."""

    item: EntryRow
    decisions: list[Event] = field(default_factory=list)  # safety decisions naming the item
    reviews: list[Event] = field(default_factory=list)  # review decisions about it
    distributions: list[Event] = field(default_factory=list)  # distribution records linking it

    def episodes(self) -> list[Episode]:
        out: list[Episode] = []
        current: Episode | None = None
        hold_ids: dict[int, Episode] = {}
        for ev in sorted(self.decisions + self.reviews, key=lambda e: e.id):
            if ev.kind == Kind.SAFETY_DECISION.value:
                if ev.action == "hold":
                    if current is None:
                        current = Episode(self.item.idx, ev)
                        out.append(current)
                    current.holds.append(ev)
                    hold_ids[ev.id] = current
                elif current is not None:
                    current.closed_by_decision = ev
                    current = None
                continue
            if current is None:
                continue  # a review outside a wait (e.g. after a user report): not a queue episode
            direct = any(rel in REVIEW_LINK_RELS and i == self.item.idx for rel, i in ev.links)
            if not direct and not any(hold_ids.get(i) is current for _, i in ev.links):
                continue  # names only a hold of an earlier wait
            if ev.action in FINAL_ACTIONS:
                current.review = ev
                current = None
            elif ev.action == "escalate":
                current.escalations.append(ev)
        return out

    def open_episode(self) -> Episode | None:
        eps = self.episodes()
        return eps[-1] if eps and eps[-1].open else None

    @property
    def published(self) -> bool:
        return any(d.action in ("publish", "share") for d in self.distributions)


def _categories(body: dict[str, Any]) -> list[str]:
    """Category names of a safety decision: the pipeline's ``categories`` list (those not allowed,
    else all), a list of names, or a mapping's keys."""
    cats = body.get("categories")
    if isinstance(cats, dict):
        return sorted(str(k) for k in cats)
    if isinstance(cats, list):
        named = [c for c in cats if isinstance(c, dict) and isinstance(c.get("category"), str)]
        if named:
            flagged = [c["category"] for c in named if c.get("action") not in (None, "allow")]
            return sorted(set(flagged or [c["category"] for c in named]))
        return sorted({c for c in cats if isinstance(c, str)})
    return []


def _histories(r: Reader, item_ids: Sequence[int], until: str | None, *,
               distributions: bool = False) -> dict[int, History]:
    """Histories of the items (artifacts and prompts only; others are left out), up to ``until``."""
    entries = {i: e for i, e in r.entries_at(item_ids).items() if e.kind in ITEM_KINDS}
    out = {i: History(e) for i, e in entries.items()}
    if not out:
        return out
    kinds = [Kind.SAFETY_DECISION.value, Kind.REVIEW_DECISION.value]
    if distributions:
        kinds.append(Kind.DISTRIBUTION.value)
    seen: set[tuple[int, int]] = set()
    for ln, e in r.linking_entries(list(out), kinds):
        if until is not None and e.ledger_time > until:
            continue
        h = out[ln.dst]
        if (ln.dst, e.idx) in seen:
            continue
        if e.kind == Kind.SAFETY_DECISION.value:
            if ln.rel == h.item.kind:
                seen.add((ln.dst, e.idx))
                h.decisions.append(Event.of(e))
        elif e.kind == Kind.REVIEW_DECISION.value:
            if ln.rel in REVIEW_LINK_RELS:
                seen.add((ln.dst, e.idx))
                h.reviews.append(Event.of(e))
        else:
            seen.add((ln.dst, e.idx))
            h.distributions.append(Event.of(e))
    # Reviews that name only the safety decision they resolve.
    owner = {d.id: i for i, h in out.items() for d in h.decisions}
    if owner:
        for ln, e in r.linking_entries(list(owner), [Kind.REVIEW_DECISION.value]):
            if until is not None and e.ledger_time > until:
                continue
            item = owner[ln.dst]
            if (item, e.idx) not in seen:
                seen.add((item, e.idx))
                out[item].reviews.append(Event.of(e))
    return out


def _kind_events(r: Reader, kind: str, since: str | None, until: str | None,
                 after: tuple[str, int] | None = None) -> Iterator[Event]:
    """Every record of ``kind`` with since ≤ ledger_time ≤ until, oldest first, a page at a time."""
    while True:
        rows = r.kind_entries(kind, since=since, until=until, after=after, limit=PAGE)
        for e in rows:
            yield Event.of(e)
        if len(rows) < PAGE:
            return
        after = (rows[-1].ledger_time, rows[-1].idx)


def _pct(values: Sequence[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    if p == 50:
        return float(statistics.median(values))
    return float(statistics.quantiles(values, n=100, method="inclusive")[p - 1])


def _seconds(a: datetime, b: datetime) -> float:
    return round((b - a).total_seconds(), 6)


class ReviewQueue:
    """The review queue and SLA report over one ``Ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- the queue ---------------------------------------------------------------------------

    def pending(self, *, limit: int = 50, after: int | None = None) -> dict[str, Any]:
        """Items waiting for review, oldest wait first: ``{"items": [...], "next_after": id | None}``.

        Pass ``next_after`` back as ``after`` for the next page (it is the id of the hold decision
        that opened the last item's wait)."""
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be between 1 and 1000; got {limit}")
        now = self.ledger.now()
        as_of = parse_time(now, "now")
        items: list[dict[str, Any]] = []
        more = False
        with self.ledger.store.read() as r:
            cursor = None
            if after is not None:
                if after < 0:
                    raise InvalidInput(f"after: record id {after} is negative")
                e = r.entries_at([after]).get(after)
                if e is None or e.kind != Kind.SAFETY_DECISION.value:
                    raise InvalidInput(f"after: record {after} is not a safety decision (pass back next_after)")
                cursor = (e.ledger_time, e.idx)
            rows = r.kind_entries(Kind.SAFETY_DECISION.value, until=now, after=cursor, limit=PAGE)
            while rows and not more:
                holds = [ev for ev in map(Event.of, rows) if ev.action == "hold"]
                hist = _histories(r, sorted({i for h in holds for i in h.items()}), now)
                for h in holds:
                    found = []
                    for item in h.items():
                        ep = hist[item].open_episode() if item in hist else None
                        if ep is not None and ep.start.id == h.id:
                            found.append(self._queue_entry(hist[item], ep, as_of))
                    if found and len(items) >= limit:
                        more = True  # a hold naming two waiting items puts both on one page
                        break
                    items.extend(found)
                if len(rows) < PAGE:
                    break
                rows = r.kind_entries(Kind.SAFETY_DECISION.value, until=now, after=(rows[-1].ledger_time, rows[-1].idx),
                                      limit=PAGE)
        return {"as_of": now, "items": items,
                "next_after": items[-1]["hold_decision"] if more and items else None}

    @staticmethod
    def _queue_entry(h: History, ep: Episode, as_of: datetime) -> dict[str, Any]:
        latest = ep.latest_hold
        return {"item": h.item.idx, "item_kind": h.item.kind, "hold_decision": ep.start.id,
                "latest_decision": latest.id, "held_at": ep.start.ledger_time,
                "age_seconds": _seconds(ep.start.at, as_of), "risk": latest.risk,
                "categories": _categories(latest.body),
                "policy": {"policy_id": latest.body.get("policy_id"), "policy_version": latest.body.get("policy_version")},
                "escalations": [e.id for e in ep.escalations]}

    def _open_wait(self, r: Reader, item_id: int) -> tuple[History, Episode]:
        """The item's open wait, or a clear error: NotFound, InvalidInput (not an item), Conflict."""
        if item_id < 0:
            raise InvalidInput(f"record id {item_id} is negative")
        entry = r.entries_at([item_id]).get(item_id)
        if entry is None:
            raise NotFound(f"record {item_id} does not exist (the ledger has {r.size()} records)")
        if entry.kind not in ITEM_KINDS:
            raise InvalidInput(f"record {item_id} is a {entry.kind!r}: only artifacts and prompts are reviewed")
        h = _histories(r, [item_id], None)[item_id]
        eps = h.episodes()
        if eps and eps[-1].open:
            return h, eps[-1]
        latest = max(h.decisions, key=lambda e: e.id) if h.decisions else None
        if latest is None:
            raise Conflict(f"record {item_id} is not waiting for review: no safety decision holds it")
        last = eps[-1] if eps else None
        if last is not None and last.review is not None and latest.id < last.review.id:
            raise Conflict(f"record {item_id} was already decided: review_decision {last.review.id} "
                           f"({last.review.action}) resolved hold {last.latest_hold.id}")
        raise Conflict(f"record {item_id} is not waiting for review: its latest safety decision "
                       f"({latest.id}) is {latest.action!r}")

    def decide(self, item_id: int, *, reviewer: str, action: str, reason: str,
               producer: str = REVIEW_PRODUCER) -> dict[str, Any]:
        """Append the reviewer's ``review_decision`` for a waiting item, linked to the item and to
        the hold decision it resolves. Refused (nothing appended): an unknown action, an empty
        reason (InvalidInput), an item that is not waiting or was already decided (Conflict).

        The wait is checked again inside the write transaction, so two reviewers deciding the same
        item at once cannot both succeed (the second gets a Conflict)."""
        if action not in DECIDE_ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(DECIDE_ACTIONS)}; got {action!r}")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("reason: a review decision needs a reason (it is the record of why)")
        with self.ledger.store.read() as r:
            h, ep = self._open_wait(r, item_id)
            published = bool(_histories(r, [item_id], None, distributions=True)[item_id].published)
        hold = ep.latest_hold.id
        rec = {"kind": Kind.REVIEW_DECISION.value, "producer": producer, "produced_at": self.ledger.now(),
               "links": [{"rel": h.item.kind, "id": item_id}, {"rel": "safety_decision", "id": hold}],
               "body": {"action": action, "reviewer": reviewer, "reason": reason.strip(), "item": item_id,
                        "resolves": hold, "final": action in FINAL_ACTIONS}}

        def still_waiting(w: Reader) -> None:
            _, now_ep = self._open_wait(w, item_id)
            if now_ep.latest_hold.id != hold:
                raise Conflict(f"record {item_id} was held again (decision {now_ep.latest_hold.id}) while "
                               f"deciding; read the queue and decide again")

        [appended] = self.ledger.append([rec], check=still_waiting)
        return {**appended.as_dict(), "item": item_id, "item_kind": h.item.kind, "action": action,
                "resolves": hold, "hold_decision": ep.start.id, "pending": action not in FINAL_ACTIONS,
                "takedown_required": action == "remove" and h.item.kind == Kind.ARTIFACT.value and published}

    # --- the SLA report ----------------------------------------------------------------------

    def sla_report(self, since: str | datetime | None = None, until: str | datetime | None = None, *,
                   hold_threshold: float | None = None) -> dict[str, Any]:
        """The seed's three SLOs over [since, until] (inclusive; ``until`` defaults to now, and is
        also the moment the report looks from: later records are ignored, so a past window's
        report does not change). See each SLO's ``definition`` in the result."""
        if hold_threshold is not None and not (isinstance(hold_threshold, (int, float)) and 0 <= hold_threshold <= 1):
            raise InvalidInput(f"hold_threshold must be a risk between 0 and 1; got {hold_threshold!r}")
        as_of = parse_time(until, "until") if until is not None else parse_time(self.ledger.now(), "now")
        start = parse_time(since, "since") if since is not None else None
        if start is not None and start > as_of:
            raise InvalidInput(f"since ({ledger_format(start)}) is after until ({ledger_format(as_of)})")
        s_ts, u_ts = (ledger_format(start) if start else None), ledger_format(as_of)
        with self.ledger.store.read() as r:
            hold = self._hold_slo(r, s_ts, u_ts, start, as_of, hold_threshold)
            review = self._review_slo(r, s_ts, u_ts, start, as_of)
            takedown = self._takedown_slo(r, s_ts, u_ts, start, as_of)
        slos = {"automated_hold": hold, "human_review": review, "takedown": takedown}
        mets = [s["met"] for s in slos.values() if s["met"] is not None]
        return {"since": s_ts, "until": u_ts, "as_of": u_ts, "timestamps": TIMESTAMPS, "percentiles": PERCENTILES,
                "hold_threshold": hold_threshold, "met": all(mets) if mets else None, "slos": slos}

    @staticmethod
    def _in_window(t: datetime, start: datetime | None, end: datetime) -> bool:
        return (start is None or t >= start) and t <= end

    def _hold_slo(self, r: Reader, s_ts: str | None, u_ts: str, start: datetime | None, as_of: datetime,
                  threshold: float | None) -> dict[str, Any]:
        item_ids: set[int] = set()
        for ev in _kind_events(r, Kind.SAFETY_DECISION.value, s_ts, u_ts):
            item_ids.update(ev.items())
        latencies: list[float] = []
        breaching: list[dict[str, Any]] = []
        n = within = never = 0
        ids = sorted(item_ids)
        for k in range(0, len(ids), PAGE):
            hist = _histories(r, ids[k:k + PAGE], u_ts)
            gens = self._generations(r, hist)
            for i, h in hist.items():
                ds = sorted(h.decisions, key=lambda e: e.id)
                flagged = [d for d in ds if d.action in ("hold", "block")]
                risky = threshold is not None and any(d.risk is not None and d.risk >= threshold for d in ds)
                if not ds or not (flagged or risky):
                    continue
                origin = gens.get(i)
                t0 = origin.at if origin is not None else parse_time(h.item.ledger_time, "ledger_time")
                if not self._in_window(t0, start, as_of):
                    continue
                n += 1
                first = flagged[0] if flagged else None
                secs = _seconds(t0, first.at) if first else None
                if secs is not None:
                    latencies.append(secs)
                if secs is not None and secs <= HOLD_WITHIN_S:
                    within += 1
                    continue
                never += first is None
                breaching.append({"item": i, "origin": origin.id if origin else i,
                                  "decision": first.id if first else ds[0].id, "seconds": secs,
                                  "held": first is not None})
        share = within / n if n else None
        return {
            "definition": ("High-risk items: artifacts and prompts with a safety decision of hold or block"
                           + (f", or any safety decision with risk >= {threshold} (the hold threshold given)"
                              if threshold is not None else " (no hold threshold given: allowed items are not "
                                                            "counted, whatever their risk)")
                           + ". Latency: from the item's origin (the generation an artifact links to with rel "
                             "'generation', else the item's own record) to its first hold or block decision. An "
                             "item counted by its risk that was never held or blocked breaches. Window: origin "
                             "time in [since, until]."),
            "target": f"more than {HOLD_SHARE_TARGET:.0%} of high-risk items held within {HOLD_WITHIN_S:.0f} s",
            "n": n, "value": {"share_within": share, "within": within, "never_held": never,
                              "median_seconds": _pct(latencies, 50), "p95_seconds": _pct(latencies, 95)},
            "met": (share > HOLD_SHARE_TARGET) if share is not None else None,
            "breaching_total": len(breaching), "breaching": breaching[:MAX_LISTED]}

    @staticmethod
    def _generations(r: Reader, hist: dict[int, History]) -> dict[int, Event]:
        """item → the generation it came from: the artifact's own 'generation' link, else one named
        by its first safety decision."""
        want: dict[int, int] = {}
        docs = {i: parse_json(h.item.data) for i, h in hist.items()}
        for i, h in hist.items():
            gen = next((ln["id"] for ln in docs[i].get("links", ()) if ln["rel"] == "generation"), None)
            if gen is None and h.decisions:
                first = min(h.decisions, key=lambda e: e.id)
                gen = next((x for rel, x in first.links if rel == "generation"), None)
            if gen is not None:
                want[i] = gen
        rows = r.entries_at(list(want.values())) if want else {}
        return {i: Event.of(rows[g]) for i, g in want.items()
                if g in rows and rows[g].kind == Kind.GENERATION.value}

    def _review_slo(self, r: Reader, s_ts: str | None, u_ts: str, start: datetime | None,
                    as_of: datetime) -> dict[str, Any]:
        item_ids: set[int] = set()
        for ev in _kind_events(r, Kind.SAFETY_DECISION.value, s_ts, u_ts):
            if ev.action == "hold":
                item_ids.update(ev.items())
        waits: list[float] = []
        reviewed = pending = automated = over_1h = 0
        breaching: list[dict[str, Any]] = []
        ids = sorted(item_ids)
        for k in range(0, len(ids), PAGE):
            for i, h in _histories(r, ids[k:k + PAGE], u_ts).items():
                for ep in h.episodes():
                    if not self._in_window(ep.start.at, start, as_of):
                        continue
                    if ep.closed_by_decision is not None:
                        automated += 1
                        continue
                    end = ep.review.at if ep.review is not None else as_of
                    secs = _seconds(ep.start.at, end)
                    waits.append(secs)
                    reviewed += ep.review is not None
                    pending += ep.review is None
                    over_1h += secs >= REVIEW_MEDIAN_S
                    if secs >= REVIEW_P95_S:
                        breaching.append({"item": i, "hold_decision": ep.start.id,
                                          "review": ep.review.id if ep.review else None, "seconds": secs,
                                          "pending": ep.review is None})
        median, p95 = _pct(waits, 50), _pct(waits, 95)
        return {
            "definition": ("Each wait for a human: from the hold decision that opened it to the first approve or "
                           "remove review_decision about the item (escalations do not end a wait). Waits still "
                           "open at `until` count with their age so far (a lower bound of their wait: a report "
                           "that ignored the backlog would flatter the queue). Waits ended by a later allow or "
                           "block decision, without a human, are left out and counted in "
                           "closed_without_review. Window: hold time in [since, until]. Breaching: waits of 4 h "
                           "or more (each one pushes the p95 towards its limit)."),
            "target": f"median < {REVIEW_MEDIAN_S / 3600:.0f} h and p95 < {REVIEW_P95_S / 3600:.0f} h",
            "n": len(waits), "value": {"median_seconds": median, "p95_seconds": p95,
                                       "median_hours": None if median is None else round(median / 3600, 4),
                                       "p95_hours": None if p95 is None else round(p95 / 3600, 4),
                                       "reviewed": reviewed, "pending": pending, "over_1h": over_1h,
                                       "closed_without_review": automated},
            "met": (median < REVIEW_MEDIAN_S and p95 < REVIEW_P95_S) if median is not None and p95 is not None else None,
            "breaching_total": len(breaching), "breaching": breaching[:MAX_LISTED]}

    def _takedown_slo(self, r: Reader, s_ts: str | None, u_ts: str, start: datetime | None,
                      as_of: datetime) -> dict[str, Any]:
        removals: dict[int, int] = {}  # artifact → a remove decision in the window naming it
        for ev in _kind_events(r, Kind.REVIEW_DECISION.value, s_ts, u_ts):
            if ev.action == "remove":
                for rel, i in ev.links:
                    if rel in (Kind.ARTIFACT.value, "item"):
                        removals.setdefault(i, ev.id)
        n = within = open_young = unpublished = 0
        lat: list[float] = []
        breaching: list[dict[str, Any]] = []
        ids = sorted(removals)
        for k in range(0, len(ids), PAGE):
            for i, h in _histories(r, ids[k:k + PAGE], u_ts, distributions=True).items():
                if h.item.kind != Kind.ARTIFACT.value:
                    continue
                removes = sorted((e for e in h.reviews if e.action == "remove"), key=lambda e: e.id)
                if not removes or not self._in_window(removes[0].at, start, as_of):
                    continue  # counted in the window of its first removal
                rm = removes[0]
                if not h.published:
                    unpublished += 1
                    continue
                downs = sorted((d for d in h.distributions if d.action == "takedown"), key=lambda e: e.id)
                if downs:
                    secs = max(0.0, _seconds(rm.at, downs[0].at))
                    n += 1
                    lat.append(secs)
                    if secs <= TAKEDOWN_WITHIN_S:
                        within += 1
                    else:
                        breaching.append({"item": i, "review": rm.id, "takedown": downs[0].id, "seconds": secs})
                    continue
                age = _seconds(rm.at, as_of)
                if age > TAKEDOWN_WITHIN_S:
                    n += 1
                    lat.append(age)
                    breaching.append({"item": i, "review": rm.id, "takedown": None, "seconds": age})
                else:
                    open_young += 1
        share = within / n if n else None
        return {
            "definition": ("Verified violations: artifacts with a remove review_decision (first removal in "
                           "[since, until]) that were published or shared (a distribution publish/share record "
                           "links them; removed before anyone saw them, there is nothing to take down: counted in "
                           "not_published). Latency: from the remove decision to the first distribution "
                           "takedown record linking the artifact (a takedown before the review counts as 0). Not "
                           "taken down by `until`: a breach once older than 24 h, else not yet counted "
                           "(open_within_target)."),
            "target": f"every verified violation taken down within {TAKEDOWN_WITHIN_S / 3600:.0f} h",
            "n": n, "value": {"share_within": share, "within": within, "open_within_target": open_young,
                              "not_published": unpublished, "max_seconds": max(lat) if lat else None,
                              "p95_seconds": _pct(lat, 95)},
            "met": (len(breaching) == 0) if n else None,
            "breaching_total": len(breaching), "breaching": breaching[:MAX_LISTED]}


def hours(seconds: float | None) -> str:
    """A duration for people: '42 s', '1.5 h'."""
    if seconds is None or math.isnan(seconds):
        return "-"
    return f"{seconds:.0f} s" if abs(seconds) < 120 else (f"{seconds / 60:.1f} min" if abs(seconds) < 7200
                                                          else f"{seconds / 3600:.1f} h")
