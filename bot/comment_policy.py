"""The comment policy (data/comment_policy.yml): what the bot does with a comment after triage.

Standard library and PyYAML only: `make validate` (nlu/validate.py, the NLU side) checks the file with
`problems()`, the service applies it with `CommentPolicy.outcome()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.public_reply import scan

RULES = ("escalation", "abuse", "invite", "faq", "other")
POLICY_NAME = {"escalation": "escalate", "abuse": "abuse", "invite": "invite", "faq": "faq", "other": "list"}
RULE_KEYS = {"need", "public_reply", "public_reply_alone", "private_reply", "hide", "alert", "intents", "actions",
             "short_public_reply"}
FROM_TEXTS = {"escalation", "answer"}  # private_reply: {from: ...}
PRIVATE_PLACEHOLDERS = {"team_name", "privacy", "online_report", "station_finder", "non_emergency_phone"}
TRIAGE_ACTIONS = {"escalate", "answer", "handover", "clarify", "check"}
NEEDS = {0, 1, 2, 3, 9}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class PolicyError(ValueError):
    """The policy file cannot be used."""


def personal_details(text: str) -> list[str]:
    """What in a public text written in advance could be personal or case details (empty: nothing found).

    The same scan as for the public replies officers type (bot/public_reply.py), in its strict form.
    """
    return [str(f) for f in scan(text, strict=True)]


@dataclass(frozen=True)
class Outcome:
    """What one rule asks for: the rule's policy name, rank, texts and flags."""

    rule: str  # escalation | abuse | invite | faq | other | none
    policy: str  # the comments.policy value
    need: int
    public_reply: str  # empty: none
    private_reply: str  # empty: none; "from:escalation" / "from:answer" name texts the caller fills in
    hide: bool
    alert: bool
    public_alone: str = ""  # the public reply when no private reply goes out (never "we sent you a message"); empty: none


NO_ACTION = Outcome("none", "none", 9, "", "", False, False)


def _texts(value: Any) -> dict[str, str]:
    return {str(k): str(v).strip() for k, v in value.items()} if isinstance(value, dict) else {}


def _pick(texts: dict[str, str], language: str) -> str:
    return texts.get(language) or texts.get(language.split("-")[0]) or texts.get("de", "")


class CommentPolicy:
    """The rules of data/comment_policy.yml, checked when loaded."""

    def __init__(self, doc: dict[str, Any], where: str = "comment_policy.yml", intents: tuple[str, ...] | None = None) -> None:
        errors = [p for p in problems(doc, intents) if p[0] == "error"]
        if errors:
            raise PolicyError(f"{where}: " + "; ".join(text for _, _, text in errors))
        self.doc = doc

    @classmethod
    def load(cls, path: Path, intents: tuple[str, ...] | None = None) -> "CommentPolicy":
        """Read and check the policy file."""
        return cls(read(path), str(path), intents)

    def rule_for(self, intent: str | None, action: str | None) -> str:
        """The name of the rule a triage result falls under."""
        if action == "escalate":
            return "escalation"
        for name in ("abuse", "invite"):
            rule = self.doc.get(name) or {}
            if intent in (rule.get("intents") or ()) or action in (rule.get("actions") or ()):
                return name
        if intent in ((self.doc.get("faq") or {}).get("intents") or {}):
            return "faq"
        return "other"

    def outcome(self, intent: str | None, action: str | None, language: str = "de") -> Outcome:
        """The actions the policy plans for a triage result, with texts in `language` (German if missing)."""
        name = self.rule_for(intent, action)
        rule = self.doc.get(name) or {}
        public = _pick(_texts(rule.get("public_reply")), language)
        if name == "faq":
            per_intent = (rule.get("intents") or {}).get(intent) or {}
            wanted = per_intent.get("public_reply") if isinstance(per_intent, dict) else None
            if isinstance(wanted, dict):
                public = _pick(_texts(wanted), language)
            elif wanted is True:
                public = _pick(_texts(rule.get("short_public_reply")), language)
        private_spec = rule.get("private_reply")
        if isinstance(private_spec, dict) and "from" in private_spec:
            private = f"from:{private_spec['from']}"
        else:
            private = _pick(_texts(private_spec), language)
        alone = _pick(_texts(rule.get("public_reply_alone")), language) if private else public
        return Outcome(name, POLICY_NAME[name], int(rule.get("need", 3 if name == "other" else 1)), public, private,
                       bool(rule.get("hide")), bool(rule.get("alert")), alone)

    def public_texts(self) -> list[tuple[str, str, str]]:
        """Every public reply the policy can produce: (rule, language, text)."""
        found = []
        for name in RULES:
            rule = self.doc.get(name) or {}
            for key in ("public_reply", "public_reply_alone", "short_public_reply"):
                found += [(name, lang, text) for lang, text in _texts(rule.get(key)).items()]
            for intent, spec in ((rule.get("intents") or {}).items() if isinstance(rule.get("intents"), dict) else ()):
                if isinstance(spec, dict) and isinstance(spec.get("public_reply"), dict):
                    found += [(f"{name}.{intent}", lang, text) for lang, text in _texts(spec["public_reply"]).items()]
        return found


def read(path: Path) -> dict[str, Any]:
    """The policy file as a mapping (PolicyError when it is not one)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise PolicyError(f"{path}: cannot read: {err}") from err
    if not isinstance(doc, dict):
        raise PolicyError(f"{path}: expected a mapping with {', '.join(RULES)}")
    return doc


def _text_problems(where: str, value: Any, public: bool) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    if isinstance(value, dict) and "from" in value and not public:
        if value["from"] not in FROM_TEXTS:
            out.append(("error", where, f"from: must be one of {sorted(FROM_TEXTS)}, not {value['from']!r}"))
        return out
    if not isinstance(value, dict) or not value:
        return [("error", where, "expected texts per language (de: ..., en: ...)")]
    if not str(value.get("de") or "").strip():
        out.append(("error", where, "has no German (de) text"))
    if "en" not in value:
        out.append(("warning", where, "has no English (en) text: English comments get the German one"))
    for lang, text in value.items():
        if not isinstance(text, str) or not text.strip():
            out.append(("error", f"{where}.{lang}", "text is empty"))
            continue
        if public:
            out += [("error", f"{where}.{lang}", f"public reply carries possible personal details: {d}") for d in personal_details(text)]
        else:
            unknown = set(_PLACEHOLDER.findall(text)) - PRIVATE_PLACEHOLDERS
            if unknown:
                out.append(("error", f"{where}.{lang}", f"unknown placeholder(s) {sorted(unknown)} (only department values)"))
    return out


def problems(doc: Any, intents: tuple[str, ...] | None = None) -> list[tuple[str, str, str]]:
    """(level, where, text) for everything wrong in a policy document; `intents`: the known intent names."""
    if not isinstance(doc, dict):
        return [("error", "", "expected a mapping")]
    out: list[tuple[str, str, str]] = []
    for name in doc:
        if name not in RULES:
            out.append(("error", str(name), f"unknown rule (known: {', '.join(RULES)})"))
    for name in RULES:
        rule = doc.get(name)
        if rule is None:
            out.append(("error", name, "rule missing"))
            continue
        if not isinstance(rule, dict):
            out.append(("error", name, "expected a mapping"))
            continue
        out += [("error", f"{name}.{k}", "unknown key") for k in rule if k not in RULE_KEYS]
        if rule.get("need") not in NEEDS:
            out.append(("error", f"{name}.need", f"need must be one of {sorted(NEEDS)}"))
        for key in ("hide", "alert"):
            if key in rule and not isinstance(rule[key], bool):
                out.append(("error", f"{name}.{key}", "must be true or false"))
        for key, public in (("public_reply", True), ("public_reply_alone", True), ("short_public_reply", True),
                            ("private_reply", False)):
            if key in rule:
                out += _text_problems(f"{name}.{key}", rule[key], public)
        if name == "escalation" and "public_reply" in rule and "private_reply" in rule and "public_reply_alone" not in rule:
            out.append(("error", "escalation.public_reply_alone", "escalation.public_reply_alone missing: the public 110 "
                        "text for when no private reply can go out (without \"we sent you a message\")"))
        if isinstance(rule.get("private_reply"), dict) and rule["private_reply"].get("from") == "answer" and name != "faq":
            out.append(("error", f"{name}.private_reply", "from: answer is only for faq"))
        actions = rule.get("actions") or []
        if not isinstance(actions, list) or set(actions) - TRIAGE_ACTIONS:
            out.append(("error", f"{name}.actions", f"expected a list of {sorted(TRIAGE_ACTIONS)}"))
        listed = rule.get("intents")
        if name == "faq":
            if not isinstance(listed, dict) or not listed:
                out.append(("error", "faq.intents", "expected intents with {public_reply: true|false}"))
                listed = {}
            for intent, spec in listed.items():
                wanted = spec.get("public_reply", False) if isinstance(spec, dict) else None
                if isinstance(wanted, dict):
                    out += _text_problems(f"faq.intents.{intent}.public_reply", wanted, True)
                elif not isinstance(wanted, bool):
                    out.append(("error", f"faq.intents.{intent}", "expected {public_reply: true|false}"))
                elif wanted and "short_public_reply" not in rule:
                    out.append(("error", f"faq.intents.{intent}", "public_reply: true needs faq.short_public_reply"))
        elif listed is not None and not isinstance(listed, list):
            out.append(("error", f"{name}.intents", "expected a list"))
            listed = []
        for intent in listed or ():
            if intents is not None and intent not in intents:
                out.append(("error", f"{name}.intents", f"unknown intent {intent!r}"))
            if intent in ("emergency", "self_harm"):
                out.append(("error", f"{name}.intents", f"{intent!r} always escalates; it cannot be listed here"))
    claimed: dict[str, str] = {}
    for name in ("abuse", "invite", "faq"):
        rule = doc.get(name) if isinstance(doc.get(name), dict) else {}
        for intent in (rule.get("intents") or ()) if isinstance(rule.get("intents"), (list, dict)) else ():
            if intent in claimed:
                out.append(("error", f"{name}.intents", f"{intent!r} is already under {claimed[intent]}"))
            claimed[intent] = name
    return out
