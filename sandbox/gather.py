"""What a replay covers: the prompts, artifacts and generations to replay, and every record they rest on.

Built from the target's ``trace`` (links both ways). The bodies read here only *choose* the inputs;
everything the replay then uses is read again from records whose inclusion has been verified
(:mod:`sandbox.evidence_check`).

* **Prompts** are re-moderated against the ``safety_decision`` records on the prompt (``stage:
  "prompt"``) — and, for older records that name no stage, against every decision on the prompt, its
  generations or their artifacts (what the legacy filters judged).
* **Artifacts** with a recorded analysis decision (a ``safety_decision`` linking the artifact with
  ``stage: "analysis"``, or naming no stage) are re-moderated from their bytes.
* **Generations** are re-generated from their recorded adapter, parameters, seed and source assets.

Without ``chain`` the target decides the scope: a prompt → itself, its generations and their judged
artifacts; a generation → itself and its judged outputs; an artifact → itself and its generation.
``mode`` then keeps what it replays (prompts and artifacts for ``remoderate``, generations for
``regenerate``, all for ``both``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import InvalidInput
from ledger.records import Kind
from ledger.service import Ledger

PROMPT, GENERATION, ARTIFACT, DECISION = (Kind.PROMPT.value, Kind.GENERATION.value, Kind.ARTIFACT.value,
                                          Kind.SAFETY_DECISION.value)


@dataclass
class Scope:
    prompts: list[int] = field(default_factory=list)
    artifacts: list[int] = field(default_factory=list)  # re-moderated from their bytes
    generations: list[int] = field(default_factory=list)  # re-generated
    roles: dict[int, str] = field(default_factory=dict)  # input id -> prompt | artifact | generation | recorded_decision | evidence
    prompt_decisions: dict[int, list[int]] = field(default_factory=dict)
    artifact_decisions: dict[int, list[int]] = field(default_factory=dict)
    art_generation: dict[int, int | None] = field(default_factory=dict)
    gen_prompt: dict[int, int | None] = field(default_factory=dict)
    gen_sources: dict[int, list[int]] = field(default_factory=dict)
    gen_outputs: dict[int, list[int]] = field(default_factory=dict)
    prompt_sources: dict[int, list[int]] = field(default_factory=dict)
    depicts: dict[int, list[int]] = field(default_factory=dict)  # upload artifact -> principals it depicts
    # prompt -> the earlier turns of its session (same principal and session id, lower turn), oldest first:
    # the prompt layer accumulates risk over a session, so a turn is re-judged after its history
    session_history: dict[int, list[int]] = field(default_factory=dict)

    def needs_text(self) -> list[int]:
        """Prompts whose sealed text the replay needs (re-moderated ones and re-generated ones' prompts)."""
        return sorted(set(self.prompts) | {p for g in self.generations if (p := self.gen_prompt.get(g)) is not None}
                      | {h for hs in self.session_history.values() for h in hs})

    def step_count(self) -> int:
        return len(self.prompts) + len(self.artifacts) + len(self.generations)


def _stage(body: dict[str, Any]) -> str | None:
    s = body.get("stage")
    return s if isinstance(s, str) else None


def gather(ledger: Ledger, record_id: int, *, chain: bool, mode: str) -> Scope:
    """The scope of a replay (see the module docstring). Raises NotFound / InvalidInput; appends nothing."""
    target = ledger.get(record_id)["record"]
    t = ledger.trace(record_id)
    if t.truncated and chain:
        raise InvalidInput(f"record {record_id}'s chain is larger than the trace limit; replay a smaller part")
    kind = {i: n["kind"] for i, n in t.nodes.items()}
    body = {i: n.get("body") or {} for i, n in t.nodes.items()}
    out_l: dict[int, list[tuple[str, int]]] = defaultdict(list)
    in_l: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for e in t.edges:
        out_l[e["src"]].append((e["rel"], e["dst"]))
        in_l[e["dst"]].append((e["rel"], e["src"]))

    def dsts(i: int, rel: str, k: str | None = None) -> list[int]:
        return sorted({d for r, d in out_l[i] if r == rel and (k is None or kind.get(d) == k)})

    gens_of_prompt = {p: sorted({s for r, s in in_l[p] if r == "prompt" and kind.get(s) == GENERATION})
                      for p in kind if kind[p] == PROMPT}
    outputs = {g: sorted({s for r, s in in_l[g] if r == "generation" and kind.get(s) == ARTIFACT})
               for g in kind if kind[g] == GENERATION}
    decisions_on = {i: sorted({s for _, s in in_l[i] if kind.get(s) == DECISION}) for i in kind}
    analysis = {a: [d for d in decisions_on[a] if _stage(body[d]) in ("analysis", None)]
                for a in kind if kind[a] == ARTIFACT}
    judged = {a for a, ds in analysis.items() if ds}

    s = Scope()
    if chain:
        prompts = sorted(i for i, k in kind.items() if k == PROMPT)
        gens = sorted(i for i, k in kind.items() if k == GENERATION)
        arts = sorted(judged)
    elif target["kind"] == PROMPT:
        prompts, gens = [record_id], gens_of_prompt.get(record_id, [])
        arts = sorted(a for g in gens for a in outputs.get(g, []) if a in judged)
    elif target["kind"] == GENERATION:
        prompts, gens = [], [record_id]
        arts = [a for a in outputs.get(record_id, []) if a in judged]
    elif target["kind"] == ARTIFACT:
        prompts, gens = [], dsts(record_id, "generation", GENERATION)
        arts = [record_id] if record_id in judged else []
        if mode == "remoderate" and not arts:
            raise InvalidInput(f"artifact {record_id} has no recorded analysis decision to re-moderate")
    else:
        raise InvalidInput(f"record {record_id} is a {target['kind']!r}: name a prompt, a generation or an "
                           f"artifact, or replay its chain with --chain")
    if mode in ("remoderate", "both"):
        s.prompts, s.artifacts = prompts, arts
    if mode in ("regenerate", "both"):
        s.generations = gens
    if not s.step_count():
        what = {"remoderate": "prompt or judged artifact to re-moderate", "regenerate": "generation to re-generate",
                "both": "prompt, judged artifact or generation to replay"}[mode]
        raise InvalidInput(f"record {record_id}{'’s chain' if chain else ''} holds no {what}")

    roles = s.roles

    def role(i: int, r: str) -> None:
        if i in kind:
            roles.setdefault(i, r)

    for p in s.prompts:
        role(p, "prompt")
    for a in s.artifacts:
        role(a, "artifact")
    for g in s.generations:
        role(g, "generation")
    # prompt decisions: on the prompt itself (stage "prompt" or none); legacy ones (no stage) anywhere
    # on its generations or their artifacts, with the generation / artifact between as evidence
    for p in s.prompts:
        gens_p = gens_of_prompt.get(p, [])
        arts_p = [a for g in gens_p for a in outputs.get(g, [])]
        reach = {p, *gens_p, *arts_p}
        ds = sorted({d for i in reach for d in decisions_on.get(i, [])
                     if _stage(body[d]) is None or (_stage(body[d]) == "prompt" and i == p)})
        s.prompt_decisions[p] = ds
        s.prompt_sources[p] = dsts(p, "source", ARTIFACT)
        for d in ds:
            role(d, "recorded_decision")
            for _, dst in out_l[d]:
                if dst in reach and dst != p:
                    role(dst, "evidence")
                    for g in dsts(dst, "generation", GENERATION):
                        role(g, "evidence")
    for a in s.artifacts:
        s.artifact_decisions[a] = analysis[a]
        for d in analysis[a]:
            role(d, "recorded_decision")
    # what artifacts and generations rest on: the generation, its prompt, source uploads, outputs
    for a in sorted(set(s.artifacts) | {o for g in s.generations for o in outputs.get(g, [])}):
        gs = dsts(a, "generation", GENERATION)
        s.art_generation[a] = gs[0] if gs else None
    for g in sorted(set(s.generations) | {g for g in s.art_generation.values() if g is not None}):
        ps = dsts(g, "prompt", PROMPT)
        s.gen_prompt[g] = ps[0] if ps else None
        if ps:
            s.prompt_sources.setdefault(ps[0], dsts(ps[0], "source", ARTIFACT))
        s.gen_sources[g] = dsts(g, "source_asset", ARTIFACT)
        s.gen_outputs[g] = outputs.get(g, [])
    for a in s.artifacts:
        g = s.art_generation.get(a)
        if g is not None:
            role(g, "evidence")
            p = s.gen_prompt.get(g)
            for src in s.gen_sources.get(g, []) or (s.prompt_sources.get(p, []) if p is not None else []):
                role(src, "evidence")
    for g in s.generations:
        for i in [s.gen_prompt.get(g), *s.gen_sources.get(g, []), *s.gen_outputs.get(g, [])]:
            if i is not None:
                role(i, "evidence")
    for i, k in kind.items():
        if k == ARTIFACT and i in roles:
            s.depicts[i] = dsts(i, "depicts")
    _session_history(s, kind, body, dsts)
    return s


def _session_history(s: Scope, kind: dict[int, str], body: dict[int, dict[str, Any]], dsts: Any) -> None:
    """Earlier turns of each re-moderated prompt's session, found in the trace (a prompt links to its
    principal, and the trace walks through principals). Turns are ordered by their recorded ``turn``,
    then by ledger index; a prompt without a session id has no history."""
    sessions: dict[tuple[tuple[int, ...], str], list[tuple[int, int]]] = {}
    for i, k in kind.items():
        sid = body[i].get("session") if k == PROMPT else None
        if isinstance(sid, str):
            turn = body[i].get("turn")
            sessions.setdefault((tuple(dsts(i, "principal")), sid), []).append(
                (turn if isinstance(turn, int) else -1, i))
    for p in s.prompts:
        sid = body[p].get("session")
        if not isinstance(sid, str):
            continue
        turn = body[p].get("turn")
        me = (turn if isinstance(turn, int) else -1, p)
        earlier = [i for t, i in sorted(sessions.get((tuple(dsts(p, "principal")), sid), [])) if (t, i) < me]
        if earlier:
            s.session_history[p] = earlier
            for h in earlier:
                s.roles.setdefault(h, "evidence")


__all__ = ["Scope", "gather"]
