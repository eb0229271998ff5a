"""pipeline/marking.py and cli_functions.mark_file: watermark + C2PA in one step, determinism, stripping,
tampering, bad input."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from pipeline import credentials as cr
from pipeline import marking
from pipeline import watermark as wm
from pipeline.cli_functions import mark_file
from pipeline.errors import PipelineError

KEY = b"custody-marking-test-key"
PAYLOAD = 0xFEEDFACE00C0FFEE
FORMATS = [("image/png", ".png"), ("image/jpeg", ".jpg")]


def _image(seed: int = 3, size: int = 384) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.stack([xx, yy, 255 - xx], -1) * (255.0 / size)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(8):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(img, tuple(int(v) for v in rng.integers(0, size, 2)), int(rng.integers(10, 60)), c, -1)
    return img


def _encode(img: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok
    return buf.tobytes()


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> cr.ChainPaths:
    return cr.create_signing_chain(tmp_path_factory.mktemp("chain"), "Acme Generative")


@pytest.fixture(scope="module", params=FORMATS, ids=["png", "jpeg"])
def marked(request: pytest.FixtureRequest, chain: cr.ChainPaths):
    mime, ext = request.param
    original = _encode(_image(), ext)
    return mime, ext, original, marking.mark(original, mime, PAYLOAD, KEY, "acme-diffusion@2.1.0", chain)


def test_mark_watermarks_and_signs(marked, chain: cr.ChainPaths) -> None:
    mime, _, original, res = marked
    assert res.mime == mime and res.watermark_payload == PAYLOAD and (res.width, res.height) == (384, 384)
    assert res.watermark_verified is True and res.notes == ()
    assert res.psnr_db >= 38.0
    assert res.image_bytes != original
    found = wm.detect(_decode(res.image_bytes), KEY)
    assert found.found and found.payload == PAYLOAD
    rep = cr.read_credentials(res.image_bytes, mime, chain.root_cert)
    assert rep.validation_state == "Trusted"
    assert rep.watermark_payload == PAYLOAD and rep.soft_binding_alg == cr.WATERMARK_ALG
    assert rep.model == {"name": "acme-diffusion", "version": "2.1.0"}
    assert rep.assertions[cr.MARKING_LABEL]["watermark"]["version"] == wm.WATERMARK_VERSION
    assert not rep.thumbnail_present
    m = res.manifest
    assert m["validation_state"] == "Trusted" and m["label"] == rep.manifest_label
    assert m["thumbnail"] is False and m["soft_binding"]["payload_hex"] == f"{PAYLOAD:016x}"
    d = res.to_dict()
    assert "image_bytes" not in d and d["bytes"] == len(res.image_bytes)


def test_mark_is_deterministic_except_the_c2pa_manifest(marked, chain: cr.ChainPaths) -> None:
    mime, _, original, res = marked
    again = marking.mark(original, mime, PAYLOAD, KEY, ("acme-diffusion", "2.1.0"), chain)
    assert again.unsigned_sha256 == res.unsigned_sha256  # decode, watermark, encode: deterministic
    assert again.signed_sha256 != res.signed_sha256  # manifest label, instance id, ECDSA nonce
    assert np.array_equal(_decode(again.image_bytes), _decode(res.image_bytes))
    # a different payload or key changes the pixels
    other = marking.mark(original, mime, PAYLOAD ^ 1, KEY, "acme-diffusion@2.1.0", chain, verify=False)
    assert other.unsigned_sha256 != res.unsigned_sha256 and other.watermark_verified is None


def test_stripped_metadata_keeps_the_watermark(marked, chain: cr.ChainPaths) -> None:
    _mime, ext, _, res = marked
    pixels = _decode(res.image_bytes)
    for stripped in (_encode(pixels, ext), _encode(pixels, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 80])):
        rep = cr.read_credentials(stripped, None, chain.root_cert)
        assert not rep.manifest_present and rep.findings == ("no_manifest",)
        found = wm.detect(_decode(stripped), KEY)
        assert found.found and found.payload == PAYLOAD
    # and the wrong key does not read it
    assert wm.detect(pixels, b"another key").payload != PAYLOAD


def test_one_changed_pixel_after_marking_is_invalid(marked, chain: cr.ChainPaths) -> None:
    mime, _, _, res = marked
    data = bytearray(res.image_bytes)
    if mime == "image/png":
        pos = data.rfind(b"IDAT") + 30
    else:
        sos = data.rfind(b"\xff\xda")
        pos = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big") + 64
        while data[pos] >= 0xFE or data[pos - 1] == 0xFF:
            pos += 1
    data[pos] ^= 0x02
    rep = cr.read_credentials(bytes(data), mime, chain.root_cert)
    assert rep.validation_state == "Invalid" and "assertion.dataHash.mismatch" in rep.failure_codes


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00" * 64)


def test_mark_bad_inputs(chain: cr.ChainPaths) -> None:
    png = _encode(_image(), ".png")
    cases = [
        (lambda: marking.mark(_encode(_image(size=64), ".png"), "image/png", 1, KEY, "m@1", chain), "smaller"),
        (lambda: marking.mark(_png_header_only(100_000, 100_000), "image/png", 1, KEY, "m@1", chain), "limit"),
        (lambda: marking.mark(png[: len(png) // 2], "image/png", 1, KEY, "m@1", chain), "decoded"),
        (lambda: marking.mark(b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg", 1, KEY, "m@1", chain), "JPEG"),
        (lambda: marking.mark(png, "image/jpeg", 1, KEY, "m@1", chain), "not image/jpeg"),
        (lambda: marking.mark(png, "image/gif", 1, KEY, "m@1", chain), "cannot mark"),
        (lambda: marking.mark(b"", "image/png", 1, KEY, "m@1", chain), "empty"),
        (lambda: marking.mark(png, "image/png", -1, KEY, "m@1", chain), "payload"),
        (lambda: marking.mark(png, "image/png", 1 << 64, KEY, "m@1", chain), "payload"),
        (lambda: marking.mark(png, "image/png", True, KEY, "m@1", chain), "payload"),
        (lambda: marking.mark(png, "image/png", 1, b"", "m@1", chain), "key"),
        (lambda: marking.mark(png, "image/png", 1, KEY, "model-without-version", chain), "name@version"),
        (lambda: marking.mark(png, "image/png", 1, KEY, "@1", chain), "name@version"),
    ]
    for call, message in cases:
        with pytest.raises(PipelineError, match=message) as e:
            call()
        assert e.value.exit_code == 2 and 400 <= e.value.status < 500


def test_mark_alpha_and_grayscale_are_noted(chain: cr.ChainPaths) -> None:
    img = _image()
    bgra = np.dstack([img, np.full(img.shape[:2], 200, np.uint8)])
    res = marking.mark(_encode(bgra, ".png"), "image/png", 5, KEY, "m@1", chain)
    assert "alpha_dropped" in res.notes and res.watermark_verified
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    res = marking.mark(_encode(gray, ".png"), "image/png", 5, KEY, "m@1", chain)
    assert "grayscale_to_bgr" in res.notes and res.watermark_verified


def test_mark_file(tmp_path, chain: cr.ChainPaths) -> None:
    src = tmp_path / "gen.jpg"
    src.write_bytes(_encode(_image(), ".jpg"))
    out = tmp_path / "gen.marked.jpg"
    d = mark_file(src, out, PAYLOAD, KEY.hex(), chain.directory, "acme-diffusion@2.1.0")
    assert d["output"] == str(out) and d["mime"] == "image/jpeg" and d["watermark_verified"] is True
    assert d["manifest"]["validation_state"] == "Trusted"
    assert cr.read_credentials(out.read_bytes(), None, chain.root_cert).watermark_payload == PAYLOAD
    before = out.read_bytes()
    with pytest.raises(marking.MarkingError, match="exists"):
        mark_file(src, out, PAYLOAD, KEY.hex(), chain.directory, "acme-diffusion@2.1.0")
    assert out.read_bytes() == before
    with pytest.raises(marking.MarkingError, match="hex"):
        mark_file(src, tmp_path / "x.jpg", PAYLOAD, "zz", chain.directory, "m@1")
    with pytest.raises(marking.MarkInputNotFound) as e:
        mark_file(tmp_path / "missing.png", tmp_path / "y.png", PAYLOAD, KEY.hex(), chain.directory, "m@1")
    assert e.value.exit_code == 3
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(marking.MarkingError, match="not a PNG or JPEG"):
        mark_file(tmp_path / "notes.txt", tmp_path / "z.png", PAYLOAD, KEY.hex(), chain.directory, "m@1")
    with pytest.raises(cr.ChainNotFound):
        mark_file(src, tmp_path / "w.jpg", PAYLOAD, KEY.hex(), tmp_path / "nochain", "m@1")
    assert not (tmp_path / "w.jpg").exists()
