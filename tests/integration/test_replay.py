"""Replay mode 1 (re-moderation of prompts) end to end, on the sample incident.

The process backend runs always (skipped only where neither bubblewrap nor, as root, unshare can
isolate); the Docker backend runs when an engine answers and is mandatory with
CUSTODY_REQUIRE_DOCKER=1 (see conftest_docker). The point of the postmortem: the legacy filter
*allowed* prompt 6 ("put her in a b1kini…" on the edit surface); today's policy blocks it, and the
report must say so. Tampered evidence and an erased subject stop the replay before anything runs:
a signed ``replay_report`` with ``status: "refused"`` is appended (the attempt is evidence) and
nothing else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from api.sample import sample_incident
from api.settings import Settings
from ledger.errors import InvalidInput
from ledger.keys import open_note
from ledger.service import Ledger
from sandbox.errors import IsolationUnavailable, SandboxError
from sandbox.replay import NOTE_HEADER, ReplayRefused, make_runner, replay, show
from sandbox.runner import Job, ProcessRunner
from tests.integration.conftest_docker import IMAGE, docker_client, docker_runner, sandbox_image  # noqa: F401
from tests.unit.ledger.tamper import Tamper

PROMPT = 6
DECISION = 9
SECRET = "b1kini"  # part of the sealed prompt text: must never appear in a report


@pytest.fixture
def incident(ledger: Ledger) -> Ledger:
    ledger.append(sample_incident())
    ledger.publish()
    return ledger


@pytest.fixture(scope="module")
def process_ok() -> None:
    try:
        r = ProcessRunner()
        res = r.run(Job(["/bin/true"]))
    except IsolationUnavailable as err:
        pytest.skip(f"the process backend cannot isolate here: {err}")
    if res.exit_code != 0:
        pytest.skip(f"the process backend cannot run /bin/true here: {res.stderr[:200]!r}")


class NeverRun:
    """A runner that fails the test if the replay gets as far as running anything."""

    backend = "never"

    def run(self, job: Any) -> Any:
        raise AssertionError("the replay ran although its evidence failed its checks")


def _check_report(ledger: Ledger, settings: Settings, out: dict[str, Any]) -> dict[str, Any]:
    """The appended record, the stored file and the signature agree; returns the report."""
    sha = out["report_sha256"]
    path = Path(settings.data_dir) / "replays" / f"{sha}.json"
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == sha
    assert SECRET not in raw.decode()
    rec = ledger.get(out["appended"]["id"])["record"]
    assert rec["kind"] == "replay_report" and rec["body"]["report_sha256"] == sha
    assert SECRET not in json.dumps(rec)
    opened = open_note(rec["body"]["signature"], ledger.keyring.verifiers)
    assert opened.text == f"{NOTE_HEADER}\n{ledger.config.origin}\nsha256:{sha}\n"
    shown = show(ledger, out["appended"]["id"], data_dir=settings.data_dir)
    assert set(shown["checks"]) == {"inclusion", "sha256", "signature"}
    assert shown["report"] == json.loads(raw)
    return shown["report"]


def _assert_postmortem(report: dict[str, Any], backend: str) -> None:
    assert report["status"] == "completed"
    assert report["runner"]["backend"] == backend
    assert [(s["step"], s["record_id"]) for s in report["steps"]] == [("prompt", PROMPT), ("artifact", 8)]
    step = report["steps"][0]
    # the sample's output artifact is an older record: its bytes were never in the evidence store and its
    # decision holds no signals — a finding, the step skipped, never a crash
    art = report["steps"][1]
    assert art["status"] == "skipped" and art["recorded"]["action"] == "allow"
    (rec,) = step["recorded"]
    assert rec["decision_record"] == DECISION and rec["action"] == "allow"
    assert rec["pipeline_version"] == "legacy-filter-3"
    assert step["today"]["action"] == "block"
    assert "nonconsensual_intimate_edit" in step["today"]["flagged"]
    # the recorded policy cannot be loaded: substituted, said so, and not called a disagreement
    assert rec["exact_policy"] is False and rec["agrees_with_record"] is None
    codes = {f["code"] for f in report["findings"]}
    assert "recorded_policy_unavailable" in codes and "replay_disagrees_with_record" not in codes
    assert {"artifact_bytes_unavailable", "recorded_decision_not_replayable"} <= codes
    diffs = {(d["what"], d["recorded"], d.get("today", d.get("replayed"))) for d in report["differences"]}
    assert ("recorded_vs_today", "allow", "block") in diffs
    # inputs: the prompt, the decision and the generation/artifact linking them, all verified
    roles = {i["id"]: (i["role"], i["inclusion"]) for i in report["inputs"]}
    assert roles[PROMPT] == ("prompt", "verified") and roles[DECISION] == ("recorded_decision", "verified")
    assert all(inc == "verified" for _, inc in roles.values())
    assert report["checkpoint"]["verified_by"]
    assert report["worker"]["sha256"] and report["worker"]["stage_version"].startswith("prompt_safety/")


# --- process backend -------------------------------------------------------------------------------

def test_replay_prompt_process_backend(incident: Ledger, settings: Settings, process_ok: None) -> None:
    size = incident.size()
    out = replay(incident, PROMPT, data_dir=settings.data_dir, backend="process")
    assert incident.size() == size + 1 and out["appended"]["id"] == size
    report = _check_report(incident, settings, out)
    _assert_postmortem(report, "process")
    assert report["runner"]["isolation"]["weaker"] is True
    assert "weaker_isolation" in {f["code"] for f in report["findings"]}
    links = {(ln["rel"], ln["id"]) for ln in incident.get(out["appended"]["id"])["record"]["links"]}
    assert ("replayed", PROMPT) in links and ("recorded_decision", DECISION) in links


def test_chain_replay_covers_every_prompt(incident: Ledger, settings: Settings, process_ok: None) -> None:
    out = replay(incident, 13, chain=True, data_dir=settings.data_dir, backend="process")
    report = _check_report(incident, settings, out)
    assert [s["record_id"] for s in report["steps"] if s["step"] == "prompt"] == [4, PROMPT]
    assert report["steps"][0]["recorded"] == [] and report["steps"][0]["today"]["action"] == "allow"


def test_non_prompt_without_chain_is_refused_plainly(incident: Ledger, settings: Settings) -> None:
    size = incident.size()
    with pytest.raises(InvalidInput):
        replay(incident, DECISION, data_dir=settings.data_dir, runner=NeverRun())
    assert incident.size() == size


def test_tampered_evidence_refuses(incident: Ledger, settings: Settings) -> None:
    """The prompt's stored bytes changed behind the ledger's back (triggers dropped, like an attacker
    with database access): the proof fails, nothing runs, a refusal report is appended."""
    tamper = Tamper.of(incident)
    data = tamper.entry_data(PROMPT)
    assert b'"surface":"edit"' in data
    tamper.set_entry_data(PROMPT, data.replace(b'"surface":"edit"', b'"surface":"chat"'))
    size = incident.size()
    with pytest.raises(ReplayRefused) as exc:
        replay(incident, PROMPT, data_dir=settings.data_dir, runner=NeverRun())
    err = exc.value
    assert err.exit_code == 5
    assert incident.size() == size + 1  # the refusal report, nothing else
    report = _check_report(incident, settings, {"report_sha256": err.report_sha256, "appended": err.appended})
    assert report["status"] == "refused" and report["steps"] == [] and report["runner"] == {}
    bad = [f for f in report["findings"] if f["severity"] == "error"]
    assert [(f["code"], f["record_id"]) for f in bad] == [("inclusion_proof_failed", PROMPT)]
    assert {i["id"]: i["inclusion"] for i in report["inputs"]}[PROMPT] == "failed"


def test_tampered_decision_refuses(incident: Ledger, settings: Settings) -> None:
    """Rewriting the recorded decision ('allow' → 'block') to hide the miss is caught too."""
    tamper = Tamper.of(incident)
    data = tamper.entry_data(DECISION)
    tamper.set_entry_data(DECISION, data.replace(b'"action":"allow"', b'"action":"block"'))
    with pytest.raises(ReplayRefused) as exc:
        replay(incident, PROMPT, data_dir=settings.data_dir, runner=NeverRun())
    codes = {(f["code"], f["record_id"]) for f in exc.value.report["findings"]}
    assert ("inclusion_proof_failed", DECISION) in codes


def test_uncheckpointed_evidence_refuses(ledger: Ledger, settings: Settings) -> None:
    ledger.append(sample_incident(), publish=False)
    with pytest.raises(ReplayRefused) as exc:
        replay(ledger, PROMPT, data_dir=settings.data_dir, runner=NeverRun())
    assert "not_covered_by_checkpoint" in {f["code"] for f in exc.value.report["findings"]}


def test_erased_subject_is_a_finding(incident: Ledger, settings: Settings) -> None:
    incident.erase("subj:u-7f3a", reason="user requested erasure", requested_by="dpo")
    size = incident.size()
    with pytest.raises(ReplayRefused) as exc:
        replay(incident, PROMPT, data_dir=settings.data_dir, runner=NeverRun())
    assert incident.size() == size + 1
    report = _check_report(incident, settings, {"report_sha256": exc.value.report_sha256,
                                                "appended": exc.value.appended})
    assert report["status"] == "refused"
    # the prompt and the earlier turn of its session (record 4, same user, session s-1): both are inputs
    assert [(f["code"], f["record_id"]) for f in report["findings"] if f["severity"] == "error"] == [
        ("subject_erased", 4), ("subject_erased", PROMPT)]


def test_show_detects_an_altered_report_file(incident: Ledger, settings: Settings, process_ok: None) -> None:
    from ledger.errors import VerificationError

    out = replay(incident, PROMPT, data_dir=settings.data_dir, backend="process")
    path = Path(out["path"])
    path.write_bytes(path.read_bytes().replace(b'"block"', b'"allow"'))
    with pytest.raises(VerificationError):
        show(incident, out["appended"]["id"], data_dir=settings.data_dir)


def test_cli_replay_and_show(incident: Ledger, settings: Settings, process_ok: None,
                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli import main

    monkeypatch.setenv("CUSTODY_DATABASE_URL", settings.database_url)  # SQLite or PostgreSQL alike
    monkeypatch.setenv("CUSTODY_KEY_DIR", str(settings.key_dir))
    d = str(settings.data_dir)
    assert main(["replay", str(PROMPT), "--backend", "process", "--json", "--data-dir", d]) == 0
    out = json.loads(capsys.readouterr().out)
    rid = out["appended"]["id"]
    assert main(["replay", "show", str(rid), "--json", "--data-dir", d]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["report_sha256"] == out["report_sha256"] and shown["checks"]["signature"].startswith("verified")
    assert main(["replay", "show", "--data-dir", d]) == 2


# --- docker backend --------------------------------------------------------------------------------

def test_replay_prompt_docker_backend(incident: Ledger, settings: Settings, docker_client: Any,  # noqa: F811
                                      sandbox_image: str) -> None:  # noqa: F811
    from sandbox.runner import leftover_containers, leftover_volumes

    out = replay(incident, PROMPT, data_dir=settings.data_dir, backend="docker", image=sandbox_image)
    report = _check_report(incident, settings, out)
    _assert_postmortem(report, "docker")
    assert report["runner"]["image_id"] == sandbox_image
    assert report["runner"]["isolation"]["weaker"] is False
    assert report["runner"]["isolation"]["network"] == "none"
    assert "weaker_isolation" not in {f["code"] for f in report["findings"]}
    assert leftover_containers(docker_client) == [] and leftover_volumes(docker_client) == []


def test_docker_backend_refuses_an_unpinned_image(docker_client: Any, sandbox_image: str) -> None:  # noqa: F811
    from sandbox.errors import ImageDigestMismatch

    with pytest.raises(ImageDigestMismatch):
        make_runner("docker", image=sandbox_image, pinned="sha256:" + "0" * 64)
    _, info = make_runner("docker", image=sandbox_image, pinned="sha256:" + "0" * 64, allow_image_mismatch=True)
    assert info["pin_matches"] is False and info["pin_mismatch_allowed"] is True


def test_unknown_backend() -> None:
    with pytest.raises((InvalidInput, SandboxError)):
        make_runner("vm")
