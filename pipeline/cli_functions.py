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
    :class:`~pipeline.errors.PolicyNotFound` (exit 3). ``unreadable_terms`` lists the terms the layer can
    never match as written (:mod:`pipeline.policy_lint`)."""
    from pipeline.policy_lint import unreadable_terms

    policy = load_policy(path)
    layer_for(policy)  # compiling every term and pattern is part of validation
    # warnings, not problems: an archived policy with such a term must still load for its replays
    unreadable = [{"term": u.term, "reads_as": u.reads_as, "used_by": list(u.used_by)}
                  for u in unreadable_terms(policy.document)]
    return {"valid": True, **policy.summary(), "unreadable_terms": unreadable}


def mark_file(path: str | Path, out_path: str | Path, payload: int, key_hex: str, chain_dir: str | Path,
              model: str) -> dict[str, Any]:
    """Behind ``custody pipeline mark FILE``: watermark ``payload`` into the PNG / JPEG at ``path`` and
    sign its Content Credentials with the chain in ``chain_dir``; write the result to ``out_path``
    (refusing to overwrite an existing file or the input). ``model`` is ``"name@version"``. Returns the
    :class:`~pipeline.marking.MarkResult` as a dict plus the paths."""
    from pipeline.credentials import sniff_mime
    from pipeline.marking import MarkingError, MarkInputNotFound, mark

    src, dst = Path(path), Path(out_path)
    try:
        key = bytes.fromhex(key_hex)
    except (TypeError, ValueError):
        raise MarkingError("key_hex must be an even-length hex string") from None
    if not key:
        raise MarkingError("key_hex must not be empty")
    try:
        data = src.read_bytes()
    except OSError as e:
        raise MarkInputNotFound(f"cannot read {src}: {e.strerror or e}") from None
    mime = sniff_mime(data)
    if mime is None:
        raise MarkingError(f"{src}: not a PNG or JPEG image")
    if dst.exists() or dst.resolve() == src.resolve():
        raise MarkingError(f"{dst}: already exists; refusing to overwrite")
    result = mark(data, mime, payload, key, model, Path(chain_dir))
    with open(dst, "xb") as f:  # exclusive create: never overwrite
        f.write(result.image_bytes)
    return {"input": str(src), "output": str(dst), **result.to_dict()}


def analyse_file(path: str | Path, surface: str = "imagine", source_path: str | Path | None = None,
                 hash_bank_path: str | Path | None = None, policy_path: str | Path | None = None,
                 key: bytes | str | None = None, context: dict[str, Any] | None = None,
                 trust_anchor_path: str | Path | None = None) -> dict[str, Any]:
    """``custody pipeline analyse FILE``: post-generation analysis of an image (PNG / JPEG) or a short
    video (sampled frames) and the policy's decision, as a JSON-ready dict.

    ``source_path`` is the uploaded photo an edit started from; ``hash_bank_path`` a PDQ hash bank
    (text or JSON, see :mod:`pipeline.hashbank`); ``key`` the watermark key (bytes; without it the
    watermark is not looked for; a str is read as hex, like ``mark_file``'s ``key_hex``);
    ``trust_anchor_path`` the C2PA root certificate (PEM) that makes our own manifests *Trusted*;
    ``context`` the request context (``minor``, ``real_person``,
    ``prompt_risk``, ``request_id``). The decision's ``decision_sha256`` covers everything except
    ``pipeline_components`` and ``evidence`` (which the pipeline version and signals already pin).
    Raises :class:`~pipeline.images.ImageError` subclasses for bad files (exit 2; missing: exit 3).
    """
    from pipeline.decision import analyse
    from pipeline.hashbank import load_bank
    from pipeline.images import read_upload
    from pipeline.watermark import WatermarkError

    if isinstance(key, str):
        try:
            key = bytes.fromhex(key)
        except ValueError:
            raise WatermarkError("key must be bytes or an even-length hex string") from None
    if key is not None and not key:
        raise WatermarkError("key must not be empty")
    anchor = None
    if trust_anchor_path is not None:
        try:
            anchor = Path(trust_anchor_path).read_bytes()
        except OSError as e:
            from pipeline.credentials import ChainNotFound

            raise ChainNotFound(f"trust anchor {trust_anchor_path} cannot be read: {e.strerror}") from None
    policy = _policy(policy_path)
    data = read_upload(path, max_bytes=256 * 1024 * 1024)
    source = read_upload(source_path) if source_path is not None else None
    banks = (load_bank(hash_bank_path),) if hash_bank_path is not None else ()
    out = analyse(data, policy, surface=surface, declared=Path(path).name, source=source,
                  source_declared=Path(source_path).name if source_path is not None else None,
                  banks=banks, key=key, context=context, trust_anchor_pem=anchor)
    out["file"] = str(path)
    return out
