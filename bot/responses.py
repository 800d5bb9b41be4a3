"""The texts the bot sends, loaded from data/responses.yml and data/department.yml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

LANGUAGES = ("de", "en")
PLACEHOLDERS = frozenset(
    {"team_name", "privacy", "online_report", "station_finder", "non_emergency_phone", "wait_hint", "back_at"}
)
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# The check's two buttons when responses.yml has none (labels max 24 characters).
CHECK_LABELS = {
    "danger": {"de": "🚨 Ja, gerade in Gefahr", "en": "🚨 Yes, in danger now"},
    "safe": {"de": "Nein", "en": "No"},
}
# System texts triage cannot do without (clarify, check and handover replies are made of them).
CHECK_SYSTEM_TEXTS = frozenset({"emergency_line", "check", "check_no", "check_handover"})


class ResponsesError(ValueError):
    """The reply texts cannot be used."""


def _department_values(department: dict[str, str]) -> dict[str, dict[str, str]]:
    """Turn the department's facts into placeholder values per language; empty facts get a generic text."""
    def pick(key: str) -> str:
        return str(department.get(key) or "").strip()

    privacy, online, finder, phone = pick("privacy_url"), pick("online_report_url"), pick("station_finder_url"), pick("non_emergency_phone")
    return {
        "de": {
            "team_name": pick("team_name") or "das Social-Media-Team der Polizei",
            "privacy": f"Datenschutzhinweise: {privacy}" if privacy else "Die Datenschutzhinweise findest du im Profil dieses Accounts.",
            "online_report": online or "die Onlinewache deiner Landespolizei",
            "station_finder": finder or "die Website deiner Landespolizei",
            "non_emergency_phone": phone or "die Telefonnummer deiner örtlichen Polizeiwache",
        },
        "en": {
            "team_name": pick("team_name_en") or "the police social media team",
            "privacy": f"Privacy notice: {privacy}" if privacy else "You can find the privacy notice in this account's profile.",
            "online_report": online or "your state police's online police station (Onlinewache)",
            "station_finder": finder or "your state police's website",
            "non_emergency_phone": phone or "the phone number of your local police station",
        },
    }


@dataclass(frozen=True)
class Responses:
    """Reply texts per intent and per system situation, in German and English."""

    intents: dict[str, dict[str, str]]
    system: dict[str, dict[str, str]]
    topics: tuple[dict[str, str], ...]
    handoff_label: dict[str, str]
    check_labels: dict[str, dict[str, str]]  # "danger" and "safe": the two buttons under a check
    start: dict[str, str]
    help: dict[str, str]
    values: dict[str, dict[str, str]]

    @classmethod
    def load(cls, data_dir: Path) -> "Responses":
        """Read responses.yml and department.yml from `data_dir`."""
        doc = _read_yaml(data_dir / "responses.yml")
        department = _read_yaml(data_dir / "department.yml") if (data_dir / "department.yml").exists() else {}
        responses = cls(
            intents=doc.get("intents") or {},
            system=doc.get("system") or {},
            topics=tuple(doc.get("topics") or ()),
            handoff_label=doc.get("handoff_label") or {"de": "Mit einem Menschen sprechen", "en": "Talk to a person"},
            check_labels=doc.get("check_buttons") or dict(CHECK_LABELS),
            start=doc.get("start") or {},
            help=doc.get("help") or {},
            values=_department_values(department or {}),
        )
        responses.check(data_dir / "responses.yml")
        return responses

    def check(self, path: Path) -> None:
        """Raise ResponsesError when a text is missing a language or uses an unknown placeholder."""
        groups = {f"intents.{k}": v for k, v in self.intents.items()}
        groups.update({f"system.{k}": v for k, v in self.system.items()})
        groups.update({"start": self.start, "help": self.help})
        groups.update({f"check_buttons.{k}": self.check_labels.get(k) for k in CHECK_LABELS})
        missing = sorted(CHECK_SYSTEM_TEXTS - set(self.system))
        if missing:
            raise ResponsesError(f"{path}: system texts missing: {', '.join(missing)}")
        for name, texts in groups.items():
            for language in LANGUAGES:
                text = (texts or {}).get(language)
                if not isinstance(text, str) or not text.strip():
                    raise ResponsesError(f"{path}: {name} has no {language!r} text")
                unknown = set(_PLACEHOLDER.findall(text)) - PLACEHOLDERS
                if unknown:
                    raise ResponsesError(f"{path}: {name}.{language} uses unknown placeholder(s) {sorted(unknown)}")

    def _render(self, texts: dict[str, str], language: str, extra: dict[str, str]) -> str:
        language = base_language(language)
        values = {**self.values[language], "wait_hint": "", "back_at": "", **extra}
        return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), texts[language].strip())

    def intent(self, name: str, language: str, **extra: str) -> str:
        """The reply for an intent."""
        return self._render(self.intents[name], language, extra)

    def system_text(self, name: str, language: str, **extra: str) -> str:
        """A system text such as the emergency prompt or the disclosure."""
        return self._render(self.system[name], language, extra)

    def start_text(self, language: str) -> str:
        """The /start text."""
        return self._render(self.start, language, {})

    def help_text(self, language: str) -> str:
        """The /help text."""
        return self._render(self.help, language, {})

    def check_label(self, which: str, language: str) -> str:
        """The label of the check's "danger" or "safe" button."""
        return self.check_labels[which][base_language(language)].strip()

    def topic_buttons(self, language: str) -> list[tuple[str, str]]:
        """(label, intent) pairs for topic buttons."""
        return [(t[base_language(language)], t["intent"]) for t in self.topics if t.get("intent") in self.intents]

    def handoff(self, language: str) -> str:
        """The label of the "talk to a person" button."""
        return self.handoff_label[base_language(language)]


def base_language(language: str) -> str:
    """The language of these texts for a citizen's language: English for "en", German for any other.

    Citizens who write in a language of data/languages/ get that language's own texts for what
    matters (bot/languages.py); around those (limits, buttons, /start) the bot writes German,
    the language the team answers in.
    """
    return language if language in LANGUAGES else "de"


def _read_yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ResponsesError(f"{path}: cannot read: {err}") from None
    if not isinstance(doc, dict):
        raise ResponsesError(f"{path}: expected a mapping")
    return doc
