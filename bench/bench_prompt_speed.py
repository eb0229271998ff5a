"""Time the prompt-safety layer's decisions on the labelled prompts (rules + classifier, sessions replayed turn by turn).

    python bench/bench_prompt_speed.py                # the first 1,000 prompts of tests/pipeline_eval/prompts.jsonl
    python bench/bench_prompt_speed.py --n 3000 --compare-plain-alternation
    python bench/bench_prompt_speed.py --n 0 --long --compare-plain-alternation
    python bench/bench_prompt_speed.py --n 1000 --compare-stage-1.6.0
    python bench/bench_prompt_speed.py --n 0 --layers 10

``--compare-plain-alternation`` also times, in the same run, the lexicon patterns as they were compiled by earlier
stage versions (1.5.0: the word-start lookbehind written once only for a list made wholly of plain terms; before
session 9: repeated in every alternative), all with the embeddings cached, and checks that all give the same decisions.
``--compare-stage-1.6.0`` times, in the same run and with the embeddings cached, the layer as stage 1.6.0 evaluated it:
every group of every rule scanned before a rule is judged, and each classifier concept term matched against the prompt
on its own; the decisions must be the same. ``--layers N`` times loading and building the layer for the current policy and the last N archived versions, one
after another in one process, with the process's pattern caches kept (shipped) and emptied before each (as before
stage 1.7.0). ``--long`` times prompts at the policy's length limit (ordinary prose, and the hang guards' crafted inputs) in CPU
seconds per decision.
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
from pipeline.prompt_model import Concepts
from pipeline.prompt_safety import PromptSafety, Session

PROMPTS = ROOT / "tests" / "pipeline_eval" / "prompts.jsonl"


def _plain_compile_terms(terms: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """compile_terms before session 9: the same alternation with the lookbehind in every alternative."""
    alts = sorted({t[3:] if t.startswith("re:") else norm.compile_term(t) for t in terms}, key=lambda p: (-len(p), p))
    return re.compile("|".join(f"(?:{a})" for a in alts))


def _stage_1_5_0_compile_terms(terms: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """compile_terms of stage 1.5.0: one shared lookbehind only when every alternative is a plain term."""
    alts = sorted({t[3:] if t.startswith("re:") else norm.compile_term(t) for t in terms}, key=lambda p: (-len(p), p))
    if all(a.startswith(norm._WORD_START) for a in alts):
        return re.compile(norm._WORD_START + "(?:" + "|".join(f"(?:{a[len(norm._WORD_START):]})" for a in alts) + ")")
    return re.compile("|".join(f"(?:{a})" for a in alts))


FORMS = {"runs factored (stage 1.6.0 and later, shipped)": None,
         "whole plain lists factored (stage 1.5.0)": _stage_1_5_0_compile_terms,
         "lookbehind per alternative (before session 9)": _plain_compile_terms}


def _with_form(form: str, fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` with the lexicon patterns compiled the way ``form`` names."""
    import pipeline.prompt_safety as ps
    shipped = norm.compile_terms
    if FORMS[form] is not None:
        ps.compile_terms = norm.compile_terms = FORMS[form]  # type: ignore[assignment]
    try:
        return fn()
    finally:
        ps.compile_terms = norm.compile_terms = shipped  # type: ignore[assignment]


def _scan_every_group(self, rule, view, session):  # type: ignore[no-untyped-def]
    """Stage 1.6.0's rule evaluation: every group scanned, then the rule judged (the scans are cached per view)."""
    for g in rule.groups:
        view.group_matches(g, self._patterns)
    return _SHIPPED_FIRE(self, rule, view, session)


def _terms_one_by_one(self, words):  # type: ignore[no-untyped-def]
    """Stage 1.6.0's concept matching: each term found on its own (prefix words by scanning the prompt's words)."""
    index: dict[str, list[int]] = {}
    for i, w in enumerate(words):
        index.setdefault(w, []).append(i)
    terms: dict[int, list[list[str]]] = {}
    for table, star in ((self._exact, ""), (self._prefix, "*")):
        for first, entries in table.items():
            for k, rest in entries:
                terms.setdefault(k, []).append([first + star, *rest])
    out = {}
    for k, name in enumerate(self.names):
        pos = set()
        for parts in terms.get(k, []):
            head = parts[0]
            starts = (sorted(i for w, p in index.items() if w.startswith(head[:-1]) for i in p) if head.endswith("*")
                      else index.get(head, []))
            for i in starts:
                if i + len(parts) <= len(words) and all(
                        words[i + j].startswith(q[:-1]) if q.endswith("*") else words[i + j] == q
                        for j, q in enumerate(parts[1:], start=1)):
                    pos.add(i)
        if pos:
            out[name] = sorted(pos)
    return out


_SHIPPED_FIRE = PromptSafety._fire


def _as_stage_1_6_0(fn):  # type: ignore[no-untyped-def]
    shipped_where = Concepts.where
    PromptSafety._fire = _scan_every_group  # type: ignore[method-assign]
    Concepts.where = _terms_one_by_one  # type: ignore[method-assign]
    try:
        return fn()
    finally:
        PromptSafety._fire = _SHIPPED_FIRE  # type: ignore[method-assign]
        Concepts.where = shipped_where  # type: ignore[method-assign]


def _layers(n: int) -> None:
    import pipeline.policy as pol
    from pipeline.policy_archive import registry

    reg = registry()
    versions = [(v["policy_id"], v["version"]) for v in reg.versions()][-n:]

    def empty() -> None:
        for fn in (norm.compiled, norm._compile_terms, norm.compile_term, pol._regex_problem):
            fn.cache_clear()
        re.purge()

    def build(cached: bool) -> list[tuple[str, float]]:
        out = []
        empty()  # the first layer starts cold either way
        for key in [None, *versions]:
            if not cached:
                empty()
            t0 = time.perf_counter()
            policy = pol.default_policy() if key is None else reg.get(*key)
            PromptSafety(policy)
            out.append((policy.version if key else f"{policy.version} (current)", time.perf_counter() - t0))
        return out

    PromptSafety()  # warm-up: the classifier models and the encoder are loaded once either way
    uncached, cached = build(False), build(True)
    print("| policy | load + build, caches emptied (before 1.7.0), s | caches kept (1.7.0), s |\n|---|---:|---:|")
    for (name, a), (_, b) in zip(uncached, cached):
        print(f"| {name} | {a:.2f} | {b:.2f} |")
    print(f"| total | {sum(a for _, a in uncached):.2f} | {sum(b for _, b in cached):.2f} |")


def _long_inputs() -> dict[str, str]:
    from tests.unit.pipeline.test_prompt_safety import PATHOLOGICAL
    texts = [json.loads(line).get("text") for line in PROMPTS.read_text().splitlines() if line.strip()]
    limit = PromptSafety().policy.document.limits.max_prompt_chars
    return {"ordinary prose": " ".join(t for t in texts if isinstance(t, str))[:limit],
            **{name: text[:limit] for name, text in PATHOLOGICAL}}


def _long(form: str) -> dict[str, tuple[float, str]]:
    def run() -> dict[str, tuple[float, str]]:
        layer = PromptSafety()
        out = {}
        for name, text in _long_inputs().items():
            best, dec = float("inf"), ""
            for _ in range(3):
                c = time.process_time()
                try:
                    dec = json.dumps(layer.check(text, "chat").to_dict(), sort_keys=True)
                except Exception as e:  # noqa: BLE001 - a refusal (PromptTooLarge) is an outcome too
                    dec = type(e).__name__
                best = min(best, time.process_time() - c)
            out[name] = (best, dec)
        return out
    return _with_form(form, run)


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
    ap.add_argument("--n", type=int, default=1000, help="how many prompts (from the top of prompts.jsonl; 0: none)")
    ap.add_argument("--compare-plain-alternation", action="store_true")
    ap.add_argument("--compare-stage-1.6.0", dest="stage_1_6_0", action="store_true")
    ap.add_argument("--layers", type=int, default=0, help="time building the current and the last N archived layers")
    ap.add_argument("--long", action="store_true", help="also time prompts at the length limit (CPU s / decision)")
    a = ap.parse_args()
    forms = list(FORMS) if a.compare_plain_alternation else list(FORMS)[:1]
    if a.n:
        items = [json.loads(line) for line in PROMPTS.read_text().splitlines() if line.strip()][:a.n]
        _run(items[:20])  # warm-up: model load, encoder caches
        print("| patterns | prompts | mean ms / decision | p50 | p95 |\n|---|---:|---:|---:|---:|")
        ms, _ = _run(items)
        _report(f"{forms[0]}, embeddings computed", ms)
        if a.compare_plain_alternation:
            # the encoder keeps the last 4,096 embeddings: time every pattern form with them cached, rules and model
            # scoring only, so none gets a free ride from another
            outs = []
            for form in forms:
                ms, got = _with_form(form, lambda: _run(items))
                _report(f"{form}, embeddings cached", ms)
                outs.append((form, statistics.fmean(ms), got))
            for form, mean, got in outs[1:]:
                print(f"{form}: identical decisions {got == outs[0][2]}; shipped is {mean / outs[0][1]:.2f}x as fast")
        if a.stage_1_6_0:
            runs = []
            for name, wrap in (("stage 1.7.0 (shipped)", lambda f: f()), ("stage 1.6.0", _as_stage_1_6_0)) * 2:
                ms, got = wrap(lambda: _run(items))
                runs.append((name, ms, got))
            for name, ms, _ in runs:
                _report(f"{name}, embeddings cached", ms)
            new, old = statistics.fmean(runs[0][1] + runs[2][1]), statistics.fmean(runs[1][1] + runs[3][1])
            same = all(got == runs[0][2] for _, _, got in runs)
            print(f"stage 1.6.0: identical decisions {same}; shipped is {old / new:.2f}x as fast (both runs each)")
    if a.layers:
        _layers(a.layers)
    if a.long:
        results = {form: _long(form) for form in forms}
        print("\n| prompt at the length limit | " + " | ".join(f"{f}, CPU s" for f in forms) + " |")
        print("|---|" + "---:|" * len(forms))
        for name in results[forms[0]]:
            print(f"| {name} | " + " | ".join(f"{results[f][name][0]:.3f}" for f in forms) + " |")
        same = all(results[f][n][1] == results[forms[0]][n][1] for f in forms for n in results[f])
        print(f"\nidentical decisions on the long prompts: {same}")

if __name__ == "__main__":
    main()
