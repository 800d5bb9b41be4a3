"""Other languages: data/languages/<code>.yml holds one language's safety net and the bot's texts in it.

German and English go through the model. A message in one of these languages does not: it gets the
language's own texts (the 110 prompt for an emergency, "a person answers in German or English"
otherwise) and goes to the officers. A department adds a language by adding a file.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.safety_lexicon import tokenize
from bot.safety_net import SafetyHit, SafetyNet, SafetyNetError

REQUIRED_TEXTS = ("disclosure", "emergency", "self_harm", "other", "other_again")
KEYS = {"code", "name", "name_de", "direction", "markers", "sources", "texts", "safety_net", "spellings"}
# The numbers the bot gives (DESIGN.md, "Numbers the bot gives"): no other number of 3+ digits may appear.
NUMBERS = frozenset({"110", "112", "116117", "116016", "08001110111", "08001110222", "116111"})
# What each text must say: the 110 prompt everywhere, the TelefonSeelsorge and 112 for self-harm.
MUST_SAY = {"emergency": ("110", "112"), "self_harm": ("08001110111", "112"), "other": ("110",), "other_again": ("110",)}
_NUMBER = re.compile(r"\d+(?:[ \u00a0\u202f]\d+)*")
_CODE = re.compile(r"[a-z]{2,3}")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_LATIN = re.compile(r"[a-z]+")  # a `spellings` key or value: Latin letters only
_VOWEL = re.compile(r"[aeiouy\u00c0-\u024f]")  # Latin vowels, accented letters too ("sarègh")


class LanguageError(SafetyNetError):
    """A language file cannot be used; the message names the file and what is wrong (`problems`: rules that miss)."""


@dataclass(frozen=True)
class Language:
    """One language: its names, its marker words for identification, its texts and its safety net."""

    code: str
    name: str  # in the language itself
    name_de: str  # shown to officers
    direction: str  # ltr | rtl
    markers: frozenset[str]
    texts: dict[str, str]
    net: SafetyNet
    path: Path


@dataclass(frozen=True)
class Languages:
    """All languages besides German and English, in file order."""

    by_code: dict[str, Language]

    @classmethod
    def load(cls, directory: Path, strict: bool = True) -> "Languages":
        """Read every <code>.yml in `directory` (none: no other languages)."""
        found = {}
        for path in sorted(directory.glob("*.yml")) if directory.is_dir() else []:
            language = load_language(path, strict)
            found[language.code] = language
        return cls(found)

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def check(self, text: str, first: str | None = None) -> tuple[Language, SafetyHit] | None:
        """The first language whose safety net fires on `text`, with the rule; every net is asked.

        `first` (the identified language) is asked first: Russian and Ukrainian share many words,
        and the citizen should get the reply in the language they wrote.
        """
        ordered = sorted(self.by_code.values(), key=lambda language: language.code != first)
        for language in ordered:
            hit = language.net.check(text)
            if hit is not None:
                return language, hit
        return None

    def markers(self) -> dict[str, frozenset[str]]:
        """Marker words per language, for language identification."""
        return {code: language.markers for code, language in self.by_code.items()}

    def text(self, code: str, key: str) -> str:
        """One of the language's texts, trimmed."""
        return self.by_code[code].texts[key].strip()

    def name_de(self, code: str) -> str:
        """The language's German name for officers ("Türkisch"); German and English as themselves."""
        known = {"de": "Deutsch", "en": "Englisch"}
        return self.by_code[code].name_de if code in self.by_code else known.get(code, code)


def load_language(path: Path, strict: bool = True) -> Language:
    """Read and check one language file; every problem raises LanguageError naming the file."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as err:
        raise LanguageError(f"{path}: cannot read: {err}") from None
    if not isinstance(doc, dict):
        raise LanguageError(f"{path}: expected a mapping with {', '.join(sorted(KEYS))}")
    if set(doc) - KEYS:
        raise LanguageError(f"{path}: unknown keys {sorted(set(doc) - KEYS)} (known: {sorted(KEYS)})")
    code = str(doc.get("code") or "")
    if not _CODE.fullmatch(code) or code != path.stem or code in ("de", "en"):
        raise LanguageError(f"{path}: code must be the file's name, a lowercase ISO 639 code other than de/en (got {code!r})")
    for key in ("name", "name_de"):
        if not str(doc.get(key) or "").strip():
            raise LanguageError(f"{path}: {key} is missing")
    direction = str(doc.get("direction") or "ltr")
    if direction not in ("ltr", "rtl"):
        raise LanguageError(f"{path}: direction must be ltr or rtl, got {direction!r}")
    texts = doc.get("texts")
    if not isinstance(texts, dict):
        raise LanguageError(f"{path}: texts must be a mapping with {', '.join(REQUIRED_TEXTS)}")
    problems = text_problems(texts)
    if problems:
        raise LanguageError(f"{path}: " + "; ".join(problems))
    markers = doc.get("markers") or []
    if not isinstance(markers, list) or not all(isinstance(m, str) and m.strip() for m in markers):
        raise LanguageError(f"{path}: markers must be a list of words")
    try:
        spellings = read_spellings(doc.get("spellings"))
        net = SafetyNet.from_doc(with_spellings(doc.get("safety_net"), spellings), path, strict)
    except SafetyNetError as err:
        raise LanguageError(str(err), err.problems) from None
    except ValueError as err:  # the spellings map
        raise LanguageError(f"{path}: {err}") from None
    folded = frozenset(w for m in markers for w in _fold_words(m))
    return Language(code, str(doc["name"]), str(doc["name_de"]), direction, folded,
                    {k: str(v) for k, v in texts.items()}, net, path)


def read_spellings(raw: object) -> dict[str, str]:
    """The `spellings` map ({kh: x}: an entry's Latin "kh" also matches "x"); keys and values Latin letters only."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ValueError(f"spellings must map Latin letters to Latin letters ({{kh: x}}), got {raw!r}")
    bad = [f"{k}: {v}" for k, v in raw.items() if not (_LATIN.fullmatch(k) and _LATIN.fullmatch(v)) or k == v]
    if bad:
        raise ValueError(f"spellings: keys and values must be different lowercase Latin letters (a-z), not {', '.join(bad)}")
    return dict(raw)


def with_spellings(net: object, spellings: dict[str, str]) -> object:
    """The safety net with every Latin-letter entry of its word and guard lists followed by its spelling variants."""
    if not spellings or not isinstance(net, dict):
        return net
    net = dict(net)
    if isinstance(net.get("words"), dict):
        net["words"] = {name: _spelled(items, spellings) for name, items in net["words"].items()}
    if isinstance(net.get("guards"), dict):
        net["guards"] = {
            name: {key: _spelled(value, spellings) if key in ("words", "after", "not_after") else value for key, value in spec.items()}
            if isinstance(spec, dict) else spec
            for name, spec in net["guards"].items()
        }
    return net


def spelling_variants(entry: str, spellings: dict[str, str]) -> list[str]:
    """`entry` and the spellings it also stands for ("khodkoshi" with {kh: x}: also "xodkoshi"); native script: itself."""
    letters = [ch for ch in entry if ch.isalpha()]
    if not letters or not all(unicodedata.name(ch, "").startswith("LATIN") for ch in letters):
        return [entry]
    found = [entry]
    for key, value in spellings.items():
        found += [" ".join(_respell(w, key, value) for w in v.split(" ")) for v in found if key in v]
    return list(dict.fromkeys(found))


def _respell(word: str, key: str, value: str) -> str:
    """One word with `key` written as `value`; a word without a vowel ("khkh", laughter) is kept as it is."""
    return word.replace(key, value) if _VOWEL.search(word) else word


def _spelled(items: object, spellings: dict[str, str]) -> object:
    if not isinstance(items, list):
        return items
    spelled = [variant for item in items for variant in (spelling_variants(item, spellings) if isinstance(item, str) else [item])]
    return list(dict.fromkeys(spelled))


def text_problems(texts: dict[object, object]) -> list[str]:
    """Missing texts, numbers that are not the ones DESIGN.md gives, and texts that lack their numbers."""
    problems = [f"text {key!r} is missing" for key in REQUIRED_TEXTS if not str(texts.get(key) or "").strip()]
    problems += [f"unknown text {key!r} (known: {', '.join(REQUIRED_TEXTS)})" for key in texts if key not in REQUIRED_TEXTS]
    for key, text in texts.items():
        numbers = numbers_in(str(text or ""))
        problems += [f"text {key!r}: number {n!r} is not one the bot gives (DESIGN.md)" for n in numbers if len(n) >= 3 and n not in NUMBERS]
        problems += [f"text {key!r} must give {n}" for n in MUST_SAY.get(str(key), ()) if n not in numbers]
    return problems


def numbers_in(text: str) -> set[str]:
    """Digit groups in `text` with their inner spaces removed ("0800 111 0 111" -> "08001110111"), any script's digits."""
    found = set()
    for match in _NUMBER.finditer(text):
        found.add("".join(str(unicodedata.decimal(ch)) for ch in match.group() if ch.isdigit()))
    return found


def _fold_words(marker: str) -> list[str]:
    """The marker as the net and identification see it: folded words."""
    return list(tokenize(marker).folded)
