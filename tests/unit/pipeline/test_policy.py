"""Policy documents: the shipped default, the stable hash, and every way a policy can be malformed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from pipeline.errors import InvalidPolicy, PipelineError, PolicyNotFound
from pipeline.policy import (
    CATEGORIES,
    CSE,
    default_policy,
    default_policy_path,
    load_policy,
    load_policy_text,
    policy_from_data,
)

MINIMAL = {
    "schema": "custody.policy/v1",
    "policy_id": "test-policy",
    "version": "1.0.0",
    "taxonomy": "mlcommons-ailuminate-v1.0",
    "surfaces": ["chat", "edit"],
    "categories": {
        CSE: {"block_at": 0.3, "escalate": True},
        "nonconsensual_intimate_edit": {"hold_at": 0.3, "block_at": 0.6},
    },
    "lexicons": {"undress": ["undress*"], "pronoun": ["her", "him"]},
    "rules": [
        {"id": "nce.undress_her", "category": "nonconsensual_intimate_edit", "weight": 0.9,
         "all": ["@undress", "@pronoun"], "window": 3},
    ],
}


def _doc(**changes: object) -> dict:
    doc = json.loads(json.dumps(MINIMAL))
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


_DELETE = object()


def _problem(doc: object) -> str:
    with pytest.raises(InvalidPolicy) as e:
        policy_from_data(doc, source="t.yaml")
    assert e.value.status == 400 and e.value.exit_code == 2 and e.value.code == "invalid_policy"
    return str(e.value)


# --- the default policy -------------------------------------------------------------------------

def test_default_policy_loads_with_the_required_categories() -> None:
    p = default_policy()
    cats = p.document.categories
    for name in ("sexual_content", "sex_related_crimes", "child_sexual_exploitation", "privacy",
                 "nonconsensual_intimate_edit"):
        assert name in cats and name in CATEGORIES
    assert cats[CSE].hold_at is None and cats[CSE].block_at is not None and cats[CSE].escalate
    assert set(p.document.surfaces) >= {"chat", "imagine", "api", "edit", "video"}
    assert p.policy_id == "custody-default" and p.version
    assert len(p.document.rules) > 20 and p.source.endswith("default.yaml")


def test_default_policy_is_package_data() -> None:
    path = default_policy_path()
    assert path.is_file() and (path.parent / "default_rules.yaml").is_file()
    import tomllib

    root = Path(__file__).resolve().parents[3]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["pipeline"]
    shipped = {p.relative_to(root / "pipeline").as_posix() for g in globs for p in (root / "pipeline").glob(g)}
    needed = {"policies/default.yaml", "policies/default_rules.yaml"}
    needed |= {p.relative_to(root / "pipeline").as_posix() for p in (root / "pipeline" / "policies" / "archive").glob("*")}
    needed |= {p.relative_to(root / "pipeline").as_posix() for p in (root / "pipeline" / "models").glob("*.json")}
    assert needed <= shipped, f"not in the wheel's package data: {sorted(needed - shipped)}"


def test_hash_is_sha256_of_canonical_json() -> None:
    p = default_policy()
    assert p.sha256 == hashlib.sha256(p.canonical_json).hexdigest()
    text = p.canonical_json.decode()
    assert " " not in text.split('"description"')[0]  # separators without whitespace
    assert json.loads(text) == json.loads(json.dumps(json.loads(text), sort_keys=True))
    assert list(json.loads(text)) == sorted(json.loads(text))  # keys sorted
    assert "rules_file" not in json.loads(text)  # the rules file is inlined, not referenced


def test_hash_is_stable_and_independent_of_formatting(tmp_path: Path) -> None:
    a = policy_from_data(_doc())
    b = policy_from_data(_doc())
    assert a.sha256 == b.sha256
    # the same document as JSON, as flow-style YAML and with explicit defaults: same meaning, same hash
    (tmp_path / "p.json").write_text(json.dumps(MINIMAL, indent=4))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(MINIMAL, default_flow_style=True))
    explicit = _doc()
    explicit["limits"] = {"max_prompt_chars": 10_000}
    assert load_policy(tmp_path / "p.json").sha256 == a.sha256
    assert load_policy(tmp_path / "p.yaml").sha256 == a.sha256
    assert policy_from_data(explicit).sha256 == a.sha256


@pytest.mark.parametrize("change", [
    {"version": "1.0.1"},
    {"categories__nonconsensual_intimate_edit__block_at": 0.61},
    {"rules": [dict(MINIMAL["rules"][0], weight=0.8)]},  # type: ignore[dict-item]
    {"lexicons__undress": ["undress*", "disrobe*"]},
])
def test_hash_changes_with_meaning(change: dict) -> None:
    assert policy_from_data(_doc(**change)).sha256 != policy_from_data(_doc()).sha256


def test_rules_file_is_inlined_and_hashed(tmp_path: Path) -> None:
    doc = _doc()
    rules = {"lexicons": doc.pop("lexicons"), "rules": doc.pop("rules")}
    doc["rules_file"] = "rules.yaml"
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    split = load_policy(tmp_path / "policy.yaml")
    assert split.sha256 == policy_from_data(_doc()).sha256
    rules["lexicons"]["pronoun"].append("them")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    assert load_policy(tmp_path / "policy.yaml").sha256 != split.sha256


# --- malformed policies: each names the problem ------------------------------------------------

def test_bad_yaml_names_line_and_column() -> None:
    text = "schema: custody.policy/v1\npolicy_id: x\ncategories:\n  a: [1, 2\n  b: 3\n"
    with pytest.raises(InvalidPolicy, match=r"invalid YAML at line \d+, column \d+"):
        load_policy_text(text, source="broken.yaml")


def test_bad_json_names_line() -> None:
    with pytest.raises(InvalidPolicy, match=r"invalid JSON at line 2, column"):
        load_policy_text('{"schema": "custody.policy/v1",\n "x": }', fmt="json")


def test_duplicate_yaml_key_is_refused() -> None:
    text = yaml.safe_dump(MINIMAL) + "policy_id: another\n"
    with pytest.raises(InvalidPolicy, match="duplicate key 'policy_id'"):
        load_policy_text(text)


def test_duplicate_json_key_is_refused() -> None:
    with pytest.raises(InvalidPolicy, match="duplicate key 'version'"):
        load_policy_text('{"version": "1", "version": "2"}', fmt="json")


def test_yaml_aliases_are_refused() -> None:
    text = "a: &x [1, 2]\nb: *x\n"
    with pytest.raises(InvalidPolicy, match="anchors|aliases"):
        load_policy_text(text)


def test_top_level_must_be_a_mapping() -> None:
    assert "expected a mapping" in _problem(["not", "a", "mapping"])


def test_missing_field_is_named() -> None:
    msg = _problem(_doc(policy_id=_DELETE))
    assert "policy_id: missing required field" in msg


def test_wrong_type_is_named_with_the_value() -> None:
    msg = _problem(_doc(categories__nonconsensual_intimate_edit__block_at="0.6"))
    assert "categories.nonconsensual_intimate_edit.block_at" in msg and "valid number" in msg and "'0.6'" in msg
    msg = _problem(_doc(categories__nonconsensual_intimate_edit__block_at=True))
    assert "block_at" in msg and "bool" in msg


def test_unknown_field_is_named() -> None:
    msg = _problem(_doc(categories__nonconsensual_intimate_edit__blok_at=0.5))
    assert "categories.nonconsensual_intimate_edit.blok_at: unknown field" in msg


def test_unknown_category_is_named_with_the_known_ones() -> None:
    msg = _problem(_doc(categories__spicy_stuff={"hold_at": 0.5}))
    assert "unknown category 'spicy_stuff'" in msg and "sexual_content" in msg


@pytest.mark.parametrize("value", [1.5, 0, -0.1])
def test_threshold_out_of_range(value: float) -> None:
    msg = _problem(_doc(categories__nonconsensual_intimate_edit__hold_at=value))
    assert "categories.nonconsensual_intimate_edit.hold_at" in msg
    assert "greater than 0" in msg or "less than or equal to 1" in msg


def test_hold_must_be_below_block() -> None:
    msg = _problem(_doc(categories__nonconsensual_intimate_edit__hold_at=0.7))
    assert "hold_at (0.7) must be below block_at (0.6)" in msg


def test_cse_can_never_be_merely_held() -> None:
    msg = _problem(_doc(categories__child_sexual_exploitation={"hold_at": 0.2, "block_at": 0.5, "escalate": True}))
    assert "child_sexual_exploitation.hold_at" in msg and "never merely held" in msg
    msg = _problem(_doc(categories__child_sexual_exploitation={"hold_at": 0.2, "escalate": True}))
    assert "never merely held" in msg and "block_at: required" in msg


def test_cse_must_escalate() -> None:
    msg = _problem(_doc(categories__child_sexual_exploitation={"block_at": 0.3}))
    assert "child_sexual_exploitation.escalate: must be true" in msg


def test_cse_must_be_declared() -> None:
    msg = _problem(_doc(categories__child_sexual_exploitation=_DELETE))
    assert "child_sexual_exploitation: missing" in msg


def test_cse_cannot_be_downgraded_by_support_context() -> None:
    msg = _problem(_doc(support_context={"terms": ["how do i report"], "downgrade": [CSE]}))
    assert "cannot be downgraded" in msg


def test_support_context_allow_is_checked() -> None:
    msg = _problem(_doc(support_context={"terms": ["how do i report"], "allow": [CSE], "unless": ["make"]}))
    assert "support_context.allow: child_sexual_exploitation cannot be downgraded" in msg
    msg = _problem(_doc(support_context={"terms": ["how do i report"], "allow": ["sexual_content"]}))
    assert "support_context.allow needs support_context.unless" in msg
    msg = _problem(_doc(support_context={"terms": ["how do i report"], "allow": ["sexual_content"],
                                         "unless": ["@no_such_lexicon"]}))
    assert "support_context.unless: unknown lexicon '@no_such_lexicon'" in msg


def test_session_refer_back_is_checked() -> None:
    assert "session.refer_back: unknown lexicon '@nope'" in _problem(_doc(session={"refer_back": ["@nope"]}))
    assert "session.code_words" in _problem(_doc(session={"code_words": "yes please"}))
    ok = policy_from_data(_doc(session={"refer_back": ["again"], "code_words": True}))
    assert ok.document.session.refer_back == ["again"] and ok.document.session.code_words


def test_contexts_are_checked() -> None:
    ctx = {"id": "art", "any": ["renaissance"], "allow": [CSE], "unless": ["make"]}
    assert "contexts[0] (id 'art').allow: child_sexual_exploitation cannot be allowed" in _problem(_doc(contexts=[ctx]))
    ctx = {"id": "art", "any": ["renaissance"], "all": [["a"], ["b"]], "allow": ["sexual_content"], "unless": ["x"]}
    assert "exactly one of any / all" in _problem(_doc(contexts=[ctx]))
    ctx = {"id": "art", "any": ["@nope"], "allow": ["sexual_content"], "unless": ["make"]}
    assert "unknown lexicon '@nope'" in _problem(_doc(contexts=[ctx]))
    ctx = {"id": "art", "any": ["renaissance"], "allow": ["sexual_content"], "unless": []}
    assert "unless" in _problem(_doc(contexts=[ctx]))
    ctx = {"id": "art", "any": ["renaissance"], "allow": ["sexual_content"], "unless": ["@removal ~2 @clothing"]}
    assert "sequences are not supported here" in _problem(_doc(contexts=[ctx]))  # once a KeyError at load


def test_support_unless_for_and_classifier_requires_are_checked() -> None:
    sc = {"terms": ["how do i report"], "allow": ["sex_related_crimes"], "unless": ["make"],
          "unless_for": {"sexual_content": ["her"]}}
    assert "support_context.unless_for.sexual_content: not listed under support_context.allow" in _problem(
        _doc(support_context=sc))


def test_a_policy_without_support_allow_keeps_its_hash() -> None:
    """Archived versions before 1.5.0 have no allow / unless: their canonical JSON must not grow them."""
    p = policy_from_data(_doc())
    assert b'"allow"' not in p.canonical_json and b'"unless"' not in p.canonical_json
    assert b'"contexts"' not in p.canonical_json


def test_every_problem_is_reported_at_once() -> None:
    doc = _doc(categories__child_sexual_exploitation={"hold_at": 0.2, "block_at": 0.5, "escalate": False},
               categories__nonconsensual_intimate_edit__hold_at=0.9)
    msg = _problem(doc)
    assert "never merely held" in msg and "must be true" in msg and "must be below" in msg


@pytest.mark.parametrize("rule, expected", [
    ({"category": "privacy"}, "'privacy' is not declared under categories"),
    ({"all": ["@undress", "@nope"]}, "unknown lexicon '@nope'"),
    ({"weight": 0}, "weight: Input should be greater than 0"),
    ({"weight": 1.2}, "weight: Input should be less than or equal to 1"),
    ({"any": ["undress"]}, "exactly one of any / all / regex"),
    ({"all": None, "regex": "(a+)+b", "window": None}, "nests quantifiers"),
    ({"all": None, "regex": "(?:a|aa)*b", "window": None}, "repeats an alternation"),
    ({"all": None, "regex": r"(a)\1", "window": None}, "backreference"),
    ({"all": None, "regex": "([unclosed", "window": None}, "does not compile"),
    ({"all": None, "any": ["ok"], "window": 3}, "window: only meaningful with 'all'"),
    ({"all": ["@undress"]}, "needs at least two groups"),
    ({"all": ["@undress", ["!!!"]]}, "no letters or digits"),
    ({"all": ["@undress ~9 @pronoun", "@pronoun"]}, "is not a gap"),
    ({"all": ["@undress ~2 @nope", "@pronoun"]}, "unknown lexicon '@nope'"),
    ({"id": "Bad Id"}, "rules[0] (id 'Bad Id').id: String should match pattern"),
    ({"scope": "forever"}, "rules[0] (id 'nce.undress_her').scope"),
])
def test_bad_rules_are_named(rule: dict, expected: str) -> None:
    doc = _doc()
    doc["rules"] = [{k: v for k, v in {**doc["rules"][0], **rule}.items() if v is not None}]
    assert expected in _problem(doc)


def test_duplicate_rule_ids() -> None:
    doc = _doc()
    doc["rules"] = doc["rules"] * 2
    assert "duplicate rule id" in _problem(doc)


def test_unsafe_regex_term_in_a_lexicon() -> None:
    assert "nests quantifiers" in _problem(_doc(lexicons__pronoun=["her", "re:(x+)*y"]))


def test_bad_surface_names() -> None:
    assert "not a surface name" in _problem(_doc(surfaces=["Chat Window"]))
    assert "duplicate surface" in _problem(_doc(surfaces=["chat", "chat"]))
    assert "surfaces" in _problem(_doc(surfaces=[]))


def test_wrong_schema_and_taxonomy() -> None:
    assert "schema" in _problem(_doc(schema="custody.policy/v0"))
    assert "taxonomy" in _problem(_doc(taxonomy="my-own"))


# --- files ----------------------------------------------------------------------------------------

def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(PolicyNotFound) as e:
        load_policy(tmp_path / "nope.yaml")
    assert e.value.exit_code == 3 and e.value.status == 404 and "does not exist" in str(e.value)
    assert isinstance(e.value, PipelineError)


def test_missing_rules_file(tmp_path: Path) -> None:
    doc = _doc(rules_file="gone.yaml")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyNotFound, match="rules file .*gone.yaml does not exist"):
        load_policy(tmp_path / "p.yaml")


@pytest.mark.parametrize("ref", ["../rules.yaml", "/etc/passwd"])
def test_rules_file_must_stay_in_the_policy_folder(tmp_path: Path, ref: str) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_doc(rules_file=ref)))
    with pytest.raises(InvalidPolicy, match="inside the policy's folder"):
        load_policy(tmp_path / "p.yaml")


def test_rules_file_with_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_doc(rules_file="r.yaml")))
    (tmp_path / "r.yaml").write_text("categories: {}\n")
    with pytest.raises(InvalidPolicy, match="unknown field"):
        load_policy(tmp_path / "p.yaml")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_bytes(b"policy_id: \xff\xfe\n")
    with pytest.raises(InvalidPolicy, match="not UTF-8"):
        load_policy(tmp_path / "p.yaml")


def test_too_large(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("# " + "x" * (3 * 1024 * 1024))
    with pytest.raises(InvalidPolicy, match="limit"):
        load_policy(tmp_path / "p.yaml")


def test_a_date_is_not_a_version() -> None:
    # YAML reads an unquoted 2026-01-01 as a date: strict validation refuses it instead of guessing
    text = yaml.safe_dump(_doc()).replace("version: 1.0.0", "version: 2026-01-01")
    with pytest.raises(InvalidPolicy, match=r"version: Input should be a valid string \(got date"):
        load_policy_text(text)
