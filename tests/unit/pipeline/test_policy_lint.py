"""pipeline.policy_lint: terms a policy asks for that normalisation keeps the layer from ever reading."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app
from pipeline.cli_functions import validate_policy
from pipeline.policy import default_policy, load_policy, policy_from_data
from pipeline.policy_archive import archive_dir
from pipeline.policy_lint import folded_form, unreadable_terms
from pipeline.prompt_safety import PromptSafety

ROOT = Path(__file__).resolve().parents[3]


def test_folded_form_names_what_the_text_becomes() -> None:
    assert folded_form("r34") == "rea"          # leetspeak undone inside a word that mixes letters and digits
    assert folded_form("xxx") == "xx"           # a run of a letter shortened
    assert folded_form("12 year old") is None   # numbers with units and plain words are kept
    assert folded_form("n s f w") is None       # compiled to find "nsfw", which is what the text becomes
    assert folded_form("reverse face search") is None  # the reversed words are added beside the original ones


def test_a_term_the_layer_cannot_read_is_found_with_the_rules_that_use_it() -> None:
    doc = json.loads(default_policy().canonical_json)
    doc["lexicons"]["probe_words"] = ["r34 edit", "plain words"]
    doc["rules"].append({"id": "sxc.lint_probe", "category": "sexual_content", "weight": 0.9,
                         "any": ["@probe_words", "3some"]})
    policy = policy_from_data(doc)
    found = {u.term: u for u in unreadable_terms(policy.document)}
    assert found["r34 edit"].reads_as == "rea edit" and found["r34 edit"].used_by == ("rule sxc.lint_probe",)
    assert found["3some"].reads_as == "esome"
    assert "plain words" not in found
    # and the layer indeed never matches them: the rule stays silent on a prompt that says exactly that
    d = PromptSafety(policy).check("an r34 edit of this", "chat")
    assert "sxc.lint_probe" not in [m.rule_id for m in d.matched_rules]
    assert "sxc.lint_probe" in [m.rule_id for m in PromptSafety(policy).check("plain words", "chat").matched_rules]


def test_a_rule_read_on_the_canonical_view_is_not_reported() -> None:
    doc = json.loads(default_policy().canonical_json)
    doc["rules"].append({"id": "sxc.lint_canonical", "category": "sexual_content", "weight": 0.9, "any": ["xxx"],
                         "view": "canonical"})
    assert "xxx" not in {u.term for u in unreadable_terms(policy_from_data(doc).document)}


def test_the_default_policy_has_no_unreadable_term_and_1_30_0_had_two() -> None:
    """Found by this lint when it was written (session 21): 1.30.0 listed "r34" (read by four rules) and "ps5" as
    written; 1.30.1 reads them (sxc.r34 on the canonical view, "pss")."""
    assert unreadable_terms(default_policy().document) == []
    old = {u.term: u for u in unreadable_terms(load_policy(archive_dir() / "custody-default@1.30.0.json").document)}
    assert sorted(old) == ["ps5", "r34"]
    assert old["r34"].reads_as == "rea" and "rule sxc.explicit" in old["r34"].used_by


def test_validate_reports_them_as_warnings_and_archived_policies_still_load() -> None:
    out = validate_policy(ROOT / "pipeline" / "policies" / "default.yaml")
    assert out["valid"] is True and out["unreadable_terms"] == []
    archived = sorted(archive_dir().glob("custody-default@*.json"))
    for f in (archived[0], archived[-1]):  # the oldest and the newest archived version load and are linted
        assert isinstance(unreadable_terms(load_policy(f).document), list), f.name


def test_cli_prints_a_warning_per_term(tmp_path: Path) -> None:
    doc = json.loads(default_policy().canonical_json)
    doc["rules"].append({"id": "sxc.lint_cli", "category": "sexual_content", "weight": 0.9, "any": ["4chan"]})
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc), "utf-8")
    r = CliRunner().invoke(app, ["pipeline", "policy", "validate", str(p)])
    assert r.exit_code == 0, r.output
    assert "warning: term '4chan' can never match" in r.output and "'achan'" in r.output
    r = CliRunner().invoke(app, ["pipeline", "policy", "validate", str(p), "--json"])
    assert any(u["term"] == "4chan" for u in json.loads(r.output)["unreadable_terms"])
