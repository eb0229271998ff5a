"""``validate`` runs one pydantic-core call over per-kind record models and falls back to the
worded two-step path (``RecordIn`` then the body model) only on refusal. The one call must never
accept what the two-step path refuses, and must give the same record when both accept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger.errors import InvalidInput
from ledger.records import (
    _ALL_RECORDS,
    _CLIENT_RECORDS,
    TIMESTAMP_PATTERN,
    Kind,
    RecordIn,
    _canonical_body,
    _rules,
    _validate_and_word,
    validate,
)

OLD_TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)"


def _old_ts_ok(ts: str) -> bool:
    try:
        RecordIn.model_validate({"kind": "artifact", "producer": "p", "produced_at": ts, "body": {}})
    except ValidationError:
        return False
    return True


def _new_ts_ok(ts: str) -> bool:
    import re

    return re.fullmatch(TIMESTAMP_PATTERN.strip("^$"), ts, flags=re.ASCII) is not None


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(OLD_TS, fullmatch=True)
       | st.from_regex(r"[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-6][0-9])", fullmatch=True))
def test_timestamp_pattern_accepts_only_what_fromisoformat_takes(ts: str) -> None:
    if _new_ts_ok(ts):
        assert _old_ts_ok(ts), ts


def test_timestamp_pattern_every_day_of_leap_and_common_years() -> None:
    for year in ("0000", "0001", "0004", "0100", "0400", "1900", "2000", "2023", "2024", "2100", "9996", "9999"):
        for month in range(14):
            for day in range(33):
                ts = f"{year}-{month:02d}-{day:02d}T10:00:00Z"
                assert _new_ts_ok(ts) == _old_ts_ok(ts), ts
    for ts in ("2025-12-30T23:59:59.123456789+23:59", "2025-12-30T24:00:00Z", "2025-12-30T10:60:00Z",
               "2025-12-30T10:00:60Z", "2025-12-30T10:00:00+24:00", "2025-12-30T10:00:00-00:00",
               "2025-12-30T10:00:00.Z", "2025-12-30T10:00:00z", "2025-12-30t10:00:00Z", "2025-12-30T10:00:00Z\n"):
        assert not _new_ts_ok(ts) or _old_ts_ok(ts), ts


def _sample_value() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.integers(-3, 2**54), st.floats(-2, 2, allow_nan=False),
                     st.sampled_from(["", "x", "ab" * 32, "AB" * 32, "image/png", "chat", "allow", "place", "a b",
                                      "svc:1", "2025-12-30T10:00:00Z", "-x", "x" * 201]),
                     st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2))


FIELDS = sorted({
    "pseudonym", "principal_type", "name", "version", "weights_sha256", "policy_id", "document_sha256", "surface",
    "session", "turn", "language", "parameters", "seed", "sha256", "media_type", "size", "storage_ref", "action",
    "policy_version", "pipeline_version", "risk", "signals", "reviewer", "reason", "channel", "case_id", "actor",
    "role", "purpose", "report_sha256", "requested_by", "email", "text", "extra"})


@st.composite
def records(draw: st.DrawFn) -> Any:
    rec: dict[str, Any] = {"kind": draw(st.sampled_from([k.value for k in Kind] + ["nope", 3])),
                           "producer": draw(st.sampled_from(["svc:a", "", "a b", 5])),
                           "produced_at": draw(st.sampled_from(["2025-12-30T10:00:00Z", "2024-02-29T00:00:00.5+01:00",
                                                                "2023-02-29T00:00:00Z", "yesterday", 0])),
                           "body": draw(st.dictionaries(st.sampled_from(FIELDS), _sample_value(), max_size=7)
                                        | st.just([]))}
    for name, values in (("schema", [1, 2, True, 1.0, "1"]), ("subject", ["subj:1", "", None, "a b"]),
                         ("links", [[], [{"rel": "x", "id": 1}], [{"rel": "x"}], [{"rel": "x", "id": 1, "batch": 0}], "x"]),
                         ("sensitive", [None, {}, {"text": "hi"}, {"bad name": 1}, {"email": "e"}]),
                         ("idempotency_key", [None, "k1", "", "a\x00b", 3]), ("extra_field", [1])):
        if draw(st.booleans()):
            rec[name] = draw(st.sampled_from(values))
    return rec


def _canon(rec: Any) -> str:
    d = rec.model_dump(by_alias=True)
    return json.dumps(d, sort_keys=True, default=str)


@settings(max_examples=4000, deadline=None)
@given(records(), st.booleans())
def test_one_call_accepts_a_subset_with_the_same_record(data: Any, trusted: bool) -> None:
    try:
        fast = (_ALL_RECORDS if trusted else _CLIENT_RECORDS).validate_python(data)
        _rules(fast)
        _canonical_body(fast.body)
    except (ValidationError, InvalidInput):
        fast = None
    try:
        old, old_body = _validate_and_word(data, trusted)
    except InvalidInput as err:
        old, old_body = None, str(err)
    if fast is not None:
        assert old is not None, (data, old_body)
    # Whatever the path, ``validate`` gives the two-step path's answer and message.
    try:
        new, new_body = validate(data, allow_ledger_kinds=trusted)
    except InvalidInput as err:
        assert old is None and str(err) == old_body
        return
    assert old is not None
    assert _canon(new) == _canon(old)
    assert json.dumps(new.body, sort_keys=True) == json.dumps(old.body, sort_keys=True)
    assert new.kind is old.kind
    assert new_body == old_body


@pytest.mark.parametrize("risk", [0, 1, 0.5, 1.0, 0.0])
def test_float_fields_keep_what_was_sent(risk: float) -> None:
    body = {"action": "allow", "policy_id": "p", "policy_version": "1", "pipeline_version": "1", "risk": risk,
            "signals": {}}
    rec, _ = validate({"kind": "safety_decision", "producer": "p", "produced_at": "2025-12-30T10:00:00Z", "body": body})
    assert type(rec.body["risk"]) is type(risk)


VALID_BODIES: dict[str, dict[str, Any]] = {
    "principal": {"pseudonym": "u1", "principal_type": "user"},
    "model_version": {"name": "m", "version": "1", "weights_sha256": "ab" * 32},
    "policy": {"policy_id": "p", "version": "1", "document_sha256": "ab" * 32},
    "prompt": {"surface": "chat", "session": "s1", "turn": 0, "language": "en"},
    "generation": {"surface": "imagine", "parameters": {"steps": 3}, "seed": 7},
    "artifact": {"sha256": "ab" * 32, "media_type": "image/png", "size": 10, "storage_ref": "blob://1"},
    "safety_decision": {"action": "allow", "policy_id": "p", "policy_version": "1", "pipeline_version": "1",
                        "risk": 0.25, "signals": {"nudity": 0.1}},
    "review_decision": {"action": "approve", "reviewer": "r1", "reason": "ok"},
    "distribution": {"action": "publish", "channel": "timeline"},
    "legal_hold": {"action": "place", "case_id": "c1"},
    "access": {"actor": "a", "role": "investigator", "action": "read", "case_id": "c1", "purpose": "case"},
    "replay_report": {"report_sha256": "ab" * 32},
    "erasure": {"reason": "asked", "requested_by": "dpo"},
}


@st.composite
def near_valid(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(sorted(VALID_BODIES)))
    body = dict(VALID_BODIES[kind])
    rec: dict[str, Any] = {"kind": kind, "producer": "svc:a", "produced_at": "2025-12-30T10:00:00Z", "body": body,
                           "subject": "subj:1"}
    if kind == "prompt":
        rec["sensitive"] = {"text": "hi"}
    for _ in range(draw(st.integers(0, 2))):
        target = body if draw(st.booleans()) else rec
        key = draw(st.sampled_from(sorted(target) + ["extra", "schema", "links", "idempotency_key", "sensitive"]))
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(_sample_value())
    return rec


@settings(max_examples=4000, deadline=None)
@given(near_valid(), st.booleans())
def test_one_call_matches_the_two_step_path_near_valid_records(data: Any, trusted: bool) -> None:
    test_one_call_accepts_a_subset_with_the_same_record.hypothesis.inner_test(data, trusted)  # type: ignore[attr-defined]


def test_valid_records_take_the_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger import records

    def fail(*_: Any) -> Any:
        raise AssertionError("the two-step path ran for a valid record")

    monkeypatch.setattr(records, "_validate_and_word", fail)
    for kind, body in VALID_BODIES.items():
        rec = {"kind": kind, "producer": "svc:a", "produced_at": "2025-12-30T10:00:00.123Z", "body": dict(body),
               "subject": "subj:1", "links": [{"rel": "x", "id": 0}], "idempotency_key": "k"}
        if kind == "prompt":
            rec["sensitive"] = {"text": "hi"}
        assert validate(rec, allow_ledger_kinds=True)[0].kind.value == kind
