"""The emergency safety net: rules that escalate a message before, and without, the NLU model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.text import normalise

ESCALATION_INTENTS = ("emergency", "self_harm")


class SafetyNetError(ValueError):
    """The rules file cannot be used."""


@dataclass(frozen=True)
class SafetyHit:
    """Which rule fired, and for which escalation intent."""

    intent: str
    rule: str


@dataclass(frozen=True)
class SafetyNet:
    """Compiled rules: per intent a list of patterns, plus exceptions that veto a hit."""

    rules: tuple[tuple[str, re.Pattern[str], re.Pattern[str] | None], ...]  # (intent, match, unless)
    exceptions: tuple[re.Pattern[str], ...]

    @classmethod
    def load(cls, path: Path) -> "SafetyNet":
        """Read and compile the rules file (data/safety_net.yml)."""
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise SafetyNetError(f"{path}: cannot read safety net rules: {err}") from None
        if not isinstance(doc, dict):
            raise SafetyNetError(f"{path}: expected a mapping with {', '.join(ESCALATION_INTENTS)}")
        rules = []
        for intent in ESCALATION_INTENTS:
            for rule in doc.get(intent) or []:
                if isinstance(rule, dict):
                    unknown = set(rule) - {"match", "unless"}
                    if unknown or "match" not in rule:
                        raise SafetyNetError(f"{path}: {intent}: a rule mapping needs 'match' (and may have 'unless'), got {sorted(rule)}")
                    unless = _compile(path, intent, rule["unless"]) if rule.get("unless") else None
                    rules.append((intent, _compile(path, intent, rule["match"]), unless))
                else:
                    rules.append((intent, _compile(path, intent, rule), None))
        if not rules:
            raise SafetyNetError(f"{path}: no rules for {' or '.join(ESCALATION_INTENTS)}")
        exceptions = tuple(_compile(path, "exceptions", p) for p in doc.get("exceptions") or [])
        return cls(tuple(rules), exceptions)

    def check(self, text: str) -> SafetyHit | None:
        """Return the first rule that fires on `text`, or None."""
        folded = normalise(text)
        if not folded:
            return None
        if any(e.search(folded) for e in self.exceptions):
            return None
        for intent, pattern, unless in self.rules:
            if pattern.search(folded) and not (unless and unless.search(folded)):
                return SafetyHit(intent, pattern.pattern)
        return None


def _compile(path: Path, section: str, pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern.strip():
        raise SafetyNetError(f"{path}: {section}: every rule must be a non-empty string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise SafetyNetError(f"{path}: {section}: bad pattern {pattern!r}: {err}") from None
