"""The pipeline version: one SHA-256 naming everything that can change a decision.

``pipeline_version(policy)`` hashes the canonical JSON of its components:

* ``code``: this package's analysis code version (:data:`CODE_VERSION`) and each stage's pinned
  version string (detectors, decision rules, watermark scheme, prompt-safety stage);
* ``policy``: the policy's id, version and SHA-256 over its canonical bytes;
* ``models``: the SHA-256 of each detector's model file — NudeNet's ``320n.onnx``, OpenCV's Haar
  cascade XML — and the versions of the libraries that run them (nudenet, onnxruntime, opencv,
  pdqhash, numpy, c2pa-python).

Two runs with the same version and the same inputs produce the same decision (see
:mod:`pipeline.decision`); a replay that computes a different version is not a replay of the same
pipeline. Model files are hashed once per process (keyed by path, size and mtime); nothing is loaded
or hashed at import.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pipeline import decision, detectors
from pipeline import watermark as wm
from pipeline.policy import Policy

CODE_VERSION = "custody-pipeline-analysis/1.0.0"


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


@lru_cache(maxsize=32)
def _file_sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    st = os.stat(path)
    return _file_sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def components(policy: Policy) -> dict[str, Any]:
    """Everything the pipeline version covers, as plain data."""
    try:
        from pipeline.prompt_safety import stage_version
        prompt_stage = stage_version()
    except Exception as e:  # noqa: BLE001 - a missing optional normaliser dependency must not hide the rest
        prompt_stage = f"unavailable ({type(e).__name__})"
    return {
        "code": {
            "analysis": CODE_VERSION,
            "decision": decision.DECISION_VERSION,
            "detectors": {"nudity": detectors.NUDITY_VERSION, "faces_haar": detectors.FACES_HAAR_VERSION,
                          "pdq": detectors.PDQ_VERSION, "watermark": detectors.WATERMARK_DETECTOR_VERSION,
                          "credentials": detectors.CREDENTIALS_DETECTOR_VERSION},
            "watermark_scheme": wm.WATERMARK_VERSION,
            "prompt_safety": prompt_stage,
        },
        "policy": {"policy_id": policy.policy_id, "version": policy.version, "sha256": policy.sha256},
        "models": {
            "nudenet_onnx": {"file": "nudenet/320n.onnx", "sha256": file_sha256(detectors.nudenet_model_path())},
            "haar_cascade": {"file": f"cv2/data/{detectors.HAAR_FILE}", "sha256": file_sha256(detectors.haar_path())},
        },
        "libraries": {name: _dist_version(name) for name in
                      ("nudenet", "onnxruntime", "opencv-python-headless", "pdqhash", "numpy", "c2pa-python")},
    }


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def pipeline_version(policy: Policy) -> dict[str, Any]:
    """``{"sha256": ..., "components": ...}``; the sha256 is over the canonical JSON of the components."""
    comp = components(policy)
    return {"sha256": hashlib.sha256(canonical(comp)).hexdigest(), "components": comp}
