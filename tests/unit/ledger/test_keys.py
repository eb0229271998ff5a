"""ledger.keys: Ed25519 signed notes, key files and cosignatures, against published vectors.

Vectors: the C2SP signed-note example (tests/vectors/rfc6962-vectors.json) and the keys and
signatures of golang.org/x/mod/sumdb/note's note.go doc and note_test.go.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoint import Checkpoint
from ledger.errors import Conflict, FormatError, InvalidInput, SignatureError
from ledger.keys import (
    EM_DASH,
    MAX_SIGNATURES,
    CosignatureVerifier,
    NoteSigner,
    NoteVerifier,
    cosign,
    cosignature_timestamp,
    file_is_private,
    generate_signing_key,
    key_id,
    load_signing_key,
    open_note,
    sign_note,
    verify_cosignature,
)

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "rfc6962-vectors.json").read_text())
SPEC = VECTORS["signed_note_example"]
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = SPEC["text"] + "\n" + SPEC["sigline"] + "\n"

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    f"{EM_DASH} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    f"{EM_DASH} EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)

PETER = NoteVerifier.from_vkey(PETER_VKEY)
ENOCH = NoteVerifier.from_vkey(ENOCH_VKEY)


def signer(name: str, seed: int) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


OLD = signer("custody.example/ledger", 1)
NEW = signer("custody.example/ledger", 2)
BODY = Checkpoint("custody.example/ledger", 42, hashlib.sha256(b"r").digest()).body()


# --------------------------------------------------------------------------- published vectors


def test_spec_vkey_and_key_id() -> None:
    v = NoteVerifier.from_vkey(SPEC_VKEY)
    assert v.name == "example.com/foo"
    assert v.key_id == bytes.fromhex("530d903a")
    assert key_id(v.name, v.public_key) == v.key_id
    assert v.vkey == SPEC_VKEY == SPEC["vkey"]


def test_spec_note_verifies() -> None:
    opened = open_note(SPEC_NOTE, [NoteVerifier.from_vkey(SPEC_VKEY)])
    assert opened.text == "This is an example message.\n"
    assert opened.verified == [("example.com/foo", "530d903a")]
    assert opened.unverified_count == 0
    assert open_note(SPEC_NOTE.encode(), [NoteVerifier.from_vkey(SPEC_VKEY)]) == opened


def test_go_signer_key_reproduces_go_signature() -> None:
    s = NoteSigner.from_skey(PETER_SKEY)
    assert s.name == "PeterNeumann"
    assert s.vkey == PETER_VKEY
    assert s.key_id.hex() == "c74f20a3"
    assert len(s.public_key) == 32
    assert s.skey == PETER_SKEY
    assert s.sign(TEXT) == PETER_SIG
    assert sign_note(TEXT, [s]) == TEXT + "\n" + PETER_SIG


def test_go_open_vectors() -> None:
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    one = open_note(both, [PETER])
    assert one.text == TEXT
    assert one.verified == [("PeterNeumann", "c74f20a3")] and one.unverified_count == 1
    two = open_note(both, [PETER, ENOCH])
    assert two.verified == [("PeterNeumann", "c74f20a3"), ("EnochRoot", "af0cfe78")]
    assert two.unverified_count == 0
    with pytest.raises(SignatureError, match="no trusted key"):
        open_note(both, [])
    # Go's "invalid signature" vector: four characters spliced into Peter's signature.
    with pytest.raises(SignatureError, match="PeterNeumann\\+c74f20a3"):
        open_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [PETER])


# --------------------------------------------------------------------------- tampering and rotation


def test_tampered_text_fails() -> None:
    note = sign_note(BODY, [OLD])
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(note.replace("\n42\n", "\n43\n"), [OLD.verifier])


def test_tampered_signature_fails() -> None:
    note = sign_note(BODY, [OLD])
    text, line = note.split("\n\n")
    prefix, b64 = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x80
    with pytest.raises(SignatureError):
        open_note(f"{text}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n", [OLD.verifier])


def test_tampered_key_id_makes_the_line_unknown() -> None:
    note = sign_note(BODY, [OLD])
    text, line = note.split("\n\n")
    prefix, b64 = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    with pytest.raises(SignatureError, match="no trusted key"):
        open_note(f"{text}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n", [OLD.verifier])
    # A different name with the same key ID is also just unknown.
    with pytest.raises(SignatureError, match="no trusted key"):
        open_note(note.replace("— custody.example/ledger", "— custody.example/other"), [OLD.verifier])


def test_rotation() -> None:
    note = sign_note(BODY, [OLD, NEW])
    assert open_note(note, [OLD.verifier]).verified == [(OLD.name, OLD.key_id.hex())]
    assert open_note(note, [OLD.verifier]).unverified_count == 1
    assert open_note(note, [NEW.verifier]).verified == [(NEW.name, NEW.key_id.hex())]
    assert len(open_note(note, [NEW.verifier, OLD.verifier]).verified) == 2
    stranger = signer("someone.else/log", 3)
    with pytest.raises(SignatureError, match="2 signature\\(s\\) from unknown keys"):
        open_note(note, [stranger.verifier])
    # After rotation a note signed only by the new key is refused by an old-key-only reader.
    with pytest.raises(SignatureError):
        open_note(sign_note(BODY, [NEW]), [OLD.verifier])


def test_a_bad_signature_from_a_known_key_rejects_even_if_another_verifies() -> None:
    good = sign_note(BODY, [OLD, NEW])
    forged_new = NEW.sign(BODY.replace("42", "43"))
    note = good.replace(NEW.sign(BODY), forged_new)
    with pytest.raises(SignatureError, match=NEW.key_id.hex()):
        open_note(note, [OLD.verifier, NEW.verifier])
    assert open_note(note, [OLD.verifier]).unverified_count == 1  # unknown keys are not checked


def test_repeated_known_signature_lines_are_all_checked() -> None:
    line = OLD.sign(BODY)
    assert open_note(BODY + "\n" + line + line, [OLD.verifier]).verified == [(OLD.name, OLD.key_id.hex())]
    bad = OLD.sign(BODY.replace("42", "43"))
    with pytest.raises(SignatureError):  # Go would skip the second (bad) copy; we do not
        open_note(BODY + "\n" + line + bad, [OLD.verifier])


def test_signature_counts() -> None:
    witnesses = [signer(f"w{i}.example", 10 + i) for i in range(16)]
    note = sign_note(BODY, [OLD, *witnesses])
    opened = open_note(note, [OLD.verifier, *(w.verifier for w in witnesses)])
    assert len(opened.verified) == 17
    line = OLD.sign(BODY)
    assert open_note(BODY + "\n" + line * MAX_SIGNATURES, [OLD.verifier]).verified
    with pytest.raises(FormatError, match="101 signature lines"):
        open_note(BODY + "\n" + line * (MAX_SIGNATURES + 1), [OLD.verifier])
    with pytest.raises(InvalidInput, match="at most"):
        sign_note(BODY, [signer(f"x{i}", i) for i in range(MAX_SIGNATURES + 1)])


def test_text_may_contain_blank_lines() -> None:
    text = "first\n\nsecond\n"
    opened = open_note(sign_note(text, [OLD]), [OLD.verifier])
    assert opened.text == text


class _Impostor:
    """A verifier that claims OLD's name and key ID but holds another key (a hash collision)."""

    name, key_id, vkey = OLD.name, OLD.key_id, NEW.vkey

    def verify(self, text: bytes | str, sig: bytes) -> bool:
        return NEW.verifier.verify(text, sig)


def test_ambiguous_verifiers_are_refused() -> None:
    with pytest.raises(InvalidInput, match="share the name and key ID"):
        open_note(sign_note(BODY, [OLD]), [OLD.verifier, _Impostor()])
    # The same key twice is harmless.
    assert open_note(sign_note(BODY, [OLD]), [OLD.verifier, OLD.verifier]).verified


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (TEXT, "no blank line"),
        (TEXT + "\n", "no signature lines"),
        (TEXT + "\n" + PETER_SIG[:-1], "does not end with a newline"),
        ("\x01" + TEXT + "\n" + PETER_SIG, "control character U+0001"),
        (TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG, "control character U+000D"),
        # Go's "Bad Name" vector: the name ends at the first space, the rest is not base64.
        (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), "from 'Bad' is not standard base64"),
        (TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "does not start with an em dash"),
        (TEXT + "\n" + PETER_SIG.replace(EM_DASH, "-"), "does not start with an em dash"),
        (TEXT + "\n" + PETER_SIG.replace(f"{EM_DASH} ", EM_DASH), "does not start with an em dash"),
        (TEXT + "\n" + f"{EM_DASH} PeterNeumann\n", "no space between"),
        (TEXT + "\n" + f"{EM_DASH}  x08go/ZJku=\n", "key name is empty"),
        (TEXT + "\n" + f"{EM_DASH} Peter+Neumann AAAAAAAA\n", "contains '+'"),
        (TEXT + "\n" + f"{EM_DASH} PeterNeumann not*base64\n", "not standard base64"),
        (TEXT + "\n" + f"{EM_DASH} PeterNeumann AAAAAA==\n", "4-byte key ID"),
        (TEXT + "\n" + f"{EM_DASH} PeterNeumann AAAAAAB=\n", "not canonical"),
        (TEXT + "\n" + PETER_SIG.replace("=\n", "\n"), "not standard base64"),
    ],
)
def test_malformed_notes(note: str, message: str) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        open_note(note, [PETER])


def test_malformed_bytes() -> None:
    with pytest.raises(FormatError, match="not valid UTF-8"):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [PETER])
    with pytest.raises(FormatError, match="str or bytes"):
        open_note(12, [PETER])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "end with a newline"),
        ("", "end with a newline"),
        ("tab\there\n", "control character U+0009"),
        ("cr\r\n", "control character U+000D"),
        ("surrogate \ud800\n", "lone surrogate"),
    ],
)
def test_unsignable_text(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        sign_note(text, [OLD])


def test_sign_note_needs_distinct_signers() -> None:
    with pytest.raises(InvalidInput, match="at least one"):
        sign_note(BODY, [])
    with pytest.raises(InvalidInput, match="listed twice"):
        sign_note(BODY, [OLD, OLD])


def _vkey_with_id(name: str, material: bytes) -> str:
    """A vkey whose key ID is right for ``material``, so only the material itself is wrong."""
    kid = hashlib.sha256(name.encode() + b"\n" + material).digest()[:4]
    return f"{name}+{kid.hex()}+{base64.b64encode(material).decode()}"


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a3", "3 '+'-separated fields"),
        ("PeterNeumann", "3 '+'-separated fields"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "name is empty"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "whitespace"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
        ("PeterNeumann+c74f20g3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "not standard base64"),
        ("PeterNeumann+c74f20a3+", "not base64"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match the key"),
        # Go's test vectors: wrong length and unknown algorithm, each with an adjusted key hash.
        # (Go's wrong-length one is not even canonical base64, so that is what we report.)
        ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "not canonical"),
        (_vkey_with_id("PeterNeumann", b"\x01" + b"\x11" * 31), "1+32 bytes"),
        (_vkey_with_id("PeterNeumann", b"\x01" + b"\x11" * 33), "1+32 bytes"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "signature type 0x65"),
        (PETER_SKEY, "PRIVATE signing key"),
    ],
)
def test_malformed_vkeys(vkey: str, message: str) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        NoteVerifier.from_vkey(vkey)


def test_every_mangled_vkey_and_skey_is_refused() -> None:
    """Go's note_test.go: every proper substring and every single-byte increment must fail."""
    for good, parse in ((PETER_VKEY, NoteVerifier.from_vkey), (PETER_SKEY, NoteSigner.from_skey)):
        b = good
        mangled = {b[i:j] for i in range(len(b) + 1) for j in range(i + 1, len(b) + 1)} - {b}
        mangled |= {b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :] for i in range(len(b))}
        for m in mangled:
            with pytest.raises(FormatError):
                parse(m)


def test_vkey_round_trip_and_base64_with_plus() -> None:
    # transparency-dev/formats: a valid vkey whose base64 contains '+'.
    plus = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    assert NoteVerifier.from_vkey(plus).vkey == plus
    assert NoteVerifier.from_vkey(PETER_VKEY) == PETER
    assert OLD.verifier.vkey == OLD.vkey


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "empty"), ("a b", "whitespace"), ("a+b", "'+'"), ("a\u2003b", "whitespace"), ("a\x7fb", "U+007F")],
)
def test_bad_key_names(name: str, message: str) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        NoteSigner.generate(name)


def test_signer_repr_hides_the_secret() -> None:
    assert "PRIVATE" not in repr(OLD) and OLD.vkey in repr(OLD)


# --------------------------------------------------------------------------- key files


def test_generate_and_load_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "ledger.key"
    s = generate_signing_key(path, "custody.example/ledger")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert file_is_private(path)
    assert path.read_text() == s.skey + "\n"
    assert path.read_text().startswith("PRIVATE+KEY+custody.example/ledger+")
    loaded = load_signing_key(path)
    assert loaded.vkey == s.vkey
    assert open_note(sign_note(BODY, [loaded]), [s.verifier]).text == BODY
    assert [p.name for p in path.parent.iterdir()] == ["ledger.key"]  # no temporary left behind


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    first = generate_signing_key(path, "a.example")
    with pytest.raises(Conflict, match="already exists; refusing to overwrite"):
        generate_signing_key(path, "a.example")
    assert load_signing_key(path).vkey == first.vkey
    link = tmp_path / "dangling.key"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(Conflict):
        generate_signing_key(link, "a.example")
    assert not (tmp_path / "nowhere").exists()


def test_generate_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        generate_signing_key(tmp_path / "k", "a.example")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_load_go_key_file_and_warn_if_not_private(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "peter.key"
    path.write_text(PETER_SKEY)  # without a trailing newline also loads
    path.chmod(0o644)
    assert not file_is_private(path)
    with caplog.at_level(logging.WARNING, logger="ledger.keys"):
        assert load_signing_key(path).vkey == PETER_VKEY
    assert "readable by group or others" in caplog.text
    assert PETER_SKEY not in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "must start with 'PRIVATE+KEY+'"),
        (PETER_VKEY.encode(), "must start with 'PRIVATE+KEY+'"),
        (PETER_SKEY.encode() + b"\n\n", "not standard base64"),
        (PETER_SKEY.encode() + b" ", "not standard base64"),
        (PETER_SKEY.replace("c74f20a3", "c74f20a4").encode(), "does not match the key"),
        (PETER_SKEY.replace("+AYEK", "+AoEK").encode(), "algorithm 0x02"),
        ("PRIVATE+KEY+Péter+c74f20a3+AAAA".encode(), "not ASCII"),
        (b"PRIVATE+KEY+" + b"A" * 5000, "too large"),
    ],
)
def test_load_malformed_key_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=re.escape(message)) as err:
        load_signing_key(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- witness cosignatures


WITNESS_KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
WITNESS = CosignatureVerifier("witness.example/w1", NoteSigner("witness.example/w1", WITNESS_KEY).public_key)


def test_cosignature_round_trip() -> None:
    line = cosign(BODY, WITNESS_KEY, "witness.example/w1", 1679315147)
    assert line.startswith(f"{EM_DASH} witness.example/w1 ")
    raw = base64.b64decode(line.rsplit(" ", 1)[1])
    assert raw[:4] == WITNESS.key_id == key_id("witness.example/w1", WITNESS.public_key, 0x04)
    assert raw[4:12] == (1679315147).to_bytes(8, "big") and len(raw) == 4 + 8 + 64
    assert verify_cosignature(BODY, line, WITNESS) == 1679315147
    assert cosignature_timestamp(line) == 1679315147
    note = sign_note(BODY, [OLD]) + line
    assert open_note(note, [OLD.verifier, WITNESS]).verified[1] == (WITNESS.name, WITNESS.key_id.hex())
    # The same key as a plain note key has another ID (type 0x01): the line is unknown to it.
    as_note_key = NoteVerifier(WITNESS.name, WITNESS.public_key)
    assert as_note_key.key_id != WITNESS.key_id
    assert open_note(note, [OLD.verifier, as_note_key]).unverified_count == 1
    assert CosignatureVerifier.from_vkey(WITNESS.vkey).vkey == WITNESS.vkey
    with pytest.raises(FormatError, match="signature type 0x01"):
        CosignatureVerifier.from_vkey(OLD.vkey)
    with pytest.raises(FormatError, match="signature type 0x04"):
        NoteVerifier.from_vkey(WITNESS.vkey)


def test_cosignature_tampering() -> None:
    line = cosign(BODY, WITNESS_KEY, "witness.example/w1", 1000)
    with pytest.raises(SignatureError):
        verify_cosignature(BODY.replace("42", "43"), line, WITNESS)
    prefix, b64 = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[11] ^= 1  # the timestamp is signed too
    with pytest.raises(SignatureError):
        verify_cosignature(BODY, f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n", WITNESS)
    with pytest.raises(FormatError, match="not witness.example/w1"):
        verify_cosignature(BODY, OLD.sign(BODY), WITNESS)
    with pytest.raises(FormatError):
        cosign("not a checkpoint\n", WITNESS_KEY, "witness.example/w1", 1)
    with pytest.raises(FormatError, match="2\\^63-1"):
        cosign(BODY, WITNESS_KEY, "witness.example/w1", -1)


def test_cosignature_spec_example_timestamp() -> None:
    # c2sp.org/tlog-cosignature's example line; its body says "time 1679315147".
    line = (
        f"{EM_DASH} witness.example.com/w1 "
        "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
        "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
    )
    assert cosignature_timestamp(line) == 1679315147
    # transparency-dev/formats' CoSigV1Timestamp vector.
    tdev = (
        f"{EM_DASH} w "
        "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODB"
        "t97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
    )
    assert cosignature_timestamp(tdev) == 1727964367
    with pytest.raises(FormatError, match="8\\+64 bytes"):
        cosignature_timestamp(PETER_SIG)


# --- a rotation made by another process ---------------------------------------------------------------

def test_a_running_process_signs_with_the_key_another_process_rotated_to(tmp_path: Path) -> None:
    """The API server holds a Keyring for hours; `custody keys --rotate` runs in another process."""
    from ledger.keyring import Keyring

    server = Keyring.create(tmp_path / "k", "custody.test/log")
    old = server.signer().vkey
    cli = Keyring(tmp_path / "k")
    new = cli.rotate()
    assert new.vkey != old
    assert server.active.vkey == new.vkey and [v.vkey for v in server.verifiers] == [old, new.vkey]
    assert server.signer().vkey == new.vkey  # never the retired key still in memory


def test_a_rewritten_verifier_list_is_refused_not_followed(tmp_path: Path) -> None:
    from ledger.keyring import VERIFIERS, Keyring

    server = Keyring.create(tmp_path / "k", "custody.test/log")
    server.signer()
    other = Keyring.create(tmp_path / "evil", "custody.test/log")
    (tmp_path / "k" / VERIFIERS).write_text(other.active.vkey + "\n" + other.active.vkey + "\n")
    with pytest.raises(FormatError, match="only ever added"):
        server.signer()
