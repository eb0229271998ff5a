"""pipeline/decision.py, pipeline/version.py and cli_functions.analyse_file.

Two halves: the pure decision over hand-written signal sets (every routing rule, including the
minors rule and the nonconsensual-edit class), then the whole analysis stage end to end on real
pixels (scikit-image's public-domain photos, a synthetic MJPG video made here), checking that
decisions and the pipeline version are deterministic and that a replay reproduces them exactly.
Where a nudity finding is needed end to end, NudeNet's raw output is stubbed (and the test says so):
no explicit image is used or generated.
"""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest

from pipeline import decision as dec
from pipeline import detectors as det
from pipeline import hashbank as hb
from pipeline import watermark as wm
from pipeline.cli_functions import analyse_file
from pipeline.errors import InvalidSurface, PipelineError
from pipeline.images import CorruptImage, ImageError, ImageTypeMismatch
from pipeline.policy import default_policy, load_policy_text
from pipeline.version import pipeline_version

POLICY = default_policy()
PV = "0" * 64
FACE_SOURCE = {"source.present": True, "source.face.nudenet": 0.72, "source.face.haar_count": 1}
NO_FACE_SOURCE = {"source.present": True, "source.face.nudenet": 0.0, "source.face.haar_count": 0}


def decide(signals, context=None, surface="imagine", policy=POLICY):
    return dec.decide(signals, context or {}, surface, policy, PV)


def cat(d, name):
    return next((c for c in d["categories"] if c["category"] == name), None)


# --- routing ----------------------------------------------------------------------------------

def test_benign_allows_with_no_categories():
    d = decide({"nudity.explicit": 0.0, "nudity.exposed": 0.0, "face.nudenet": 0.8})
    assert d["action"] == "allow" and d["categories"] == [] and d["escalate"] is False


@pytest.mark.parametrize("signals,action", [
    ({"nudity.explicit": 0.9}, "block"),       # explicit: block
    ({"nudity.explicit": 0.7}, "hold"),
    ({"nudity.exposed": 0.9}, "hold"),         # nudity is held, never blocked on its own
    ({"nudity.exposed": 1.0}, "hold"),
    ({"nudity.exposed": 0.5}, "allow"),
    ({"nudity.suggestive": 0.95}, "allow"),    # swimwear alone
    ({"nudity.exposed": 0.2753}, "allow"),     # the skin-toned drawing of test_detectors.py
])
def test_sexual_content_thresholds(signals, action):
    assert decide(signals)["action"] == action


@pytest.mark.parametrize("signals,action", [
    ({"nudity.exposed": 0.7}, "block"),
    ({"nudity.exposed": 0.45}, "hold"),
    ({"nudity.suggestive": 0.8}, "hold"),      # bikini / lingerie edit of a real person: human review
    ({"nudity.explicit": 0.4}, "hold"),
    ({"nudity.explicit": 0.3}, "allow"),     # below hold_at 0.35: NudeNet at 0.3 is weak evidence
    ({"nudity.suggestive": 0.3}, "allow"),
])
def test_nudity_on_edit_of_real_persons_photo_is_its_own_class(signals, action):
    d = decide({**signals, **FACE_SOURCE}, surface="edit")
    assert d["action"] == action
    if action != "allow":
        assert cat(d, "nonconsensual_intimate_edit")["action"] == action
    # the same output without a face in the source is judged as sexual content only (more leniently)
    plain = decide({**signals, **NO_FACE_SOURCE}, surface="edit")
    assert cat(plain, "nonconsensual_intimate_edit") is None
    assert dec.ACTIONS.index(plain["action"]) <= dec.ACTIONS.index(action)


def test_nonconsensual_edit_is_stricter_than_plain_nudity():
    s = {"nudity.exposed": 0.7}
    assert decide(s)["action"] == "allow"  # 0.56 sexual content
    assert decide({**s, **FACE_SOURCE}, surface="edit")["action"] == "block"
    assert decide(s, {"real_person": True}, surface="edit")["action"] == "block"
    # a haar-only face in the source counts too (second opinion only ever adds a face)
    haar_only = {"source.present": True, "source.face.nudenet": 0.1, "source.face.haar_count": 1}
    assert decide({**s, **haar_only}, surface="edit")["action"] == "block"


def test_minor_flag_with_any_sexual_signal_blocks_and_escalates_never_holds():
    for signals in ({"nudity.suggestive": 0.25}, {"nudity.exposed": 0.9}, {"nudity.explicit": 0.99},
                    {"nudity.exposed": 0.2753}):
        d = decide(signals, {"minor": True})
        c = cat(d, "child_sexual_exploitation")
        assert d["action"] == "block" and d["escalate"] is True, signals
        assert c["action"] == "block" and c["escalate"] is True and c["risk"] == 1.0
    # a minor with no sexual signal is not CSE (a child at a birthday party)
    d = decide({"nudity.exposed": 0.0, "face.nudenet": 0.9}, {"minor": True})
    assert d["action"] == "allow" and cat(d, "child_sexual_exploitation") is None
    # ...but a sexual request from the prompt layer about a minor is
    d = decide({"nudity.exposed": 0.0}, {"minor": True, "prompt_risk": {"sexual_content": 0.4}})
    assert d["action"] == "block" and d["escalate"] is True


def test_cse_is_never_held_even_at_low_prompt_risk():
    d = decide({}, {"prompt_risk": {"child_sexual_exploitation": 0.31}})
    assert d["action"] == "block" and d["escalate"] is True
    d = decide({}, {"prompt_risk": {"child_sexual_exploitation": 0.1}})
    assert d["action"] == "allow"  # below the policy's block_at: the prompt layer decided it was no CSE


def test_hash_bank_hits():
    m = {"bank_id": "b", "entry_id": "e1", "category": "sex_related_crimes", "distance": 4,
         "variant": "original", "entry_hash": "0" * 64}
    d = decide({"hashbank.checked": True, "hashbank.match": m})
    assert d["action"] == "block" and cat(d, "sex_related_crimes")["risk"] == 1.0
    assert d["escalate"] is False  # the default policy does not escalate intimate-image abuse
    d = decide({"hashbank.checked": True, "hashbank.match": {**m, "category": "child_sexual_exploitation"}})
    assert d["action"] == "block" and d["escalate"] is True


def test_prompt_risk_merged_by_max():
    d = decide({"nudity.exposed": 0.9}, {"prompt_risk": {"sexual_content": 0.9, "privacy": 0.55}})
    assert cat(d, "sexual_content")["risk"] == 0.9 and d["action"] == "block"
    assert cat(d, "privacy")["action"] == "hold"


def test_detector_failure_fails_closed():
    d = decide({"nudity.explicit": 0.0, "detector_error.nudity": "RuntimeError: boom"})
    assert d["action"] == "hold" and d["detector_failures"] == ["detector_error.nudity"]


def test_category_missing_from_policy_is_held():
    text = """
schema: custody.policy/v1
policy_id: tiny
version: 1.0.0
taxonomy: mlcommons-ailuminate-v1.0
surfaces: [imagine, edit]
categories:
  child_sexual_exploitation: {block_at: 0.3, escalate: true}
"""
    p = load_policy_text(text)
    d = decide({"nudity.explicit": 0.95}, policy=p)
    assert d["action"] == "hold" and cat(d, "sexual_content")["in_policy"] is False
    assert d["policy"] == {"policy_id": "tiny", "version": "1.0.0", "sha256": p.sha256}


def test_bad_surface_and_context():
    with pytest.raises(InvalidSurface):
        decide({}, surface="fax")
    for ctx in ({"minor": "yes"}, {"prompt_risk": {"nope": 0.5}}, {"prompt_risk": {"privacy": 2}}, {"x": 1}):
        with pytest.raises(dec.InvalidContext):
            decide({}, ctx)
    assert issubclass(dec.InvalidContext, PipelineError) and dec.InvalidContext.exit_code == 2


# --- determinism and replay -------------------------------------------------------------------

def test_decision_is_deterministic_and_replays_exactly():
    s = {"nudity.exposed": 0.7, **FACE_SOURCE, "pdq.hash": "ab" * 32, "watermark.found": False}
    a = decide(s, {"request_id": "r1"}, surface="edit")
    b = decide(copy.deepcopy(s), {"request_id": "r1"}, surface="edit")
    assert a == b and len(a["decision_sha256"]) == 64
    record = json.loads(json.dumps(a))  # as stored
    assert dec.replay(record, POLICY) == a
    changed = decide({**s, "nudity.exposed": 0.7001}, {"request_id": "r1"}, surface="edit")
    assert changed["decision_sha256"] != a["decision_sha256"]
    with pytest.raises(dec.ReplayMismatch):
        dec.replay({**record, "policy": {"sha256": "f" * 64}}, POLICY)


def test_pipeline_version_deterministic_and_covers_policy_and_models():
    v1, v2 = pipeline_version(POLICY), pipeline_version(POLICY)
    assert v1 == v2 and len(v1["sha256"]) == 64
    c = v1["components"]
    assert c["policy"]["sha256"] == POLICY.sha256
    assert len(c["models"]["nudenet_onnx"]["sha256"]) == 64 and len(c["models"]["haar_cascade"]["sha256"]) == 64
    assert c["libraries"]["pdqhash"] != "absent" and c["libraries"]["nudenet"] == det.NUDENET_PINNED
    other = load_policy_text(POLICY.canonical_json.decode().replace(f'"version":"{POLICY.version}"', '"version":"9.9.9"'), "json")
    assert other.sha256 != POLICY.sha256
    assert pipeline_version(other)["sha256"] != v1["sha256"]


# --- end to end on pixels ---------------------------------------------------------------------

skdata = pytest.importorskip("skimage.data")


def _bgr(name: str) -> np.ndarray:
    img = getattr(skdata, name)()
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("analyse")
    astro, coffee = _bgr("astronaut"), _bgr("coffee")
    cv2.imwrite(str(t / "astronaut.png"), astro)
    cv2.imwrite(str(t / "coffee.png"), coffee)
    cv2.imwrite(str(t / "astronaut_reupload.jpg"), cv2.flip(astro, 1), [cv2.IMWRITE_JPEG_QUALITY, 70])
    marked = wm.embed(coffee, 0xC0FFEE, b"k1")
    cv2.imwrite(str(t / "ours.jpg"), marked, [cv2.IMWRITE_JPEG_QUALITY, 80])
    (t / "bank.txt").write_text(f"{hb.pdq_dihedral(astro).hash},ncii-7,sex_related_crimes\n")
    vw = cv2.VideoWriter(str(t / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 8, (256, 256))
    for i in range(10):
        frame = cv2.resize(coffee if i < 6 else astro, (256, 256))
        vw.write(frame)
    vw.release()
    (t / "truncated.png").write_bytes((t / "coffee.png").read_bytes()[:5000])
    (t / "liar.png").write_bytes((t / "ours.jpg").read_bytes())
    return t


def test_analyse_benign_image_allows_and_is_deterministic(files):
    a = analyse_file(files / "coffee.png")
    b = analyse_file(files / "coffee.png")
    assert a == b and a["action"] == "allow"
    assert a["subject"]["width"] == 600 and a["signals"]["nudity.explicit"] == 0.0
    assert a["signals"]["face.haar_skipped"] == "no nudity signal" and "face.haar_count" not in a["signals"]
    assert a["pipeline_version"] == pipeline_version(POLICY)["sha256"]
    assert dec.replay(json.loads(json.dumps(a)), POLICY)["decision_sha256"] == a["decision_sha256"]


def test_analyse_edit_of_real_face_with_nudity_blocks(files, monkeypatch):
    """Source: the astronaut portrait (a real face). Output: the coffee photo with NudeNet's output
    *stubbed* to report exposed nudity — the stand-in for an undressing edit."""
    real = det._nudenet_model()

    class Stub:
        def detect(self, img):
            if img.shape[:2] == (400, 600):
                return [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.7, "box": [10, 10, 50, 50]}]
            return real.detect(img)

    monkeypatch.setattr(det, "_nudenet_model", lambda: Stub())
    d = analyse_file(files / "coffee.png", surface="edit", source_path=files / "astronaut.png")
    assert d["signals"]["source.face.nudenet"] >= 0.5 and d["signals"]["source.face.haar_count"] == 1
    assert d["signals"]["face.haar_count"] == 0  # nudity on the output: the Haar second opinion ran
    assert d["action"] == "block" and cat(d, "nonconsensual_intimate_edit")["action"] == "block"
    no_source = analyse_file(files / "coffee.png", surface="edit")
    assert no_source["action"] == "allow"  # 0.56 sexual content; the real-person context made the difference


def test_analyse_hash_bank_hit_on_mirrored_reupload(files):
    d = analyse_file(files / "astronaut_reupload.jpg", hash_bank_path=files / "bank.txt")
    m = d["signals"]["hashbank.match"]
    assert m["entry_id"] == "ncii-7" and m["variant"] != "original"
    assert d["action"] == "block" and d["subject"]["hash_banks"][0]["entries"] == 1
    assert analyse_file(files / "coffee.png", hash_bank_path=files / "bank.txt")["signals"]["hashbank.match"] is None


def test_analyse_recognises_our_watermark_after_reencode(files):
    d = analyse_file(files / "ours.jpg", key=b"k1")
    assert d["signals"]["watermark.found"] is True and d["signals"]["watermark.payload"] == f"{0xC0FFEE:016x}"
    assert d["action"] == "allow"
    assert analyse_file(files / "ours.jpg", key=b"other")["signals"]["watermark.found"] is False


def test_analyse_reads_our_content_credentials_and_survives_their_stripping(files, tmp_path):
    """Marked with the real marking step (watermark + signed C2PA manifest): the manifest is Trusted
    against our root and names the same payload as the pixels; after re-encoding (metadata gone) only
    the watermark remains — and still says it is ours."""
    from pipeline import credentials as cr
    from pipeline import marking

    chain = cr.create_signing_chain(tmp_path / "chain", "Custody test")
    png = (files / "coffee.png").read_bytes()
    res = marking.mark(png, "image/png", 0xABCDEF, b"k2", "test-model@1.0", chain)
    (tmp_path / "marked.png").write_bytes(res.image_bytes)
    d = analyse_file(tmp_path / "marked.png", key=b"k2".hex(), trust_anchor_path=chain.root_cert)
    s = d["signals"]
    assert s["c2pa.present"] and s["c2pa.trusted"] and s["c2pa.ours"] and s["c2pa.ai_generated"]
    assert s["c2pa.watermark_payload"] == s["watermark.payload"] == f"{0xABCDEF:016x}"
    assert s["provenance.mismatch"] is False and len(d["subject"]["trust_anchor_sha256"]) == 64
    untrusted = analyse_file(tmp_path / "marked.png", key=b"k2")  # no anchor: not ours by manifest
    assert untrusted["signals"]["c2pa.present"] and not untrusted["signals"]["c2pa.ours"]
    pixels = cv2.imdecode(np.frombuffer(res.image_bytes, np.uint8), cv2.IMREAD_COLOR)
    cv2.imwrite(str(tmp_path / "stripped.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, 85])
    s = analyse_file(tmp_path / "stripped.jpg", key=b"k2", trust_anchor_path=chain.root_cert)["signals"]
    assert s["c2pa.present"] is False and s["watermark.found"] is True
    assert s["watermark.payload"] == f"{0xABCDEF:016x}"


def test_analyse_video_frames(files):
    d = analyse_file(files / "clip.avi", hash_bank_path=files / "bank.txt")
    s = d["signals"]
    assert d["subject"]["kind"] == "video" and s["video.frames_analysed"] == 8
    assert d["subject"]["frames_read"] == 10 and len(s["video.pdq_frames"]) == 8
    assert s["face.nudenet"] >= 0.5  # the astronaut frames
    assert s["hashbank.match"]["entry_id"] == "ncii-7"  # a frame hit blocks the whole video
    assert d["action"] == "block"
    assert analyse_file(files / "clip.avi", hash_bank_path=files / "bank.txt") == d


def test_analyse_malformed_files(files):
    with pytest.raises(CorruptImage):
        analyse_file(files / "truncated.png")
    with pytest.raises(ImageTypeMismatch):
        analyse_file(files / "liar.png")
    with pytest.raises(ImageError):
        analyse_file(files / "missing.png")
    with pytest.raises(InvalidSurface):
        analyse_file(files / "coffee.png", surface="fax")


def test_provenance_mismatch_when_manifest_and_pixels_disagree(files, monkeypatch):
    """A manifest transplanted onto another marked image: its payload is not the pixels' payload."""
    def fake_credentials(data, anchor=None):
        return det.DetectorResult("credentials", "stub", {"c2pa.present": True, "c2pa.state": "Trusted",
                                                          "c2pa.trusted": True, "c2pa.ours": True,
                                                          "c2pa.ai_generated": True,
                                                          "c2pa.watermark_payload": "00000000deadbeef"})

    monkeypatch.setattr(det, "credentials", fake_credentials)
    s = analyse_file(files / "ours.jpg", key=b"k1")["signals"]
    assert s["watermark.payload"] == f"{0xC0FFEE:016x}" and s["provenance.mismatch"] is True
