"""ledger.checkpoint: C2SP tlog-checkpoint text, formatted and parsed strictly."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoint import Checkpoint
from ledger.errors import FormatError, InvalidInput

# The example in c2sp.org/tlog-checkpoint.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
ROOT = hashlib.sha256(b"x").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()
URLSAFE_B64 = base64.urlsafe_b64encode(bytes([0xFB]) * 32).decode()  # has '-' and '_'


def test_spec_example_parses_and_round_trips() -> None:
    cp = Checkpoint.parse(SPEC_BODY)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.body() == SPEC_BODY


def test_body_format() -> None:
    cp = Checkpoint("custody.example/ledger", 0, hashlib.sha256(b"").digest())
    assert cp.body() == "custody.example/ledger\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    ext = Checkpoint("o", 12, ROOT, ("first ext", "— second"))
    assert ext.body() == f"o\n12\n{ROOT_B64}\nfirst ext\n— second\n"
    assert Checkpoint.parse(ext.body()) == ext


def test_list_extensions_become_a_tuple() -> None:
    cp = Checkpoint("o", 1, ROOT, ["a"])  # type: ignore[arg-type]
    assert cp.extensions == ("a",)
    assert hash(cp) == hash(Checkpoint("o", 1, ROOT, ("a",)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("o\n1\n" + ROOT_B64, "end with a newline"),
        ("o\n1\n", "2 line(s)"),
        ("o\n", "1 line(s)"),
        (f"\n1\n{ROOT_B64}\n", "origin (line 1) is empty"),
        (f"my log\n1\n{ROOT_B64}\n", "whitespace"),
        (f"my\u00a0log\n1\n{ROOT_B64}\n", "whitespace"),
        (f"o\tx\n1\n{ROOT_B64}\n", "control character U+0009"),
        (f"o\r\n1\r\n{ROOT_B64}\r\n", "carriage return"),
        (f"o\n\n{ROOT_B64}\n", "tree size (line 2) is empty"),
        (f"o\n01\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n00\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n+1\n{ROOT_B64}\n", "sign"),
        (f"o\n-1\n{ROOT_B64}\n", "sign"),
        (f"o\n 1\n{ROOT_B64}\n", "not a decimal"),
        (f"o\n1 \n{ROOT_B64}\n", "not a decimal"),
        (f"o\n0x10\n{ROOT_B64}\n", "not a decimal"),
        (f"o\n1_000\n{ROOT_B64}\n", "not a decimal"),
        (f"o\n\u0663\n{ROOT_B64}\n", "not a decimal"),  # ARABIC-INDIC DIGIT THREE
        (f"o\n{2**63}\n{ROOT_B64}\n", "out of range"),
        (f"o\n{10**30}\n{ROOT_B64}\n", "too large"),
        ("o\n1\n\n", "root hash (line 3) is empty"),
        ("o\n1\nnot base64!\n", "not standard base64"),
        (f"o\n1\n{ROOT_B64.rstrip('=')}\n", "not standard base64"),  # missing padding
        (f"o\n1\n{URLSAFE_B64}\n", "not standard base64"),
        (f"o\n1\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"o\n1\n{base64.b64encode(ROOT + b'!').decode()}\n", "33 bytes"),
        (f"o\n1\n{ROOT_B64[:-2]}B=\n", "not canonical"),  # non-zero unused trailing bits
        (f"o\n1\n{ROOT_B64}\n\n", "extension line 1 (line 4) is empty"),
        (f"o\n1\n{ROOT_B64}\next\n\n", "extension line 2 (line 5) is empty"),
        (f"o\n1\n{ROOT_B64}\nbad\x00ext\n", "control character U+0000"),
        (f"o\n1\n{ROOT_B64}\u00e9\n", "non-ASCII"),
    ],
)
def test_malformed_text_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        Checkpoint.parse(text)


def test_parse_refuses_bytes_and_huge_input() -> None:
    with pytest.raises(FormatError, match="decode it"):
        Checkpoint.parse(SPEC_BODY.encode())  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="limit"):
        Checkpoint.parse("o\n1\n" + ROOT_B64 + "\n" + "x" * 100_000 + "\n")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": ""}, "empty"),
        ({"origin": "a b"}, "whitespace"),
        ({"origin": "a\nb"}, "newline"),
        ({"size": -1}, "out of range"),
        ({"size": True}, "must be an int"),
        ({"size": "1"}, "must be an int"),
        ({"root": b"\x00" * 31}, "32 bytes"),
        ({"root": ROOT_B64}, "must be bytes"),
        ({"extensions": ("",)}, "non-empty"),
        ({"extensions": ("a\nb",)}, "newline"),
        ({"extensions": "abc"}, "tuple of str"),
    ],
)
def test_constructor_validates(kwargs: dict, message: str) -> None:
    args = {"origin": "o", "size": 1, "root": ROOT} | kwargs
    with pytest.raises(FormatError, match=re.escape(message)):
        Checkpoint(**args)


def test_format_error_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        Checkpoint.parse("nope")


_line_chars = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x85")
origins = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="\x85"),
    min_size=1,
    max_size=40,
).filter(lambda s: not any(c.isspace() for c in s))


@given(
    origin=origins,
    size=st.integers(min_value=0, max_value=2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(_line_chars, min_size=1, max_size=30), max_size=3),
)
def test_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    body = cp.body()
    assert body.endswith("\n")
    assert Checkpoint.parse(body) == cp
    assert Checkpoint.parse(body).body() == body
