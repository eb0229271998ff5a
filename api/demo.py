"""``custody demo``: the main job on embedded defaults, end to end, as the three kinds of users see it.

1. **The platform** (the legacy one of the postmortem) records an incident: accounts, the victim's
   photo, a policy, model versions, benign and abusive requests — obfuscated, multi-turn, edits of
   the uploaded photo of a real person — with real generations (reference adapters), artifacts in
   the evidence store, its (weak) safety decisions, publish, report, review and takedown
   (:mod:`api.incident`). A signed checkpoint covers it.
2. **The investigator** traces the abuse chain from the published image, proves its record is in
   the log with the pure verifier (trusting only the verifier key), and replays the chain in the
   sandbox (Docker if an engine answers and the image is built, else the process backend): every
   prompt re-moderated at the recorded policy and at today's, every generation re-generated and
   compared, every artifact re-analysed. The signed report is appended to the ledger.
3. **Legal** exports the case (the chain and the replay report) as an evidence bundle and verifies
   it offline; a full ledger verify closes.

Everything lands in the data folder; the summary names the bundle and the report.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.composition import init_ledger
from api.incident import simulate_incident
from api.settings import Settings
from ledger import merkle
from ledger.artifacts import artifact_store_for
from ledger.checkpoint import Checkpoint
from ledger.evidence import record_export, verify_bundle
from ledger.keys import open_note
from ledger.records import Kind
from ledger.verify import verify_ledger

INCIDENT_STEPS = 7


def _bar(console: Console | None) -> Progress:
    return Progress(TextColumn("   {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=console is None, transient=True)


def _replay(ledger: Any, settings: Settings, target: int, backend: str,
            console: Console | None) -> dict[str, Any] | None:
    """The chain replay, or None when this machine has no sandbox at all (no Docker engine answers and
    neither bubblewrap nor unshare can isolate): the demo then says so and goes on to legal's part."""
    from sandbox.errors import EngineUnavailable
    from sandbox.replay import ReplayRefused, replay

    with _bar(console) as bar:
        task = bar.add_task("replaying the chain", total=None)

        def progress(ev: Any) -> None:
            total = getattr(ev, "total", 0) or None
            bar.update(task, total=total, completed=getattr(ev, "done", 0),
                       description=f"replay: {getattr(ev, 'message', ev)}"[:90])

        try:
            return replay(ledger, target, data_dir=settings.data_dir, chain=True, mode="both", backend=backend,
                          progress=progress)
        except ReplayRefused as err:  # the refusal report is appended: show it rather than crash
            return {"report": err.report, "report_sha256": err.report_sha256, "appended": err.appended,
                    "path": str(settings.data_dir / "replays" / f"{err.report_sha256}.json")}
        except EngineUnavailable as err:
            if console:
                console.print(f"   [yellow]replay skipped[/]: {err} (install docker.io, or bubblewrap for the "
                              f"process sandbox)")
            return None


def _replay_summary(report: dict[str, Any]) -> dict[str, Any]:
    steps = report.get("steps", [])
    kinds = Counter(s.get("step", "prompt") for s in steps)
    regen = Counter(s.get("result") for s in steps if s.get("step") == "generation")
    today = Counter((s.get("today") or {}).get("action") for s in steps if s.get("step") == "prompt")
    changed = [d for d in report.get("differences", []) if d.get("what") == "recorded_vs_today"]
    return {"status": report.get("status"), "steps": dict(kinds), "regeneration": dict(regen),
            "prompts_today": dict(today),
            "recorded_allow_today_not": sum(1 for d in changed if d.get("recorded") == "allow"
                                            and d.get("today") not in (None, "allow")),
            "differences": len(report.get("differences", [])),
            "findings": sorted({f["code"] for f in report.get("findings", [])}),
            "backend": report.get("runner", {}).get("backend"),
            "weaker_isolation": bool(report.get("runner", {}).get("isolation", {}).get("weaker"))}


def _say_replay(say: Any, summary: dict[str, Any], out: dict[str, Any], rid: int | None) -> None:
    say(f"   replay ({summary['backend']} backend{', weaker isolation' if summary['weaker_isolation'] else ''}): "
        f"{summary['status']}; steps {summary['steps']}")
    if summary["regeneration"]:
        say(f"   re-generation from the recorded adapter, parameters and seed: {summary['regeneration']} "
            f"(outputs in the quarantine store, named by hash)")
    say(f"   today's pipeline on the recorded prompts: {summary['prompts_today']}")
    say(f"   {summary['recorded_allow_today_not']} request(s) the platform allowed are stopped by today's pipeline; "
        f"{summary['differences']} difference(s) in all; findings: {', '.join(summary['findings']) or 'none'}")
    say(f"   signed report appended as record {rid}: {out['path']}")


def run_demo(settings: Settings, console: Console | None = None, backend: str = "auto") -> dict[str, Any]:
    say = console.print if console else (lambda *a, **k: None)
    ledger = init_ledger(settings)
    artifacts = artifact_store_for(settings.data_dir)
    say(f"[bold]Custody demo[/] — ledger [cyan]{ledger.config.origin}[/] in {settings.data_dir} "
        f"(SQLite WAL synchronous=FULL, evidence store {settings.data_dir / 'artifacts'})\n")

    # --- 1. the platform records the incident
    say("[bold]1. The platform[/] (the postmortem's legacy service: a keyword filter on chat only) records an incident")
    with _bar(console) as bar:
        task = bar.add_task("recording", total=INCIDENT_STEPS)
        notes: list[str] = []

        def step(msg: str) -> None:
            notes.append(msg)
            bar.update(task, advance=1, description=msg[:70])

        inc = simulate_incident(ledger, artifacts, step)
    for n in notes:
        say(f"   · {n}")
    cp = ledger.latest_checkpoint()
    assert cp is not None
    say(f"   {inc.records} records, {inc.generations} real generations; signed checkpoint at size {cp.size}:")
    say("\n".join("     " + ln for ln in cp.note.rstrip().splitlines()))

    # --- 2. the investigator
    target = inc.published_abuse
    say(f"\n[bold]2. The investigator[/] starts from the published image (artifact record {target})")
    p = ledger.prove_inclusion(target)
    opened = open_note(p["checkpoint"], [ledger.keyring.active])  # trust only the verifier key
    signed = Checkpoint.parse(opened.text)
    merkle.verify_inclusion(bytes.fromhex(p["leaf_hash"]), p["index"], signed.size,
                            [bytes.fromhex(h) for h in p["proof"]], signed.root)
    say(f"   its record is in the signed tree of size {signed.size} ({len(p['proof'])}-hash inclusion proof: PASS)")
    t = ledger.trace(target)
    kinds = Counter(n["kind"] for n in t.nodes.values())
    say(f"   trace: {len(t.nodes)} connected records, {len(t.edges)} links — "
        + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    table = Table(title="who prompted what, with which model, and what the platform's safety check decided",
                  show_lines=False, title_justify="left")
    for col in ("prompt", "surface", "session/turn", "who", "model", "legacy decision"):
        table.add_column(col)
    by_kind = {i: n for i, n in t.nodes.items()}
    for i in sorted(by_kind):
        if by_kind[i]["kind"] != Kind.PROMPT.value:
            continue
        rec = ledger.get(i)["record"]
        b = rec["body"]
        who = next((ln["id"] for ln in rec["links"] if ln["rel"] == "principal"), None)
        gens = [e["src"] for e in t.edges if e["dst"] == i and by_kind.get(e["src"], {}).get("kind") == Kind.GENERATION.value]
        model = "—"
        if gens:
            g = ledger.get(gens[0])["record"]["body"]
            model = f"{g['adapter']['name']}@{g['adapter']['version']}" if "adapter" in g else "?"
        decs = [ledger.get(e["src"])["record"]["body"] for e in t.edges
                if e["dst"] == i and by_kind.get(e["src"], {}).get("kind") == Kind.SAFETY_DECISION.value]
        table.add_row(str(i), b["surface"], f"{b.get('session')}/{b.get('turn')}",
                      ledger.get(who)["record"]["body"]["pseudonym"] if who is not None else "?", model,
                      ", ".join(d["action"] for d in decs) or "—")
    if console:
        console.print(table)
    out = _replay(ledger, settings, target, backend, console)
    summary = _replay_summary(out["report"]) if out else {"status": "skipped: no sandbox on this machine"}
    rid = out["appended"]["id"] if out and out.get("appended") else None
    if out:
        _say_replay(say, summary, out, rid)

    # --- 3. legal
    case = sorted(set(t.nodes) | ({rid} if rid is not None else set()))
    bundle, receipt = record_export(ledger, "case-demo", case, actor="legal-demo", role="legal",
                                    purpose="evidence for the victim's complaint", data_dir=settings.data_dir)
    bundle_path = settings.data_dir / "case-demo-bundle.zip"
    bundle_path.write_bytes(bundle.data)
    checked = verify_bundle(bundle.data, [ledger.keyring.active.vkey])
    n_checks = len(checked.as_dict().get("checks", []))
    say(f"\n[bold]3. Legal[/] exports case-demo ({len(bundle.record_ids)} records, artifacts and the replay report): "
        f"{bundle_path}")
    say("   offline verify: " + ("[green]PASS[/]" if checked.ok else "[red]FAIL[/]")
        + f" ({n_checks} checks); the export is access record {receipt.id}")
    report = verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin)
    say("   full ledger verify: " + ("[green]PASS[/]" if report.ok else "[red]FAIL[/]")
        + f" ({report.entries_checked} entries, {report.checkpoints_checked} checkpoints)")
    for prob in report.problems:
        say(f"   [red]{prob.what}[/]: {prob.message}")
    say(f"\nverifier key (all an outsider needs): {ledger.keyring.active.vkey}\n"
        f"try: custody verify-bundle {bundle_path} --key '{ledger.keyring.active.vkey}'\n"
        f"     custody replay show {rid} --data-dir {settings.data_dir}\n"
        f"     custody trace {target} --data-dir {settings.data_dir}")
    return {"bundle": {"path": str(bundle_path), "sha256": bundle.sha256, "ok": checked.ok},
            "replay": {"record": rid, "path": out and out["path"], "sha256": out and out["report_sha256"], **summary},
            "incident": inc.as_dict(), "origin": ledger.config.origin, "data_dir": str(settings.data_dir),
            "checkpoint": cp.as_dict(), "inclusion": p, "trace": t.as_dict(), "verify": report.as_dict(),
            "vkey": ledger.keyring.active.vkey}
