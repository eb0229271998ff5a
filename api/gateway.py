"""The generation gateway: one request through the whole safety pipeline, every step recorded.

For services that use Custody as their gateway (``POST /v1/generations``, and the demo), a request
is a prompt from a known principal on a surface, maybe with an uploaded photo to edit. The stages
(issue 3: ingest → pre-check → generate → mark → analyse → decide) and what each records:

1. **Ingest.** The upload (if any) goes to the evidence store by SHA-256 and an ``artifact``
   record (``role: upload``) names it. The prompt is a ``prompt`` record; its text is sealed.
2. **Pre-check.** The prompt-safety layer, the same for every surface, with the session's earlier
   turns (risk accumulates across a conversation: sessions live in memory here, keyed by principal
   and session id, least recently used dropped after :data:`MAX_SESSIONS`; a session this process has
   not seen is restored from the ledger's earlier turns). Its decision is a
   ``safety_decision`` (``stage: prompt``) carrying the policy id/version, the stage version, the
   rules that fired — never the matched text, which would put the prompt in the leaf in the clear.
   ``block`` stops here: nothing is generated.
3. **Generate** with the named model adapter (:mod:`sandbox.adapters`) from parameters and seed.
   The ``generation`` record carries the adapter, parameters, seed and the raw output's SHA-256
   (what a re-generation is compared with). The first batch — upload, prompt, its decision and the
   generation — is appended (durable) here, because the generation's ledger index is the watermark
   payload.
4. **Mark.** An invisible watermark carrying the generation's index (the artifact's ledger
   reference) and signed Content Credentials (C2PA) naming the model version.
5. **Analyse and decide.** The marked bytes through the detector ensemble, with the source photo and
   the prompt layer's risks as context; the decision is a ``safety_decision`` (``stage: analysis``)
   with every signal and the pipeline version hash, replayable by :func:`pipeline.decision.replay`.
   The marked bytes go to the evidence store and an ``artifact`` record (``role: output``) names
   them; second batch.

The answer carries the decision and every record appended; the image itself only when the decision
is ``allow`` (a held or blocked output stays in the evidence store for review, never returned).
``policy`` and ``model_version`` records are appended once per version and reused (found again by
idempotency key), so every decision links to the exact policy document that made it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.artifacts import ArtifactStore, ref_for
from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.records import InBatch, Kind, draft
from ledger.service import Ledger, now_rfc3339

PRODUCER = "custody:gateway"
MAX_SESSIONS = 10_000
MAX_RESTORED_TURNS = 200
MAX_PROMPT_CHARS = 20_000
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
WATERMARK_KEY_FILE = "watermark.key"


def load_watermark_key(key_dir: Path, *, create: bool = False) -> bytes:
    """The 32-byte secret key of the invisible watermark (``<key dir>/watermark.key``, mode 0600)."""
    path = Path(key_dir) / WATERMARK_KEY_FILE
    if not path.exists():
        if not create:
            raise NotFound(f"no watermark key at {path} (run `custody init`)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32).hex().encode() + b"\n")
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 16:
        raise InvalidInput(f"the watermark key in {path} is too short")
    return key


@dataclass(frozen=True)
class Submission:
    """One generation request (what ``POST /v1/generations`` accepts, validated)."""

    principal_id: int
    surface: str
    prompt: str
    seed: int
    adapter: str = "reference-procedural"
    adapter_version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    session: str | None = None
    language: str | None = None
    source: bytes | None = None  # the uploaded photo an edit starts from
    depicts_principal_id: int | None = None  # who the upload shows, when known
    real_person: bool = False  # the platform knows the upload shows a real person
    minor: bool = False  # the platform knows the depicted person is a minor


class Gateway:
    """Service object behind the API route, the CLI and the demo (thread-safe)."""

    def __init__(self, ledger: Ledger, artifacts: ArtifactStore, *, watermark_key: bytes, c2pa_dir: Path,
                 policy: Any = None, banks: tuple = (), producer: str = PRODUCER) -> None:
        from pipeline.policy import default_policy
        from pipeline.prompt_safety import layer_for

        self.ledger = ledger
        self.artifacts = artifacts
        self.watermark_key = watermark_key
        self.c2pa_dir = Path(c2pa_dir)
        self.policy = policy or default_policy()
        self.layer = layer_for(self.policy)
        self.banks = banks
        self.producer = producer
        self._sessions: OrderedDict[tuple[int, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._known: dict[str, int] = {}
        from pipeline.credentials import ChainPaths

        anchor = ChainPaths.in_directory(self.c2pa_dir).root_cert  # our own manifests then read as Trusted
        self._anchor = anchor.read_bytes() if anchor.is_file() else None

    # --- records appended once per version ----------------------------------------------------------

    def _once(self, key: str, record: dict[str, Any]) -> int:
        """The index of the record appended under idempotency ``key``, appending it the first time."""
        if key in self._known:
            return self._known[key]
        with self.ledger.store.read() as r:
            found = r.by_idempotency_keys([key])
        if key not in found:
            try:
                found = {key: (self.ledger.append([{**record, "idempotency_key": key}])[0].id, None)}
            except Conflict:  # another process appended it between our read and our write
                with self.ledger.store.read() as r:
                    found = r.by_idempotency_keys([key])
        self._known[key] = found[key][0]
        return self._known[key]

    def policy_record(self) -> int:
        p = self.policy
        return self._once(f"policy:{p.policy_id}@{p.version}:{p.sha256}", {
            "kind": Kind.POLICY.value, "producer": self.producer, "produced_at": now_rfc3339(),
            "body": {"policy_id": p.policy_id, "version": p.version, "document_sha256": p.sha256}})

    def model_record(self, adapter: Any) -> int:
        import sandbox.adapters as mod

        code = hashlib.sha256(Path(mod.__file__).read_bytes()).hexdigest()
        return self._once(f"model:{adapter.name}@{adapter.version}:{code}", {
            "kind": Kind.MODEL_VERSION.value, "producer": self.producer, "produced_at": now_rfc3339(),
            "body": {"name": adapter.name, "version": adapter.version, "code_sha256": code,
                     "deterministic": True}})

    # --- the request ---------------------------------------------------------------------------------

    def _check(self, req: Submission) -> tuple[Any, str, str | None]:
        from sandbox.adapters import get_adapter

        if not isinstance(req.prompt, str) or not req.prompt.strip():
            raise InvalidInput("prompt must be a non-empty string")
        if len(req.prompt) > MAX_PROMPT_CHARS:
            raise InvalidInput(f"prompt is {len(req.prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
        if req.source is not None and len(req.source) > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"the upload is {len(req.source):,} bytes; the limit is {MAX_UPLOAD_BYTES:,}")
        principal = self.ledger.get(req.principal_id)["record"]
        if principal["kind"] != Kind.PRINCIPAL.value:
            raise InvalidInput(f"principal_id {req.principal_id} is a {principal['kind']!r} record, not a principal")
        if req.depicts_principal_id is not None:
            dep = self.ledger.get(req.depicts_principal_id)["record"]
            if dep["kind"] != Kind.PRINCIPAL.value:
                raise InvalidInput(f"depicts_principal_id {req.depicts_principal_id} is not a principal record")
        if req.surface not in self.policy.document.surfaces:
            raise InvalidInput(f"surface {req.surface!r} is not one of {', '.join(self.policy.document.surfaces)}")
        adapter = get_adapter(req.adapter, req.adapter_version)
        source_mime = None
        if req.source is not None:
            from pipeline.images import ImageError, decode_image

            try:
                img = decode_image(req.source)
            except ImageError as err:
                raise InvalidInput(f"the upload is not an image the pipeline accepts: {err}") from None
            source_mime = f"image/{img.format}"
        return adapter, principal.get("subject") or "", source_mime

    def _prompt_decision(self, req: Submission) -> Any:

        if req.session is None:
            return self.layer.check(req.prompt, req.surface)
        with self._lock:
            key = (req.principal_id, req.session)
            session = self._sessions.pop(key, None)
            if session is None:
                session = self._restore(req.principal_id, req.session)
            self._sessions[key] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
            return session.check(req.prompt, req.surface)

    def _restore(self, principal_id: int, session_id: str) -> Any:
        """A session this process has not seen (a restart, another API process, an evicted entry): its
        earlier turns are read back from the ledger — the principal's prompts with this session id, in
        turn order, their sealed text revealed — and replayed into a fresh Session, so risk accumulated
        before still counts. At most :data:`MAX_RESTORED_TURNS` recent turns; an erased subject's turns
        are gone with its key and add nothing."""
        from ledger.errors import CustodyError
        from pipeline.errors import PipelineError
        from pipeline.prompt_safety import Session

        session = Session(self.layer)
        with self.ledger.store.read() as r:
            rows = r.linking_entries([principal_id], [Kind.PROMPT.value])
        turns = []
        for link, row in rows:
            if link.rel != "principal":
                continue
            body = json.loads(row.data).get("body", {})
            if body.get("session") == session_id:
                turns.append((body.get("turn") if isinstance(body.get("turn"), int) else -1, row.idx, body))
        for _, idx, body in sorted(turns)[-MAX_RESTORED_TURNS:]:
            try:
                text = self.ledger.reveal(idx)["text"]["value"]
                session.check(text, body.get("surface"))
            except (CustodyError, PipelineError, KeyError):
                continue  # erased, never sealed, or a turn the layer refuses: it adds nothing
        return session

    def submit(self, req: Submission) -> dict[str, Any]:
        """Run ``req`` through the pipeline; see the module docstring. Bad input raises before anything
        is appended (InvalidInput / NotFound)."""
        from pipeline.decision import analyse
        from pipeline.marking import mark
        from sandbox.adapters import GenerationRequest

        adapter, subject, source_mime = self._check(req)
        pdec = self._prompt_decision(req)
        policy_id = self.policy_record()
        t = now_rfc3339()

        def rec(kind: Kind, body: dict[str, Any], links: list[tuple[str, int]], **extra: Any) -> dict[str, Any]:
            return draft(kind, self.producer, t, body, links, **extra)

        batch: list[dict[str, Any]] = []
        if req.source is not None:
            sha = self.artifacts.put(req.source)
            links: list[tuple[str, int]] = [("uploaded_by", req.principal_id)]
            if req.depicts_principal_id is not None:
                links.append(("depicts", req.depicts_principal_id))
            batch.append(rec(Kind.ARTIFACT, {"sha256": sha, "media_type": source_mime, "size": len(req.source),
                                             "storage_ref": ref_for(sha), "role": "upload"}, links))
        upload_pos = 0 if req.source is not None else None
        p_links: list[tuple[str, int]] = [("principal", req.principal_id)]
        if upload_pos is not None:
            p_links.append(("source", InBatch(upload_pos)))
        prompt_body: dict[str, Any] = {"surface": req.surface, "turn": pdec.turn}
        if req.session is not None:
            prompt_body["session"] = req.session
        if req.language is not None:
            prompt_body["language"] = req.language
        prompt_pos = len(batch)
        batch.append(rec(Kind.PROMPT, prompt_body, p_links, sensitive={"text": req.prompt},
                         **({"subject": subject} if subject else {})))
        risk = pdec.risk
        batch.append(rec(Kind.SAFETY_DECISION, {
            "action": pdec.action, "stage": "prompt", "policy_id": pdec.policy_id,
            "policy_version": pdec.policy_version, "pipeline_version": _prompt_pipeline_version(pdec),
            "stage_version": pdec.stage_version,
            "risk": max(risk.values(), default=0.0),
            "signals": {"categories": {c.category: {"risk": c.risk, "action": c.action} for c in pdec.categories},
                        "rules": [m.rule_id for m in pdec.matched_rules],
                        "normalisation_flags": list(pdec.normalisation_flags),
                        "escalate": pdec.escalate, "prompt_sha256": pdec.prompt_sha256}},
            [("prompt", InBatch(prompt_pos)), ("policy", policy_id)]))
        out: dict[str, Any] = {"prompt_decision": {"action": pdec.action, "flagged": list(pdec.flagged()),
                                                   "rules": [m.rule_id for m in pdec.matched_rules]}}
        if pdec.action == "block":
            appended = self.ledger.append(batch)
            return {**out, "action": "block", "stage": "prompt", "records": _named(batch, appended), "image": None}

        from pipeline.watermark import MIN_SIDE

        gen = adapter.generate(GenerationRequest(req.prompt, req.parameters, req.seed,
                                                 (req.source,) if req.source is not None else ()))
        if min(gen.width, gen.height) < MIN_SIDE:  # refused before anything is appended
            raise InvalidInput(f"the output would be {gen.width}x{gen.height}; generated images must be at least "
                               f"{MIN_SIDE}x{MIN_SIDE} to carry the provenance watermark")
        model_id = self.model_record(adapter)
        g_links: list[tuple[str, int]] = [("prompt", InBatch(prompt_pos)), ("model_version", model_id)]
        if upload_pos is not None:
            g_links.append(("source_asset", InBatch(upload_pos)))
        batch.append(rec(Kind.GENERATION, {
            "surface": req.surface, "parameters": dict(req.parameters), "seed": req.seed,
            "adapter": {"name": adapter.name, "version": adapter.version},
            "output_sha256": gen.sha256, "output_media_type": gen.media_type}, g_links))
        first = self.ledger.append(batch)
        gen_id = first[-1].id

        context: dict[str, Any] = {"prompt_risk": {k: v for k, v in risk.items() if v > 0}}
        if req.real_person or req.depicts_principal_id is not None:
            context["real_person"] = True
        if req.minor:
            context["minor"] = True
        try:
            marked = mark(gen.data, gen.media_type, gen_id, self.watermark_key, (adapter.name, adapter.version),
                          self.c2pa_dir)
            decision = analyse(marked.image_bytes, self.policy, surface=req.surface, declared=marked.mime,
                               source=req.source, banks=self.banks, key=self.watermark_key, context=context,
                               trust_anchor_pem=self._anchor)
        except Exception as err:
            # The generation is already recorded: record that marking / analysis failed, fail closed (hold,
            # nothing delivered), then let the error reach the caller.
            self.ledger.append([rec(Kind.SAFETY_DECISION, {
                "action": "hold", "stage": "analysis", "policy_id": self.policy.policy_id,
                "policy_version": self.policy.version, "pipeline_version": "unavailable", "risk": 1.0,
                "signals": {"error": f"{type(err).__name__}: {str(err)[:500]}"}},
                [("generation", gen_id), ("policy", policy_id)])])
            raise
        sha = self.artifacts.put(marked.image_bytes)
        second = [
            rec(Kind.ARTIFACT, {"sha256": sha, "media_type": marked.mime, "size": len(marked.image_bytes),
                                "storage_ref": ref_for(sha), "role": "output", "unmarked_sha256": gen.sha256,
                                "watermark_payload": f"{gen_id:016x}",
                                "c2pa_manifest": marked.manifest.get("label")}, [("generation", gen_id)]),
            rec(Kind.SAFETY_DECISION, {
                "action": decision["action"], "stage": "analysis", "policy_id": self.policy.policy_id,
                "policy_version": self.policy.version, "pipeline_version": decision["pipeline_version"],
                "risk": max((c["risk"] for c in decision["categories"]), default=0.0),
                "signals": decision["signals"], "decision_sha256": decision["decision_sha256"],
                "decision": {k: v for k, v in decision.items() if k not in ("evidence", "pipeline_components")}},
                [("artifact", InBatch(0)), ("generation", gen_id), ("policy", policy_id)]),
        ]
        appended = self.ledger.append(second)
        records = _named(batch, first) + _named(second, appended)
        return {**out, "action": decision["action"], "stage": "analysis", "escalate": decision["escalate"],
                "categories": [{k: c[k] for k in ("category", "risk", "action")} for c in decision["categories"]
                               if c["risk"] > 0],
                "pipeline_version": decision["pipeline_version"], "artifact_sha256": sha,
                "watermark_payload": f"{gen_id:016x}", "records": records,
                "image": base64.b64encode(marked.image_bytes).decode() if decision["action"] == "allow" else None,
                "media_type": marked.mime}


def _prompt_pipeline_version(pdec: Any) -> str:
    """A hash over the prompt stage's version string (code, normaliser, Unicode and library versions)
    and the policy's SHA-256: the prompt stage's counterpart of the analysis pipeline version."""
    doc = f"{pdec.stage_version}\n{pdec.policy_sha256}\n".encode()
    return hashlib.sha256(doc).hexdigest()


def _named(batch: list[dict[str, Any]], appended: list[Any]) -> list[dict[str, Any]]:
    out = []
    for rec, a in zip(batch, appended, strict=True):
        role = rec["body"].get("role") or rec["body"].get("stage")
        out.append({"kind": rec["kind"], **({"role": role} if role else {}), **a.as_dict()})
    return out


__all__ = ["Gateway", "Submission", "load_watermark_key"]
