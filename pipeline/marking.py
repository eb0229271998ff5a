"""The "mark" stage: invisible watermark + signed Content Credentials for one generated image.

:func:`mark` ``(image_bytes, mime, payload, key, model, chain) -> MarkResult``:

1. decode safely: the bytes must be the declared type (PNG / JPEG magic), the dimensions are read from
   the header *before* decoding and refused above :data:`pipeline.watermark.MAX_PIXELS` (decompression
   bombs), and a decoder failure is a :class:`MarkingError`, never a crash;
2. embed the 64-bit ``payload`` with :func:`pipeline.watermark.embed` on the decoded BGR array;
3. re-encode in the same format: PNG lossless (compression 6), JPEG quality 95 (4:2:0, baseline);
4. (``verify=True``) read the watermark back from the *encoded* bytes, so a mark lost to encoding is
   reported, not assumed;
5. sign a C2PA manifest (:func:`pipeline.credentials.sign_image`) naming the model and the watermark.

Determinism: steps 1-4 are deterministic for pinned numpy / OpenCV versions: ``unsigned_sha256`` (the
marked, encoded image before the manifest is added) is the same on every run, which is what a replay
compares. Step 5 adds, per run, a fresh manifest label (``urn:c2pa:<UUIDv4>``), ``instance_id``
(``xmp.iid:<UUIDv4>``) and ECDSA signature (random nonce); no signing time is recorded (no TSA). The
pixels are identical: decoding the signed output gives the same array as decoding the unsigned one.

Decoding notes: alpha is dropped and grayscale becomes 3-channel BGR (the watermark is luminance only,
but the encoder writes what it is given); 16-bit PNGs are reduced to 8 bits; a JPEG's EXIF orientation
is applied (the output carries no EXIF, so it looks as the input did). Each of these is listed in
``MarkResult.notes``. All metadata of the input (EXIF, XMP, any earlier C2PA manifest) is dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import watermark
from .credentials import (
    ChainPaths,
    CredentialsError,
    InvalidImage,
    ManifestInfo,
    UnsupportedImageType,
    _check_bytes,
    normalise_mime,
    read_credentials,
    sign_image,
    sniff_mime,
)
from .errors import PipelineError

MARKING_VERSION = "custody-mark/1"
JPEG_QUALITY = 95
PNG_COMPRESSION = 6


class MarkingError(PipelineError, ValueError):
    """The image could not be marked (undecodable, too large, too small...)."""

    status = 400
    exit_code = 2
    code = "marking_failed"


class MarkInputNotFound(MarkingError):
    """The file to mark does not exist or cannot be read (CLI)."""

    status = 404
    exit_code = 3
    code = "mark_input_not_found"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str

    @classmethod
    def parse(cls, model: ModelInfo | str | tuple[str, str]) -> ModelInfo:
        """Accept a ModelInfo, a ``(name, version)`` pair or ``"name@version"``."""
        if isinstance(model, ModelInfo):
            return model
        if isinstance(model, tuple) and len(model) == 2:
            return cls(str(model[0]), str(model[1]))
        if isinstance(model, str) and "@" in model:
            name, _, version = model.rpartition("@")
            if name.strip() and version.strip():
                return cls(name.strip(), version.strip())
        raise MarkingError(f"model must be 'name@version' (both non-empty), got {model!r}")


@dataclass(frozen=True)
class MarkResult:
    image_bytes: bytes
    mime: str
    watermark_payload: int
    manifest: dict[str, Any]
    width: int
    height: int
    unsigned_sha256: str
    signed_sha256: str
    psnr_db: float
    watermark_verified: bool | None
    notes: tuple[str, ...] = field(default=())
    version: str = MARKING_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the image bytes."""
        return {"mime": self.mime, "watermark_payload": self.watermark_payload,
                "watermark_payload_hex": f"{self.watermark_payload:016x}", "manifest": self.manifest,
                "width": self.width, "height": self.height, "unsigned_sha256": self.unsigned_sha256,
                "signed_sha256": self.signed_sha256, "bytes": len(self.image_bytes),
                "psnr_db": round(self.psnr_db, 2), "watermark_verified": self.watermark_verified,
                "notes": list(self.notes), "version": self.version,
                "watermark_version": watermark.WATERMARK_VERSION}


# --------------------------------------------------------------------------------------------------
# safe decoding


def _size(data: bytes, mime: str) -> tuple[int, int]:
    """(width, height) from the header, before any decoder runs: the one header parser for untrusted
    images (:mod:`pipeline.images`), its errors reported as marking errors."""
    from pipeline import images

    try:
        return images.png_size(data) if mime == "image/png" else images.jpeg_size(data)
    except images.ImageError as err:
        raise MarkingError(str(err)) from None


def decode_image(image_bytes: bytes, mime: str) -> tuple[np.ndarray, list[str]]:
    """Decode PNG / JPEG bytes to a uint8 BGR array, refusing what is not safe to decode."""
    data = _check_bytes(image_bytes)
    mime = normalise_mime(mime)
    if mime not in ("image/png", "image/jpeg"):
        raise UnsupportedImageType(f"cannot mark {mime!r}: only image/png and image/jpeg")
    if not data:
        raise InvalidImage("image is empty (0 bytes)")
    if sniff_mime(data) != mime:
        raise InvalidImage(f"bytes are not {mime} (they start with {data[:8].hex()})")
    w, h = _size(data, mime)
    if w < watermark.MIN_SIDE or h < watermark.MIN_SIDE:
        raise MarkingError(f"image {w}x{h} is smaller than the watermark's minimum "
                           f"{watermark.MIN_SIDE}x{watermark.MIN_SIDE}")
    if w * h > watermark.MAX_PIXELS:
        raise MarkingError(f"image {w}x{h} exceeds the {watermark.MAX_PIXELS} pixel limit "
                           "(refused before decoding)")
    notes: list[str] = []
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise MarkingError(f"{mime} image could not be decoded (truncated or corrupt)")
    if raw.dtype != np.uint8:
        notes.append(f"depth_reduced_from_{raw.dtype}")
    if raw.ndim == 2 or (raw.ndim == 3 and raw.shape[2] == 1):
        notes.append("grayscale_to_bgr")
    elif raw.shape[2] == 4:
        notes.append("alpha_dropped")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise MarkingError(f"{mime} image could not be decoded (truncated or corrupt)")
    if img.shape[:2] != raw.shape[:2]:
        notes.append("exif_orientation_applied")
    return img, notes


def encode_image(img: np.ndarray, mime: str) -> bytes:
    if mime == "image/png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    else:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                                             cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_PROGRESSIVE, 0])
    if not ok:
        raise MarkingError(f"OpenCV could not encode the marked image as {mime}")
    return buf.tobytes()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# --------------------------------------------------------------------------------------------------


def mark(image_bytes: bytes, mime: str, payload: int, key: bytes, model: ModelInfo | str | tuple[str, str],
         chain: ChainPaths | str | Path, *, verify: bool = True) -> MarkResult:
    """Watermark ``payload`` into the image, re-encode it, and sign its Content Credentials."""
    model_info = ModelInfo.parse(model)
    if isinstance(payload, bool) or not isinstance(payload, int) or not 0 <= payload < 1 << 64:
        raise MarkingError(f"payload must be an int in [0, 2**64), got {payload!r}")
    info = ManifestInfo(model_info.name, model_info.version, payload, watermark.WATERMARK_VERSION)
    mime = normalise_mime(mime)
    img, notes = decode_image(image_bytes, mime)
    try:
        marked = watermark.embed(img, payload, key)
    except watermark.WatermarkError as e:
        raise MarkingError(f"watermark: {e}") from None
    unsigned = encode_image(marked, mime)
    verified: bool | None = None
    if verify:
        back = cv2.imdecode(np.frombuffer(unsigned, np.uint8), cv2.IMREAD_COLOR)
        res = watermark.detect(back, key)
        verified = bool(res.found and res.payload == payload)
        if not verified:
            notes.append("watermark_not_recovered_after_encoding")
    signed = sign_image(unsigned, mime, info, chain)
    # read our own output back: the manifest label, and a self-check that it validates (Trusted when the
    # chain directory holds its root certificate)
    paths = chain if isinstance(chain, ChainPaths) else ChainPaths.in_directory(chain)
    check = read_credentials(signed, mime, paths.root_cert if paths.root_cert.is_file() else None)
    manifest = info.manifest()
    summary = {"assertions": [a["label"] for a in manifest["assertions"]],
               "model": {"name": model_info.name, "version": model_info.version},
               "digital_source_type": manifest["assertions"][0]["data"]["actions"][0]["digitalSourceType"],
               "soft_binding": {"alg": info.watermark_alg, "payload_hex": f"{payload:016x}"},
               "thumbnail": check.thumbnail_present, "claim_generator": manifest["claim_generator_info"][0],
               "label": check.manifest_label, "validation_state": check.validation_state,
               "failure_codes": list(check.failure_codes),
               "signer": check.signer}
    h, w = marked.shape[:2]
    return MarkResult(image_bytes=signed, mime=mime, watermark_payload=payload, manifest=summary, width=w,
                      height=h, unsigned_sha256=hashlib.sha256(unsigned).hexdigest(),
                      signed_sha256=hashlib.sha256(signed).hexdigest(), psnr_db=_psnr(img, marked),
                      watermark_verified=verified, notes=tuple(notes))


__all__ = [
    "MARKING_VERSION",
    "CredentialsError",
    "MarkInputNotFound",
    "MarkResult",
    "MarkingError",
    "ModelInfo",
    "decode_image",
    "encode_image",
    "mark",
]
