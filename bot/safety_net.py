"""The emergency safety net: rules that escalate a message before, and without, the NLU model."""

from __future__ import annotations

import logging

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.safety_lexicon import Entry, Lexicon, Tokens, parse_entry, tokenize
from bot.safety_rules import Guard, Rule, Used, read_rule
from bot.text import normalise

ESCALATION_INTENTS = ("emergency", "self_harm")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml reads the rules file ten times faster
SECTIONS = {"words", "guards", "rules", "exceptions", *ESCALATION_INTENTS}
GUARD_KEYS = {"words", "near", "after", "lifted_by", "lifted_nearby", "lifted_in", "lifted_beside", "within", "not_after", "not_beside", "needs", "dates_before", "with"}

log = logging.getLogger(__name__)


class SafetyNetError(ValueError):
    """The rules file cannot be used; `problems` lists each rule that misses its examples."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class SafetyHit:
    """Which rule fired, for which escalation intent, and what it makes the bot do (escalate, or check: ask)."""

    intent: str
    rule: str
    action: str = "escalate"


@dataclass(frozen=True)
class Explanation:
    """A hit with the words that made it fire: (word list, word span) pairs; empty for a pattern."""

    hit: SafetyHit
    tokens: Tokens
    used: tuple[Used, ...]


@dataclass(frozen=True)
class SafetyNet:
    """Word rules over word lists, then regular-expression patterns, minus exceptions that veto a hit."""

    rules: tuple[tuple[str, re.Pattern[str], re.Pattern[str] | None], ...]  # (intent, match, unless)
    exceptions: tuple[re.Pattern[str], ...]
    word_rules: tuple[Rule, ...] = ()
    lexicon: Lexicon = field(default_factory=lambda: Lexicon([]))
    guards: dict[str, Guard] = field(default_factory=dict)
    pattern_names: dict[int, str] = field(default_factory=dict)  # index in `rules` -> a readable `name:`
    sentence_vetoes: dict[int, re.Pattern[str]] = field(default_factory=dict)  # index -> `unless_in_sentence`

    @classmethod
    def load(cls, path: Path, strict: bool = True) -> "SafetyNet":
        """Read and compile the rules file (data/safety_net.yml); every rule's examples must fire.

        `make validate` and the tests are strict. The running service is not: a rule whose own
        example no longer fires is logged as an error, and every rule still works, because a
        service that refused to start over one example would answer no emergency at all.
        """
        try:
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        except (OSError, yaml.YAMLError) as err:
            raise SafetyNetError(f"{path}: cannot read safety net rules: {err}") from None
        return cls.from_doc(doc, path, strict)

    @classmethod
    def from_doc(cls, doc: object, path: Path | str, strict: bool = True) -> "SafetyNet":
        """Compile rules already read from YAML (`path` names their file in errors); see `load`."""
        if not isinstance(doc, dict):
            raise SafetyNetError(f"{path}: expected a mapping with {', '.join(ESCALATION_INTENTS)}")
        if set(doc) - SECTIONS:
            raise SafetyNetError(f"{path}: unknown sections {sorted(set(doc) - SECTIONS)} (known: {sorted(SECTIONS)})")
        patterns, names, in_sentence = [], {}, {}
        for intent in ESCALATION_INTENTS:
            for rule in doc.get(intent) or []:
                if isinstance(rule, dict):
                    unknown = set(rule) - {"match", "unless", "unless_in_sentence", "name"}
                    if unknown or "match" not in rule:
                        raise SafetyNetError(
                            f"{path}: {intent}: a rule mapping needs 'match' (and may have 'name', 'unless', 'unless_in_sentence'), got {sorted(rule)}"
                        )
                    unless = _compile(path, intent, rule["unless"]) if rule.get("unless") else None
                    if rule.get("name"):
                        names[len(patterns)] = str(rule["name"])
                    if rule.get("unless_in_sentence"):
                        in_sentence[len(patterns)] = _compile(path, intent, rule["unless_in_sentence"])
                    patterns.append((intent, _compile(path, intent, rule["match"]), unless))
                else:
                    patterns.append((intent, _compile(path, intent, rule), None))
        try:
            entries, guards = _word_lists(doc.get("words") or {}, doc.get("guards") or {})
            known = {e.category for e in entries} | set(guards)
            companions = _companions(doc.get("guards") or {})
            word_rules = tuple(read_rule(raw, known, companions) for raw in doc.get("rules") or [])
        except ValueError as err:
            raise SafetyNetError(f"{path}: {err}") from None
        if not patterns and not word_rules:
            raise SafetyNetError(f"{path}: no rules for {' or '.join(ESCALATION_INTENTS)}")
        exceptions = tuple(_compile(path, "exceptions", p) for p in doc.get("exceptions") or [])
        net = cls(tuple(patterns), exceptions, word_rules, Lexicon(entries), guards, names, in_sentence)
        problems = net.rule_problems()
        if problems and strict:
            raise SafetyNetError(f"{path}: " + "; ".join(problems), tuple(problems))
        for problem in problems:
            log.error("%s: %s (run `make validate`)", path, problem)
        return net

    def check(self, text: str) -> SafetyHit | None:
        """Return the first rule that escalates `text`, or None (rules with `action: check` do not count)."""
        explained = self.explain(text)
        return explained.hit if explained is not None else None

    def assess(self, text: str) -> SafetyHit | None:
        """The first rule that escalates `text`; else the first that asks (action "check"); else None."""
        explained = self.explain(text, asking=True)
        return explained.hit if explained is not None else None

    def explain(self, text: str, asking: bool = False) -> Explanation | None:
        """The first rule that escalates `text`, with the words it used; with `asking`, else the first that asks."""
        folded = normalise(text)
        if not folded or any(e.search(folded) for e in self.exceptions):
            return None
        tokens = tokenize(text)
        ask: Explanation | None = None
        if self.word_rules:
            found = self.lexicon.scan(tokens)
            for rule in self.word_rules:
                if rule.action != "escalate" and (not asking or ask is not None):
                    continue
                used = rule.match(tokens, found, self.guards)
                if used is None:
                    continue
                explained = Explanation(SafetyHit(rule.intent, rule.name, rule.action), tokens, tuple(used))
                if rule.action == "escalate":
                    return explained
                ask = explained
        for index, (intent, pattern, unless) in enumerate(self.rules):
            if self._pattern_fires(index, pattern, unless, folded):
                return Explanation(SafetyHit(intent, self.pattern_names.get(index, pattern.pattern)), tokens, ())
        return ask

    def _pattern_fires(self, index: int, pattern: re.Pattern[str], unless: re.Pattern[str] | None, folded: str) -> bool:
        """True when `pattern` matches, `unless` nowhere, and `unless_in_sentence` not in the sentence up to the match's end."""
        if unless and unless.search(folded):
            return False
        veto = self.sentence_vetoes.get(index)
        for found in pattern.finditer(folded):
            if veto is None:
                return True
            start = max(folded.rfind(c, 0, found.start()) for c in ".!?\n") + 1
            if not veto.search(folded[start:found.end()]):
                return True
        return False

    def fires(self, rule: Rule, text: str) -> bool:
        """True when this one rule fires on `text` (exceptions and other rules aside)."""
        tokens = tokenize(text)
        return rule.match(tokens, self.lexicon.scan(tokens), self.guards) is not None

    def rule_problems(self) -> list[str]:
        """Rules that miss one of their own examples or fire on one of their quiet messages."""
        problems = [f"rule {r.name}: does not fire on its example {t!r}" for r in self.word_rules for t in r.examples if not self.fires(r, t)]
        problems += [f"rule {r.name}: fires on its quiet message {t!r}" for r in self.word_rules for t in r.quiet if self.fires(r, t)]
        return problems

    def unused_lists(self) -> list[str]:
        """Word lists and guards that no rule and no guard names: written, scanned, never consulted."""
        named = {c for r in self.word_rules for c in r.categories()}
        named |= {c for g in self.guards.values() for c in (*g.lifted_by, *g.lifted_nearby, *g.not_beside, *g.needs)}
        return sorted({e.category for e in self.lexicon.entries} - named)


def _word_lists(words: object, guards: object) -> tuple[list[Entry], dict[str, Guard]]:
    """Parse the `words` lists and the `guards` (word lists with a scope) into entries."""
    if not isinstance(words, dict) or not isinstance(guards, dict):
        raise ValueError("'words' and 'guards' must be mappings of a name to its list")
    entries: list[Entry] = []
    for name, items in words.items():
        entries += [parse_entry(str(name), item, strict=False) for item in _list(name, items)]
    found: dict[str, Guard] = {}
    for name, spec in guards.items():
        if not isinstance(spec, dict) or set(spec) - GUARD_KEYS:
            used = f"; unknown: {', '.join(sorted(map(str, set(spec) - GUARD_KEYS)))}" if isinstance(spec, dict) else ""
            raise ValueError(f"guard {name}: a mapping with 'words' (and {', '.join(repr(k) for k in sorted(GUARD_KEYS - {'words'}))}){used}")
        if spec.get("within", "sentence") not in ("sentence", "clause"):
            raise ValueError(f"guard {name}: 'within' must be sentence or clause")
        if spec.get("lifted_in", "clause") not in ("clause", "message") or ("lifted_in" in spec and spec.get("within") == "clause"):
            raise ValueError(f"guard {name}: 'lifted_in' (clause or message) is for a guard within a sentence")
        if name in words:
            raise ValueError(f"guard {name}: a word list has the same name")
        entries += [parse_entry(str(name), item, strict=True) for item in _list(name, spec.get("words"))]
        near = spec.get("near")
        if near is not None and (not isinstance(near, int) or near < 0):
            raise ValueError(f"guard {name}: 'near' must be a number of words")
        if near is not None and {"within", "lifted_by", "lifted_in", "lifted_beside", "not_after", "not_beside", "needs"} & set(spec):
            raise ValueError(f"guard {name}: a guard with 'near' takes only 'words' and 'after'")
        lifted = tuple(spec.get("lifted_by") or ())
        nearby = tuple(spec.get("lifted_nearby") or ())
        beside = tuple(spec.get("not_beside") or ())
        needs = tuple(spec.get("needs") or ())
        for option, lists in (("lifted_by", lifted), ("lifted_nearby", nearby), ("not_beside", beside), ("needs", needs)):
            if set(lists) - set(words):
                raise ValueError(f"guard {name}: '{option}' names no word list: {sorted(set(lists) - set(words))}")
        if nearby and (near is not None or spec.get("within") == "clause"):
            raise ValueError(f"guard {name}: 'lifted_nearby' is for a guard within a sentence")
        dates = spec.get("dates_before")
        if dates is not None and (not isinstance(dates, int) or dates < 1 or near is not None or spec.get("within") == "clause"):
            raise ValueError(f"guard {name}: 'dates_before' (a number of words) is for a guard within a sentence")
        after = frozenset(normalise(str(w)) for w in spec.get("after") or ())
        not_after = frozenset(normalise(str(w)) for w in spec.get("not_after") or ())
        if not isinstance(spec.get("lifted_beside", True), bool) or ("lifted_beside" in spec and not lifted):
            raise ValueError(f"guard {name}: 'lifted_beside' (true or false) is for a guard with 'lifted_by'")
        found[str(name)] = Guard(
            str(name), near, after, lifted, spec.get("within") == "clause", not_after, spec.get("lifted_in", "clause"), spec.get("lifted_beside", True), nearby, beside,
            needs, dates,
        )
    return entries, found


def _companions(guards: dict) -> dict[str, tuple[str, ...]]:
    """Each guard's `with`: further guards that every rule listing it in `unless` gets too, after its own."""
    companions: dict[str, tuple[str, ...]] = {}
    for name, spec in guards.items():
        listed = spec.get("with") or []
        if not isinstance(listed, list) or not all(isinstance(g, str) and g in guards and g != name for g in listed):
            raise ValueError(f"guard {name}: 'with' must list other guards, got {listed!r}")
        if any(guards[g].get("with") for g in listed):
            raise ValueError(f"guard {name}: a guard in 'with' has companions of its own; list them here instead")
        if listed:
            companions[str(name)] = tuple(listed)
    return companions


def _list(name: object, items: object) -> list[str]:
    if not isinstance(items, list) or not items:
        raise ValueError(f"word list {name}: must be a non-empty list")
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"word list {name}: {item!r} is not text (write 'no', 'yes', 'on' in quotes)")
    return items


def _compile(path: Path, section: str, pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern.strip():
        raise SafetyNetError(f"{path}: {section}: every rule must be a non-empty string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise SafetyNetError(f"{path}: {section}: bad pattern {pattern!r}: {err}") from None
