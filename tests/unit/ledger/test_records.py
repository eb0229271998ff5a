"""Record validation and canonical bytes (RFC 8785)."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidInput, RecordTooLarge
from ledger.records import MAX_SAFE_INTEGER, canonical_json, parse_json, validate_record

# JSON values without floats, with keys drawn from all of Unicode (surrogates excluded).
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_fast_path_equals_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(text, st.floats(allow_nan=False, allow_infinity=False) | text, max_size=6))
def test_floats_and_any_keys_match_rfc8785(value: dict) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=1e-5, max_value=1e17, allow_nan=False) | st.floats(min_value=-1e17, max_value=-1e-5))
def test_fast_path_floats_equal_rfc8785(x: float) -> None:
    assert canonical_json({"x": x, "y": [x, -x]}) == rfc8785.dumps({"x": x, "y": [x, -x]})


# Floats at and around the fast path's edges (1e-4 and 1e16, both signs), subnormals, zeros,
# integral floats and the exponent notation RFC 8785 switches to at 1e21 and below 1e-6.
edge_floats = (
    st.floats(min_value=5e-5, max_value=2e-4) | st.floats(min_value=-2e-4, max_value=-5e-5)
    | st.floats(min_value=5e15, max_value=2e16) | st.floats(min_value=-2e16, max_value=-5e15)
    | st.floats(min_value=-1e-300, max_value=1e-300, allow_subnormal=True)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**60), 2**60).map(float)
    | st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-7, 1e-6, 1e21, 1e20, 9.007199254740993e15])
)


@settings(max_examples=3000, deadline=None)
@given(edge_floats)
def test_floats_around_the_edges_equal_rfc8785(x: float) -> None:
    assert canonical_json({"x": x, "y": [x, -x]}) == rfc8785.dumps({"x": x, "y": [x, -x]})


def test_fast_path_takes_exactly_the_proven_floats() -> None:
    from ledger.records import _fast_path_ok

    for x in (1e-4, -1e-4, 0.00010000000000000002, 4503599627370495.5, -4503599627370495.5, 0.5, -123.456):
        assert _fast_path_ok(x), x
    for x in (0.0, -0.0, 1.0, -5.0, 9.999999999999998e15, 1e16, -1e16, 9.999999999999999e-05, 5e-324, 1e21, 2.0**60):
        assert not _fast_path_ok(x), x


def test_float_boundaries_equal_rfc8785() -> None:
    for x in (1e-4, 0.00010000000000000002, 9.999999999999998e15, 1e16, 0.1, 0.41, 123.456, 5.0, -0.0, 1e21,
              2.5e-7, 1 / 3, 7.5, 9.999999999999999e-05, 5e-324, 2.2250738585072014e-308, 1e-7, 1e-6):
        assert canonical_json([x, -x]) == rfc8785.dumps([x, -x]), x


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(text, edge_floats | text | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), max_size=6),
       st.lists(st.fixed_dictionaries({"rel": st.sampled_from(["prompt", "principal"]),
                                       "id": st.integers(0, 10**6), "leaf": st.just("ab" * 32)}), max_size=3),
       st.booleans())
def test_leaf_bytes_equal_rfc8785_of_the_whole_leaf(extra: dict, links: list, sealed: bool) -> None:
    """The body's bytes from ``validate`` (fast path or kept RFC 8785 bytes) make the same leaf as
    RFC 8785 over the whole document."""
    from ledger.records import leaf_bytes, leaf_document, validate

    body = {**extra, "sha256": "ab" * 32, "media_type": "image/png", "size": 10, "storage_ref": "blob://1"}
    rec, fast = validate(good(body=body, subject="subj:1"))
    assert fast is True or fast == rfc8785.dumps(rec.body)
    doc = leaf_document(rec, ledger_time="2025-12-30T10:00:00.000000Z", links=links,
                        sealed={"text": "cd" * 32} if sealed else {})
    assert leaf_bytes(doc, fast) == rfc8785.dumps(doc)


def test_key_order_is_utf16_not_code_point() -> None:
    # U+1F600 (surrogate pair D83D DE00) sorts before U+FFFD in UTF-16 order, after it in code points.
    value = {"\ufffd": 1, "\U0001f600": 2}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("\U0001f600".encode()) < canonical_json(value).index("\ufffd".encode())


@pytest.mark.parametrize("raw,match", [
    (b'{"a": NaN}', "NaN"),
    (b'{"a": Infinity}', "Infinity"),
    (b'{"a": 1, "a": 2}', "duplicate"),
    (b'\xff\xfe{}', "UTF-8"),
    (b'{"a": ', "not valid JSON"),
])
def test_parse_json_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_json(raw)


def test_parse_json_size_limit() -> None:
    with pytest.raises(RecordTooLarge, match="limit"):
        parse_json(b'{"a": "' + b"x" * 2000 + b'"}', max_bytes=1024)


def test_canonical_rejects_unencodable() -> None:
    with pytest.raises(InvalidInput, match="surrogate"):
        canonical_json({"a": "\ud800"})
    with pytest.raises(InvalidInput, match="outside"):
        canonical_json({"a": 2**60})


def good(**over: object) -> dict:
    rec = {"kind": "artifact", "producer": "svc:test", "produced_at": "2025-12-30T10:00:00Z",
           "body": {"sha256": "ab" * 32, "media_type": "image/png", "size": 10, "storage_ref": "blob://1"}}
    rec.update(over)
    return rec


@pytest.mark.parametrize("rec,match", [
    (good(kind="selfie"), "unknown kind 'selfie'"),
    (good(producer=""), "producer"),
    (good(produced_at="yesterday"), "produced_at: must be an RFC 3339"),
    (good(produced_at="2025-02-30T10:00:00Z"), "produced_at: is not a valid date"),
    (good(body={"sha256": "xx", "media_type": "image/png", "size": 10, "storage_ref": "b"}), "body.sha256"),
    (good(body={"sha256": "ab" * 32, "media_type": "image/png", "size": "10", "storage_ref": "b"}), "body.size"),
    (good(body={"sha256": "ab" * 32, "media_type": "image/png", "storage_ref": "b"}), "body.size: Field required"),
    (good(schema=2), "schema version 2"),
    (good(extra_field=1), "extra_field"),
    (good(links=[{"rel": "x"}]), "exactly one of"),
    (good(links=[{"rel": "x", "id": "3"}]), "links.0.id"),
    ({**good(kind="prompt", body={"surface": "chat", "text": "hi"})}, "body.text: identifies a person"),
    ({**good(kind="prompt", body={"surface": "chat"})}, "sensitive.text: required"),
    ({**good(kind="prompt", body={"surface": "chat"}, sensitive={"text": "hi"})}, "subject: required"),
    (good(kind="erasure", subject="s", body={"reason": "r", "requested_by": "x"}), "only by the ledger"),
    (good(kind="legal_hold", subject="s", body={"action": "place", "case_id": "c1"}), "only by the ledger"),
    (good(body={"sha256": "ab" * 32, "media_type": "image/png", "size": 1, "storage_ref": "b", "x": float("nan")}), "NaN"),
    ([good()], "must be a JSON object"),
])
def test_validate_record_names_the_problem(rec: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        validate_record(rec)


def test_valid_record_passes_and_extra_body_fields_are_kept() -> None:
    rec = validate_record(good(body={"sha256": "ab" * 32, "media_type": "image/png", "size": 1,
                                     "storage_ref": "b", "width": 512}))
    assert rec.body["width"] == 512
    assert json.loads(canonical_json(rec.body))["width"] == 512


def test_ledger_kinds_still_validate_when_trusted() -> None:
    with pytest.raises(InvalidInput, match="subject: required"):
        validate_record(good(kind="legal_hold", body={"action": "place", "case_id": "c1"}), allow_ledger_kinds=True)
