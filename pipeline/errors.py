"""The pipeline's exception tree.

``pipeline`` knows nothing of ``ledger`` (see ARCHITECTURE.md), so it cannot derive from
``ledger.errors.CustodyError``. Instead every deliberate pipeline error derives from
``PipelineError`` and carries the same three attributes with the same meaning as
``ledger/errors.py``'s convention, so the API and the CLI map both trees in one place each:

- ``status``: the HTTP status the API answers with;
- ``exit_code``: the CLI exit code (2 = bad input, 3 = not found, 1 = internal);
- ``code``: a stable machine-readable code.

``str(err)`` is always a message for a person that names the problem.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every deliberate pipeline error."""

    status: int = 500
    exit_code: int = 1
    code: str = "pipeline_error"


class InvalidPolicy(PipelineError):
    """A policy document does not parse or violates the policy schema."""

    status = 400
    exit_code = 2
    code = "invalid_policy"


class PolicyNotFound(PipelineError):
    """The policy file (or a rules file it references) does not exist or cannot be read."""

    status = 404
    exit_code = 3
    code = "policy_not_found"


class InvalidPrompt(PipelineError):
    """A prompt (or a session turn) is not something the prompt-safety layer can judge."""

    status = 400
    exit_code = 2
    code = "invalid_prompt"


class EmptyPrompt(InvalidPrompt):
    code = "empty_prompt"


class PromptTooLarge(InvalidPrompt):
    """Over the policy's ``limits.max_prompt_chars``. Rejected, never truncated: truncation would let
    a payload hide behind padding."""

    status = 413
    code = "prompt_too_large"


class InvalidSurface(InvalidPrompt):
    """The surface is not one the policy declares."""

    code = "invalid_surface"
