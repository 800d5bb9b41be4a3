"""Rules over word lists: which lists must meet in one sentence, in any order, and which guards veto them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.safety_lexicon import Tokens

Span = tuple[int, int]  # words [start, end)
Found = dict[str, list[Span]]
Used = tuple[str, Span]  # a word list and the words of the message it matched
RULE_ACTIONS = ("escalate", "check")  # what a rule that fires makes the bot do


@dataclass(frozen=True)
class Guard:
    """A word list that vetoes a rule: in the same sentence, or only `near` words from a matched word."""

    name: str
    near: int | None = None  # negation: at most this many words before a word the rule needs
    after: frozenset[str] = frozenset()  # ... or, for these words, right after it ("schlägt mich nicht")
    lifted_by: tuple[str, ...] = ()  # lists that cancel the guard in a clause the rule matched ("gestern ..., jetzt steht er")
    clause: bool = False  # veto only the words of its own clause ("die kasse war offen, sie blutet" still fires)
    not_after: frozenset[str] = frozenset()  # a guard word right after one of these ("#": any number) does not count ("als würde")
    lifted_in: str = "clause"  # a sentence guard's lifting word counts in: a clause the rule matched | anywhere in the message
    # (with lifted_beside False: in any clause but the guard word's own)
    lifted_beside: bool = True  # False: a lifting word right next to a guard word (a sentence guard: in its clause) does not count
    lifted_nearby: tuple[str, ...] = ()  # lists that lift a sentence guard only in a clause the rule matched, even `lifted_in: message`
    not_beside: tuple[str, ...] = ()  # a guard word at most BESIDE words before a word of these lists (after: "... sie"), in its clause, does not count
    needs: tuple[str, ...] = ()  # a guard word counts only in a sentence that also holds a word of these lists ("das war" + "am montag")
    dates_before: int | None = None  # a guard word in a sentence of at most this many words also dates every sentence before it

    def spans(self, tokens: Tokens, found: Found) -> list[Span]:
        """Where the guard's words are, minus those right after a `not_after` word or beside a `not_beside` word."""
        beside = [s for c in self.not_beside for s in found.get(c, ())]
        needed = {tokens.sentence_of(s[0]) for c in self.needs for s in found.get(c, ())}
        return [
            s for s in found.get(self.name, ())
            if not (s[0] and self._excused_by(tokens.folded[s[0] - 1])) and not any(_beside(tokens, s, b) for b in beside)
            and (not self.needs or tokens.sentence_of(s[0]) in needed)
        ]

    def _excused_by(self, word: str) -> bool:
        """True when a guard word right after `word` does not count."""
        return word in self.not_after or ("#" in self.not_after and word.isdigit())


@dataclass(frozen=True)
class Rule:
    """Every `all` group (alternatives joined by |) in one sentence, one of `any` anywhere, no guard of `unless`."""

    name: str
    intent: str
    all: tuple[tuple[str, ...], ...]
    any: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    scope: str = "sentence"  # clause | sentence | message: where the `all` groups must meet
    max_words: int | None = None  # only messages this short ("messer!!", "ich kann nicht mehr")
    examples: tuple[str, ...] = ()
    quiet: tuple[str, ...] = ()
    action: str = "escalate"  # escalate | check: a weaker sign, the bot asks "Bist du oder ist jemand gerade in Gefahr?"

    def categories(self) -> set[str]:
        """Every word list or guard the rule names."""
        return {c for group in self.all for c in group} | set(self.any) | set(self.unless)

    def match(self, tokens: Tokens, found: Found, guards: dict[str, Guard]) -> list[Used] | None:
        """The words (with their word lists) that make the rule fire, or None."""
        if not all(any(c in found for c in group) for group in self.all):
            return None
        if self.any and not any(c in found for c in self.any):
            return None
        if self.max_words is not None and len(tokens.folded) > self.max_words:
            return None
        groups = [[(c, s) for c in group for s in found.get(c, ())] for group in self.all]
        if self.scope == "message":
            return self._unit(tokens, found, guards, groups)
        unit_of = tokens.clause_of if self.scope == "clause" else tokens.sentence_of
        units = set.intersection(*({unit_of(s[0]) for _, s in spans} for spans in groups))
        for unit in sorted(units):
            inside = [[(c, s) for c, s in spans if unit_of(s[0]) == unit] for spans in groups]
            spans = self._unit(tokens, found, guards, inside)
            if spans is not None:
                return spans
        return None

    def _unit(self, tokens: Tokens, found: Found, guards: dict[str, Guard], groups: list[list[Used]]) -> list[Used] | None:
        """Apply the guards to one sentence (or the whole message) whose groups are all present."""
        for name in self.unless:
            guard = guards.get(name, Guard(name))
            if guard.near is not None:  # a negation inside a phrase the rule uses is that phrase's, not a veto ("hooshyar nist")
                used = [s for spans in groups for _, s in spans] + [s for c in self.any for s in found.get(c, ())]
                vetoes = [v for v in found.get(name, ()) if not any(u[0] <= v[0] and v[1] <= u[1] for u in used)]
                groups = [[(c, s) for c, s in spans if not any(_close(s, v, guard, tokens) for v in vetoes)] for spans in groups]
            elif guard.clause:  # drop only the words of a guarded clause: "sie war bewusstlos, jetzt atmet sie nicht mehr"
                lifts = _lifting_clauses(tokens, found, guard)
                if lifts & {tokens.clause_of(s[0]) for spans in groups for _, s in spans}:
                    continue  # a clause the rule matched is told now: "er hatte ein messer, jetzt hält er es mir an den hals"
                guarded = {tokens.clause_of(s[0]) for s in guard.spans(tokens, found)}
                groups = [[(c, s) for c, s in spans if tokens.clause_of(s[0]) not in guarded] for spans in groups]
            elif not guard.lifted_beside:  # a habit lifted by a now-word elsewhere lends no words: "früher hat er mich oft ..., jetzt ..."
                groups = _drop_lifted_habit(tokens, found, guard, groups)
        if not all(groups) or not _distinct(groups):
            return None
        sentences = {tokens.sentence_of(s[0]) for spans in groups for _, s in spans}
        clauses = {tokens.clause_of(s[0]) for spans in groups for _, s in spans}
        for name in self.unless:
            guard = guards.get(name, Guard(name))
            if guard.near is not None or guard.clause:
                continue
            if guard.dates_before is not None:
                if _dated(tokens, found, guard, sentences, clauses):
                    return None  # "er hat mich geschlagen. das war am montag.": a story, unless a now-word is anywhere
                continue
            hit = {tokens.sentence_of(s[0]) for s in guard.spans(tokens, found)} & sentences
            lifting = [s for c in guard.lifted_by for s in found.get(c, ())]
            if not guard.lifted_beside:  # only a now-word told with the act, away from the habit: "seit wochen ..., jetzt würgt er mich"
                lifting = _lifting_elsewhere(tokens, found, guard, groups)[1]
            if guard.lifted_in == "message" and lifting:
                continue
            lifted = {tokens.sentence_of(s[0]) for s in lifting if tokens.clause_of(s[0]) in clauses and guard.lifted_in == "clause"}
            if any(_alone_or_in(tokens, s, clauses) for c in guard.lifted_nearby for s in found.get(c, ())):
                continue  # "..., hilfe" lifts, "..., danke für die hilfe" does not
            if hit - lifted:
                return None
        return [used for spans in groups for used in spans]


BESIDE = 3  # words between a `not_beside` word and the guard word ("würden sie bitte kommen", "ich würde sie bitten")
ADDRESS = frozenset({"sie", "ihr", "du"})  # a guard word after the `not_beside` word is excused only before one of these


def _beside(tokens: Tokens, span: Span, other: Span) -> bool:
    """True when `other` is in the clause of `span`, at most BESIDE words after it (or before it, when an address follows)."""
    gap = max(other[0] - span[1], span[0] - other[1])
    if tokens.clause_of(span[0]) != tokens.clause_of(other[0]) or gap > BESIDE:
        return False
    # "könnten sie bitte jemanden schicken", "schicken könnten sie", not "... schicken der würde mich schlagen"
    return span[0] < other[1] or (span[1] < len(tokens.folded) and tokens.folded[span[1]] in ADDRESS)


def _lifting_elsewhere(tokens: Tokens, found: Found, guard: Guard, groups: list[list[Used]]) -> tuple[set[int], list[Span]]:
    """A sentence guard's own clauses, and its lifting words in other clauses that hold the rule's words."""
    own = {tokens.clause_of(s[0]) for s in guard.spans(tokens, found)}
    if guard.lifted_in == "message":  # any other clause: "ich zock grad, mein opa ist gestürzt und blutet"
        return own, [s for c in guard.lifted_by for s in found.get(c, ()) if tokens.clause_of(s[0]) not in own]
    acts = {tokens.clause_of(s[0]) for spans in groups for c, s in spans if c not in guard.lifted_by}
    return own, [s for c in guard.lifted_by for s in found.get(c, ()) if tokens.clause_of(s[0]) in acts - own]


def _drop_lifted_habit(tokens: Tokens, found: Found, guard: Guard, groups: list[list[Used]]) -> list[list[Used]]:
    """Without the words of a sentence guard's own clauses when a now-word in another matched clause lifts it."""
    own, lifting = _lifting_elsewhere(tokens, found, guard, groups)
    if not own or not lifting:
        return groups
    return [[(c, s) for c, s in spans if tokens.clause_of(s[0]) not in own] for spans in groups]


def _dated(tokens: Tokens, found: Found, guard: Guard, sentences: set[int], clauses: set[int]) -> bool:
    """True when a short sentence that dates the story comes at or after `sentences`, and no now-word outside its clause lifts it."""
    ends = (*tokens.sentence_starts[1:], len(tokens.folded))
    short = [
        s for s in guard.spans(tokens, found)
        if ends[tokens.sentence_of(s[0])] - tokens.sentence_starts[tokens.sentence_of(s[0])] <= (guard.dates_before or 0)
    ]
    if not short:
        return False
    own = {tokens.clause_of(s[0]) for s in short}  # "ist jetzt zwei wochen her": that "jetzt" tells no danger now
    if any(tokens.clause_of(s[0]) not in own for c in guard.lifted_by for s in found.get(c, ())):
        return False
    if any(_alone_or_in(tokens, s, clauses) for c in guard.lifted_nearby for s in found.get(c, ())):
        return False  # "... das war gestern. hilfe"
    return min(sentences) <= max(tokens.sentence_of(s[0]) for s in short)


def _alone_or_in(tokens: Tokens, span: Span, clauses: set[int]) -> bool:
    """True when `span` is in one of `clauses` or makes up a clause of at most 2 words on its own ("..., hilfe!")."""
    clause = tokens.clause_of(span[0])
    return clause in clauses or sum(1 for i in range(len(tokens.folded)) if tokens.clause_of(i) == clause) <= 2


def _lifting_clauses(tokens: Tokens, found: Found, guard: Guard) -> set[int]:
    """The clauses with a word of a clause guard's `lifted_by` lists (unless `lifted_beside` is off, not one right next to a guard word)."""
    beside = set() if guard.lifted_beside else {i for s in guard.spans(tokens, found) for i in (s[0] - 1, s[1])}
    return {tokens.clause_of(s[0]) for c in guard.lifted_by for s in found.get(c, ()) if s[0] not in beside and s[1] - 1 not in beside}


def _distinct(groups: list[list[Used]], taken: frozenset[int] = frozenset()) -> bool:
    """True when every group can be given a word of its own ("danke für alles" cannot count twice)."""
    if not groups:
        return True
    return any(_distinct(groups[1:], taken | {span[0]}) for _, span in groups[0] if span[0] not in taken)


def _close(span: Span, veto: Span, guard: Guard, tokens: Tokens) -> bool:
    """True when `veto` stands at most `near` words before `span` in its clause ("kein messer"), or is an `after` word 1 word after it."""
    if tokens.sentence_of(span[0]) != tokens.sentence_of(veto[0]):
        return False
    if veto[1] <= span[0]:
        between = range(veto[1], span[0] + 1)
        return span[0] - veto[1] <= (guard.near or 0) and not any(i in tokens.clause_starts for i in between)
    after = veto[0] >= span[1] and veto[0] - span[1] <= 1 and tokens.folded[veto[0]] in guard.after
    # "gefallen und nicht ...": another clause; but "blutet aber nicht" still negates the clause it follows
    return after and not any(i in tokens.clause_starts and tokens.folded[i] != "aber" for i in range(span[1], veto[0] + 1))


def read_rule(raw: object, known: set[str], companions: dict[str, tuple[str, ...]] | None = None) -> Rule:
    """Build one rule from its YAML mapping (each guard's `companions` joining its `unless`); ValueError says what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"a rule must be a mapping with name, intent, all, examples; got {raw!r}")
    name = str(raw.get("name") or "?")
    unknown_keys = set(raw) - {"name", "intent", "action", "all", "any", "unless", "scope", "max_words", "examples", "quiet"}
    if unknown_keys:
        raise ValueError(f"rule {name}: unknown keys {sorted(unknown_keys)}")
    if raw.get("intent") not in ("emergency", "self_harm"):
        raise ValueError(f"rule {name}: intent must be emergency or self_harm, got {raw.get('intent')!r}")
    if raw.get("action", "escalate") not in RULE_ACTIONS:
        raise ValueError(f"rule {name}: action must be escalate or check, got {raw.get('action')!r}")
    if raw.get("scope", "sentence") not in ("clause", "sentence", "message"):
        raise ValueError(f"rule {name}: scope must be clause, sentence or message")
    max_words = raw.get("max_words")
    if max_words is not None and (not isinstance(max_words, int) or max_words < 1):
        raise ValueError(f"rule {name}: max_words must be a positive number")
    groups = tuple(tuple(c.strip() for c in str(g).split("|")) for g in _names(raw.get("all"), name, "all"))
    rule = Rule(
        name, raw["intent"], groups, tuple(_names(raw.get("any"), name, "any", optional=True)),
        _with_companions(_names(raw.get("unless"), name, "unless", optional=True), companions or {}), raw.get("scope", "sentence"), max_words,
        tuple(_texts(raw.get("examples"), name, "examples")), tuple(_texts(raw.get("quiet"), name, "quiet", optional=True)),
        raw.get("action", "escalate"),
    )
    missing = sorted(rule.categories() - known)
    if missing:
        raise ValueError(f"rule {name}: no word list or guard called {', '.join(missing)}")
    return rule


def _with_companions(unless: list[str], companions: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The rule's own guards, then each one's companions not listed yet (in the order the guards name them)."""
    extra = [g for name in unless for g in companions.get(name, ())]
    return tuple(dict.fromkeys([*unless, *extra]))


def _names(value: object, rule: str, key: str, optional: bool = False) -> list[str]:
    if value is None and optional:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"rule {rule}: '{key}' must be a list of word-list names")
    return [v.strip() for v in value]


def _texts(value: object, rule: str, key: str, optional: bool = False) -> list[str]:
    if value is None and optional:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        what = "a list of messages" if optional else "a list of at least one message it must fire on"
        raise ValueError(f"rule {rule}: '{key}' must be {what}")
    return list(value)
