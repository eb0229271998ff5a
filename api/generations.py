"""``POST /v1/generations``: a service submits a generation request through the safety pipeline.

For platforms that use Custody as their gateway. The route is thin: it validates the request body
(pydantic, strict), decodes the upload, and calls :meth:`api.gateway.Gateway.submit` — the same
service object the CLI and the demo use. The work (prompt check, generation, marking, analysis)
takes under a second on this machine and runs on the thread pool, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth import allow
from api.gateway import MAX_PROMPT_CHARS, Gateway, Submission
from api.tokens import Role, TokenInfo
from ledger.errors import InvalidInput

MAX_ID = (1 << 63) - 1
Service = Annotated[TokenInfo, Depends(allow(Role.SERVICE))]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]


class GenerationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    principal_id: Annotated[int, Field(ge=0, le=MAX_ID, description="ledger index of the requesting principal")]
    surface: Annotated[str, Field(description="chat, imagine, api, edit or video: an input, never a skipped check")]
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
    seed: Annotated[int, Field(ge=0, le=(1 << 53) - 1)]
    adapter: Name = "reference-procedural"
    adapter_version: Name | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    session: Name | None = None
    language: Annotated[str, StringConstraints(min_length=2, max_length=35, pattern=r"^[A-Za-z0-9-]+$")] | None = None
    source_base64: Annotated[str, StringConstraints(min_length=1, max_length=48 * 1024 * 1024)] | None = Field(
        default=None, description="the uploaded photo an edit starts from (PNG or JPEG), base64")
    depicts_principal_id: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None
    real_person: bool = False
    minor: bool = False


class RecordRef(BaseModel):
    kind: str
    role: str | None = None
    id: int
    leaf_hash: str
    ledger_time: str
    existing: bool


class GenerationOut(BaseModel):
    action: str = Field(description="allow, hold (waits for human review) or block")
    stage: str = Field(description="the stage that decided: prompt (nothing was generated) or analysis")
    prompt_decision: dict[str, Any]
    records: list[RecordRef]
    escalate: bool = False
    categories: list[dict[str, Any]] = Field(default_factory=list)
    pipeline_version: str | None = None
    artifact_sha256: str | None = None
    watermark_payload: str | None = None
    media_type: str | None = None
    image: str | None = Field(default=None, description="the marked image, base64 — only when allowed")


def generation_router(gateway: Gateway, responses: Any) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["generations"])

    @router.post("/generations", status_code=201, response_model=GenerationOut,
                 summary="Submit a generation through the safety pipeline (every step is recorded)",
                 responses=responses(400, 404, 413))
    def submit_generation(req: GenerationIn, caller: Service) -> dict[str, Any]:
        source = None
        if req.source_base64 is not None:
            try:
                source = base64.b64decode(req.source_base64, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInput("source_base64 is not valid base64") from None
        return gateway.submit(Submission(
            principal_id=req.principal_id, surface=req.surface, prompt=req.prompt, seed=req.seed,
            adapter=req.adapter, adapter_version=req.adapter_version, parameters=req.parameters,
            session=req.session, language=req.language, source=source,
            depicts_principal_id=req.depicts_principal_id, real_person=req.real_person, minor=req.minor))

    return router


__all__ = ["GenerationIn", "GenerationOut", "generation_router"]
