"""Time the prompt-safety layer's decisions on the labelled prompts (rules + classifier, sessions replayed turn by turn).

    python bench/bench_prompt_speed.py                # the first 1,000 prompts of tests/pipeline_eval/prompts.jsonl
    python bench/bench_prompt_speed.py --n 3000 --compare-plain-alternation

``--compare-plain-alternation`` also times, in the same run, the lexicon patterns as they were compiled before
session 9 (the word-start lookbehind repeated in every alternative), both with the embeddings cached, and checks that
both give the same decisions.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import normalise as norm
from pipeline.prompt_safety import PromptSafety, Session

PROMPTS = ROOT / "tests" / "pipeline_eval" / "prompts.jsonl"


def _plain_compile_terms(terms: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """compile_terms before session 9: the same alternation with the lookbehind in every alternative."""
    alts = sorted({t[3:] if t.startswith("re:") else norm.compile_term(t) for t in terms}, key=lambda p: (-len(p), p))
    return re.compile("|".join(f"(?:{a})" for a in alts))


def _run(items: list[dict]) -> tuple[list[float], list[str]]:
    layer = PromptSafety()
    per_item, outcomes = [], []
    for it in items:
        turns = it.get("turns") or [it["text"]]
        t0 = time.perf_counter()
        s = Session(layer)
        for t in turns:
            d = s.check(t, it["surface"])
        per_item.append((time.perf_counter() - t0) / len(turns) * 1000)
        outcomes.append(json.dumps(d.to_dict(), sort_keys=True))
    return per_item, outcomes


def _report(name: str, ms: list[float]) -> None:
    q = statistics.quantiles(ms, n=100)
    print(f"| {name} | {len(ms)} | {statistics.fmean(ms):.2f} | {q[49]:.2f} | {q[94]:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="how many prompts (from the top of prompts.jsonl)")
    ap.add_argument("--compare-plain-alternation", action="store_true")
    a = ap.parse_args()
    items = [json.loads(line) for line in PROMPTS.read_text().splitlines() if line.strip()][:a.n]
    _run(items[:20])  # warm-up: model load, encoder caches
    print("| patterns | prompts | mean ms / decision | p50 | p95 |\n|---|---:|---:|---:|---:|")
    ms, out = _run(items)
    _report("shared lookbehind (shipped), embeddings computed", ms)
    if a.compare_plain_alternation:
        # the encoder keeps the last 4,096 embeddings: time both pattern forms with them cached, rules and model
        # scoring only, so neither run gets a free ride from the other
        ms, out = _run(items)
        _report("shared lookbehind (shipped), embeddings cached", ms)
        shipped = norm.compile_terms
        import pipeline.prompt_safety as ps
        ps.compile_terms = norm.compile_terms = _plain_compile_terms  # type: ignore[assignment]
        try:
            ms_plain, out_plain = _run(items)
        finally:
            ps.compile_terms = norm.compile_terms = shipped  # type: ignore[assignment]
        _report("lookbehind per alternative (before), embeddings cached", ms_plain)
        print(f"\nidentical decisions: {out == out_plain}; speed-up {statistics.fmean(ms_plain) / statistics.fmean(ms):.2f}x")


if __name__ == "__main__":
    main()
