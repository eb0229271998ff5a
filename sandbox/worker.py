"""The replay worker: runs INSIDE the sandbox (container or namespaces), never on the host's ledger.

It reads one JSON job from ``$CUSTODY_IN/job.json`` (files it names are under ``$CUSTODY_IN``)::

    {"mode": "remoderate" | "regenerate" | "both",
     "policies": {"<label>": {"sha256": "<hex>", "document": {...the policy's canonical JSON...}}, ...},
     "prompts": [{"record_id": 6, "surface": "edit", "text": "..."}, ...],
     "artifacts": [{"record_id": 8, "file": "blobs/<sha256>", "declared": "image/png",
                    "source": {"file": "blobs/<sha256>", "declared": "image/jpeg"} | null,
                    "surface": "edit", "context": {...}, "analysis_label": "<label>",
                    "recorded": {...the recorded decision dict...} | null, "recorded_label": "<label>" | null,
                    "labels": ["<label>", ...]}, ...],
     "generations": [{"record_id": 7, "adapter": {"name", "version"}, "prompt": "...", "parameters": {...},
                      "seed": 1, "sources": ["blobs/<sha256>", ...],
                      "compare_with": [{"record_id": 8, "file": "blobs/<sha256>", "declared": "image/png"}]}, ...]}

and writes ``$CUSTODY_OUT/result.json`` (plus one ``regen/<record id>.out`` per re-generated output)::

    {"worker": "custody-replay-worker/2", "stage_version": "...", "python": "3.11.2",
     "policies": {"<label>": {"policy_id", "version", "sha256", "pipeline_version"}},
     "results": [{"record_id", "label", "decision" | null, "error" | null}],        # prompts
     "artifacts": [{"record_id", "recompute": {"decision_sha256", "action"} | {"error"} | null,
                    "analysis": {"signals", "pipeline_version", "subject"} | {"error"},
                    "decisions": {"<label>": {...compact decision...} | {"error"}}}],
     "generations": [{"record_id", "output": {"file", "sha256", "media_type", "width", "height", "size",
                                             "pdq", "pdq_quality"} | null, "error" | null,
                      "compare": [{"record_id", "pdq", "distance"} | {"record_id", "error"}]}]}

Policies are loaded from the documents the job carries (never from whatever the image ships) and one
whose SHA-256 differs from the one named is refused. Per artifact: (a) ``pipeline.decision.replay`` of
the recorded decision from its *recorded* signals at the recorded policy; (b) ``analyse`` of the bytes
(once: detector signals do not depend on the policy) and ``decide`` from those signals at every policy
label. A malformed or hostile file (truncated, a decompression bomb, a lying media type) is an
``error`` entry for that artifact, never a crash of the whole job. The prompt text is not echoed back.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import traceback
from pathlib import Path
from typing import Any

WORKER_VERSION = "custody-replay-worker/2"
MODES = ("remoderate", "regenerate", "both")
KEEP = ("action", "escalate", "categories", "detector_failures", "surface", "context", "policy", "pipeline_version",
        "decision_version", "decision_sha256")


def _fail(msg: str, code: int = 3) -> int:
    out = Path(os.environ.get("CUSTODY_OUT", "."))
    try:
        (out / "result.json").write_text(json.dumps({"worker": WORKER_VERSION, "fatal": msg}))
    except OSError:
        pass
    print(f"replay worker: {msg}", file=sys.stderr)
    return code


def _error(err: BaseException) -> dict[str, Any]:
    """An error entry: deliberate errors by type and message; anything else with a traceback tail."""
    from ledger.errors import CustodyError
    from pipeline.errors import PipelineError

    out: dict[str, Any] = {"type": type(err).__name__, "message": str(err)[:500],
                           "code": getattr(err, "code", None)}
    if not isinstance(err, (PipelineError, CustodyError)):
        out["traceback"] = traceback.format_exc()[-1500:]
    return out


def _compact(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: decision[k] for k in KEEP if k in decision}


def _prompts(job: dict[str, Any], policies: dict[str, Any]) -> list[dict[str, Any]]:
    if not job.get("prompts"):  # build no prompt layers: the first one loads the prompt classifier (~0.3 s)
        return []
    from pipeline.errors import PipelineError
    from pipeline.prompt_safety import PromptSafety, Session

    layers = {label: PromptSafety(p) for label, p in policies.items()}
    # Risk accumulates over a session: a turn is judged after its earlier turns, as the live layer judged
    # it. Turns of one session are replayed in order through one Session per policy (a later turn's
    # history is an earlier turn's history plus that turn), so a session of n turns costs n checks.
    live: dict[str, list[tuple[list[Any], Any]]] = {label: [] for label in layers}
    results = []
    for p in sorted(job.get("prompts", []), key=lambda q: len(q.get("history") or [])):
        history = p.get("history") or []
        hist_ids = [h.get("record_id") for h in history]
        for label, layer in layers.items():
            entry = {"record_id": p.get("record_id"), "label": label, "decision": None, "error": None,
                     "history": hist_ids}
            found = next((c for c in live[label] if c[0] == hist_ids), None)
            if found is not None:
                live[label].remove(found)
                session = found[1]
            else:
                session = Session(layer)
                for h in history:
                    try:
                        session.check(h.get("text"), h.get("surface"))
                    except PipelineError:
                        pass  # an earlier turn the layer refuses adds nothing to the session
            try:
                entry["decision"] = session.check(p.get("text"), p.get("surface")).to_dict()
                live[label].append((hist_ids + [p.get("record_id")], session))
            except PipelineError as err:
                entry["error"] = {"type": type(err).__name__, "message": str(err)}
            results.append(entry)
    return results


def _artifact(a: dict[str, Any], in_dir: Path, policies: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    from pipeline import decision as dec

    out: dict[str, Any] = {"record_id": a.get("record_id"), "recompute": None, "analysis": None, "decisions": {}}
    recorded, rlabel = a.get("recorded"), a.get("recorded_label")
    if recorded is not None and rlabel in policies:  # (a) the recorded signals, the recorded policy
        try:
            again = dec.replay(recorded, policies[rlabel])
            out["recompute"] = {"decision_sha256": again["decision_sha256"], "action": again["action"]}
        except Exception as err:  # noqa: BLE001 - reported per artifact
            out["recompute"] = {"error": _error(err)}
    try:  # (b) the bytes, analysed again
        data = (in_dir / a["file"]).read_bytes()
        src = a.get("source")
        src_bytes = (in_dir / src["file"]).read_bytes() if src else None
        pol = policies[a["analysis_label"]]
        res = dec.analyse(data, pol, a.get("surface") or "imagine", a.get("declared"), source=src_bytes,
                          source_declared=src.get("declared") if src else None, context=a.get("context") or {})
        signals, subject = res["signals"], res["subject"]
        out["analysis"] = {"signals": signals, "pipeline_version": res["pipeline_version"], "subject": subject}
    except Exception as err:  # noqa: BLE001 - a hostile file is a finding for this artifact, not a crash
        out["analysis"] = {"error": _error(err)}
        return out
    for label in a.get("labels", []):  # (c) … and decided at every policy asked for
        try:
            d = dec.decide(signals, a.get("context") or {}, a.get("surface") or "imagine", policies[label],
                           versions[label], subject)
            out["decisions"][label] = _compact(d)
        except Exception as err:  # noqa: BLE001
            out["decisions"][label] = {"error": _error(err)}
    return out


def _pdq(data: bytes, declared: str | None) -> tuple[str, int]:
    from pipeline.hashbank import pdq_dihedral
    from pipeline.images import decode_image

    res = pdq_dihedral(decode_image(data, declared).bgr)
    return res.hash, res.quality


def _generation(g: dict[str, Any], in_dir: Path, out_dir: Path) -> dict[str, Any]:
    from pipeline.hashbank import hamming
    from sandbox.adapters import GenerationRequest, get_adapter

    rid = g.get("record_id")
    out: dict[str, Any] = {"record_id": rid, "output": None, "error": None, "compare": []}
    try:
        ad = g.get("adapter") or {}
        adapter = get_adapter(ad.get("name"), ad.get("version"))
        sources = [(in_dir / f).read_bytes() for f in g.get("sources", [])]
        res = adapter.generate(GenerationRequest(prompt=g.get("prompt") or "", parameters=g.get("parameters") or {},
                                                 seed=g.get("seed"), sources=sources))
        (out_dir / "regen").mkdir(exist_ok=True)
        name = f"regen/{int(rid)}.out"
        (out_dir / name).write_bytes(res.data)
        out["output"] = {"file": name, "sha256": res.sha256, "media_type": res.media_type, "width": res.width,
                         "height": res.height, "size": len(res.data)}
    except Exception as err:  # noqa: BLE001 - reported per generation
        out["error"] = _error(err)
        return out
    try:
        mine, quality = _pdq(res.data, res.media_type)
        out["output"].update({"pdq": mine, "pdq_quality": quality})
    except Exception as err:  # noqa: BLE001
        out["output"]["pdq_error"] = _error(err)
        return out
    for c in g.get("compare_with", []):
        try:
            theirs, q = _pdq((in_dir / c["file"]).read_bytes(), c.get("declared"))
            out["compare"].append({"record_id": c.get("record_id"), "pdq": theirs, "pdq_quality": q,
                                   "distance": hamming(mine, theirs)})
        except Exception as err:  # noqa: BLE001 - the recorded output may itself be hostile
            out["compare"].append({"record_id": c.get("record_id"), "error": _error(err)})
    return out


def main() -> int:
    in_dir = Path(os.environ.get("CUSTODY_IN", "/in"))
    out_dir = Path(os.environ.get("CUSTODY_OUT", "/out"))
    try:
        job = json.loads((in_dir / "job.json").read_text("utf-8"))
    except (OSError, ValueError) as err:
        return _fail(f"cannot read the job: {err}", 2)
    if job.get("mode") not in MODES:
        return _fail(f"unsupported mode {job.get('mode')!r}", 2)

    from pipeline.errors import PipelineError
    from pipeline.policy import policy_from_data
    from pipeline.prompt_safety import stage_version

    policies: dict[str, Any] = {}
    described: dict[str, Any] = {}
    versions: dict[str, str] = {}
    for label, spec in sorted(job.get("policies", {}).items()):
        try:
            policy = policy_from_data(spec["document"], source=f"replay:{label}")
        except PipelineError as err:
            return _fail(f"policy {label!r} does not load: {err}")
        if policy.sha256 != spec.get("sha256"):
            return _fail(f"policy {label!r} is {policy.sha256}, not the {spec.get('sha256')} the job names")
        policies[label] = policy
        described[label] = {"policy_id": policy.policy_id, "version": policy.version, "sha256": policy.sha256}

    doc: dict[str, Any] = {"worker": WORKER_VERSION, "stage_version": stage_version(),
                           "python": platform.python_version(), "policies": described,
                           "results": _prompts(job, policies), "artifacts": [], "generations": []}
    if job.get("artifacts"):
        from pipeline import detectors
        from pipeline.version import pipeline_version

        detectors.set_onnx_threads(1)  # the sandbox has one CPU: one ONNX thread, no oversubscription
        for label, policy in policies.items():
            versions[label] = pipeline_version(policy)["sha256"]
            described[label]["pipeline_version"] = versions[label]
        doc["artifacts"] = [_artifact(a, in_dir, policies, versions) for a in job["artifacts"]]
    doc["generations"] = [_generation(g, in_dir, out_dir) for g in job.get("generations", [])]
    (out_dir / "result.json").write_text(json.dumps(doc, ensure_ascii=False, sort_keys=True), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
