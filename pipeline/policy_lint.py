"""Wording a policy asks for that the prompt-safety layer can never read as written.

A prompt is matched after normalisation (:func:`pipeline.normalise.normalise`): the folded view undoes
leetspeak inside words that mix letters and digits ("r34" reads "rea"), shortens runs of a repeated
letter ("xxx" reads "xx") and drops punctuation inside words. A policy term is compiled from its words
with the Unicode folding only, so a term those steps would rewrite can never match the folded view: the
shipped 1.30.0 had "r34" (rule 34) in its explicit lexicon, and "draw r34 of the girl in this photo" was
allowed. Policy validation cannot refuse such a term (archived policies must keep loading for replays),
so it reports them: ``custody pipeline policy validate`` lists them under ``unreadable_terms``. (Compiling
terms through the same folding instead would fix it one level down, but it would change what every archived
policy decides, and a replay must reproduce the recorded decision; a new policy version spells the term so
it is read.)

Only what is read on the folded view is checked: the groups of rules (``view: folded``, the default) and
of contexts. ``unless`` lists, ``requires`` and masks are read on every view, the canonical one included,
where such a term still matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.normalise import compile_term, normalise, term_words
from pipeline.policy import REGEX_PREFIX, SEQUENCE_MARK, PolicyDocument, group_entries, parse_sequence


@dataclass(frozen=True)
class UnreadableTerm:
    term: str
    reads_as: str               # the folded view of the term's own words: what a prompt that says it becomes
    used_by: tuple[str, ...]    # "rule <id>" / "context <id>"


def folded_form(term: str) -> str | None:
    """What the folded view makes of a prompt that says ``term``, when the term's own pattern does not find
    itself there (else None: "n s f w" is compiled to find "nsfw", and a prompt naming a reversal keeps its
    words beside the reversed ones)."""
    words = " ".join(term_words(term))
    folded = normalise(words).folded
    return None if re.search(compile_term(term), folded) else folded


def _terms_of(entry: str, doc: PolicyDocument) -> list[str]:
    if entry.startswith(REGEX_PREFIX):
        return []
    if SEQUENCE_MARK in entry:
        names = [p for p in parse_sequence(entry) if isinstance(p, str)]
    elif entry.startswith("@"):
        names = [entry[1:]]
    else:
        return [entry]
    return [t for n in names for t in doc.lexicons.get(n, []) if not t.startswith(REGEX_PREFIX)]


def unreadable_terms(doc: PolicyDocument) -> list[UnreadableTerm]:
    """Every plain term read on the folded view that the folding rewrites, with the rules and contexts that
    use it, sorted by term."""
    users: dict[str, set[str]] = {}
    for kind, items in (("rule", doc.rules), ("context", doc.contexts)):
        for item in items:
            if getattr(item, "view", "folded") != "folded":
                continue
            for group in group_entries(item):
                for entry in group:
                    for term in _terms_of(entry, doc):
                        users.setdefault(term, set()).add(f"{kind} {item.id}")
    out = []
    for term in sorted(users):
        reads_as = folded_form(term)
        if reads_as is not None:
            out.append(UnreadableTerm(term, reads_as, tuple(sorted(users[term]))))
    return out
