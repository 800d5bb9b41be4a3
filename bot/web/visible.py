"""Make invisible and direction-changing characters visible where officers read citizens' text.

A right-to-left override (U+202E) can make "ruf 110 an" read as something else, and zero-width
characters can hide words from a search or make two texts look alike. Officers see each one as
its code point, e.g. ⟦U+202E⟧; the stored message keeps the original. Joiners inside emoji
(👨‍👩‍👧) and the non-joiner between letters (Persian, Kurdish) are left alone.
Only the standard library: the officers' Telegram alerts use it too.
"""

from __future__ import annotations

import re
import unicodedata

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ZERO_WIDTH = "\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff"
_HIDDEN = re.compile(f"[{BIDI}{ZERO_WIDTH}]")
_ZWJ, _ZWNJ = "\u200d", "\u200c"


def _emoji_side(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk") or ch == "\ufe0f" or "\U0001f3fb" <= ch <= "\U0001f3ff"


def _kept(text: str, index: int) -> bool:
    """A joiner that is part of writing: ZWJ between emoji, ZWNJ between letters."""
    ch = text[index]
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    if not before or not after:
        return False
    if ch == _ZWJ:
        return _emoji_side(before) and _emoji_side(after)
    if ch == _ZWNJ:
        return before.isalpha() and after.isalpha()
    return False


def visible(text: object) -> str:
    """`text` with every bidirectional control and zero-width character shown as ⟦U+XXXX⟧."""
    value = "" if text is None else str(text)
    if not _HIDDEN.search(value):
        return value
    return _HIDDEN.sub(lambda m: m[0] if _kept(value, m.start()) else f"⟦U+{ord(m[0]):04X}⟧", value)
