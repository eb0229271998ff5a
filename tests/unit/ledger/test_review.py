"""The review queue and the SLA report, on every backend, with the ledger's clock under test control
(``Ledger.clock``): every latency below is exact, so each SLO's value is checked to the second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.review import ReviewQueue
from ledger.service import Ledger

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PRODUCED = "2026-01-05T09:00:00Z"


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        return self.t

    def set(self, seconds: float) -> None:
        self.t = T0 + timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class World:
    """Appends records at chosen ledger times (seconds after T0)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.clock = Clock()
        ledger.clock = self.clock
        self.q = ReviewQueue(ledger)
        self.n = 0

    def add(self, t: float, rec: dict[str, Any]) -> int:
        self.clock.set(t)
        [a] = self.ledger.append([{"producer": "svc:test", "produced_at": PRODUCED, **rec}])
        return a.id

    def artifact(self, t: float, *, generation: bool = True) -> int:
        self.n += 1
        links = []
        if generation:
            g = self.add(t, {"kind": "generation", "body": {"surface": "edit", "parameters": {}, "seed": self.n}})
            links = [{"rel": "generation", "id": g}]
        return self.add(t, {"kind": "artifact", "links": links,
                            "body": {"sha256": f"{self.n:064x}", "media_type": "image/png", "size": self.n,
                                     "storage_ref": f"blob://{self.n}"}})

    def prompt(self, t: float) -> int:
        return self.add(t, {"kind": "prompt", "subject": "subj:u1", "sensitive": {"text": "a prompt"},
                            "body": {"surface": "chat"}})

    def decision(self, t: float, item: int, action: str, risk: float = 0.9, rel: str = "artifact") -> int:
        return self.add(t, {"kind": "safety_decision", "producer": "svc:safety", "links": [{"rel": rel, "id": item}],
                            "body": {"action": action, "policy_id": "custody-default", "policy_version": "1.1.0",
                                     "pipeline_version": "p-1", "risk": risk, "signals": {},
                                     "categories": [{"category": "sexual_content", "risk": risk, "action": action},
                                                    {"category": "privacy", "risk": 0.0, "action": "allow"}]}})

    def distribution(self, t: float, item: int, action: str, review: int | None = None) -> int:
        links = [{"rel": "artifact", "id": item}] + ([{"rel": "review", "id": review}] if review is not None else [])
        return self.add(t, {"kind": "distribution", "producer": "svc:enforcement", "links": links,
                            "body": {"action": action, "channel": "timeline"}})

    def decide(self, t: float, item: int, action: str, reason: str = "checked") -> dict[str, Any]:
        self.clock.set(t)
        return self.q.decide(item, reviewer="rev-1", action=action, reason=reason)


@pytest.fixture
def world(ledger: Ledger) -> World:
    return World(ledger)


# --- the queue ---------------------------------------------------------------------------------


def test_queue_lists_waiting_items_oldest_first_with_age_risk_and_categories(world: World) -> None:
    a = world.artifact(0)
    b = world.artifact(0)
    c = world.artifact(0)
    d = world.artifact(0)
    e = world.artifact(0)
    p = world.prompt(0)
    hold_a = world.decision(100, a, "hold", 0.7)
    hold_b = world.decision(50, b, "hold", 0.8)  # held earlier than a: first in the queue
    world.decision(60, c, "allow", 0.1)
    world.decision(70, d, "hold")
    world.decision(80, d, "allow")  # re-analysed and allowed: no longer waiting
    world.decision(90, e, "hold")
    world.decide(95, e, "approve")  # decided
    hold_p = world.decision(200, p, "hold", rel="prompt")
    hold_a2 = world.decision(300, a, "hold", 0.75)  # held again: still one wait, since the first hold

    world.clock.set(1000)
    page = world.q.pending()
    assert [i["item"] for i in page["items"]] == [b, a, p]
    assert page["next_after"] is None and page["as_of"] == iso(1000)
    first, second, third = page["items"]
    assert first == {"item": b, "item_kind": "artifact", "hold_decision": hold_b, "latest_decision": hold_b,
                     "held_at": iso(50), "age_seconds": 950.0, "risk": 0.8, "categories": ["sexual_content"],
                     "policy": {"policy_id": "custody-default", "policy_version": "1.1.0"}, "escalations": []}
    assert second["hold_decision"] == hold_a and second["latest_decision"] == hold_a2
    assert second["held_at"] == iso(100) and second["age_seconds"] == 900.0 and second["risk"] == 0.75
    assert third["item_kind"] == "prompt" and third["hold_decision"] == hold_p

    one = world.q.pending(limit=1)
    assert [i["item"] for i in one["items"]] == [b] and one["next_after"] == hold_b
    two = world.q.pending(limit=1, after=one["next_after"])
    assert [i["item"] for i in two["items"]] == [a] and two["next_after"] == hold_a
    three = world.q.pending(limit=1, after=two["next_after"])
    assert [i["item"] for i in three["items"]] == [p] and three["next_after"] is None


def test_queue_pages_through_more_decisions_than_one_read(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ledger.review.PAGE", 3)  # several store pages per queue page
    items = [world.artifact(0, generation=False) for _ in range(7)]
    for n, i in enumerate(items):
        world.decision(10 + n, i, "allow" if n % 2 else "hold")
    held = items[0::2]
    got, after = [], None
    while True:
        page = world.q.pending(limit=2, after=after)
        got += [i["item"] for i in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert got == held


def test_queue_refuses_bad_paging(world: World) -> None:
    a = world.artifact(0)
    with pytest.raises(InvalidInput, match="limit"):
        world.q.pending(limit=0)
    with pytest.raises(InvalidInput, match="not a safety decision"):
        world.q.pending(after=a)
    with pytest.raises(InvalidInput, match="negative"):
        world.q.pending(after=-1)


# --- deciding ------------------------------------------------------------------------------------


def test_decide_links_the_item_and_the_hold_and_leaves_the_queue(world: World) -> None:
    a = world.artifact(0)
    world.decision(10, a, "hold")
    hold2 = world.decision(20, a, "hold")
    out = world.decide(600, a, "approve", "  consensual stock photo  ")
    assert out["item"] == a and out["resolves"] == hold2 and out["pending"] is False
    assert out["takedown_required"] is False and out["ledger_time"] == iso(600)
    rec = world.ledger.get(out["id"])["record"]
    assert rec["kind"] == "review_decision" and rec["producer"] == "custody:review"
    assert [(ln["rel"], ln["id"]) for ln in rec["links"]] == [("artifact", a), ("safety_decision", hold2)]
    assert rec["body"] == {"action": "approve", "reviewer": "rev-1", "reason": "consensual stock photo",
                           "item": a, "resolves": hold2, "final": True}
    assert world.q.pending()["items"] == []
    size = world.ledger.size()
    with pytest.raises(Conflict, match=f"already decided: review_decision {out['id']}"):
        world.decide(700, a, "remove")
    assert world.ledger.size() == size


def test_escalation_keeps_the_item_waiting_and_remove_asks_for_a_takedown(world: World) -> None:
    a = world.artifact(0)
    world.distribution(5, a, "publish")
    world.decision(10, a, "hold")
    esc = world.decide(60, a, "escalate", "needs a senior reviewer")
    assert esc["pending"] is True and esc["takedown_required"] is False
    [entry] = world.q.pending()["items"]
    assert entry["item"] == a and entry["escalations"] == [esc["id"]]
    out = world.decide(120, a, "remove", "non-consensual edit")
    assert out["takedown_required"] is True
    assert world.q.pending()["items"] == []


def test_a_new_hold_after_a_decision_opens_a_new_wait(world: World) -> None:
    a = world.artifact(0)
    world.decision(10, a, "hold")
    world.decide(20, a, "approve")
    hold = world.decision(30, a, "hold")  # re-analysed under a new policy
    world.clock.set(40)
    [entry] = world.q.pending()["items"]
    assert entry["hold_decision"] == hold and entry["age_seconds"] == 10.0


def test_a_review_that_names_only_the_hold_decision_resolves_it(world: World) -> None:
    a = world.artifact(0)
    hold = world.decision(10, a, "hold")
    world.add(20, {"kind": "review_decision", "links": [{"rel": "safety_decision", "id": hold}],
                   "body": {"action": "approve", "reviewer": "rev-2", "reason": "fine"}})
    assert world.q.pending()["items"] == []


@pytest.mark.parametrize("case", ["empty reason", "blank reason", "bad action", "restore", "bad reviewer",
                                  "never held", "allowed", "blocked", "unknown", "generation", "negative"])
def test_decide_refuses_and_appends_nothing(world: World, case: str) -> None:
    a = world.artifact(0)  # records 0 (generation) and 1 (artifact)
    held = world.artifact(0)
    world.decision(5, held, "hold")
    allowed, blocked = world.artifact(0), world.artifact(0)
    world.decision(5, allowed, "allow")
    world.decision(5, blocked, "block")
    size = world.ledger.size()
    q = world.q
    expect: tuple[type[Exception], str] = {
        "empty reason": (InvalidInput, "needs a reason"), "blank reason": (InvalidInput, "needs a reason"),
        "bad action": (InvalidInput, "action must be one of"), "restore": (InvalidInput, "action must be one of"),
        "bad reviewer": (InvalidInput, "body.reviewer"),
        "never held": (Conflict, "no safety decision holds it"), "allowed": (Conflict, "is 'allow'"),
        "blocked": (Conflict, "is 'block'"), "unknown": (NotFound, "does not exist"),
        "generation": (InvalidInput, "is a 'generation'"), "negative": (InvalidInput, "negative"),
    }[case]
    call = {
        "empty reason": lambda: q.decide(held, reviewer="r", action="approve", reason=""),
        "blank reason": lambda: q.decide(held, reviewer="r", action="approve", reason="  \t "),
        "bad action": lambda: q.decide(held, reviewer="r", action="delete", reason="x"),
        "restore": lambda: q.decide(held, reviewer="r", action="restore", reason="x"),
        "bad reviewer": lambda: q.decide(held, reviewer="two words", action="approve", reason="x"),
        "never held": lambda: q.decide(a, reviewer="r", action="approve", reason="x"),
        "allowed": lambda: q.decide(allowed, reviewer="r", action="approve", reason="x"),
        "blocked": lambda: q.decide(blocked, reviewer="r", action="approve", reason="x"),
        "unknown": lambda: q.decide(10_000, reviewer="r", action="approve", reason="x"),
        "generation": lambda: q.decide(0, reviewer="r", action="approve", reason="x"),
        "negative": lambda: q.decide(-1, reviewer="r", action="approve", reason="x"),
    }[case]
    with pytest.raises(expect[0], match=expect[1]):
        call()
    assert world.ledger.size() == size


def test_decide_rechecks_inside_the_write_transaction(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another reviewer decides between our read and our write: ours is refused, theirs stands."""
    a = world.artifact(0)
    hold = world.decision(10, a, "hold")
    original = world.ledger.append
    raced: list[int] = []

    def racing_append(items: Any, **kw: Any) -> Any:
        if not raced:
            [other] = original([{"kind": "review_decision", "producer": "svc:other", "produced_at": PRODUCED,
                                 "links": [{"rel": "safety_decision", "id": hold}],
                                 "body": {"action": "remove", "reviewer": "rev-9", "reason": "first"}}])
            raced.append(other.id)
        return original(items, **kw)

    monkeypatch.setattr(world.ledger, "append", racing_append)
    with pytest.raises(Conflict, match=f"already decided: review_decision {hold + 1}"):
        world.decide(20, a, "approve")
    assert world.ledger.size() == raced[0] + 1


# --- the SLA report ------------------------------------------------------------------------------

DAY = 24 * 3600.0
UNTIL = 3 * DAY


@pytest.fixture
def sla(world: World) -> dict[str, int]:
    """The scenario (seconds after T0). g = generation, h = first hold/block, r = review, td = takedown.

    A  g0    h30 (30 s ok)        approve r1830 (wait 30 min)
    B  g100  pub150  h190 (90 s)  remove r18190 (5 h)        td 25390 (2 h ok)
    C  g200  allow risk 0.8 at 210 (never held: high-risk only with a hold threshold)
    D  g300  allow risk 0.1 at 310
    E  prompt 400, block at 420 (20 s ok; no wait)
    F  g500  h510 (10 s ok)       still waiting at UNTIL (backlog)
    G  g600  h610 (ok), allowed at 700 (wait closed without a human)
    H  g800  pub850  h900 (100 s) remove r1000 (100 s)        td 109000 (30 h: breach)
    I  g1100 pub1150 h1200 (100 s) remove r1300 (100 s)       no takedown, 71.6 h old: breach
    J  g2000 pub2050 h2010 (ok)   remove r(UNTIL-3600)        no takedown yet, 1 h old: open
    K  g3000 h3010 (ok)           remove r3100 (90 s)         never published: nothing to take down
    """
    w = world
    ids: dict[str, int] = {}
    ids["A"] = w.artifact(0)
    ids["B"] = w.artifact(100)
    ids["C"] = w.artifact(200)
    ids["D"] = w.artifact(300)
    ids["E"] = w.prompt(400)
    ids["F"] = w.artifact(500)
    ids["G"] = w.artifact(600)
    ids["H"] = w.artifact(800)
    ids["I"] = w.artifact(1100)
    ids["J"] = w.artifact(2000)
    ids["K"] = w.artifact(3000)
    ids["hA"] = w.decision(30, ids["A"], "hold")
    w.distribution(150, ids["B"], "publish")
    ids["hB"] = w.decision(190, ids["B"], "hold")
    w.decision(210, ids["C"], "allow", 0.8)
    w.decision(310, ids["D"], "allow", 0.1)
    ids["bE"] = w.decision(420, ids["E"], "block", rel="prompt")
    ids["hF"] = w.decision(510, ids["F"], "hold")
    w.decision(610, ids["G"], "hold")
    w.decision(700, ids["G"], "allow", 0.2)
    w.distribution(850, ids["H"], "publish")
    ids["hH"] = w.decision(900, ids["H"], "hold")
    ids["rH"] = w.decide(1000, ids["H"], "remove")["id"]
    w.distribution(1150, ids["I"], "publish")
    ids["hI"] = w.decision(1200, ids["I"], "hold")
    ids["rI"] = w.decide(1300, ids["I"], "remove")["id"]
    ids["rA"] = w.decide(1830, ids["A"], "approve")["id"]
    w.distribution(2050, ids["J"], "publish")
    ids["hJ"] = w.decision(2010, ids["J"], "hold")
    ids["hK"] = w.decision(3010, ids["K"], "hold")
    ids["rK"] = w.decide(3100, ids["K"], "remove")["id"]
    ids["rB"] = w.decide(18190, ids["B"], "remove")["id"]
    ids["tB"] = w.distribution(25390, ids["B"], "takedown", ids["rB"])
    ids["tH"] = w.distribution(109000, ids["H"], "takedown", ids["rH"])
    ids["rJ"] = w.decide(UNTIL - 3600, ids["J"], "remove")["id"]
    return ids


def test_automated_hold_slo(world: World, sla: dict[str, int]) -> None:
    rep = world.q.sla_report(until=iso(UNTIL))
    hold = rep["slos"]["automated_hold"]
    # high-risk: A B E F G H I J K (held or blocked); within 60 s: A E F G J K
    assert hold["n"] == 9 and hold["value"]["within"] == 6 and hold["value"]["share_within"] == pytest.approx(6 / 9)
    assert hold["met"] is False and hold["value"]["never_held"] == 0
    assert [(b["item"], b["decision"], b["seconds"]) for b in hold["breaching"]] == [
        (sla["B"], sla["hB"], 90.0), (sla["H"], sla["hH"], 100.0), (sla["I"], sla["hI"], 100.0)]
    assert hold["breaching"][0]["origin"] == sla["B"] - 1  # the generation before the artifact

    with_threshold = world.q.sla_report(until=iso(UNTIL), hold_threshold=0.5)["slos"]["automated_hold"]
    assert with_threshold["n"] == 10 and with_threshold["value"]["never_held"] == 1  # C: risk 0.8, allowed
    assert [b["item"] for b in with_threshold["breaching"]] == [sla["B"], sla["C"], sla["H"], sla["I"]]
    c = with_threshold["breaching"][1]
    assert c["seconds"] is None and c["held"] is False


def test_human_review_slo_counts_the_backlog(world: World, sla: dict[str, int]) -> None:
    review = world.q.sla_report(until=iso(UNTIL))["slos"]["human_review"]
    waits = sorted([1800, 18000, UNTIL - 510, 100, 100, UNTIL - 3600 - 2010, 90])
    assert review["n"] == 7
    v = review["value"]
    assert v["reviewed"] == 6 and v["pending"] == 1 and v["closed_without_review"] == 1
    assert v["median_seconds"] == 1800.0
    # linear interpolation (type 7): rank (n-1)*0.95 = 5.7 between the 6th and 7th smallest
    assert v["p95_seconds"] == pytest.approx(waits[5] + 0.7 * (waits[6] - waits[5]))
    assert review["met"] is False
    assert [(b["item"], b["pending"]) for b in review["breaching"]] == [
        (sla["B"], False), (sla["F"], True), (sla["J"], False)]
    assert review["breaching"][1] == {"item": sla["F"], "hold_decision": sla["hF"], "review": None,
                                      "seconds": UNTIL - 510, "pending": True}


def test_takedown_slo(world: World, sla: dict[str, int]) -> None:
    td = world.q.sla_report(until=iso(UNTIL))["slos"]["takedown"]
    assert td["n"] == 3 and td["value"]["within"] == 1
    assert td["value"]["open_within_target"] == 1 and td["value"]["not_published"] == 1
    assert td["met"] is False
    assert td["breaching"] == [
        {"item": sla["H"], "review": sla["rH"], "takedown": sla["tH"], "seconds": 108000.0},
        {"item": sla["I"], "review": sla["rI"], "takedown": None, "seconds": UNTIL - 1300}]


def test_a_window_that_meets_every_slo_and_ignores_later_records(world: World, sla: dict[str, int]) -> None:
    rep = world.q.sla_report(since=iso(2900), until=iso(3200))
    assert rep["since"] == iso(2900) and rep["until"] == iso(3200)
    hold, review, td = (rep["slos"][k] for k in ("automated_hold", "human_review", "takedown"))
    assert (hold["n"], hold["value"]["share_within"], hold["met"]) == (1, 1.0, True)  # K
    assert (review["n"], review["value"]["median_seconds"], review["value"]["p95_seconds"], review["met"]) == \
        (1, 90.0, 90.0, True)
    assert (td["n"], td["met"], td["value"]["not_published"]) == (0, None, 1)
    assert rep["met"] is True

    # As seen at B's hold + 1 h: B waits (pending, 1 h), nothing of later records counts.
    # Seen from B's hold + 1 h: B, F and J still wait (their reviews come later), H, I and K were
    # reviewed, A's hold is before the window, G's wait ended without a human.
    early = world.q.sla_report(since=iso(150), until=iso(190 + 3600))["slos"]["human_review"]
    v = early["value"]
    assert (v["pending"], v["reviewed"], v["closed_without_review"]) == (3, 3, 1)
    # waits: K 90, H 100, I 100, J 1780, F 3280, B 3600
    assert v["median_seconds"] == (100.0 + 1780.0) / 2
    assert v["p95_seconds"] == pytest.approx(3280.0 + 0.75 * 320) and early["met"] is True
