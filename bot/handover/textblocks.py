"""Reply templates (Textbausteine): storage, validation, placeholder filling and their order for a chat."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.duty import DAY_NAMES, DutyHours
from bot.handover.store import HandoverLog
from bot.responses import Responses, base_language
from nlu.intents import INTENTS

LANGUAGES = {"de": "Deutsch", "en": "Englisch"}
# placeholder -> key of Responses.values (the department's facts from data/department.yml)
FROM_DEPARTMENT = {"team": "team_name", "onlinewache": "online_report", "wachen": "station_finder",
                   "telefon": "non_emergency_phone"}
PLACEHOLDERS = (*FROM_DEPARTMENT, "dienstzeiten")
MAX_NAME = 32
MAX_TITLE = 80
MAX_TEXT = 2000  # filled in, it stays below the 4000 characters of a reply
_NAME = re.compile(r"^[^\W_]+(?:-[^\W_]+)*$")  # letters (umlauts too) and digits, joined by single "-"
_BRACES = re.compile(r"\{([^{}]*)\}")
_TAG = re.compile(r"<\s*/?\s*[A-Za-z!?][^<>]*>")  # <b>, </a>, <!-- ... -->, <?php ...>: never "<3" or "a < b"
_SYSTEM = "streife"


class TextblockError(ValueError):
    """A template that cannot be saved; the message is German and meant for the officer."""


class TextblockConflict(TextblockError):
    """Someone else changed or deleted the template in the meantime."""


@dataclass(frozen=True)
class Textblock:
    """One reply template as stored."""

    id: int
    name: str
    language: str
    title: str
    text: str
    intents: tuple[str, ...]
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _starter(name: str, language: str, title: str, text: str, intents: list[str]) -> dict[str, Any]:
    now = _now()
    return {"name": name, "language": language, "title": title, "text": text, "intents": json.dumps(intents),
            "created_at": now, "created_by": _SYSTEM, "updated_at": now, "updated_by": _SYSTEM}


def starter_textblocks() -> list[dict[str, Any]]:
    """What the first migration stores; officers change or delete them in the inbox."""
    return [_starter(*args) for args in _STARTERS]


_STARTERS: list[tuple[str, str, str, str, list[str]]] = [
    ("onlinewache", "de", "Anzeige online erstatten",
     "Eine Anzeige kannst du jederzeit online erstatten, über {onlinewache}. "
     "Dort kannst du auch Fotos oder Screenshots hochladen. "
     "Wenn du dabei nicht weiterkommst, schreib uns gern hier.",
     ["report_crime", "bike_theft", "fraud_scam", "cybercrime", "lost_found"]),
    ("danke", "de", "Danke für deinen Hinweis",
     "Danke für deinen Hinweis! Wir geben ihn an die zuständigen Kolleginnen und Kollegen weiter. "
     "Wie es weitergeht, dürfen wir dir leider nicht sagen. "
     "Wenn gerade etwas passiert: Ruf bitte die 110 an.",
     ["tip_off", "thanks"]),
    ("dienstzeiten", "de", "Wann wir mitlesen",
     "Wir lesen hier {dienstzeiten} mit. Außerhalb dieser Zeiten antwortet dir nur der Bot. "
     "Deine Nachricht geht nicht verloren. Im Notfall ruf bitte immer die 110 an.",
     ["station_contact", "human_handoff", "about_insta_cops"]),
    ("online", "en", "Report online",
     "You can report a crime online at any time via {onlinewache}. "
     "You can upload photos or screenshots there as well. If you get stuck, just write to us here.",
     ["report_crime", "bike_theft", "fraud_scam", "cybercrime", "lost_found"]),
    ("thanks", "en", "Thanks for the tip",
     "Thank you for the tip! We will pass it on to the colleagues in charge. "
     "We can't tell you how it goes on from here. If something is happening right now, please call 110.",
     ["tip_off", "thanks"]),
]


def _row(row: dict[str, Any]) -> Textblock:
    return Textblock(**{**row, "intents": tuple(json.loads(row["intents"] or "[]"))})


def _join(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(names)


def clean(name: str, language: str, title: str, text: str, intents: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Check a template as an officer entered it; the stored fields, or a TextblockError saying what to fix."""
    name, title = (name or "").strip().lower(), " ".join((title or "").split())
    text = (text or "").replace("\r\n", "\n").strip()
    if not name:
        raise TextblockError("Bitte gib einen Kurznamen ein (z. B. „onlinewache“).")
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise TextblockError(f"Der Kurzname darf nur Buchstaben, Ziffern und „-“ enthalten (höchstens {MAX_NAME} Zeichen).")
    if language not in LANGUAGES:
        raise TextblockError("Bitte wähle Deutsch oder Englisch als Sprache.")
    if not title:
        raise TextblockError("Bitte gib einen Titel ein.")
    if len(title) > MAX_TITLE:
        raise TextblockError(f"Der Titel ist zu lang (höchstens {MAX_TITLE} Zeichen).")
    if not text:
        raise TextblockError("Der Text ist leer.")
    if len(text) > MAX_TEXT:
        raise TextblockError(f"Der Text ist zu lang: {len(text)} Zeichen, erlaubt sind {MAX_TEXT}.")
    tag = _TAG.search(text) or _TAG.search(title)
    if tag:
        raise TextblockError(f"HTML ist nicht erlaubt ({tag[0][:40]}). Schreib den Text bitte ohne Tags.")
    unknown = [f"{{{m}}}" for m in _BRACES.findall(text) if m not in PLACEHOLDERS]
    if unknown:
        known = _join([f"{{{p}}}" for p in PLACEHOLDERS])
        raise TextblockError(f"Diesen Platzhalter gibt es nicht: {_join(sorted(set(unknown)))[:80]}. Möglich sind: {known}.")
    bad = [i for i in intents if i not in INTENTS]
    if bad:
        raise TextblockError(f"Unbekanntes Thema: {_join(bad)[:80]}.")
    ordered = [i for i in INTENTS if i in set(intents)]
    return {"name": name, "language": language, "title": title, "text": text, "intents": json.dumps(ordered)}


def describe_duty(duty: DutyHours, language: str) -> str:
    """The duty hours for people: "Mo–Fr 08:00–16:00 Uhr" or "Mon–Fri 08:00–16:00"."""
    if len(duty.shifts) == 7 and all(s.hour == 0 and s.minute == 0 and e.hour == 23 for _, s, e in duty.shifts):
        return "rund um die Uhr" if language == "de" else "around the clock"
    short = [d[:2] if language == "de" else d[:3] for d in DAY_NAMES[language]]
    by_time: dict[tuple[str, str], list[int]] = {}
    for day, start, end in duty.shifts:
        by_time.setdefault((start.strftime("%H:%M"), end.strftime("%H:%M")), []).append(day)
    parts = []
    for (start, end), days in by_time.items():
        runs: list[list[int]] = []
        for day in sorted(set(days)):
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        label = ", ".join(short[r[0]] if len(r) == 1 else f"{short[r[0]]}–{short[r[-1]]}" for r in runs)
        parts.append(f"{label} {start}–{end}" + (" Uhr" if language == "de" else ""))
    joiner = " und " if language == "de" else " and "
    return joiner.join(filter(None, [", ".join(parts[:-1]), parts[-1]])) if parts else ""


def placeholder_values(responses: Responses, duty: DutyHours) -> dict[str, dict[str, str]]:
    """What each placeholder stands for, per template language (from data/department.yml and DUTY_HOURS)."""
    values = {}
    for language in LANGUAGES:
        facts = responses.values[base_language(language)]
        values[language] = {p: facts[key] for p, key in FROM_DEPARTMENT.items()}
        values[language]["dienstzeiten"] = describe_duty(duty, language)
    return values


def fill(block: Textblock, values: dict[str, dict[str, str]]) -> str:
    """The template's text with its placeholders filled in (plain text, never markup)."""
    own = values[block.language]
    return _BRACES.sub(lambda m: own.get(m[1], m[0]), block.text)


def conversation_intents(log: HandoverLog, conversation_id: int) -> list[str]:
    """The intents of a conversation's citizen messages, newest first (an officer's relabel wins)."""
    rows = log._select(
        "SELECT intent, meta FROM messages WHERE conversation_id = ? AND direction = 'in' ORDER BY id DESC LIMIT 50",
        [conversation_id],
    )
    seen: list[str] = []
    for row in rows:
        intent = json.loads(row["meta"] or "{}").get("relabel") or row["intent"]
        if intent and intent not in seen:
            seen.append(intent)
    return seen


def ordered(blocks: list[Textblock], intents: list[str], language: str) -> list[Textblock]:
    """Templates for a chat: those fitting its newest intent first, then its language, then by name."""
    language = base_language(language)

    def key(block: Textblock) -> tuple[int, int, str]:
        fits = min((intents.index(i) for i in block.intents if i in intents), default=len(intents))
        return fits, block.language != language, block.name

    return sorted(blocks, key=key)


class Textblocks:
    """The templates in the handover log; every change is audited with the old and new text."""

    def __init__(self, log: HandoverLog) -> None:
        self.log = log

    def all(self) -> list[Textblock]:
        """Every template, German first, then by name."""
        rows = self.log._select("SELECT * FROM textblocks ORDER BY language = 'en', language, name")
        return [_row(r) for r in rows]

    def get(self, textblock_id: int) -> Textblock:
        """One template; TextblockConflict when it is gone."""
        rows = self.log._select("SELECT * FROM textblocks WHERE id = ?", [textblock_id])
        if not rows:
            raise TextblockConflict("Diesen Textbaustein gibt es nicht (mehr).")
        return _row(rows[0])

    def _taken(self, fields: dict[str, Any], own_id: int | None) -> None:
        rows = self.log._select("SELECT id FROM textblocks WHERE language = ? AND name = ?", [fields["language"], fields["name"]])
        if rows and rows[0]["id"] != own_id:
            raise TextblockError(f"Den Kurznamen „{fields['name']}“ gibt es auf {LANGUAGES[fields['language']]} schon.")

    def create(self, officer: str, name: str, language: str, title: str, text: str,
               intents: list[str] | tuple[str, ...] = ()) -> Textblock:
        """Store a new template."""
        fields = clean(name, language, title, text, intents)
        now = self.log.clock()
        try:
            with self.log.transaction():
                self._taken(fields, None)
                new_id = self.log.db.execute(
                    "INSERT INTO textblocks (name, language, title, text, intents, created_at, created_by, updated_at, updated_by)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [*fields.values(), now, officer, now, officer],
                ).lastrowid
                self.log.audit(officer, "textblock_create", None, textblock=new_id, name=fields["name"],
                               language=language, old=None, new=fields["text"])
        except sqlite3.IntegrityError:  # a colleague saved the same name a moment earlier
            self._taken(fields, None)
            raise
        return self.get(new_id)

    def update(self, textblock_id: int, officer: str, name: str, language: str, title: str, text: str,
               intents: list[str] | tuple[str, ...] = (), seen: str | None = None) -> Textblock:
        """Change a template; `seen` (its updated_at when the form was loaded) guards colleagues' edits."""
        fields = clean(name, language, title, text, intents)
        with self.log.transaction():
            old = self.get(textblock_id)
            if seen and seen != old.updated_at:
                raise TextblockConflict(f"{old.updated_by} hat diesen Textbaustein inzwischen geändert. "
                                        "Lade die Seite neu und prüf deine Änderung.")
            self._taken(fields, textblock_id)
            self.log.db.execute(
                "UPDATE textblocks SET name = ?, language = ?, title = ?, text = ?, intents = ?, updated_at = ?,"
                " updated_by = ? WHERE id = ?",
                [*fields.values(), self.log.clock(), officer, textblock_id],
            )
            self.log.audit(officer, "textblock_edit", None, textblock=textblock_id, name=fields["name"],
                           language=language, old_name=old.name, old_title=old.title, title=fields["title"],
                           old=old.text, new=fields["text"])
        return self.get(textblock_id)

    def delete(self, textblock_id: int, officer: str) -> Textblock:
        """Remove a template (the audit trail keeps its text)."""
        with self.log.transaction():
            old = self.get(textblock_id)
            self.log.db.execute("DELETE FROM textblocks WHERE id = ?", [textblock_id])
            self.log.audit(officer, "textblock_delete", None, textblock=textblock_id, name=old.name,
                           language=old.language, old=old.text, new=None)
        return old

    def for_conversation(self, conversation_id: int, language: str) -> list[Textblock]:
        """Every template, ordered for this chat (its intents, then its language)."""
        return ordered(self.all(), conversation_intents(self.log, conversation_id), language)
