"""Safe decoding of untrusted image (and short video) bytes.

Everything an upload or a generator hands the analysis stage passes through here first. The rules:

* **Sniff, never trust the name.** The type comes from the magic bytes. A declared type (file
  extension or MIME type) that disagrees with the content is refused (:class:`ImageTypeMismatch`):
  a ``.png`` that is really a JPEG is either a broken client or an attempt to slip past a
  type-specific check, and a forensic pipeline records neither as if nothing happened.
* **Dimensions before pixels.** PNG dimensions are read from the IHDR chunk (its CRC checked), JPEG
  dimensions from the SOFn segment, *before* any decoder runs; an image over :data:`MAX_PIXELS` or
  :data:`MAX_SIDE` is refused (:class:`ImageTooLarge`) without allocating its pixels, so a 100-byte
  "decompression bomb" declaring 100 000 x 100 000 costs microseconds.
* **Complete files only.** A JPEG without an EOI marker after its scan data or a PNG without IEND is
  truncated (libjpeg would otherwise return a half-grey image with only a warning); the decoded shape
  must equal the header's.
* **Known limit.** Corruption *inside* JPEG entropy-coded data that libjpeg treats as a warning
  ("premature end of data segment") still decodes — to the header's size, partly grey — and is
  analysed as such; OpenCV does not expose libjpeg's warnings. Truncation (no EOI) is refused.
* **One decoder.** OpenCV's ``imdecode`` with ``IMREAD_COLOR`` (8-bit BGR; 16-bit is scaled down,
  alpha is *ignored*, so pixels hidden under a transparent alpha channel are analysed, not skipped;
  only the first frame of an APNG is decoded).

Supported image types: PNG and JPEG. Everything else (GIF, WebP, BMP, TIFF, SVG, text, …) raises
:class:`UnsupportedImageType` naming what was found. Videos (AVI / MP4 / MOV / MKV / WebM) are read
as sampled frames by :func:`video_frames` (OpenCV's bundled FFmpeg), with the same pixel caps.

All errors are :class:`~pipeline.errors.PipelineError` subclasses with ``status`` / ``exit_code`` /
``code``; nothing here crashes or loops on hostile input.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import PipelineError

MAX_BYTES = 64 * 1024 * 1024  # larger uploads are refused before reading them whole
MAX_PIXELS = 40_000_000  # ~40 MP (e.g. 8000 x 5000)
MAX_SIDE = 20_000
MAX_VIDEO_BYTES = 256 * 1024 * 1024
MAX_VIDEO_FRAMES = 30 * 60 * 5  # "short videos": at most 9,000 frames are read (5 min at 30 fps)
DEFAULT_VIDEO_SAMPLES = 8

IMAGE_TYPES = ("png", "jpeg")
VIDEO_TYPES = ("avi", "mp4", "mov", "mkv", "webm")

_EXT = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg",
    ".gif": "gif", ".webp": "webp", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff",
    ".avi": "avi", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "mkv", ".webm": "webm",
}
_MIME = {
    "image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/pjpeg": "jpeg",
    "image/gif": "gif", "image/webp": "webp", "image/bmp": "bmp", "image/tiff": "tiff",
    "video/x-msvideo": "avi", "video/avi": "avi", "video/mp4": "mp4", "video/quicktime": "mov",
    "video/x-matroska": "mkv", "video/webm": "webm",
}


# --- errors -----------------------------------------------------------------------------------

class ImageError(PipelineError):
    """Base of every error about an input image or video."""

    status = 400
    exit_code = 2
    code = "invalid_image"


class EmptyImage(ImageError):
    code = "empty_image"


class UnsupportedImageType(ImageError):
    status = 415
    code = "unsupported_image_type"


class ImageTypeMismatch(ImageError):
    """The declared type (extension / MIME type) disagrees with the magic bytes."""

    status = 415
    code = "image_type_mismatch"


class CorruptImage(ImageError):
    code = "corrupt_image"


class TruncatedImage(CorruptImage):
    code = "truncated_image"


class ImageTooLarge(ImageError):
    """Too many bytes, pixels or frames (decompression bombs included)."""

    status = 413
    code = "image_too_large"


# --- sniffing ---------------------------------------------------------------------------------

def sniff(data: bytes) -> str:
    """The content type by magic bytes: one of IMAGE_TYPES / VIDEO_TYPES, another known name
    ("gif", "webp", "bmp", "tiff", "svg", "pdf", "zip", "html"), or "unknown"."""
    h = bytes(data[:64])
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if h.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return "webp"
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return "avi"
    if h[4:8] == b"ftyp":
        return "mov" if h[8:10] == b"qt" else "mp4"
    if h[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in bytes(data[:4096]) else "mkv"
    if h[:2] == b"BM":
        return "bmp"
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if h[:4] == b"%PDF":
        return "pdf"
    if h[:4] == b"PK\x03\x04":
        return "zip"
    text = h.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in bytes(data[:4096]).lower()):
        return "svg"
    if text.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "unknown"


def declared_type(declared: str | None) -> str | None:
    """A file name / extension / MIME type → the type it claims, or None when it claims nothing known."""
    if not declared:
        return None
    d = declared.strip().lower()
    if "/" in d and not d.startswith((".", "/")) and d.split(";")[0] in _MIME:
        return _MIME[d.split(";")[0]]
    ext = os.path.splitext(d)[1] or (d if d.startswith(".") else "." + d)
    return _EXT.get(ext)


def _check_declared(kind: str, declared: str | None) -> None:
    claimed = declared_type(declared)
    if claimed is not None and claimed != kind:
        raise ImageTypeMismatch(f"declared as {claimed.upper()} ({declared!r}) but the content is "
                                f"{kind.upper() if kind != 'unknown' else 'of an unknown type'}")


# --- header parsing ---------------------------------------------------------------------------

def _check_dims(w: int, h: int, what: str) -> None:
    if w <= 0 or h <= 0:
        raise CorruptImage(f"{what} header declares a {w}x{h} image")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageTooLarge(f"{what} header declares {w}x{h} = {w * h:,} pixels; the limit is "
                            f"{MAX_PIXELS:,} pixels and {MAX_SIDE} per side (decompression-bomb guard)")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the PNG IHDR chunk, validated (CRC included), without decoding."""
    if len(data) < 33:
        raise TruncatedImage(f"PNG is {len(data)} bytes: too short for its header")
    length, ctype = struct.unpack(">I4s", data[8:16])
    if ctype != b"IHDR" or length != 13:
        raise CorruptImage("PNG does not start with a 13-byte IHDR chunk")
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(data[12:29]) & 0xFFFFFFFF != crc:
        raise CorruptImage("PNG IHDR chunk fails its CRC")
    w, h, depth, color = struct.unpack(">IIBB", body[:10])
    if depth not in (1, 2, 4, 8, 16) or color not in (0, 2, 3, 4, 6):
        raise CorruptImage(f"PNG IHDR has bit depth {depth} / colour type {color}, which PNG does not define")
    return w, h


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first JPEG SOFn segment, without decoding. Also requires a scan (SOS)
    followed by an EOI marker: without one the file is truncated."""
    n = len(data)
    i = 2
    size: tuple[int, int] | None = None
    for _ in range(10_000):  # segments before the scan; bounded so a hostile file cannot spin
        while i < n and data[i] == 0xFF and i + 1 < n and data[i + 1] == 0xFF:
            i += 1  # fill bytes
        if i + 4 > n:
            raise TruncatedImage("JPEG ends inside its headers (no scan data)")
        if data[i] != 0xFF:
            raise CorruptImage(f"JPEG: expected a marker at byte {i}, found 0x{data[i]:02x}")
        marker = data[i + 1]
        if marker != 0x01 and marker < 0xC0:
            raise CorruptImage(f"JPEG: 0xff{marker:02x} at byte {i} is not a marker")
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xD9:
            raise CorruptImage("JPEG ends (EOI) before any scan data")
        (seg_len,) = struct.unpack(">H", data[i + 2:i + 4])
        if seg_len < 2:
            raise CorruptImage(f"JPEG segment 0x{marker:02x} has length {seg_len}")
        if i + 2 + seg_len > n:
            raise TruncatedImage(f"JPEG ends inside segment 0x{marker:02x}")
        if marker in _SOF and size is None:
            if seg_len < 8:
                raise CorruptImage("JPEG SOF segment is too short")
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            if h == 0:
                raise CorruptImage("JPEG SOF declares height 0 (DNL-defined height is not supported)")
            _check_dims(w, h, "JPEG")
            size = (w, h)
        if marker == 0xDA:  # start of scan: image data follows
            if size is None:
                raise CorruptImage("JPEG scan data before any frame header (SOF)")
            if data.find(b"\xff\xd9", i + 2 + seg_len) < 0:
                raise TruncatedImage("JPEG is truncated: no end-of-image marker after the scan data")
            return size
        i += 2 + seg_len
    raise CorruptImage("JPEG has too many segments before its scan data")


# --- decoding ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DecodedImage:
    """A decoded image: ``bgr`` is uint8 (H, W, 3). ``sha256`` is over the input bytes."""

    bgr: np.ndarray
    format: str
    width: int
    height: int
    sha256: str
    size_bytes: int
    findings: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        return {"format": self.format, "width": self.width, "height": self.height, "sha256": self.sha256,
                "size_bytes": self.size_bytes, "findings": list(self.findings)}


def decode_image(data: bytes | bytearray | memoryview, declared: str | None = None) -> DecodedImage:
    """Decode untrusted PNG / JPEG bytes to BGR; ``declared`` is a file name, extension or MIME type
    that must agree with the content when given. Raises an :class:`ImageError` subclass."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageError(f"expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise EmptyImage("the image is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageTooLarge(f"the image is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    kind = sniff(data)
    _check_declared(kind, declared)
    if kind not in IMAGE_TYPES:
        what = "an unknown type" if kind == "unknown" else kind.upper()
        hint = " (videos go through video_frames)" if kind in VIDEO_TYPES else ""
        raise UnsupportedImageType(f"the content is {what}; supported image types: PNG, JPEG{hint}")
    findings: list[str] = []
    if kind == "png":
        w, h = png_size(data)
        _check_dims(w, h, "PNG")
        end = data.rfind(b"IEND")
        if end < 0:
            raise TruncatedImage("PNG is truncated: no IEND chunk")
        if len(data) > end + 8:
            findings.append(f"trailing_bytes:{len(data) - end - 8}")
        if b"acTL" in data[:end] and data.find(b"acTL") < data.find(b"IDAT"):
            findings.append("animated_png_first_frame_only")
    else:
        w, h = jpeg_size(data)
        eoi = data.rfind(b"\xff\xd9")
        if len(data) > eoi + 2:
            findings.append(f"trailing_bytes:{len(data) - eoi - 2}")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CorruptImage(f"{kind.upper()} data could not be decoded (corrupt or truncated)")
    if bgr.shape[:2] != (h, w) or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise CorruptImage(f"{kind.upper()} decoded to {bgr.shape} {bgr.dtype}; its header says {w}x{h}")
    return DecodedImage(bgr=bgr, format=kind, width=w, height=h, sha256=hashlib.sha256(data).hexdigest(),
                        size_bytes=len(data), findings=tuple(findings))


def read_upload(path: str | Path, max_bytes: int = MAX_BYTES) -> bytes:
    """Read a file with a size cap (checked before reading). Missing files raise ``ImageNotFound``."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ImageNotFound(f"{p} does not exist") from None
    except OSError as e:
        raise ImageNotFound(f"{p} cannot be read: {e.strerror}") from None
    if not p.is_file():
        raise ImageNotFound(f"{p} is not a file")
    if size > max_bytes:
        raise ImageTooLarge(f"{p} is {size:,} bytes; the limit is {max_bytes:,}")
    try:
        with p.open("rb") as f:
            return f.read(max_bytes + 1)[:max_bytes + 1]
    except OSError as e:
        raise ImageNotFound(f"{p} cannot be read: {e.strerror}") from None


class ImageNotFound(ImageError):
    status = 404
    exit_code = 3
    code = "image_not_found"


def decode_file(path: str | Path) -> DecodedImage:
    """:func:`decode_image` on a file's bytes, with its name as the declared type."""
    data = read_upload(path)
    return decode_image(data, declared=Path(path).name)


# --- video ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoFrames:
    """Frames sampled from a short video: ``frames`` are (index, bgr) in order."""

    frames: tuple[tuple[int, np.ndarray], ...]
    format: str
    width: int
    height: int
    frame_count: int  # frames actually read (headers' counts are not trusted)
    sha256: str
    size_bytes: int

    def describe(self) -> dict[str, object]:
        return {"format": self.format, "width": self.width, "height": self.height,
                "frames_read": self.frame_count, "frames_sampled": [i for i, _ in self.frames],
                "sha256": self.sha256, "size_bytes": self.size_bytes}


def video_frames(data: bytes, declared: str | None = None, samples: int = DEFAULT_VIDEO_SAMPLES) -> VideoFrames:
    """Decode a short video and keep ``samples`` evenly spaced frames (first and last included).

    The dimensions OpenCV reports after opening the container (headers only) are checked against the
    pixel caps before any frame is decoded; at most :data:`MAX_VIDEO_FRAMES` frames are read (more
    raises :class:`ImageTooLarge`: not a short video). Frames are read sequentially (no seeking), so
    the result does not depend on a container's index; two passes: count, then keep the samples.
    """
    data = bytes(data)
    if not data:
        raise EmptyImage("the video is empty (0 bytes)")
    if len(data) > MAX_VIDEO_BYTES:
        raise ImageTooLarge(f"the video is {len(data):,} bytes; the limit is {MAX_VIDEO_BYTES:,}")
    if not 1 <= samples <= 256:
        raise ImageError(f"samples must be 1..256, got {samples}")
    kind = sniff(data)
    _check_declared(kind, declared)
    if kind not in VIDEO_TYPES:
        what = "an unknown type" if kind == "unknown" else kind.upper()
        raise UnsupportedImageType(f"the content is {what}; supported video containers: AVI, MP4, MOV, MKV, WebM")
    with tempfile.TemporaryDirectory(prefix="custody-video-") as tmp:
        path = os.path.join(tmp, "input." + kind)
        with open(path, "wb") as f:
            f.write(data)
        count, w, h = _scan_video(path)
        if count == 0:
            raise CorruptImage(f"{kind.upper()} video has no decodable frames")
        wanted = sorted({round(k * (count - 1) / max(samples - 1, 1)) for k in range(samples)})
        frames = _read_frames(path, set(wanted))
    if [i for i, _ in frames] != wanted:
        raise CorruptImage("the video decoded differently on the second pass")
    return VideoFrames(frames=tuple(frames), format=kind, width=w, height=h, frame_count=count,
                       sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def _open(path: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise CorruptImage("the video container could not be opened (corrupt, truncated or unsupported codec)")
    return cap


def _scan_video(path: str) -> tuple[int, int, int]:
    cap = _open(path)
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        _check_dims(w, h, "video")
        count = 0
        while cap.grab():
            count += 1
            if count > MAX_VIDEO_FRAMES:
                raise ImageTooLarge(f"the video has more than {MAX_VIDEO_FRAMES} frames: not a short video")
        return count, w, h
    finally:
        cap.release()


def _read_frames(path: str, wanted: set[int]) -> list[tuple[int, np.ndarray]]:
    cap = _open(path)
    out: list[tuple[int, np.ndarray]] = []
    try:
        last = max(wanted)
        for i in range(last + 1):
            if not cap.grab():
                break
            if i in wanted:
                ok, frame = cap.retrieve()
                if not ok or frame is None or frame.ndim != 3 or frame.shape[2] != 3:
                    raise CorruptImage(f"video frame {i} could not be decoded")
                out.append((i, np.ascontiguousarray(frame)))
        return out
    finally:
        cap.release()
