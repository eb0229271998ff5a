"""Compiling policy terms: the word-start factoring keeps every match (stage 1.6.0)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.normalise import _factor_word_starts, _top_level_branch, compile_term, compile_terms
from pipeline.prompt_safety import layer_for

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("pattern, branch", [
    ("a|b", True),
    ("(?<![a-z])(?:a|b) c", False),
    ("(?<![a-z])a(?![a-z])|b", True),
    (r"[|(]x", False),          # a "|" and a "(" inside a class
    (r"[]|]x", False),          # "]" first in a class is a literal
    (r"[^]|]x", False),
    (r"\(a|b\)", True),         # escaped parentheses are not a group
    (r"\|a", False),
    ("(a", True),               # unbalanced: answered True, not factored
    ("a)", True),
    ("[ab", True),
])
def test_top_level_branch(pattern: str, branch: bool) -> None:
    assert _top_level_branch(pattern) is branch


def test_runs_sharing_a_word_start_are_factored_in_order() -> None:
    w = "(?<![a-z])"
    got = _factor_word_starts([w + "aa", w + "b", "c|d", w + "e|f", "(?<![a-z0-9])g", "(?<![a-z0-9])h"])
    assert got == (w + "(?:(?:aa)|(?:b))|(?:c|d)|(?:" + w + "e|f)|(?<![a-z0-9])(?:(?:g)|(?:h))")


def _unfactored(terms: list[str]) -> re.Pattern[str]:
    alts = sorted({t[3:] if t.startswith("re:") else compile_term(t) for t in terms}, key=lambda p: (-len(p), p))
    return re.compile("|".join(f"(?:{a})" for a in alts))


def test_factored_lists_match_exactly_what_the_plain_alternation_matches() -> None:
    """Every lexicon of the default policy, on every tuning prompt's folded view (and on all of them joined):
    the same spans, in the same order, as the alternation written out term by term."""
    layer = layer_for()
    with open(ROOT / "tests" / "pipeline_eval" / "prompts.jsonl", encoding="utf-8") as f:
        texts = [t for t in (json.loads(line).get("text") for line in f) if isinstance(t, str) and t.strip()]
    views = [layer.model_text(t) for t in texts[::7]]
    views.append("\n".join(views))
    lexicons = layer.policy.document.lexicons
    factored = 0
    for name, terms in lexicons.items():
        new, old = compile_terms(terms), _unfactored(terms)
        if new.pattern == old.pattern:
            continue
        factored += 1
        for v in views:
            assert [m.span() for m in new.finditer(v)] == [m.span() for m in old.finditer(v)], (name, v[:80])
    assert factored > 50  # the test reads the factoring, not only lists left as they were (84 in 1.28.1)
