"""Signed Content Credentials (C2PA) for generated images, with ``c2pa-python``, offline.

API
---
* :func:`create_signing_chain` ``(directory, organisation) -> ChainPaths``: a root CA and an ES256
  signing certificate made with ``cryptography``; key files are written 0600 with O_EXCL and are
  never overwritten. ``custody init`` calls it.
* :func:`sign_image` ``(image_bytes, mime, manifest_info, chain_paths) -> bytes``: the image with an
  embedded, signed manifest (PNG and JPEG).
* :func:`read_credentials` ``(image_bytes, mime, trust_anchor_pem) -> CredentialsReport``: never raises
  on the image bytes (no manifest, stripped metadata, corrupt or truncated bytes are *findings*); raises
  :class:`CredentialsError` only for a caller's mistake (not bytes, a bad trust anchor).

What the manifest says (and does not)
-------------------------------------
* ``c2pa.actions.v2`` with one ``c2pa.created`` action, ``digitalSourceType`` trainedAlgorithmicMedia
  (IPTC), ``softwareAgent`` = the model name and version.
* ``c2pa.soft-binding`` naming our watermark: ``alg`` :data:`WATERMARK_ALG` and one block whose ``value``
  is the 64-bit payload, big-endian, base64 (the C2PA soft-binding map carries values as text).
* ``io.custody.marking``: the model, the watermark payload in hex and the watermark scheme version, so a
  reader need not decode base64.
* **No thumbnail.** ``builder.thumbnail.enabled = false``: by default the SDK copies a JPEG thumbnail of
  the image into the manifest, which for abuse material would be a second copy of it. No ingredients
  either (an ingredient would carry its own thumbnail). No title (file names can carry prompts).

Offline
-------
Settings turn off remote-manifest fetching and OCSP fetching, so reading an untrusted upload that
points at a remote manifest makes no network request. No timestamp authority is used: the claim then
carries no trusted signing time (a TSA can be added later with ``C2paSignerInfo``'s ``ta_url``).

Certificates (see shared/design/MEASURED.md, "c2pa-python 0.38 offline")
-------------------------------------------------------------------------
The leaf carries the EKUs documentSigning (1.3.6.1.5.5.7.3.36, what the C2PA spec names) *and*
emailProtection (the only one the SDK's default trust configuration accepts), so it validates both
with our explicit trust configuration (:data:`ALLOWED_EKUS`) and with a stock verifier given our root.
AuthorityKeyIdentifier / SubjectKeyIdentifier, KeyUsage digitalSignature (critical), BasicConstraints
CA=false. The root is a CA with pathLen 0 and keyCertSign / cRLSign. The embedded chain is the leaf
only: the root is the trust anchor and travels separately (``root_cert``).

Non-determinism
---------------
Signing the same bytes twice gives the same length but different bytes in the manifest: the manifest
label (``urn:c2pa:<UUID v4>``), the ``instance_id`` (``xmp.iid:<UUID v4>``) and the ECDSA signature
(random nonce). Nothing else (no time without a TSA). Image pixels are untouched by signing.

This module imports nothing from ``ledger``, ``api`` or ``sandbox``.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import PipelineError

CREDENTIALS_VERSION = "custody-c2pa/1"
WATERMARK_ALG = "io.custody.watermark.v1"
MARKING_LABEL = "io.custody.marking"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SIGNABLE_MIMES = ("image/png", "image/jpeg")
MAX_IMAGE_BYTES = 64 * 1024 * 1024

OID_DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
OID_C2PA_CLAIM_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
#: EKUs our reader accepts for a signing certificate (passed as ``trust.trust_config``)
ALLOWED_EKUS = (ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string, OID_DOCUMENT_SIGNING.dotted_string,
                OID_C2PA_CLAIM_SIGNING.dotted_string)

ROOT_CERT = "c2pa-root-ca.pem"
ROOT_KEY = "c2pa-root-ca.key"
SIGNING_CHAIN = "c2pa-signing-chain.pem"
SIGNING_KEY = "c2pa-signing.key"

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_MIME_ALIASES = {"image/jpg": "image/jpeg", "png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}


# --------------------------------------------------------------------------------------------------
# errors


class CredentialsError(PipelineError, ValueError):
    """Bad input to the credentials functions (the caller's mistake)."""

    status = 400
    exit_code = 2
    code = "invalid_credentials_input"


class UnsupportedImageType(CredentialsError):
    status = 415
    code = "unsupported_image_type"


class InvalidImage(CredentialsError):
    """The bytes are not an image of the declared type (or are empty / too large)."""

    code = "invalid_image"


class ChainExists(CredentialsError):
    """:func:`create_signing_chain` refuses to overwrite an existing key or certificate."""

    status = 409
    code = "signing_chain_exists"


class ChainNotFound(CredentialsError):
    status = 404
    exit_code = 3
    code = "signing_chain_not_found"


class InvalidChain(CredentialsError):
    """The signing chain / key / trust anchor files do not parse or do not match."""

    code = "invalid_signing_chain"


class SigningFailed(PipelineError):
    """The C2PA SDK refused to sign (after our own checks passed)."""

    status = 500
    exit_code = 1
    code = "c2pa_signing_failed"


# --------------------------------------------------------------------------------------------------
# certificate chain


@dataclass(frozen=True)
class ChainPaths:
    """Where :func:`create_signing_chain` wrote the chain. ``root_cert`` is the trust anchor to hand to
    verifiers; ``root_key`` should be moved offline once the signing certificate is issued."""

    directory: Path
    root_cert: Path
    root_key: Path
    signing_chain: Path
    signing_key: Path

    @classmethod
    def in_directory(cls, directory: str | Path) -> ChainPaths:
        d = Path(directory)
        return cls(d, d / ROOT_CERT, d / ROOT_KEY, d / SIGNING_CHAIN, d / SIGNING_KEY)

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or (for certs) we want exactly this
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def create_signing_chain(directory: str | Path, organisation: str, *, root_days: int = 3650,
                         leaf_days: int = 730, now: dt.datetime | None = None) -> ChainPaths:
    """Create a root CA and an ES256 (P-256) C2PA signing certificate in ``directory``.

    Writes :data:`ROOT_CERT`, :data:`ROOT_KEY` (0600), :data:`SIGNING_CHAIN` (the leaf, PEM) and
    :data:`SIGNING_KEY` (0600, PKCS#8). Never overwrites: if any of the four exists,
    :class:`ChainExists` is raised before anything is written; files are opened with O_EXCL, and if a
    write fails half-way the files this call created are removed.
    """
    if not isinstance(organisation, str) or not organisation.strip():
        raise CredentialsError("organisation must be a non-empty string")
    organisation = organisation.strip()
    if len(organisation) > 64:
        raise CredentialsError("organisation must be at most 64 characters (X.509 upper bound for O)")
    if root_days < 1 or leaf_days < 1 or leaf_days > root_days:
        raise CredentialsError("validity must be positive and the leaf's must not exceed the root's")
    paths = ChainPaths.in_directory(directory)
    existing = [p.name for p in (paths.root_cert, paths.root_key, paths.signing_chain, paths.signing_key)
                if os.path.lexists(p)]
    if existing:
        raise ChainExists(f"{paths.directory}: refusing to overwrite existing {', '.join(existing)}")
    paths.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    start = now - dt.timedelta(minutes=5)  # tolerate small clock skew between signer and verifier
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                           x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} C2PA Root CA"[:64])])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                           x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Custody provenance"),
                           x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} C2PA Signer"[:64])])
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + dt.timedelta(days=root_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(root_ski, critical=False)
            .sign(root_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(root_name)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + dt.timedelta(days=leaf_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([OID_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
                           critical=False)
            .sign(root_key, hashes.SHA256()))

    def key_pem(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    files = [(paths.root_key, key_pem(root_key), 0o600), (paths.signing_key, key_pem(leaf_key), 0o600),
             (paths.root_cert, root.public_bytes(serialization.Encoding.PEM), 0o644),
             (paths.signing_chain, leaf.public_bytes(serialization.Encoding.PEM), 0o644)]
    written: list[Path] = []
    try:
        for path, data, mode in files:
            try:
                _write_new(path, data, mode)
            except FileExistsError:
                raise ChainExists(f"{path}: appeared while the chain was being written; refusing to overwrite")
            written.append(path)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return paths


def _load_chain(chain: ChainPaths | str | Path) -> tuple[bytes, bytes]:
    paths = chain if isinstance(chain, ChainPaths) else ChainPaths.in_directory(chain)
    try:
        chain_pem = paths.signing_chain.read_bytes()
        key_pem = paths.signing_key.read_bytes()
    except FileNotFoundError as e:
        raise ChainNotFound(f"signing chain not found: {e.filename} (create it with `custody init`)") from None
    except OSError as e:
        raise ChainNotFound(f"signing chain unreadable: {e.filename}: {e.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise InvalidChain(f"signing chain in {paths.directory} does not parse: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidChain("signing key must be an EC P-256 key (ES256)")
    if certs[0].public_key().public_numbers() != key.public_key().public_numbers():
        raise InvalidChain("signing key does not match the first certificate of the signing chain")
    return chain_pem, key_pem


# --------------------------------------------------------------------------------------------------
# manifest


@dataclass(frozen=True)
class ManifestInfo:
    """What the manifest records about a generated image."""

    model_name: str
    model_version: str
    watermark_payload: int | None = None
    watermark_version: str | None = None
    watermark_alg: str = WATERMARK_ALG

    def __post_init__(self) -> None:
        for name in ("model_name", "model_version"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip() or len(v) > 200:
                raise CredentialsError(f"{name} must be a non-empty string of at most 200 characters")
        p = self.watermark_payload
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < 1 << 64):
            raise CredentialsError("watermark_payload must be an int in [0, 2**64) or None")

    def manifest(self) -> dict[str, Any]:
        agent = {"name": self.model_name, "version": self.model_version}
        assertions: list[dict[str, Any]] = [
            {"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                 "softwareAgent": agent}]}},
        ]
        marking: dict[str, Any] = {"model": agent, "credentials_version": CREDENTIALS_VERSION}
        if self.watermark_payload is not None:
            value = base64.b64encode(self.watermark_payload.to_bytes(8, "big")).decode()
            assertions.append({"label": "c2pa.soft-binding", "data": {
                "alg": self.watermark_alg, "blocks": [{"scope": {}, "value": value}], "pad": []}})
            marking["watermark"] = {"alg": self.watermark_alg, "payload": f"{self.watermark_payload:016x}",
                                    "version": self.watermark_version}
        assertions.append({"label": MARKING_LABEL, "data": marking})
        return {"claim_generator_info": [{"name": "custody-pipeline", "version": CREDENTIALS_VERSION}],
                "assertions": assertions}


def _settings(trust_anchor_pem: str | None = None) -> c2pa.Settings:
    d: dict[str, Any] = {
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        "trust": {"trust_config": "\n".join(ALLOWED_EKUS) + "\n"},
    }
    if trust_anchor_pem is not None:
        d["trust"]["user_anchors"] = trust_anchor_pem
    return c2pa.Settings.from_dict(d)


def normalise_mime(mime: object) -> str:
    if not isinstance(mime, str):
        raise UnsupportedImageType(f"mime must be a string such as 'image/png', got {type(mime).__name__}")
    m = mime.strip().lower()
    return _MIME_ALIASES.get(m, m)


def sniff_mime(data: bytes) -> str | None:
    if data.startswith(_PNG_MAGIC):
        return "image/png"
    if data.startswith(_JPEG_MAGIC):
        return "image/jpeg"
    return None


def _check_bytes(image_bytes: object) -> bytes:
    if not isinstance(image_bytes, (bytes, bytearray, memoryview)):
        raise CredentialsError(f"image_bytes must be bytes, got {type(image_bytes).__name__}")
    data = bytes(image_bytes)
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidImage(f"image is {len(data)} bytes, over the {MAX_IMAGE_BYTES} byte limit")
    return data


def sign_image(image_bytes: bytes, mime: str, manifest_info: ManifestInfo | Mapping[str, Any],
               chain_paths: ChainPaths | str | Path) -> bytes:
    """Return ``image_bytes`` with a signed C2PA manifest embedded (PNG or JPEG), offline."""
    data = _check_bytes(image_bytes)
    mime = normalise_mime(mime)
    if mime not in SIGNABLE_MIMES:
        raise UnsupportedImageType(f"cannot sign {mime!r}: only {', '.join(SIGNABLE_MIMES)}")
    if not data:
        raise InvalidImage("image is empty (0 bytes)")
    if sniff_mime(data) != mime:
        raise InvalidImage(f"bytes are not {mime} (they start with {data[:8].hex()})")
    info = manifest_info if isinstance(manifest_info, ManifestInfo) else ManifestInfo(**dict(manifest_info))
    chain_pem, key_pem = _load_chain(chain_paths)
    try:
        ctx = c2pa.Context(settings=_settings())
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain_pem, key_pem, None))
        builder = c2pa.Builder(info.manifest(), context=ctx)
        dst = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(data), dst)
    except c2pa.C2paError as e:
        text = str(e)
        if "parse" in text or "Io" in type(e).__name__ or "NotSupported" in type(e).__name__:
            raise InvalidImage(f"C2PA SDK could not parse the {mime} image: {text}") from None
        raise SigningFailed(f"C2PA signing failed: {type(e).__name__.lstrip('_')}: {text}") from None
    return dst.getvalue()


# --------------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class CredentialsReport:
    """What :func:`read_credentials` found.

    ``validation_state`` is the SDK's ``Trusted`` (signature, hashes and chain to our anchor all
    good), ``Valid`` (well-formed and hashes match, signer not trusted) or ``Invalid``; None when no
    manifest could be read (see ``findings``: ``no_manifest``, ``unreadable``, ``unsupported_type``,
    ``empty``, ``remote_manifest_not_fetched``). ``failure_codes`` are C2PA status codes from the
    active manifest (e.g. ``assertion.dataHash.mismatch``, ``signingCredential.untrusted``).
    """

    manifest_present: bool
    validation_state: str | None
    findings: tuple[str, ...] = ()
    failure_codes: tuple[str, ...] = ()
    success_codes: tuple[str, ...] = ()
    manifest_label: str | None = None
    assertions: dict[str, Any] = field(default_factory=dict)
    assertion_labels: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    digital_source_type: str | None = None
    model: dict[str, Any] | None = None
    soft_binding_alg: str | None = None
    watermark_payload: int | None = None
    signer: dict[str, Any] | None = None
    thumbnail_present: bool = False
    ingredient_count: int = 0
    detail: str | None = None

    @property
    def trusted(self) -> bool:
        return self.validation_state == "Trusted"

    def summary(self) -> dict[str, Any]:
        """A compact, JSON-ready view (no assertion bodies)."""
        d = self.to_dict()
        d.pop("assertions")
        return d

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["trusted"] = self.trusted
        if self.watermark_payload is not None:
            d["watermark_payload_hex"] = f"{self.watermark_payload:016x}"
        return d


def _trust_anchor_text(trust_anchor_pem: object) -> str | None:
    if trust_anchor_pem is None:
        return None
    if isinstance(trust_anchor_pem, Path):
        try:
            trust_anchor_pem = trust_anchor_pem.read_bytes()
        except OSError as e:
            raise ChainNotFound(f"trust anchor unreadable: {trust_anchor_pem}: {e.strerror}") from None
    if isinstance(trust_anchor_pem, str):
        trust_anchor_pem = trust_anchor_pem.encode()
    if not isinstance(trust_anchor_pem, (bytes, bytearray)):
        raise CredentialsError(f"trust_anchor_pem must be PEM bytes/str, a Path or None, "
                               f"got {type(trust_anchor_pem).__name__}")
    try:
        x509.load_pem_x509_certificates(bytes(trust_anchor_pem))
    except ValueError as e:
        raise InvalidChain(f"trust anchor is not a PEM certificate: {e}") from None
    return bytes(trust_anchor_pem).decode("ascii")


def _payload_from_block(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return int.from_bytes(raw, "big") if len(raw) == 8 else None


def read_credentials(image_bytes: bytes, mime: str | None, trust_anchor_pem: bytes | str | Path | None = None
                     ) -> CredentialsReport:
    """Read and validate the C2PA manifest of ``image_bytes``. ``mime`` None means sniff it from the
    bytes. Problems with the image are reported as findings; only caller errors raise."""
    data = _check_bytes(image_bytes)
    anchor = _trust_anchor_text(trust_anchor_pem)
    if not data:
        return CredentialsReport(False, None, findings=("empty",))
    fmt = sniff_mime(data) if mime is None else normalise_mime(mime)
    if fmt is None:
        return CredentialsReport(False, None, findings=("unsupported_type",), detail="unrecognised bytes")
    if fmt not in c2pa.Reader.get_supported_mime_types():
        return CredentialsReport(False, None, findings=("unsupported_type",), detail=fmt)
    try:
        reader = c2pa.Reader(fmt, io.BytesIO(data), context=c2pa.Context(settings=_settings(anchor)))
        try:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
        finally:
            reader.close()
    except c2pa.C2paError as e:
        kind = type(e).__name__.lstrip("_").removeprefix("C2pa")
        if kind == "ManifestNotFound":
            return CredentialsReport(False, None, findings=("no_manifest",))
        if str(e).startswith("Remote") or kind == "RemoteManifest":
            # the asset only points at a manifest elsewhere; we never fetch it (offline, and an
            # attacker-chosen URL must not make us send requests)
            return CredentialsReport(False, None, findings=("remote_manifest_not_fetched",), detail=str(e))
        return CredentialsReport(False, None, findings=("unreadable",), detail=f"{kind}: {e}")
    except ValueError as e:  # the SDK's JSON did not parse (never seen; a tampered store must not crash us)
        return CredentialsReport(True, "Invalid", findings=("unreadable",), detail=f"manifest JSON: {e}")
    return _report(store, state)


def _dict(v: object) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _codes(entries: object) -> tuple[str, ...]:
    return tuple(str(_dict(x).get("code", "?")) for x in _list(entries))


def _report(store: object, state: str | None) -> CredentialsReport:
    """Build the report from the SDK's JSON. Every field is type-checked: a tampered manifest can
    decode to any JSON shape, and that must be a finding, not a KeyError."""
    store = _dict(store)
    state = _str(state)
    findings: list[str] = []
    label = _str(store.get("active_manifest"))
    m = _dict(store.get("manifests")).get(label) if label else None
    results = _dict(_dict(store.get("validation_results")).get("activeManifest"))
    failures, successes = _codes(results.get("failure")), _codes(results.get("success"))
    if not isinstance(m, dict):
        return CredentialsReport(True, state or "Invalid", findings=("no_active_manifest",),
                                 failure_codes=failures, success_codes=successes)
    assertions: dict[str, Any] = {}
    for a in _list(m.get("assertions")):
        assertions.setdefault(str(_dict(a).get("label")), _dict(a).get("data"))
    actions: list[str] = []
    source_type: str | None = None
    model: dict[str, Any] | None = None
    for key in ("c2pa.actions.v2", "c2pa.actions"):
        for act in _list(_dict(assertions.get(key)).get("actions")):
            act = _dict(act)
            actions.append(str(act.get("action")))
            if act.get("action") == "c2pa.created":
                source_type = _str(act.get("digitalSourceType")) or source_type
                agent = act.get("softwareAgent")
                model = agent if isinstance(agent, dict) else model
    sb = _dict(assertions.get("c2pa.soft-binding"))
    sb_alg = _str(sb.get("alg"))
    payload = None
    if sb_alg == WATERMARK_ALG:
        blocks = _list(sb.get("blocks"))
        payload = _payload_from_block(_dict(blocks[0]).get("value")) if blocks else None
        if payload is None:
            findings.append("soft_binding_unparsed")
    ingredients = _list(m.get("ingredients"))
    thumb = ("thumbnail" in m or any(lbl.startswith("c2pa.thumbnail") for lbl in assertions)
             or any("thumbnail" in _dict(i) for i in ingredients))
    if thumb:
        findings.append("thumbnail_present")
    if state != "Trusted":
        findings.append(f"state_{(state or 'unknown').lower()}")
    sig = m.get("signature_info")
    return CredentialsReport(
        manifest_present=True, validation_state=state, findings=tuple(findings), failure_codes=failures,
        success_codes=successes, manifest_label=label, assertions=assertions,
        assertion_labels=tuple(assertions), actions=tuple(actions), digital_source_type=source_type,
        model=model, soft_binding_alg=sb_alg, watermark_payload=payload,
        signer={k: sig.get(k) for k in ("alg", "issuer", "common_name", "cert_serial_number")}
        if isinstance(sig, dict) else None,
        thumbnail_present=thumb, ingredient_count=len(ingredients))
