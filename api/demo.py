"""`custody demo`: the main job on embedded defaults (SQLite and key files in a local folder).

Until the service, pipeline and sandbox land, the demo is the ledger's own story: record an
incident, sign a checkpoint, prove that the published artifact's record is in the log (checked
with the pure verifier, as an outsider would), verify the whole ledger, and export the case as an
evidence bundle that is then verified offline.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from api.composition import init_ledger
from api.sample import sample_incident
from api.settings import Settings
from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.evidence import record_export, verify_bundle
from ledger.keys import open_note
from ledger.verify import verify_ledger


def run_demo(settings: Settings, console: Console | None = None) -> dict[str, Any]:
    say = console.print if console else (lambda *a, **k: None)
    ledger = init_ledger(settings)
    say(f"[bold]1.[/] ledger [cyan]{ledger.config.origin}[/] in {settings.data_dir} (SQLite, WAL, synchronous=FULL)")

    records = sample_incident()
    appended = ledger.append(records)
    first = appended[0].id
    say(f"[bold]2.[/] appended the sample incident as one batch: records {first}–{appended[-1].id} "
        f"(user, victim, model version, policy, prompts, upload, generation, output, safety decision, "
        f"publish, report, review, takedown)")

    cp = ledger.publish(force=True)
    assert cp is not None
    say(f"[bold]3.[/] signed checkpoint #{cp.id}:\n" + "\n".join("     " + ln for ln in cp.note.rstrip().splitlines()))

    output_artifact = appended[8].id
    p = ledger.prove_inclusion(output_artifact)
    opened = open_note(p["checkpoint"], [ledger.keyring.active])  # what an outsider does: trust only the vkey
    signed = Checkpoint.parse(opened.text)
    merkle.verify_inclusion(bytes.fromhex(p["leaf_hash"]), p["index"], signed.size,
                            [bytes.fromhex(h) for h in p["proof"]], signed.root)
    say(f"[bold]4.[/] record {output_artifact} (the published image's artifact record) is in the tree of size "
        f"{signed.size}: {len(p['proof'])}-hash inclusion proof checks against the signed root")

    t = ledger.trace(output_artifact)
    say(f"[bold]5.[/] its chain: {len(t.nodes)} records, {len(t.edges)} links "
        f"({', '.join(sorted({n['kind'] for n in t.nodes.values()}))})")

    report = verify_ledger(ledger.store, ledger.keyring.verifiers, ledger.config.origin)
    say("[bold]6.[/] full verify: " + ("[green]PASS[/]" if report.ok else "[red]FAIL[/]")
        + f" ({report.entries_checked} entries, {report.checkpoints_checked} checkpoints)")
    for prob in report.problems:
        say(f"   [red]{prob.what}[/]: {prob.message}")
    bundle, receipt = record_export(ledger, "case-demo", [output_artifact], actor="legal-demo", role="legal",
                                    purpose="demo: evidence for the victim's complaint", data_dir=settings.data_dir)
    bundle_path = settings.data_dir / "case-demo-bundle.zip"
    bundle_path.write_bytes(bundle.data)
    checked = verify_bundle(bundle.data, [ledger.keyring.active.vkey])
    say(f"[bold]7.[/] evidence bundle {bundle_path} ({len(bundle.record_ids)} records, sha256 "
        f"{bundle.sha256[:16]}…): offline verify " + ("[green]PASS[/]" if checked.ok else "[red]FAIL[/]")
        + f"; the export is access record {receipt.id}")
    say(f"\nverifier key (all an outsider needs): {ledger.keyring.active.vkey}\n"
        f"try: custody verify-bundle {bundle_path} --key '{ledger.keyring.active.vkey}'\n"
        f"     custody trace {output_artifact} --data-dir {settings.data_dir}")
    return {"bundle": {"path": str(bundle_path), "sha256": bundle.sha256, "ok": checked.ok},
            "origin": ledger.config.origin, "data_dir": str(settings.data_dir),
            "appended": [a.as_dict() for a in appended], "checkpoint": cp.as_dict(), "inclusion": p,
            "trace": t.as_dict(), "verify": report.as_dict(), "vkey": ledger.keyring.active.vkey}
