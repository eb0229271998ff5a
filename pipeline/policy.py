"""Machine-readable safety policies: schema, loading, validation and a stable hash.

A policy is a YAML (``yaml.safe_load`` with duplicate keys and anchors refused) or JSON document::

    schema: custody.policy/v1
    policy_id: custody-default
    version: 1.0.0
    taxonomy: mlcommons-ailuminate-v1.0
    surfaces: [chat, imagine, api, edit, video]
    limits: {max_prompt_chars: 10000}
    session: {window_turns: 6, decay: 0.7}
    categories:
      child_sexual_exploitation: {block_at: 0.3, escalate: true}
      nonconsensual_intimate_edit: {hold_at: 0.3, block_at: 0.6}
      ...
    rules_file: default_rules.yaml      # optional: lexicons, masks and rules kept apart
    lexicons: {name: [term, ...]}
    masks: [phrase, ...]                # benign phrases blanked before matching ("dress rehearsal")
    rules:
      - {id: nce.undress, category: nonconsensual_intimate_edit, weight: 0.9,
         all: ["@undress", "@person_ref"], window: 8}

Category names are the MLCommons AILuminate v1.0 hazard categories (``CATEGORIES``), plus
``nonconsensual_intimate_edit``: the intimate-image-abuse part of *sex-related crimes* applied to
an edit of a real person's photo, kept as its own category because it is the Grok pattern.
Child sexual exploitation is always block + escalate: a policy that would merely hold it, or not
declare it, does not load.

A category's risk is in [0, 1]; ``hold_at`` ≤ risk < ``block_at`` holds for human review,
risk ≥ ``block_at`` blocks, anything lower is allowed.

``Policy.sha256`` is SHA-256 over the canonical JSON (sorted keys, no whitespace, UTF-8) of the
*resolved* document — defaults filled in and the rules file inlined — so two files with the same
meaning have the same hash and a decision names exactly the policy that made it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import re._constants as sre_c
import re._parser as sre_parse
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import InvalidPolicy, PolicyNotFound
from pipeline.normalise import compile_term

SCHEMA = "custody.policy/v1"
TAXONOMY = "mlcommons-ailuminate-v1.0"
MAX_POLICY_BYTES = 2 * 1024 * 1024
MAX_REGEX_CHARS = 500
REGEX_PREFIX = "re:"  # a term that is a regular expression over the normalised (lower-case ASCII) text
SEQUENCE_MARK = " ~"  # "@a ~2 @b": a term of @a, at most 2 words, then a term of @b
MAX_SEQUENCE_GAP = 6

# category → (MLCommons AILuminate v1.0 hazard code, title)
CATEGORIES: dict[str, tuple[str, str]] = {
    "violent_crimes": ("vcr", "Violent crimes"),
    "sex_related_crimes": ("src", "Sex-related crimes (incl. intimate-image abuse, voyeurism, sextortion)"),
    "nonconsensual_intimate_edit": ("src", ("Sex-related crimes: sexualised / undressing edit of a real "
                                            "person's photo without consent")),
    "child_sexual_exploitation": ("cse", "Child sexual exploitation"),
    "suicide_self_harm": ("ssh", "Suicide and self-harm"),
    "indiscriminate_weapons": ("iwp", "Indiscriminate weapons (CBRNE)"),
    "intellectual_property": ("ipv", "Intellectual property"),
    "defamation": ("dfm", "Defamation"),
    "non_violent_crimes": ("ncr", "Non-violent crimes"),
    "hate": ("hte", "Hate"),
    "privacy": ("prv", "Privacy"),
    "specialized_advice": ("spc", "Specialized advice"),
    "sexual_content": ("sxc", "Sexual content"),
}
CSE = "child_sexual_exploitation"
ACTIONS = ("allow", "hold", "block")  # in order of severity

_ID = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"
_VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+\-]{0,31}$"
_LEXICON_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Limits(_Strict):
    max_prompt_chars: int = Field(10_000, ge=1, le=1_000_000)


class SessionPolicy(_Strict):
    window_turns: int = Field(6, ge=1, le=100, description="turns (the current one included) that "
                                                           "session-scope rules see")
    decay: float = Field(0.7, ge=0.0, le=1.0, description="share of the previous turn's accumulated "
                                                          "risk carried into the next")
    # since 1.19.0 (holdout-19): "now the same with the next one", "tout le reste", "as before" after a held
    # undressing request decayed below hold; a turn that refers back carries the window's risk undecayed
    refer_back: list[str] = Field([], description="wording (terms, @lexicons) by which a turn refers back to the "
                                                  "session's earlier requests: it carries the highest risk of the "
                                                  "earlier turns in the window, undecayed")
    code_words: bool = Field(False, description="a phrase an earlier turn in the window defined as a code "
                                                "(\"'spring cleaning' means ...\", \"« X » = ...\") refers back too")


class CategoryPolicy(_Strict):
    hold_at: float | None = Field(None, gt=0.0, le=1.0)
    block_at: float | None = Field(None, gt=0.0, le=1.0)
    escalate: bool = False
    description: str = ""


class SupportContext(_Strict):
    """Help-seeking wording ("how do I report", "I am a victim of") turns a *block* in the
    ``downgrade`` categories into a *hold*: a person asking for help reaches a human instead of a wall.

    Since policy 1.5.0 it can do more: in the ``allow`` categories a help-seeking prompt that asks for
    no picture, edit or generation (none of the ``unless`` terms; ``@name`` refers to a lexicon) is
    *allowed*, and the decision says so (``support_allowed``). A victim asking how to get a leaked
    photo taken down, a parent asking how to report, a teacher preparing a sextortion lesson get an
    answer at once instead of waiting in a review queue; a request that borrows the wording but asks
    for an image or an edit still finds at least a human. ``unless`` is read on every view of the prompt;
    ``unless_for`` adds wording for single categories (since 1.9.0: the default policy allows sexual
    content only when no other person, garment or described nudity is named, and no longer lists
    nonconsensual edits). Risk carried over from earlier turns is never allowed. Child sexual
    exploitation cannot be listed in either list (the loader refuses it)."""

    terms: list[str] = []
    downgrade: list[str] = []
    allow: list[str] = []
    unless: list[str] = []
    # since 1.9.0: more request wording for some categories only (a victim who names "my ex" is answered about
    # sextortion, but "as a journalist: my neighbour Sarah topless" is not allowed as a nonconsensual edit)
    unless_for: dict[str, list[str]] = {}


class Context(_Strict):
    """A benign setting that allows the listed categories outright (since policy 1.8.0), the way
    help-seeking wording does (:class:`SupportContext`): an art-history question about Titian's nudes is
    discussion, not a request for nudity. It fires like a rule (``any`` / ``all`` groups, ``window``); a
    prompt that also has any of the ``unless`` wording (a request for an image, an edit or a
    generation) is not allowed by it. Child sexual exploitation can never be listed."""

    id: str = Field(pattern=_ID)
    any: list[str] | None = None
    all: list[list[str] | str] | None = None
    window: int | None = Field(None, ge=1, le=200)
    allow: list[str] = Field(min_length=1)
    unless: list[str] = Field(min_length=1)
    note: str = ""


class Rule(_Strict):
    id: str = Field(pattern=_ID)
    category: str
    weight: float = Field(gt=0.0, le=1.0)
    any: list[str] | None = None
    all: list[list[str] | str] | None = None
    regex: str | None = None
    window: int | None = Field(None, ge=1, le=200, description="max distance in words between the "
                                                               "first and last group match ('all' only)")
    scope: Literal["turn", "session"] = "turn"
    view: Literal["folded", "canonical"] = "folded"
    note: str = ""


class ClassifierCategory(_Strict):
    """Thresholds on the classifier's probability for one category. A score at or above
    ``hold_at`` raises the category's risk to the category's own ``hold_at``; at or above
    ``block_at``, to its ``block_at``. The classifier's risk is merged with the rules' by max."""

    hold_at: float | None = Field(None, gt=0.0, lt=1.0)
    block_at: float | None = Field(None, gt=0.0, lt=1.0)
    requires: list[str] = Field([], description="since 1.9.0: the score blocks only when one of these terms "
                                                "(@lexicon allowed) is in the text it scored — corroboration; "
                                                "an uncorroborated score can still hold")


class ClassifierPolicy(_Strict):
    """The learned classifier beside the rules (:mod:`pipeline.prompt_model`). It never replaces
    them: its signal can only raise a category's risk."""

    model: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$",
                       description="a model shipped in the package: pipeline/models/<model>.json")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$",
                        description="the model file's SHA-256: the policy's hash then covers its model too, "
                                    "and a retrained model needs a new policy version")
    session: bool = Field(True, description="also score the session window (the last window_turns prompts "
                                            "joined); it counts when this turn takes the score over a threshold")
    categories: dict[str, ClassifierCategory]


class PolicyDocument(_Strict):
    schema_: Literal["custody.policy/v1"] = Field(alias="schema")
    policy_id: str = Field(pattern=_ID)
    version: str = Field(pattern=_VERSION)
    title: str = ""
    description: str = ""
    taxonomy: Literal["mlcommons-ailuminate-v1.0"]
    surfaces: list[str] = Field(min_length=1)
    limits: Limits = Limits()
    session: SessionPolicy = SessionPolicy()
    categories: dict[str, CategoryPolicy]
    lexicons: dict[str, list[str]] = {}
    masks: list[str] = []
    support_context: SupportContext = SupportContext()
    contexts: list[Context] = []
    rules: list[Rule] = []
    classifier: ClassifierPolicy | None = None

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True)
class Policy:
    """A validated, resolved policy and its identity."""

    document: PolicyDocument
    sha256: str
    canonical_json: bytes
    source: str

    @property
    def policy_id(self) -> str:
        return self.document.policy_id

    @property
    def version(self) -> str:
        return self.document.version

    def summary(self) -> dict[str, Any]:
        d = self.document
        return {
            "policy_id": d.policy_id, "version": d.version, "policy_sha256": self.sha256,
            "source": self.source, "taxonomy": d.taxonomy, "surfaces": list(d.surfaces),
            "categories": {name: {"mlcommons": CATEGORIES[name][0], "hold_at": c.hold_at,
                                  "block_at": c.block_at, "escalate": c.escalate}
                           for name, c in sorted(d.categories.items())},
            "rules": len(d.rules), "lexicons": len(d.lexicons), "masks": len(d.masks),
            "support_context": {"terms": len(d.support_context.terms), "downgrade": list(d.support_context.downgrade),
                                "allow": list(d.support_context.allow), "unless": len(d.support_context.unless)},
        }


# --- parsing ----------------------------------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last) and anchors/aliases
    (a policy needs neither, and aliases can expand exponentially when the document is hashed)."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, "YAML aliases (*name) are not allowed in a policy",
                                                    event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.constructor.ConstructorError(None, None, "YAML anchors (&name) are not allowed in a policy",
                                                    event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


def _where(source: str) -> str:
    return f"policy {source}" if source else "policy"


def parse_text(text: str, fmt: Literal["yaml", "json"], source: str = "") -> Any:
    """Text → plain data, with parse errors that carry a line and column."""
    if fmt == "json":
        def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in pairs:
                if k in out:
                    raise InvalidPolicy(f"{_where(source)}: invalid JSON: duplicate key {k!r}")
                out[k] = v
            return out

        try:
            return json.loads(text, object_pairs_hook=no_dupes)
        except json.JSONDecodeError as e:
            raise InvalidPolicy(f"{_where(source)}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(p for p in (e.context, e.problem) if p)
        raise InvalidPolicy(f"{_where(source)}: invalid YAML{at}: {what}") from None
    except yaml.YAMLError as e:
        raise InvalidPolicy(f"{_where(source)}: invalid YAML: {e}") from None


def _fmt_for(path: Path) -> Literal["yaml", "json"]:
    return "json" if path.suffix.lower() == ".json" else "yaml"


def _read(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PolicyNotFound(f"{what} {path} does not exist") from None
    except OSError as e:
        raise PolicyNotFound(f"{what} {path} cannot be read: {e.strerror}") from None
    if not path.is_file():
        raise PolicyNotFound(f"{what} {path} is not a file")
    if size > MAX_POLICY_BYTES:
        raise InvalidPolicy(f"{what} {path} is {size} bytes; the limit is {MAX_POLICY_BYTES}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidPolicy(f"{what} {path} is not UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise PolicyNotFound(f"{what} {path} cannot be read: {e.strerror}") from None


_RULES_FILE_KEYS = {"lexicons", "masks", "rules", "support_context", "contexts"}


def _resolve_rules_file(raw: dict[str, Any], base: Path | None, source: str) -> dict[str, Any]:
    ref = raw.get("rules_file")
    if ref is None:
        return raw
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidPolicy(f"{_where(source)}: rules_file: expected a relative file name, got {ref!r}")
    if base is None:
        raise InvalidPolicy(f"{_where(source)}: rules_file {ref!r} needs the policy to be loaded from a file")
    p = Path(ref)
    if p.is_absolute() or ".." in p.parts:
        raise InvalidPolicy(f"{_where(source)}: rules_file {ref!r} must be a path inside the policy's folder")
    path = base / p
    data = parse_text(_read(path, "rules file"), _fmt_for(path), str(path))
    if not isinstance(data, dict):
        raise InvalidPolicy(f"rules file {path}: expected a mapping with {sorted(_RULES_FILE_KEYS)}, "
                            f"got {type(data).__name__}")
    extra = sorted(set(data) - _RULES_FILE_KEYS)
    if extra:
        raise InvalidPolicy(f"rules file {path}: unknown field(s) {extra}; allowed: {sorted(_RULES_FILE_KEYS)}")
    out = {k: v for k, v in raw.items() if k != "rules_file"}
    for key in ("lexicons", "masks", "rules", "support_context", "contexts"):
        if key not in data:
            continue
        if key == "support_context" and key in out:
            raise InvalidPolicy(f"{_where(source)}: support_context defined both in the policy and in {path}")
        if key not in out:
            out[key] = data[key]
        elif key == "lexicons" and isinstance(out[key], dict) and isinstance(data[key], dict):
            both = sorted(set(out[key]) & set(data[key]))
            if both:
                raise InvalidPolicy(f"{_where(source)}: lexicon(s) {both} defined both in the policy and in {path}")
            out[key] = {**out[key], **data[key]}
        elif isinstance(out[key], list) and isinstance(data[key], list):
            out[key] = [*out[key], *data[key]]
        else:
            raise InvalidPolicy(f"{_where(source)}: {key} has different types in the policy and in {path}")
    return out


# --- validation -------------------------------------------------------------------------------

def _loc(loc: tuple[Any, ...], raw: Any) -> str:
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("id"), str):
                    label += f" (id {node['id']!r})"
            else:
                node = None
            parts.append(label)
        else:
            name = "schema" if item == "schema_" else str(item)
            parts.append(("." if parts else "") + name)
            node = node.get(name) if isinstance(node, dict) else None
    return "".join(parts) or "(document)"


def _message(err: dict[str, Any]) -> str:
    t, msg, value = err["type"], err["msg"], err.get("input")
    if t == "extra_forbidden":
        return "unknown field"
    if t == "missing":
        return "missing required field"
    if t.endswith("_type") or t in ("literal_error", "string_pattern_mismatch"):
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"{msg} (got {type(value).__name__} {shown})"
    return msg.removeprefix("Value error, ")


@functools.lru_cache(maxsize=8192)
def _regex_problem(pattern: str) -> str | None:
    """Why a policy regex is unsafe or invalid, or None. Refused: syntax errors, backreferences,
    and a repeated sub-pattern that itself repeats or alternates — the shapes that backtrack
    catastrophically. Cached: a policy has about 700 such patterns, most shared with its other versions."""
    if len(pattern) > MAX_REGEX_CHARS:
        return f"regex is {len(pattern)} characters; the limit is {MAX_REGEX_CHARS}"
    try:
        re.compile(pattern)
        tree = sre_parse.parse(pattern)
    except re.error as e:
        return f"regex does not compile: {e}"
    repeats = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", sre_c.MAX_REPEAT))

    def walk(items: Any, inside_repeat: bool) -> str | None:
        for op, av in items:
            if op in (sre_c.GROUPREF, sre_c.GROUPREF_EXISTS):
                return "regex uses a backreference"
            if op in repeats:
                _, hi, sub = av
                if hi > 1 and inside_repeat:
                    return "regex nests quantifiers (catastrophic backtracking risk)"
                bad = walk(sub, inside_repeat or hi > 1)
                if bad:
                    return bad
            elif op is sre_c.BRANCH:
                if inside_repeat:
                    return "regex repeats an alternation (catastrophic backtracking risk)"
                for alt in av[1]:
                    bad = walk(alt, inside_repeat)
                    if bad:
                        return bad
            elif op is sre_c.SUBPATTERN:
                bad = walk(av[-1], inside_repeat)
                if bad:
                    return bad
            elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
                bad = walk(av[1], inside_repeat)
                if bad:
                    return bad
            elif getattr(sre_c, "ATOMIC_GROUP", None) is op:
                bad = walk(av, inside_repeat)
                if bad:
                    return bad
        return None

    return walk(tree, False)


def _semantic_problems(doc: PolicyDocument) -> list[str]:
    problems: list[str] = []
    for name in sorted(doc.categories):
        if name not in CATEGORIES:
            problems.append(f"categories.{name}: unknown category {name!r}; known (MLCommons AILuminate v1.0): "
                            f"{', '.join(sorted(CATEGORIES))}")
    for name, cat in sorted(doc.categories.items()):
        if cat.hold_at is not None and cat.block_at is not None and cat.hold_at >= cat.block_at:
            problems.append(f"categories.{name}: hold_at ({cat.hold_at}) must be below block_at ({cat.block_at})")
    cse = doc.categories.get(CSE)
    if cse is None:
        problems.append(f"categories.{CSE}: missing; every policy must declare child sexual exploitation "
                        "(always block + escalate)")
    else:
        if cse.hold_at is not None:
            problems.append(f"categories.{CSE}.hold_at: child sexual exploitation is never merely held; "
                            "remove hold_at (it is always block + escalate)")
        if cse.block_at is None:
            problems.append(f"categories.{CSE}.block_at: required (child sexual exploitation is always blocked)")
        if not cse.escalate:
            problems.append(f"categories.{CSE}.escalate: must be true (child sexual exploitation is always escalated)")
    if len(set(doc.surfaces)) != len(doc.surfaces):
        problems.append("surfaces: duplicate surface names")
    for s in doc.surfaces:
        if not re.fullmatch(r"[a-z][a-z0-9_\-]{0,31}", s):
            problems.append(f"surfaces: {s!r} is not a surface name ([a-z][a-z0-9_-]*)")
    for name, terms in sorted(doc.lexicons.items()):
        if not _LEXICON_NAME.match(name):
            problems.append(f"lexicons.{name}: lexicon names are [a-z][a-z0-9_]*")
        if not terms:
            problems.append(f"lexicons.{name}: empty term list")
        for i, t in enumerate(terms):
            problems.extend(_term_problem(t, f"lexicons.{name}[{i}]"))
    for i, t in enumerate(doc.masks):
        problems.extend(_term_problem(t, f"masks[{i}]"))
    for i, t in enumerate(doc.support_context.terms):
        problems.extend(_term_problem(t, f"support_context.terms[{i}]"))
    for key in ("downgrade", "allow"):
        for name in getattr(doc.support_context, key):
            if name == CSE:
                problems.append(f"support_context.{key}: {CSE} cannot be downgraded (it is always block + escalate)")
            elif name not in doc.categories:
                problems.append(f"support_context.{key}: {name!r} is not declared under categories")
    if doc.support_context.allow and not doc.support_context.unless:
        problems.append("support_context.allow needs support_context.unless: the request wording (images, edits, "
                        "generation) that keeps a help-seeking prompt from being allowed outright")
    for name, terms in sorted(doc.support_context.unless_for.items()):
        if name not in doc.support_context.allow:
            problems.append(f"support_context.unless_for.{name}: not listed under support_context.allow")
        problems.extend(_word_list_problems(terms, doc, f"support_context.unless_for.{name}"))
    problems.extend(_word_list_problems(doc.support_context.unless, doc, "support_context.unless"))
    problems.extend(_word_list_problems(doc.session.refer_back, doc, "session.refer_back"))
    if doc.classifier is not None:
        for name, mc in sorted(doc.classifier.categories.items()):
            where = f"classifier.categories.{name}"
            cp = doc.categories.get(name)
            if cp is None:
                problems.append(f"{where}: {name!r} is not declared under categories")
                continue
            if mc.hold_at is None and mc.block_at is None:
                problems.append(f"{where}: needs hold_at and/or block_at")
            if mc.hold_at is not None and mc.block_at is not None and mc.hold_at >= mc.block_at:
                problems.append(f"{where}: hold_at ({mc.hold_at}) must be below block_at ({mc.block_at})")
            if mc.hold_at is not None and cp.hold_at is None:
                problems.append(f"{where}.hold_at: the category has no hold_at to raise the risk to")
            if mc.block_at is not None and cp.block_at is None:
                problems.append(f"{where}.block_at: the category has no block_at to raise the risk to")
            problems.extend(_word_list_problems(mc.requires, doc, f"{where}.requires"))
    for i, c in enumerate(doc.contexts):
        where = f"contexts[{i}] (id {c.id!r})"
        if (c.any is None) == (c.all is None):
            problems.append(f"{where}: exactly one of any / all is required")
        for name in c.allow:
            if name == CSE:
                problems.append(f"{where}.allow: {CSE} cannot be allowed by a context (it is always block + escalate)")
            elif name not in doc.categories:
                problems.append(f"{where}.allow: {name!r} is not declared under categories")
        problems.extend(_word_list_problems(c.unless, doc, f"{where}.unless"))
        for t in [t for g in group_entries(c) for t in g]:
            problems.extend(_group_entry_problems(t, doc, where))
    seen: set[str] = set()
    for i, r in enumerate(doc.rules):
        where = f"rules[{i}] (id {r.id!r})"
        if r.id in seen:
            problems.append(f"{where}: duplicate rule id")
        seen.add(r.id)
        if r.category not in doc.categories:
            problems.append(f"{where}.category: {r.category!r} is not declared under categories")
        kinds = [k for k in ("any", "all", "regex") if getattr(r, k) is not None]
        if len(kinds) != 1:
            problems.append(f"{where}: exactly one of any / all / regex is required (got {kinds or 'none'})")
            continue
        if r.window is not None and r.all is None:
            problems.append(f"{where}.window: only meaningful with 'all'")
        if r.regex is not None:
            bad = _regex_problem(r.regex)
            if bad:
                problems.append(f"{where}.regex: {bad}")
        groups = group_entries(r)
        if r.all is not None and len(r.all) < 2:
            problems.append(f"{where}.all: needs at least two groups (use 'any' for one)")
        for g, group in enumerate(groups):
            if not group:
                problems.append(f"{where}: group {g} is empty")
            for t in group:
                problems.extend(_group_entry_problems(t, doc, where))
    return problems


def group_entries(item: Rule | Context) -> list[list[str]]:
    """A rule's or a context's groups, each a list of entries: ``any`` is one group, and a group of ``all`` may be
    written as one string."""
    return [item.any] if item.any is not None else [g if isinstance(g, list) else [g] for g in (item.all or [])]


def _group_entry_problems(entry: str, doc: PolicyDocument, where: str) -> list[str]:
    """Problems of one entry of a rule's (or a context's) group: a sequence, a lexicon or a term."""
    if SEQUENCE_MARK in entry:
        return _sequence_problem(entry, doc, where)
    if entry.startswith("@"):
        return [] if entry[1:] in doc.lexicons else [f"{where}: unknown lexicon {entry!r}"]
    return _term_problem(entry, f"{where} term")


def _word_list_problems(terms: list[str], doc: PolicyDocument, where: str) -> list[str]:
    """Problems of a plain word list (``unless``, ``unless_for``, ``requires``): terms and ``@lexicon``
    references, no sequences (they are compiled as one pattern, not per rule)."""
    problems = []
    for t in terms:
        if SEQUENCE_MARK in t:
            problems.append(f"{where}: sequences are not supported here; use terms or @lexicons")
        elif t.startswith("@"):
            if t[1:] not in doc.lexicons:
                problems.append(f"{where}: unknown lexicon {t!r}")
        else:
            problems.extend(_term_problem(t, where))
    return problems


def parse_sequence(entry: str) -> list[str | int]:
    """``"@removal ~2 @clothing"`` → ``["removal", 2, "clothing"]``: lexicons in this order, with at
    most N words between neighbours. Raises ValueError naming the problem."""
    parts = entry.split()
    if len(parts) < 3 or len(parts) % 2 == 0:
        raise ValueError(f"sequence {entry!r}: expected '@lexicon ~N @lexicon [~N @lexicon ...]'")
    out: list[str | int] = []
    for k, part in enumerate(parts):
        if k % 2 == 0:
            if not part.startswith("@") or not _LEXICON_NAME.match(part[1:]):
                raise ValueError(f"sequence {entry!r}: {part!r} is not a lexicon reference (@name)")
            out.append(part[1:])
        else:
            if not re.fullmatch(r"~[0-9]", part) or int(part[1:]) > MAX_SEQUENCE_GAP:
                raise ValueError(f"sequence {entry!r}: {part!r} is not a gap ~0 .. ~{MAX_SEQUENCE_GAP}")
            out.append(int(part[1:]))
    return out


def _sequence_problem(entry: str, doc: PolicyDocument, where: str) -> list[str]:
    try:
        seq = parse_sequence(entry)
    except ValueError as e:
        return [f"{where}: {e}"]
    return [f"{where}: sequence {entry!r}: unknown lexicon '@{name}'"
            for name in seq[::2] if isinstance(name, str) and name not in doc.lexicons]


def _term_problem(term: str, where: str) -> list[str]:
    if term.startswith("@"):
        return [f"{where}: {term!r}: lexicon references are only allowed in rules"]
    if term.startswith(REGEX_PREFIX):
        bad = _regex_problem(term[len(REGEX_PREFIX):])
        return [f"{where}: {bad}"] if bad else []
    try:
        compile_term(term)
    except ValueError as e:
        return [f"{where}: {e}"]
    return []


def policy_from_data(data: Any, source: str = "", base: Path | None = None) -> Policy:
    """Validate plain data (already parsed) into a :class:`Policy`."""
    if not isinstance(data, dict):
        raise InvalidPolicy(f"{_where(source)}: expected a mapping at the top level, got {type(data).__name__}")
    data = _resolve_rules_file(data, base, source)
    try:
        doc = PolicyDocument.model_validate(data)
    except ValidationError as e:
        lines = [f"{_loc(tuple(err['loc']), data)}: {_message(err)}" for err in e.errors()]
        raise InvalidPolicy(f"{_where(source)} is invalid:\n  " + "\n  ".join(lines)) from None
    problems = _semantic_problems(doc)
    if problems:
        raise InvalidPolicy(f"{_where(source)} is invalid:\n  " + "\n  ".join(problems))
    dumped = doc.model_dump(mode="json", by_alias=True)
    if dumped.get("classifier") is None:
        dumped.pop("classifier", None)  # a policy without a classifier keeps the hash it had before the field existed
    for key in ("allow", "unless", "unless_for"):  # likewise a policy without these (every version before 1.5.0)
        if not dumped["support_context"][key]:
            del dumped["support_context"][key]
    if not dumped["contexts"]:
        del dumped["contexts"]  # likewise (every version before 1.8.0)
    if not dumped["session"]["refer_back"] and not dumped["session"]["code_words"]:
        del dumped["session"]["refer_back"], dumped["session"]["code_words"]  # likewise (every version before 1.19.0)
    for mc in (dumped.get("classifier") or {}).get("categories", {}).values():
        if not mc["requires"]:
            del mc["requires"]  # likewise (every version before 1.9.0)
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, allow_nan=False).encode("utf-8")
    return Policy(document=doc, sha256=hashlib.sha256(canonical).hexdigest(), canonical_json=canonical,
                  source=source)


def load_policy_text(text: str, fmt: Literal["yaml", "json"] = "yaml", source: str = "<text>",
                     base: Path | None = None) -> Policy:
    if not isinstance(text, str):
        raise InvalidPolicy(f"{_where(source)}: expected text, got {type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise InvalidPolicy(f"{_where(source)}: larger than {MAX_POLICY_BYTES} bytes")
    return policy_from_data(parse_text(text, fmt, source), source, base)


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file (``.json`` as JSON, anything else as YAML)."""
    p = Path(path)
    return load_policy_text(_read(p, "policy file"), _fmt_for(p), str(p), base=p.parent)


def default_policy_path() -> Path:
    return Path(str(resources.files("pipeline").joinpath("policies", "default.yaml")))


_default: Policy | None = None


def default_policy() -> Policy:
    """The shipped default policy (loaded once per process)."""
    global _default
    if _default is None:
        _default = load_policy(default_policy_path())
    return _default
