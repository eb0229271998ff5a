"""Per-step results: what was recorded, what the replay gives, and the findings and differences.

**Artifact re-moderation**, stage by stage:

* ``recorded`` — the recorded analysis decision (its action, policy, pipeline version, decision SHA-256).
* ``a_recorded_signals`` — ``pipeline.decision.replay`` of the recorded decision from its *recorded*
  signals at the recorded policy (exact only when that policy is in the archive). It is a pure function:
  a different ``decision_sha256`` is a ``recompute_disagrees_with_record`` **error**.
* ``b_signals_from_bytes`` — the bytes analysed again: signal by signal against the recorded ones. The
  sandbox holds no watermark key, hash banks or C2PA trust anchor, so differences on ``watermark.*``,
  ``hashbank.*``, ``c2pa.*`` and ``provenance.*`` signals are listed as *explained*. Any other signal
  that differs while the pipeline version is the recorded one is a ``signals_differ`` warning; the
  decision those signals give at the recorded policy disagreeing with the record, at the same pipeline
  version, is a ``replay_disagrees_with_record`` **error**.
* ``c_today`` — those signals decided at today's policy and pipeline: the action, and per category what
  moved (risk, action), with the policy and pipeline versions that changed.

**Re-generation**: ``bit_identical`` (the output's SHA-256 is the generation's ``output_sha256``),
``perceptually_close`` (PDQ distance ≤ :data:`PDQ_CLOSE` to the recorded output artifact, which is
the *marked* output: watermark and manifest change its bytes but hardly its PDQ hash), or ``different``.
"""

from __future__ import annotations

from typing import Any

from sandbox.evidence_check import Finding

PDQ_CLOSE = 31
WITHHELD = ("watermark.", "hashbank.", "c2pa.", "provenance.")  # inputs the sandbox is not given


def _cats(decision: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["category"]: {"risk": c.get("risk"), "action": c.get("action")}
            for c in (decision or {}).get("categories", [])}


def _short(d: dict[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    if "error" in d:
        return {"error": d["error"]}
    return {"action": d.get("action"), "escalate": d.get("escalate"), "decision_sha256": d.get("decision_sha256"),
            "policy": d.get("policy"), "pipeline_version": d.get("pipeline_version"), "categories": _cats(d)}


def signal_differences(recorded: dict[str, Any], replayed: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for k in sorted(set(recorded) | set(replayed)):
        a, b = recorded.get(k, "<absent>"), replayed.get(k, "<absent>")
        if a != b:
            out.append({"signal": k, "recorded": a, "replayed": b,
                        "explained": ("the sandbox is given no watermark key, hash banks or trust anchor"
                                      if k.startswith(WITHHELD) else None)})
    return out


def _why_today(recorded: dict[str, Any] | None, today: dict[str, Any], rec_body: dict[str, Any],
               sig_diffs: list[dict[str, Any]]) -> list[str]:
    why = []
    rp = (recorded or {}).get("policy") or {}
    tp = today.get("policy") or {}
    pid, pver = rp.get("policy_id", rec_body.get("policy_id")), rp.get("version", rec_body.get("policy_version"))
    if (pid, pver) != (tp.get("policy_id"), tp.get("version")) or (rp.get("sha256") and rp.get("sha256") != tp.get("sha256")):
        why.append(f"policy {pid}@{pver} → {tp.get('policy_id')}@{tp.get('version')}")
    rpv = (recorded or {}).get("pipeline_version", rec_body.get("pipeline_version"))
    if rpv != today.get("pipeline_version"):
        why.append(f"pipeline {rpv} → {today.get('pipeline_version')}")
    rc, tc = _cats(recorded), _cats(today)
    for cat in sorted(set(rc) | set(tc)):
        a, b = rc.get(cat, {}), tc.get(cat, {})
        if a != b:
            why.append(f"{cat}: risk {a.get('risk', 0)} → {b.get('risk', 0)}, "
                       f"action {a.get('action', 'allow')} → {b.get('action', 'allow')}")
    unexplained = [d["signal"] for d in sig_diffs if not d["explained"]]
    if unexplained:
        why.append("signals differ: " + ", ".join(unexplained[:12]))
    return why


def artifact_step(a: int, *, body: dict[str, Any], decisions: list[tuple[int, dict[str, Any]]],
                  result: dict[str, Any] | None, plan: dict[str, Any], findings: list[Finding],
                  differences: list[dict[str, Any]]) -> dict[str, Any]:
    """The report step for artifact ``a``. ``decisions``: (id, body) of its recorded analysis decisions;
    ``plan``: what the host chose (labels, exactness, context, source); ``result``: the worker's entry."""
    step: dict[str, Any] = {"step": "artifact", "record_id": a, "sha256": body.get("sha256"),
                            "media_type": body.get("media_type"), "generation": plan.get("generation"),
                            "source": plan.get("source"), "context": plan.get("context"),
                            "context_from": plan.get("context_from"), "status": "replayed"}
    d_id, d_body = decisions[0]
    rec = d_body.get("decision") if isinstance(d_body.get("decision"), dict) else None
    step["recorded"] = {"decision_record": d_id, "action": d_body.get("action"), "stage": d_body.get("stage"),
                        "policy": f"{d_body.get('policy_id')}@{d_body.get('policy_version')}",
                        "pipeline_version": d_body.get("pipeline_version"), "risk": d_body.get("risk"),
                        "decision_sha256": d_body.get("decision_sha256") or (rec or {}).get("decision_sha256"),
                        "exact_policy": plan.get("exact", False), "other_decisions": [i for i, _ in decisions[1:]]}
    if plan.get("skip"):
        step["status"] = "skipped"
        step["skipped_because"] = plan["skip"]
        return step
    if result is None:
        step["status"] = "failed"
        findings.append(Finding("worker_result_missing", "error", f"artifact {a}: the worker returned no result", a))
        return step
    # (a) the recorded signals at the recorded policy
    rc = result.get("recompute")
    if rc is None:
        step["a_recorded_signals"] = {"skipped": plan.get("a_skip") or "not run"}
    elif "error" in rc:
        step["a_recorded_signals"] = {"error": rc["error"]}
        findings.append(Finding("recompute_failed", "error",
                                f"artifact {a}: decision {d_id} could not be recomputed from its record: "
                                f"{rc['error'].get('message')}", a))
    else:
        want = step["recorded"]["decision_sha256"]
        agrees = rc["decision_sha256"] == want and rc["action"] == d_body.get("action")
        step["a_recorded_signals"] = {**rc, "agrees_with_record": agrees}
        if not agrees:
            findings.append(Finding("recompute_disagrees_with_record", "error",
                                    f"artifact {a}: decision {d_id} recorded {d_body.get('action')!r} "
                                    f"(decision_sha256 {want}); recomputing it from its own signals at "
                                    f"{step['recorded']['policy']} gives {rc['action']!r} ({rc['decision_sha256']})", a))
    # (b) signals from the bytes
    an = result.get("analysis") or {}
    if "error" in an:
        step["status"] = "failed"
        step["b_signals_from_bytes"] = {"error": an["error"]}
        findings.append(Finding("artifact_analysis_failed", "error",
                                f"artifact {a}: the analysis stage refused its bytes "
                                f"({an['error'].get('type')}: {an['error'].get('message')})", a))
        return step
    rec_signals = (rec or {}).get("signals") or d_body.get("signals") or {}
    diffs = signal_differences(rec_signals, an.get("signals") or {}) if rec is not None else []
    same_pipeline = an.get("pipeline_version") == d_body.get("pipeline_version")
    at_rec = result.get("decisions", {}).get(plan["recorded_label"]) if plan.get("exact") else None
    b = {"pipeline_version": an.get("pipeline_version"), "same_pipeline_as_record": same_pipeline,
         "signals_compared": rec is not None, "differences": diffs,
         "decision_at_recorded_policy": _short(at_rec)}
    if rec is None:
        b["note"] = "the recorded decision holds no signal record (an older record): nothing to compare signal by signal"
    step["b_signals_from_bytes"] = b
    unexplained = [x["signal"] for x in diffs if not x["explained"]]
    if unexplained and same_pipeline:
        findings.append(Finding("signals_differ", "warning",
                                f"artifact {a}: at the recorded pipeline version, re-derived signals differ from "
                                f"the record: {', '.join(unexplained[:12])}", a))
    if at_rec and "error" not in at_rec and at_rec.get("action") != d_body.get("action"):
        if same_pipeline and not unexplained:
            findings.append(Finding("replay_disagrees_with_record", "error",
                                    f"artifact {a}: recorded {d_body.get('action')!r}; the same pipeline and policy "
                                    f"on the same bytes give {at_rec.get('action')!r}", a))
        differences.append({"record_id": a, "decision_record": d_id, "what": "recorded_vs_rederived",
                            "recorded": d_body.get("action"), "replayed": at_rec.get("action"),
                            "explanation": ("same pipeline version" if same_pipeline else
                                            f"pipeline {d_body.get('pipeline_version')} → {an.get('pipeline_version')}")})
    # (c) today
    today = result.get("decisions", {}).get("current")
    step["c_today"] = _short(today)
    if today and "error" not in today:
        why = _why_today(rec, today, d_body, diffs)
        step["c_today"]["changed"] = today.get("action") != d_body.get("action")
        step["c_today"]["why"] = why
        if today.get("action") != d_body.get("action"):
            differences.append({"record_id": a, "decision_record": d_id, "what": "recorded_vs_today",
                                "recorded": d_body.get("action"), "today": today.get("action"),
                                "today_policy": f"{today['policy']['policy_id']}@{today['policy']['version']}",
                                "why": why})
    elif today:
        findings.append(Finding("today_decision_failed", "error",
                                f"artifact {a}: today's decision failed: {today['error'].get('message')}", a))
    return step


def generation_step(g: int, *, body: dict[str, Any], plan: dict[str, Any], result: dict[str, Any] | None,
                    quarantine_ref: str | None, findings: list[Finding]) -> dict[str, Any]:
    adapter = body.get("adapter") if isinstance(body.get("adapter"), dict) else None
    step: dict[str, Any] = {"step": "generation", "record_id": g, "adapter": adapter, "seed": body.get("seed"),
                            "prompt": plan.get("prompt"), "sources": plan.get("sources", []),
                            "recorded_output_sha256": body.get("output_sha256"), "result": "not_replayed",
                            "status": "replayed"}
    if plan.get("skip"):
        step.update(status="skipped", skipped_because=plan["skip"])
        return step
    if result is None or result.get("error"):
        err = (result or {}).get("error") or {"message": "the worker returned no result"}
        step.update(status="failed", error=err)
        code = "adapter_unavailable" if err.get("code") == "unknown_model_adapter" else "regeneration_failed"
        findings.append(Finding(code, "error", f"generation {g}: {err.get('type', '')}: {err.get('message')}", g))
        return step
    o = result["output"]
    step.update({"output_sha256": o["sha256"], "output_media_type": o["media_type"], "output_size": o["size"],
                 "output_dims": [o["width"], o["height"]], "quarantine": quarantine_ref,
                 "bit_identical": o["sha256"] == body.get("output_sha256")})
    comps = [c for c in result.get("compare", []) if "distance" in c]
    best = min(comps, key=lambda c: c["distance"]) if comps else None
    step["pdq"] = {"threshold": PDQ_CLOSE, "compared_with": [c.get("record_id") for c in result.get("compare", [])],
                   "distance": best["distance"] if best else None,
                   "errors": [c for c in result.get("compare", []) if "error" in c] or None,
                   "quality": o.get("pdq_quality")}
    if step["bit_identical"]:
        step["result"] = "bit_identical"
        return step
    if not isinstance(body.get("output_sha256"), str):
        findings.append(Finding("generation_records_no_output_hash", "warning",
                                f"generation {g} records no output_sha256: only a perceptual comparison is possible", g))
    if best is not None and best["distance"] <= PDQ_CLOSE:
        step["result"] = "perceptually_close"
        findings.append(Finding("regeneration_not_bit_identical", "warning",
                                f"generation {g}: the re-generated output ({o['sha256']}) is not the recorded "
                                f"{body.get('output_sha256')}, but perceptually close to artifact "
                                f"{best['record_id']} (PDQ distance {best['distance']} ≤ {PDQ_CLOSE})", g))
    else:
        step["result"] = "different"
        why = (f"PDQ distance {best['distance']} > {PDQ_CLOSE} to artifact {best['record_id']}" if best
               else "no recorded output artifact could be compared perceptually")
        findings.append(Finding("regeneration_differs", "error",
                                f"generation {g}: the re-generated output ({o['sha256']}) differs from the recorded "
                                f"{body.get('output_sha256')} ({why})", g))
    return step




def prompt_step(p: int, *, body: dict[str, Any], text_sha256: str, decisions: list[tuple[int, dict[str, Any]]],
                by_label: dict[tuple[int, str], dict[str, Any]], policies: dict[str, Any], current_label: str,
                recorded_label: dict[int, str], findings: list[Finding], differences: list[dict[str, Any]]) -> dict[str, Any]:
    """Prompt re-moderation: each recorded decision against the replay at its (resolved) policy, and
    today's decision. ``policies``: the report's policy table (label → exact, ids, …)."""
    from sandbox.report import prompt_summary

    today = by_label.get((p, "current"))
    step: dict[str, Any] = {"step": "prompt", "record_id": p, "surface": body.get("surface"),
                            "prompt_sha256": text_sha256, "recorded": [],
                            "today": prompt_summary(today and today["decision"], today and today["error"], "current"),
                            "session_history": list((today or {}).get("history") or [])}
    today_action = step["today"]["action"]
    for d, dbody in decisions:
        label = recorded_label[d]
        at = by_label.get((p, label))
        at_s = prompt_summary(at and at["decision"], at and at["error"], label)
        exact = policies[label]["exact"]
        rec = {"decision_record": d, "action": dbody.get("action"), "policy_id": dbody.get("policy_id"),
               "policy_version": dbody.get("policy_version"), "pipeline_version": dbody.get("pipeline_version"),
               "stage": dbody.get("stage"), "risk": dbody.get("risk"), "replayed_at_recorded": at_s,
               "exact_policy": exact, "agrees_with_record": (at_s["action"] == dbody.get("action")) if exact else None}
        step["recorded"].append(rec)
        if exact and at_s["action"] != dbody.get("action"):
            findings.append(Finding("replay_disagrees_with_record", "error",
                                    f"prompt {p}: decision {d} recorded {dbody.get('action')!r} at "
                                    f"{label[9:]}, the replay at that exact policy gives {at_s['action']!r}", p))
        elif not exact and at_s["action"] != dbody.get("action"):
            differences.append({
                "record_id": p, "decision_record": d, "what": "recorded_vs_replayed_substituted_policy",
                "recorded": dbody.get("action"), "replayed": at_s["action"],
                "explanation": f"the recorded decision came from {dbody.get('pipeline_version')} at "
                               f"{label[9:]}, which cannot be replayed here; the substituted policy decides "
                               f"differently (not a disagreement of the same pipeline)"})
        if today_action != dbody.get("action"):
            differences.append({
                "record_id": p, "decision_record": d, "what": "recorded_vs_today",
                "recorded": dbody.get("action"), "today": today_action,
                "today_policy": f"{policies[current_label]['policy_id']}@{policies[current_label]['version']}",
                "why": {"flagged": step["today"].get("flagged", []),
                        "rules": [m["rule_id"] for m in step["today"].get("matched_rules", [])],
                        "recorded_pipeline": dbody.get("pipeline_version")}})
    if not decisions:
        step["note"] = "no safety_decision is linked to this prompt or its generations: nothing to compare with"
    return step


__all__ = ["PDQ_CLOSE", "artifact_step", "generation_step", "prompt_step", "signal_differences"]
