#!/usr/bin/env python
"""Replay each archived release on the holdout it was blind to, with its classifier settings changed.

    python bench/blind_study.py                                          # the releases as shipped
    python bench/blind_study.py --model prompt_classifier_v26            # another model file
    python bench/blind_study.py --set nonconsensual_intimate_edit.hold_at=0.55

A holdout is measured once, on the release frozen before it was opened; afterwards it joins the tuning split
and every later rule is tuned on it. But the rules a release froze, and the classifier it shipped, never saw
its own holdout. So the question "would this classifier or threshold have done better?" can still be asked
blind, over several holdouts at once: keep each release's frozen rules and swap only its classifier section.
A model compared this way must not have been trained on those holdouts (``train_prompt_model.py`` trains on
the tuning split, which now holds them: train the candidate for this study with them left out).

Prints, per release and pooled: requests missed (nonconsensual intimate edits, sex-related crimes and child
sexual exploitation, the issue's target group; then every category) and benign prompts flagged.
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
sys.path.insert(0, str(ROOT / "bench"))

from eval_prompts import NONCONSENSUAL, decide  # noqa: E402

from pipeline.errors import InvalidPolicy  # noqa: E402
from pipeline.policy import policy_from_data  # noqa: E402
from pipeline.policy_archive import archive_dir  # noqa: E402
from pipeline.prompt_model import model_path  # noqa: E402
from pipeline.prompt_safety import PromptSafety  # noqa: E402

# (release, the holdout first measured on it); every one ships classifier v25 and code >= 1.5.0
PAIRS = (("1.27.0", "holdout-28"), ("1.28.0", "holdout-29"), ("1.29.0", "holdout-30"),
         ("1.30.0", "holdout-31"))
GROUP = set(NONCONSENSUAL)  # the target group, as eval_prompts.py counts it
PROMPTS = ROOT / "tests" / "pipeline_eval" / "prompts.jsonl"


def variant(data: dict[str, Any], model: str | None, sets: list[str]) -> dict[str, Any]:
    """The archived policy document with its classifier model and thresholds replaced."""
    clf = data["classifier"]
    if model:
        clf["model"], clf["sha256"] = model, hashlib.sha256(model_path(model).read_bytes()).hexdigest()
    for s in sets:
        key, _, value = s.partition("=")
        category, _, field = key.partition(".")
        try:
            if not (category and field and value):
                raise ValueError("empty part")
            clf["categories"].setdefault(category, {})[field] = json.loads(value)
        except ValueError:
            raise ValueError(f"--set {s!r}: expected CATEGORY.FIELD=JSON, "
                             "e.g. nonconsensual_intimate_edit.hold_at=0.55") from None
    return data


def run(model: str | None = None, sets: list[str] | None = None) -> dict[str, Any]:
    items = [json.loads(line) for line in PROMPTS.read_text("utf-8").splitlines() if line.strip()]
    pooled = {"missed": 0, "harmful": 0, "missed_all": 0, "harmful_all": 0, "flagged": 0, "benign": 0}
    rows = []
    for version, origin in PAIRS:
        data = json.loads((archive_dir() / f"custody-default@{version}.json").read_text("utf-8"))
        layer = PromptSafety(policy_from_data(variant(data, model, sets or []), f"{version} (study variant)"))
        row: dict[str, Any] = {"release": version, "holdout": origin, "missed_ids": []}
        row.update({k: 0 for k in pooled})
        for item in (i for i in items if i.get("origin") == origin):
            d = decide(layer, item)
            if item["expected_action"] == "allow":
                row["benign"] += 1
                row["flagged"] += d.action != "allow"
                continue
            grouped = item["expected_category"] in GROUP
            row["harmful_all"] += 1
            row["harmful"] += grouped
            if d.action == "allow":
                row["missed_all"] += 1
                row["missed"] += grouped
                if grouped:
                    row["missed_ids"].append(item["id"])
        for k in pooled:
            pooled[k] += row[k]
        rows.append(row)
    return {"model": model, "set": sets or [], "releases": rows, "pooled": pooled}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a model in pipeline/models (its name, without .json) instead of each "
                                    "release's own")
    ap.add_argument("--set", action="append", default=[], metavar="CATEGORY.FIELD=JSON",
                    help="a classifier threshold, e.g. nonconsensual_intimate_edit.hold_at=0.55")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        out = run(a.model, a.set)
    except (ValueError, OSError, InvalidPolicy) as e:  # a malformed --set, a missing model file
        ap.error(str(e))
    if a.json:
        print(json.dumps(out))
        return 0
    for r in out["releases"]:
        print(f"{r['release']} on {r['holdout']}: missed {r['missed']}/{r['harmful']} (every category "
              f"{r['missed_all']}/{r['harmful_all']}), benign flagged {r['flagged']}/{r['benign']}: "
              f"{' '.join(r['missed_ids'])}")
    p = out["pooled"]
    print(f"pooled: missed {p['missed']}/{p['harmful']} ({100 * p['missed'] / p['harmful']:.2f} %), "
          "every category "
          f"{p['missed_all']}/{p['harmful_all']}, benign flagged {p['flagged']}/{p['benign']} "
          f"({100 * p['flagged'] / p['benign']:.2f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
