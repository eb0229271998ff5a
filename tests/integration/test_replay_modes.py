"""Replay of artifacts and generations (issue 4), on records the generation gateway writes.

One SQLite ledger per module (``ledger_m``) holds real gateway generations — a procedural text-to-image
one and an edit of an uploaded photo of a real person — plus an analysis decision made at an archived
policy version, a generation whose recorded ``output_sha256`` is wrong, three hostile artifacts and the
old-style sample incident. Each mode runs on the process backend and on Docker (Docker tests fail
instead of skipping with CUSTODY_REQUIRE_DOCKER=1, see conftest_docker). Tampering gets its own ledger.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.composition import init_ledger, open_gateway
from api.gateway import Submission
from api.sample import sample_incident
from api.settings import Settings
from ledger.artifacts import artifact_store_for, quarantine_for, ref_for
from ledger.service import Ledger
from pipeline.policy_archive import registry
from sandbox.adapters import GenerationRequest, get_adapter
from sandbox.replay import Progress, ReplayRefused, replay, show
from sandbox.runner import Job, ProcessRunner
from tests.integration.conftest_docker import docker_client, sandbox_image  # noqa: F401
from sandbox.errors import IsolationUnavailable

EDIT_PROMPT = "make the sky look stormy behind her"


class NeverRun:
    backend = "never"

    def run(self, job: Any) -> Any:
        raise AssertionError("the replay ran although its evidence failed its checks")


@pytest.fixture(scope="module")
def process_ok() -> None:
    try:
        res = ProcessRunner().run(Job(["/bin/true"]))
    except IsolationUnavailable as err:
        pytest.skip(f"the process backend cannot isolate here: {err}")
    if res.exit_code != 0:
        pytest.skip(f"the process backend cannot run /bin/true here: {res.stderr[:200]!r}")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def hostile_files(photo_png: bytes, photo_jpeg: bytes) -> dict[str, tuple[bytes, str]]:
    bomb = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""))
    return {"truncated": (photo_png[: len(photo_png) // 2], "image/png"),
            "bomb": (bomb, "image/png"),
            "lying_type": (photo_jpeg, "image/png")}  # a JPEG recorded as a PNG


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import cv2
    import numpy as np

    tmp = tmp_path_factory.mktemp("replay-modes")
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'ledger.db'}", key_dir=tmp / "keys")
    led = init_ledger(settings, origin="custody.test/ledger")
    people = led.append([
        {"kind": "principal", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
         "body": {"pseudonym": "u-1", "principal_type": "user"}, "subject": "subj:u-1"},
        {"kind": "principal", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
         "body": {"pseudonym": "u-2", "principal_type": "user"}, "subject": "subj:u-2"},
    ])
    user, victim = people[0].id, people[1].id
    gw = open_gateway(settings, led)
    photo = get_adapter("reference-procedural").generate(GenerationRequest("a portrait", {}, 5)).data
    ok, jpg = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR))
    jpeg = jpg.tobytes()

    def ids(out: dict[str, Any]) -> dict[str, int]:
        named: dict[str, int] = {}
        for r in out["records"]:
            named.setdefault(r["kind"] + (":" + r["role"] if r.get("role") else ""), r["id"])
        return named

    w: dict[str, Any] = {"settings": settings, "ledger": led, "user": user, "victim": victim}
    w["txt"] = ids(gw.submit(Submission(principal_id=user, surface="imagine", seed=11,
                                        prompt="a lighthouse at dusk, oil painting", parameters={"width": 320, "height": 320})))
    w["edit"] = ids(gw.submit(Submission(principal_id=user, surface="edit", seed=5, prompt=EDIT_PROMPT,
                                         adapter="reference-editor", source=jpeg, depicts_principal_id=victim)))
    # an analysis decision made at an archived (older) policy version
    archived = [p for (pid, v), p in registry().by_key.items() if p.sha256 != registry().current.sha256]
    w["archived_policy"] = archived[0] if archived else None
    if archived:
        old_gw = open_gateway(settings, led)
        from pipeline.prompt_safety import layer_for

        old_gw.policy = archived[0]
        old_gw.layer = layer_for(archived[0])
        w["old"] = ids(old_gw.submit(Submission(principal_id=user, surface="imagine", seed=3,
                                                prompt="a bowl of lemons on a table", parameters={"width": 256, "height": 256})))
    # a generation whose recorded output_sha256 is wrong, with the real (marked) output as its artifact
    gen = led.get(w["txt"]["generation"])["record"]
    art = led.get(w["txt"]["artifact:output"])["record"]
    wrong = led.append([
        {"kind": "generation", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
         "body": {**gen["body"], "output_sha256": "ab" * 32},
         "links": [{"rel": "prompt", "id": w["txt"]["prompt"]}]},
        {"kind": "artifact", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
         "body": {**art["body"]}, "links": [{"rel": "generation", "batch": 0}]},
    ])
    w["wrong_gen"] = wrong[0].id
    # hostile artifacts: correct sha256 in the ledger and the store, each with a recorded analysis decision
    store = artifact_store_for(tmp)
    batch: list[dict[str, Any]] = [{"kind": "generation", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
                                    "body": {"surface": "imagine", "parameters": {}, "seed": 1}}]
    w["hostile"] = {}
    for name, (data, mime) in hostile_files(photo, jpeg).items():
        sha = store.put(data)
        w["hostile"][name] = len(batch)
        batch.append({"kind": "artifact", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
                      "body": {"sha256": sha, "media_type": mime, "size": len(data), "storage_ref": ref_for(sha),
                               "role": "output"}, "links": [{"rel": "generation", "batch": 0}]})
        batch.append({"kind": "safety_decision", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
                      "body": {"action": "allow", "stage": "analysis", "policy_id": "custody-default",
                               "policy_version": registry().current.version, "pipeline_version": "x", "risk": 0.0,
                               "signals": {}}, "links": [{"rel": "artifact", "batch": len(batch) - 1}]})
    h = led.append(batch)
    w["hostile_gen"] = h[0].id
    w["hostile"] = {k: h[v].id for k, v in w["hostile"].items()}
    w["sample_base"] = led.size()
    led.append(sample_incident())
    led.publish(force=True)
    yield w
    led.store.close()


def _check(w: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    led, d = w["ledger"], w["settings"].data_dir
    raw = Path(out["path"]).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == out["report_sha256"]
    assert EDIT_PROMPT not in raw.decode()
    shown = show(led, out["appended"]["id"], data_dir=d)
    assert shown["report"] == json.loads(raw)
    return shown["report"]


def _step(report: dict[str, Any], kind: str, rid: int) -> dict[str, Any]:
    (s,) = [s for s in report["steps"] if s["step"] == kind and s["record_id"] == rid]
    return s


def _assert_artifact_remoderated(report: dict[str, Any], w: dict[str, Any]) -> None:
    s = _step(report, "artifact", w["edit"]["artifact:output"])
    assert s["status"] == "replayed"
    assert s["recorded"]["exact_policy"] is True
    assert s["recorded"]["decision_record"] == w["edit"]["safety_decision:analysis"]
    assert s["a_recorded_signals"]["agrees_with_record"] is True  # (a) recomputed from the record: identical
    b = s["b_signals_from_bytes"]
    assert b["signals_compared"] is True and b["same_pipeline_as_record"] is True
    # the sandbox has no watermark key / trust anchor: only those signals may differ, and are explained
    assert all(x["explained"] for x in b["differences"]), b["differences"]
    assert {x["signal"].split(".")[0] for x in b["differences"]} <= {"watermark", "c2pa", "provenance"}
    assert s["source"] == w["edit"]["artifact:upload"] and s["context"].get("real_person") is True
    assert s["c_today"]["action"] in ("allow", "hold", "block") and "why" in s["c_today"]
    assert "recompute_disagrees_with_record" not in {f["code"] for f in report["findings"]}
    assert report["status"] == "completed", report["findings"]


def _assert_regenerated(report: dict[str, Any], w: dict[str, Any], gen: int) -> None:
    s = _step(report, "generation", gen)
    assert s["result"] == "bit_identical" and s["bit_identical"] is True
    assert s["output_sha256"] == s["recorded_output_sha256"]
    assert s["quarantine"] == "cas:sha256:" + s["output_sha256"]
    q = quarantine_for(w["settings"].data_dir)
    assert q.has(s["output_sha256"]) and hashlib.sha256(q.get(s["output_sha256"])).hexdigest() == s["output_sha256"]


# --- process backend -------------------------------------------------------------------------------

def test_remoderate_artifact_process(world: dict[str, Any], process_ok: None) -> None:
    out = replay(world["ledger"], world["edit"]["artifact:output"], data_dir=world["settings"].data_dir,
                 backend="process")
    report = _check(world, out)
    _assert_artifact_remoderated(report, world)
    assert [s["step"] for s in report["steps"]] == ["artifact"]


def test_regenerate_process_bit_identical_and_quarantined(world: dict[str, Any], process_ok: None) -> None:
    out = replay(world["ledger"], world["txt"]["generation"], mode="regenerate",
                 data_dir=world["settings"].data_dir, backend="process")
    report = _check(world, out)
    _assert_regenerated(report, world, world["txt"]["generation"])
    q = quarantine_for(world["settings"].data_dir).get(_step(report, "generation", world["txt"]["generation"])["output_sha256"])
    assert base64.b64encode(q[:600]).decode()[20:200] not in json.dumps(out)  # never returned in the clear
    rec = world["ledger"].get(out["appended"]["id"])["record"]
    assert rec["body"]["quarantined"] == [_step(report, "generation", world["txt"]["generation"])["quarantine"]]


def test_both_on_an_edit_prompt_process(world: dict[str, Any], process_ok: None) -> None:
    events: list[Progress] = []
    out = replay(world["ledger"], world["edit"]["prompt"], mode="both", data_dir=world["settings"].data_dir,
                 backend="process", progress=events.append)
    report = _check(world, out)
    assert sorted(s["step"] for s in report["steps"]) == ["artifact", "generation", "prompt"]
    _assert_artifact_remoderated(report, world)
    _assert_regenerated(report, world, world["edit"]["generation"])
    prompt = _step(report, "prompt", world["edit"]["prompt"])
    assert [r["stage"] for r in prompt["recorded"]] == ["prompt"]  # the analysis decision is the artifact's
    assert len(report["runner"]["timings"]) and report["runner"]["backend"] == "process"
    steps = [e.step for e in events if e.step]
    assert len(steps) == 3 and events[-1].phase == "done" and events[-1].done == events[-1].total == 3


def test_wrong_output_sha256_is_perceptually_close(world: dict[str, Any], process_ok: None) -> None:
    out = replay(world["ledger"], world["wrong_gen"], mode="regenerate", data_dir=world["settings"].data_dir,
                 backend="process")
    report = _check(world, out)
    s = _step(report, "generation", world["wrong_gen"])
    assert s["bit_identical"] is False and s["result"] == "perceptually_close"
    assert s["pdq"]["distance"] is not None and s["pdq"]["distance"] <= 31
    assert "regeneration_not_bit_identical" in {f["code"] for f in report["findings"]}


def test_archived_policy_exact_replay(world: dict[str, Any], process_ok: None) -> None:
    pol = world["archived_policy"]
    if pol is None:
        pytest.skip("the default policy is the only version shipped so far")
    out = replay(world["ledger"], world["old"]["artifact:output"], data_dir=world["settings"].data_dir,
                 backend="process")
    report = _check(world, out)
    s = _step(report, "artifact", world["old"]["artifact:output"])
    label = f"recorded:{pol.policy_id}@{pol.version}"
    assert s["recorded"]["exact_policy"] is True and s["recorded"]["policy"] == label[9:]
    assert report["policies"][label]["sha256"] == pol.sha256
    assert report["policies"][label]["origin"].startswith("archive:")
    assert s["a_recorded_signals"]["agrees_with_record"] is True
    assert s["b_signals_from_bytes"]["decision_at_recorded_policy"]["policy"]["version"] == pol.version
    assert s["c_today"]["policy"]["version"] == registry().current.version != pol.version
    assert any(w.startswith("policy ") for w in s["c_today"]["why"])


def test_hostile_artifacts_are_findings(world: dict[str, Any], process_ok: None) -> None:
    out = replay(world["ledger"], world["hostile_gen"], data_dir=world["settings"].data_dir, backend="process")
    report = _check(world, out)
    assert report["status"] == "completed_with_findings"
    errs = {f["record_id"]: f["message"] for f in report["findings"] if f["code"] == "artifact_analysis_failed"}
    h = world["hostile"]
    assert set(errs) == set(h.values())
    assert "Truncated" in errs[h["truncated"]] or "truncat" in errs[h["truncated"]].lower()
    assert "TooLarge" in errs[h["bomb"]]
    assert "Mismatch" in errs[h["lying_type"]]


def test_old_style_records_are_graceful(world: dict[str, Any], process_ok: None) -> None:
    base = world["sample_base"]
    out = replay(world["ledger"], base + 7, mode="both", data_dir=world["settings"].data_dir, backend="process")
    report = _check(world, out)
    codes = {f["code"] for f in report["findings"]}
    assert {"generation_names_no_adapter", "artifact_bytes_unavailable"} <= codes
    assert _step(report, "generation", base + 7)["status"] == "skipped"
    assert _step(report, "artifact", base + 8)["status"] == "skipped"
    assert report["status"] == "not_replayable" and report["runner"] == {}


def test_cli_chain_replay_progress_table(world: dict[str, Any], process_ok: None, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli import main

    s = world["settings"]
    monkeypatch.setenv("CUSTODY_DATABASE_URL", s.database_url)
    monkeypatch.setenv("CUSTODY_KEY_DIR", str(s.key_dir))
    assert main(["replay", str(world["edit"]["artifact:output"]), "--chain", "--mode", "both", "--backend", "process",
                 "--data-dir", str(s.data_dir)]) == 0
    cap = capsys.readouterr()
    assert "replay steps" in cap.err and "bit_identical" in cap.err
    assert f"generation {world['edit']['generation']}: bit_identical" in cap.out
    assert EDIT_PROMPT not in cap.out + cap.err


def test_unknown_mode(world: dict[str, Any]) -> None:
    from ledger.errors import InvalidInput

    size = world["ledger"].size()
    with pytest.raises(InvalidInput):
        replay(world["ledger"], world["txt"]["prompt"], mode="dream", data_dir=world["settings"].data_dir)
    assert world["ledger"].size() == size


# --- Docker backend --------------------------------------------------------------------------------

def test_remoderate_artifact_docker(world: dict[str, Any], docker_client: Any, sandbox_image: str) -> None:  # noqa: F811
    from sandbox.runner import leftover_containers, leftover_volumes

    out = replay(world["ledger"], world["edit"]["artifact:output"], data_dir=world["settings"].data_dir,
                 backend="docker", image=sandbox_image)
    report = _check(world, out)
    _assert_artifact_remoderated(report, world)
    assert report["runner"]["image_id"] == sandbox_image and report["runner"]["isolation"]["network"] == "none"
    # the engine is shared (other test runs may have a container up for a moment): wait for quiet
    deadline = time.monotonic() + 10
    while (leftover_containers(docker_client) or leftover_volumes(docker_client)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftover_containers(docker_client) == [] and leftover_volumes(docker_client) == []


def test_regenerate_docker(world: dict[str, Any], docker_client: Any, sandbox_image: str) -> None:  # noqa: F811
    out = replay(world["ledger"], world["edit"]["generation"], mode="regenerate", data_dir=world["settings"].data_dir,
                 backend="docker", image=sandbox_image)
    _assert_regenerated(_check(world, out), world, world["edit"]["generation"])


def test_both_chain_docker(world: dict[str, Any], docker_client: Any, sandbox_image: str) -> None:  # noqa: F811
    out = replay(world["ledger"], world["txt"]["artifact:output"], chain=True, mode="both",
                 data_dir=world["settings"].data_dir, backend="docker", image=sandbox_image)
    report = _check(world, out)
    _assert_regenerated(report, world, world["txt"]["generation"])
    assert _step(report, "artifact", world["txt"]["artifact:output"])["a_recorded_signals"]["agrees_with_record"]


def test_hostile_artifacts_docker(world: dict[str, Any], docker_client: Any, sandbox_image: str) -> None:  # noqa: F811
    out = replay(world["ledger"], world["hostile_gen"], data_dir=world["settings"].data_dir, backend="docker",
                 image=sandbox_image)
    report = _check(world, out)
    errs = {f["record_id"] for f in report["findings"] if f["code"] == "artifact_analysis_failed"}
    assert errs == set(world["hostile"].values()) and report["runner"]["exit_code"] == 0


# --- tampered evidence (own ledger) ----------------------------------------------------------------

def test_tampered_artifact_bytes_refuse(sqlite_settings: Settings) -> None:
    led = init_ledger(sqlite_settings, origin="custody.test/ledger")
    store = artifact_store_for(sqlite_settings.data_dir)
    data = get_adapter("reference-procedural").generate(GenerationRequest("x", {"width": 64, "height": 64}, 1)).data
    sha = store.put(data)
    a = led.append([
        {"kind": "artifact", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
         "body": {"sha256": sha, "media_type": "image/png", "size": len(data), "storage_ref": ref_for(sha)}},
        {"kind": "safety_decision", "producer": "svc:test", "produced_at": "2026-01-01T00:00:00Z",
         "body": {"action": "allow", "stage": "analysis", "policy_id": "p", "policy_version": "1",
                  "pipeline_version": "x", "risk": 0.0, "signals": {}}, "links": [{"rel": "artifact", "batch": 0}]},
    ])
    led.publish(force=True)
    path = Path(sqlite_settings.data_dir) / "artifacts" / "sha256" / sha[:2] / sha
    path.chmod(0o600)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    size = led.size()
    with pytest.raises(ReplayRefused) as exc:
        replay(led, a[0].id, data_dir=sqlite_settings.data_dir, runner=NeverRun())
    assert led.size() == size + 1
    bad = [(f["code"], f["record_id"]) for f in exc.value.report["findings"] if f["severity"] == "error"]
    assert bad == [("artifact_bytes_tampered", a[0].id)]
    path.unlink()  # missing bytes refuse too
    with pytest.raises(ReplayRefused) as exc:
        replay(led, a[0].id, data_dir=sqlite_settings.data_dir, runner=NeverRun())
    assert ("artifact_bytes_missing", a[0].id) in {(f["code"], f["record_id"]) for f in exc.value.report["findings"]}
    led.store.close()
