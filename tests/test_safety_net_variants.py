"""The safety net's rules generalise: every rule's examples still fire when citizens write them differently."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from bot.safety_lexicon import COMMON, TYPO_MIN, Tokens, one_typo, plain
from bot.text import normalise
from bot.safety_net import SafetyNet, SafetyNetError
from nlu.examples import read_dir, read_examples
from tests.conftest import DATA, ROOT

NET = SafetyNet.load(DATA / "safety_net.yml")
ASCII_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"})
PLAIN_VOWELS = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "Ä": "A", "Ö": "O", "Ü": "U", "ß": "s"})

# Training examples of other intents that the net may escalate, each with the reason a person agreed.
# Keep this short: a new entry means a rule fires on a message that is not an emergency.
ALLOWED_FALSE_ALARMS: dict[str, str] = {}

# Held-out emergency/self-harm examples (tests/test_nlu.yml) the net is known to miss; the model must catch them.
KNOWN_MISSES: dict[str, str] = {}


def separators(tokens: Tokens) -> list[str]:
    """What stands before each word: ". " at a sentence start, ", " at a clause start, else a space."""
    return ["" if i == 0 else ". " if i in tokens.sentence_starts else ", " if i in tokens.clause_starts else " "
            for i in range(len(tokens.folded))]


def render(words: list[str], seps: list[str]) -> str:
    """Write words back as a message."""
    return "".join(sep + word for sep, word in zip(seps, words))


def word_variants(text: str) -> list[tuple[str, str]]:
    """Variants built from the words the rule used: another word order, another inflection, a typo."""
    explained = NET.explain(text, asking=True)
    assert explained is not None, f"does not fire: {text!r}"
    tokens, words = explained.tokens, list(explained.tokens.folded)
    seps = separators(tokens)
    phrases = {i for _, (a, b) in explained.used if b - a > 1 for i in range(a, b)}
    singles = sorted({(a, category) for category, (a, b) in explained.used if b - a == 1 and a not in phrases})
    out: list[tuple[str, str]] = []
    for at, category in singles:
        start = max(s for s in tokens.sentence_starts if s <= at)
        if at > start:
            moved = words[:start] + [words[at]] + words[start:at] + words[at + 1:]
            moved_seps = seps[:start + 1] + [" "] + seps[start + 1:at] + seps[at + 1:]
            out.append((f"'{words[at]}' moved to the front", render(moved, moved_seps)))
        forms = [e.elements[0].text for e in NET.lexicon.entries if e.category == category and len(e.elements) == 1
                 and e.elements[0].kind == "word" and not e.elements[0].strict]
        key = tokens.keys[at]
        for other in [f for f in forms if f != key and f[:4] == key[:4]][:3]:
            out.append((f"'{words[at]}' inflected as '{other}'", render(words[:at] + [other] + words[at + 1:], seps)))
        if len(key) >= TYPO_MIN and key in forms:
            for typo in (key[:3] + key[4] + key[3] + key[5:], key[:4] + key[5:], key[:5] + "x" + key[6:]):
                if plain(typo) != key and one_typo(plain(typo), key):
                    out.append((f"typo '{typo}'", render(words[:at] + [typo] + words[at + 1:], seps)))
    return out


def without_umlauts(word: str) -> str:
    """ä -> a, ö -> o, ü -> u, ß -> s, except where that spells an everyday word ("hält" stays, not "halt")."""
    plain_word = word.translate(PLAIN_VOWELS)
    return word if plain_word != word and normalise(plain_word) in COMMON else plain_word


def text_variants(text: str) -> list[tuple[str, str]]:
    """Variants of the whole text: case, punctuation, umlaut spellings, clause order within each sentence."""
    out = [
        ("upper case", text.upper()),
        ("no punctuation", re.sub(r"[^\w\s]", " ", text)),
        ("ae/oe/ue/ss", text.translate(ASCII_UMLAUTS)),
        ("a/o/u/s", re.sub(r"\w+", lambda m: without_umlauts(m.group()), text)),
    ]
    sentences = re.split(r"(?<=[.!?])\s+", text)
    reordered = " ".join(", ".join(reversed(s.rstrip(".!?").split(", "))) + s[len(s.rstrip(".!?")):] for s in sentences)
    if reordered != text:
        out.append(("clauses reversed", reordered))
    return out


@pytest.mark.parametrize("rule", NET.word_rules, ids=lambda r: r.name)
def test_every_rule_fires_on_variants_of_its_examples(rule) -> None:
    """Word order, inflection, typos, umlaut spellings and missing punctuation do not stop a rule."""
    missed = []
    for example in rule.examples:
        for kind, variant in text_variants(example) + word_variants(example):
            hit = NET.check(variant) if rule.action == "escalate" else NET.assess(variant)  # a `check` rule: asked, at least
            if hit is None or hit.intent != rule.intent:
                missed.append(f"{kind}: {variant!r} (from {example!r}) -> {hit}")
    assert not missed, "\n".join(missed)


def test_variants_are_really_different_messages() -> None:
    """The generator does change the text (otherwise the test above proves nothing)."""
    made = word_variants("mein mann schlägt mich, er hat ein messer")
    texts = {t for _, t in made}
    assert "messer mein mann schlaegt mich, er hat ein" in texts, texts
    assert any("schlagen" in t or "schlaegst" in t for t in texts)
    typos = word_variants("der rentner ist bewusstlos")
    assert any(kind.startswith("typo") for kind, _ in typos)


def test_hard_negatives_in_the_training_data_stay_quiet() -> None:
    """No training example of another intent (domestic violence, tip-offs, reports, ...) is escalated."""
    others = [e for e in read_dir(DATA / "nlu") if e.intent not in ("emergency", "self_harm")]
    tripped = []
    for example in others:
        hit = NET.check(example.text)
        if hit is not None and example.text not in ALLOWED_FALSE_ALARMS:
            tripped.append(f"{example.path.name}:{example.line} [{example.intent}] {example.text!r} -> rule {hit.rule}")
    assert len(others) > 1000
    assert not tripped, "narrow the rule (a guard or a `quiet:` message), or add to ALLOWED_FALSE_ALARMS with a reason:\n" + "\n".join(tripped)


def test_held_out_emergencies_fire() -> None:
    """Every emergency and self-harm message of tests/test_nlu.yml is escalated by the net alone."""
    held_out = [e for e in read_examples(ROOT / "tests" / "test_nlu.yml") if e.intent in ("emergency", "self_harm")]
    missed = [f"line {e.line}: {e.text!r}" for e in held_out if NET.check(e.text) is None and e.text not in KNOWN_MISSES]
    assert len(held_out) >= 30
    assert not missed, "\n".join(missed)


def test_the_net_is_fast_on_typical_and_on_huge_messages() -> None:
    """Well under 1 ms per message on average; a 4,000-character message takes milliseconds, not seconds."""
    texts = [e.text for e in read_dir(DATA / "nlu")][:1000]
    started = time.perf_counter()
    for text in texts:
        NET.check(text)
    mean = (time.perf_counter() - started) / len(texts)
    assert mean < 0.001, f"{mean * 1000:.2f} ms per message"
    for huge in (
        ("nicht mehr " * 400)[:4000],
        ("er hat ein messer und schlägt gestern nicht, jemand im haus wenn " * 70)[:4000],
        "a" * 4000,
        ("hilfe!!! " * 500)[:4000],
        ("in der wohnung, " * 300)[:4000],
    ):
        started = time.perf_counter()
        NET.check(huge)
        assert time.perf_counter() - started < 0.1, huge[:40]


@pytest.mark.parametrize(
    "rules, message",
    [
        ("  - {name: r, intent: emergency, all: [weapon], examples: [hallo]}\n", "rule r: does not fire on its example 'hallo'"),
        ("  - {name: r, intent: emergency, all: [weapon], examples: [messer], quiet: [ein messer]}\n", "fires on its quiet message"),
        ("  - {name: r, intent: emergency, all: [weapon, nonsense], examples: [messer]}\n", "no word list or guard called nonsense"),
        ("  - {name: r, intent: emergency, all: [weapon]}\n", "'examples' must be a list"),
        ("  - {name: r, intent: greet, all: [weapon], examples: [messer]}\n", "intent must be emergency or self_harm"),
        ("  - {name: r, intent: emergency, action: ask, all: [weapon], examples: [messer]}\n", "action must be escalate or check"),
    ],
)
def test_a_rule_that_misses_its_own_examples_is_refused(tmp_path: Path, rules: str, message: str) -> None:
    path = tmp_path / "safety_net.yml"
    path.write_text("words:\n  weapon: [messer]\nguards: {}\nrules:\n" + rules, encoding="utf-8")
    with pytest.raises(SafetyNetError, match=re.escape(message)):
        SafetyNet.load(path)


@pytest.mark.parametrize("entry", ["'*'", "'a*'", "'... messer'", "'messer ...'", "'$ messer'", "'mes$ser'"])
def test_an_unreadable_word_list_entry_is_refused(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "safety_net.yml"
    path.write_text(f"words:\n  weapon: [{entry}]\nrules: []\nemergency: ['x']\n", encoding="utf-8")
    with pytest.raises(SafetyNetError, match="weapon"):
        SafetyNet.load(path)


def test_make_validate_names_the_rule_and_line_that_misses_its_example(tmp_path: Path) -> None:
    """A trainer who adds an example that no longer fires sees the rule's line in `make validate`."""
    from nlu.validate import check_safety_net

    source = (DATA / "safety_net.yml").read_text(encoding="utf-8")
    broken = source.replace("      - Hilfe! Mein Mann schlägt mich, er hat ein Messer\n",
                            "      - Hilfe! Mein Mann schlägt mich, er hat ein Messer\n      - wie spät ist es\n", 1)
    assert broken != source
    (tmp_path / "safety_net.yml").write_text(broken, encoding="utf-8")
    problems = check_safety_net(tmp_path)
    line = next(n for n, row in enumerate(broken.splitlines(), 1) if row.strip() == "- name: weapon_and_violence")
    assert [(p.level, p.where, p.text) for p in problems] == [
        ("error", f"{tmp_path / 'safety_net.yml'}:{line}", "rule weapon_and_violence: does not fire on its example 'wie spät ist es'")
    ]
    assert check_safety_net(DATA) == []


def test_qu_before_e_is_no_umlaut_so_a_typo_never_turns_slipping_into_crushing(tmp_path: Path) -> None:
    """Folding "ue" to "u" read "gequetscht" as "gequtscht", one letter from "gerutscht" (I slipped): no alarm."""
    path = tmp_path / "safety_net.yml"
    path.write_text("words:\n  crush: [gequetscht]\nguards: {}\nrules:\n"
                    "  - {name: crushed, intent: emergency, all: [crush], examples: [bein gequetscht]}\n", encoding="utf-8")
    net = SafetyNet.load(path)
    assert net.check("bin auf dem eis gerutscht, war aber nix") is None
    assert net.check("mein bein ist eingeklemmt und gequetscht") is not None
    assert net.check("mein bein ist gequetscth") is not None  # and one typo in a long word


@pytest.mark.parametrize("entry", ["її", "ii", "ии"])
def test_an_entry_that_folds_to_a_one_letter_word_is_refused(tmp_path: Path, entry: str) -> None:
    """'її' (her) folds to 'і' (and): as a list word it would match almost any Ukrainian message (session 18)."""
    path = tmp_path / "safety_net.yml"
    path.write_text(f"words:\n  person: [{entry}]\nrules: []\nemergency: ['x']\n", encoding="utf-8")
    with pytest.raises(SafetyNetError, match="one-letter word"):
        SafetyNet.load(path)
    path.write_text(f"words:\n  person: ['чіпає {entry}', 'hh']\nrules: []\nemergency: ['x']\n", encoding="utf-8")
    SafetyNet.load(path)  # inside a phrase, or a letter that is no word ("hh", laughter), it stays allowed
