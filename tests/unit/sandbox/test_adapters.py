"""The reference model adapters: deterministic, seed- and prompt-sensitive, strict about their inputs."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from ledger.errors import InvalidInput, NotFound
from sandbox.adapters import ADAPTERS, GenerationRequest, get_adapter


def _gen(prompt: str = "a cat astronaut", seed: int = 42, **params: object) -> bytes:
    return get_adapter("reference-procedural").generate(GenerationRequest(prompt, params, seed)).data


def test_procedural_is_deterministic_and_a_real_png() -> None:
    a, b = _gen(), _gen()
    assert a == b
    img = cv2.imdecode(np.frombuffer(a, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (512, 512, 3)
    assert img.std() > 10  # not a flat image


def test_seed_prompt_and_size_change_the_output() -> None:
    base = hashlib.sha256(_gen()).hexdigest()
    assert hashlib.sha256(_gen(seed=43)).hexdigest() != base
    assert hashlib.sha256(_gen(prompt="a dog astronaut")).hexdigest() != base
    small = get_adapter("reference-procedural").generate(GenerationRequest("x", {"width": 64, "height": 32}, 1))
    assert (small.width, small.height) == (64, 32)


def test_editor_changes_the_region_and_keeps_the_rest() -> None:
    src = _gen(seed=7)
    editor = get_adapter("reference-editor")
    out = editor.generate(GenerationRequest("edit", {"strength": "0.8", "region": [0.5, 0.5, 0.25, 0.25]}, 9, (src,)))
    assert out.data == editor.generate(GenerationRequest("edit", {"strength": "0.8", "region": [0.5, 0.5, 0.25, 0.25]},
                                                         9, (src,))).data
    a = cv2.imdecode(np.frombuffer(src, np.uint8), cv2.IMREAD_COLOR).astype(int)
    b = cv2.imdecode(np.frombuffer(out.data, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert np.abs(a[:200, :200] - b[:200, :200]).max() == 0  # outside the region: untouched
    assert np.abs(a[270:370, 270:370] - b[270:370, 270:370]).mean() > 5  # inside: edited


@pytest.mark.parametrize("name,params,sources,seed,what", [
    ("reference-procedural", {"width": 0}, (), 1, "width"),
    ("reference-procedural", {"width": "512"}, (), 1, "width"),
    ("reference-procedural", {}, (b"x",), 1, "source"),
    ("reference-procedural", {}, (), -1, "seed"),
    ("reference-editor", {}, (), 1, "exactly one source"),
    ("reference-editor", {}, (b"not an image",), 1, "source asset"),
    ("reference-editor", {"strength": "lots"}, (b"",), 1, "strength"),
    ("reference-editor", {"region": [0.9, 0.9, 0.5, 0.5]}, None, 1, "region"),
])
def test_bad_inputs_are_named(name: str, params: dict, sources: tuple | None, seed: int, what: str) -> None:
    srcs = (_gen(width=64, height=64),) if sources is None else sources
    with pytest.raises(InvalidInput, match=what):
        get_adapter(name).generate(GenerationRequest("p", params, seed, srcs))


def test_unknown_adapter_or_version() -> None:
    with pytest.raises(NotFound, match="no model adapter"):
        get_adapter("stable-diffusion")
    with pytest.raises(NotFound, match="not the recorded 2"):
        get_adapter("reference-editor", "2")
    assert set(ADAPTERS) == {"reference-procedural", "reference-editor"}
