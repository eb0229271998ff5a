"""C2SP tlog-checkpoint: the text body of a signed tree head.

A checkpoint body is::

    <origin>\\n
    <tree size>\\n          decimal, no leading zeros ("0" for the empty tree)
    <root hash>\\n          standard base64 of the 32-byte RFC 9162 root
    [<extension line>\\n]*  optional, each non-empty

This module only formats and parses that text. Signing it (as a signed note) lives in
``ledger.keys``; checking that the root matches a tree lives in ``ledger.merkle``.

Parsing is strict on purpose: a checkpoint is evidence, so there must be exactly one byte
string for each (origin, size, root, extensions). ``Checkpoint.parse(cp.body()) == cp`` and
``Checkpoint.parse(text).body() == text`` for every text that parses.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ledger.errors import FormatError

__all__ = ["Checkpoint", "HASH_SIZE", "MAX_CHECKPOINT_BYTES"]

HASH_SIZE = 32

#: A checkpoint is three short lines plus a few extensions. Anything much larger is not one,
#: and refusing it early keeps a hostile input from costing us more than a quick length check.
MAX_CHECKPOINT_BYTES = 64 * 1024

#: Decimal with no sign and no leading zeros, except the single digit "0". ``str.isdigit`` is
#: not enough: it accepts non-ASCII digits such as "٣".
_SIZE_RE = re.compile(r"(?:0|[1-9][0-9]*)\Z")

#: Tree sizes are uint64 everywhere else (tlog-tiles, cosignatures, Go's int64).
_MAX_SIZE = 2**63 - 1


def _bad_char(s: str) -> str | None:
    """Return a description of the first character a checkpoint line may not hold, if any.

    Signed notes must not contain ASCII control characters other than newline; inside one
    line a newline is also forbidden. We also refuse DEL and the C1 controls: they are never
    legitimate in a log name and only serve to confuse a person reading the checkpoint.
    """
    for ch in s:
        if ch == "\n":
            return "a newline"
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            return f"control character U+{ord(ch):04X}"
        if 0xD800 <= ord(ch) <= 0xDFFF:
            return f"lone surrogate U+{ord(ch):04X}"
    return None


def _check_origin(origin: str) -> None:
    if not isinstance(origin, str):
        raise FormatError(f"checkpoint origin must be a str, not {type(origin).__name__}")
    if origin == "":
        raise FormatError("checkpoint origin (line 1) is empty")
    bad = _bad_char(origin)
    if bad:
        raise FormatError(f"checkpoint origin (line 1) contains {bad}")
    if any(ch.isspace() for ch in origin):
        raise FormatError(f"checkpoint origin (line 1) contains whitespace: {origin!r}")


def _check_extension(i: int, ext: str) -> None:
    where = f"checkpoint extension line {i + 1} (line {i + 4})"
    if not isinstance(ext, str):
        raise FormatError(f"{where} must be a str, not {type(ext).__name__}")
    if ext == "":
        raise FormatError(f"{where} is empty; extension lines must be non-empty")
    bad = _bad_char(ext)
    if bad:
        raise FormatError(f"{where} contains {bad}")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: ``origin`` (the log's unique name), ``size`` leaves, ``root`` hash.

    The constructor validates, so every ``Checkpoint`` formats to a body that parses back.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_origin(self.origin)
        # bool is an int subclass; True as a tree size is a bug, not a size of 1.
        if not isinstance(self.size, int) or isinstance(self.size, bool):
            raise FormatError(f"checkpoint size must be an int, not {type(self.size).__name__}")
        if not 0 <= self.size <= _MAX_SIZE:
            raise FormatError(f"checkpoint size {self.size} is out of range 0..2^63-1")
        if not isinstance(self.root, (bytes, bytearray, memoryview)):
            raise FormatError(f"checkpoint root must be bytes, not {type(self.root).__name__}")
        if len(self.root) != HASH_SIZE:
            raise FormatError(f"checkpoint root must be {HASH_SIZE} bytes, got {len(self.root)}")
        if not isinstance(self.root, bytes):
            object.__setattr__(self, "root", bytes(self.root))
        if isinstance(self.extensions, (str, bytes)) or not isinstance(self.extensions, (tuple, list)):
            raise FormatError("checkpoint extensions must be a tuple of str")
        if isinstance(self.extensions, list):
            object.__setattr__(self, "extensions", tuple(self.extensions))
        for i, ext in enumerate(self.extensions):
            _check_extension(i, ext)

    def body(self) -> str:
        """The checkpoint text (the note text that gets signed), ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        lines.extend(self.extensions)
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (note text, without the blank line and signatures).

        Raises ``FormatError`` naming the first thing that is wrong.
        """
        if isinstance(text, (bytes, bytearray)):
            raise FormatError("checkpoint text must be str; decode it as UTF-8 first")
        if not isinstance(text, str):
            raise FormatError(f"checkpoint text must be str, not {type(text).__name__}")
        if len(text) > MAX_CHECKPOINT_BYTES:
            raise FormatError(f"checkpoint text is {len(text)} characters; limit is {MAX_CHECKPOINT_BYTES}")
        if text == "":
            raise FormatError("checkpoint text is empty")
        if not text.endswith("\n"):
            raise FormatError("checkpoint text must end with a newline")
        if "\r" in text:
            raise FormatError("checkpoint text contains a carriage return (CRLF line endings?)")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(
                f"checkpoint text has {len(lines)} line(s); need origin, tree size and root hash"
            )
        origin, size_s, root_s, *extensions = lines

        _check_origin(origin)

        if not _SIZE_RE.match(size_s):
            if size_s == "":
                raise FormatError("checkpoint tree size (line 2) is empty")
            if size_s[0] in "+-":
                raise FormatError(f"checkpoint tree size (line 2) has a sign: {size_s!r}")
            if size_s.isascii() and size_s.isdigit():
                raise FormatError(f"checkpoint tree size (line 2) has leading zeros: {size_s!r}")
            raise FormatError(f"checkpoint tree size (line 2) is not a decimal number: {size_s!r}")
        if len(size_s) > 19:  # cheap guard before int(); 2^63-1 has 19 digits
            raise FormatError(f"checkpoint tree size (line 2) is too large: {size_s}")
        size = int(size_s)

        root = _decode_root(root_s)
        for i, ext in enumerate(extensions):
            _check_extension(i, ext)
        return cls(origin=origin, size=size, root=root, extensions=tuple(extensions))


def _decode_root(root_s: str) -> bytes:
    """Decode line 3: standard base64 (RFC 4648 §4, with padding) of exactly 32 bytes.

    ``base64.b64decode(validate=True)`` still accepts non-canonical encodings whose unused
    trailing bits are not zero, so we re-encode and compare: one root, one spelling.
    """
    if root_s == "":
        raise FormatError("checkpoint root hash (line 3) is empty")
    if not root_s.isascii():
        raise FormatError("checkpoint root hash (line 3) is not base64 (non-ASCII characters)")
    try:
        root = base64.b64decode(root_s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"checkpoint root hash (line 3) is not standard base64: {root_s!r}") from exc
    if len(root) != HASH_SIZE:
        raise FormatError(f"checkpoint root hash (line 3) decodes to {len(root)} bytes; need {HASH_SIZE}")
    if base64.b64encode(root).decode("ascii") != root_s:
        raise FormatError(f"checkpoint root hash (line 3) is not canonical base64: {root_s!r}")
    return root
