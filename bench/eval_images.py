#!/usr/bin/env python
"""Evaluate the image half of the safety pipeline on the labelled image set (issue 3, "Evaluation").

    python bench/eval_images.py                 # full run, Markdown tables (~3-4 min on 2 cores)
    python bench/eval_images.py --quick         # fewer items (a smoke run)
    python bench/eval_images.py --json out.json

Nothing is downloaded and no image is stored in the repository: the manifest
(``tests/pipeline_eval/images.jsonl``) names where each labelled item comes from — a sample shipped
inside the scikit-image wheel, or a seeded render of a reference adapter — and the script builds the
pixels at run time. Every item is benign (no nudity, nothing from a real abuse list). Measured:

1. **faces** — NudeNet's face classes (>= 0.5) and the OpenCV Haar cascade, separately and combined
   (either one: what ``pipeline.decision`` treats as "the source photo shows a face"): FN on items
   labelled ``face: true`` and their transformations, FP on items labelled ``face: false``;
2. **hash bank** — PDQ (8 dihedral variants, distance <= 31, quality >= 50) through
   ``pipeline.detectors.pdq``: FN = a bank image's transformation not matched to its own entry, FP = a
   distinct image (and its JPEG / quarter crops) matching any entry;
3. **provenance** — images marked by ``pipeline.marking.mark`` (watermark + signed C2PA) and
   re-uploaded: FN = not recognised as ours; FP = unmarked images (several keys) or images marked
   by someone else (another key, another C2PA chain) recognised as ours;
4. **nudity** — FP only: NudeNet's nudity signals on the benign set (the FN rate on sexual content
   cannot be measured without labelled sexual imagery, which this repository does not hold);
5. **whole decision** — ``pipeline.decision.analyse`` under the default policy on every benign image
   (surface ``imagine``) and on every reference-editor output with its source photo (``edit``):
   the share held or blocked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MANIFEST = ROOT / "tests" / "pipeline_eval" / "images.jsonl"
MAX_SIDE = 768
KEY = b"custody-eval-images-key"
FOREIGN_KEY = b"someone-else's-watermark-key"
Image = np.ndarray


# --------------------------------------------------------------------------------------------------
# the manifest


@dataclass(frozen=True)
class Manifest:
    transforms: dict[str, dict[str, Any]]
    evaluations: dict[str, dict[str, Any]]
    items: list[dict[str, Any]]

    def item(self, item_id: str) -> dict[str, Any]:
        return next(i for i in self.items if i["id"] == item_id)


def load_manifest(path: Path = MANIFEST) -> Manifest:
    transforms: dict[str, dict[str, Any]] = {}
    evaluations: dict[str, dict[str, Any]] = {}
    items: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        kind = d.get("type")
        if kind == "transform":
            transforms[d["id"]] = d
        elif kind == "evaluation":
            evaluations[d["id"]] = d
        elif kind == "item":
            items.append(d)
        else:
            raise ValueError(f"{path}:{n}: unknown line type {kind!r}")
    return Manifest(transforms, evaluations, items)


# --------------------------------------------------------------------------------------------------
# sources → BGR pixels


def _to_bgr(im: np.ndarray) -> Image:
    im = np.asarray(im)
    if im.dtype == bool:
        im = im.astype(np.uint8) * 255
    elif im.dtype != np.uint8:
        im = np.clip(im * 255 if im.max() <= 1.0 else im, 0, 255).astype(np.uint8)
    if im.ndim == 2:
        return cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(im[..., :3]), cv2.COLOR_RGB2BGR)


def _cap(img: Image) -> Image:
    h, w = img.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return img
    s = MAX_SIDE / max(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _png(img: Image) -> bytes:
    return cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])[1].tobytes()


def _decode(data: bytes) -> Image:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def source_exists(item: dict[str, Any]) -> bool:
    """Whether the item's source can be resolved here, offline (no pixels are built)."""
    src = item["source"]
    if src.startswith("skimage.data."):
        from skimage import data

        return callable(getattr(data, src.removeprefix("skimage.data."), None))
    if src.startswith("sandbox.adapters:"):
        from sandbox.adapters import ADAPTERS

        return src.split(":", 1)[1] in ADAPTERS
    if src == "bench.bench_watermark:synthetic":
        return (ROOT / "bench" / "bench_watermark.py").is_file()
    return False


def instances(item: dict[str, Any]) -> Iterator[tuple[str, Image]]:
    """(instance id, BGR image) for every picture an item stands for (one per seed / index)."""
    src = item["source"]
    if src.startswith("skimage.data."):
        from skimage import data

        raw = getattr(data, src.removeprefix("skimage.data."))()
        if "indices" in item:
            lo, hi = item["indices"]
            up = int(item.get("upscale", 1))
            for k in range(lo, hi):
                im = _to_bgr(raw[k])
                yield f"{item['id']}/{k}", cv2.resize(im, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)
            return
        if isinstance(raw, tuple):
            raw = raw[int(item.get("index", 0))]
        yield item["id"], _cap(_to_bgr(raw))
    elif src.startswith("sandbox.adapters:"):
        from sandbox.adapters import GenerationRequest, get_adapter

        adapter = get_adapter(src.split(":", 1)[1])
        for seed in item["seeds"]:
            out = adapter.generate(GenerationRequest(item["prompt"], item.get("parameters", {}), seed))
            yield f"{item['id']}/{seed}", _decode(out.data)
    elif src == "bench.bench_watermark:synthetic":
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_watermark import synthetic

        for seed in item["seeds"]:
            yield f"{item['id']}/{seed}", synthetic(seed)
    else:
        raise ValueError(f"item {item['id']}: unknown source {src!r}")


# --------------------------------------------------------------------------------------------------
# transformations (ids described in the manifest)


def _jpeg(img: Image, q: int) -> Image:
    return _decode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes())


def _crop(img: Image, frac: float, oy: float, ox: float) -> Image:
    h, w = img.shape[:2]
    y0, x0 = round(frac * h * oy), round(frac * w * ox)
    return img[y0:y0 + h - round(frac * h), x0:x0 + w - round(frac * w)].copy()


def _half(img: Image) -> Image:
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w / 2)), max(1, round(h / 2))), interpolation=cv2.INTER_AREA)


def _paint(img: Image, seed: str) -> Image:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    h, w = img.shape[:2]
    side_h, side_w = round(h * 0.05 ** 0.5), round(w * 0.05 ** 0.5)  # 5 % of the area
    y0, x0 = int(rng.integers(0, h - side_h + 1)), int(rng.integers(0, w - side_w + 1))
    out = img.copy()
    out[y0:y0 + side_h, x0:x0 + side_w] = rng.integers(0, 256, 3, dtype=np.uint8)
    return out


def _editor(img: Image, region: list[float] | None) -> Image:
    from sandbox.adapters import GenerationRequest, get_adapter

    params: dict[str, Any] = {"strength": 0.6}
    if region is not None:
        params["region"] = region
    out = get_adapter("reference-editor").generate(GenerationRequest("a benign edit", params, 7, (_png(img),)))
    return _decode(out.data)


TRANSFORMS: dict[str, Callable[[Image, str], Image]] = {
    "none": lambda x, _: x,
    "jpeg75": lambda x, _: _jpeg(x, 75),
    "jpeg50": lambda x, _: _jpeg(x, 50),
    "resize0.5": lambda x, _: _half(x),
    "resize0.5_back": lambda x, _: cv2.resize(_half(x), (x.shape[1], x.shape[0]), interpolation=cv2.INTER_LINEAR),
    "crop10": lambda x, _: _crop(x, 0.1, 0.6, 0.3),
    "crop5": lambda x, _: _crop(x, 0.05, 0.6, 0.3),
    "crop10_b": lambda x, _: _crop(x, 0.1, 0.1, 0.9),
    "brightness+20": lambda x, _: np.clip(x.astype(np.int16) + 20, 0, 255).astype(np.uint8),
    "brightness-20": lambda x, _: np.clip(x.astype(np.int16) - 20, 0, 255).astype(np.uint8),
    "blur": lambda x, _: cv2.GaussianBlur(x, (5, 5), 1.0),
    "hflip": lambda x, _: cv2.flip(x, 1),
    "rot90": lambda x, _: cv2.rotate(x, cv2.ROTATE_90_CLOCKWISE),
    "paint5": _paint,
    "editor": lambda x, _: _editor(x, None),
    "editor_small": lambda x, _: _editor(x, [0.6, 0.6, 0.3, 0.33]),
    "quad_tl": lambda x, _: x[: x.shape[0] // 2, : x.shape[1] // 2].copy(),
    "quad_br": lambda x, _: x[x.shape[0] // 2:, x.shape[1] // 2:].copy(),
}
BYTE_TRANSFORMS = ("as_is", "strip")  # provenance: applied to the marked file's bytes


def transform(name: str, img: Image, inst_id: str) -> Image:
    return TRANSFORMS[name](img, f"{inst_id}/{name}")


def reupload(name: str, marked: bytes, inst_id: str) -> bytes:
    """A marked file as it comes back: its bytes, or its pixels transformed and re-encoded (metadata gone)."""
    if name == "as_is":
        return marked
    img = _decode(marked)
    if name == "strip":
        return _png(img)
    if name.startswith("jpeg"):  # the JPEG file itself is the re-upload
        return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(name.removeprefix("jpeg"))])[1].tobytes()
    return _png(transform(name, img, inst_id))


# --------------------------------------------------------------------------------------------------
# measurements


def pct(k: int, n: int) -> str:
    return f"{k} / {n} ({100 * k / n:.1f} %)" if n else "0 / 0 (n/a)"


def used(m: Manifest, use: str) -> list[dict[str, Any]]:
    return [i for i in m.items if use in i["use"]]


def build(m: Manifest, use: str, limit: int | None = None) -> list[tuple[str, dict[str, Any], Image]]:
    out = []
    for item in used(m, use):
        for k, (iid, img) in enumerate(instances(item)):
            if limit is not None and k >= limit:
                break
            out.append((iid, item, img))
    return out


def face_flags(img: Image) -> dict[str, Any]:
    from pipeline import detectors as d
    from pipeline.decision import FACE_MIN

    nn = d.nudity(img).signals
    haar = d.faces_haar(img).signals["face.haar_count"]
    return {"nudenet": nn["face.nudenet"] >= FACE_MIN, "haar": haar >= 1, "nudenet_score": nn["face.nudenet"],
            "haar_count": haar, "nudity": {k: nn[k] for k in ("nudity.explicit", "nudity.exposed", "nudity.suggestive")}}


def eval_faces(m: Manifest, quick: bool) -> dict[str, Any]:
    ev = m.evaluations["faces"]
    rows: list[dict[str, Any]] = []
    for iid, item, img in build(m, "faces", 3 if quick else None):
        label = item["labels"]["face"]
        names = ev["positive_transforms"] if label is True else ev["negative_transforms"]
        for t in names:
            rows.append({"id": iid, "item": item["id"], "label": label, "transform": t,
                         **face_flags(transform(t, img, iid))})
    low: list[dict[str, Any]] = []
    for iid, item, img in build(m, "faces_lowres", 20 if quick else None):
        low.append({"id": iid, "item": item["id"], "label": item["labels"]["face"], "transform": "none",
                    **face_flags(img)})
    return {"rows": rows, "lowres": low}


def face_table(rows: list[dict[str, Any]]) -> list[str]:
    pos = [r for r in rows if r["label"] is True]
    neg = [r for r in rows if r["label"] is False]
    out = []
    for det, f in (("NudeNet face >= 0.5", lambda r: r["nudenet"]), ("Haar cascade", lambda r: r["haar"]),
                   ("combined (either: the decision's rule)", lambda r: r["nudenet"] or r["haar"])):
        fn = sum(1 for r in pos if not f(r))
        fp = sum(1 for r in neg if f(r))
        out.append(f"| {det} | {len(pos)} | {pct(fn, len(pos))} | {len(neg)} | {pct(fp, len(neg))} |")
    return out


def eval_hashbank(m: Manifest, quick: bool) -> dict[str, Any]:
    from pipeline import detectors as d
    from pipeline.hashbank import BankEntry, HashBank, pdq_dihedral

    ev = m.evaluations["hashbank"]
    bank_imgs = build(m, "hashbank_bank", 4 if quick else None)
    bank = HashBank([BankEntry(pdq_dihedral(img).hash, iid, "sex_related_crimes") for iid, _, img in bank_imgs],
                    "eval-bank")
    fn_rows = []
    for iid, _, img in bank_imgs:
        for t in ev["bank_transforms"]:
            sig = d.pdq(transform(t, img, iid), (bank,)).signals
            match = sig.get("hashbank.match")
            fn_rows.append({"id": iid, "transform": t, "quality": sig["pdq.quality"],
                            "checked": sig["hashbank.checked"],
                            "matched_self": bool(match and match["entry_id"] == iid),
                            "matched_other": match["entry_id"] if match and match["entry_id"] != iid else None,
                            "distance": match["distance"] if match else None})
    fp_rows = []
    for iid, _, img in build(m, "hashbank_distinct", 10 if quick else None):
        for t in ev["distinct_transforms"]:
            q = transform(t, img, iid)
            sig = d.pdq(q, (bank,)).signals
            nearest = bank.match(pdq_dihedral(q), max_distance=256)
            fp_rows.append({"id": iid, "transform": t, "quality": sig["pdq.quality"],
                            "checked": sig["hashbank.checked"], "match": sig.get("hashbank.match"),
                            "nearest": nearest.distance if nearest else None})
    inner = [min((int(a.hash, 16) ^ int(b.hash, 16)).bit_count() for b in bank.entries if b is not a)
             for a in bank.entries] if len(bank) > 1 else []
    return {"bank_size": len(bank), "fn": fn_rows, "fp": fp_rows, "bank_min_inner_distance": min(inner, default=None)}


def _chain(directory: Path, org: str):
    from pipeline.credentials import create_signing_chain

    return create_signing_chain(directory, org)


def payload_of(iid: str) -> int:
    return int.from_bytes(hashlib.sha256(iid.encode()).digest()[:8], "big")


def recognise(data: bytes, key: bytes, anchor: bytes) -> dict[str, Any]:
    """Is this upload ours? Our key's watermark, or a Trusted manifest of ours (what ``analyse`` records)."""
    from pipeline import detectors as d

    img = _decode(data)
    wm = d.watermark(img, key).signals
    cr = d.credentials(data, anchor).signals
    return {"wm_payload": wm.get("watermark.payload"), "wm_checked": wm.get("watermark.checked"),
            "c2pa_ours": cr["c2pa.ours"], "c2pa_payload": cr["c2pa.watermark_payload"], "c2pa_state": cr["c2pa.state"]}


def eval_provenance(m: Manifest, quick: bool, chain_dir: Path | None = None,
                    transforms: list[str] | None = None) -> dict[str, Any]:
    from pipeline import watermark as wmod
    from pipeline.marking import mark

    ev = m.evaluations["provenance"]
    tmp = Path(chain_dir or tempfile.mkdtemp(prefix="custody-eval-"))
    ours = _chain(tmp / "ours", "Custody Eval Platform")
    theirs = _chain(tmp / "theirs", "Another Platform")
    anchor = ours.root_cert.read_bytes()
    marked_rows, unmarked_rows, foreign_rows = [], [], []
    items = build(m, "provenance", 2 if quick else None)
    for k, (iid, _, img) in enumerate(items):
        if min(img.shape[:2]) < wmod.MIN_SIDE:
            continue
        payload = payload_of(iid)
        mime = "image/jpeg" if k % 4 == 3 else "image/png"  # every 4th is marked as a JPEG
        src = _png(img) if mime == "image/png" else cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        res = mark(src, mime, payload, KEY, "reference-procedural@1", ours)
        for t in transforms or ev["marked_transforms"]:
            r = recognise(reupload(t, res.image_bytes, iid), KEY, anchor)
            want = f"{payload:016x}"
            by_wm = r["wm_payload"] == want
            by_c2pa = bool(r["c2pa_ours"] and r["c2pa_payload"] == want)
            marked_rows.append({"id": iid, "mime": mime, "transform": t, "psnr": round(res.psnr_db, 2),
                                "by_watermark": by_wm, "by_c2pa": by_c2pa, "recognised": by_wm or by_c2pa,
                                "wrong_payload": bool(r["wm_payload"] and r["wm_payload"] != want), **r})
        if k % 3 == 0:  # someone else's mark: another key, another (untrusted) C2PA chain
            other = mark(src, mime, payload, FOREIGN_KEY, "elsewhere@1", theirs)
            for t in ("as_is", "strip"):
                r = recognise(reupload(t, other.image_bytes, iid), KEY, anchor)
                foreign_rows.append({"id": iid, "transform": t, "ours": bool(r["wm_payload"] or r["c2pa_ours"]), **r})
    if transforms is None:
        pool = items + build(m, "provenance_unmarked", 10 if quick else None)
        keys = [KEY] + [b"other-key-%d" % j for j in range(ev["unmarked_keys"] - 1)]
        for iid, _, img in pool:
            if min(img.shape[:2]) < wmod.MIN_SIDE:
                continue
            for t in ev["unmarked_transforms"]:
                data = _png(transform(t, img, iid)) if t == "none" else \
                    cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()
                for key in keys:
                    r = recognise(data, key, anchor)
                    unmarked_rows.append({"id": iid, "transform": t, "key": key.decode(),
                                          "ours": bool(r["wm_payload"] or r["c2pa_ours"]), **r})
    return {"marked": marked_rows, "unmarked": unmarked_rows, "foreign": foreign_rows}


def eval_benign(m: Manifest, quick: bool) -> dict[str, Any]:
    from pipeline.decision import analyse, decide
    from pipeline.hashbank import BankEntry, HashBank
    from pipeline.policy import default_policy

    policy = default_policy()
    ev = m.evaluations["benign"]
    rng = np.random.default_rng(1)
    bank = HashBank([BankEntry(rng.bytes(32).hex(), f"r{i}", "sex_related_crimes") for i in range(10_000)], "random")
    tmp = Path(tempfile.mkdtemp(prefix="custody-eval-"))
    anchor = _chain(tmp / "c", "Custody Eval Platform").root_cert.read_bytes()
    rows = []
    for iid, item, img in build(m, "benign", 2 if quick else None):
        variants = [(t, transform(t, img, iid), None) for t in ev["transforms"]]
        if min(img.shape[:2]) >= 16 and item["source"].startswith("skimage.data."):
            variants.append(("editor", transform("editor", img, iid), _png(img)))
        for t, v, source in variants:
            png = _png(v)
            for surface, src in (("imagine", None), ("edit", source)):
                if surface == "edit" and src is None:
                    continue
                dec = analyse(png, policy, surface=surface, declared="image/png", source=src, banks=(bank,),
                              key=KEY, trust_anchor_pem=anchor)
                s = dec["signals"]
                other = {sf: decide(s, {}, sf, policy, dec["pipeline_version"], dec["subject"])["action"]
                         for sf in policy.document.surfaces} if surface == "imagine" else {}
                rows.append({"id": iid, "item": item["id"], "transform": t, "surface": surface,
                             "action": dec["action"],
                             "categories": [(c["category"], c["risk"], c["action"]) for c in dec["categories"]],
                             "failures": dec["detector_failures"],
                             "nudity": {k: s.get(k, 0.0) for k in ("nudity.explicit", "nudity.exposed", "nudity.suggestive")},
                             "source_face": bool(s.get("source.face.nudenet", 0) >= 0.5 or s.get("source.face.haar_count", 0)),
                             "other_surfaces": other})
    return {"rows": rows, "policy": f"{policy.policy_id} {policy.version}",
            "sexual_content": policy.document.categories["sexual_content"],
            "nce": policy.document.categories["nonconsensual_intimate_edit"]}


# --------------------------------------------------------------------------------------------------
# report


def versions() -> str:
    from importlib.metadata import version

    libs = ["nudenet", "onnxruntime", "opencv-python-headless", "pdqhash", "c2pa-python", "numpy", "scikit-image"]
    return ", ".join(f"{n} {version(n)}" for n in libs) + f"; Python {platform.python_version()}; {os.cpu_count()} CPUs"


def report(res: dict[str, Any]) -> str:
    out: list[str] = []
    f = res["faces"]
    out += ["### 1. Faces", "", "| detector | images with a face | FN | images without a face | FP |",
            "|---|---:|---:|---:|---:|", *face_table(f["rows"]), ""]
    pos = [r for r in f["rows"] if r["label"] is True]
    out.append("Per face image and transformation (N = NudeNet, H = Haar; `-` = missed): " + "; ".join(
        f"{r['id']} {r['transform']} {'N' if r['nudenet'] else '-'}{'H' if r['haar'] else '-'}" for r in pos))
    neg = [r for r in f["rows"] if r["label"] is False and (r["nudenet"] or r["haar"])]
    out.append("\nFalse faces: " + ("; ".join(f"{r['id']} {r['transform']} (NudeNet {r['nudenet_score']}, "
                                               f"Haar {r['haar_count']})" for r in neg) or "none"))
    amb = [r for r in f["rows"] if r["label"] == "ambiguous"]
    out.append("\nAmbiguous (not scored): " + "; ".join(
        f"{r['id']} {r['transform']} N{r['nudenet_score']}/H{r['haar_count']}" for r in amb))
    out += ["", "Low-resolution faces (LFW subset in the scikit-image wheel, 25×25 upscaled to 200×200):", "",
            "| detector | faces | FN | non-faces | FP |", "|---|---:|---:|---:|---:|", *face_table(f["lowres"]), ""]

    h = res["hashbank"]
    out += ["### 2. Hash-bank matching", "",
            f"Bank: {h['bank_size']} images; smallest distance between two bank entries {h['bank_min_inner_distance']}.", "",
            "| transformation of a bank image | probes | FN (not matched to its entry) | quality < 50 (not checked) | distance median / max |",
            "|---|---:|---:|---:|---:|"]
    by_t: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in h["fn"]:
        by_t[r["transform"]].append(r)
    tot_fn = 0
    for t, rs in by_t.items():
        fn = sum(1 for r in rs if not r["matched_self"])
        tot_fn += fn
        ds = [r["distance"] for r in rs if r["matched_self"]]
        out.append(f"| {t} | {len(rs)} | {pct(fn, len(rs))} | {sum(1 for r in rs if not r['checked'])} | "
                   f"{int(np.median(ds)) if ds else '-'} / {max(ds) if ds else '-'} |")
    out.append(f"| **all** | {len(h['fn'])} | **{pct(tot_fn, len(h['fn']))}** | | |")
    miss = [f"{r['id']} {r['transform']} (q{r['quality']}, other {r['matched_other']})" for r in h["fn"] if not r["matched_self"]]
    out.append("\nMisses: " + ("; ".join(miss) or "none"))
    fp = [r for r in h["fp"] if r["match"]]
    checked = [r for r in h["fp"] if r["checked"]]
    near = sorted(r["nearest"] for r in checked if r["nearest"] is not None)
    out.append(f"\nDistinct (non-bank) queries: {len(h['fp'])} ({len({r['id'] for r in h['fp']})} images × "
               f"{len({r['transform'] for r in h['fp']})} variants), {len(checked)} checked (quality ≥ 50), "
               f"{len(checked) * h['bank_size']} query×entry comparisons (each over 8 dihedral variants): "
               f"**FP {pct(len(fp), len(checked))}**; nearest distance to any entry min {near[0] if near else '-'}, "
               f"1st percentile {int(np.percentile(near, 1)) if near else '-'}, median {int(np.median(near)) if near else '-'}.")
    if fp:
        out.append("False matches: " + "; ".join(f"{r['id']} {r['transform']} → {r['match']['entry_id']} d{r['match']['distance']}" for r in fp))

    p = res["provenance"]
    out += ["", "### 3. Provenance of re-uploads", "",
            "| re-upload of a marked image | items | FN (not ours) | by watermark | by C2PA (Trusted) | wrong payload |",
            "|---|---:|---:|---:|---:|---:|"]
    by_t = defaultdict(list)
    for r in p["marked"]:
        by_t[r["transform"]].append(r)
    for t, rs in by_t.items():
        out.append(f"| {t} | {len(rs)} | {pct(sum(1 for r in rs if not r['recognised']), len(rs))} | "
                   f"{sum(r['by_watermark'] for r in rs)} | {sum(r['by_c2pa'] for r in rs)} | {sum(r['wrong_payload'] for r in rs)} |")
    miss = [f"{r['id']} {r['transform']}" for r in p["marked"] if not r["recognised"]]
    out.append("\nMisses: " + ("; ".join(miss) or "none"))
    un = p["unmarked"]
    out.append(f"\nUnmarked: {len(un)} checks ({len({r['id'] for r in un})} images × PNG and JPEG 75 × "
               f"{len({r['key'] for r in un})} keys): **FP {pct(sum(r['ours'] for r in un), len(un))}**. "
               f"Marked by another platform (another key, another C2PA chain), as is and stripped: "
               f"**FP {pct(sum(r['ours'] for r in p['foreign']), len(p['foreign']))}** "
               f"(C2PA states seen: {dict(Counter(str(r['c2pa_state']) for r in p['foreign']))}).")

    b = res["benign"]
    rows = b["rows"]
    img_rows = [r for r in rows if r["surface"] == "imagine"]
    sc = b["sexual_content"]
    anyn = [r for r in img_rows if max(r["nudity"].values()) >= 0.2]
    risk = [r for r in img_rows if max(r["nudity"]["nudity.explicit"], 0.8 * r["nudity"]["nudity.exposed"],
                                       0.4 * r["nudity"]["nudity.suggestive"]) >= sc.hold_at]
    out += ["", "### 4. Nudity (NudeNet) on benign images", "",
            (f"{len(img_rows)} benign images: any nudity score ≥ 0.2 (reported at all): {pct(len(anyn), len(img_rows))}; "
             f"sexual_content risk ≥ hold_at {sc.hold_at}: **{pct(len(risk), len(img_rows))}**.")]
    if anyn:
        out.append("With a nudity score: " + "; ".join(f"{r['id']} {r['transform']} {r['nudity']}" for r in anyn))
    low = res["faces"]["lowres"]
    out.append(f"LFW low-resolution crops: any nudity score ≥ 0.2: {pct(sum(1 for r in low if max(r['nudity'].values()) >= 0.2), len(low))}.")
    out += ["", "### 5. Whole decision on benign images (default policy)", "",
            "| surface | images | allow | hold | block | FP (hold or block) | detector failures |", "|---|---:|---:|---:|---:|---:|---:|"]
    for surface in ("imagine", "edit"):
        rs = [r for r in rows if r["surface"] == surface]
        c = Counter(r["action"] for r in rs)
        out.append(f"| {surface} | {len(rs)} | {c['allow']} | {c['hold']} | {c['block']} | "
                   f"**{pct(c['hold'] + c['block'], len(rs))}** | {sum(1 for r in rs if r['failures'])} |")
    diff = [r for r in img_rows if any(a != r["action"] for a in r["other_surfaces"].values())]
    out.append(f"\nSame signals decided on every other surface of the policy: {len(diff)} differ from imagine.")
    flagged = [r for r in rows if r["action"] != "allow"]
    if flagged:
        out.append("Held / blocked: " + "; ".join(f"{r['id']} {r['transform']} {r['surface']} {r['action']} {r['categories']}" for r in flagged))
    out.append(f"Edit outputs whose source photo shows a face (NCE rule armed): {sum(r['source_face'] for r in rows if r['surface'] == 'edit')}.")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few items per category (smoke run)")
    ap.add_argument("--json", default="/tmp/custody-bench/results/eval_images.json")
    args = ap.parse_args()
    m = load_manifest()
    missing = [i["id"] for i in m.items if not source_exists(i)]
    if missing:
        sys.exit(f"sources not available here: {missing}")
    print(f"# Image evaluation — {MANIFEST.relative_to(ROOT)} ({len(m.items)} items); {versions()}\n")
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name, fn in (("faces", eval_faces), ("hashbank", eval_hashbank), ("provenance", eval_provenance),
                     ("benign", eval_benign)):
        t = time.perf_counter()
        res[name] = fn(m, args.quick)
        print(f"{name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(report(res))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, default=str, indent=1))
    print(f"raw rows: {out}")


if __name__ == "__main__":
    main()
