"""Which language a citizen writes: German or English (the model reads those) or another of data/languages/.

`detect_language` is the word-count guess between German and English (no library; the NLU side uses
it; dialect counts as German). `LanguageId` adds the languages of data/languages/: the lingua library
(lingua-language-detector, offline) reads native-script and well-written text; the languages' marker
words (Cyrillic ones also in their usual Latin spellings) and Arabizi digits catch what phones write
("yardim edin", "pomogite", "sa3dni"); letters only one language uses (і/ы, پ/ة, ş/ł/ț) tell
languages of one script apart. A marker word that is also a German or English word counts for
neither, so German and English messages stay with the model (bench/RESULTS.md, section 9).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from bot.safety_lexicon import tokenize
from bot.text import clean

_WORD = re.compile(r"[a-zäöüß']+")
ENGLISH = frozenset(
    """
    the a an and or but is are was were be been am i i'm im you your you're my me we our us
    he she it they them his her their this that these those what why how when where who which
    hello hi hey thanks thank please help need want can could would should will do does did
    not don't dont can't cant have has had there here with without for from about of to in on
    at by someone somebody something my police officer stolen lost found report bike phone
    wallet call now right just yes no ok okay bye goodbye talk human person real bot are you
    """.split()
)
GERMAN = frozenset(
    """
    der die das ein eine einen einem einer und oder aber ist sind war waren bin bist sein
    ich du er sie es wir ihr mein meine mich mir dich dir uns euch was warum wie wann wo wer
    hallo moin servus hey danke bitte hilfe brauche will kann könnt koennt würde muss soll
    nicht kein keine nichts hab habe hat haben da hier mit ohne für von über zu im in am auf
    bei jemand etwas polizei anzeige fahrrad handy geklaut gestohlen verloren gefunden jetzt
    gerade ja nein okay tschüss tschau mensch echt bot seid ihr gibt es schon noch auch mal
    nen ne grad isch net nich nix wat tun
    """.split()
)
# Bavarian, Austrian, Swiss, Swabian and Hessian words and spellings: they count for German ("i mog nimma"
# has the English-looking "i" but is German).
DIALECT = frozenset(
    """
    mog nimma nimmer ois oiss zvui zvü koa koan koane hob hoab hod hot hed ned nid nit scho gell gelle gö
    mia samma hamma ham oana oaner oans heast oida heid heit wos bissl bisserl gscheit gsehn gsagt gmacht
    ogruafn griaß pfiat servas moi mei dei ko wü mecht mechat muas kimmt gehts viu mau vielmal grüezi chönd
    chan gsi hälfe velo nöd öppis ebbes ebbe gugg gude babbel uff aach hadde mol emol etz jetz lebn radl
    gstohln worn kieberer maschin echtn redn wurscht boid des dees vun kumm kummt dehääm dehäm sin em mer
    hück jet dat datt watt nä jong
    """.split()
)
# More everyday German and English, with chat spellings: a marker word that is also one of these is no
# evidence for another language, and these words count against one.
EVERYDAY = frozenset(
    """
    den dem dass weil wenn dann denn doch so sehr viel gut schlecht heute gestern morgen immer nie schnell
    gleich weg los mann frau kind kinder freund freundin bruder schwester mutter vater haus wohnung tuer
    strasse auto bus bahn geld angst schlaegt bedroht sofort kommen komm gehen geht machen mach sagen sag
    wissen weiss sehen leute typ digga alter lol xd omg wtf mag nee jau moinsen tach ei halt eh jo au
    just get got go going gonna wanna gotta know think see say said tell told ive its thats theyre youre
    u ur pls plz thx ty yeah yep nope sorry idk tbh btw later cya
    """.split()
)
_CYRILLIC = re.compile(r"[\u0400-\u04ff\u0500-\u052f]")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
_LATIN = re.compile(r"[a-zA-Z\u00c0-\u024f\u1e00-\u1eff]")
# Letters that only one language of a script uses (as phones type them, before any folding).
HINT_LETTERS = {
    "uk": "іїєґІЇЄҐ", "ru": "ыэъёЫЭЪЁ",  # Cyrillic
    "fa": "پچژگکی", "ar": "ةيىكإؤ",  # Arabic script: Persian keyboards type ک ی, Arabic ones ك ي ى
    "tr": "ğışĞİŞ", "pl": "ąćęłńśźżĄĆĘŁŃŚŹŻ", "ro": "ășțĂȘȚţŢ",  # not â î (French, Turkish), nor ş (Turkish)
}
# Letters of a keyboard that writers of a neighbouring language use too: Persian typed on an Arabic keyboard has
# ي ك ى all through ("خيلي", "ميكنه"). They count once per message, and never decide alone.
SHARED_KEYS = {"ar": "يكى"}
# Usual Latin spellings of Cyrillic letters on phones: a Cyrillic marker word ("меня") also matches them ("menya").
ROMAN = {
    "а": "a", "б": "b", "в": "v", "г": "g h", "д": "d", "е": "e", "ж": "zh j", "з": "z", "и": "i y", "й": "y j i",
    "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f",
    "х": "kh h", "ц": "ts c", "ч": "ch", "ш": "sh", "щ": "shch sch", "ъ": "", "ы": "y i", "ь": "", "э": "e",
    "ю": "yu ju", "я": "ya ja", "і": "i", "ї": "yi i", "є": "ye e", "ґ": "g", "ё": "yo e",
}
# Arabic in Latin letters writes the sounds Latin lacks with digits ("sa3dni", "7abibi", "la2"): each such word
# counts as an Arabic marker word. Not "3am", "3rd", "7er" (times, ordinals, German "3er").
ARABIZI = re.compile(r"(?<![^\W_])(?:[a-z]*[a-z][23579][a-z]+|[37](?!(?:am|pm|rd|th|st|nd|er|ern|mal|h)\b)[a-z]{2,})(?![^\W_])")
SCRIPTS = {"cyrillic": ("ru", "uk", "bg", "be", "sr", "mk", "kk", "mn"), "arabic": ("ar", "fa", "ur")}
# Languages the library also knows, so that French or Croatian is not forced into Romanian or Polish.
# Each costs about 6 MB of memory; Bosnian, Serbian, Slovak and Slovene read as Croatian or Czech.
NEIGHBOURS = ("fr", "es", "it", "pt", "nl", "hr", "cs", "sq", "hu")
UNLIKE = 0.25  # the library's German + English below this: the text reads as neither
ALONE = 0.7  # the library's confidence that decides without marker words or letters
SURE = 0.75  # German vs English: the library's share that decides a tied word count
SAMPLE = 1000  # characters read of a long message (the start tells the language)
SAMPLE_SENTENCES = (  # read once at start so the library's models are loaded before the first message
    "Hallo, mein Fahrrad wurde gestern geklaut.", "Hello, someone stole my bike yesterday.",
    "Merhaba, bisikletim dün çalındı.", "Dzień dobry, wczoraj ukradli mi rower.",
    "Bună ziua, ieri mi-au furat bicicleta.", "Здравствуйте, вчера украли мой велосипед.",
    "Добрий день, вчора вкрали мій велосипед.", "مرحبا، سرقوا دراجتي أمس.",
    "سلام، دیروز دوچرخه‌ام را دزدیدند.", "Bonjour, on m'a volé mon vélo hier.",
    "Dobar dan, jučer su mi ukrali bicikl.", "Hola, ayer me robaron la bicicleta.",
    "Ciao, ieri mi hanno rubato la bicicletta.", "Olá, ontem roubaram a minha bicicleta.",
    "Hallo, gisteren is mijn fiets gestolen.", "Dobrý den, včera mi ukradli kolo.",
    "Përshëndetje, dje më vodhën biçikletën.", "Jó napot, tegnap ellopták a biciklimet.",
)
log = logging.getLogger(__name__)
_DETECTORS: dict[frozenset[str], Any] = {}  # one lingua detector per set of languages, per process
_LOCK = threading.Lock()


def _counts(text: str) -> tuple[int, int]:
    """German and English words in `text` (dialect counts as German; each ä ö ü ß as two German words)."""
    words = _WORD.findall(text.lower())
    german = sum(w in GERMAN or w in DIALECT for w in words) + 2 * sum(ch in "äöüß" for ch in text.lower())
    return german, sum(w in ENGLISH for w in words)


def _own_letters(text: str, code: str) -> int:
    """How many letters in `text` only `code` uses (not those a neighbour's keyboard types as well)."""
    letters, shared = HINT_LETTERS.get(code, ""), SHARED_KEYS.get(code, "")
    return sum(ch in letters and ch not in shared for ch in text)


def _hints(text: str, code: str) -> int:
    """Letters that hint at `code`: its own ones, plus one if any of its keyboard's shared letters is there."""
    return _own_letters(text, code) + any(ch in SHARED_KEYS.get(code, "") for ch in text)


def detect_language(text: str, default: str = "de") -> str:
    """Return "en" when the text reads as English, else "de" (German first)."""
    german, english = _counts(text)
    if english > german:
        return "en"
    if german > english:
        return "de"
    return default


def _folded(words: Iterable[str]) -> frozenset[str]:
    """Words as the safety net and identification see them (lowercase, accents folded)."""
    return frozenset(w for word in words for w in tokenize(word).folded)


GERMAN_ENGLISH = _folded(ENGLISH | GERMAN | DIALECT | EVERYDAY)


def romanized(word: str, limit: int = 64) -> set[str]:
    """Latin spellings of a Cyrillic word ("помогите" -> "pomogite", "pomohyte", ...); none for other words."""
    if not _CYRILLIC.search(word):
        return set()
    spellings = [""]
    for i, ch in enumerate(word):
        options = (ROMAN[ch].split() or [""]) if ch in ROMAN else [ch]
        options += ["ye"] if ch == "е" and i == 0 else []  # "есть" -> "est", "yest"
        spellings = [s + o for s in spellings for o in options][:limit]
    return {s for s in spellings if s.isascii() and s.isalpha()}


def detector(codes: Iterable[str]) -> Any:
    """The lingua detector for these ISO 639-1 codes (those it knows), built once per process; None without lingua."""
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
    except ImportError:  # the NLU side (Python 3.10) lacks it: letters, marker words and word counts still work
        log.warning("lingua-language-detector is not installed: languages are told by letters and marker words only")
        return None
    known = frozenset(c for c in codes if hasattr(IsoCode639_1, c.upper()))
    with _LOCK:
        if known not in _DETECTORS:
            isos = [getattr(IsoCode639_1, c.upper()) for c in sorted(known)]
            built = LanguageDetectorBuilder.from_iso_codes_639_1(*isos).with_preloaded_language_models().build()
            for sentence in SAMPLE_SENTENCES:  # lingua loads each language's models on first use
                built.compute_language_confidence_values(sentence)
            _DETECTORS[known] = built
        return _DETECTORS[known]


class LanguageId:
    """German, English or one of the marker languages: the language a message is mainly written in."""

    def __init__(self, markers: Mapping[str, Iterable[str]]) -> None:
        folded = {code: _folded(words.split() if isinstance(words, str) else words)
                  for code, words in markers.items() if code not in ("de", "en")}
        folded = {code: words | {r for w in words for r in romanized(w)} for code, words in folded.items()}
        shared = GERMAN_ENGLISH & frozenset().union(*folded.values())
        self.markers = {code: words - shared for code, words in folded.items()}  # "nie", "sie": no evidence
        self.german_english = GERMAN_ENGLISH - shared
        # Loaded now, at start, so that the first message (maybe an emergency) does not wait for the models.
        self._detector = detector(("de", "en", *self.markers, *NEIGHBOURS))

    def likeliest(self, text: str) -> str | None:
        """Of the marker languages, the one this text most looks like (marker words, letters, the library), or None.

        For text that reads as German or English, or too short to tell, but that a foreign safety net
        caught ("intihar edicem de"): the reply goes out in the language it most resembles.
        """
        text = clean(text)[:SAMPLE]
        words = [w for w in tokenize(text).folded if not w.isdigit()]
        votes, sure = self._votes(words), self.confidences(text)
        hints = {c: _hints(text, c) for c in self.markers}
        score = {c: 2 * votes[c] + hints[c] + 4 * sure.get(c, 0.0) for c in self.markers}
        best = max(score, key=score.get, default=None)
        return best if best is not None and score[best] > 0 else None

    def confidences(self, text: str) -> dict[str, float]:
        """The library's confidence per language code (0..1, summing to 1), best first; {} without the library."""
        if self._detector is None:
            return {}
        values = self._detector.compute_language_confidence_values(text)
        return {v.language.iso_code_639_1.name.lower(): v.value for v in values if v.value > 0}

    def identify(self, text: str, default: str = "de") -> str:
        """"de", "en" or a marker language; short or unclear text (one word, "ok", emoji, numbers) -> `default`.

        One word in Cyrillic or Arabic letters gets its script's language (unless `default` is one of them).
        """
        text = clean(text)[:SAMPLE]
        words = [w for w in tokenize(text).folded if not w.isdigit()]
        cyrillic, arabic, latin = (len(p.findall(text)) for p in (_CYRILLIC, _ARABIC, _LATIN))
        if max(cyrillic, arabic) > latin:
            return self._script(text, words, "cyrillic" if cyrillic >= arabic else "arabic", default)
        if latin == 0:
            return default
        if len(words) < 2:  # one word: German/English as before, else the conversation's language
            return detect_language(text, default) if default in ("de", "en") else default
        return self._latin(text, words, default)

    def _votes(self, words: list[str]) -> Counter[str]:
        """Marker words per language; words of one or two letters ("la", "ne") count half."""
        votes: Counter[str] = Counter()
        for word in words:
            for code, markers in self.markers.items():
                if word in markers:
                    votes[code] += 1.0 if len(word) > 2 else 0.5
        return votes

    def _script(self, text: str, words: list[str], script: str, default: str) -> str:
        """A message mainly in Cyrillic or Arabic letters: letters, marker words and the library decide."""
        ours = [c for c in self.markers if c in SCRIPTS[script]]
        if not ours or default in ours and len(words) < 2:
            return default
        hints = {c: _hints(text, c) for c in ours}
        if len(ours) == 1:
            return ours[0]
        if sum(h > 0 for h in hints.values()) == 1 and any(_own_letters(text, c) for c in ours):
            return max(ours, key=lambda c: hints[c])  # only one language's letters, and not only shared keys
        votes, sure = self._votes(words), self.confidences(text)
        return max(ours, key=lambda c: (hints[c] + 2 * votes[c] + 4 * sure.get(c, 0.0), c == default))

    def _latin(self, text: str, words: list[str], default: str) -> str:
        """A message mainly in Latin letters: the library, marker words and German/English words decide."""
        votes, sure = self._votes(words), self.confidences(text)
        for code in self.markers:  # letters only this language uses ("ş", "ł", "ț") count as one marker word
            votes[code] += any(ch in HINT_LETTERS.get(code, "") for ch in text)
        if "ar" in self.markers:
            votes["ar"] += len(ARABIZI.findall(text.lower()))
        german_english = sum(w in self.german_english for w in words)
        top = max(sure, key=sure.get) if sure else None
        unlike = bool(sure) and sure.get("de", 0.0) + sure.get("en", 0.0) < UNLIKE
        if top in self.markers:
            evidence = votes[top]
            if evidence and (evidence >= german_english or unlike and sure[top] >= 0.5):
                return top  # the library names one of ours, and the message has its words or letters
            if unlike and sure[top] >= ALONE and len(set(words)) >= 3 and 4 * german_english <= len(words):
                return top  # the library alone, when it is sure and hardly a word reads as German or English
        ranked = sorted(self.markers, key=lambda c: (votes[c], sure.get(c, 0.0), c == default), reverse=True)
        best, runner_up = (ranked + [""])[:2] if ranked else ("", "")
        if best and votes[best] > german_english and votes[best] > votes[runner_up]:
            other = top in NEIGHBOURS and sure[top] >= 0.5  # the library reads French, Croatian ...
            if votes[best] >= 2 and (not other or 2 * votes[best] >= len(words)):
                return best  # its marker words outnumber the German and English ones and any other language's
            if votes[best] >= 1 and not german_english and unlike and len(words) >= 3 and not other:
                return best  # a marker word, and nothing reads as German, English or a language the library knows
        if default in self.markers and votes[default] and votes[default] >= german_english and top not in ("de", "en"):
            return default  # the conversation's language goes on
        if unlike and votes[best] and german_english <= 1:
            return default  # some words of ours, nothing reads as German or English: unclear
        return self._german_or_english(text, len(words), sure, default)

    @staticmethod
    def _german_or_english(text: str, length: int, sure: Mapping[str, float], default: str) -> str:
        """German or English: the word count (dialect counts as German); the library when that is close."""
        german, english = sure.get("de", 0.0), sure.get("en", 0.0)
        by_words = detect_language(text, "")
        german_words, english_words = _counts(text)
        tied, readable = german_words == english_words, german + english >= 0.3
        if length >= 3 and tied and readable and max(german, english) >= SURE * (german + english):
            return "de" if german > english else "en"
        if by_words:
            return by_words
        if default in ("de", "en") or length < 3 or not readable:
            return default
        return "de" if german >= english else "en"
