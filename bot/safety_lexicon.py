"""The safety net's word lists: a message cut into sentences and words, and which list each word is on."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache

from bot.text import normalise

# One-letter words of the languages served ("and", "in", "I", "is", ...): an entry such as "її" or "ii" (her)
# folds to one of them ("і", "and") and would then match almost any message.
ONE_LETTER_WORDS = frozenset("aeiouyzwvsk" "иаявскуоіїйєз" "و")
TYPO_MIN = 8  # words (after folding) at least this long also match with one typo
MANY = 10  # "##" in an entry stands for a number at least this large ("20 tabletten")
GAP = 4  # "..." in a phrase stands for up to this many words
_LAUGH = re.compile("[\U0001F602\U0001F923\U0001F606\U0001F605\U0001F639]+")  # laughing emoji read as the word "lol"
_KO = re.compile(r"\bk\s?\.\s?o\s?\.?\s?-?\s?(?=tropf)")  # "k.o.-tropfen", "k. o. tropfen" -> "ko tropfen"
# "grad" after a number is degrees ("bei 30 grad", "zwei grad"), never "gerade": read as "celsius" when a
# temperature word is near or the clause ends right after it; after a house number it is "gerade" ("hauptstraße 12 grad wird ...")
_DEGREES = re.compile(
    r"(?P<num>\d+|\b(?:null|eins?|zwei|drei|vier|fuenf|sechs|sieben|acht|neun|zehn|elf|zwoelf|zwanzig|dreissig|vierzig|minus|plus))"
    r"(?P<deg>\s*°?\s*(?:grad|grade|grod)\b)"
)
_NEAR = 40  # characters before and after "# grad" in which the three words next to it are looked for
_TEMPERATURE = re.compile(
    r"\b(?:bei|um|ueber|unter|es sind|draussen|warm|waermer|kalt|kaelter|heiss|fieber|minus|plus|celsius|temperatur\w*)\b"
)
_CLAUSE_AFTER = re.compile(r"\s*(?:$|[,.!?;:)]|(?:und|aber|oder|and|but)\b)")


def _degrees(match: re.Match[str]) -> str:
    """ "30 grad" -> "30 celsius" when it is a temperature, else unchanged ("hauptstraße 12 grad": just now)."""
    text = match.string
    before = " ".join(text[max(0, match.start() - _NEAR):match.start()].split()[-3:])
    after = " ".join(text[match.end():match.end() + _NEAR].split()[:3])
    if "°" in match["deg"] or _TEMPERATURE.search(f"{before} {match['num']} {after}") or _CLAUSE_AFTER.match(text, match.end()):
        return match["num"] + " celsius"
    return match[0]
_SENTENCE_END = re.compile(r"[!?;\n\u061f\u061b]+|(?<!\d)\.+(?=\s|$)")  # also Arabic ؟ and ؛
_CLAUSE_END = re.compile(r"[,:\u2013\u2014\u060c]|\s-+\s")  # also Arabic ،
# Also start a clause: German, English, Russian/Ukrainian ("и", "а", "но"; "і", "але", "та"), and, folded,
# Turkish ("ve", "ama", "çünkü"), Polish ("ale", "bo"; not "i": Bavarian "i" is "ich"), Romanian ("și", "dar", "iar"),
# Arabic and Persian ("بس", "لكن", "اما", "ولی").
CONJUNCTIONS = frozenset(
    "und aber oder weil denn and but or because и а но і але та ve ama cunku ale bo si dar iar بس لكن ولكن اما ولي".split()
)
_WORD = re.compile(r"[^\W\d_]+(?:\d+[^\W\d_]+)*|\d+")  # digits inside a word stay (Arabizi "sa3dni")
_DOUBLE = re.compile(r"(.)\1+")
_CACHE_MAX = 50_000


# Short everyday words whose tolerant key would equal a listed word's ("man"/"mann", "halt"/"hält",
# "hat"/"hätt", "sagt"/"sägt"): these and every word with the same key are compared as written (umlauts folded).
COMMON = frozenset("""
    a all am an as at auf aus be bei bin bis bist by da das dem den der des die dir du ein eine er es
    hab habe halt has hat he ihm ihn im in ist ja kan man mal mir mit mus nun nur ob of on sie so sol
    the to um und uns von vor war was we wen wer wie wil wir wo zu zum zur sag sagt sagen sagte
""".split())


_UMLAUT_UE = re.compile(r"(?<!q)ue")


@lru_cache(maxsize=50_000)
def plain(word: str) -> str:
    """The spelling-tolerant key of a folded word: ae/oe/ue -> a/o/u, doubled letters once ("schüsse" -> "schuse").

    "ue" after q is not an umlaut: folding it made "gequetscht" one letter from "gerutscht". (After a vowel it
    is no umlaut either, but folding it there reads the spoken "haun" as "hauen", so it stays.)
    """
    key = _DOUBLE.sub(r"\1", _UMLAUT_UE.sub("u", word.replace("ae", "a").replace("oe", "o")))
    return word if key in COMMON else key


@dataclass(frozen=True)
class Tokens:
    """A message as words: folded forms, spelling-tolerant keys, and the sentence each word is in."""

    folded: tuple[str, ...]
    keys: tuple[str, ...]
    sentence_starts: tuple[int, ...]  # index of the first word of each sentence
    clause_starts: frozenset[int] = frozenset()  # index of the first word after a comma, colon or dash, or of "und", "aber", ...
    clause_bounds: tuple[int, ...] = ()  # sentence and clause starts, sorted

    def sentence_of(self, index: int) -> int:
        """The number of the sentence that word `index` is in."""
        return bisect_right(self.sentence_starts, index) - 1

    def clause_of(self, index: int) -> int:
        """The number of the clause (within the message) that word `index` is in."""
        return bisect_right(self.clause_bounds, index) - 1


def tokenize(text: str) -> Tokens:
    """Cut a message into sentences and words (normalised: lowercase, umlauts folded, apostrophes dropped)."""
    folded = _LAUGH.sub(" lol ", _KO.sub("ko ", _DEGREES.sub(_degrees, normalise(text).replace("'", ""))))
    words: list[str] = []
    starts: list[int] = []
    clauses: set[int] = set()
    for sentence in _SENTENCE_END.split(folded):
        first = len(words)
        for clause in _CLAUSE_END.split(sentence):
            if len(words) > first:
                clauses.add(len(words))
            for word in _WORD.findall(clause):
                if word in CONJUNCTIONS and len(words) > first:
                    clauses.add(len(words))
                words.append(word)
        if len(words) > first:
            starts.append(first)
    bounds = tuple(sorted(clauses | set(starts)))
    return Tokens(tuple(words), tuple(plain(w) for w in words), tuple(starts), frozenset(clauses), bounds)


@dataclass(frozen=True)
class Element:
    """One position of an entry: a word, a stem ("schlag*"), an ending ("*messer"), a number (# or ## for MANY or more), a gap (...) or a clause end ($)."""

    kind: str  # word | stem | tail | number | many | gap | end
    text: str = ""
    strict: bool = False  # guards: compare the folded word (no a/ae or typo tolerance)

    def matches(self, folded: str, key: str) -> bool:
        """True when this element accepts the word."""
        if self.kind == "number":
            return folded.isdigit()
        if self.kind == "many":
            return folded.isdigit() and int(folded) >= MANY
        word = folded if self.strict else key
        if self.kind == "word":
            if word == self.text:
                return True
            text = self.text  # one typo in a long word; the first two letters must agree
            return not self.strict and len(text) >= TYPO_MIN and word[:2] == text[:2] and one_typo(word, text)
        if self.kind == "stem":
            return word.startswith(self.text)
        return word.endswith(self.text)


@dataclass(frozen=True)
class Entry:
    """One word-list entry: its list (category) and its elements, as the trainer wrote it."""

    category: str
    elements: tuple[Element, ...]
    source: str
    needed: frozenset[str] = frozenset()  # words after the first that must occur in the sentence (a quick filter)


def parse_entry(category: str, source: str, strict: bool) -> Entry:
    """Read one entry such as "schlag*", "am boden", "bricht ... ein", "seit # min*"."""
    elements: list[Element] = []
    folded = normalise(source)
    for part in folded.replace("'", "").replace("-", " ").split():
        if part == "...":
            elements.append(Element("gap"))
        elif part == "$":
            elements.append(Element("end"))
        elif part == "#":
            elements.append(Element("number"))
        elif part == "##":
            elements.append(Element("many"))
        else:
            kind = "stem" if part.endswith("*") else "tail" if part.startswith("*") else "word"
            text = part.strip("*")
            if not _WORD.fullmatch(text) or (kind != "word" and len(text) < 3):
                raise ValueError(f"{category}: cannot read {source!r} (words, 'stem*', '*ending', '#', '##', '...', '$')")
            elements.append(Element(kind, text if strict else plain(text), strict))
    if len(elements) == 1 and elements[0].text in ONE_LETTER_WORDS and len(folded) > 1:
        raise ValueError(f"{category}: {source!r} reads as the one-letter word {elements[0].text!r} (a doubled letter "
                         "counts once), which is in almost every message; write it inside a phrase or leave it out")
    if not elements or elements[0].kind in ("gap", "end") or elements[-1].kind == "gap" or any(e.kind == "end" for e in elements[:-1]):
        raise ValueError(f"{category}: {source!r} must start with a word and end with a word or $")
    needed = frozenset(e.text for e in elements[1:] if e.kind == "word" and (e.strict or len(e.text) < TYPO_MIN))
    return Entry(category, tuple(elements), source, needed)


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def one_typo(a: str, b: str) -> bool:
    """True when a and b differ by at most one letter added, dropped, changed, or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if i < 2:
        return False  # a typo in the first two letters changes the word ("zerstochen" is not "erstochen")
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (a[i + 2:] == b[i + 2:] and a[i:i + 2] == b[i:i + 2][::-1])
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[i + 1:] == shorter[i:]


@dataclass
class Lexicon:
    """Every word list, indexed by the first element of each entry."""

    entries: list[Entry]
    _words: dict[str, list[Entry]] = field(default_factory=dict)
    _strict: dict[str, list[Entry]] = field(default_factory=dict)
    _stems: dict[int, dict[str, list[Entry]]] = field(default_factory=dict)
    _tails: dict[int, dict[str, list[Entry]]] = field(default_factory=dict)
    _pairs: dict[tuple[str, str], list[Entry]] = field(default_factory=dict)  # entries that start with two words
    _strict_pairs: dict[tuple[str, str], list[Entry]] = field(default_factory=dict)
    _numbers: list[Entry] = field(default_factory=list)
    _typos: dict[str, list[Entry]] = field(default_factory=dict)
    _cache: dict[tuple[str, str], tuple[Entry, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.entries:
            first = entry.elements[0]
            if first.kind in ("number", "many"):
                self._numbers.append(entry)
            elif first.kind == "word" and _paired(entry):
                pairs = self._strict_pairs if first.strict else self._pairs
                pairs.setdefault((first.text, entry.elements[1].text), []).append(entry)
            elif first.kind == "word":
                (self._strict if first.strict else self._words).setdefault(first.text, []).append(entry)
                if not first.strict and len(first.text) >= TYPO_MIN:
                    for variant in _deletes(first.text) | {first.text}:
                        self._typos.setdefault(variant, []).append(entry)
            else:
                index = self._stems if first.kind == "stem" else self._tails
                index.setdefault(len(first.text), {}).setdefault(first.text, []).append(entry)

    def starting_with(self, folded: str, key: str) -> tuple[Entry, ...]:
        """The entries whose first element accepts this word (with one typo for long words)."""
        cached = self._cache.get((folded, key))
        if cached is not None:
            return cached
        found = list(self._strict.get(folded, ())) + list(self._words.get(key, ()))
        for index, ends in ((self._stems, False), (self._tails, True)):
            for size, entries in index.items():
                if len(key) > size or not ends:
                    found += [e for e in entries.get(key[-size:] if ends else key[:size], ()) if not e.elements[0].strict]
                    found += [e for e in entries.get(folded[-size:] if ends else folded[:size], ()) if e.elements[0].strict]
        if folded.isdigit():
            found += [e for e in self._numbers if e.elements[0].matches(folded, key)]
        if not found and len(key) >= TYPO_MIN - 1:
            for variant in _deletes(key) | {key}:
                found += [e for e in self._typos.get(variant, ()) if e not in found and one_typo(key, e.elements[0].text)]
        result = tuple(found)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[(folded, key)] = result
        return result

    def scan(self, tokens: Tokens) -> dict[str, list[tuple[int, int]]]:
        """Every category found in the message, as word spans [start, end) that stay within one sentence."""
        found: dict[str, list[tuple[int, int]]] = {}
        words, keys = tokens.folded, tokens.keys
        bounds = tokens.sentence_starts[1:] + (len(words),)
        sentence, present = -1, frozenset()
        for start in range(len(words)):
            if sentence < 0 or start >= bounds[sentence]:
                sentence += 1
                first = tokens.sentence_starts[sentence]
                present = frozenset(words[first:bounds[sentence]]) | frozenset(keys[first:bounds[sentence]])
            stop = bounds[sentence]
            for entry in self.starting_with(words[start], keys[start]):
                if entry.needed and not entry.needed <= present:
                    continue
                end = _match_rest(entry.elements, tokens, start + 1, stop, 1)
                if end is not None:
                    found.setdefault(entry.category, []).append((start, end))
            if start + 1 < stop:
                pairs = self._pairs.get((keys[start], keys[start + 1]), []) + self._strict_pairs.get((words[start], words[start + 1]), [])
                for entry in pairs:
                    end = _match_rest(entry.elements, tokens, start + 2, stop, 2)
                    if end is not None:
                        found.setdefault(entry.category, []).append((start, end))
        return {category: sorted(set(spans)) for category, spans in found.items()}


def _paired(entry: Entry) -> bool:
    """True for an entry that starts with two plain words (indexed by both, the fast path for phrases)."""
    first, *rest = entry.elements
    return bool(rest) and rest[0].kind == "word" and rest[0].strict == first.strict and len(rest[0].text) < TYPO_MIN


def _match_rest(elements: tuple[Element, ...], tokens: Tokens, at: int, stop: int, i: int) -> int | None:
    """Match elements[i:] from word `at` on (not past `stop`); return the end of the match or None."""
    words, keys = tokens.folded, tokens.keys
    while i < len(elements):
        element = elements[i]
        if element.kind == "gap":
            for skip in range(GAP + 1):
                if at + skip >= stop:
                    return None
                end = _match_rest(elements, tokens, at + skip, stop, i + 1)
                if end is not None:
                    return end
            return None
        if element.kind == "end":
            return at if at == stop or at in tokens.clause_starts else None
        if at >= stop or not element.matches(words[at], keys[at]):
            return None
        at, i = at + 1, i + 1
    return at
