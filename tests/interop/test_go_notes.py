"""Our signed notes, checkpoints and cosignatures against Go's golang.org/x/mod/sumdb/note.

Both directions: what we sign, Go's note.Open accepts (and rejects once tampered with); what
Go signs, our open_note accepts. Plus a differential run over mutated notes: every note we
accept, Go accepts too, so nobody can show a court a note "verified by Custody" that the
independent tool refuses.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoint import Checkpoint
from ledger.errors import CustodyError, FormatError, SignatureError
from ledger.keys import (
    EM_DASH,
    CosignatureVerifier,
    NoteSigner,
    NoteVerifier,
    cosign,
    load_signing_key,
    open_note,
    sign_note,
)

pytestmark = pytest.mark.go

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"


def _signer(name: str, seed: int) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


OLD = _signer("custody.example/ledger", 1)
NEW = _signer("custody.example/ledger", 2)
CP = Checkpoint("custody.example/ledger", 20852163, hashlib.sha256(b"root").digest())


def note_check(note: str, *vkeys: str, cosig_vkeys: tuple[str, ...] = ()) -> dict:
    return {"type": "note", "note": note, "vkeys": list(vkeys), "cosig_vkeys": list(cosig_vkeys)}


def test_our_notes_verify_in_go(gocheck) -> None:
    single = sign_note(CP.body(), [OLD])
    both = sign_note(CP.body(), [OLD, NEW])
    with_ext = sign_note(Checkpoint(CP.origin, 7, CP.root, ("ext one", "ext two")).body(), [NEW])
    blank_lines = sign_note("para one\n\npara two\n", [OLD])  # the spec allows empty text lines
    r = gocheck(
        [
            note_check(single, OLD.vkey),
            note_check(both, OLD.vkey),  # rotation: a reader who knows only the old key
            note_check(both, NEW.vkey),  # ... or only the new one
            note_check(both, OLD.vkey, NEW.vkey),
            note_check(with_ext, NEW.vkey),
            note_check(blank_lines, OLD.vkey),
        ]
    )
    assert all(x["ok"] for x in r), r
    assert r[0]["text"] == CP.body()
    assert r[0]["sigs"] == [{"name": OLD.name, "hash": OLD.key_id.hex()}]
    assert r[1]["unverified"] == 1 and r[2]["unverified"] == 1
    assert [s["hash"] for s in r[3]["sigs"]] == [OLD.key_id.hex(), NEW.key_id.hex()]
    assert r[4]["text"].endswith("ext one\next two\n")
    assert r[5]["text"] == "para one\n\npara two\n"


def test_tampered_notes_fail_in_go(gocheck) -> None:
    note = sign_note(CP.body(), [OLD, NEW])
    text, sigs = note.split("\n\n")
    line = sigs.splitlines()[0]
    prefix, b64 = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 1
    bad_sig = f"{text}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    r = gocheck(
        [
            note_check(note.replace("20852163", "20852164"), OLD.vkey),
            note_check(bad_sig, OLD.vkey),
            note_check(note, _signer("someone.else/log", 9).vkey),  # only unknown keys signed
            note_check(note.replace(EM_DASH, "-"), OLD.vkey),
        ]
    )
    assert [x["ok"] for x in r] == [False] * 4
    assert r[0]["error_type"] == "*note.InvalidSignatureError"
    assert r[1]["error_type"] == "*note.InvalidSignatureError"
    assert r[2]["error_type"] == "*note.UnverifiedNoteError"
    assert r[3]["error"] == "malformed note"


def test_go_signed_notes_verify_in_ours(gocheck, tmp_path) -> None:
    gen = gocheck([{"type": "generate", "name": "go.example/key"}])[0]
    assert gen["ok"], gen
    go_signer = NoteSigner.from_skey(gen["skey"])
    assert go_signer.vkey == gen["vkey"]  # same key ID and encoding from the same seed

    # A key file written in Go's format loads.
    (tmp_path / "go.key").write_text(gen["skey"] + "\n")
    assert load_signing_key(tmp_path / "go.key").vkey == gen["vkey"]

    r = gocheck(
        [
            {"type": "sign", "skey": PETER_SKEY, "text": TEXT},
            {"type": "sign", "skey": gen["skey"], "text": CP.body()},
            {"type": "sign", "skey": OLD.skey, "text": CP.body()},
        ]
    )
    assert all(x["ok"] for x in r), r
    opened = open_note(r[0]["note"], [NoteVerifier.from_vkey(PETER_VKEY)])
    assert opened.text == TEXT
    assert open_note(r[1]["note"], [NoteVerifier.from_vkey(gen["vkey"])]).text == CP.body()
    # Ed25519 is deterministic: Go and we produce byte-identical notes from the same key.
    assert r[0]["note"] == sign_note(TEXT, [NoteSigner.from_skey(PETER_SKEY)])
    assert r[1]["note"] == sign_note(CP.body(), [go_signer])
    assert r[2]["note"] == sign_note(CP.body(), [OLD])
    assert Checkpoint.parse(open_note(r[2]["note"], [OLD.verifier]).text) == CP


def test_many_signatures_agree(gocheck) -> None:
    witnesses = [_signer(f"witness{i}.example", 10 + i) for i in range(20)]
    note = sign_note(CP.body(), [OLD, *witnesses])
    some = [w.vkey for w in witnesses[::3]]
    too_many = CP.body() + "\n" + "".join(OLD.sign(CP.body()) for _ in range(101))
    r = gocheck([note_check(note, OLD.vkey), note_check(note, *some), note_check(too_many, OLD.vkey)])
    assert r[0]["ok"] and r[0]["unverified"] == 20
    assert r[1]["ok"] and len(r[1]["sigs"]) == len(some)
    assert not r[2]["ok"]
    assert open_note(note, [OLD.verifier]).unverified_count == 20
    with pytest.raises(FormatError):
        open_note(too_many, [OLD.verifier])


def test_cosignatures_verify_in_go(gocheck) -> None:
    witness_key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    line = cosign(CP.body(), witness_key, "witness.example/w1", 1679315147)
    note = sign_note(CP.body(), [OLD]) + line
    wv = CosignatureVerifier(
        "witness.example/w1", NoteSigner("witness.example/w1", witness_key).public_key
    )
    # Changing the timestamp inside the signature must break it.
    prefix, b64 = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[11] ^= 1
    bad = sign_note(CP.body(), [OLD]) + f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    r = gocheck(
        [
            note_check(note, OLD.vkey, cosig_vkeys=(wv.vkey,)),
            note_check(note, OLD.vkey),  # a reader who does not follow witnesses ignores the line
            note_check(bad, OLD.vkey, cosig_vkeys=(wv.vkey,)),
        ]
    )
    assert r[0]["ok"] and len(r[0]["sigs"]) == 2, r[0]
    assert r[1]["ok"] and r[1]["unverified"] == 1
    assert not r[2]["ok"] and r[2]["error_type"] == "*note.InvalidSignatureError"
    assert open_note(note, [OLD.verifier, wv]).verified == [
        (OLD.name, OLD.key_id.hex()),
        (wv.name, wv.key_id.hex()),
    ]
    with pytest.raises(SignatureError):
        open_note(bad, [OLD.verifier, wv])


def _mutations(note: str) -> list[str]:
    out = []
    for i in range(len(note)):
        for repl in ("", "A", "\n", " ", "+"):
            m = note[:i] + repl + note[i + 1 :]
            if m != note:
                out.append(m)
        out.append(note[:i] + note[i] + note[i:])  # duplicate a character
    return out


def test_we_accept_nothing_go_rejects(gocheck) -> None:
    """Differential check over every single-character mutation of a two-key checkpoint note.

    We are deliberately at least as strict as Go (canonical base64, every known signature
    checked), so the property is one-way: accepted by us ⇒ accepted by Go, with the same text.
    """
    note = sign_note(CP.body(), [OLD, NEW])
    cases = [note, *_mutations(note)]
    results = gocheck([note_check(c, OLD.vkey, NEW.vkey) for c in cases])
    accepted = 0
    for case, go in zip(cases, results):
        try:
            ours = open_note(case, [OLD.verifier, NEW.verifier])
        except CustodyError:
            continue
        accepted += 1
        assert go["ok"], f"we accept but Go rejects ({go.get('error')}): {case!r}"
        assert go["text"] == ours.text
        assert len(go["sigs"]) == len(ours.verified)
    assert accepted >= 1  # at least the unmutated note


def test_vkey_parsing_agrees_with_go(gocheck) -> None:
    """Every mangled vkey Go refuses, we refuse (and the valid ones give the same key ID)."""
    vkeys = [PETER_VKEY, OLD.vkey]
    b = PETER_VKEY
    vkeys += [b[i:j] for i in range(0, len(b), 7) for j in range(i + 1, len(b) + 1, 5)]
    vkeys += [b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :] for i in range(len(b))]
    vkeys += [PETER_VKEY.replace("c74f20a3", "C74F20A3"), "PeterNeumann+c74f20a3+" + "A" * 44]
    # An empty note makes Open fail after NewVerifier; only the vkey error matters here.
    results = gocheck([{"type": "note", "note": "x\n", "vkeys": [v]} for v in vkeys])
    for v, go in zip(vkeys, results):
        go_ok = "vkey" not in go.get("error", "")
        try:
            NoteVerifier.from_vkey(v)
            ours_ok = True
        except FormatError:
            ours_ok = False
        if ours_ok:
            assert go_ok, f"we accept vkey Go refuses: {v!r}"
        elif go_ok:
            # The one deliberate difference: we insist on the lowercase hex that Go writes.
            assert v == PETER_VKEY.replace("c74f20a3", "C74F20A3"), v
