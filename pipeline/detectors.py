"""Post-generation detectors: small functions from a decoded image to named signals.

Each detector is ``f(bgr, ...) -> DetectorResult`` with a pinned ``version``; it reads nothing but
its arguments and its model file, so the same pixels give the same signals (scores are rounded to
4 decimals before anything uses them, so last-bit float noise cannot flip a decision).

* :func:`nudity` — NudeNet 3.4 (YOLO-style ONNX model ``320n.onnx`` shipped inside the ``nudenet``
  wheel, run on CPU by ``onnxruntime``). Its classes are folded into three signals:
  ``nudity.explicit`` (exposed genitalia / anus), ``nudity.exposed`` (exposed female breast,
  buttocks) and ``nudity.suggestive`` (the same regions covered: lingerie, swimwear). Its
  ``FACE_FEMALE`` / ``FACE_MALE`` classes give ``face.nudenet``.
* :func:`faces_haar` — OpenCV's frontal-face Haar cascade, a second opinion on faces (it misses
  profiles and small faces, and has false positives on textures; it only ever *adds* a face).
* :func:`pdq` (in :mod:`pipeline.hashbank`) — perceptual hash and hash-bank matching.
* :func:`watermark` — :func:`pipeline.watermark.detect`: a re-uploaded image we generated is
  recognised by its payload even with its metadata stripped.

No minor-age detector: there is no offline, openly licensed age estimator we can ship and pin (NudeNet
has no age classes; OpenCV ships none). The pipeline does **not** guess age from pixels. Content
"involving minors" is recognised only from an explicit ``minor`` flag in the request context (set by
the prompt layer's child-sexual-exploitation category, a hash-bank hit in a CSAM list, or a human);
see :mod:`pipeline.decision`.

The NudeNet model is loaded once per process, lazily, on first use — never at import.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline import watermark as wm
from pipeline.hashbank import HashBank, match_signals, pdq_dihedral, pdq_version

NUDITY_VERSION = "nudity/1.0.0"
FACES_HAAR_VERSION = "faces-haar/1.0.0"
PDQ_VERSION = "pdq-match/1.0.0"
WATERMARK_DETECTOR_VERSION = "watermark-detect/1.0.0"
NUDENET_PINNED = "3.4.2"

EXPLICIT = ("FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED")
EXPOSED = ("FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED")
SUGGESTIVE = ("FEMALE_GENITALIA_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED", "ANUS_COVERED")
FACES = ("FACE_FEMALE", "FACE_MALE")

HAAR_FILE = "haarcascade_frontalface_default.xml"
HAAR_MAX_SIDE = 400  # the cascade runs on a copy scaled to at most this side (speed; faces ≥ ~30 px there)
HAAR_SCALE_FACTOR = 1.2
HAAR_MIN_NEIGHBORS = 5
HAAR_MIN_FACE = 24


def _r(x: float) -> float:
    return round(float(x), 4)


@dataclass(frozen=True)
class DetectorResult:
    name: str
    version: str
    signals: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "signals": dict(self.signals),
                "evidence": dict(self.evidence)}


# --- model files (also hashed into the pipeline version) --------------------------------------

def nudenet_model_path() -> Path:
    import nudenet

    return Path(nudenet.__file__).parent / "320n.onnx"


def nudenet_version() -> str:
    from importlib.metadata import version

    return version("nudenet")


def haar_path() -> Path:
    return Path(cv2.data.haarcascades) / HAAR_FILE


# --- lazy model loading -----------------------------------------------------------------------

_lock = threading.Lock()
_nudenet: Any = None
_haar: Any = None
_onnx_threads: int | None = None


def set_onnx_threads(n: int | None) -> None:
    """Threads for NudeNet's ONNX session (None: onnxruntime's default). Call before the first
    detection; a benchmark running one process per core sets 1."""
    global _onnx_threads, _nudenet
    with _lock:
        _onnx_threads = n
        _nudenet = None


def _nudenet_model() -> Any:
    global _nudenet
    if _nudenet is None:
        with _lock:
            if _nudenet is None:
                import onnxruntime
                from nudenet import NudeDetector

                det = NudeDetector.__new__(NudeDetector)  # the constructor gives no SessionOptions
                opts = onnxruntime.SessionOptions()
                if _onnx_threads:
                    opts.intra_op_num_threads = _onnx_threads
                    opts.inter_op_num_threads = 1
                det.onnx_session = onnxruntime.InferenceSession(
                    str(nudenet_model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
                det.input_width = det.input_height = 320
                det.input_name = det.onnx_session.get_inputs()[0].name
                _nudenet = det
    return _nudenet


def _haar_model() -> Any:
    global _haar
    if _haar is None:
        with _lock:
            if _haar is None:
                c = cv2.CascadeClassifier(str(haar_path()))
                if c.empty():
                    raise RuntimeError(f"OpenCV Haar cascade {haar_path()} did not load")
                _haar = c
    return _haar


# --- detectors --------------------------------------------------------------------------------

def _check(bgr: np.ndarray) -> None:
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError("detectors take a uint8 BGR array (H, W, 3); decode with pipeline.images first")


def nudity(bgr: np.ndarray) -> DetectorResult:
    """NudeNet over the whole image (it letterboxes to 320x320)."""
    _check(bgr)
    raw = _nudenet_model().detect(np.ascontiguousarray(bgr))
    dets = sorted(({"class": d["class"], "score": _r(d["score"]), "box": [int(v) for v in d["box"]]}
                   for d in raw), key=lambda d: (d["class"], -d["score"], d["box"]))

    def top(classes: tuple[str, ...]) -> float:
        return max((d["score"] for d in dets if d["class"] in classes), default=0.0)

    signals = {"nudity.explicit": top(EXPLICIT), "nudity.exposed": top(EXPOSED),
               "nudity.suggestive": top(SUGGESTIVE), "face.nudenet": top(FACES),
               "face.nudenet_count": sum(1 for d in dets if d["class"] in FACES and d["score"] >= 0.5)}
    return DetectorResult("nudity", f"{NUDITY_VERSION} nudenet/{nudenet_version()}", signals,
                          {"detections": dets})


def faces_haar(bgr: np.ndarray) -> DetectorResult:
    """Frontal faces with OpenCV's Haar cascade; boxes in the original image's pixels."""
    _check(bgr)
    h, w = bgr.shape[:2]
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    scale = min(1.0, HAAR_MAX_SIDE / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    found = _haar_model().detectMultiScale(gray, scaleFactor=HAAR_SCALE_FACTOR, minNeighbors=HAAR_MIN_NEIGHBORS,
                                           minSize=(HAAR_MIN_FACE, HAAR_MIN_FACE))
    boxes = sorted([round(v / scale) for v in box] for box in (found if len(found) else []))
    return DetectorResult("faces_haar", f"{FACES_HAAR_VERSION} opencv/{cv2.__version__}",
                          {"face.haar_count": len(boxes)}, {"boxes": boxes})


def pdq(bgr: np.ndarray, banks: list[HashBank] | tuple[HashBank, ...] = ()) -> DetectorResult:
    """PDQ hash (and its dihedral variants) matched against ``banks``."""
    _check(bgr)
    res = pdq_dihedral(bgr)
    return DetectorResult("pdq", f"{PDQ_VERSION} {pdq_version()}", match_signals(res, banks),
                          {"dihedral_hashes": list(res.hashes),
                           "banks": [b.describe() for b in banks]})


def watermark(bgr: np.ndarray, key: bytes | None) -> DetectorResult:
    """Our invisible watermark, read with ``key``. Not checked without a key or below the minimum size."""
    _check(bgr)
    version = f"{WATERMARK_DETECTOR_VERSION} {wm.WATERMARK_VERSION}"
    if key is None:
        return DetectorResult("watermark", version, {"watermark.checked": False, "watermark.skipped": "no key"})
    h, w = bgr.shape[:2]
    if min(h, w) < wm.MIN_SIDE:
        return DetectorResult("watermark", version, {"watermark.checked": False,
                                                     "watermark.skipped": f"smaller than {wm.MIN_SIDE} px"})
    if h * w > wm.MAX_PIXELS:
        return DetectorResult("watermark", version, {"watermark.checked": False,
                                                     "watermark.skipped": "too many pixels"})
    r = wm.detect(bgr, key)
    return DetectorResult("watermark", version, {
        "watermark.checked": True, "watermark.found": bool(r.found),
        "watermark.payload": f"{r.payload:016x}" if r.found and r.payload is not None else None,
        "watermark.confidence": _r(r.confidence)},
        {"sync_score": _r(r.sync_score), "shift": list(r.shift) if r.shift else None,
         "scale": list(r.scale) if r.scale else None})


CREDENTIALS_DETECTOR_VERSION = "credentials-read/1.0.0"


def credentials(data: bytes, trust_anchor_pem: bytes | None = None) -> DetectorResult:
    """The input's C2PA Content Credentials (``pipeline.credentials.read_credentials``, offline).

    ``c2pa.ours`` is true only for a manifest that validates as *Trusted* against our root
    (``trust_anchor_pem``) and whose soft binding names our watermark; without an anchor nothing is
    ours by its manifest alone (anyone can write a well-formed manifest). ``provenance.mismatch`` is
    set when the manifest's watermark payload and the pixels' watermark payload disagree (added by
    :func:`pipeline.decision.analyse`, which sees both)."""
    from pipeline.credentials import TRAINED_ALGORITHMIC_MEDIA, WATERMARK_ALG, read_credentials

    r = read_credentials(data, None, trust_anchor_pem)
    payload = f"{r.watermark_payload:016x}" if r.watermark_payload is not None else None
    signals = {"c2pa.present": r.manifest_present, "c2pa.state": r.validation_state,
               "c2pa.trusted": r.trusted,
               "c2pa.ours": bool(r.trusted and r.soft_binding_alg == WATERMARK_ALG),
               "c2pa.ai_generated": r.digital_source_type == TRAINED_ALGORITHMIC_MEDIA,
               "c2pa.watermark_payload": payload}
    return DetectorResult("credentials", f"{CREDENTIALS_DETECTOR_VERSION} c2pa-python/{_c2pa_version()}",
                          signals, r.summary())


def _c2pa_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("c2pa-python")
    except PackageNotFoundError:
        return "absent"
