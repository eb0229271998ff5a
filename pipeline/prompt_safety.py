"""The prompt-safety layer: one code path and one policy for every surface.

``surface`` (chat, imagine, api, edit, video, ... — whatever the policy declares) is validated and
recorded in the decision, and nothing else: no rule, threshold or step depends on it, so the same
prompt gets the same decision on every surface (tests/unit/pipeline asserts it).

For each prompt:

1. refuse what cannot be judged (not a ``str``, empty, over ``limits.max_prompt_chars`` — rejected,
   never truncated, so a payload cannot hide behind padding);
2. normalise (:mod:`pipeline.normalise`): Unicode, invisible characters, homoglyphs and scripts,
   leetspeak, spaced-out letters, repeats;
3. blank the policy's benign ``masks`` ("undress rehearsal", "nude lipstick"): narrow phrases only,
   since a mask hides its words from every rule;
4. run the policy's rules: ``any`` (one term matches), ``all`` (every group matches, optionally
   within ``window`` words), ``regex``; a group entry ``"@a ~2 @b"`` is a sequence (a term of
   ``a``, at most two words, a term of ``b``). Turn-scope rules see this prompt. Session-scope
   rules see the last ``session.window_turns`` prompts joined and fire only for a request split
   across turns: this prompt supplies at least one of their groups and an earlier prompt at least
   one other (it is caught when its last piece arrives, and does not keep firing afterwards);
5. per category, turn risk = noisy-OR of the weights of the rules that fired (each rule counts
   once); accumulated risk = 1 − (1 − turn risk)(1 − decay × previous accumulated risk);
6. the learned classifier (:mod:`pipeline.prompt_model`, when the policy names one under
   ``classifier``) scores the same folded, masked text the rules saw — this prompt alone and, for a
   session, the last ``session.window_turns`` prompts joined. A category's score at or above the
   policy's classifier ``hold_at`` / ``block_at`` raises that category's turn risk to the category's
   own ``hold_at`` / ``block_at`` (merged with the rules' turn risk by max: the model can add to the
   rules, never take away; a block needs one of the category's ``requires`` terms in the text scored,
   when it names any — without one the score can still hold). The session score counts only when this
   turn takes it over a threshold the earlier turns alone did not reach, so it is caught when its last
   piece arrives, as the session rules are. Every decision lists the model's scores and which of them fired;
7. per category, the policy's ``hold_at`` / ``block_at`` route the accumulated risk to allow, hold
   or block — a block becomes a hold when the prompt has the policy's help-seeking wording
   (``support_context``; never for child sexual exploitation), and since policy 1.5.0 a help-seeking
   prompt that asks for no image, edit or generation (none of ``support_context.unless``, on any view;
   per category also none of ``unless_for``) is allowed in the ``support_context.allow`` categories
   (``support_allowed``); since 1.8.0 a benign setting (``contexts``, e.g. an art-history question)
   can allow categories the same way (since stage 1.5.0 only when none of the context's ``unless`` wording
   is in this turn or in the earlier turns of the window). Neither ever allows risk carried over from
   earlier turns, nor child sexual exploitation. Since 1.19.0 a turn that *refers back* (``session.refer_back`` wording:
   "the same with the next one", "tout le reste", "como antes"; or, with ``session.code_words``, a phrase an
   earlier turn defined as a code: "'spring cleaning' means removing every piece of clothing") carries the
   highest accumulated risk of the earlier turns in the window instead of the decayed previous one. The
   decision's action is the most
   severe; ``escalate`` is set when a category marked ``escalate`` (always child sexual
   exploitation) is not allowed.

A folded-view rule that does not fire on the folded text gets a second chance on the alternative
reading, when there is one (``|`` and ``!`` inside words read as insertions rather than letters).

Deterministic: the same policy, prompts and library versions give the same decision, byte for byte
(scores are rounded to 6 places; every list is sorted). ``stage_version`` names the code, the
Unicode / transliteration data versions and the classifier model file's SHA-256, and the policy is
named by id, version and SHA-256.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import EmptyPrompt, InvalidPolicy, InvalidPrompt, InvalidSurface, PromptTooLarge
from pipeline.normalise import compile_terms, compiled, dependency_versions, normalise
from pipeline.policy import (
    ACTIONS,
    SEQUENCE_MARK,
    ClassifierPolicy,
    Policy,
    default_policy,
    group_entries,
    parse_sequence,
)
from pipeline.prompt_model import PromptModel, file_sha256, load_model, model_path

STAGE = "prompt_safety"
STAGE_CODE_VERSION = "1.7.0"  # 1.7.0: a rule stops at its first unmatched group, concept terms filed by first word (the same decisions, faster); 1.6.0: word-start tests factored out of each run of alternatives (the same matches, faster); 1.5.0: a context's unless also reads the earlier turns of the session window; 1.4.0: classifier requires gates only its block level; 1.3.0: session refer_back and code words; 1.2.0: support_context allow / unless / unless_for, contexts, classifier requires
DEFAULT_MODEL = "prompt_classifier_v25"  # the model the shipped default policy names (1.26.x: "_v24", 1.25.0: "_v23", 1.24.0: "_v22", 1.23.0: "_v21", 1.22.x: "_v20", 1.21.0: "_v19", 1.20.0: "_v18", 1.19.0: "_v17", 1.18.0: "_v16", 1.17.0: "_v15", 1.16.0: "_v14", 1.15.0: "_v13", 1.14.0: "_v12", 1.13.0: "_v11", 1.12.0: "_v10", 1.11.0: "_v9", 1.10.0: "_v8", 1.9.0: "_v7", 1.8.0: "_v6", 1.7.0: "_v5", 1.6.0: "_v4", 1.4.0/1.5.0: "_v3", 1.3.0: "_v2", 1.2.0: "prompt_classifier")
_TOKEN = re.compile(r"\S+")
_EVIDENCE_CHARS = 60
_ALT = "folded_alt"
# A phrase defined as a code, in quotes, on the folded view: "'spring cleaning' means ...", "<< x >> = ...",
# "'modo verano' significa ...". Bounded (a code is at most 40 characters), so linear.
_CODE_DEFINITION = re.compile(
    r"""(?:'|"|<<|`)\s?([a-z0-9][a-z0-9 ]{1,38}?[a-z0-9])\s?(?:'|"|>>|`)\s?(?:=|:|->|means?(?![a-z])|meaning(?![a-z])|"""
    r"""is (?:our )?code for|stands for|significa(?![a-z])|quiere decir|quer dizer|signifie(?![a-z])|veut dire|"""
    r"""bedeutet(?![a-z])|heisst(?![a-z])|steht fur)"""
    # "every time I write « printemps », you remove a layer"
    r"""|(?:every time|whenever|each time|when|cada vez que|siempre que|chaque fois que|quand|jedes mal wenn|wenn|toda vez que|"""
    r"""sempre que|quando) (?:i |j |yo |ich |eu )?(?:write|say|type|send|jecris|je tape|ecris|dis|escribo|digo|escriba|schreibe|sage|escrevo|"""
    r"""disser|escrever)\s?(?:'|"|<<|`)\s?([a-z0-9][a-z0-9 ]{1,38}?[a-z0-9])\s?(?:'|"|>>|`)""")
_MAX_EXPANSION = 4  # NFKC can lengthen text (one character → up to 18): cap the normalised size too


def _model_version(model: str | Path | PromptModel | None) -> str:
    if model is None:
        return "prompt-model/none"
    if isinstance(model, PromptModel):
        return f"prompt-model/{model.name}@sha256:{model.sha256}"
    path = model if isinstance(model, Path) else model_path(model)
    name = path.stem if isinstance(model, Path) else model
    return f"prompt-model/{name}@sha256:{file_sha256(path)}"


def stage_version(model: str | Path | PromptModel | None = DEFAULT_MODEL) -> str:
    """The stage's version: code, normaliser data, and the classifier model file's SHA-256
    (``model``: a shipped model's name, a model file, a loaded model, or None for rules only).
    Called with no argument it names the model the shipped default policy uses."""
    deps = dependency_versions()
    return (f"{STAGE}/{STAGE_CODE_VERSION} normaliser/{deps['normaliser']} unicode/{deps['unicode']} "
            f"anyascii/{deps['anyascii']} confusable-homoglyphs/{deps['confusable-homoglyphs']} "
            f"{_model_version(model)}")


# --- decision ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleMatch:
    rule_id: str
    category: str
    weight: float
    scope: str
    evidence: tuple[str, ...]  # the normalised text each group matched


@dataclass(frozen=True)
class CategoryRisk:
    category: str
    risk: float        # accumulated over the session (== turn_risk for a single prompt)
    turn_risk: float   # this prompt: max(rule_risk, model_risk)
    action: str
    rule_risk: float = 0.0   # noisy-OR of the rules that fired (session-scope rules included)
    model_risk: float = 0.0  # the risk level the classifier raised it to (0: it did not fire)
    model_score: float | None = None  # the classifier's probability for this prompt (None: not scored)


@dataclass(frozen=True)
class ModelSignal:
    """The classifier fired: ``score`` ≥ ``threshold`` raised ``category`` to ``risk``."""

    category: str
    scope: str        # "turn" (this prompt) or "session" (the window joined)
    score: float
    threshold: float
    level: str        # "hold" or "block": which of the policy's classifier thresholds it passed
    risk: float


@dataclass(frozen=True)
class Decision:
    action: str
    escalate: bool
    categories: tuple[CategoryRisk, ...]
    matched_rules: tuple[RuleMatch, ...]
    normalised_text: str
    normalisation_flags: tuple[str, ...]
    masks_applied: tuple[str, ...]
    support_context: tuple[str, ...]  # help-seeking wording found (it turned blocks into holds)
    surface: str
    turn: int
    prompt_sha256: str
    prompt_chars: int
    policy_id: str
    policy_version: str
    policy_sha256: str
    stage_version: str
    stage: str = STAGE
    model: str | None = None                       # "<name>@sha256:<hex>" of the classifier, if any
    model_signals: tuple[ModelSignal, ...] = ()    # what the classifier fired (sorted)
    support_allowed: tuple[str, ...] = ()          # categories over a threshold allowed as help-seeking or by a context
    contexts: tuple[str, ...] = ()                 # the policy's benign contexts the prompt is in (since 1.8.0)
    refers_back: tuple[str, ...] = ()              # wording or code words by which it refers back (since 1.19.0)

    @property
    def risk(self) -> dict[str, float]:
        return {c.category: c.risk for c in self.categories}

    @property
    def category_actions(self) -> dict[str, str]:
        return {c.category: c.action for c in self.categories}

    def flagged(self) -> tuple[str, ...]:
        """Categories whose action is not allow."""
        return tuple(c.category for c in self.categories if c.action != "allow")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["categories"] = [asdict(c) for c in self.categories]
        d["matched_rules"] = [{**asdict(m), "evidence": list(m.evidence)} for m in self.matched_rules]
        d["model_signals"] = [asdict(s) for s in self.model_signals]
        d["normalisation_flags"] = list(self.normalisation_flags)
        d["masks_applied"] = list(self.masks_applied)
        d["support_context"] = list(self.support_context)
        if self.support_allowed:
            d["support_allowed"] = list(self.support_allowed)
        else:  # decisions of policies without support_context.allow keep the form they always had
            del d["support_allowed"]
        if self.contexts:
            d["contexts"] = list(self.contexts)
        else:  # likewise for policies without contexts
            del d["contexts"]
        if self.refers_back:
            d["refers_back"] = list(self.refers_back)
        else:  # likewise for policies without session.refer_back
            del d["refers_back"]
        return d

    def outcome(self) -> dict[str, Any]:
        """Everything the layer decided — the decision without the surface it was asked on.
        Surface parity means: equal outcomes for the same prompts on every surface."""
        d = self.to_dict()
        del d["surface"]
        return d


# --- compiled policy --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Rule:
    id: str
    category: str
    weight: float
    scope: str
    view: str
    groups: tuple[tuple[int, ...], ...]  # per group: indices into PromptSafety._patterns (one per lexicon)
    window: int | None


@dataclass
class _View:
    """One text a rule runs over, with match caches."""

    text: str
    current_start: int = 0  # where the current turn begins (session views); 0 for a single turn
    _tokens: list[int] = field(default_factory=list)
    _cache: dict[int, list[re.Match[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tokens = [m.start() for m in _TOKEN.finditer(self.text)]

    def token_index(self, pos: int) -> int:
        return max(0, bisect.bisect_right(self._tokens, pos) - 1)

    def matches(self, idx: int, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        hit = self._cache.get(idx)
        if hit is None:
            hit = list(pattern.finditer(self.text))
            self._cache[idx] = hit
        return hit

    def group_matches(self, units: tuple[int, ...], patterns: list[re.Pattern[str]]) -> list[re.Match[str]]:
        if len(units) == 1:
            return self.matches(units[0], patterns[units[0]])
        out = [m for u in units for m in self.matches(u, patterns[u])]
        out.sort(key=lambda m: (m.start(), -m.end()))
        return out


def _evidence(m: re.Match[str]) -> str:
    s = m.group()
    return s if len(s) <= _EVIDENCE_CHARS else s[:_EVIDENCE_CHARS - 1] + "…"


@dataclass(frozen=True)
class _Turn:
    views: dict[str, str]
    risk: dict[str, float]
    codes: tuple[str, ...] = ()  # phrases this turn defined as a code (session.code_words)


def _window(history: list[_Turn], window_turns: int) -> list[_Turn]:
    """The earlier turns a session reads beside this one: the last ``window_turns - 1``."""
    return history[-(window_turns - 1):] if window_turns > 1 else []


def _round(x: float) -> float:
    return round(x, 6)


class PromptSafety:
    """A policy compiled for the prompt-safety layer. Stateless and thread-safe; use
    :meth:`check` for a single prompt and :class:`Session` for a conversation."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or default_policy()
        doc = self.policy.document
        self._surfaces = frozenset(doc.surfaces)
        # One compiled pattern per lexicon and per inline term list, shared by every rule using it (and, through
        # normalise.compiled, by every layer in the process that has the same lexicon).
        self._patterns: list[re.Pattern[str]] = []
        index: dict[tuple[str, ...], int] = {}  # sorted term tuple, or ("~seq", entry) → pattern index

        def unit(terms: list[str]) -> int:
            key = tuple(sorted(set(terms)))
            if key not in index:
                index[key] = len(self._patterns)
                self._patterns.append(compile_terms(list(key)))
            return index[key]

        def sequence(entry: str) -> int:
            key = ("~seq", entry)
            if key not in index:
                parts = []
                for item in parse_sequence(entry):
                    if isinstance(item, int):
                        # up to N whole words between two terms: the inner word is possessive and
                        # the repeat bounded, so this cannot backtrack beyond N + 1 tries
                        parts.append(f"(?: [^ \n]++){{0,{item}}} [^a-z0-9 \n]*+")
                    else:  # the rest of the word follows a stem ("entfern*" → "entferne")
                        parts.append(f"(?:{compile_terms(doc.lexicons[item]).pattern})[a-z0-9]*+")
                index[key] = len(self._patterns)
                self._patterns.append(compiled("".join(parts)))
            return index[key]

        def group(entries: list[str]) -> tuple[int, ...]:
            units = {sequence(e) for e in entries if SEQUENCE_MARK in e}
            units |= {unit(doc.lexicons[e[1:]]) for e in entries if e.startswith("@") and SEQUENCE_MARK not in e}
            inline = [e for e in entries if not e.startswith("@")]
            if inline:
                units.add(unit(inline))
            return tuple(sorted(units))

        rules = []
        for r in doc.rules:
            if r.regex is not None:
                self._patterns.append(compiled(r.regex))
                groups: tuple[tuple[int, ...], ...] = ((len(self._patterns) - 1,),)
            else:
                groups = tuple(group(g) for g in group_entries(r))
            rules.append(_Rule(r.id, r.category, r.weight, r.scope, r.view, groups, r.window))
        self._rules = tuple(rules)

        def words(entries: list[str]) -> re.Pattern[str]:
            """One pattern for a plain word list (terms and @lexicons)."""
            return compile_terms(sorted({t for e in entries for t in (doc.lexicons[e[1:]] if e.startswith("@") else [e])}))

        self._contexts: list[tuple[_Rule, frozenset[str], re.Pattern[str]]] = []
        for c in doc.contexts:
            cgroups = tuple(group(g) for g in group_entries(c))
            self._contexts.append((_Rule(c.id, "", 1.0, "turn", "folded", cgroups, c.window), frozenset(c.allow),
                                   words(c.unless)))
        self._masks = [(m, compile_terms([m])) for m in sorted(set(doc.masks))]
        self._support = compile_terms(doc.support_context.terms) if doc.support_context.terms else None
        self._downgrade = frozenset(doc.support_context.downgrade)
        self._support_allow = frozenset(doc.support_context.allow)
        self._unless = words(doc.support_context.unless) if doc.support_context.unless else None
        self._unless_for = {name: words(extra) for name, extra in doc.support_context.unless_for.items()}
        self._refer_back = words(doc.session.refer_back) if doc.session.refer_back else None
        self._requires = {name: words(mc.requires) for name, mc in
                          (doc.classifier.categories.items() if doc.classifier is not None else ()) if mc.requires}
        self._categories = sorted(doc.categories)
        self._classifier: ClassifierPolicy | None = doc.classifier
        self._model: PromptModel | None = None
        if doc.classifier is not None:
            self._model = load_model(doc.classifier.model)
            if self._model.sha256 != doc.classifier.sha256:
                raise InvalidPolicy(f"classifier.sha256: the policy names model {doc.classifier.model!r} with "
                                    f"sha256 {doc.classifier.sha256}, but the installed file is "
                                    f"{self._model.sha256} (a policy and its model are released together: a "
                                    "retrained model needs a new policy version)")
            missing = sorted(set(doc.classifier.categories) - set(self._model.categories))
            if missing:
                raise InvalidPolicy(f"classifier.categories: model {doc.classifier.model!r} does not score "
                                    f"{missing} (it scores {list(self._model.categories)})")
        self._stage_version = stage_version(self._model)
        self._model_label = f"{self._model.name}@sha256:{self._model.sha256}" if self._model else None

    def patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        """Every regular expression this layer runs, each with what uses it (a rule or context id, or a
        part of the policy): for the hang guards, which time each one on pathological input."""
        owner: dict[int, str] = {}
        for rule in self._rules + tuple(c[0] for c in self._contexts):
            for g in rule.groups:
                for u in g:
                    owner.setdefault(u, rule.id)
        out = [(owner.get(i, "?"), p) for i, p in enumerate(self._patterns)]
        out += [(f"context {rule.id} unless", unless) for rule, _, unless in self._contexts]
        out += [(f"mask {phrase!r}", pat) for phrase, pat in self._masks]
        out += [(f"classifier requires {name}", pat) for name, pat in self._requires.items()]
        out += [(f"support_context unless_for {name}", pat) for name, pat in self._unless_for.items()]
        out += [(label, pat) for label, pat in (("support_context terms", self._support),
                                                ("support_context unless", self._unless),
                                                ("session refer_back", self._refer_back)) if pat is not None]
        return out + [("session code definitions", _CODE_DEFINITION), ("tokens", _TOKEN)]

    # -- input -----------------------------------------------------------------------------

    def _check_input(self, text: object, surface: object) -> str:
        if not isinstance(surface, str):
            raise InvalidSurface(f"surface must be a string, got {type(surface).__name__}")
        if surface not in self._surfaces:
            raise InvalidSurface(f"unknown surface {surface!r}; the policy declares: {', '.join(sorted(self._surfaces))}")
        if not isinstance(text, str):
            raise InvalidPrompt(f"prompt must be a string (str), got {type(text).__name__}")
        limit = self.policy.document.limits.max_prompt_chars
        if len(text) > limit:
            raise PromptTooLarge(f"prompt is {len(text)} characters; the policy's limit is {limit} "
                                 "(rejected, not truncated)")
        if not text.strip():
            raise EmptyPrompt("prompt is empty")
        return text

    def _views(self, text: str) -> tuple[dict[str, str], str, tuple[str, ...], tuple[str, ...]]:
        limit = self.policy.document.limits.max_prompt_chars
        n = normalise(text)
        if not n.folded:
            raise EmptyPrompt("prompt has no visible characters after normalisation (only format, control "
                              "or combining characters)")
        if len(n.canonical) > _MAX_EXPANSION * limit:
            raise PromptTooLarge(f"prompt expands to {len(n.canonical)} characters when normalised; the limit "
                                 f"is {_MAX_EXPANSION * limit}")
        views = {"canonical": n.canonical, "folded": n.folded}
        if n.folded_alt is not None:
            views[_ALT] = n.folded_alt
        applied: set[str] = set()
        for phrase, pat in self._masks:
            for name, t in views.items():
                new = pat.sub(lambda m: " " * len(m.group()), t)
                if new != t:
                    applied.add(phrase)
                    views[name] = new
        return views, n.folded, n.flags, tuple(sorted(applied))

    # -- rules -----------------------------------------------------------------------------

    def _fire(self, rule: _Rule, view: _View, session: bool) -> RuleMatch | None:
        # group by group, stopping at the first that does not match: most rules do not fire, and a
        # lexicon no earlier group needed is then never scanned (the scans were most of a decision's time)
        per_group = []
        for g in rule.groups:
            ms = view.group_matches(g, self._patterns)
            if not ms:
                return None
            per_group.append(ms)
        if session:
            # a session rule is about a request split over turns: this turn must supply at least
            # one group, and at least one group must come only from earlier turns (a request made
            # whole in one prompt is the turn rules' business)
            here = [any(m.start() >= view.current_start for m in ms) for ms in per_group]
            if not any(here) or all(here):
                return None
        if rule.window is None or len(per_group) == 1:
            return RuleMatch(rule.id, rule.category, rule.weight, rule.scope,
                             tuple(_evidence(ms[0]) for ms in per_group))
        best = _min_window(view, per_group)
        if best is None or best[0] > rule.window:
            return None
        return RuleMatch(rule.id, rule.category, rule.weight, rule.scope, tuple(_evidence(m) for m in best[1]))

    def _evaluate(self, views: dict[str, str], history: list[_Turn], window_turns: int) -> list[RuleMatch]:
        """Fire every rule. A folded-view rule that does not fire on ``folded`` gets a second
        chance on the alternative reading (``folded_alt``) when there is one."""
        single = {name: _View(t) for name, t in views.items()}
        joined: dict[str, _View] = {}
        prior = _window(history, window_turns)
        names = set(views) | {n for turn in prior for n in turn.views}
        for name in names:
            if not prior:
                joined[name] = single[name]
                continue
            base = "folded" if name == _ALT else name
            before = "\n".join(turn.views.get(name, turn.views[base]) for turn in prior)
            joined[name] = _View(before + "\n" + views.get(name, views[base]), current_start=len(before) + 1)
        fired = []
        for rule in self._rules:
            if rule.scope == "session" and not prior:
                continue
            pool, session = (single, False) if rule.scope == "turn" else (joined, True)
            m = self._fire(rule, pool[rule.view], session)
            if m is None and rule.view == "folded" and _ALT in pool:
                m = self._fire(rule, pool[_ALT], session)
            if m is not None:
                fired.append(m)
        return sorted(fired, key=lambda m: (m.category, m.rule_id))

    # -- decisions -------------------------------------------------------------------------

    def model_text(self, text: str) -> str:
        """The text the classifier scores for one prompt: the folded view with the policy's masks
        blanked (what the rules see). The training script uses this, so training and runtime
        see prompts the same way."""
        if not isinstance(text, str):
            raise InvalidPrompt(f"prompt must be a string (str), got {type(text).__name__}")
        return self._views(text)[0]["folded"]

    def _level(self, category: str, score: float, corroborated: bool) -> tuple[str, float, float] | None:
        """(level, threshold, risk) the classifier's ``score`` raises ``category`` to, or None. Without
        corroboration (``requires``) the score cannot block; it can still hold (since code 1.4.0)."""
        assert self._classifier is not None
        mc = self._classifier.categories.get(category)
        if mc is None:
            return None
        cp = self.policy.document.categories[category]
        if mc.block_at is not None and score >= mc.block_at and cp.block_at is not None and corroborated:
            return "block", mc.block_at, cp.block_at
        if mc.hold_at is not None and score >= mc.hold_at and cp.hold_at is not None:
            return "hold", mc.hold_at, cp.hold_at
        return None

    def _model_scores(self, views: dict[str, str], history: list[_Turn], window_turns: int, alt_scored: bool = True
                      ) -> tuple[dict[str, float], list[ModelSignal]]:
        """The classifier's per-category scores for this prompt and the signals that fired. The alternative
        view is scored too unless it only splits hyphenated words (``alt_scored`` False): the model learned
        the folded view, where they are joined, and split compounds raised false holds ("Twitch-Kanal")."""
        model, clf = self._model, self._classifier
        if model is None or clf is None:
            return {}, []
        turn = model.scores(views["folded"])
        if _ALT in views and alt_scored:  # the alternative reading of | and ! inside words: the higher score counts
            alt = model.scores(views[_ALT])
            turn = {c: max(turn[c], alt[c]) for c in turn}
        signals: dict[str, ModelSignal] = {}
        here = [v for k, v in views.items() if k != "canonical"]
        for c in clf.categories:
            lv = self._level(c, turn[c], self._corroborated(c, here))
            if lv is not None:
                signals[c] = ModelSignal(c, "turn", turn[c], lv[1], lv[0], lv[2])
        prior = _window(history, window_turns)
        if clf.session and prior:
            before = "\n".join(t.views["folded"] for t in prior)
            joined = model.scores(before + "\n" + views["folded"])
            earlier = model.scores(before)
            for c in clf.categories:
                ok = self._corroborated(c, here + [before])
                lv, was = self._level(c, joined[c], ok), self._level(c, earlier[c], ok)
                if lv is None or (was is not None and was[2] >= lv[2]):
                    continue  # not over a threshold, or the earlier turns were already there on their own
                if c not in signals or signals[c].risk < lv[2]:
                    signals[c] = ModelSignal(c, "session", joined[c], lv[1], lv[0], lv[2])
        return {c: turn[c] for c in clf.categories}, [signals[c] for c in sorted(signals)]

    def _corroborated(self, category: str, texts: list[str]) -> bool:
        """A category with ``requires`` lets the classifier block only when one of its terms is in the text
        scored: since 1.9.0 the classifier may block child sexual exploitation, but "draw my 12 year old
        daughter as a superhero" scored 1.0 — a child alone is not abuse. (Child sexual exploitation has no
        classifier hold, so there the score counts not at all; since 1.21.0 intimate edits and sex-related
        crimes keep their hold without corroboration: "show her without the stain on the dress" 0.98.)"""
        pat = self._requires.get(category)
        return pat is None or any(pat.search(t) for t in texts)

    def _decide(self, text: object, surface: object, history: list[_Turn]) -> tuple[Decision, _Turn]:
        checked = self._check_input(text, surface)
        views, folded, flags, masks = self._views(checked)
        doc = self.policy.document
        fired = self._evaluate(views, history, doc.session.window_turns)
        scores, signals = self._model_scores(views, history, doc.session.window_turns,
                                             alt_scored="hyphens_split" not in flags)
        model_risk = {s.category: s.risk for s in signals}
        support = tuple(sorted({_evidence(m) for m in self._support.finditer(views["folded"])})) if self._support else ()
        previous = history[-1].risk if history else {}
        referred, refers, codes = self._referred(views, history, doc.session.window_turns)
        # the request wording is read on every view (a structured or "|"-split request is still one)
        read = [v for k, v in views.items() if k != "canonical"]
        allowable = self._support_allow if support and self._support_allow and not (
            self._unless is not None and any(self._unless.search(v) for v in read)) else frozenset()
        allowable = frozenset(c for c in allowable if c not in self._unless_for or not any(
            self._unless_for[c].search(v) for v in read))
        support_allowed: list[str] = []
        contexts = self._settings(views, _window(history, doc.session.window_turns))
        for _, allow in contexts:
            allowable = allowable | allow
        cats: list[CategoryRisk] = []
        acc: dict[str, float] = {}
        escalate = False
        for name in self._categories:
            keep = 1.0
            for m in fired:
                if m.category == name:
                    keep *= 1.0 - m.weight
            rule_risk = _round(1.0 - keep)
            turn_risk = max(rule_risk, model_risk.get(name, 0.0))
            carried = max(doc.session.decay * previous.get(name, 0.0), referred.get(name, 0.0))
            risk = _round(1.0 - (1.0 - turn_risk) * (1.0 - carried))
            acc[name] = risk
            cp = doc.categories[name]
            if cp.block_at is not None and risk >= cp.block_at:
                action = "hold" if support and name in self._downgrade else "block"
            elif cp.hold_at is not None and risk >= cp.hold_at:
                action = "hold"
            else:
                action = "allow"
            # never for risk carried over from earlier turns: "how do I report this?" after "take off her
            # bikini" is the same session's request
            if action != "allow" and name in allowable and (cp.hold_at is None or carried < cp.hold_at) and (
                    cp.block_at is None or carried < cp.block_at):
                action = "allow"
                support_allowed.append(name)
            escalate = escalate or (cp.escalate and action != "allow")
            cats.append(CategoryRisk(name, risk, turn_risk, action, rule_risk, model_risk.get(name, 0.0),
                                     scores.get(name)))
        action = max((c.action for c in cats), key=ACTIONS.index, default="allow")
        decision = Decision(
            action=action, escalate=escalate, categories=tuple(cats), matched_rules=tuple(fired),
            normalised_text=folded, normalisation_flags=flags, masks_applied=masks, support_context=support,
            surface=surface, turn=len(history),  # type: ignore[arg-type]  # checked above
            prompt_sha256=hashlib.sha256(checked.encode("utf-8", "surrogatepass")).hexdigest(),
            prompt_chars=len(checked), policy_id=self.policy.policy_id, policy_version=self.policy.version,
            policy_sha256=self.policy.sha256, stage_version=self._stage_version, model=self._model_label,
            model_signals=tuple(signals), support_allowed=tuple(support_allowed),
            contexts=tuple(sorted(cid for cid, _ in contexts)), refers_back=refers)
        return decision, _Turn(views=views, risk=acc, codes=codes)

    def _referred(self, views: dict[str, str], history: list[_Turn], window_turns: int
                  ) -> tuple[dict[str, float], tuple[str, ...], tuple[str, ...]]:
        """(risk carried undecayed, the wording that refers back, the codes this turn defines).

        A turn refers back with the policy's ``session.refer_back`` wording, or by using a code an
        earlier turn in the window defined (``session.code_words``). It then carries, per category,
        the highest accumulated risk of the earlier turns in the window: "la primera: quítale todo" held,
        then "ahora lo mismo con la siguiente" asks for the same thing and is judged as that request."""
        doc = self.policy.document
        read = [v for k, v in views.items() if k != "canonical"]
        codes: tuple[str, ...] = ()
        if doc.session.code_words:
            codes = tuple(sorted({m.group(1) or m.group(2) for v in read for m in _CODE_DEFINITION.finditer(v)}))
        prior = _window(history, window_turns)
        if not prior:
            return {}, (), codes
        found: set[str] = set()
        if self._refer_back is not None:
            found |= {_evidence(m) for v in read for m in self._refer_back.finditer(v)}
        defined = sorted({c for t in prior for c in t.codes})
        if defined:
            pattern = _code_pattern(defined)
            found |= {_evidence(m) for v in read for m in pattern.finditer(v)}
        if not found:
            return {}, (), codes
        referred = {name: max(t.risk.get(name, 0.0) for t in prior) for name in self._categories}
        return referred, tuple(sorted(found)), codes

    def _settings(self, views: dict[str, str], prior: list[_Turn]) -> list[tuple[str, frozenset[str]]]:
        """The policy's benign contexts this prompt is in (``contexts``): each fired, without any of its
        ``unless`` wording in this turn or in the earlier turns of the session window (``prior``), with the
        categories it allows.

        Since stage 1.5.0 the earlier turns count: a context's allowance overrides what session rules found
        across turns, so "Photo of my colleague Priya" then "the negligee from our flat lay, no model" must
        not be read as a product shot because the person was named one turn earlier (a red team of the
        1.25.0 draft's flat-lay context)."""
        out = []
        for rule, allow, unless in self._contexts:
            fired = self._fire(rule, _View(views["folded"]), False)
            if fired is None and _ALT in views:
                fired = self._fire(rule, _View(views[_ALT]), False)
            if fired is None:
                continue
            read = [views["folded"]] + ([views[_ALT]] if _ALT in views else []) + [
                t.views[k] for t in prior for k in ("folded", _ALT) if k in t.views]
            if not any(unless.search(v) for v in read):
                out.append((rule.id, allow))
        return out

    def check(self, text: object, surface: object) -> Decision:
        """Judge one prompt on its own (a session of one turn)."""
        return self._decide(text, surface, [])[0]

    def session(self) -> Session:
        return Session(self)


def _code_pattern(codes: list[str]) -> re.Pattern[str]:
    """The uses of session-defined codes, inflected: each word of six letters or more may change its
    last two ("« éplucher la banane » = ..." then "épluche la banane")."""
    def word(w: str) -> str:
        return re.escape(w[:-2]) + "[a-z]{0,4}" if len(w) >= 6 else re.escape(w)
    alts = sorted({" ?".join(word(w) for w in c.split()) for c in codes}, key=lambda p: (-len(p), p))
    return re.compile("(?<![a-z0-9])(?:" + "|".join(alts) + ")(?![a-z0-9])")


def _min_window(view: _View, per_group: list[list[re.Match[str]]]) -> tuple[int, list[re.Match[str]]] | None:
    """Smallest span in words covering one match of every group (two pointers over sorted events)."""
    events = sorted(((view.token_index(m.start()), g, m.start(), m) for g, ms in enumerate(per_group) for m in ms),
                    key=lambda e: (e[0], e[1], e[2]))
    need = len(per_group)
    count = [0] * need
    have = 0
    best: tuple[int, list[re.Match[str]]] | None = None
    lo = 0
    for hi, (tok, g, _, _) in enumerate(events):
        if count[g] == 0:
            have += 1
        count[g] += 1
        while have == need:
            span = tok - events[lo][0]
            if best is None or span < best[0]:
                chosen: dict[int, re.Match[str]] = {}
                for e in events[lo:hi + 1]:
                    chosen.setdefault(e[1], e[3])
                best = (span, [chosen[i] for i in range(need)])
            lg = events[lo][1]
            count[lg] -= 1
            if count[lg] == 0:
                have -= 1
            lo += 1
    return best


class Session:
    """A conversation: risk accumulates across turns, and session-scope rules see the last
    ``session.window_turns`` prompts together. A prompt that raises an error is not recorded."""

    def __init__(self, layer: PromptSafety | Policy | None = None) -> None:
        self.layer = layer if isinstance(layer, PromptSafety) else PromptSafety(layer)
        self._history: list[_Turn] = []
        self.decisions: list[Decision] = []

    def check(self, text: object, surface: object) -> Decision:
        decision, turn = self.layer._decide(text, surface, self._history)
        self._history.append(turn)
        self.decisions.append(decision)
        return decision

    def __len__(self) -> int:
        return len(self._history)


_layers: dict[str, PromptSafety] = {}


def layer_for(policy: Policy | None = None) -> PromptSafety:
    """A compiled layer per policy hash, built once per process."""
    p = policy or default_policy()
    if p.sha256 not in _layers:
        _layers[p.sha256] = PromptSafety(p)
    return _layers[p.sha256]


def check(text: object, surface: object, policy: Policy | None = None) -> Decision:
    """Judge one prompt with ``policy`` (default: the shipped default policy)."""
    return layer_for(policy).check(text, surface)
