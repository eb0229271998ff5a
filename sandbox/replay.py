"""Replay: re-moderation of recorded prompts and artifacts, and re-generation, in the sandbox.

``replay(ledger, record_id, data_dir=…, mode=…)`` does, in order:

1. **Gather** (:mod:`sandbox.gather`): the prompts, judged artifacts and generations the target (or,
   with ``chain``, its whole trace) covers, as ``mode`` asks (``remoderate``: prompts and artifacts;
   ``regenerate``: generations; ``both``), and every record they rest on.
2. **Check the evidence before anything runs** (:mod:`sandbox.evidence_check`): every input's inclusion
   proof against the latest signed checkpoint, links' leaf hashes, sealed prompt texts (``ledger.reveal``),
   and every needed artifact's bytes from the evidence store against the SHA-256 its verified record
   holds. Any **error** finding → the replay **refuses**: a ``replay_report`` with ``status: "refused"``
   is appended (the attempt is evidence), :class:`ReplayRefused` is raised, nothing runs.
3. **Run** ``sandbox/worker.py`` once, for every step, through a runner — ``DockerRunner`` on the replay
   image (its ID compared with ``CUSTODY_SANDBOX_IMAGE_DIGEST`` when set) or ``ProcessRunner`` (weaker;
   the report says so). The worker's source goes in as an input (its SHA-256 is in the report); policies
   go in as canonical JSON documents and the worker refuses one whose SHA-256 differs; artifact bytes go
   in as ``blobs/<sha256>``, read-only. No network; the worker writes only to its output folder.
4. **Compare** (:mod:`sandbox.compare`): prompts and artifacts stage by stage against the recorded
   decisions (exact when the recorded policy is in the archive, :mod:`pipeline.policy_archive`; else the
   default policy is substituted, with a ``recorded_policy_unavailable`` warning, and a different
   action is a *difference*, not a disagreement), and today's decision; generations as bit-identical,
   perceptually close (PDQ) or different. Re-generated outputs go to the **quarantine** store
   (``ledger.artifacts.quarantine_for``), content-addressed, and the report names them by SHA-256 only.
5. **Report** (:mod:`sandbox.report`): canonical JSON, signed, appended as a ``replay_report`` linked to
   every input. It holds no prompt text (each prompt's SHA-256 instead) and no output bytes.

A record that does not exist, a target with nothing to replay in the mode asked, or an unknown mode is
an ordinary error (``NotFound`` / ``InvalidInput``) and appends nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.artifacts import artifact_store_for, quarantine_for, ref_for
from ledger.errors import CustodyError, InvalidInput, SubjectErased, VerificationError
from ledger.records import canonical_json
from ledger.service import Ledger, now_rfc3339
from sandbox.compare import artifact_step, generation_step, prompt_step
from sandbox.evidence_check import Finding, check_artifact_bytes, check_records
from sandbox.gather import Scope, gather
from sandbox.report import NOTE_HEADER, REPORT_TYPE, append_report, show, store_report
from sandbox.runner import DockerRunner, Job, Limits, ProcessRunner, RunResult

WORKER_PATH = Path(__file__).with_name("worker.py")
PROJECT_DIR = Path(__file__).resolve().parent.parent
MODES = ("remoderate", "regenerate", "both")
BACKENDS = ("auto", "docker", "process")
# Prompt re-moderation only: policies and the prompt layer. Give it room but not forever.
REPLAY_LIMITS = Limits(memory_mb=512, cpus=1.0, pids=64, timeout_s=60.0)
# With artifacts or generations: NudeNet (onnxruntime, 12 MB model), OpenCV and the decoded images.
# Measured in the image: 209 MB peak RSS analysing a 1024x1024 output with a 768x768 source; the
# pipeline admits images up to 40 MP (120 MB as BGR, several working copies), hence 1 GiB. The
# timeout grows with the number of steps (model load ~0.5 s, ~0.4 s per artifact at 1 MP on one CPU).
ANALYSIS_LIMITS = Limits(memory_mb=1024, cpus=1.0, pids=64, timeout_s=60.0, fsize_mb=64,
                         output_max_bytes=512 << 20)
PER_STEP_S = 8.0
MAX_TIMEOUT_S = 900.0


class ReplayRefused(VerificationError):
    """The evidence did not check out: nothing ran. ``report`` / ``appended`` hold the refusal report."""

    code = "replay_refused"

    def __init__(self, message: str, *, report: dict[str, Any], report_sha256: str, appended: dict[str, Any] | None):
        super().__init__(message)
        self.report = report
        self.report_sha256 = report_sha256
        self.appended = appended


@dataclass(frozen=True)
class Progress:
    """One progress event for ``replay(progress=…)``: a phase, a message, and (for phases that count)
    ``done`` of ``total``; ``step`` carries a finished step's summary (kind, record id, result)."""

    phase: str  # gather | evidence | run | compare | done | refused
    message: str
    done: int = 0
    total: int = 0
    step: dict[str, Any] | None = field(default=None)


# --- policies --------------------------------------------------------------------------------------

def _loadable_policies() -> dict[tuple[str, str], Any]:
    """(policy_id, version) → Policy for every policy version shipped here: the archive
    (``pipeline/policies/archive``, each checked against its recorded SHA-256) and today's default."""
    from pipeline.policy_archive import registry

    return registry().by_key


def _policy_spec(policy: Any) -> dict[str, Any]:
    return {"sha256": policy.sha256, "document": json.loads(policy.canonical_json)}


# --- the runner ------------------------------------------------------------------------------------

def _process_python() -> tuple[str, dict[str, str], list[str]]:
    """An interpreter the sandbox user can run, and the PYTHONPATH that gives it the pipeline."""
    notes = []
    want = os.environ.get("CUSTODY_REPLAY_PYTHON")
    if not want:
        deb = "/usr/bin/python3"
        same = False
        if os.path.exists(deb):
            import subprocess

            try:
                out = subprocess.run([deb, "-c", "import sys;print(sys.version_info[:2])"], capture_output=True,
                                     text=True, timeout=10, check=False).stdout.strip()
                same = out == str(tuple(sys.version_info[:2]))
            except (OSError, subprocess.SubprocessError):
                same = False
        want = deb if same else sys.executable
        if same and os.path.realpath(sys.executable) != deb:
            notes.append(f"process backend runs {deb} (same Python {sys.version_info[0]}.{sys.version_info[1]}) "
                         f"with this environment's packages on PYTHONPATH: the sandbox user cannot run "
                         f"{os.path.realpath(sys.executable)}")
    paths = [str(PROJECT_DIR), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    return want, env, notes


def make_runner(backend: str = "auto", *, image: str | None = None, pinned: str | None = None,
                allow_image_mismatch: bool = False) -> tuple[Any, dict[str, Any]]:
    """The runner for ``backend`` and what the report says about it. ``auto``: Docker if an engine
    answers (and the image exists), else the process backend."""
    from sandbox.errors import EngineUnavailable, ImageNotFound
    from sandbox.image import DEFAULT_TAG, check_pinned, docker_client

    if backend not in BACKENDS:
        raise InvalidInput(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    image = image or os.environ.get("CUSTODY_SANDBOX_IMAGE", DEFAULT_TAG)
    pinned = pinned if pinned is not None else os.environ.get("CUSTODY_SANDBOX_IMAGE_DIGEST")
    info: dict[str, Any] = {"chosen": backend, "notes": []}
    if backend in ("auto", "docker"):
        try:
            client = docker_client(timeout=60)
            pin = check_pinned(client, image, pinned, allow_mismatch=allow_image_mismatch)
            info.update({"backend": "docker", "image": image, "image_id": pin.image_id, "pinned_digest": pin.pinned,
                         "pin_matches": pin.matches, "pin_mismatch_allowed": pin.allowed_mismatch})
            return DockerRunner(pin.image_id, client=client), info
        except (EngineUnavailable, ImageNotFound) as err:
            if backend == "docker":
                raise
            info["notes"].append(f"no usable Docker engine or image ({err}); fell back to the process backend")
    runner = ProcessRunner()
    info.update({"backend": "process", "image": None, "image_id": None, "pinned_digest": None, "pin_matches": None,
                 "pin_mismatch_allowed": False})
    return runner, info


def _job(runner: Any, job_doc: dict[str, Any], blobs: dict[str, bytes], worker_src: bytes,
         limits: Limits) -> tuple[Job, list[str]]:
    launch = "import os,runpy;runpy.run_path(os.path.join(os.environ['CUSTODY_IN'],'worker.py'),run_name='__main__')"
    inputs: dict[str, bytes] = {"job.json": canonical_json(job_doc), "worker.py": worker_src}
    inputs.update({f"blobs/{sha}": data for sha, data in blobs.items()})
    name = f"replay-{job_doc['mode']}"
    if isinstance(runner, ProcessRunner):
        python, env, notes = _process_python()
        return Job([python, "-B", "-c", launch], inputs=inputs, env=env, limits=limits, name=name), notes
    return Job(["python3", "-B", "-c", launch], inputs=inputs, limits=limits, name=name), []


def _limits(n_heavy: int) -> Limits:
    if not n_heavy:
        return REPLAY_LIMITS
    from dataclasses import replace

    return replace(ANALYSIS_LIMITS, timeout_s=min(MAX_TIMEOUT_S, ANALYSIS_LIMITS.timeout_s + PER_STEP_S * n_heavy))


# --- planning what the worker does -----------------------------------------------------------------

def _blob(blobs: dict[str, bytes], data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    blobs[sha] = data
    return f"blobs/{sha}"


def _plan_artifacts(scope: Scope, docs: dict[int, dict[str, Any]], data: dict[int, bytes], reg: Any,
                    specs: dict[str, Any], pol_table: dict[str, Any], findings: list[Finding],
                    blobs: dict[str, bytes]) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    plans: dict[int, dict[str, Any]] = {}
    jobs: list[dict[str, Any]] = []
    for a in scope.artifacts:
        body = docs[a]["body"]
        ds = sorted(scope.artifact_decisions[a],
                    key=lambda d: (docs[d]["body"].get("stage") != "analysis", not isinstance(docs[d]["body"].get("decision"), dict), d))
        d_body = docs[ds[0]]["body"]
        rec = d_body.get("decision") if isinstance(d_body.get("decision"), dict) else None
        rec_sha = ((rec or {}).get("policy") or {}).get("sha256")
        pol = reg.get(d_body.get("policy_id"), d_body.get("policy_version"), rec_sha)
        label = f"recorded:{d_body.get('policy_id')}@{d_body.get('policy_version')}"
        g = scope.art_generation.get(a)
        plan: dict[str, Any] = {"generation": g, "exact": pol is not None, "recorded_label": label if pol else None,
                                "decisions": ds}
        plans[a] = plan
        if pol is not None and label not in specs:
            specs[label] = _policy_spec(pol)
            pol_table[label] = {"policy_id": pol.policy_id, "version": pol.version, "sha256": pol.sha256, "exact": True,
                                "origin": reg.origin.get(pol.sha256), "chosen_because": "the recorded policy is archived here"}
        elif pol is None:
            findings.append(Finding("recorded_policy_unavailable", "warning",
                                    f"artifact {a}: the recorded policy {label[9:]} (sha256 {rec_sha}) is not archived "
                                    f"here: its decision cannot be recomputed exactly; today's policy decides", ds[0]))
        if rec is None:
            plan["a_skip"] = "the recorded decision holds no decision record (an older record): nothing to recompute"
            findings.append(Finding("recorded_decision_not_replayable", "warning",
                                    f"decision {ds[0]} on artifact {a} holds no signals / decision record: stage (a) "
                                    f"cannot run", ds[0]))
        elif pol is None:
            plan["a_skip"] = "the recorded policy is not archived here"
        if a not in data:
            plan["skip"] = "artifact bytes not in the evidence store (see findings)"
            continue
        p = scope.gen_prompt.get(g) if g is not None else None
        srcs = (scope.gen_sources.get(g, []) if g is not None else []) or (scope.prompt_sources.get(p, []) if p is not None else [])
        src = srcs[0] if srcs else None
        plan["source"] = src
        src_spec = None
        if src is not None and src in data:
            src_spec = {"file": _blob(blobs, data[src]), "declared": docs[src]["body"].get("media_type")}
        elif src is not None:
            findings.append(Finding("source_bytes_unavailable", "warning",
                                    f"artifact {a}: its source upload {src}'s bytes are not in the evidence store: "
                                    f"analysed without its source (no source-face signals)", a))
        if rec is not None and isinstance(rec.get("context"), dict):
            ctx, why = rec["context"], "the recorded decision"
        elif src is not None and scope.depicts.get(src):
            ctx, why = {"real_person": True}, f"upload {src} depicts {scope.depicts[src]}"
        else:
            ctx, why = {}, "none recorded"
        plan.update(context=ctx, context_from=why)
        gen_body = docs[g]["body"] if g is not None and g in docs else {}
        surface = (rec or {}).get("surface") or gen_body.get("surface") or "imagine"
        labels = sorted({"current", *([label] if pol else [])})
        jobs.append({"record_id": a, "file": _blob(blobs, data[a]), "declared": body.get("media_type"),
                     "source": src_spec, "surface": surface, "context": ctx,
                     "analysis_label": label if pol else "current", "recorded": rec if pol else None,
                     "recorded_label": label if pol else None, "labels": labels})
    return plans, jobs


def _plan_generations(scope: Scope, docs: dict[int, dict[str, Any]], data: dict[int, bytes], texts: dict[int, str],
                      findings: list[Finding], blobs: dict[str, bytes]) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    plans: dict[int, dict[str, Any]] = {}
    jobs: list[dict[str, Any]] = []
    for g in scope.generations:
        body = docs[g]["body"]
        p = scope.gen_prompt.get(g)
        sources = scope.gen_sources.get(g, [])
        plan: dict[str, Any] = {"prompt": p, "sources": sources}
        plans[g] = plan
        ad = body.get("adapter")
        if not (isinstance(ad, dict) and isinstance(ad.get("name"), str)):
            plan["skip"] = "the generation names no adapter"
            findings.append(Finding("generation_names_no_adapter", "warning",
                                    f"generation {g} names no adapter: cannot re-generate", g))
            continue
        if p is None or p not in texts:
            plan["skip"] = "its prompt text is not available"
            findings.append(Finding("generation_prompt_unavailable", "warning",
                                    f"generation {g}: no prompt text to re-generate from", g))
            continue
        missing = [s for s in sources if s not in data]
        if missing:
            plan["skip"] = f"source asset bytes not in the evidence store: {missing}"
            findings.append(Finding("source_bytes_unavailable", "warning",
                                    f"generation {g}: source asset(s) {missing} not in the evidence store: cannot "
                                    f"re-generate", g))
            continue
        outs = [o for o in scope.gen_outputs.get(g, []) if o in data]
        jobs.append({"record_id": g, "adapter": {"name": ad["name"], "version": ad.get("version")},
                     "prompt": texts[p], "parameters": body.get("parameters") or {}, "seed": body.get("seed"),
                     "sources": [_blob(blobs, data[s]) for s in sources],
                     "compare_with": [{"record_id": o, "file": _blob(blobs, data[o]),
                                       "declared": docs[o]["body"].get("media_type")} for o in outs]})
    return plans, jobs


# --- the replay ------------------------------------------------------------------------------------

def replay(ledger: Ledger, record_id: int, *, data_dir: Path, chain: bool = False, mode: str = "remoderate",
           backend: str = "auto", runner: Any = None, runner_info: dict[str, Any] | None = None,
           image: str | None = None, allow_image_mismatch: bool = False,
           progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Replay ``record_id`` (see the module docstring). Returns ``{"report", "report_sha256", "appended",
    "path"}``; raises :class:`ReplayRefused` (after appending the refusal report) when the evidence fails
    its checks."""
    say = progress or (lambda _: None)
    if mode not in MODES:
        raise InvalidInput(f"unknown replay mode {mode!r}; choose one of {', '.join(MODES)}")
    t_all = time.monotonic()
    timings: dict[str, float] = {}
    started = now_rfc3339()
    findings: list[Finding] = []

    t0 = time.monotonic()
    scope = gather(ledger, record_id, chain=chain, mode=mode)
    total = scope.step_count()
    say(Progress("gather", f"{len(scope.prompts)} prompt(s), {len(scope.artifacts)} artifact(s), "
                           f"{len(scope.generations)} generation(s); {len(scope.roles)} input record(s)", 0, total))
    cp_info, docs, inputs = check_records(ledger, scope.roles, findings)
    texts: dict[int, str] = {}
    for p in scope.needs_text():
        try:
            sealed = ledger.reveal(p)
        except SubjectErased as err:
            findings.append(Finding("subject_erased", "error", str(err), p))
            continue
        except CustodyError as err:
            findings.append(Finding("sealed_text_unavailable", "error", f"record {p}: {err}", p))
            continue
        if "text" not in sealed:
            findings.append(Finding("sealed_text_missing", "error", f"prompt {p} has no sealed text", p))
            continue
        texts[p] = sealed["text"]["value"]
    wanted = set(scope.artifacts)
    for a in scope.artifacts:
        g = scope.art_generation.get(a)
        if g is not None:
            p = scope.gen_prompt.get(g)
            wanted |= set(scope.gen_sources.get(g, []) or (scope.prompt_sources.get(p, []) if p is not None else []))
    for g in scope.generations:
        wanted |= set(scope.gen_sources.get(g, [])) | set(scope.gen_outputs.get(g, []))
    data = check_artifact_bytes(artifact_store_for(data_dir), docs, sorted(wanted & set(docs)), findings)
    timings["evidence"] = time.monotonic() - t0
    say(Progress("evidence", f"checked {len(inputs)} input record(s) and {len(data)} artifact(s)' bytes", 0, total))
    in_ledger = {row["id"] for row in inputs if row["kind"] is not None}

    report: dict[str, Any] = {
        "report_type": REPORT_TYPE, "mode": mode, "status": "pending", "target": record_id, "chain": chain,
        "ledger_origin": ledger.config.origin, "checkpoint": cp_info, "inputs": inputs,
        "runner": {}, "worker": {}, "policies": {}, "steps": [], "differences": [], "findings": [],
        "started_at": started, "finished_at": None, "timings": {},
        "artifacts_checked": {str(a): {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b), "store": "evidence"}
                              for a, b in sorted(data.items())},
        "notes": ["the report holds no prompt text: each prompt is named by its SHA-256; rule evidence and "
                  "normalised text are dropped",
                  "re-generated outputs are kept in the quarantine store and named here by SHA-256 only; they are "
                  "never published or returned in the clear"],
    }

    def finish(status: str) -> dict[str, Any]:
        report["status"] = status
        report["findings"] = [f.as_dict() for f in findings]
        report["finished_at"] = now_rfc3339()
        timings["total"] = time.monotonic() - t_all
        report["timings"] = {k: round(v, 4) for k, v in timings.items()}
        _raw, sha, note = store_report(data_dir, report, ledger)
        appended = append_report(ledger, report, sha, note, scope.roles, in_ledger)
        ledger.publish(force=True)
        say(Progress("refused" if status == "refused" else "done", f"report {appended['id']}: {status}", total, total))
        return {"report": report, "report_sha256": sha, "appended": appended,
                "path": str(Path(data_dir) / "replays" / f"{sha}.json")}

    if any(f.severity == "error" for f in findings):
        out = finish("refused")
        errs = [f.message for f in findings if f.severity == "error"]
        raise ReplayRefused(f"replay of record {record_id} refused: " + "; ".join(errs), report=out["report"],
                            report_sha256=out["report_sha256"], appended=out["appended"])

    # --- policies: today's, and each recorded one resolved through the archive
    from pipeline.policy_archive import registry

    reg = registry()
    for c in reg.conflicts:
        findings.append(Finding("policy_version_conflict", "warning", c))
    current = reg.current
    specs: dict[str, Any] = {"current": _policy_spec(current)}
    pol_table = report["policies"]
    pol_table["current"] = {"policy_id": current.policy_id, "version": current.version, "sha256": current.sha256,
                            "chosen_because": "the default policy in force today"}
    recorded_label: dict[int, str] = {}
    for d in sorted({d for ds in scope.prompt_decisions.values() for d in ds}):
        body = docs[d]["body"]
        key = (body.get("policy_id"), body.get("policy_version"))
        label = f"recorded:{key[0]}@{key[1]}"
        recorded_label[d] = label
        if label in pol_table:
            continue
        pol = reg.get(*key)
        if pol is not None:
            exact, why = True, "the recorded policy id and version are archived here"
        else:
            pol, exact = current, False
            why = (f"the recorded policy {key[0]}@{key[1]} (pipeline {body.get('pipeline_version')}) is not loadable "
                   f"here; substituted the default policy {current.policy_id}@{current.version}")
            findings.append(Finding("recorded_policy_unavailable", "warning", why, d))
        specs[label] = _policy_spec(pol)
        pol_table[label] = {"policy_id": pol.policy_id, "version": pol.version, "sha256": pol.sha256, "exact": exact,
                            "origin": reg.origin.get(pol.sha256) if exact else None,
                            "recorded_policy_id": key[0], "recorded_policy_version": key[1],
                            "recorded_pipeline_version": body.get("pipeline_version"), "chosen_because": why}
    blobs: dict[str, bytes] = {}
    a_plans, a_jobs = _plan_artifacts(scope, docs, data, reg, specs, pol_table, findings, blobs)
    g_plans, g_jobs = _plan_generations(scope, docs, data, texts, findings, blobs)
    job_doc = {"mode": mode, "policies": specs, "artifacts": a_jobs, "generations": g_jobs,
               "prompts": [{"record_id": p, "surface": docs[p]["body"].get("surface"), "text": texts[p],
                            "history": [{"record_id": h, "surface": docs[h]["body"].get("surface"), "text": texts[h]}
                                        for h in scope.session_history.get(p, [])]}
                           for p in scope.prompts]}

    result: dict[str, Any] = {"results": [], "artifacts": [], "generations": []}
    outputs: dict[str, bytes] = {}
    if scope.prompts or a_jobs or g_jobs:
        t0 = time.monotonic()
        if runner is None:
            runner, runner_info = make_runner(backend, image=image, allow_image_mismatch=allow_image_mismatch)
        runner_info = dict(runner_info or {"backend": getattr(runner, "backend", "?")})
        timings["runner_setup"] = time.monotonic() - t0
        worker_src = WORKER_PATH.read_bytes()
        job, notes = _job(runner, job_doc, blobs, worker_src, _limits(len(a_jobs) + len(g_jobs)))
        runner_info.setdefault("notes", []).extend(notes)
        say(Progress("run", f"running the worker on the {runner_info.get('backend')} backend "
                            f"({len(scope.prompts)} prompt(s), {len(a_jobs)} artifact(s), {len(g_jobs)} generation(s))",
                     0, total))
        t0 = time.monotonic()
        res: RunResult = runner.run(job)
        timings["run"] = time.monotonic() - t0
        report["runner"] = {**runner_info, "isolation": res.isolation,
                            "image_id": res.image_id or runner_info.get("image_id"), "limits": res.limits,
                            "exit_code": res.exit_code, "killed_by_timeout": res.killed_by_timeout,
                            "oom_killed": res.oom_killed, "wall_s": res.wall_s, "timings": res.timings,
                            "result_notes": res.notes}
        if res.isolation.get("weaker"):
            findings.append(Finding("weaker_isolation", "info", "ran on the process backend (namespaces, no "
                                    "container): weaker isolation than the Docker backend"))
        report["worker"] = {"sha256": hashlib.sha256(worker_src).hexdigest(), "path": "sandbox/worker.py"}
        parsed = None
        if res.ok and "result.json" in res.outputs:
            try:
                parsed = json.loads(res.outputs["result.json"])
            except ValueError:
                parsed = None
        if parsed is None or "results" not in parsed:
            why = (parsed or {}).get("fatal") or res.stderr[-2000:].decode("utf-8", "replace")
            findings.append(Finding("worker_failed", "error",
                                    f"the worker failed (exit {res.exit_code}, timeout {res.killed_by_timeout}, "
                                    f"oom {res.oom_killed}): {why}"))
            return finish("failed")
        result, outputs = parsed, res.outputs
        report["worker"].update({"version": result.get("worker"), "stage_version": result.get("stage_version"),
                                 "python": result.get("python"), "policies_loaded": result.get("policies")})
    else:
        report["notes"].append("nothing in scope could be replayed (see findings): the sandbox did not run")

    # --- compare, step by step
    t0 = time.monotonic()
    steps: list[dict[str, Any]] = []
    by_label = {(r["record_id"], r["label"]): r for r in result.get("results", [])}
    for p in scope.prompts:
        text = texts[p]
        steps.append(prompt_step(p, body=docs[p]["body"],
                                 text_sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
                                 decisions=[(d, docs[d]["body"]) for d in scope.prompt_decisions[p]],
                                 by_label=by_label, policies=pol_table, current_label="current",
                                 recorded_label=recorded_label, findings=findings, differences=report["differences"]))
        say(Progress("compare", f"prompt {p}", len(steps), total, _brief(steps[-1])))
    a_res = {r["record_id"]: r for r in result.get("artifacts", [])}
    for a in scope.artifacts:
        steps.append(artifact_step(a, body=docs[a]["body"],
                                   decisions=[(d, docs[d]["body"]) for d in a_plans[a]["decisions"]],
                                   result=a_res.get(a), plan=a_plans[a], findings=findings,
                                   differences=report["differences"]))
        say(Progress("compare", f"artifact {a}", len(steps), total, _brief(steps[-1])))
    g_res = {r["record_id"]: r for r in result.get("generations", [])}
    quarantine = quarantine_for(data_dir)
    for g in scope.generations:
        r = g_res.get(g)
        ref = None
        if r and r.get("output"):
            got = outputs.get(r["output"].get("file", ""))
            if got is None:
                r = {**r, "output": None, "error": {"type": "MissingOutput", "message": "the worker named an output "
                                                    "file it did not write"}}
            else:
                sha = hashlib.sha256(got).hexdigest()  # the host's hash, never the worker's word
                if sha != r["output"]["sha256"]:
                    findings.append(Finding("worker_output_hash_mismatch", "error",
                                            f"generation {g}: the worker said {r['output']['sha256']}, its output "
                                            f"hashes to {sha}", g))
                    r["output"]["sha256"] = sha
                ref = ref_for(quarantine.put(got))
        steps.append(generation_step(g, body=docs[g]["body"], plan=g_plans[g], result=r, quarantine_ref=ref,
                                     findings=findings))
        say(Progress("compare", f"generation {g}", len(steps), total, _brief(steps[-1])))
    outputs.clear()
    report["steps"] = steps
    timings["compare"] = time.monotonic() - t0
    if not (scope.prompts or a_jobs or g_jobs):
        return finish("not_replayable")
    return finish("completed" if not any(f.severity == "error" for f in findings) else "completed_with_findings")


def _brief(step: dict[str, Any]) -> dict[str, Any]:
    """What a progress bar / result table shows for a finished step."""
    kind = step["step"]
    if kind == "prompt":
        rec = ", ".join(str(r["action"]) for r in step["recorded"]) or "—"
        return {"kind": kind, "record_id": step["record_id"], "recorded": rec, "replayed": step["today"].get("action"),
                "result": "today " + str(step["today"].get("action"))}
    if kind == "artifact":
        if step["status"] != "replayed":
            return {"kind": kind, "record_id": step["record_id"], "recorded": step["recorded"]["action"],
                    "replayed": None, "result": f"{step['status']}: {step.get('skipped_because', '')}".strip(": ")}
        a = step.get("a_recorded_signals", {})
        agree = a.get("agrees_with_record")
        return {"kind": kind, "record_id": step["record_id"], "recorded": step["recorded"]["action"],
                "replayed": (step.get("c_today") or {}).get("action"),
                "result": ("recomputed identical" if agree else "recompute DISAGREES" if agree is False else
                           "not recomputed") + f"; today {(step.get('c_today') or {}).get('action')}"}
    return {"kind": kind, "record_id": step["record_id"], "recorded": (step.get("recorded_output_sha256") or "—")[:12],
            "replayed": (step.get("output_sha256") or "—")[:12],
            "result": step["result"] + (f" (PDQ {step['pdq']['distance']})" if step.get("pdq", {}).get("distance") is not None
                                        and step["result"] != "bit_identical" else "")}


__all__ = ["ANALYSIS_LIMITS", "BACKENDS", "MODES", "NOTE_HEADER", "REPLAY_LIMITS", "REPORT_TYPE", "Finding",
           "Progress", "ReplayRefused", "make_runner", "replay", "show"]
