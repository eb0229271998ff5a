"""Throughput of the whole post-generation analysis stage at 512x512 (issue 3: target >= 10 images/s
on 2 cores).

One "image" is: untrusted PNG bytes -> safe decode -> NudeNet (nudity + faces) -> Haar faces -> PDQ
(8 dihedral hashes) matched against a hash bank -> watermark detection -> decision record (with
the pipeline version). Inputs: the 512x512 public-domain samples shipped inside the scikit-image
wheel (resized to 512x512) and synthetic renders, encoded as PNG once up front; a hash bank of
``--bank`` random entries plus one real one.

    python bench/bench_analysis.py [--n 200] [--bank 10000]

Modes: one process (onnxruntime / OpenCV use their default threads), and a pool of 2 worker
processes with 1 thread each (one per core).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from multiprocessing import get_context

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pipeline import detectors, hashbank
from pipeline.decision import analyse
from pipeline.images import decode_image
from pipeline.policy import default_policy

KEY = b"bench-key"
SIZE = 512


def _images() -> list[np.ndarray]:
    out: list[np.ndarray] = []
    try:
        from skimage import data

        for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "coins", "moon", "page",
                     "text", "immunohistochemistry", "hubble_deep_field", "retina", "motorcycle_left",
                     "brick", "grass", "gravel"):
            try:
                img = getattr(data, name)()
            except Exception:  # noqa: BLE001, S112 - a sample not in the wheel is skipped
                continue
            img = img[..., :3] if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
            out.append(cv2.resize(cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2BGR), (SIZE, SIZE),
                                  interpolation=cv2.INTER_AREA))
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    for k in range(8):
        yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        img = np.stack([xx / 2, yy / 2, (xx + yy) / 4], -1).astype(np.uint8)
        for _ in range(15):
            c = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.circle(img, tuple(int(v) for v in rng.integers(0, SIZE, 2)), int(rng.integers(8, 90)), c, -1)
        out.append(img)
    return out


def _bank(first: np.ndarray, n: int) -> hashbank.HashBank:
    rng = np.random.default_rng(1)
    entries = [hashbank.BankEntry(hashbank.pdq_dihedral(first).hash, "real-0", "sex_related_crimes")]
    entries += [hashbank.BankEntry(rng.bytes(32).hex(), f"r{i}", "sex_related_crimes") for i in range(n)]
    return hashbank.HashBank(entries, "bench-bank")


_state: dict = {}


def _init(threads: int | None, bank_n: int) -> None:
    if threads:
        cv2.setNumThreads(threads)
        detectors.set_onnx_threads(threads)
    _state["policy"] = default_policy()
    imgs = _images()
    _state["bank"] = _bank(imgs[0], bank_n)
    detectors.nudity(imgs[0])  # load the model outside the timed part
    detectors.faces_haar(imgs[0])


def _one(png: bytes) -> str:
    d = analyse(png, _state["policy"], surface="imagine", declared="x.png", banks=(_state["bank"],), key=KEY)
    return d["action"]


def _stages(pngs: list[bytes]) -> dict[str, float]:
    bank, policy = _state["bank"], _state["policy"]
    t: dict[str, list[float]] = {k: [] for k in ("decode", "nudenet", "haar (gated)", "pdq+bank", "watermark", "total")}
    for png in pngs:
        t0 = time.perf_counter()
        img = decode_image(png).bgr
        t1 = time.perf_counter()
        detectors.nudity(img)
        t2 = time.perf_counter()
        detectors.faces_haar(img)
        t3 = time.perf_counter()
        detectors.pdq(img, (bank,))
        t4 = time.perf_counter()
        detectors.watermark(img, KEY)
        t5 = time.perf_counter()
        analyse(png, policy, banks=(bank,), key=KEY)
        t6 = time.perf_counter()
        for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            t[k].append(v * 1000)
    return {k: statistics.median(v) for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="images per mode")
    ap.add_argument("--bank", type=int, default=10_000, help="random hash-bank entries")
    args = ap.parse_args()
    imgs = _images()
    pngs = [cv2.imencode(".png", im)[1].tobytes() for im in imgs]
    work = [pngs[i % len(pngs)] for i in range(args.n)]
    print(f"{len(imgs)} distinct 512x512 images, {args.n} analyses per mode, bank of {args.bank + 1} entries, "
          f"{os.cpu_count()} CPUs")

    _init(None, args.bank)
    st = _stages(pngs)
    print("median ms per stage (1 process): " + ", ".join(f"{k} {v:.1f}" for k, v in st.items()))
    t = time.perf_counter()
    actions = [_one(p) for p in work]
    dt = time.perf_counter() - t
    print(f"1 process, default threads: {args.n / dt:.1f} images/s ({actions.count('allow')} allow)")

    ctx = get_context("spawn")
    with ctx.Pool(2, initializer=_init, initargs=(1, args.bank)) as pool:
        pool.map(_one, pngs[:4])  # warm both workers
        t = time.perf_counter()
        actions = pool.map(_one, work, chunksize=4)
        dt = time.perf_counter() - t
    print(f"2 processes x 1 thread: {args.n / dt:.1f} images/s ({actions.count('allow')} allow)")


if __name__ == "__main__":
    main()
