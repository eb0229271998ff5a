"""Replay mode 1: re-moderation of recorded prompts, in the sandbox, from ledger entries.

``replay(ledger, record_id, data_dir=…)`` does, in order:

1. **Gather.** The target must be a ``prompt`` (or, with ``chain=True``, any record: every prompt in
   its ``trace``). For each prompt, the recorded decisions are the ``safety_decision`` records linked
   to the prompt itself, to a ``generation`` that links to the prompt, or to an ``artifact`` of such a
   generation; those records (and the generation / artifact between) are inputs too.
2. **Check the evidence before anything runs.** The latest checkpoint is opened with the ledger's
   verifiers (``open_note``) and its origin compared with the ledger's; every input's *stored bytes*
   are hashed and ``merkle.verify_inclusion`` is run against that checkpoint's root; each link between
   inputs must carry the verified leaf hash of its target. The prompt text comes from
   ``ledger.reveal`` (sealed). A failed proof, a record the checkpoint does not cover, a link whose
   leaf hash differs, an erased subject or a missing sealed text is a **finding of severity
   "error"**, and the replay **refuses**: nothing runs.
3. **Run** ``sandbox/worker.py`` through a runner — ``DockerRunner`` on the replay image (its ID is
   compared with ``CUSTODY_SANDBOX_IMAGE_DIGEST`` when that is set) or ``ProcessRunner`` (weaker; the
   report says so) — once per prompt and policy. The worker's source goes in as an input (its SHA-256
   is in the report), so the code that ran is the code named, whatever the image was built from; the
   pipeline library it imports is the image's (its ``stage_version`` is in the report). Policies go in
   as their canonical JSON documents and the worker refuses one whose SHA-256 differs.
4. **Compare** per prompt: the recorded decision(s), the replay at the recorded policy, and the replay
   at today's policy. *Policy choice:* a recorded ``(policy_id, policy_version)`` is replayed exactly
   only when a loadable policy has that id and version — today that is only the shipped default
   policy. Otherwise (the sample incident's ``content-safety@2025-11`` decided by
   ``legacy-filter-3``) the default policy is substituted, a ``recorded_policy_unavailable`` finding
   (warning) says so, and the recorded-vs-replayed comparison is reported as a *difference*, not as a
   disagreement. An exact-version replay that disagrees with the record is a
   ``replay_disagrees_with_record`` finding (error). Recorded-vs-today changes are *differences*.
5. **Report.** Canonical JSON (``ledger.records.canonical_json``), stored content-addressed as
   ``<data dir>/replays/<sha256>.json``; a signed note over its SHA-256 by the ledger's key
   (``<sha256>.note`` beside it, and in the record); appended as a ``replay_report`` record linked
   to every input (``replayed`` → prompts, ``recorded_decision`` → safety decisions, ``evidence`` →
   the rest). The report holds no prompt text: only each prompt's SHA-256, the rules that fired and
   the scores (the worker's ``normalised_text`` and rule evidence are dropped on the host).

**Refusals are recorded.** A refused replay appends a ``replay_report`` with ``status: "refused"``
and its findings (the attempt is itself evidence) and raises :class:`ReplayRefused` carrying it.
Nothing else is appended and nothing runs. A record that does not exist, or a non-prompt target
without ``chain``, is an ordinary error (``NotFound`` / ``InvalidInput``) and appends nothing.

``show(ledger, report_id, data_dir=…)`` loads a ``replay_report`` back and checks the record's
inclusion, the file's SHA-256 against the record and the note's signature and text.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.errors import CustodyError, InvalidInput, NotFound, SubjectErased, VerificationError
from ledger.keys import open_note, sign_note
from ledger.records import Kind, canonical_json, parse_json
from ledger.service import LEDGER_PRODUCER, Ledger, now_rfc3339
from sandbox.runner import DockerRunner, Job, Limits, ProcessRunner, RunResult

REPORT_TYPE = "custody.replay-report/v1"
NOTE_HEADER = "custody.replay-report/v1"  # first line of the signed note: never a checkpoint origin
WORKER_PATH = Path(__file__).with_name("worker.py")
PROJECT_DIR = Path(__file__).resolve().parent.parent
MODES = ("remoderate",)
BACKENDS = ("auto", "docker", "process")
# The worker loads each policy it is given and runs the layer; give it room but not forever.
REPLAY_LIMITS = Limits(memory_mb=512, cpus=1.0, pids=64, timeout_s=60.0)


class ReplayRefused(VerificationError):
    """The evidence did not check out: nothing ran. ``report`` / ``appended`` hold the refusal report."""

    code = "replay_refused"

    def __init__(self, message: str, *, report: dict[str, Any], report_sha256: str, appended: dict[str, Any] | None):
        super().__init__(message)
        self.report = report
        self.report_sha256 = report_sha256
        self.appended = appended


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # "error" (stops or invalidates the replay), "warning", "info"
    message: str
    record_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- gathering and checking the evidence ---------------------------------------------------------

def _prompts_and_inputs(ledger: Ledger, record_id: int, chain: bool) -> tuple[list[int], dict[int, str], dict[int, list[int]]]:
    """(prompt ids, input id → role, prompt id → its recorded safety_decision ids)."""
    target = ledger.get(record_id)["record"]
    if not chain and target["kind"] != Kind.PROMPT.value:
        raise InvalidInput(f"record {record_id} is a {target['kind']!r}, not a prompt: replay its chain "
                           f"with --chain, or name a prompt")
    t = ledger.trace(record_id)
    kind = {i: n["kind"] for i, n in t.nodes.items()}
    prompts = sorted(i for i, k in kind.items() if k == Kind.PROMPT.value) if chain else [record_id]
    if not prompts:
        raise InvalidInput(f"record {record_id}'s chain holds no prompt to re-moderate")
    if t.truncated and chain:
        raise InvalidInput(f"record {record_id}'s chain is larger than the trace limit; replay a smaller part")
    edges = t.edges
    roles: dict[int, str] = {}
    decisions: dict[int, list[int]] = {}
    for p in prompts:
        roles[p] = "prompt"
        reach = {p}
        gens = {e["src"] for e in edges if e["dst"] == p and kind.get(e["src"]) == Kind.GENERATION.value}
        arts = {e["src"] for e in edges if e["dst"] in gens and kind.get(e["src"]) == Kind.ARTIFACT.value}
        reach |= gens | arts
        ds = sorted({e["src"] for e in edges if e["dst"] in reach and kind.get(e["src"]) == Kind.SAFETY_DECISION.value})
        decisions[p] = ds
        # the generation / artifact between a decision and the prompt is evidence of the linkage
        for d in ds:
            roles.setdefault(d, "recorded_decision")
            for e in edges:
                if e["src"] == d and e["dst"] in reach and e["dst"] != p:
                    roles.setdefault(e["dst"], "evidence")
                    for x in edges:  # an artifact's generation
                        if x["src"] == e["dst"] and x["dst"] in gens:
                            roles.setdefault(x["dst"], "evidence")
    return prompts, roles, decisions


def _check_evidence(ledger: Ledger, roles: dict[int, str], findings: list[Finding]) -> tuple[dict[str, Any], dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """Checkpoint (opened), per-input leaf documents, and the inputs' entries for the report."""
    cp = ledger.latest_checkpoint()
    if cp is None:
        raise NotFound("no checkpoint has been published yet (run `custody checkpoint`)")
    cp_info: dict[str, Any] = {"id": cp.id, "size": cp.size, "root_hex": cp.root.hex(),
                               "note_sha256": hashlib.sha256(cp.note.encode()).hexdigest(), "verified_by": []}
    root = None
    try:
        opened = open_note(cp.note, ledger.keyring.verifiers)
        parsed = Checkpoint.parse(opened.text)
        if parsed.origin != ledger.config.origin:
            raise VerificationError(f"checkpoint origin {parsed.origin!r} is not this ledger's {ledger.config.origin!r}")
        if parsed.size != cp.size or parsed.root != cp.root:
            raise VerificationError("the signed checkpoint text does not match the stored size / root")
        cp_info["verified_by"] = [f"{n}+{k}" for n, k in opened.verified]
        root = parsed.root
    except CustodyError as err:
        findings.append(Finding("checkpoint_unverified", "error", f"checkpoint {cp.id}: {err}"))
    docs: dict[int, dict[str, Any]] = {}
    leaves: dict[int, str] = {}
    inputs = []
    for idx in sorted(roles):
        row: dict[str, Any] = {"id": idx, "role": roles[idx], "kind": None, "leaf_hash": None, "inclusion": "not checked"}
        with ledger.store.read() as r:
            e = r.entry(idx)
        if e is None:
            findings.append(Finding("missing_record", "error", f"record {idx} is not in the ledger", idx))
            row["inclusion"] = "missing"
            inputs.append(row)
            continue
        leaf = merkle.leaf_hash(e.data)
        row["kind"], row["leaf_hash"] = e.kind, leaf.hex()
        if idx >= cp.size:
            findings.append(Finding("not_covered_by_checkpoint", "error",
                                    f"record {idx} is not covered by checkpoint {cp.id} (size {cp.size}); "
                                    f"publish a checkpoint first", idx))
            row["inclusion"] = "not covered"
        elif root is not None:
            try:
                p = ledger.prove_inclusion(idx, cp.size)
                merkle.verify_inclusion(leaf, idx, cp.size, [bytes.fromhex(h) for h in p["proof"]], root)
                row["inclusion"] = "verified"
            except CustodyError as err:
                findings.append(Finding("inclusion_proof_failed", "error",
                                        f"record {idx}: its stored bytes are not the leaf the signed checkpoint "
                                        f"covers ({err}); the evidence may have been tampered with", idx))
                row["inclusion"] = "failed"
        try:
            docs[idx] = parse_json(e.data, what=f"record {idx}")
            if row["inclusion"] == "verified":
                leaves[idx] = leaf.hex()
        except CustodyError as err:
            findings.append(Finding("unparseable_record", "error", f"record {idx}: {err}", idx))
        inputs.append(row)
    # Links between inputs must carry the verified leaf hash of their target.
    for idx, doc in docs.items():
        for ln in doc.get("links", []):
            dst = ln.get("id")
            if dst in leaves and ln.get("leaf") != leaves[dst]:
                findings.append(Finding("link_leaf_mismatch", "error",
                                        f"record {idx}'s link {ln.get('rel')!r} to {dst} names leaf {ln.get('leaf')}, "
                                        f"not {dst}'s verified leaf {leaves[dst]}", idx))
    return cp_info, docs, inputs


# --- policies --------------------------------------------------------------------------------------

def _loadable_policies() -> dict[tuple[str, str], Any]:
    """(policy_id, version) → Policy for every policy this installation can load: today only the
    shipped default. (A registry of archived policy versions is what would make old decisions
    replayable exactly.)"""
    from pipeline.policy import default_policy

    p = default_policy()
    return {(p.policy_id, p.version): p}


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


def _job(runner: Any, job_doc: dict[str, Any], worker_src: bytes) -> tuple[Job, list[str]]:
    launch = "import os,runpy;runpy.run_path(os.path.join(os.environ['CUSTODY_IN'],'worker.py'),run_name='__main__')"
    inputs = {"job.json": canonical_json(job_doc), "worker.py": worker_src}
    if isinstance(runner, ProcessRunner):
        python, env, notes = _process_python()
        return Job([python, "-B", "-c", launch], inputs=inputs, env=env, limits=REPLAY_LIMITS, name="replay-remoderate"), notes
    return Job(["python3", "-B", "-c", launch], inputs=inputs, limits=REPLAY_LIMITS, name="replay-remoderate"), []


# --- comparing -------------------------------------------------------------------------------------

def _summary(decision: dict[str, Any] | None, error: dict[str, Any] | None, label: str) -> dict[str, Any]:
    if decision is None:
        return {"policy": label, "action": None, "error": error}
    return {"policy": label, "action": decision["action"], "escalate": decision["escalate"],
            "policy_id": decision["policy_id"], "policy_version": decision["policy_version"],
            "policy_sha256": decision["policy_sha256"], "stage_version": decision["stage_version"],
            "prompt_sha256": decision["prompt_sha256"], "prompt_chars": decision["prompt_chars"],
            "flagged": sorted(c["category"] for c in decision["categories"] if c["action"] != "allow"),
            "risk": {c["category"]: c["risk"] for c in decision["categories"] if c["risk"] > 0},
            "matched_rules": [{k: m[k] for k in ("rule_id", "category", "weight", "scope")}
                              for m in decision["matched_rules"]],
            "normalisation_flags": decision["normalisation_flags"], "masks_applied": decision["masks_applied"]}


# --- the replay ------------------------------------------------------------------------------------

def _store_report(data_dir: Path, report: dict[str, Any], ledger: Ledger) -> tuple[bytes, str, str]:
    raw = canonical_json(report)
    sha = hashlib.sha256(raw).hexdigest()
    note = sign_note(f"{NOTE_HEADER}\n{ledger.config.origin}\nsha256:{sha}\n", [ledger.keyring.signer()])
    folder = Path(data_dir) / "replays"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ((f"{sha}.json", raw), (f"{sha}.note", note.encode())):
        path = folder / name
        if not path.exists():
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(content)
            os.replace(tmp, path)
    return raw, sha, note


def _append_report(ledger: Ledger, report: dict[str, Any], sha: str, note: str,
                   roles: dict[int, str], in_ledger: set[int]) -> dict[str, Any]:
    rel = {"prompt": "replayed", "recorded_decision": "recorded_decision", "evidence": "evidence"}
    body = {"report_sha256": sha, "report_type": REPORT_TYPE, "mode": report["mode"], "status": report["status"],
            "target": report["target"], "chain": report["chain"], "backend": report["runner"].get("backend"),
            "isolation_weaker": report["runner"].get("isolation", {}).get("weaker"),
            "image_id": report["runner"].get("image_id"), "checkpoint_size": report["checkpoint"].get("size"),
            "prompts": len(report["steps"]) or len([i for i, r in roles.items() if r == "prompt"]),
            "differences": len(report["differences"]),
            "findings": sorted({f["code"] for f in report["findings"]}),
            "errors": sum(1 for f in report["findings"] if f["severity"] == "error"),
            "signature": note}
    links = [{"rel": rel[roles[i]], "id": i} for i in sorted(roles) if i in in_ledger]
    a = ledger.append([{"kind": Kind.REPLAY_REPORT.value, "producer": LEDGER_PRODUCER, "produced_at": now_rfc3339(),
                        "links": links, "body": body}])[0]
    return a.as_dict()


def replay(ledger: Ledger, record_id: int, *, data_dir: Path, chain: bool = False, mode: str = "remoderate",
           backend: str = "auto", runner: Any = None, runner_info: dict[str, Any] | None = None,
           image: str | None = None, allow_image_mismatch: bool = False,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Re-moderate ``record_id`` (a prompt; with ``chain`` every prompt of its trace). Returns
    ``{"report": …, "report_sha256": …, "appended": {id, leaf_hash, …}, "path": …}``; raises
    :class:`ReplayRefused` (after appending the refusal report) when the evidence fails its checks."""
    say = progress or (lambda _: None)
    if mode not in MODES:
        raise InvalidInput(f"mode {mode!r} is not implemented; available: {', '.join(MODES)}")
    t_all = time.monotonic()
    timings: dict[str, float] = {}
    started = now_rfc3339()
    findings: list[Finding] = []

    t0 = time.monotonic()
    prompts, roles, decisions = _prompts_and_inputs(ledger, record_id, chain)
    say(f"gathered {len(prompts)} prompt(s) and {len(roles) - len(prompts)} related record(s)")
    cp_info, docs, inputs = _check_evidence(ledger, roles, findings)
    texts: dict[int, str] = {}
    for p in prompts:
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
    timings["evidence"] = time.monotonic() - t0
    in_ledger = {row["id"] for row in inputs if row["kind"] is not None}

    report: dict[str, Any] = {
        "report_type": REPORT_TYPE, "mode": mode, "status": "pending", "target": record_id, "chain": chain,
        "ledger_origin": ledger.config.origin, "checkpoint": cp_info, "inputs": inputs,
        "runner": {}, "worker": {}, "policies": {}, "steps": [], "differences": [], "findings": [],
        "started_at": started, "finished_at": None, "timings": {},
        "notes": [("the report holds no prompt text: each prompt is named by its SHA-256; rule evidence and "
                   "normalised text are dropped"),
                  ("recorded decisions in the ledger may judge the generated artifact, not only the prompt; this "
                   "mode re-moderates the prompt text only (artifact re-moderation is not implemented yet)")],
    }

    def finish(status: str) -> dict[str, Any]:
        report["status"] = status
        report["findings"] = [f.as_dict() for f in findings]
        report["finished_at"] = now_rfc3339()
        timings["total"] = time.monotonic() - t_all
        report["timings"] = {k: round(v, 4) for k, v in timings.items()}
        _raw, sha, note = _store_report(data_dir, report, ledger)
        appended = _append_report(ledger, report, sha, note, roles, in_ledger)
        ledger.publish(force=True)
        return {"report": report, "report_sha256": sha, "appended": appended,
                "path": str(Path(data_dir) / "replays" / f"{sha}.json")}

    if any(f.severity == "error" for f in findings):
        say("evidence failed its checks: refusing to replay")
        out = finish("refused")
        errs = [f.message for f in findings if f.severity == "error"]
        raise ReplayRefused(f"replay of record {record_id} refused: " + "; ".join(errs), report=out["report"],
                            report_sha256=out["report_sha256"], appended=out["appended"])

    # --- policies: recorded (resolved) and current
    from pipeline.policy import default_policy

    loadable = _loadable_policies()
    current = default_policy()
    specs = {"current": _policy_spec(current)}
    report["policies"]["current"] = {"policy_id": current.policy_id, "version": current.version,
                                     "sha256": current.sha256, "chosen_because": "the default policy in force today"}
    recorded_label: dict[int, str] = {}  # decision id -> label
    for d in sorted({d for ds in decisions.values() for d in ds}):
        body = docs[d]["body"]
        key = (body.get("policy_id"), body.get("policy_version"))
        label = f"recorded:{key[0]}@{key[1]}"
        recorded_label[d] = label
        if label in report["policies"]:
            continue
        if key in loadable:
            pol, exact = loadable[key], True
            why = "the recorded policy id and version are loadable here"
        else:
            pol, exact = current, False
            why = (f"the recorded policy {key[0]}@{key[1]} (pipeline {body.get('pipeline_version')}) is not loadable "
                   f"here; substituted the default policy {current.policy_id}@{current.version}")
            findings.append(Finding("recorded_policy_unavailable", "warning", why, d))
        specs[label] = _policy_spec(pol)
        report["policies"][label] = {"policy_id": pol.policy_id, "version": pol.version, "sha256": pol.sha256,
                                     "exact": exact, "recorded_policy_id": key[0], "recorded_policy_version": key[1],
                                     "recorded_pipeline_version": body.get("pipeline_version"), "chosen_because": why}

    # --- run
    t0 = time.monotonic()
    if runner is None:
        runner, runner_info = make_runner(backend, image=image, allow_image_mismatch=allow_image_mismatch)
    runner_info = dict(runner_info or {"backend": getattr(runner, "backend", "?")})
    timings["runner_setup"] = time.monotonic() - t0
    worker_src = WORKER_PATH.read_bytes()
    job_doc = {"mode": mode, "policies": specs,
               "prompts": [{"record_id": p, "surface": docs[p]["body"].get("surface"), "text": texts[p]} for p in prompts]}
    job, notes = _job(runner, job_doc, worker_src)
    runner_info.setdefault("notes", []).extend(notes)
    say(f"running the worker on the {runner_info.get('backend')} backend")
    t0 = time.monotonic()
    res: RunResult = runner.run(job)
    timings["run"] = time.monotonic() - t0
    report["runner"] = {**runner_info, "isolation": res.isolation, "image_id": res.image_id or runner_info.get("image_id"),
                        "limits": res.limits, "exit_code": res.exit_code, "killed_by_timeout": res.killed_by_timeout,
                        "oom_killed": res.oom_killed, "wall_s": res.wall_s, "timings": res.timings,
                        "result_notes": res.notes}
    if res.isolation.get("weaker"):
        findings.append(Finding("weaker_isolation", "info", "ran on the process backend (namespaces, no container): "
                                "weaker isolation than the Docker backend"))
    report["worker"] = {"sha256": hashlib.sha256(worker_src).hexdigest(), "path": "sandbox/worker.py"}
    result = None
    if res.ok and "result.json" in res.outputs:
        try:
            result = json.loads(res.outputs["result.json"])
        except ValueError:
            result = None
    if result is None or "results" not in result:
        why = (result or {}).get("fatal") or res.stderr[-2000:].decode("utf-8", "replace")
        findings.append(Finding("worker_failed", "error",
                                f"the worker failed (exit {res.exit_code}, timeout {res.killed_by_timeout}, "
                                f"oom {res.oom_killed}): {why}"))
        return finish("failed")
    report["worker"].update({"version": result.get("worker"), "stage_version": result.get("stage_version"),
                             "python": result.get("python"), "policies_loaded": result.get("policies")})

    # --- compare
    by = {(r["record_id"], r["label"]): r for r in result["results"]}
    for p in prompts:
        today = by.get((p, "current"))
        step: dict[str, Any] = {"record_id": p, "surface": docs[p]["body"].get("surface"),
                                "prompt_sha256": hashlib.sha256(texts[p].encode("utf-8", "surrogatepass")).hexdigest(),
                                "recorded": [], "today": _summary(today and today["decision"], today and today["error"], "current")}
        today_action = step["today"]["action"]
        for d in decisions[p]:
            body = docs[d]["body"]
            label = recorded_label[d]
            at = by.get((p, label))
            at_s = _summary(at and at["decision"], at and at["error"], label)
            exact = report["policies"][label]["exact"]
            on = sorted(f"{ln['rel']}:{ln['id']}" for ln in docs[d].get("links", []))
            rec = {"decision_record": d, "action": body.get("action"), "policy_id": body.get("policy_id"),
                   "policy_version": body.get("policy_version"), "pipeline_version": body.get("pipeline_version"),
                   "risk": body.get("risk"), "links": on, "replayed_at_recorded": at_s, "exact_policy": exact,
                   "agrees_with_record": (at_s["action"] == body.get("action")) if exact else None}
            step["recorded"].append(rec)
            if exact and at_s["action"] != body.get("action"):
                findings.append(Finding("replay_disagrees_with_record", "error",
                                        f"prompt {p}: decision {d} recorded {body.get('action')!r} at "
                                        f"{label[9:]}, the replay at that exact policy gives {at_s['action']!r}", p))
            elif not exact and at_s["action"] != body.get("action"):
                report["differences"].append({
                    "record_id": p, "decision_record": d, "what": "recorded_vs_replayed_substituted_policy",
                    "recorded": body.get("action"), "replayed": at_s["action"],
                    "explanation": f"the recorded decision came from {body.get('pipeline_version')} at "
                                   f"{label[9:]}, which cannot be replayed here; the substituted policy decides "
                                   f"differently (not a disagreement of the same pipeline)"})
            if today_action != body.get("action"):
                report["differences"].append({
                    "record_id": p, "decision_record": d, "what": "recorded_vs_today",
                    "recorded": body.get("action"), "today": today_action,
                    "today_policy": f"{current.policy_id}@{current.version}",
                    "why": {"flagged": step["today"].get("flagged", []),
                            "rules": [m["rule_id"] for m in step["today"].get("matched_rules", [])],
                            "recorded_pipeline": body.get("pipeline_version")}})
        if not decisions[p]:
            step["note"] = "no safety_decision is linked to this prompt or its generations: nothing to compare with"
        report["steps"].append(step)
    say(f"{len(report['steps'])} step(s), {len(report['differences'])} difference(s)")
    status = "completed" if not any(f.severity == "error" for f in findings) else "completed_with_findings"
    return finish(status)


# --- show ------------------------------------------------------------------------------------------

def show(ledger: Ledger, report_id: int, *, data_dir: Path) -> dict[str, Any]:
    """Load replay report ``report_id`` and check it: the record's inclusion in the latest checkpoint,
    the stored file's SHA-256 against the record's ``report_sha256`` and the signed note (the ledger's
    verifiers; its text must name that SHA-256). Raises VerificationError if any check fails."""
    got = ledger.get(report_id, proof=True)
    rec = got["record"]
    if rec["kind"] != Kind.REPLAY_REPORT.value:
        raise InvalidInput(f"record {report_id} is a {rec['kind']!r}, not a replay_report")
    checks: dict[str, Any] = {}
    inc = got["inclusion"]
    cp_note = inc.get("checkpoint")
    if cp_note is None:
        raise VerificationError(f"no signed checkpoint covers record {report_id}")
    cp = Checkpoint.parse(open_note(cp_note, ledger.keyring.verifiers).text)
    merkle.verify_inclusion(bytes.fromhex(got["leaf_hash"]), report_id, cp.size, [bytes.fromhex(h) for h in inc["proof"]], cp.root)
    with ledger.store.read() as r:
        data = r.entry(report_id).data
    if merkle.leaf_hash(data).hex() != got["leaf_hash"]:
        raise VerificationError(f"record {report_id}'s stored bytes are not its leaf")
    checks["inclusion"] = f"verified against checkpoint size {cp.size}"
    sha = rec["body"]["report_sha256"]
    path = Path(data_dir) / "replays" / f"{sha}.json"
    if not path.exists():
        raise NotFound(f"the report file {path} is missing")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != sha:
        raise VerificationError(f"{path} does not hash to the recorded {sha}: the report file was altered")
    checks["sha256"] = "matches the record"
    note = rec["body"].get("signature")
    if not note:
        note_path = path.with_suffix(".note")
        note = note_path.read_text() if note_path.exists() else None
    if not note:
        raise VerificationError(f"replay report {report_id} carries no signature")
    opened = open_note(note, ledger.keyring.verifiers)
    if opened.text != f"{NOTE_HEADER}\n{ledger.config.origin}\nsha256:{sha}\n":
        raise VerificationError("the signature's text does not name this report")
    checks["signature"] = "verified by " + ", ".join(f"{n}+{k}" for n, k in opened.verified)
    report = parse_json(raw, what=str(path))
    return {"id": report_id, "report_sha256": sha, "path": str(path), "checks": checks, "report": report}


__all__ = ["BACKENDS", "MODES", "REPORT_TYPE", "Finding", "ReplayRefused", "make_runner", "replay", "show"]
