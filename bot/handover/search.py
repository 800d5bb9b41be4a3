"""Search over the handover log (SQLite FTS5) and a citizen's earlier conversations.

Officers' words are never passed to FTS5 as syntax: every word becomes a quoted token (a prefix
search from three letters on, so "Roller" also finds "Rollers"), words in "double quotes" a phrase.
The index is kept in step with `messages` by triggers (schema `_v4`): a privacy deletion or the
retention job removes a message's index entry in the same transaction as the message.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from bot.handover.store import STATES, Conversation, HandoverLog, is_busy
from nlu.intents import INTENTS

logger = logging.getLogger(__name__)
CHANNELS = ("webchat", "telegram", "instagram", "messenger", "mastodon", "x")
MAX_CHARS = 200  # of the search text
MAX_WORDS = 8
PREFIX_FROM = 3  # words this long or longer also match as prefixes
PAGE_SIZE = 25
MAX_PAGE = 40
HISTORY_LIMIT = 20
OPEN, CLOSE = "\ue000", "\ue001"  # hit markers in FTS5 snippets (private use: replaced by <mark>)
_CHUNK = re.compile(r'"([^"]*)"|(\S+)')
_TOKEN = re.compile(r"\w+")
_PSEUDONYM = re.compile(r"[\w-]{1,40}")
_GERMAN_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")


class SearchError(ValueError):
    """Input the search cannot use; the message is for officers (German)."""


@dataclass(frozen=True)
class SearchQuery:
    """What an officer searches for: words and filters (all optional), and the page."""

    words: str = ""
    citizen: str = ""
    intent: str = ""
    channel: str = ""
    state: str = ""
    since: str | None = None  # UTC ISO, inclusive
    until: str | None = None  # UTC ISO, exclusive (the day after "to")
    page: int = 1

    @property
    def empty(self) -> bool:
        """True when there is nothing to search for."""
        return not (self.words or self.citizen or self.intent or self.channel or self.state or self.since or self.until)


@dataclass(frozen=True)
class Hit:
    """One message that matched, with its conversation."""

    message_id: int
    conversation_id: int
    created_at: str
    author: str
    intent: str | None
    snippet: str  # FTS5's snippet with OPEN/CLOSE around the hits, or the text's start without words
    channel: str
    citizen: str
    state: str


@dataclass(frozen=True)
class Results:
    """One page of hits, newest first."""

    hits: list[Hit]
    page: int
    more: bool
    marked: bool  # the snippets carry hit markers (a search with words)


def fts_query(words: str) -> str:
    """The FTS5 expression for an officer's words: quoted tokens and phrases only, all of them required."""
    if len(words) > MAX_CHARS:
        raise SearchError(f"Der Suchtext ist zu lang ({len(words)} Zeichen). Höchstens {MAX_CHARS} Zeichen, bitte.")
    terms: list[str] = []
    count = 0
    for match in _CHUNK.finditer(words):
        phrase = match[1] is not None
        tokens = _TOKEN.findall(match[1] if phrase else match[2])
        if not tokens:
            continue
        count += len(tokens)
        if count > MAX_WORDS:
            raise SearchError(f"Zu viele Suchwörter. Höchstens {MAX_WORDS} Wörter, bitte.")
        prefix = not phrase and len(tokens[-1]) >= PREFIX_FROM
        terms.append(f'"{" ".join(tokens)}"' + ("*" if prefix else ""))
    if words.strip() and not terms:
        raise SearchError("Im Suchtext steht kein Wort, nur Sonderzeichen. Gib ein Wort ein oder wähle einen Filter.")
    return " ".join(terms)


def parse_day(value: str, zone: ZoneInfo, label: str) -> date | None:
    """A day from the form ("2026-11-27" or "27.11.2026"); None when empty."""
    value = value.strip()
    if not value:
        return None
    german = _GERMAN_DATE.fullmatch(value)
    try:
        day = date(int(german[3]), int(german[2]), int(german[1])) if german else date.fromisoformat(value)
    except ValueError:
        raise SearchError(f"Das Datum bei „{label}“ verstehe ich nicht: „{value[:20]}“. Bitte so: 27.11.2026.") from None
    if not 2000 <= day.year <= 2999:
        raise SearchError(f"Das Datum bei „{label}“ liegt außerhalb der gespeicherten Zeit.")
    return day


def _utc(day: date, zone: ZoneInfo) -> str:
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def build_query(form: Any, zone: ZoneInfo) -> SearchQuery:
    """A checked SearchQuery from the search form's fields; SearchError with a German message otherwise."""
    def field(name: str) -> str:
        return str(form.get(name, "") or "")

    words = field("q").strip()
    fts_query(words)  # checks length and content
    citizen = field("person").strip()
    if citizen and not _PSEUDONYM.fullmatch(citizen):
        raise SearchError("Das Pseudonym sieht so aus: te-1a2b3c4d5e (Kanal, Strich, zehn Zeichen).")
    intent, channel, state = field("thema"), field("kanal"), field("status")
    if intent and intent not in INTENTS:
        raise SearchError("Dieses Thema kenne ich nicht. Bitte wähle eins aus der Liste.")
    if channel and channel not in CHANNELS:
        raise SearchError("Diesen Kanal kenne ich nicht. Bitte wähle einen aus der Liste.")
    if state and state not in STATES:
        raise SearchError("Diesen Status kenne ich nicht. Bitte wähle einen aus der Liste.")
    since, until = parse_day(field("von"), zone, "Von"), parse_day(field("bis"), zone, "Bis")
    if since and until and since > until:
        raise SearchError("„Von“ liegt nach „Bis“. Bitte tausch die beiden Daten.")
    try:
        page = min(MAX_PAGE, max(1, int(field("seite") or "1")))
    except ValueError:
        page = 1
    return SearchQuery(words, citizen, intent, channel, state, _utc(since, zone) if since else None,
                       _utc(until + timedelta(days=1), zone) if until else None, page)


def search(log: HandoverLog, query: SearchQuery, page_size: int = PAGE_SIZE) -> Results:
    """One page of messages (citizens' and officers', not the bot's) that match, newest first."""
    where, args = ["m.author != 'bot'"], []
    filters = (("c.citizen = ?", query.citizen), ("c.channel = ?", query.channel), ("c.state = ?", query.state),
               ("COALESCE(json_extract(m.meta, '$.relabel'), m.intent) = ?", query.intent),
               ("m.created_at >= ?", query.since), ("m.created_at < ?", query.until))
    for clause, value in filters:
        if value:
            where.append(clause)
            args.append(value)
    limit = [page_size + 1, (query.page - 1) * page_size]
    columns = "m.id, m.conversation_id, m.created_at, m.author, m.intent, c.channel, c.citizen, c.state"
    expression = fts_query(query.words)
    if expression:
        sql = (f"SELECT {columns}, snippet(messages_fts, 0, '{OPEN}', '{CLOSE}', ' … ', 16) AS snip "
               "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid JOIN conversations c ON c.id = m.conversation_id "
               f"WHERE messages_fts MATCH ? AND {' AND '.join(where)} ORDER BY messages_fts.rowid DESC LIMIT ? OFFSET ?")
        rows = log._select(sql, [expression, *args, *limit])
    else:
        sql = (f"SELECT {columns}, m.text AS snip FROM messages m JOIN conversations c ON c.id = m.conversation_id "
               f"WHERE {' AND '.join(where)} ORDER BY m.id DESC LIMIT ? OFFSET ?")
        rows = log._select(sql, [*args, *limit])
    hits = [Hit(r["id"], r["conversation_id"], r["created_at"], r["author"], r["intent"],
                r["snip"] or "", r["channel"], r["citizen"], r["state"])
            for r in rows[:page_size]]
    return Results(hits, query.page, len(rows) > page_size, bool(expression))


def citizen_history(log: HandoverLog, conv: Conversation, retention_days: int, now: datetime | None = None,
                    limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """The same citizen's other conversations within the retention period, newest first, with their first words."""
    cutoff = ((now or datetime.now(timezone.utc)) - timedelta(days=retention_days)).isoformat(timespec="milliseconds")
    rows = log._select(
        "SELECT c.id, c.channel, c.state, c.created_at, COALESCE(c.last_inbound_at, c.created_at) AS last_at, "
        "(SELECT text FROM messages WHERE conversation_id = c.id AND direction = 'in' AND text != '' ORDER BY id LIMIT 1) AS first "
        "FROM conversations c WHERE c.citizen = ? AND c.id != ? AND c.updated_at >= ? "
        "ORDER BY last_at DESC, c.id DESC LIMIT ?",
        [conv.citizen, conv.id, cutoff, limit],
    )
    for row in rows:
        text = row["first"] or ""
        row["first"] = text if len(text) <= 80 else text[:80].rsplit(" ", 1)[0] + " …"
    return rows


def forget_deleted(log: HandoverLog) -> None:
    """Rewrite the search index without the entries of deleted messages (FTS5 keeps them until its segments merge).

    With secure_delete on, the old segments' pages are overwritten: a deleted message's words leave
    the file too, not only the search. About 0.6 s for an index of a million messages (bench/officers_day.py).
    The entries are already out of the search; when another process holds the write lock, the next
    deletion or retention run rewrites the index.
    """
    try:
        log.db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
    except sqlite3.OperationalError as err:
        if not is_busy(err):
            raise
        logger.warning("search index not rewritten after a deletion (database busy); the next deletion or retention run does it")
