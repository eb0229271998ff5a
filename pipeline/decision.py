"""Signals → per-category risk → allow / hold / block, and the analysis stage that produces them.

:func:`decide` is pure: ``(signals, context, surface, policy, pipeline version) -> Decision``. Every
input it reads is recorded in the decision, so :func:`replay` recomputes it from the record alone and
must get the identical ``decision_sha256``. No clock, no randomness; floats are rounded to 4
decimals before they are compared with thresholds.

Risk rules (:data:`DECISION_VERSION` pins them; risks are in [0, 1]):

* ``sexual_content`` = max(explicit, 0.8 x exposed, 0.4 x suggestive) — explicit nudity can block,
  exposed breasts / buttocks at most hold (0.8 < the default block_at 0.85), swimwear / lingerie
  alone is allowed.
* ``nonconsensual_intimate_edit`` — only when the output is an edit of an uploaded photo of a real
  person: a source image with a face (NudeNet face ≥ 0.5 or a Haar face), or ``real_person: true``
  in the context. Risk = max(explicit, exposed, 0.7 x suggestive): with the default policy any
  nudity on such an edit blocks and a bikini / lingerie edit is held. The highest-risk class.
* hash-bank hit → risk 1.0 in the entry's category (``sex_related_crimes`` for StopNCII-style
  intimate-image lists, ``child_sexual_exploitation`` for CSAM lists).
* ``child_sexual_exploitation`` — **there is no offline minor-age detector** in this pipeline (see
  :mod:`pipeline.detectors`); it does not guess age from pixels. Risk 1.0 when the context says
  ``minor: true`` and any sexual signal is present (any nudity score ≥ 0.2, a
  nonconsensual-edit risk, or a sexual category from the prompt layer), or on a CSAM-bank hit, or
  from the prompt layer's own CSE risk. The policy loader guarantees CSE is block + escalate, and
  :func:`decide` escalates it regardless of the policy.
* ``prompt_risk`` in the context (the prompt-safety layer's per-category risks for the request)
  is merged by max, so the output is never judged more leniently than the request.
* A detector that failed → the overall action is at least *hold* (fail closed), never allow.

The provenance signals (watermark payload, C2PA manifest state, pdq hash, ``provenance.mismatch``
when the manifest's and the pixels' watermark payloads disagree) are recorded for the reviewer and the
ledger but carry no risk by themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import rfc8785

from pipeline.errors import InvalidSurface, PipelineError
from pipeline.policy import ACTIONS, CATEGORIES, CSE, Policy

DECISION_VERSION = "decision/1.0.0"
SCHEMA = "custody.analysis-decision/v1"

FACE_MIN = 0.5
SEXUAL_SIGNAL_MIN = 0.2  # NudeNet reports nothing below 0.2
W_EXPOSED_SC = 0.8
W_SUGGESTIVE_SC = 0.4
W_SUGGESTIVE_NCE = 0.7
SEXUAL_PROMPT_CATEGORIES = ("sexual_content", "nonconsensual_intimate_edit", "sex_related_crimes", CSE)
CONTEXT_KEYS = {"minor", "real_person", "prompt_risk", "request_id"}


class InvalidContext(PipelineError):
    """The request context passed to the analysis stage is malformed."""

    status = 400
    exit_code = 2
    code = "invalid_context"


class ReplayMismatch(PipelineError):
    status = 409
    exit_code = 1
    code = "replay_policy_mismatch"


def _r(x: float) -> float:
    return round(float(x), 4)


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON: the decision's hash must survive a round trip through any JSON store
    (the ledger's leaves are RFC 8785, where 1.0 is written ``1`` and read back as an integer)."""
    return rfc8785.dumps(obj)


def check_context(context: dict[str, Any] | None) -> dict[str, Any]:
    """Validate the request context; returns a normalised copy (only known keys, typed)."""
    ctx = dict(context or {})
    extra = sorted(set(ctx) - CONTEXT_KEYS)
    if extra:
        raise InvalidContext(f"unknown context key(s) {extra}; known: {sorted(CONTEXT_KEYS)}")
    out: dict[str, Any] = {}
    for key in ("minor", "real_person"):
        if key in ctx:
            if not isinstance(ctx[key], bool):
                raise InvalidContext(f"context.{key} must be true or false, got {ctx[key]!r}")
            out[key] = ctx[key]
    if "prompt_risk" in ctx:
        pr = ctx["prompt_risk"]
        if not isinstance(pr, dict) or not all(k in CATEGORIES and isinstance(v, int | float)
                                               and not isinstance(v, bool) and 0 <= v <= 1 for k, v in pr.items()):
            raise InvalidContext("context.prompt_risk must map policy categories to risks in [0, 1]")
        out["prompt_risk"] = {k: _r(v) for k, v in sorted(pr.items())}
    if "request_id" in ctx:
        if not isinstance(ctx["request_id"], str):
            raise InvalidContext("context.request_id must be a string")
        out["request_id"] = ctx["request_id"]
    return out


# --- the pure decision ------------------------------------------------------------------------

def category_risks(signals: dict[str, Any], context: dict[str, Any]) -> dict[str, tuple[float, list[str]]]:
    """category → (risk, reasons), from signals and context only."""
    g = lambda k: float(signals.get(k) or 0.0)
    explicit, exposed, suggestive = g("nudity.explicit"), g("nudity.exposed"), g("nudity.suggestive")
    risks: dict[str, tuple[float, list[str]]] = {}

    def bump(cat: str, risk: float, reason: str) -> None:
        risk = _r(min(1.0, max(0.0, risk)))
        if risk <= 0:
            return
        old, reasons = risks.get(cat, (0.0, []))
        risks[cat] = (max(old, risk), reasons + [f"{reason}={risk}"])

    sc = max(explicit, W_EXPOSED_SC * exposed, W_SUGGESTIVE_SC * suggestive)
    bump("sexual_content", sc, "nudity")

    source_face = (g("source.face.nudenet") >= FACE_MIN or g("source.face.haar_count") >= 1)
    if signals.get("source.present") and source_face or context.get("real_person"):
        nce = max(explicit, exposed, W_SUGGESTIVE_NCE * suggestive)
        why = "source_face" if signals.get("source.present") and source_face else "real_person_flag"
        bump("nonconsensual_intimate_edit", nce, f"nudity_on_edit_of_real_person({why})")

    match = signals.get("hashbank.match")
    if isinstance(match, dict):
        bump(match["category"], 1.0, f"hashbank:{match['bank_id']}/{match['entry_id']}@d{match['distance']}")

    for cat, risk in (context.get("prompt_risk") or {}).items():
        bump(cat, risk, "prompt_risk")

    if context.get("minor"):
        sexual = (max(explicit, exposed, suggestive) >= SEXUAL_SIGNAL_MIN
                  or any(risks.get(c, (0.0,))[0] > 0 for c in SEXUAL_PROMPT_CATEGORIES))
        if sexual:
            bump(CSE, 1.0, "minor_flag_with_sexual_signal")
    return risks


def _action(policy: Policy, cat: str, risk: float) -> str:
    c = policy.document.categories.get(cat)
    if c is None:
        return "hold"  # a risk the policy does not route: a human decides
    if c.block_at is not None and risk >= c.block_at:
        return "block"
    if c.hold_at is not None and risk >= c.hold_at:
        return "hold"
    return "allow"


def decide(signals: dict[str, Any], context: dict[str, Any], surface: str, policy: Policy,
           pipeline_version: str, subject: dict[str, Any] | None = None) -> dict[str, Any]:
    """The decision record (a JSON-ready dict). Pure and deterministic."""
    if surface not in policy.document.surfaces:
        raise InvalidSurface(f"surface {surface!r} is not declared by policy {policy.policy_id} "
                             f"({', '.join(policy.document.surfaces)})")
    ctx = check_context(context)
    cats = []
    escalate = False
    for cat, (risk, reasons) in sorted(category_risks(signals, ctx).items()):
        action = _action(policy, cat, risk)
        c = policy.document.categories.get(cat)
        esc = action == "block" and (cat == CSE or bool(c and c.escalate))
        if cat == CSE and action != "allow":  # never merely held: block and escalate
            action, esc = "block", True
        escalate = escalate or esc
        cats.append({"category": cat, "mlcommons": CATEGORIES[cat][0], "risk": risk, "action": action,
                     "escalate": esc, "in_policy": c is not None, "reasons": reasons})
    action = max((c["action"] for c in cats), key=ACTIONS.index, default="allow")
    failed = sorted(k for k in signals if k.startswith("detector_error."))
    if failed and action == "allow":
        action = "hold"
    body = {
        "schema": SCHEMA,
        "action": action,
        "escalate": escalate,
        "categories": cats,
        "detector_failures": failed,
        "surface": surface,
        "context": ctx,
        "signals": {k: signals[k] for k in sorted(signals)},
        "subject": subject or {},
        "policy": {"policy_id": policy.policy_id, "version": policy.version, "sha256": policy.sha256},
        "pipeline_version": pipeline_version,
        "decision_version": DECISION_VERSION,
    }
    body["decision_sha256"] = hashlib.sha256(canonical(body)).hexdigest()
    return body


def replay(record: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """Recompute a decision from its own record (signals, context, surface, subject) under ``policy``.
    Equal ``decision_sha256`` means the same inputs gave the same decision."""
    if record.get("policy", {}).get("sha256") != policy.sha256:
        raise ReplayMismatch(f"the record was made under policy sha256 {record.get('policy', {}).get('sha256')}, "
                            f"not {policy.sha256}")
    return decide(record["signals"], record["context"], record["surface"], policy,
                  record["pipeline_version"], record.get("subject"))


# --- the analysis stage -----------------------------------------------------------------------

def _run(name: str, fn: Callable[[], Any], signals: dict[str, Any], evidence: list[dict[str, Any]],
         prefix: str = "") -> None:
    """Run one detector; a failure becomes a ``detector_error.*`` signal (the decision fails closed)."""
    try:
        res = fn()
    except Exception as e:  # noqa: BLE001 - any detector failure is recorded, not raised
        signals[f"detector_error.{prefix}{name}"] = f"{type(e).__name__}: {str(e)[:200]}"
        return
    signals.update({prefix + k: v for k, v in res.signals.items()})
    evidence.append({**res.to_dict(), "subject": prefix.rstrip(".") or "output"})


def image_signals(bgr: np.ndarray, banks: tuple = (), key: bytes | None = None, prefix: str = "",
                  haar: str = "gated") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """All detectors on one image → (signals, evidence).

    The Haar face cascade is the slowest detector here (~40-90 ms at 512x512 on this machine) and on a
    generated output its face count is evidence for a reviewer, not an input to any risk rule. With
    ``haar="gated"`` it runs on an output only when NudeNet reports any nudity signal (≥ 0.2) or
    failed; the source photo of an edit, where a face *is* a risk input, always gets it
    (:func:`source_signals`). The gate is deterministic, so replays are unaffected."""
    from pipeline import detectors as d

    signals: dict[str, Any] = {}
    evidence: list[dict[str, Any]] = []
    _run("nudity", lambda: d.nudity(bgr), signals, evidence, prefix)
    nude = max(float(signals.get(prefix + k) or 0.0) for k in ("nudity.explicit", "nudity.exposed", "nudity.suggestive"))
    if haar == "always" or nude >= SEXUAL_SIGNAL_MIN or f"detector_error.{prefix}nudity" in signals:
        _run("faces_haar", lambda: d.faces_haar(bgr), signals, evidence, prefix)
    else:
        signals[prefix + "face.haar_skipped"] = "no nudity signal"
    _run("pdq", lambda: d.pdq(bgr, banks), signals, evidence, prefix)
    _run("watermark", lambda: d.watermark(bgr, key), signals, evidence, prefix)
    return signals, evidence


def source_signals(bgr: np.ndarray) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The uploaded source photo of an edit: only whether it shows a face."""
    from pipeline import detectors as d

    signals: dict[str, Any] = {"source.present": True}
    evidence: list[dict[str, Any]] = []
    _run("nudity", lambda: d.nudity(bgr), signals, evidence, "source.")
    _run("faces_haar", lambda: d.faces_haar(bgr), signals, evidence, "source.")
    keep = {"source.present", "source.face.nudenet", "source.face.haar_count", "source.face.nudenet_count"}
    return {k: v for k, v in signals.items() if k in keep or k.startswith("detector_error.")}, evidence


def aggregate_frames(per_frame: list[dict[str, Any]]) -> dict[str, Any]:
    """vPDQ-style video signals: numeric signals by max over frames, the closest bank match over
    frames, the first watermark payload found, and the bag of frame hashes."""
    out: dict[str, Any] = {}
    for sig in per_frame:
        for k, v in sig.items():
            if k in ("pdq.hash", "pdq.quality", "watermark.skipped", "hashbank.skipped", "face.haar_skipped"):
                continue
            if k == "hashbank.match":
                if isinstance(v, dict) and (not isinstance(out.get(k), dict) or v["distance"] < out[k]["distance"]):
                    out[k] = v
                else:
                    out.setdefault(k, None)
            elif k == "watermark.payload":
                if v is not None and out.get(k) is None:
                    out[k] = v
                else:
                    out.setdefault(k, None)
            elif isinstance(v, bool):
                out[k] = bool(out.get(k, False)) or v
            elif isinstance(v, int | float):
                out[k] = max(out.get(k, v), v)
            elif k.startswith("detector_error."):
                out.setdefault(k, v)
    out["video.pdq_frames"] = [s.get("pdq.hash") for s in per_frame]
    out["video.pdq_quality_min"] = min((s.get("pdq.quality", 0) for s in per_frame), default=0)
    out["video.frames_analysed"] = len(per_frame)
    return out


def analyse(data: bytes, policy: Policy, surface: str = "imagine", declared: str | None = None,
            source: bytes | None = None, source_declared: str | None = None, banks: tuple = (),
            key: bytes | None = None, context: dict[str, Any] | None = None,
            video_samples: int | None = None, trust_anchor_pem: bytes | None = None) -> dict[str, Any]:
    """The whole post-generation analysis of one image or short video (bytes, untrusted) → decision.

    ``source`` is the uploaded photo an edit started from (its faces make a nudity finding the
    nonconsensual-edit class). Malformed input raises an :class:`~pipeline.images.ImageError`.
    """
    from pipeline import images
    from pipeline.version import pipeline_version

    if surface not in policy.document.surfaces:
        raise InvalidSurface(f"surface {surface!r} is not declared by policy {policy.policy_id} "
                             f"({', '.join(policy.document.surfaces)})")
    ctx = check_context(context)
    kind = images.sniff(bytes(data[:4096]))
    evidence: list[dict[str, Any]] = []
    if kind in images.VIDEO_TYPES:
        vid = images.video_frames(data, declared, video_samples or images.DEFAULT_VIDEO_SAMPLES)
        per_frame = []
        for idx, frame in vid.frames:
            sig, ev = image_signals(frame, banks, key)
            per_frame.append(sig)
            evidence.append({"frame": idx, "detectors": ev})
        signals = aggregate_frames(per_frame)
        subject = {"kind": "video", **vid.describe()}
    else:
        img = images.decode_image(data, declared)
        signals, ev = image_signals(img.bgr, banks, key)
        from pipeline import detectors as d

        _run("credentials", lambda: d.credentials(bytes(data), trust_anchor_pem), signals, ev)
        wm_p, c2pa_p = signals.get("watermark.payload"), signals.get("c2pa.watermark_payload")
        signals["provenance.mismatch"] = bool(wm_p and c2pa_p and wm_p != c2pa_p)
        evidence.append({"frame": None, "detectors": ev})
        subject = {"kind": "image", **img.describe()}
    if source is not None:
        src = images.decode_image(source, source_declared)
        s_sig, s_ev = source_signals(src.bgr)
        signals.update(s_sig)
        evidence.append({"source": True, "detectors": s_ev})
        subject["source"] = src.describe()
    if banks:
        subject["hash_banks"] = [b.describe() for b in banks]
    if trust_anchor_pem is not None:
        subject["trust_anchor_sha256"] = hashlib.sha256(trust_anchor_pem).hexdigest()
    pv = pipeline_version(policy)
    out = decide(signals, ctx, surface, policy, pv["sha256"], subject)
    out["pipeline_components"] = pv["components"]
    out["evidence"] = evidence
    return out
