"""The human review queue over HTTP: thin routes over ``ledger.review.ReviewQueue`` (the CLI's
``custody review …`` calls the same object).

``GET  /v1/review/queue``                 items waiting for review, oldest first (reviewer; shows
                                          evidence, so the read appends an ``access`` record and
                                          needs ``X-Custody-Case`` / ``X-Custody-Purpose``)
``POST /v1/review/{item_id}/decision``    the reviewer's decision: a ``review_decision`` record
                                          (reviewer; the reviewer named in it is the token's name)
``GET  /v1/review/sla``                   the SLA report (auditor, reviewer: ids and timings only,
                                          no record content, so no access record)
"""

# No ``from __future__ import annotations``: the routes are defined inside ``review_router`` and
# FastAPI must see their annotations (which name that function's locals) as objects, not strings.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth import allow
from api.tokens import Role, TokenInfo
from ledger.review import ReviewQueue

Reviewer = Annotated[TokenInfo, Depends(allow(Role.REVIEWER))]
SlaReader = Annotated[TokenInfo, Depends(allow(Role.AUDITOR, Role.REVIEWER))]
MAX_ID = (1 << 63) - 1
Time = Annotated[str | None, Query(min_length=1, max_length=40,
                                   description="RFC 3339 time with a zone, e.g. 2026-01-05T09:00:00Z")]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyRef(_Out):
    policy_id: Any
    policy_version: Any


class QueueItemOut(_Out):
    item: int = Field(description="the held artifact or prompt")
    item_kind: str
    hold_decision: int = Field(description="the hold that opened this wait (page cursor: `after`)")
    latest_decision: int = Field(description="the latest hold; a decision resolves this one")
    held_at: str = Field(description="ledger_time of the first hold")
    age_seconds: float
    risk: float | None
    categories: list[str]
    policy: PolicyRef
    escalations: list[int] = Field(description="escalate review_decisions recorded during this wait")


class QueueOut(_Out):
    as_of: str
    items: list[QueueItemOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last page")
    access_id: int = Field(description="the access record this read appended")


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    action: Literal["approve", "remove", "escalate"] = Field(
        description="approve (release the hold), remove (a verified violation; enforcement takes a published "
                    "artifact down and records a `distribution` takedown), escalate (to a senior reviewer; the "
                    "item keeps waiting)")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=10_000)] = Field(
        description="why; recorded in the review_decision")


class DecisionOut(_Out):
    id: int
    leaf_hash: str
    ledger_time: str
    existing: bool
    item: int
    item_kind: str
    action: str
    resolves: int = Field(description="the hold decision this review decision links to")
    hold_decision: int = Field(description="the hold that opened the wait")
    pending: bool = Field(description="true after an escalation: the item still waits")
    takedown_required: bool = Field(description="a removed artifact that was published or shared")


class SloOut(_Out):
    definition: str
    target: str
    n: int
    value: dict[str, Any]
    met: bool | None = Field(description="null when there is nothing to measure in the window")
    breaching_total: int
    breaching: list[dict[str, Any]] = Field(description="the first 1,000 breaching items, with record ids")


class SlaOut(_Out):
    since: str | None
    until: str
    as_of: str
    timestamps: str
    percentiles: str
    hold_threshold: float | None
    met: bool | None
    slos: dict[str, SloOut]


def review_router(responses: Any) -> APIRouter:
    """The routes; ``responses`` is ``api.app._responses``. Imports from ``api.app`` happen here
    (``create_app`` calls this once that module is loaded), so neither module imports the other
    at load time."""
    from api.app import Access, Svc, access_record, no_unknown_query

    router = APIRouter(prefix="/v1/review", tags=["review"], dependencies=[Depends(no_unknown_query)])

    @router.get("/queue", response_model=QueueOut, summary="Items waiting for human review, oldest first "
                "(logged as an access record)", responses=responses(400))
    def queue(svc: Svc, caller: Reviewer, access: Access,
              limit: Annotated[int, Query(ge=1, le=200, description="items per page")] = 50,
              after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="`next_after` of the previous page")]
              = None) -> dict[str, Any]:
        page = ReviewQueue(svc.ledger).pending(limit=limit, after=after)
        ids = sorted({i["item"] for i in page["items"]} | {i["latest_decision"] for i in page["items"]})
        [acc] = svc.writer.append([access_record(caller, access, "review_queue", ids)], trusted=True)
        return {**page, "access_id": acc.id}

    @router.post("/{item_id}/decision", status_code=201, response_model=DecisionOut,
                 summary="Decide a held item (appends a review_decision)", responses=responses(400, 404, 409))
    def decide(item_id: Annotated[int, Path(ge=0, le=MAX_ID, description="the held artifact or prompt")],
               req: DecisionIn, svc: Svc, caller: Reviewer) -> dict[str, Any]:
        q = ReviewQueue(svc.ledger)
        return svc.writer.call(lambda: q.decide(item_id, reviewer=caller.name, action=req.action, reason=req.reason))

    @router.get("/sla", response_model=SlaOut, summary="SLA report: hold, review and takedown latencies",
                responses=responses(400))
    def sla(svc: Svc, caller: SlaReader, since: Time = None, until: Time = None,
            hold_threshold: Annotated[float | None, Query(ge=0, le=1, description="also count allowed items with "
                                                                                  "risk at or above this as "
                                                                                  "high-risk")] = None,
            ) -> dict[str, Any]:
        return ReviewQueue(svc.ledger).sla_report(since, until, hold_threshold=hold_threshold)

    return router
