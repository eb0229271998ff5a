"""The replay worker: runs INSIDE the sandbox (container or namespaces), never on the host's ledger.

It reads one JSON job from ``$CUSTODY_IN/job.json``::

    {"mode": "remoderate",
     "policies": {"<label>": {"sha256": "<hex>", "document": {...the policy's canonical JSON...}}, ...},
     "prompts": [{"record_id": 6, "surface": "edit", "text": "..."}, ...]}

loads each policy from the document it was given (never from whatever the image ships) and refuses
one whose SHA-256 differs from the one the host named, runs the prompt-safety layer on every prompt
at every policy, and writes ``$CUSTODY_OUT/result.json``::

    {"worker": "custody-replay-worker/1", "stage_version": "...", "python": "3.11.2",
     "policies": {"<label>": {"policy_id", "version", "sha256"}},
     "results": [{"record_id": 6, "label": "<label>", "decision": {...} | null, "error": null | {...}}]}

A prompt the layer refuses (empty, too long, unknown surface) is an ``error`` entry, not a crash.
Imports only the standard library and ``pipeline.policy`` / ``pipeline.prompt_safety`` (what the
replay image holds). The prompt text itself is not echoed back (only its SHA-256, in the decision).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

WORKER_VERSION = "custody-replay-worker/1"


def _fail(msg: str, code: int = 3) -> int:
    out = Path(os.environ.get("CUSTODY_OUT", "."))
    try:
        (out / "result.json").write_text(json.dumps({"worker": WORKER_VERSION, "fatal": msg}))
    except OSError:
        pass
    print(f"replay worker: {msg}", file=sys.stderr)
    return code


def main() -> int:
    in_dir = Path(os.environ.get("CUSTODY_IN", "/in"))
    out_dir = Path(os.environ.get("CUSTODY_OUT", "/out"))
    try:
        job = json.loads((in_dir / "job.json").read_text("utf-8"))
    except (OSError, ValueError) as err:
        return _fail(f"cannot read the job: {err}", 2)
    if job.get("mode") != "remoderate":
        return _fail(f"unsupported mode {job.get('mode')!r}", 2)

    from pipeline.errors import PipelineError
    from pipeline.policy import policy_from_data
    from pipeline.prompt_safety import PromptSafety, stage_version

    layers = {}
    policies = {}
    for label, spec in sorted(job.get("policies", {}).items()):
        try:
            policy = policy_from_data(spec["document"], source=f"replay:{label}")
        except PipelineError as err:
            return _fail(f"policy {label!r} does not load: {err}")
        if policy.sha256 != spec.get("sha256"):
            return _fail(f"policy {label!r} is {policy.sha256}, not the {spec.get('sha256')} the job names")
        layers[label] = PromptSafety(policy)
        policies[label] = {"policy_id": policy.policy_id, "version": policy.version, "sha256": policy.sha256}

    results = []
    for p in job.get("prompts", []):
        for label, layer in layers.items():
            entry = {"record_id": p.get("record_id"), "label": label, "decision": None, "error": None}
            try:
                entry["decision"] = layer.check(p.get("text"), p.get("surface")).to_dict()
            except PipelineError as err:
                entry["error"] = {"type": type(err).__name__, "message": str(err)}
            results.append(entry)

    doc = {"worker": WORKER_VERSION, "stage_version": stage_version(), "python": platform.python_version(),
           "policies": policies, "results": results}
    (out_dir / "result.json").write_text(json.dumps(doc, ensure_ascii=False, sort_keys=True), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
