"""Replays over HTTP, as jobs: ``POST /v1/replays`` starts one, ``GET /v1/jobs/{id}`` (the shared job
runner of :mod:`api.bundles`) follows it, ``GET /v1/replays/{report_id}`` reads a report back.

Investigators only. A replay reveals sealed prompts inside the sandbox and reads artifact bytes, so
starting one needs the case and purpose headers and appends an ``access`` record before the job is
queued; reading a report back is logged the same way. The replay itself is
:func:`sandbox.replay.replay` — the same call the CLI makes — and its signed report is appended to
the ledger as a ``replay_report`` whatever the outcome (a refusal included).
"""

# no `from __future__ import annotations`: FastAPI reads the route signatures, and `Access` is
# imported inside replay_router (api.app imports this module)

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from api.auth import allow
from api.bundles import JobOut, JobRunner
from api.tokens import Role, TokenInfo
from ledger.errors import NotFound
from ledger.service import Ledger

MAX_ID = (1 << 63) - 1
Investigator = Annotated[TokenInfo, Depends(allow(Role.INVESTIGATOR))]


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    record_id: Annotated[int, Field(ge=0, le=MAX_ID, description="the record to replay (with chain: its trace)")]
    chain: bool = False
    mode: Literal["remoderate", "regenerate", "both"] = "remoderate"
    backend: Literal["auto", "docker", "process"] = "auto"


def replay_router(ledger: Ledger, runner: JobRunner, data_dir: Path, responses: Any) -> APIRouter:
    from api.app import Access, access_record  # the app module is loaded by the time routers are built

    router = APIRouter(prefix="/v1", tags=["replays"])

    @router.post("/replays", status_code=202, response_model=JobOut, responses=responses(400, 404),
                 summary="Replay a record (or its chain) in the sandbox, as a job (logged as an access record)")
    def start_replay(req: ReplayIn, caller: Investigator, access: Access) -> dict[str, Any]:
        from sandbox.replay import replay

        from sandbox.gather import gather

        # what can be refused is refused now (unknown record, nothing to replay), not inside the job
        gather(ledger, req.record_id, chain=req.chain, mode=req.mode)
        ledger.append([access_record(caller, access, "replay", [req.record_id])], trusted=True)

        def run() -> dict[str, Any]:
            out = replay(ledger, req.record_id, data_dir=data_dir, chain=req.chain, mode=req.mode, backend=req.backend)
            rep = out["report"]
            return {"report_id": out["appended"]["id"], "report_sha256": out["report_sha256"],
                    "status": rep.get("status"), "differences": len(rep.get("differences", [])),
                    "findings": sorted({f["code"] for f in rep.get("findings", [])}),
                    "backend": rep.get("runner", {}).get("backend")}

        return runner.submit("replay", caller.name, run).as_dict()

    @router.get("/replays/{report_id}", responses=responses(400, 404),
                summary="A replay report, checked (inclusion, file hash, signature); logged as an access record")
    def read_report(report_id: Annotated[int, PathParam(ge=0, le=MAX_ID)], caller: Investigator,
                    access: Access) -> dict[str, Any]:
        from sandbox.replay import show

        out = show(ledger, report_id, data_dir=data_dir)
        ledger.append([access_record(caller, access, "read_replay_report", [report_id])], trusted=True)
        return out

    return router


def investigator_jobs_router(runner: JobRunner, responses: Any) -> APIRouter:
    """``GET /v1/replay-jobs/{id}``: an investigator's own replay jobs (``/v1/jobs`` is legal's)."""
    router = APIRouter(prefix="/v1", tags=["replays"])

    @router.get("/replay-jobs/{job_id}", response_model=JobOut, responses=responses(404),
                summary="A replay job's state and result")
    def job_status(job_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")], caller: Investigator) -> dict[str, Any]:
        job = runner.get(job_id)
        if job.owner != caller.name or job.kind != "replay":
            raise NotFound(f"replay job {job_id} does not exist for {caller.name}")
        return job.as_dict()

    return router


__all__ = ["ReplayIn", "investigator_jobs_router", "replay_router"]
