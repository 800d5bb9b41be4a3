"""Small text helpers shared by the safety net, triage and channels."""

from __future__ import annotations

import re
import unicodedata

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "’": "'", "`": "'", "ʼ": "'"})  # ʼ: Ukrainian "бʼє"
# Letters written two ways: Turkish dotless i, Polish l with stroke, and the Arabic and Persian forms
# of ya, kaf and ta marbuta (phones use either); the Arabic stretching stroke (tatweel) and the Persian
# zero-width non-joiner dropped ("می‌زند" reads as "میزند", as triage's clean() leaves it).
_LETTERS = str.maketrans({"ı": "i", "ł": "l", "ى": "ي", "ی": "ي", "ک": "ك", "ة": "ه", "ـ": None, "\u200c": None})
_REPEATS = re.compile(r"([^\W\d_])\1{2,}")
_SPACES = re.compile(r"\s+")
_CONTROL = {"Cc", "Cf", "Cs", "Co", "Cn"}
MAX_TEXT = 4000


def clean(text: str) -> str:
    """Drop control and unassigned characters, keep line breaks and tabs, trim to MAX_TEXT."""
    kept = "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in _CONTROL or ch == "\u200d"
    )
    return kept.strip()[:MAX_TEXT]


def strip_marks(text: str) -> str:
    """Drop accents and vowel signs ("ş" -> "s", "ă" -> "a", "й" -> "и", Arabic harakat), as phones often do."""
    if text.isascii():
        return text
    kept = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", kept).translate(_LETTERS)


# Latin letters that look like Cyrillic ones, typed inside a Cyrillic word ("вiн", "пoмoгитe").
_HOMOGLYPHS = str.maketrans("aceiopxykmt", "асеіорхукмт")
_MIXED_WORD = re.compile(r"[^\W\d_]*[\u0400-\u04ff][^\W\d_]*")


def _cyrillic_homoglyphs(text: str) -> str:
    """Read Latin look-alikes inside a word with Cyrillic letters as Cyrillic."""
    if text.isascii():
        return text
    return _MIXED_WORD.sub(lambda m: m.group().translate(_HOMOGLYPHS), text)


def normalise(text: str) -> str:
    """Lowercase, fold umlauts and other accents, shorten stretched letters ("hiiilfe" -> "hilfe"), squeeze spaces."""
    text = _cyrillic_homoglyphs(strip_marks(unicodedata.normalize("NFKC", text).lower().translate(_FOLD)))
    text = _REPEATS.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()
