"""Model adapters: given recorded parameters, seed, prompt and source assets, produce output bytes.

A generation record names the adapter that made it (``adapter: {"name", "version"}``) beside its
parameters and seed, and the raw output's SHA-256 (``output_sha256``: the adapter's bytes *before*
provenance marking, which adds a signed, time-stamped manifest and is therefore not reproducible).
Re-generation in the sandbox looks the adapter up by name and version, feeds it the recorded inputs
and compares: bit-identical (same SHA-256), perceptually close (PDQ distance), or different.

Two deterministic reference adapters ship so the demo and the tests replay real generations end to
end, with nothing downloaded:

* ``reference-procedural`` — a seeded procedural "text-to-image" model: a smooth colour field, seeded
  shapes and band-limited noise; the prompt's SHA-256 picks the palette, the seed everything else.
* ``reference-editor`` — a seeded image editor: it replaces a region of a source photo with seeded
  texture and blends the seam with OpenCV inpainting (Telea) — the shape of an "edit this photo"
  request, without any model.

Both are pure functions of their inputs over numpy's PCG64 generator and OpenCV, and encode PNG with
fixed parameters, so the same numpy / OpenCV / zlib builds give the same bytes. They are not models
of anything harmful: they exist so that re-generation, hashing and comparison are exercised for
real. ``docs/adapters.md`` explains how a real model (e.g. a diffusers pipeline with pinned weights)
plugs in and what determinism a GPU model can and cannot promise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from ledger.errors import InvalidInput, NotFound

MAX_SIDE = 2048
MIN_SIDE = 16
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]


class UnknownAdapter(NotFound):
    code = "unknown_model_adapter"


class AdapterInputError(InvalidInput):
    """The recorded parameters or source assets are not something the adapter accepts."""

    code = "adapter_input_invalid"


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a generation depends on, as the ledger records it."""

    prompt: str
    parameters: Mapping[str, Any]
    seed: int
    sources: Sequence[bytes] = ()


@dataclass(frozen=True)
class GenerationOutput:
    data: bytes
    media_type: str
    width: int
    height: int
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())


class ModelAdapter(Protocol):
    name: str
    version: str

    def generate(self, request: GenerationRequest) -> GenerationOutput: ...


# --- helpers ---------------------------------------------------------------------------------------

def _int_param(params: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = params.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise AdapterInputError(f"parameter {key!r} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _float_param(params: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    """Numbers may be recorded as strings (the ledger's canonical JSON keeps floats exact that way)."""
    v = params.get(key, default)
    try:
        f = float(v) if isinstance(v, (int, float, str)) and not isinstance(v, bool) else None
    except ValueError:
        f = None
    if f is None or not lo <= f <= hi:
        raise AdapterInputError(f"parameter {key!r} must be a number in [{lo}, {hi}], got {v!r}")
    return f


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
        raise AdapterInputError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return seed


def _rng(seed: int, prompt: str, salt: bytes) -> np.random.Generator:
    """PCG64 seeded from (seed, prompt, adapter): the same inputs give the same stream."""
    digest = hashlib.sha256(salt + seed.to_bytes(8, "big") + prompt.encode("utf-8", "surrogatepass")).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "big")))


def _png(img: np.ndarray) -> GenerationOutput:
    ok, buf = cv2.imencode(".png", img, PNG_PARAMS)
    if not ok:  # pragma: no cover - OpenCV cannot fail on a uint8 BGR array
        raise AdapterInputError("PNG encoding failed")
    h, w = img.shape[:2]
    return GenerationOutput(buf.tobytes(), "image/png", w, h)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Band-limited noise in [0, 1]: a small random grid resized up (bicubic)."""
    small = rng.random((cells, cells), dtype=np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


# --- the reference adapters -------------------------------------------------------------------------

class ProceduralAdapter:
    """Seeded procedural text-to-image stand-in (see the module docstring)."""

    name = "reference-procedural"
    version = "1"

    def generate(self, request: GenerationRequest) -> GenerationOutput:
        p = request.parameters
        w = _int_param(p, "width", 512, MIN_SIDE, MAX_SIDE)
        h = _int_param(p, "height", 512, MIN_SIDE, MAX_SIDE)
        shapes = _int_param(p, "shapes", 12, 0, 200)
        seed = _check_seed(request.seed)
        if request.sources:
            raise AdapterInputError(f"{self.name} takes no source assets; got {len(request.sources)}")
        palette = np.frombuffer(hashlib.sha256(request.prompt.encode("utf-8", "surrogatepass")).digest()[:12],
                                np.uint8).reshape(4, 3).astype(np.float32)
        rng = _rng(seed, request.prompt, b"custody/reference-procedural/1")
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx / max(w - 1, 1) * rng.uniform(0.3, 1.0) + yy / max(h - 1, 1) * rng.uniform(0.3, 1.0)) / 2.0
        img = (palette[0][None, None, :] * (1 - t[..., None]) + palette[1][None, None, :] * t[..., None])
        img += (_smooth_noise(rng, h, w, 6)[..., None] - 0.5) * 60.0
        img = np.clip(img, 0, 255).astype(np.uint8)
        for i in range(shapes):
            colour = tuple(int(c) for c in np.clip(palette[2 + i % 2] + rng.normal(0, 30, 3), 0, 255))
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            ax, ay = int(rng.integers(max(2, w // 40), max(3, w // 6))), int(rng.integers(max(2, h // 40), max(3, h // 6)))
            if rng.random() < 0.5:
                cv2.ellipse(img, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
            else:
                cv2.rectangle(img, (cx - ax, cy - ay), (cx + ax, cy + ay), colour, -1, cv2.LINE_AA)
        grain = rng.normal(0, 3.0, img.shape).astype(np.float32)
        img = np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)
        return _png(img)


class EditorAdapter:
    """Seeded photo editor stand-in: replaces a region of the source photo (see the module docstring)."""

    name = "reference-editor"
    version = "1"

    def generate(self, request: GenerationRequest) -> GenerationOutput:
        from pipeline.images import ImageError, decode_image

        p = request.parameters
        strength = _float_param(p, "strength", 0.6, 0.0, 1.0)
        seed = _check_seed(request.seed)
        if len(request.sources) != 1:
            raise AdapterInputError(f"{self.name} edits exactly one source image; got {len(request.sources)}")
        try:
            src = decode_image(request.sources[0]).bgr
        except ImageError as err:
            raise AdapterInputError(f"the source asset is not an image this editor can read: {err}") from None
        h, w = src.shape[:2]
        if max(h, w) > MAX_SIDE:  # edits come out at most MAX_SIDE on the long side
            scale = MAX_SIDE / max(h, w)
            src = cv2.resize(src, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            h, w = src.shape[:2]
        region = p.get("region", [0.25, 0.35, 0.5, 0.5])  # x, y, width, height as fractions of the image
        if (not isinstance(region, list) or len(region) != 4
                or not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in region)):
            raise AdapterInputError(f"parameter 'region' must be [x, y, width, height] fractions, got {region!r}")
        try:
            fx, fy, fw, fh = (float(v) for v in region)
        except ValueError:
            raise AdapterInputError(f"parameter 'region' must hold numbers, got {region!r}") from None
        if not (0 <= fx < 1 and 0 <= fy < 1 and 0 < fw <= 1 - fx and 0 < fh <= 1 - fy):
            raise AdapterInputError(f"parameter 'region' {region!r} is not inside the image")
        x0, y0 = int(fx * w), int(fy * h)
        x1, y1 = max(x0 + 1, int((fx + fw) * w)), max(y0 + 1, int((fy + fh) * h))
        rng = _rng(seed, request.prompt, b"custody/reference-editor/1")
        rh, rw = y1 - y0, x1 - x0
        base = src[y0:y1, x0:x1].astype(np.float32).mean(axis=(0, 1))
        tint = base + rng.normal(0, 40, 3)
        texture = tint[None, None, :] + (_smooth_noise(rng, rh, rw, 5)[..., None] - 0.5) * 80.0
        out = src.astype(np.float32)
        out[y0:y1, x0:x1] = (1 - strength) * out[y0:y1, x0:x1] + strength * texture
        out = np.clip(out, 0, 255).astype(np.uint8)
        seam = np.zeros((h, w), np.uint8)
        t = max(1, min(rw, rh) // 20)
        cv2.rectangle(seam, (x0, y0), (x1 - 1, y1 - 1), 255, t)
        out = cv2.inpaint(out, seam, 3, cv2.INPAINT_TELEA)
        return _png(out)


ADAPTERS: dict[str, ModelAdapter] = {a.name: a for a in (ProceduralAdapter(), EditorAdapter())}


def get_adapter(name: str, version: str | None = None) -> ModelAdapter:
    """The adapter ``name`` (at ``version`` when given: a replay must run the version recorded)."""
    adapter = ADAPTERS.get(name)
    if adapter is None:
        raise UnknownAdapter(f"no model adapter named {name!r} is installed here "
                             f"(installed: {', '.join(sorted(ADAPTERS))})")
    if version is not None and version != adapter.version:
        raise UnknownAdapter(f"model adapter {name!r} is version {adapter.version} here, not the recorded {version}")
    return adapter


__all__ = ["ADAPTERS", "AdapterInputError", "EditorAdapter", "GenerationOutput", "GenerationRequest", "ModelAdapter",
           "ProceduralAdapter", "UnknownAdapter", "get_adapter"]
