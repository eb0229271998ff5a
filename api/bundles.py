"""Evidence bundles over HTTP, as jobs: exporting a large case can take a while, so the request
returns at once with a job to poll, and nothing blocks a request for minutes.

``POST /v1/bundles`` (legal) starts an export; ``GET /v1/jobs/{id}`` reports its state;
``GET /v1/bundles/{id}`` downloads the finished zip. The export itself is
``ledger.evidence.record_export``: deterministic bytes, and an ``access`` record naming the
bundle's SHA-256 appended to the ledger. Bundles are kept under ``<data dir>/bundles/`` by hash.

Jobs run one at a time on a worker thread and live in memory: a restart forgets unfinished jobs
(the bundle files and the access records of finished ones stay). A job store that survives
restarts belongs with the replay jobs of the sandbox issue.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth import allow
from api.tokens import Role, TokenInfo
from ledger.errors import Conflict, CustodyError, NotFound
from ledger.evidence import record_export
from ledger.service import Ledger, now_rfc3339

JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="job id")]
Legal = Annotated[TokenInfo, Depends(allow(Role.LEGAL))]


@dataclass
class Job:
    id: str
    kind: str
    owner: str
    created_at: str
    state: Literal["queued", "running", "done", "failed"] = "queued"
    finished_at: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "owner": self.owner, "state": self.state,
                "created_at": self.created_at, "finished_at": self.finished_at, "result": self.result,
                "error": self.error}


class JobRunner:
    """One worker thread; jobs in memory. ``close`` waits for the running job."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="custody-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, kind: str, owner: str, fn: Any) -> Job:
        job = Job(uuid.uuid4().hex, kind, owner, now_rfc3339())
        with self._lock:
            self._jobs[job.id] = job

        def run() -> None:
            job.state = "running"
            try:
                job.result = fn()
                job.state = "done"
            except CustodyError as err:
                job.error, job.state = {"error": err.code, "message": str(err)}, "failed"
            except Exception as err:  # noqa: BLE001 - a job must end in a state, never vanish
                job.error, job.state = {"error": "internal", "message": type(err).__name__}, "failed"
            job.finished_at = now_rfc3339()

        self._pool.submit(run)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist (jobs are kept in memory until the server restarts)")
        return job

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class BundleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    case_id: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]
    record_ids: list[Annotated[int, Field(ge=0, le=(1 << 63) - 1)]] = Field(min_length=1, max_length=1000)
    purpose: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    earlier_size: Annotated[int, Field(ge=0, le=(1 << 63) - 1)] | None = None
    redact: bool = Field(default=False, description="Leave sealed (sensitive) values out.")
    hashes_only: bool = Field(default=False, description="Leave the artifacts' bytes out (abuse imagery that must "
                                                         "not travel); the records keep their hashes.")


class JobOut(BaseModel):
    id: str
    kind: str
    owner: str
    state: str
    created_at: str
    finished_at: str | None
    result: dict[str, Any]
    error: dict[str, str] | None


def bundle_router(ledger: Ledger, runner: JobRunner, bundle_dir: Path, responses: Any, *,
                  data_dir: Path | None = None) -> APIRouter:
    """``data_dir`` holds the evidence store and the replay reports the bundles carry; by default the
    folder that holds ``bundle_dir`` (``bundle_dir_for`` puts bundles in ``<data dir>/bundles``)."""
    router = APIRouter(prefix="/v1", tags=["bundles"])
    evidence_dir = Path(data_dir) if data_dir is not None else Path(bundle_dir).parent

    def export(req: BundleIn, caller: TokenInfo) -> dict[str, Any]:
        bundle, receipt = record_export(ledger, req.case_id, req.record_ids, actor=caller.name,
                                        role=caller.role.value, purpose=req.purpose, data_dir=evidence_dir,
                                        earlier_size=req.earlier_size, redact=req.redact,
                                        hashes_only=req.hashes_only)
        bundle_dir.mkdir(parents=True, exist_ok=True)
        path = bundle_dir / f"{bundle.sha256}.zip"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(bundle.data)
            tmp.replace(path)
        return {"sha256": bundle.sha256, "case_id": req.case_id, "records": len(bundle.record_ids),
                "checkpoint_size": bundle.checkpoint_size, "redacted": req.redact, "hashes_only": req.hashes_only,
                "artifacts": {"included": bundle.artifacts_included, "withheld": bundle.artifacts_withheld,
                              "missing": bundle.artifacts_missing},
                "access_record": receipt.id,
                "bytes": len(bundle.data), "vkey": ledger.keyring.active.vkey}

    @router.post("/bundles", status_code=202, response_model=JobOut, summary="Export a case's evidence bundle (a job)",
                 responses=responses(400))
    def start_export(req: BundleIn, caller: Legal) -> dict[str, Any]:
        return runner.submit("bundle", caller.name, lambda: export(req, caller)).as_dict()

    @router.get("/jobs/{job_id}", response_model=JobOut, summary="A job's state and result",
                responses=responses(404))
    def job_status(job_id: JobId, caller: Legal) -> dict[str, Any]:
        job = runner.get(job_id)
        if job.owner != caller.name:
            raise NotFound(f"job {job_id} does not exist for {caller.name}")
        return job.as_dict()

    @router.get("/bundles/{job_id}", summary="Download a finished bundle (application/zip)",
                response_class=FileResponse, responses={**responses(404, 409),
                                                        200: {"content": {"application/zip": {}}}})
    def download(job_id: JobId, caller: Legal) -> FileResponse:
        job = runner.get(job_id)
        if job.owner != caller.name:  # the export's access record names who exported it
            raise NotFound(f"job {job_id} does not exist for {caller.name}")
        if job.state != "done":
            raise Conflict(f"job {job_id} is {job.state}, not done")
        path = bundle_dir / f"{job.result['sha256']}.zip"
        if not path.exists():
            raise NotFound(f"bundle {job.result['sha256']} is no longer on disk")
        return FileResponse(path, media_type="application/zip",
                            filename=f"custody-{job.result['case_id'].replace('/', '_')}.zip")

    return router


def bundle_dir_for(data_dir: Path) -> Path:
    return Path(data_dir) / "bundles"

