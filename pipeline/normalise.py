"""Text normalisation for the prompt-safety layer, and the term compiler that mirrors it.

Two views of every prompt are produced, both pure functions of the input (no locale, no clock):

``canonical``
    NFKC; format (Cf), control, surrogate, private-use and unassigned characters removed; stray
    combining marks removed (strike-through, "zalgo"); case folded; each word folded to ASCII —
    homoglyphs in mixed-script or look-alike words mapped to the Latin letter they imitate
    (``confusable-homoglyphs`` data), every other non-ASCII character transliterated (``anyascii``);
    whitespace collapsed. Digits and punctuation are kept: numeric rules (ages) match here.
``folded``
    ``canonical`` plus: letters spaced or punctuated apart joined ("u n d r e s s", "u.n.d.r.e.s.s"),
    leetspeak undone inside words that contain a letter (0→o 1→i 3→e 4→a 5→s 7→t 8→b 9→g @→a
    $→s !→i |→l +→t; not a leading "!", a bot command as in "!undress", nor a school year such as
    "class5", "4e" or "7b"), punctuation inside words removed ("un-dress"), runs of three or more
    equal characters cut to two ("nuuuude" → "nuude"). Keyword rules match here.

Both views read encoded runs too (:func:`decode_embedded`: base64, hex, percent-encoding, and rot13 or
reversed text when the prompt names them): their readable decodings are appended to the text.

Terms in a policy are compiled by :func:`compile_term` into regular expressions that accept
what this normaliser leaves behind: each letter run may repeat (``n++u++d++e++``), ``i`` and ``l``
are one class (a leet ``1`` may have meant either), words may be joined or separated by one space.
Every quantifier is possessive and adjacent atoms never share a class, so matching is linear in
the text: no catastrophic backtracking whatever the user sends.

Bump ``NORMALISER_VERSION`` whenever an output of :func:`normalise` can change.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata, resources
from urllib.parse import unquote, unquote_plus

from anyascii import anyascii

# 2: structured prompts also read as words (folded_alt); 3: encoded text decoded, "class5" kept;
# 4: "4e" / "7b" kept, a contraction ("she's 1 3") starts no run of spaced letters, URLs decoded one by one;
# 5: leetspeak judged per comma- or semicolon-separated part ("Year 8,remove_clothing" kept "8");
# 6: a hyphen inside a word also separates words on the alternative view ("Oben-ohne-Version", "tira-lhe")
NORMALISER_VERSION = "6"

_DROP_CATEGORIES = frozenset({"Cf", "Cs", "Co", "Cn", "Mn", "Me"})
_WS = re.compile(r"\s+")
_WS_KEEP = re.compile(r"(\s+)")
_INSERTION_SYMBOLS = re.compile(r"(?<=[a-z0-9])[|!]+(?=[a-z0-9])")
# structured prompts (JSON, YAML, tool calls: '{"mask":"clothing","fill":"skin"}', "garment_removal") read
# as words on the alternative view; the folded view joins punctuation inside words, which would glue them
_STRUCTURED = re.compile(r'[{\[]\s*"|"\s*:|(?<=[a-z])_(?=[a-z])')
_YAML_LINE = re.compile(r"(?im)^[ \t]*-?[ \t]*[a-z][a-z0-9_]*[ \t]*:[ \t]+\S")  # two or more: a YAML prompt
_STRUCTURE_CHARS = re.compile(r'[{}\[\]":=_]')
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
                       "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_LEET_CHARS = frozenset("01345789@$!|+")
_GLYPH_TOKEN = re.compile(r"[a-z0-9@$!|+]+")
_TOKEN_EDGE_LEAD = "(\"'[{<*_~`"
_TOKEN_EDGE_TRAIL = ".,!?;:)\"'}]>*_~`"
# holdout-19: the folded view joins hyphenated words, which hides a compound's parts from the rules ("oben-ohne-
# version" → "obenohneversion", "FKK-Edition", Portuguese clitics "tira-lhe o biquíni" → "tiralhe"); the alternative
# view reads each part as a word. The folded view keeps joining them ("n-u-d-e", "see-through" stay whole words).
# A negating prefix keeps its hyphen ("non-explicit" is not "explicit").
_INWORD_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")
_HYPHEN_PART = re.compile(r"([a-z]+)-(?=[a-z])")
_NEGATING_PREFIX = frozenset({"non", "no", "not", "anti", "un", "sin", "sans", "nicht", "nao", "kein"})
_INWORD_PUNCT = re.compile(r"(?<=[a-z])[.\-_*'`~^\u00b7\u2022/\\]+(?=[a-z])")
_REPEATS = re.compile(r"(.)\1{2,}")
# a school year glued to its number ("class5_school_photo.jpg"), a French school year ("4e") or a German class ("7b")
# is an age cue, not leetspeak for "classs", "ae" or "tb"
_SCHOOL_YEAR = re.compile(r"(?:class|grade|klasse|classe|year|form|grado|serie|ano)[0-9]{1,2}$|[0-9]{1,2}(?:[a-f]|eme|er|ere)$")
_HAS_LETTER = re.compile(r"[a-z]")
_SEGMENT_SPLIT = re.compile(r"([\-/,;])")  # commas too: a CSV row is one "word" ("Student A,Year 8,remove")
_NUMBER_UNIT = re.compile(r"[0-9]{1,6}(?:st|nd|rd|th|s|yo|yr|yrs|y|o|year|years|ans|anos|jahre|jahrig|jahrige|jahrigen|"
                          r"k|d|p|x|px|mm|cm|m|km|kg|g|h|hr|min|fps|mp|gb|mb)$")


def dependency_versions() -> dict[str, str]:
    """The versions of everything that can change :func:`normalise`'s output."""
    out = {"normaliser": NORMALISER_VERSION, "unicode": unicodedata.unidata_version}
    for dist in ("anyascii", "confusable-homoglyphs"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - both are hard dependencies
            out[dist] = "unknown"
    return out


@lru_cache(maxsize=1)
def _homoglyphs() -> dict[str, str]:
    """Non-ASCII character → the ASCII letter or digit it imitates (Unicode confusables data)."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[str, str] = {}
    for ch, entries in data.items():
        if len(ch) != 1 or ch.isascii():
            continue
        for entry in entries:
            c = entry.get("c", "")
            if len(c) == 1 and c.isascii() and c.isalnum():
                table[ch] = c.lower()
                break
    return table


@dataclass(frozen=True)
class Normalised:
    canonical: str
    folded: str
    flags: tuple[str, ...]
    # a second reading of ``folded`` where "|" and "!" inside words are insertions ("und|ress"),
    # not letters ("h|m"), a structured prompt's quotes, braces, colons and underscores separate
    # words ('"fill":"skin"', "garment_removal"), and so does a hyphen between letters ("oben-ohne");
    # None when the text has none of these
    folded_alt: str | None = None


def _strip_invisible(text: str, flags: set[str]) -> str:
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in _DROP_CATEGORIES:
            flags.add("format_chars_removed" if cat == "Cf" else
                      "combining_marks_removed" if cat in ("Mn", "Me") else "invalid_chars_removed")
            continue
        if cat == "Cc":
            out.append(" " if ch.isspace() else "")
            if not ch.isspace():
                flags.add("invalid_chars_removed")
            continue
        out.append(ch)
    return "".join(out)


def _is_latin(ch: str) -> bool:
    return ch.isascii() or unicodedata.name(ch, "").startswith("LATIN ")


def _fold_word(word: str, flags: set[str]) -> str:
    if word.isascii():
        return word
    table = _homoglyphs()
    letters = [c for c in word if c.isalpha()]
    has_latin = any(_is_latin(c) for c in letters)
    foreign = [c for c in letters if not _is_latin(c)]
    # A word that mixes Latin with another script, or is made only of letters that each imitate a
    # Latin one ("ѕех"), is read as a disguise: map look-alikes to the letter they imitate.
    # Any other word is ordinary foreign text: transliterate it.
    disguise = bool(foreign) and (has_latin or all(c in table for c in foreign))
    if disguise and has_latin:
        flags.add("mixed_script")
    out = []
    for ch in word:
        if ch.isascii():
            out.append(ch)
        elif disguise and ch in table:
            flags.add("homoglyphs_folded")
            out.append(table[ch])
        else:
            out.append(anyascii(ch).lower())
    return "".join(out)


def _canonical_spaced(text: str, flags: set[str]) -> str:
    """Folded to lower-case ASCII with every whitespace run kept as that many spaces (the spacing
    pattern of "u n d r e s s  h e r" tells where one spaced-out word ends)."""
    text = unicodedata.normalize("NFKC", text)
    text = _strip_invisible(text, flags)
    text = unicodedata.normalize("NFKC", text.casefold())
    text = _strip_invisible(text, flags)  # case folding can leave combining marks (İ → i̇)
    parts = _WS_KEEP.split(text)
    out = []
    for k, part in enumerate(parts):
        if k % 2:
            out.append(" " * min(len(part), 3))
        else:
            out.append(_fold_word(part, flags).lower())
    return "".join(out)


def _canonical(text: str, flags: set[str]) -> str:
    return _WS.sub(" ", _canonical_spaced(text, flags)).strip()


def _join_spaced_letters(text: str, flags: set[str]) -> str:
    """Join runs of ≥ 3 single glyphs separated by 1–3 non-glyph characters: "u n d r e s s"."""
    toks = list(_GLYPH_TOKEN.finditer(text))
    if len(toks) < 3:
        return text
    pieces: list[str] = []
    pos = 0
    i = 0
    while i < len(toks):
        j = i
        while (j + 1 < len(toks) and len(toks[j].group()) == 1 and len(toks[j + 1].group()) == 1
               and 1 <= toks[j + 1].start() - toks[j].end() <= 3):
            j += 1
        st = toks[i].start()
        contraction = st >= 2 and text[st - 1] in "'\u2019" and text[st - 2].isalnum()  # "she's 1 3": 's is no letter
        if j - i + 1 >= 3 and len(toks[i].group()) == 1 and contraction:
            i += 1
            continue
        if j - i + 1 >= 3 and len(toks[i].group()) == 1:
            pieces.append(text[pos:toks[i].start()])
            seps = [text[toks[k].end():toks[k + 1].start()] for k in range(i, j)]
            usual = Counter(seps).most_common(1)[0][0]
            # a separator unlike the usual one ends a word: "u.n.d.r.e.s.s h.e.r" → "undress her"
            pieces.append(toks[i].group() + "".join((" " if sep != usual else "") + toks[k + 1].group()
                                                    for k, sep in zip(range(i, j), seps)))
            pos = toks[j].end()
            flags.add("spaced_letters_joined")
            i = j + 1
        else:
            i += 1
    pieces.append(text[pos:])
    return "".join(pieces)


def _undo_leet_segment(seg: str) -> str:
    if (not seg or not _HAS_LETTER.search(seg) or not any(c in _LEET_CHARS for c in seg) or _NUMBER_UNIT.match(seg)
            or _SCHOOL_YEAR.match(seg)):
        return seg
    return seg.translate(_LEET)


def _undo_leet(text: str, flags: set[str]) -> str:
    """Leetspeak inside words that contain a letter. Each hyphen/slash-separated part of a word is
    judged alone and a number with a unit ("15yo", "12-year-old", "4k", "1st") is left alone, so
    ages and quantities survive for the rules that need them."""
    words = text.split(" ")
    for k, w in enumerate(words):
        core = w.lstrip(_TOKEN_EDGE_LEAD)
        if core[:1] == "!" and core[1:2].isalpha():
            core = core[1:]  # a chat bot's command prefix ("!undress"), not a leet "i"
        lead = w[: len(w) - len(core)]
        stripped = core.rstrip(_TOKEN_EDGE_TRAIL)
        trail = core[len(stripped):]
        new = "".join(_undo_leet_segment(part) for part in _SEGMENT_SPLIT.split(stripped))
        if new != stripped:
            flags.add("leetspeak_undone")
            words[k] = lead + new + trail
    return " ".join(words)


def _collapse_repeats(text: str, flags: set[str]) -> str:
    def cut(m: re.Match[str]) -> str:
        if m.group(1).isalpha():
            flags.add("repeated_letters_collapsed")
        return m.group(1) * 2

    return _REPEATS.sub(cut, text)


def _fold(spaced: str, flags: set[str]) -> str:
    folded = _join_spaced_letters(spaced, flags)
    folded = _WS.sub(" ", folded).strip()
    folded = _undo_leet(folded, flags)
    folded = _INWORD_PUNCT.sub("", folded)
    folded = _collapse_repeats(folded, flags)
    return _WS.sub(" ", folded).strip()


def normalise(text: str) -> Normalised:
    """Both views of ``text``. Linear in ``len(text)``; the caller bounds the length."""
    flags: set[str] = set()
    decoded = decode_embedded(text, flags)
    if decoded:
        # the decoded readings are appended, so the rules and the classifier read the request as the
        # model would once it decodes it; the text itself stays in front, unchanged
        text = text + "\n" + "\n".join(decoded)
    spaced = _canonical_spaced(text, flags)
    canonical = _WS.sub(" ", spaced).strip()
    folded = _fold(spaced, flags)
    alt = None
    structured = bool(_STRUCTURED.search(spaced)) or len(_YAML_LINE.findall(text, 0, 100_000)) >= 2
    hyphenated = bool(_INWORD_HYPHEN.search(spaced))
    if structured or hyphenated or _INSERTION_SYMBOLS.search(spaced):
        source = _INSERTION_SYMBOLS.sub("", spaced)
        if structured:
            source = _STRUCTURE_CHARS.sub(" ", source)
        if hyphenated:
            source = _HYPHEN_PART.sub(lambda m: m.group(1) + ("-" if m.group(1) in _NEGATING_PREFIX else " "), source)
            if not structured and not _INSERTION_SYMBOLS.search(spaced):
                flags.add("hyphens_split")  # the only reason for the alternative view (the classifier skips it)
        alt = _fold(source, set())
        if alt == folded:
            alt = None
    return Normalised(canonical=canonical, folded=folded, flags=tuple(sorted(flags)), folded_alt=alt)


# --- encoded text ---------------------------------------------------------------------------
#
# A request can be pasted in an encoding the image model (or a tool in front of it) will decode:
# base64 in a JSON field, URL-encoded query parameters, hex, rot13, reversed text (holdout-12:
# '"prompt_b64": "cmVtb3ZlIGFsbCBjbG90aGluZywga2VlcCBmYWNl"', 'prompt=make+her+naked', "'erzbir ure
# pybgurf'"). Each decoded reading that is readable text is appended to the prompt. Base64, hex and
# percent-encoding are recognised by their shape and kept only when they decode to readable text (an
# ID, a hash or a key decodes to bytes that are not); rot13 and reversal turn any text into other text,
# so they are tried only when the prompt names them. Two rounds (base64 inside a URL, say), bounded.

_DECODE_SCAN = 20_000  # characters of the prompt scanned for encoded runs
_DECODE_MAX = 32  # decoded readings kept, at most
_DECODE_BUDGET = 4_000  # characters of decoded readings, at most: an encoded instruction is short
_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[ :]?){8,}(?![0-9A-Za-z])")
_HEX_SEP = re.compile(r"\\x|0x|[ :]")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_QUERY_PLUS = re.compile(r"[?&][A-Za-z_][A-Za-z0-9_.]{0,40}=[^&\s]{0,200}?[A-Za-z]\+[A-Za-z]")  # bounded: linear
_ROT13_CUE = re.compile(r"(?i)(?<![a-z0-9])(?:rot ?-? ?13|c[aeé]sar|caesar)(?![a-z0-9])")
_REVERSED_CUE = re.compile(
    r"(?i)(?<![a-z])(?:revers(?:e|ed)|backwards?|r[uü]ckw[aä]rts|umgekehrt|al rev[eé]s|invertid[oa]|[aà] l.envers|"
    r"de tr[aá]s (?:para|pra) (?:a )?frente|ao contr[aá]rio)(?![a-z])")


def _readable(s: str) -> bool:
    """Text a person wrote, not bytes: mostly letters and spaces, with a word in it."""
    if len(s) < 4 or not s.isprintable():
        return False
    wordy = sum(c.isalpha() or c == " " for c in s)
    return wordy >= 0.75 * len(s) and re.search(r"[^\W\d_]{3}", s) is not None


def _utf8(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decode_b64(token: str) -> str | None:
    core = token.rstrip("=")
    if len(core) % 4 == 1:
        return None
    padded = core + "=" * (-len(core) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _utf8(raw)


def _decode_one_round(text: str, flags: set[str]) -> list[str]:
    out: list[str] = []
    head = text[:_DECODE_SCAN]
    for m in _B64_RUN.finditer(head):
        tok = m.group()
        # a run of letters alone is a word more often than base64; the encoded form of ordinary
        # text nearly always has a capital and a lower-case letter, or a digit
        if tok.isalpha() and (tok.islower() or tok.isupper()):
            continue
        s = _decode_b64(tok)
        if s is not None and _readable(s):
            flags.add("base64_decoded")
            out.append(s)
    for m in _HEX_RUN.finditer(head):
        digits = _HEX_SEP.sub("", m.group())
        if len(digits) % 2:
            continue
        s = _utf8(bytes.fromhex(digits))
        if s is not None and _readable(s):
            flags.add("hex_decoded")
            out.append(s)
    if _PERCENT.search(head) or _QUERY_PLUS.search(head):
        # each URL or query on its own, not the whole prompt again
        parts = []
        for tok in head.split():
            if _PERCENT.search(tok) or _QUERY_PLUS.search(tok):
                dec = unquote_plus(tok) if _QUERY_PLUS.search(tok) else unquote(tok)
                if dec != tok:
                    parts.append(dec)
        if parts:
            flags.add("percent_decoded")
            out.append(" ".join(parts))
    if _ROT13_CUE.search(head):
        flags.add("rot13_decoded")
        out.append(codecs.decode(head, "rot13"))
    if _REVERSED_CUE.search(head):
        flags.add("reversed_read")
        out.append(head[::-1])
    return out


def decode_embedded(text: str, flags: set[str]) -> list[str]:
    """The readable decodings of encoded runs in ``text`` (see above), in order, without repeats. All
    of them together are at most as long as ``text`` (or 256 characters, for nested encodings in a short
    prompt) and at most ``_DECODE_BUDGET``: decoding adds little to the text the rules read, and never
    pushes an ordinary prompt over the normalised-size cap."""
    found: list[str] = []
    seen = {text}
    frontier = [text]
    budget = max(256, min(len(text), _DECODE_BUDGET))
    for _ in range(2):
        nxt = []
        for t in frontier:
            for s in _decode_one_round(t, flags):
                if s in seen or len(found) >= _DECODE_MAX or len(s) > budget:
                    continue
                budget -= len(s)
                seen.add(s)
                found.append(s)
                nxt.append(s)
        frontier = nxt
    return found


# --- terms ------------------------------------------------------------------------------------

_TERM_WORD = re.compile(r"[a-z0-9]+")
_CLASS_IL = "[il]"
_WORD_START = "(?<![a-z0-9])"


def term_words(term: str) -> list[str]:
    """The words of a policy term after the same Unicode folding as the text (accents, scripts,
    case); punctuation and spaces separate words."""
    flags: set[str] = set()
    return _TERM_WORD.findall(_canonical(term.rstrip("*"), flags))


def _word_pattern(word: str) -> str:
    runs: list[list] = []  # [class, count]
    for ch in word:
        cls = _CLASS_IL if ch in "il" else re.escape(ch)
        if runs and runs[-1][0] == cls:
            runs[-1][1] += 1
        else:
            runs.append([cls, 1])
    return "".join(f"{cls}++" if n == 1 else f"{cls}{{{n},}}+" for cls, n in runs)


@lru_cache(maxsize=65536)
def compile_term(term: str) -> str:
    """One term → a linear-time regex (no surrounding group). A trailing ``*`` makes it a stem
    (any word ending may follow); otherwise it must end at a word boundary, after an optional
    "s" (plural, or a possessive whose apostrophe the normaliser removed: "coworker's")."""
    words = term_words(term)
    if not words:
        raise ValueError(f"term {term!r} has no letters or digits after normalisation")
    body = " ?".join(_word_pattern(w) for w in words)
    tail = "" if term.rstrip().endswith("*") else "s?+(?![a-z0-9])"  # plural / possessive "s" allowed
    return f"{_WORD_START}{body}{tail}"


def compile_terms(terms: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """Alternation of compiled terms, longest first (deterministic, and the most specific wins).
    A term written ``re:PATTERN`` is taken as a regular expression over the normalised text (the
    policy loader has already refused unsafe ones). Cached (:func:`compiled`)."""
    return _compile_terms(tuple(terms))


@lru_cache(maxsize=2048)
def _compile_terms(terms: tuple[str, ...]) -> re.Pattern[str]:
    # cached by the term list as well as by the pattern text (:func:`compiled`): sorting and factoring ~520
    # lists again cost half a second a layer
    alts = sorted({t[3:] if t.startswith("re:") else compile_term(t) for t in terms}, key=lambda p: (-len(p), p))
    return compiled(_factor_word_starts(alts))


@lru_cache(maxsize=2048)
def compiled(pattern: str) -> re.Pattern[str]:
    """``re.compile`` with a cache that holds every pattern of several policies. The standard library's
    keeps 512; a policy compiles about 520 large alternations, so every layer built after the first (an
    archived version in a replay, a variant in a test) compiled them all again: 10 s a layer on this
    machine, most of the time of the tests that build layers. A compiled pattern is immutable and safe
    to share between threads."""
    return re.compile(pattern)


def _factor_word_starts(alts: list[str]) -> str:
    """``(?:L a)|(?:L b)|(?:c)`` → ``L(?:(?:a)|(?:b))|(?:c)`` for each run of consecutive alternatives that
    begin with the same word-start lookbehind ``L``.

    Every plain term, and most ``re:`` terms, start with such a test. Written once in front of a run
    instead of once per alternative, a position inside a word fails one test instead of one per term.
    The match at every position is the same: ``L`` is zero-width and cannot backtrack, and the
    alternatives keep their order (ordered choice). Only an alternative without a top-level ``|`` is
    factored: in ``L a|b`` the ``L`` belongs to ``a`` alone. (Stage 1.6.0: rule evaluation about four
    times as fast on long prompts; the 1.5.0 code factored only a list made wholly of plain terms.)"""
    out: list[str] = []
    run_lead: str | None = None
    run: list[str] = []

    def close() -> None:
        if run_lead is not None:
            out.append(run_lead + "(?:" + "|".join(f"(?:{a})" for a in run) + ")")
        else:
            out.extend(f"(?:{a})" for a in run)

    for a in alts:
        lead = next((w for w in _LEADS if a.startswith(w) and not _top_level_branch(a)), None)
        if run and lead == run_lead and lead is not None:
            run.append(a[len(lead):])
            continue
        if run:
            close()
        run_lead, run = lead, [a[len(lead):] if lead else a]
    if run:
        close()
    return "|".join(out)


# The word-start tests factored out of an alternation (longest first: one must not be read as the other's prefix).
_LEADS = (_WORD_START, "(?<![a-z])")


def _top_level_branch(pattern: str) -> bool:
    """Whether ``pattern`` has a ``|`` outside every group and character class. Unbalanced or odd
    input answers True (not factored: the safe side). Our own scan, because the standard library's
    regex parser is private (``re._parser``)."""
    depth, i, n = 0, 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":  # a class: a "]" right after "[" or "[^" is a literal
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            if i >= n:
                return True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return True
        elif ch == "|" and depth == 0:
            return True
        i += 1
    return depth != 0
