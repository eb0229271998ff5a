"""The `custody` command line. Commands are thin: they call the same service objects as the API.

Errors are mapped to messages and exit codes in exactly one place, ``main``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.composition import init_ledger, open_ledger
from api.settings import Settings
from ledger.errors import CustodyError, InvalidInput
from pipeline.errors import PipelineError
from sandbox.errors import SandboxError
from ledger.service import Ledger
from ledger.verify import verify_ledger

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Custody: a forensic provenance ledger for generative-AI platforms.")
prove_app = typer.Typer(no_args_is_help=True, help="Inclusion and consistency proofs.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
pipeline_app = typer.Typer(no_args_is_help=True, help="The safety pipeline.")
policy_app = typer.Typer(no_args_is_help=True, help="Content policy documents.")
sandbox_app = typer.Typer(no_args_is_help=True, help="The replay sandbox's container image.")
hold_app = typer.Typer(no_args_is_help=True, help="Legal holds on a subject.")
review_app = typer.Typer(no_args_is_help=True, help="The human review queue and the SLA report.")
app.add_typer(prove_app, name="prove")
app.add_typer(hold_app, name="hold")
app.add_typer(review_app, name="review")
app.add_typer(token_app, name="token")
app.add_typer(pipeline_app, name="pipeline")
pipeline_app.add_typer(policy_app, name="policy")
app.add_typer(sandbox_app, name="sandbox")
out = Console(soft_wrap=True)
err_console = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Ledger folder (env CUSTODY_DATA_DIR; default ./custody-data).")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _settings(data_dir: Path | None) -> Settings:
    return Settings.from_env(data_dir)


def _ledger(data_dir: Path | None) -> Ledger:
    return open_ledger(_settings(data_dir))


def _emit(obj: Any, as_json: bool, human: str | None = None) -> None:
    if as_json or human is None:
        print(json.dumps(obj, indent=2, ensure_ascii=False))
    else:
        out.print(human, highlight=False, soft_wrap=True)


@app.command()
def init(data_dir: DataDir = None, origin: Annotated[str | None, typer.Option(help="The log's origin line (unique name).")] = None,
         as_json: Json = False) -> None:
    """Create the ledger (database, tables, signing and sealing keys) or migrate an existing one."""
    s = _settings(data_dir)
    ledger = init_ledger(s, origin)
    info = {"origin": ledger.config.origin, "data_dir": str(s.data_dir), "key_dir": str(s.key_dir),
            "database": s.database_url.split("@")[-1], "vkey": ledger.keyring.active.vkey, "size": ledger.size()}
    _emit(info, as_json, f"ledger [bold]{info['origin']}[/] ready in {s.data_dir}\nverifier key: {info['vkey']}")


@app.command()
def migrate(data_dir: DataDir = None, as_json: Json = False) -> None:
    """Apply database migrations (`init` does this too)."""
    from migrations import current_revision
    from ledger.store_sql import SqlStore

    store = SqlStore(_settings(data_dir).database_url)
    store.migrate()
    rev = current_revision(store.engine)
    _emit({"revision": rev}, as_json, f"database at revision {rev}")


@app.command()
def append(source: Annotated[str, typer.Argument(help="JSON Lines file (or a JSON array), or - for stdin.")] = "-",
           data_dir: DataDir = None, as_json: Json = False) -> None:
    """Append one record, or a batch (JSON Lines) as one atomic transaction."""
    ledger = _ledger(data_dir)
    if source == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = Path(source).read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {source}: {e.strerror}") from None
    result = ledger.append(ledger.parse_batch(raw))
    rows = [a.as_dict() for a in result]
    _emit(rows, as_json, "\n".join(f"appended {a['id']}  {a['leaf_hash']}" + ("  (existing)" if a["existing"] else "")
                                   for a in rows))


@app.command()
def get(record_id: Annotated[int, typer.Argument(metavar="ID")], data_dir: DataDir = None,
        proof: Annotated[bool, typer.Option("--proof", help="Include an inclusion proof.")] = False,
        size: Annotated[int | None, typer.Option(help="Prove against this tree size.")] = None,
        reveal: Annotated[bool, typer.Option("--reveal", help="Decrypt sealed fields.")] = False,
        as_json: Json = False) -> None:
    """Show a record (and optionally its proof and its sealed values)."""
    ledger = _ledger(data_dir)
    obj = ledger.get(record_id, proof=proof, size=size)
    if reveal:
        obj["revealed"] = ledger.reveal(record_id)
    _emit(obj, True)


@app.command()
def checkpoint(data_dir: DataDir = None, as_json: Json = False) -> None:
    """Sign a checkpoint for the current size if none covers it yet; print the signed note."""
    cp = _ledger(data_dir).publish(force=True)
    assert cp is not None
    _emit(cp.as_dict(), as_json, cp.note.rstrip("\n"))


@prove_app.command("inclusion")
def prove_inclusion(record_id: Annotated[int, typer.Argument(metavar="ID")], data_dir: DataDir = None,
                    size: Annotated[int | None, typer.Option(help="Tree size (default: latest checkpoint).")] = None,
                    as_json: Json = False) -> None:
    """RFC 9162 inclusion proof of a record against a checkpoint."""
    p = _ledger(data_dir).prove_inclusion(record_id, size)
    _emit(p, as_json, f"record {p['index']} in tree of size {p['size']}, root {p['root']}\n"
          + "\n".join(f"  {h}" for h in p["proof"]))


@prove_app.command("consistency")
def prove_consistency(old: int, new: Annotated[int | None, typer.Argument()] = None, data_dir: DataDir = None,
                      as_json: Json = False) -> None:
    """RFC 9162 consistency proof between two tree sizes (NEW defaults to the current size)."""
    p = _ledger(data_dir).prove_consistency(old, new)
    _emit(p, as_json, f"size {p['old_size']} ({p['old_root']}) → size {p['new_size']} ({p['new_root']})\n"
          + "\n".join(f"  {h}" for h in p["proof"]))


@app.command()
def verify(data_dir: DataDir = None,
           incremental: Annotated[bool, typer.Option("--incremental", help="Start at the last verified checkpoint.")] = False,
           deep: Annotated[bool, typer.Option("--deep", help="Also check canonical form and link hashes.")] = False,
           as_json: Json = False) -> None:
    """Recompute every leaf, node and root; check every checkpoint's signature and consistency."""
    ledger = _ledger(data_dir)
    report = verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin,
                           incremental=incremental, deep=deep)
    d = report.as_dict()
    if as_json:
        _emit(d, True)
    else:
        status = "[green]PASS[/]" if report.ok else "[red]FAIL[/]"
        out.print(f"{status} {report.mode} verify: {d['entries_checked']} entries from index {d['start']}, "
                  f"{d['checkpoints_checked']} checkpoints, {d['seconds']} s")
        for p in report.problems:
            out.print(f"  [red]{p.what}[/]: {p.message}", highlight=False)
    if not report.ok:
        raise typer.Exit(5)


@app.command()
def trace(record_id: Annotated[int, typer.Argument(metavar="ID")], data_dir: DataDir = None,
          max_nodes: Annotated[int, typer.Option(help="Stop the walk after this many records.")] = 10_000,
          as_json: Json = False) -> None:
    """The connected chain of a record through its links, in both directions."""
    t = _ledger(data_dir).trace(record_id, max_nodes=max_nodes).as_dict()
    if as_json:
        _emit(t, True)
        return
    table = Table("id", "kind", "producer", "links to", title=f"trace of record {record_id}")
    for n in t["nodes"]:
        targets = ", ".join(f"{e['rel']}→{e['dst']}" for e in t["edges"] if e["src"] == n["id"])
        table.add_row(str(n["id"]), n["kind"], n["producer"], targets)
    out.print(table)


@app.command()
def keys(data_dir: DataDir = None, rotate: Annotated[bool, typer.Option("--rotate", help="Sign from now on with a new key.")] = False,
         as_json: Json = False) -> None:
    """List every checkpoint key with its verifier key (vkey); optionally rotate."""
    ledger = _ledger(data_dir)
    if rotate:
        ledger.keyring.rotate()
        ledger.publish(force=True)
    rows = [k.__dict__ for k in ledger.keyring.info()]
    if as_json:
        _emit(rows, True)
        return
    table = Table("key id", "active", "vkey")
    for k in rows:
        table.add_row(k["key_id"], "yes" if k["active"] else "", k["vkey"])
    out.print(table)


@app.command()
def erase(subject: str, data_dir: DataDir = None,
          reason: Annotated[str, typer.Option(help="Why (recorded in the erasure record).")] = "data subject request",
          requested_by: Annotated[str, typer.Option(help="Who asked.")] = "operator",
          as_json: Json = False) -> None:
    """Crypto-shred a subject: destroy its key and append an erasure record. Refused under legal hold."""
    a = _ledger(data_dir).erase(subject, reason=reason, requested_by=requested_by)
    _emit(a.as_dict(), as_json, f"erased {subject}: erasure record {a.id}")


def _hold(action: str, subject: str, case: str, producer: str, data_dir: Path | None, as_json: bool) -> None:
    from ledger.service import now_rfc3339

    ledger = _ledger(data_dir)
    [a] = ledger.append([{"kind": "legal_hold", "producer": producer, "produced_at": now_rfc3339(),
                          "subject": subject, "body": {"action": action, "case_id": case}}], trusted=True)
    _emit(a.as_dict(), as_json, f"hold {action}d on {subject} for case {case}: record {a.id}")


@hold_app.command("place")
def hold_place(subject: str, case: Annotated[str, typer.Option("--case", help="Case id.")],
               producer: Annotated[str, typer.Option(help="Who places it.")] = "legal",
               data_dir: DataDir = None, as_json: Json = False) -> None:
    """Place a legal hold: the subject cannot be erased until it is released."""
    _hold("place", subject, case, producer, data_dir, as_json)


@hold_app.command("release")
def hold_release(subject: str, case: Annotated[str, typer.Option("--case", help="Case id.")],
                 producer: Annotated[str, typer.Option(help="Who releases it.")] = "legal",
                 data_dir: DataDir = None, as_json: Json = False) -> None:
    """Release a legal hold."""
    _hold("release", subject, case, producer, data_dir, as_json)


@hold_app.command("list")
def hold_list(subject: str, data_dir: DataDir = None, as_json: Json = False) -> None:
    """Active holds on a subject (case id → record that placed it)."""
    holds = _ledger(data_dir).holds(subject)
    _emit(holds, as_json, "\n".join(f"{c}: record {i}" for c, i in holds.items()) or "no active holds")


@app.command()
def export(case: Annotated[str, typer.Argument(help="Case id.")],
           record: Annotated[list[int], typer.Option("--record", help="A record of the case (repeatable).")],
           out_file: Annotated[Path, typer.Option("--out", help="Where to write the bundle (.zip).")],
           purpose: Annotated[str, typer.Option(help="Why it is exported (recorded).")],
           actor: Annotated[str, typer.Option(help="Who exports (recorded).")] = "legal",
           since: Annotated[int | None, typer.Option(help="Prove consistency from the checkpoint of this size.")] = None,
           redact: Annotated[bool, typer.Option("--redact", help="Leave sensitive values out.")] = False,
           hashes_only: Annotated[bool, typer.Option("--hashes-only", help="Leave the artifacts' bytes out "
                                                     "(abuse imagery that must not travel); hashes stay.")] = False,
           data_dir: DataDir = None, as_json: Json = False) -> None:
    """Export a case as an evidence bundle (BagIt zip) and record the export in the ledger."""
    from ledger.evidence import record_export

    ledger = _ledger(data_dir)
    bundle, receipt = record_export(ledger, case, record, actor=actor, role="legal", purpose=purpose,
                                    data_dir=_settings(data_dir).data_dir, earlier_size=since, redact=redact,
                                    hashes_only=hashes_only)
    out_file.write_bytes(bundle.data)
    info = {"bundle": str(out_file), "sha256": bundle.sha256, "records": len(bundle.record_ids),
            "checkpoint_size": bundle.checkpoint_size, "redacted": redact, "hashes_only": hashes_only,
            "artifacts": {"included": bundle.artifacts_included, "withheld": bundle.artifacts_withheld,
                          "missing": bundle.artifacts_missing},
            "replay_reports": {"included": bundle.replay_reports - bundle.replay_reports_missing,
                               "missing": bundle.replay_reports_missing},
            "access_record": receipt.id, "vkey": ledger.keyring.active.vkey}
    _emit(info, as_json, f"wrote {out_file} ({len(bundle.record_ids)} records, sha256 {bundle.sha256})\n"
          f"artifacts: {bundle.artifacts_included} included, {bundle.artifacts_withheld} withheld, "
          f"{bundle.artifacts_missing} missing (data/artifacts-missing.json)\n"
          f"export recorded as access record {receipt.id}\nverify: custody verify-bundle {out_file} --key '{info['vkey']}'")


@app.command("verify-bundle")
def verify_bundle_cmd(bundle: Annotated[Path, typer.Argument(help="The bundle (.zip).")],
                      key: Annotated[list[str], typer.Option("--key", help="Verifier key (vkey); repeatable.")],
                      as_json: Json = False) -> None:
    """Verify an evidence bundle offline: no database, no network, only the verifier key."""
    from ledger.evidence import read_bundle_file, verify_bundle

    report = verify_bundle(read_bundle_file(bundle), key)
    if as_json:
        _emit(report.as_dict(), True)
    else:
        for name, ok, detail in report.checks:
            out.print(f"{'[green]PASS[/]' if ok else '[red]FAIL[/]'}  {name}: {detail}", highlight=False, soft_wrap=True)
        out.print("[green]bundle verifies[/]" if report.ok else "[red]bundle does NOT verify[/]")
    if not report.ok:
        raise typer.Exit(5)


@app.command()
def serve(data_dir: DataDir = None, host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8000) -> None:
    """Serve the HTTP API (uvicorn, one worker) on embedded defaults."""
    from api.cli_service import serve as run

    run(_settings(data_dir), host, port)


@token_app.command("create")
def token_create(role: Annotated[str, typer.Option("--role", help="service, investigator, legal, auditor, admin or reviewer")],
                 name: Annotated[str, typer.Option("--name", help="Who holds it (the actor in access records).")],
                 data_dir: DataDir = None, as_json: Json = False) -> None:
    """Issue an API token (shown once; stored only as a hash)."""
    from api.cli_service import create_token

    token = create_token(_settings(data_dir), role, name)
    _emit({"name": name, "role": role, "token": token}, as_json, f"{token}\n(shown once: store it now)")


@pipeline_app.command("check-prompt")
def pipeline_check_prompt(text: Annotated[str, typer.Argument(help="The prompt.")],
                          surface: Annotated[str, typer.Option(help="chat, imagine, api, edit or video.")] = "chat",
                          turn: Annotated[list[str] | None, typer.Option("--turn", help="An earlier turn of the session (repeatable, oldest first).")] = None,
                          policy: Annotated[Path | None, typer.Option(help="Policy file (default: the shipped one).")] = None,
                          as_json: Json = False) -> None:
    """Run the prompt-safety layer on a prompt (and its session's earlier turns)."""
    from pipeline.cli_functions import check_prompt

    d = check_prompt(text, surface, turn, policy)
    risky = ", ".join(f"{c['category']} {c['risk']:.2f}" for c in d.get("categories", []) if c.get("risk"))
    _emit(d, as_json, f"{d.get('action')}" + (f" ({risky})" if risky else "") + (" — escalate" if d.get("escalate") else ""))


@policy_app.command("validate")
def pipeline_policy_validate(path: Annotated[Path, typer.Argument(help="Policy document (YAML or JSON).")],
                             as_json: Json = False) -> None:
    """Validate a policy document; a malformed one names the problem and exits 2."""
    from pipeline.cli_functions import validate_policy

    d = validate_policy(path)
    text = f"valid: {d.get('policy_id')} {d.get('version')} ({d.get('policy_sha256', '')[:16]}…)"
    for u in d.get("unreadable_terms", []):
        text += (f"\nwarning: term {u['term']!r} can never match: a prompt that says it reads {u['reads_as']!r} after "
                 f"normalisation (used by {', '.join(u['used_by'])})")
    _emit(d, as_json, text)


@pipeline_app.command("analyse")
def pipeline_analyse(file: Annotated[Path, typer.Argument(help="Image (PNG/JPEG) or short video to analyse.")],
                     surface: Annotated[str, typer.Option(help="chat, imagine, api, edit or video.")] = "imagine",
                     source: Annotated[Path | None, typer.Option(help="The uploaded source photo of an edit.")] = None,
                     hash_bank: Annotated[Path | None, typer.Option("--hash-bank", help="PDQ hash bank file.")] = None,
                     policy: Annotated[Path | None, typer.Option(help="Policy file (default: the shipped one).")] = None,
                     key_hex: Annotated[str | None, typer.Option("--key", help="Watermark key, hex.")] = None,
                     as_json: Json = False) -> None:
    """Run the post-generation analysis and the policy decision on a file."""
    from pipeline.cli_functions import analyse_file

    d = analyse_file(file, surface=surface, source_path=source, hash_bank_path=hash_bank, policy_path=policy,
                     key=key_hex)
    _emit(d, as_json, f"{d.get('action')}" + (" — escalate" if d.get("escalate") else ""))


@pipeline_app.command("mark")
def pipeline_mark(file: Annotated[Path, typer.Argument(help="Generated image (PNG or JPEG).")],
                  out_file: Annotated[Path, typer.Option("--out", help="Where to write the marked image.")],
                  payload: Annotated[int, typer.Option(help="64-bit watermark payload (the artifact's ledger id).")],
                  key_hex: Annotated[str, typer.Option("--key", help="Watermark key, hex.")],
                  chain_dir: Annotated[Path, typer.Option("--chain", help="C2PA signing chain folder.")],
                  model: Annotated[str, typer.Option(help="Model as name@version.")] = "custody-reference@1",
                  as_json: Json = False) -> None:
    """Watermark an image and sign its Content Credentials (C2PA, no thumbnail)."""
    from pipeline.cli_functions import mark_file

    d = mark_file(file, out_file, payload, key_hex, chain_dir, model)
    _emit(d, as_json, f"marked {out_file}")


@sandbox_app.command("build")
def sandbox_build(tag: Annotated[str, typer.Option(help="Image tag.")] = "custody-sandbox:latest",
                  rebuild_rootfs: Annotated[bool, typer.Option("--rebuild-rootfs", help="Run debootstrap again.")] = False,
                  as_json: Json = False) -> None:
    """Build the replay image offline (debootstrap base + a local wheelhouse); prints its digest."""
    from sandbox.cli_functions import build

    d = build(tag=tag, rebuild_rootfs=rebuild_rootfs)
    _emit(d, as_json, f"built {tag}: {d.get('image_id')}\npin it: {d.get('pin', '')}")


@sandbox_app.command("check")
def sandbox_check(image: Annotated[str, typer.Argument(help="Image tag or id.")],
                  pinned: Annotated[str | None, typer.Option(help="The digest pinned in configuration.")] = None,
                  allow_mismatch: Annotated[bool, typer.Option("--allow-mismatch")] = False,
                  as_json: Json = False) -> None:
    """Compare an image's digest with the pinned one; a mismatch exits 5 unless allowed."""
    from sandbox.cli_functions import check

    _emit(check(image, pinned, allow_mismatch), as_json, None)


def _replay_human(out_d: dict[str, Any]) -> str:
    rep = out_d["report"]
    lines = [(f"replay report [bold]{rep['status']}[/] ({rep.get('mode', 'remoderate')}): record "
              f"{out_d.get('appended', {}).get('id', out_d.get('id'))} (sha256 {out_d['report_sha256']})"),
             (f"backend {rep['runner'].get('backend')}" if rep["runner"] else "nothing ran")
             + (f", image {rep['runner'].get('image_id')}" if rep['runner'].get('image_id') else "")
             + (" (weaker isolation)" if rep['runner'].get('isolation', {}).get('weaker') else "")]
    for s in rep["steps"]:
        kind = s.get("step", "prompt")
        if kind == "prompt":
            rec = ", ".join(f"{r['action']} (decision {r['decision_record']}, {r['pipeline_version']})"
                            for r in s["recorded"])
            lines.append(f"prompt {s['record_id']}: recorded {rec or 'nothing'} · today {s['today'].get('action')}")
        elif kind == "artifact":
            a = s.get("a_recorded_signals") or {}
            lines.append(f"artifact {s['record_id']}: recorded {s['recorded']['action']} "
                         f"(decision {s['recorded']['decision_record']}) · {s['status']}"
                         + (f" · recomputed {'identical' if a.get('agrees_with_record') else 'DIFFERENT'}"
                            if "agrees_with_record" in a else "")
                         + (f" · today {s['c_today'].get('action')}" if s.get("c_today") else ""))
        else:
            lines.append(f"generation {s['record_id']}: {s['result']}"
                         + (f" (PDQ distance {s['pdq']['distance']})" if s.get("pdq", {}).get("distance") is not None
                            and s["result"] != "bit_identical" else "")
                         + (f" · quarantined {s['quarantine']}" if s.get("quarantine") else ""))
    for d in rep["differences"]:
        lines.append(f"  difference ({d['what']}) on record {d['record_id']}: "
                     f"{d['recorded']} → {d.get('today', d.get('replayed'))}")
    for f in rep["findings"]:
        lines.append(f"  {f['severity']}: {f['code']}: {f['message']}")
    for k, v in out_d.get("checks", {}).items():
        lines.append(f"  check {k}: {v}")
    return "\n".join(lines)


def _replay_table(steps: list[dict[str, Any]]) -> Table:
    """One row per replayed step (prompt, artifact decision, generation), from the progress events."""
    table = Table(title="replay steps")
    for col in ("step", "record", "recorded", "replayed / today", "result"):
        table.add_column(col)
    for s in steps:
        table.add_row(s["kind"], str(s["record_id"]), str(s.get("recorded") or "—"), str(s.get("replayed") or "—"),
                      str(s.get("result") or ""))
    return table


def _replay_with_progress(run: Any) -> dict[str, Any]:
    """Run ``run(progress)`` under a rich progress bar; print the per-step table afterwards."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    steps: list[dict[str, Any]] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=False) as bar:
        task = bar.add_task("gathering", total=None)

        def on(ev: Any) -> None:
            bar.update(task, description=f"{ev.phase}: {ev.message}"[:100], total=ev.total or None,
                       completed=ev.done)
            if ev.step:
                steps.append(ev.step)

        try:
            return run(on)
        finally:
            if steps:
                err_console.print(_replay_table(steps))


@app.command("replay")
def replay_cmd(target: Annotated[str, typer.Argument(metavar="RECORD_ID | show",
                                                     help="The record to replay, or 'show' followed by a report's id.")],
               report_id: Annotated[int | None, typer.Argument(metavar="[REPORT_ID]", help="With 'show'.")] = None,
               chain: Annotated[bool, typer.Option("--chain", help="Replay every prompt, generation and artifact "
                                                              "decision in the record's chain.")] = False,
               mode: Annotated[str, typer.Option(help="remoderate (prompts and judged artifacts), regenerate "
                                                       "(generations, from the recorded adapter), or both.")] = "remoderate",
               backend: Annotated[str, typer.Option(help="docker, process, or auto (docker if an engine answers).")] = "auto",
               image: Annotated[str | None, typer.Option(help="Replay image (env CUSTODY_SANDBOX_IMAGE).")] = None,
               allow_image_mismatch: Annotated[bool, typer.Option("--allow-image-mismatch")] = False,
               data_dir: DataDir = None, as_json: Json = False) -> None:
    """Replay a recorded prompt, artifact or generation (or with --chain its whole trace) in the sandbox
    (`replay ID`), or check and print a report (`replay show ID`).

    The evidence is checked against the latest signed checkpoint first; a refusal is recorded and exits 5."""
    from sandbox.replay import ReplayRefused, replay, show

    s = _settings(data_dir)
    ledger = open_ledger(s)
    if target == "show":
        if report_id is None:
            raise InvalidInput("usage: custody replay show REPORT_ID")
        d = show(ledger, report_id, data_dir=s.data_dir)
        _emit(d, as_json, _replay_human(d))
        return
    if report_id is not None:
        raise InvalidInput("usage: custody replay RECORD_ID [--chain] (a second id only goes with 'show')")
    try:
        record_id = int(target)
    except ValueError:
        raise InvalidInput(f"{target!r} is not a record id (or 'show')") from None
    try:
        def run(progress: Any) -> dict[str, Any]:
            return replay(ledger, record_id, data_dir=s.data_dir, chain=chain, mode=mode, backend=backend,
                          image=image, allow_image_mismatch=allow_image_mismatch, progress=progress)

        d = run(None) if as_json else _replay_with_progress(run)
    except ReplayRefused as err:
        d = {"report": err.report, "report_sha256": err.report_sha256, "appended": err.appended}
        _emit(d, as_json, _replay_human(d))
        raise
    _emit(d, as_json, _replay_human(d))


@review_app.command("queue")
def review_queue(limit: Annotated[int, typer.Option(help="Items per page (1-1000).")] = 50,
                 after: Annotated[int | None, typer.Option(help="`next_after` of the previous page.")] = None,
                 data_dir: DataDir = None, as_json: Json = False) -> None:
    """Items waiting for human review (held, not yet decided), oldest first."""
    from ledger.review import ReviewQueue, hours

    page = ReviewQueue(_ledger(data_dir)).pending(limit=limit, after=after)
    if as_json:
        _emit(page, True)
        return
    table = Table("item", "kind", "held at", "waiting", "risk", "categories", "hold", "escalated",
                  title=f"review queue as of {page['as_of']}")
    for i in page["items"]:
        table.add_row(str(i["item"]), i["item_kind"], i["held_at"], hours(i["age_seconds"]),
                      "" if i["risk"] is None else f"{i['risk']:.2f}", ", ".join(i["categories"]),
                      str(i["latest_decision"]), ", ".join(map(str, i["escalations"])))
    out.print(table if page["items"] else "no items wait for review")
    if page["next_after"] is not None:
        out.print(f"more: custody review queue --after {page['next_after']}")


@review_app.command("decide")
def review_decide(item: Annotated[int, typer.Argument(metavar="ITEM", help="The held artifact or prompt.")],
                  action: Annotated[str, typer.Option(help="approve, remove or escalate.")],
                  reason: Annotated[str, typer.Option(help="Why (recorded).")],
                  reviewer: Annotated[str, typer.Option(help="Who decides (recorded).")],
                  data_dir: DataDir = None, as_json: Json = False) -> None:
    """Record a reviewer's decision on a held item (a review_decision linked to the item and its hold)."""
    from ledger.review import ReviewQueue

    d = ReviewQueue(_ledger(data_dir)).decide(item, reviewer=reviewer, action=action, reason=reason)
    note = (" (still waiting: escalated)" if d["pending"] else "") + \
        ("\npublished: enforcement must take it down (a distribution takedown record)" if d["takedown_required"] else "")
    _emit(d, as_json, f"review_decision {d['id']}: {action} item {item} (resolves hold {d['resolves']}){note}")


@review_app.command("sla")
def review_sla(since: Annotated[str | None, typer.Option(help="Window start (RFC 3339).")] = None,
               until: Annotated[str | None, typer.Option(help="Window end and point of view (default: now).")] = None,
               hold_threshold: Annotated[float | None, typer.Option(help="Also count allowed items with at least "
                                                                        "this risk as high-risk.")] = None,
               data_dir: DataDir = None, as_json: Json = False) -> None:
    """The SLA report: hold within 60 s, review median < 1 h and p95 < 4 h, takedown within 24 h."""
    from ledger.review import ReviewQueue, hours

    rep = ReviewQueue(_ledger(data_dir)).sla_report(since, until, hold_threshold=hold_threshold)
    if as_json:
        _emit(rep, True)
        return
    table = Table("SLO", "target", "n", "measured", "met", "breaching",
                  title=f"SLA report {rep['since'] or 'start'} .. {rep['until']} (ledger_time)")
    for name, slo in rep["slos"].items():
        v = slo["value"]
        if name == "human_review":
            measured = f"median {hours(v['median_seconds'])}, p95 {hours(v['p95_seconds'])} ({v['pending']} pending)"
        else:
            measured = "-" if v["share_within"] is None else f"{v['share_within']:.1%} within"
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "n/a"}[slo["met"]]
        ids = ", ".join(str(b["item"]) for b in slo["breaching"][:10]) + (" …" if slo["breaching_total"] > 10 else "")
        table.add_row(name, slo["target"], str(slo["n"]), measured, met, ids)
    out.print(table)


@app.command()
def demo(data_dir: Annotated[Path, typer.Option("--data-dir", help="Where the demo ledger goes.")] = Path("custody-demo"),
         backend: Annotated[str, typer.Option(help="replay sandbox: auto (Docker if an engine answers, else "
                                                   "process), docker or process")] = "auto",
         as_json: Json = False) -> None:
    """The main job: a platform records an abuse incident, an investigator traces and replays it in the
    sandbox, legal exports the evidence bundle and verifies it offline."""
    from api.demo import run_demo

    summary = run_demo(_settings(data_dir), console=None if as_json else out, backend=backend)
    if as_json:
        _emit(summary, True)
    if not (summary["verify"]["ok"] and summary["bundle"]["ok"]):
        raise typer.Exit(5)


def main(argv: list[str] | None = None) -> int:
    """Entry point: the one place where errors become messages and exit codes.

    Usage errors are Typer's own (exit 2, with the usage line); every deliberate Custody error
    becomes one line on stderr and its exit code; nothing else is caught, so a bug still shows
    its traceback rather than hiding behind a friendly message.
    """
    try:
        app(args=argv, prog_name="custody")
    except (CustodyError, PipelineError, SandboxError) as e:
        err_console.print(f"[red]error[/] ({e.code}): {e}", highlight=False, soft_wrap=True)
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
