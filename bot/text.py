"""Small text helpers shared by the safety net, triage and channels."""

from __future__ import annotations

import re
import unicodedata

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "’": "'", "`": "'"})
_REPEATS = re.compile(r"([a-z])\1{2,}")
_SPACES = re.compile(r"\s+")
_CONTROL = {"Cc", "Cf", "Cs", "Co", "Cn"}
MAX_TEXT = 4000


def clean(text: str) -> str:
    """Drop control and unassigned characters, keep line breaks and tabs, trim to MAX_TEXT."""
    kept = "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in _CONTROL or ch == "\u200d"
    )
    return kept.strip()[:MAX_TEXT]


def normalise(text: str) -> str:
    """Lowercase, fold umlauts, shorten stretched letters ("hiiilfe" -> "hilfe"), squeeze spaces."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_FOLD)
    text = _REPEATS.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()
