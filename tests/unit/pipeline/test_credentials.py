"""pipeline/credentials.py: certificate chain, C2PA sign / read (offline), tampering, no thumbnail, bad input.

Images are drawn with numpy / OpenCV here; the chain is made per test module in a temp folder.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import threading
import time

import c2pa
import cv2
import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pipeline import credentials as cr
from pipeline.errors import PipelineError

FORMATS = [("image/png", ".png"), ("image/jpeg", ".jpg")]
PAYLOAD = 0x0123456789ABCDEF


def _image(seed: int = 0, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.stack([xx, yy, (xx + yy) / 2], -1) * (255.0 / size)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(img: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> cr.ChainPaths:
    return cr.create_signing_chain(tmp_path_factory.mktemp("chain") / "keys", "Acme Generative")


@pytest.fixture(scope="module")
def other_chain(tmp_path_factory: pytest.TempPathFactory) -> cr.ChainPaths:
    return cr.create_signing_chain(tmp_path_factory.mktemp("other"), "Someone Else")


INFO = cr.ManifestInfo("acme-diffusion", "2.1.0", PAYLOAD, "wm-test")


@pytest.fixture(scope="module", params=FORMATS, ids=["png", "jpeg"])
def signed(request: pytest.FixtureRequest, chain: cr.ChainPaths) -> tuple[str, bytes, bytes]:
    mime, ext = request.param
    original = _encode(_image(), ext)
    return mime, original, cr.sign_image(original, mime, INFO, chain)


# ------------------------------------------------------------------------------------------------
# chain


def test_chain_files_modes_and_extensions(chain: cr.ChainPaths) -> None:
    assert stat.S_IMODE(os.stat(chain.directory).st_mode) == 0o700
    for key in (chain.root_key, chain.signing_key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    root = x509.load_pem_x509_certificate(chain.root_cert.read_bytes())
    (leaf,) = x509.load_pem_x509_certificates(chain.signing_chain.read_bytes())
    leaf.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert cr.OID_DOCUMENT_SIGNING in eku and ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert leaf.signature_hash_algorithm is not None and leaf.public_key().curve.name == "secp256r1"
    org = leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value
    assert org == "Acme Generative"


def test_chain_is_never_overwritten(chain: cr.ChainPaths) -> None:
    before = {p: p.read_bytes() for p in (chain.root_cert, chain.root_key, chain.signing_chain, chain.signing_key)}
    with pytest.raises(cr.ChainExists) as e:
        cr.create_signing_chain(chain.directory, "Acme Generative")
    assert e.value.exit_code == 2 and isinstance(e.value, PipelineError)
    assert {p: p.read_bytes() for p in before} == before


def test_chain_one_existing_file_blocks_everything(tmp_path) -> None:
    (tmp_path / cr.SIGNING_KEY).write_bytes(b"precious")
    with pytest.raises(cr.ChainExists, match=cr.SIGNING_KEY):
        cr.create_signing_chain(tmp_path, "Acme")
    assert sorted(p.name for p in tmp_path.iterdir()) == [cr.SIGNING_KEY]
    assert (tmp_path / cr.SIGNING_KEY).read_bytes() == b"precious"


@pytest.mark.parametrize("org", ["", "   ", "x" * 65, None])
def test_chain_bad_organisation(tmp_path, org) -> None:
    with pytest.raises(cr.CredentialsError):
        cr.create_signing_chain(tmp_path, org)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# sign and read


def test_sign_then_read_is_trusted_with_our_assertions(signed, chain: cr.ChainPaths) -> None:
    mime, _original, out = signed
    rep = cr.read_credentials(out, mime, chain.root_cert.read_bytes())
    assert rep.manifest_present and rep.validation_state == "Trusted" and rep.trusted
    assert rep.failure_codes == () and "assertion.dataHash.match" in rep.success_codes
    assert rep.findings == ()
    assert rep.actions == ("c2pa.created",)
    assert rep.digital_source_type == cr.TRAINED_ALGORITHMIC_MEDIA
    assert rep.model == {"name": "acme-diffusion", "version": "2.1.0"}
    assert rep.soft_binding_alg == cr.WATERMARK_ALG == "io.custody.watermark.v1"
    assert rep.watermark_payload == PAYLOAD
    marking = rep.assertions[cr.MARKING_LABEL]
    assert marking["watermark"] == {"alg": cr.WATERMARK_ALG, "payload": f"{PAYLOAD:016x}", "version": "wm-test"}
    assert rep.signer["issuer"] == "Acme Generative" and rep.signer["alg"].lower() == "es256"
    assert rep.to_dict()["watermark_payload_hex"] == "0123456789abcdef"
    # the anchor may also be given as a Path or as text, and the type may be sniffed
    assert cr.read_credentials(out, None, chain.root_cert).validation_state == "Trusted"
    assert cr.read_credentials(out, mime, chain.root_cert.read_text()).trusted


def test_pixels_untouched_and_nondeterminism_is_only_the_manifest(signed, chain: cr.ChainPaths) -> None:
    mime, original, out = signed
    a = cv2.imdecode(np.frombuffer(original, np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(a, b)
    again = cr.sign_image(original, mime, INFO, chain)
    assert len(again) == len(out) and again != out  # fresh UUIDs and ECDSA nonce
    r1 = cr.read_credentials(out, mime, chain.root_cert)
    r2 = cr.read_credentials(again, mime, chain.root_cert)
    assert r1.manifest_label != r2.manifest_label
    assert r1.assertions == r2.assertions


def test_untrusted_without_or_with_a_foreign_anchor(signed, other_chain: cr.ChainPaths) -> None:
    mime, _, out = signed
    for anchor in (None, other_chain.root_cert):
        rep = cr.read_credentials(out, mime, anchor)
        assert rep.validation_state == "Valid" and not rep.trusted
        assert "signingCredential.untrusted" in rep.failure_codes
        assert rep.watermark_payload == PAYLOAD  # still readable, just not trusted


def _image_data_offset(data: bytes, mime: str) -> int:
    if mime == "image/png":
        i = data.rfind(b"IDAT")
        assert i > 0
        return i + 4 + 20  # inside the compressed pixel data
    i = data.rfind(b"\xff\xda")  # start of scan: entropy-coded pixel data follows its header
    assert i > 0
    j = i + 2 + int.from_bytes(data[i + 2:i + 4], "big") + 50
    while data[j] >= 0xFE or data[j - 1] == 0xFF:  # keep the marker structure intact
        j += 1
    return j


def test_one_changed_byte_in_the_image_data_is_invalid(signed, chain: cr.ChainPaths) -> None:
    mime, _, out = signed
    tampered = bytearray(out)
    tampered[_image_data_offset(out, mime)] ^= 0x01
    rep = cr.read_credentials(bytes(tampered), mime, chain.root_cert)
    assert rep.validation_state == "Invalid" and not rep.trusted
    assert "assertion.dataHash.mismatch" in rep.failure_codes
    assert "state_invalid" in rep.findings


def test_no_thumbnail_and_no_copy_of_the_image(signed, chain: cr.ChainPaths) -> None:
    mime, _, out = signed
    rep = cr.read_credentials(out, mime, chain.root_cert)
    assert rep.thumbnail_present is False
    assert not [lbl for lbl in rep.assertion_labels if "thumbnail" in lbl]
    reader = c2pa.Reader(mime, io.BytesIO(out))
    assert "thumbnail" not in reader.json()
    reader.close()
    # no second image inside the file (a thumbnail would be a second PNG or JPEG stream)
    assert out.count(b"\x89PNG\r\n\x1a\n") == (1 if mime == "image/png" else 0)
    assert out.count(b"\xff\xd8\xff") == (1 if mime == "image/jpeg" else 0)


def test_control_the_sdk_default_would_embed_a_thumbnail(chain: cr.ChainPaths) -> None:
    """Proves the checks above can fail: with the SDK's default settings a thumbnail is embedded."""
    original = _encode(_image(), ".png")
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256, chain.signing_chain.read_bytes(), chain.signing_key.read_bytes(), None))
    builder = c2pa.Builder(INFO.manifest(), context=c2pa.Context(settings=c2pa.Settings.from_dict(
        {"builder": {"thumbnail": {"enabled": True}}})))
    dst = io.BytesIO()
    builder.sign(signer, "image/png", io.BytesIO(original), dst)
    out = dst.getvalue()
    assert out.count(b"\xff\xd8\xff") >= 1  # a JPEG thumbnail inside the PNG
    assert cr.read_credentials(out, "image/png", chain.root_cert).thumbnail_present is True


def test_stripped_metadata_has_no_manifest(signed, chain: cr.ChainPaths) -> None:
    mime, _, out = signed
    pixels = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
    stripped = _encode(pixels, ".png" if mime == "image/png" else ".jpg")
    rep = cr.read_credentials(stripped, mime, chain.root_cert)
    assert not rep.manifest_present and rep.validation_state is None
    assert rep.findings == ("no_manifest",)


# ------------------------------------------------------------------------------------------------
# bad input: findings for image bytes, errors for the caller's mistakes


def test_corrupt_bytes_are_findings_not_crashes(signed, chain: cr.ChainPaths) -> None:
    mime, _, out = signed
    cases = [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\xff\xd8\xff\xe0" + b"\x00" * 40, b"hello world",
             os.urandom(4096), out[: len(out) // 2], out[:200], out[:-20]]
    rng = np.random.default_rng(7)
    for _ in range(25):
        b = bytearray(out)
        for pos in rng.integers(0, len(b), 4):
            b[int(pos)] = int(rng.integers(0, 256))
        cases.append(bytes(b))
    for data in cases:
        for m in (mime, None):
            rep = cr.read_credentials(data, m, chain.root_cert)
            assert isinstance(rep, cr.CredentialsReport)
            assert rep.validation_state in (None, "Valid", "Invalid", "Trusted")
            if not rep.manifest_present:
                assert rep.findings and rep.findings[0] in ("empty", "no_manifest", "unreadable",
                                                            "unsupported_type")
    assert cr.read_credentials(b"", mime, None).findings == ("empty",)
    assert cr.read_credentials(b"GIF89a....", None, None).findings == ("unsupported_type",)
    assert cr.read_credentials(out[: len(out) // 3], mime, None).validation_state != "Trusted"


def test_read_caller_errors(signed) -> None:
    mime, _, out = signed
    with pytest.raises(cr.CredentialsError):
        cr.read_credentials("not bytes", mime, None)  # type: ignore[arg-type]
    with pytest.raises(cr.InvalidChain):
        cr.read_credentials(out, mime, b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(cr.CredentialsError):
        cr.read_credentials(out, mime, 42)  # type: ignore[arg-type]


def test_sign_bad_inputs(chain: cr.ChainPaths, tmp_path) -> None:
    png = _encode(_image(), ".png")
    with pytest.raises(cr.UnsupportedImageType):
        cr.sign_image(png, "image/gif", INFO, chain)
    with pytest.raises(cr.InvalidImage):
        cr.sign_image(png, "image/jpeg", INFO, chain)  # bytes do not match the type
    with pytest.raises(cr.InvalidImage):
        cr.sign_image(b"", "image/png", INFO, chain)
    with pytest.raises(cr.CredentialsError):
        cr.sign_image(None, "image/png", INFO, chain)  # type: ignore[arg-type]
    with pytest.raises(PipelineError):  # a PNG signature and nothing else
        cr.sign_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, "image/png", INFO, chain)
    with pytest.raises(cr.ChainNotFound) as e:
        cr.sign_image(png, "image/png", INFO, tmp_path / "missing")
    assert e.value.exit_code == 3
    # a key that does not belong to the certificate
    other = cr.create_signing_chain(tmp_path / "o", "Other")
    mixed = cr.ChainPaths(tmp_path, chain.root_cert, chain.root_key, chain.signing_chain, other.signing_key)
    with pytest.raises(cr.InvalidChain, match="does not match"):
        cr.sign_image(png, "image/png", INFO, mixed)
    # the dict form of the manifest info works, bad values are refused
    out = cr.sign_image(png, "png", {"model_name": "m", "model_version": "1"}, chain)
    rep = cr.read_credentials(out, "image/png", chain.root_cert)
    assert rep.trusted and rep.soft_binding_alg is None and rep.watermark_payload is None
    for bad in ({"model_name": "", "model_version": "1"}, {"model_name": "m", "model_version": "1",
                                                         "watermark_payload": -1},
                {"model_name": "m", "model_version": "1", "watermark_payload": 1 << 64},
                {"model_name": "m", "model_version": "1", "watermark_payload": True}):
        with pytest.raises(cr.CredentialsError):
            cr.ManifestInfo(**bad)


def test_a_stock_verifier_with_our_root_trusts_it(signed, chain: cr.ChainPaths) -> None:
    """Interop: the SDK's default trust configuration plus our root (no EKU list of ours) -> Trusted,
    because the leaf also carries emailProtection."""
    mime, _, out = signed
    ctx = c2pa.Context(settings=c2pa.Settings.from_dict(
        {"trust": {"user_anchors": chain.root_cert.read_text()}, "verify": {"remote_manifest_fetch": False}}))
    reader = c2pa.Reader(mime, io.BytesIO(out), context=ctx)
    assert reader.get_validation_state() == "Trusted"
    reader.close()


def test_a_remote_manifest_reference_is_never_fetched(chain: cr.ChainPaths) -> None:
    hits: list[int] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            hits.append(1)
            conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/manifest.c2pa"
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
            c2pa.C2paSigningAlg.ES256, chain.signing_chain.read_bytes(), chain.signing_key.read_bytes(), None))
        builder = c2pa.Builder(INFO.manifest(), context=c2pa.Context(settings=cr._settings()))
        builder.set_no_embed()
        builder.set_remote_url(url)
        dst = io.BytesIO()
        builder.sign(signer, "image/png", io.BytesIO(_encode(_image(), ".png")), dst)
        rep = cr.read_credentials(dst.getvalue(), "image/png", chain.root_cert)
        assert rep.findings == ("remote_manifest_not_fetched",) and not rep.manifest_present
        time.sleep(0.1)
        assert hits == []
        # control: the SDK's defaults do fetch it (so the assertion above can fail)
        with pytest.raises(c2pa.C2paError):
            c2pa.Reader("image/png", io.BytesIO(dst.getvalue()))
        deadline = time.monotonic() + 2
        while not hits and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hits
    finally:
        stop.set()
        t.join(1)
        srv.close()


def test_no_change_in_the_image_half_of_the_file_stays_trusted(signed, chain: cr.ChainPaths) -> None:
    """Sampled: a flipped byte anywhere in the second half of the file (pixel data, well past the
    ~3 KB manifest) is never Trusted. (Flips inside the manifest's reserved signature padding can
    stay Trusted: the SDK does not cover that padding; measured, not pixels.)"""
    mime, _, out = signed
    for pos in np.linspace(len(out) // 2, len(out) - 3, 12).astype(int):
        b = bytearray(out)
        b[int(pos)] ^= 0x10
        rep = cr.read_credentials(bytes(b), mime, chain.root_cert)
        assert rep.validation_state != "Trusted", int(pos)


def test_report_survives_any_json_shape() -> None:
    """A tampered manifest can decode to any JSON; the report builder type-checks every field."""
    weird = [None, [], {"active_manifest": 3}, {"active_manifest": "a", "manifests": []},
             {"active_manifest": "a", "manifests": {"a": {"assertions": {"x": 1}}}},
             {"active_manifest": "a", "manifests": {"a": {"assertions": [
                 {"label": "c2pa.soft-binding", "data": {"alg": cr.WATERMARK_ALG, "blocks": {"0": 1}}},
                 {"label": "c2pa.actions.v2", "data": {"actions": [None, {"action": "c2pa.created",
                                                                          "softwareAgent": 5}]}}],
                 "ingredients": [None], "signature_info": "x"}},
              "validation_results": {"activeManifest": {"failure": [None, {"code": "x"}]}}}]
    for store in weird:
        rep = cr._report(store, "Invalid")
        assert rep.manifest_present and rep.validation_state == "Invalid"
