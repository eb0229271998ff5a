"""Plain functions behind ``custody pipeline check-prompt`` and ``custody pipeline policy validate``.

They return JSON-ready dicts and raise :class:`pipeline.errors.PipelineError` subclasses (each with
``status`` / ``exit_code`` / ``code``) for the CLI and the API to map in their one error handler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import InvalidPrompt
from pipeline.policy import Policy, default_policy, load_policy
from pipeline.prompt_safety import Session, layer_for


def _policy(policy_path: str | Path | None) -> Policy:
    return default_policy() if policy_path is None else load_policy(policy_path)


def check_prompt(text: str, surface: str = "chat", session_turns: list[str] | None = None,
                 policy_path: str | Path | None = None) -> dict[str, Any]:
    """Judge ``text`` on ``surface``. ``session_turns`` are the conversation's earlier prompts, oldest
    first; they are replayed through a :class:`Session` (on the same surface) so that risk
    accumulated over the conversation counts. Returns the decision for ``text`` as a dict, plus
    ``session`` (the earlier turns' actions) when there were earlier turns."""
    if session_turns is not None and (not isinstance(session_turns, list | tuple)
                                      or not all(isinstance(t, str) for t in session_turns)):
        raise InvalidPrompt("session_turns must be a list of strings (the earlier prompts, oldest first)")
    session = Session(layer_for(_policy(policy_path)))
    for k, turn in enumerate(session_turns or []):
        try:
            session.check(turn, surface)
        except InvalidPrompt as e:
            raise type(e)(f"session turn {k}: {e}") from None
    out = session.check(text, surface).to_dict()
    if session_turns:
        out["session"] = [{"turn": d.turn, "action": d.action, "flagged": list(d.flagged())}
                          for d in session.decisions[:-1]]
    return out


def validate_policy(path: str | Path) -> dict[str, Any]:
    """Load and validate a policy file; return its identity and a summary. Raises
    :class:`~pipeline.errors.InvalidPolicy` (exit 2) naming every problem found, or
    :class:`~pipeline.errors.PolicyNotFound` (exit 3)."""
    policy = load_policy(path)
    layer_for(policy)  # compiling every term and pattern is part of validation
    return {"valid": True, **policy.summary()}
