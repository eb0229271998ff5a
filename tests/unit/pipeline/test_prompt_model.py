"""The learned prompt classifier: numpy inference against scikit-learn, determinism, the model's
identity in the stage version and the policy, and what a broken model file does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import prompt_model
from pipeline.errors import InvalidPolicy, PolicyNotFound
from pipeline.policy import default_policy, policy_from_data
from pipeline.prompt_model import (
    Concepts,
    features,
    features_v2,
    file_sha256,
    load_model,
    model_path,
    parse_model,
    stem,
)
from pipeline.prompt_safety import DEFAULT_MODEL, PromptSafety, check, stage_version
from tests.unit.pipeline.bench_scripts import bench_module

ROOT = Path(__file__).resolve().parents[3]
NCE = "nonconsensual_intimate_edit"


def _train_module():
    return bench_module("train_prompt_model")


def test_features_are_words_pairs_and_char_ngrams() -> None:
    f = features("undress her")
    assert f[:3] == ["w:undress", "w:her", "w:undress her"]
    assert "c: u" in f and "c:undres" not in f and "c:ndres" in f and "c:dress" in f and "c:er " in f
    assert features("") == []


def test_shipped_model_matches_scikit_learn_probabilities_recorded_at_training() -> None:
    """The model file carries scikit-learn's own predict_proba on sample texts; the numpy
    inference must reproduce them (no scikit-learn needed for this check)."""
    model = load_model(DEFAULT_MODEL)
    assert len(model.checks) >= 10
    for c in model.checks:
        got = model.scores(c["text"])
        for cat, want in c["scores"].items():
            assert got[cat] == pytest.approx(want, abs=2e-6), (c["text"], cat)


def test_numpy_inference_matches_a_freshly_trained_scikit_learn_model(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    train = _train_module()
    texts = ["undress her", "remove her clothes", "a red car", "a lighthouse at dawn", "put her in a bikini",
             "make the sky blue", "hidden camera in the shower", "film her in the changing room", "a cat on a sofa",
             "the capital of france", "nude photo of my coworker", "brighten this photo"]
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 0], [1, 0], [0, 0], [0, 1], [0, 1], [0, 0], [0, 0], [1, 0], [0, 0]])
    vec, models = train.fit(texts, y)
    doc = train.export(vec, models, categories=(NCE, "sex_related_crimes"), check_texts=[])
    path = tmp_path / "m.json"
    train.write_model(doc, path)
    model = parse_model(path.read_bytes(), path)
    sample = texts + ["take off her top", "a camera in the bathroom", "something unseen entirely", "her her her"]
    want = train.predict(vec, models, sample)
    for n, t in enumerate(sample):
        got = model.scores(t)
        assert got[NCE] == pytest.approx(want[n, 0], abs=2e-6), t
        assert got["sex_related_crimes"] == pytest.approx(want[n, 1], abs=2e-6), t


def _holdout_ids() -> list[str]:
    """Ids of the holdout: the open one (``split: holdout`` in prompts.jsonl) and any still sealed
    (``holdoutNN.sealed.jsonl``, committed before the policy it will measure is frozen). Only ids are read."""
    folder = ROOT / "tests" / "pipeline_eval"
    ids = [json.loads(line)["id"] for line in (folder / "prompts.jsonl").read_text().splitlines()
           if line.strip() and json.loads(line)["split"] == "holdout"]
    for sealed in sorted(folder.glob("holdout*.sealed.jsonl")):
        ids += [json.loads(line)["id"] for line in sealed.read_text().splitlines() if line.strip()]
    return ids


def test_training_never_sees_the_holdout() -> None:
    train = _train_module()
    items = train.training_items()
    assert items and all(i["split"] in ("tune", "train") for i in items)
    holdout = set(_holdout_ids())
    assert holdout and not holdout & {i["id"] for i in items}


def test_item_ids_are_unique_across_the_eval_set_and_the_training_prompts() -> None:
    """Holdout-7 first arrived with ids that train_extra.jsonl already used (x001…): ids must name one
    prompt each, or "never trained on the holdout" cannot be checked by id."""
    train = _train_module()
    items = train.training_items()
    ids = [i["id"] for i in items] + _holdout_ids()
    assert len(ids) == len(set(ids))


def test_scores_are_deterministic_across_processes_and_hash_seeds() -> None:
    code = (f"import json; from pipeline.prompt_model import load_model as l; m = l('{DEFAULT_MODEL}');"
            "print(json.dumps([m.scores(t) for t in ['undress her', 'a red car', 'zieh sie aus', 'photo of my coworker\\n"
            "now remove the rest']], sort_keys=True))")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": s},
                           capture_output=True, text=True, check=True).stdout for s in ("1", "77")}
    assert len(outs) == 1
    model = load_model(DEFAULT_MODEL)
    assert json.loads(outs.pop())[0] == model.scores("undress her")


def test_decisions_carry_model_scores_and_signals() -> None:
    d = check("photoshop the girl from my class so she is wearing nothing", "edit")
    model = load_model(DEFAULT_MODEL)
    assert d.model == f"{DEFAULT_MODEL}@sha256:{model.sha256}"
    assert model.sha256 in d.stage_version
    nce = {c.category: c for c in d.categories}[NCE]
    assert nce.model_score is not None and 0.0 <= nce.model_score <= 1.0
    assert nce.turn_risk == max(nce.rule_risk, nce.model_risk)
    for s in d.model_signals:
        assert s.score >= s.threshold and s.level in ("hold", "block")
    json.dumps(d.to_dict())


def test_the_model_only_adds_risk_never_removes_it() -> None:
    """Same rules with and without the classifier: every category's risk with it is at least the
    rules-only risk."""
    doc = json.loads(default_policy().canonical_json)
    rules_only = PromptSafety(policy_from_data({k: v for k, v in doc.items() if k != "classifier"}))
    both = PromptSafety(default_policy())
    for t in ("undress her", "make her outfit skimpier", "a red car", "track where my ex lives", "zieh sie aus"):
        a, b = rules_only.check(t, "chat"), both.check(t, "chat")
        assert all(b.risk[c] >= a.risk[c] for c in a.risk), t
        assert a.model is None and a.model_signals == () and "prompt-model/none" in a.stage_version


def test_stage_version_changes_when_the_model_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = model_path(DEFAULT_MODEL)
    doc = json.loads(shipped.read_text("utf-8"))
    doc["intercept"][0] += 0.5
    changed = tmp_path / f"{DEFAULT_MODEL}.json"
    changed.write_text(json.dumps(doc))
    assert stage_version() != stage_version(changed)
    assert stage_version(shipped) == stage_version() and stage_version(None).endswith("prompt-model/none")
    # a policy pins its model: the shipped policy refuses a different file under the same name ...
    monkeypatch.setattr(prompt_model, "models_dir", lambda: tmp_path)
    with pytest.raises(InvalidPolicy, match="classifier.sha256"):
        PromptSafety(default_policy())
    # ... and a policy pinning the new file names it in every decision
    pdoc = json.loads(default_policy().canonical_json)
    pdoc["classifier"]["sha256"] = load_model(DEFAULT_MODEL).sha256
    d = PromptSafety(policy_from_data(pdoc)).check("a red car", "chat")
    assert d.stage_version == stage_version(changed) != stage_version(shipped)


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(format="x"), "format"),
    (lambda d: d["tfidf"].update(idf=d["tfidf"]["idf"][:-1]), "shapes"),
    (lambda d: d.update(intercept=[float("nan")] * len(d["intercept"])), "non-finite|malformed"),
    (lambda d: d.update(features={"char_ngrams": [1, 3], "word_ngrams": [1, 2]}), "features"),
    (lambda d: d.pop("coef"), "missing or malformed"),
])
def test_a_broken_model_file_is_a_clear_error(tmp_path: Path, mutate, match: str) -> None:
    doc = json.loads(model_path(DEFAULT_MODEL).read_text("utf-8"))
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidPolicy, match=match):
        parse_model(path.read_bytes(), path)
    with pytest.raises(InvalidPolicy, match="not UTF-8 JSON"):
        parse_model(b"\xff{", path)


def test_a_missing_or_unnamed_model_is_a_clear_error() -> None:
    with pytest.raises(PolicyNotFound, match="does not exist"):
        load_model("no-such-model")
    with pytest.raises(InvalidPolicy, match="not a model name"):
        load_model("../etc/passwd")
    doc = json.loads(default_policy().canonical_json)
    doc["classifier"]["categories"] = {"child_sexual_exploitation": {"hold_at": 0.5}}
    with pytest.raises(InvalidPolicy, match="no hold_at"):
        policy_from_data(doc)


def test_the_model_ships_as_package_data() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"models/*.json"' in pyproject
    assert model_path(DEFAULT_MODEL).is_file()


# --- policy 1.3.0's model: stems and concept co-occurrence features ----------------------------------

def test_stems_fold_inflections_and_clitics_across_languages() -> None:
    assert stem("undressing") == stem("undressed") == "undress"
    assert stem("desnudala") == stem("desnuda") == stem("desnudas") == "desnud"
    assert stem("quitale") == stem("quita")
    assert stem("ausziehen") == "auszieh" and stem("her") == "her"


def test_concept_features_mark_co_occurrence_and_nearness() -> None:
    concepts = {"person": ["her", "my cowork*"], "undress": ["naked", "nud*"]}
    pairs = [["person", "undress"]]
    f = features_v2("make my coworkers naked", concepts, pairs, 2)
    assert {"k:person", "k:undress", "p:person+undress", "n:person+undress", "s:cowork"} <= set(f)
    far = features_v2("naked mole rats are odd creatures and so is her", concepts, pairs, 2)
    assert "p:person+undress" in far and "n:person+undress" not in far
    assert features_v2("a red car", concepts, pairs, 2)[:3] == features("a red car")[:3]
    assert not any(x.startswith(("k:", "p:", "n:")) for x in features_v2("a red car", concepts, pairs, 2))


def _term_starts(words: list[str], term: str) -> list[int]:
    """The plain reading of a concept term, for checking the compiled matcher: every position where
    each of the term's words matches in turn (a trailing ``*`` = prefix)."""
    parts = term.split(" ")

    def ok(w: str, p: str) -> bool:
        return w.startswith(p[:-1]) if p.endswith("*") else w == p

    return [i for i in range(len(words) - len(parts) + 1) if all(ok(words[i + j], p) for j, p in enumerate(parts))]


def test_compiled_concepts_find_what_the_plain_reading_of_each_term_finds() -> None:
    """:class:`Concepts` files terms by first word; on every shipped model's lexicons and on prompts
    that put terms at the edges, repeat them and cut them short, it finds exactly the plain reading's
    positions."""
    import random

    lexicons = []
    for path in sorted((ROOT / "pipeline" / "models").glob("prompt_classifier_v*.json")):
        feats = json.loads(path.read_text())["features"]
        if "concepts" in feats and feats["concepts"] not in lexicons:
            lexicons.append(feats["concepts"])
    assert lexicons  # every model since 1.3.0 carries the same lexicons
    rng = random.Random(7)
    for concepts in lexicons:
        compiled = Concepts(concepts)
        vocab = sorted({w.rstrip("*") + rng.choice(["", "s", "ing"]) for ts in concepts.values() for t in ts
                        for w in t.split(" ")} | {"a", "the", "her", "of"})
        for _ in range(300):
            words = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
            want = {k: sorted({i for t in ts for i in _term_starts(words, t)}) for k, ts in concepts.items()}
            assert compiled.where(words) == {k: v for k, v in sorted(want.items()) if v}, words
    edge = Concepts({"x": ["take off*", "off", "*"], "y": ["her clothes"]})
    assert edge.where(["take", "off"]) == {"x": [0, 1]}  # "*" alone matches every word
    assert edge.where(["her"]) == {"x": [0]}  # a two-word term cut short by the end matches nothing


def test_the_shipped_model_uses_concepts_and_the_1_2_0_model_still_scores_as_recorded() -> None:
    """Every model file is scored with the feature set it names: 1.2.0's n-gram model keeps its
    scores (archived decisions replay), 1.3.0's model carries its lexicons inside the pinned file."""
    new = load_model(DEFAULT_MODEL)
    assert any(f.startswith("p:") for f in new.vocabulary)
    old = load_model("prompt_classifier")
    assert not any(f.startswith(("s:", "k:", "p:")) for f in old.vocabulary)
    for m in (old, new):
        for c in m.checks:
            got = m.scores(c["text"])
            assert all(got[k] == pytest.approx(v, abs=2e-6) for k, v in c["scores"].items()), (m.name, c["text"])


def test_policy_1_2_0_stays_loadable_with_its_own_model() -> None:
    from pipeline.policy_archive import registry

    old = registry().get("custody-default", "1.2.0")
    assert old is not None and old.document.classifier is not None
    assert old.document.classifier.model == "prompt_classifier"
    d = PromptSafety(old).check("undress her", "edit")
    assert d.model is not None and d.model.startswith("prompt_classifier@sha256:f3c49937")
    assert default_policy().version != "1.2.0" and default_policy().document.classifier.model == DEFAULT_MODEL


def test_generated_training_data_is_deterministic_and_labelled() -> None:
    gen = bench_module("prompt_training_data")
    a, b = gen.generate(), gen.generate()
    assert a == b and len(a) > 3000 and gen.generate(seed=1) != a
    assert all(i["split"] == "train" and i["id"].startswith("g") for i in a)
    assert {i["lang"] for i in a} == {"en", "es", "fr", "de", "pt"}
    assert {i["expected_category"] for i in a} == {"none", NCE, "sex_related_crimes"}
    benign = sum(i["expected_category"] == "none" for i in a)
    assert benign > 0.35 * len(a)  # hard negatives as many as the positives of either kind


def test_red_team_prompts_become_training_items_only_when_asked() -> None:
    """``--redteam``: attacks positive for their category, look-alikes negative, ids named by their file (two
    red teams may reuse an id); the default training data is unchanged, so a shipped model's data stays
    reproducible."""
    train = _train_module()
    rt = train.redteam_items()
    files = sorted((ROOT / "tests" / "pipeline_eval").glob("redteam*.jsonl"))
    assert len(rt) == sum(len(f.read_text().splitlines()) for f in files) > 3000
    assert len({i["id"] for i in rt}) == len(rt) and all(i["split"] == "train" for i in rt)
    benign = [i for i in rt if i["expected_action"] == "allow"]
    assert benign and all(i["expected_category"] == "none" for i in benign)
    assert all(i["expected_category"] != "none" for i in rt if i["expected_action"] != "allow")
    assert {i["id"] for i in rt}.isdisjoint({i["id"] for i in train.training_items()})
    assert len(train.training_items(redteam=True)) == len(train.training_items()) + len(rt)


def test_blind_study_swaps_only_the_classifier_section() -> None:
    """bench/blind_study.py keeps a release's frozen rules and replaces its model and thresholds."""
    study = bench_module("blind_study")
    data = json.loads(default_policy().canonical_json)
    before = json.loads(json.dumps(data))
    out = study.variant(data, DEFAULT_MODEL, ["nonconsensual_intimate_edit.hold_at=0.55",
                                              "child_sexual_exploitation.requires=[]"])
    assert out["classifier"]["categories"]["nonconsensual_intimate_edit"]["hold_at"] == 0.55
    assert out["classifier"]["categories"]["child_sexual_exploitation"]["requires"] == []
    assert out["classifier"]["sha256"] == file_sha256(ROOT / "pipeline" / "models" / f"{DEFAULT_MODEL}.json")
    out["classifier"] = before["classifier"] = None
    assert out == before  # nothing outside the classifier section moved
    assert [v for v, _ in study.PAIRS] == ["1.27.0", "1.28.0", "1.29.0", "1.30.0"]
