#!/usr/bin/env python
"""run.py FILE.jsonl: decisions of 1.23.0 (archived) and the 1.24.0 draft (working tree) for each item.
Each line: {"id", "text" | "turns", "surface", "kind": "attack"|"benign", "category"}."""
import json, sys, collections
sys.path.insert(0, "/work/main"); sys.path.insert(0, "/work/main/bench")
from pathlib import Path
from pipeline.policy import default_policy, load_policy
from pipeline.prompt_safety import PromptSafety
from eval_prompts import decide
new = PromptSafety(load_policy(Path("/tmp/rt24/draft.json")))  # snapshot of the draft
old = PromptSafety(load_policy(Path("/work/main/pipeline/policies/archive/custody-default@1.23.0.json")))
c = collections.Counter()
for line in open(sys.argv[1]):
    if not line.strip(): continue
    it = json.loads(line)
    a, b = decide(old, it), decide(new, it)
    c[(it["kind"], "1.23.0", a.action)] += 1; c[(it["kind"], "1.24.0-draft", b.action)] += 1
    print(json.dumps({"id": it["id"], "kind": it["kind"], "1.23.0": a.action, "1.24.0-draft": b.action,
                      "flagged": b.flagged(), "rules": [m.rule_id for m in b.matched_rules], "contexts": list(b.contexts),
                      "text": it.get("text") or it["turns"]}, ensure_ascii=False))
for k, v in sorted(c.items()): print("#", k, v, file=sys.stderr)
