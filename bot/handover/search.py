"""Search over the handover log (SQLite FTS5): chats and comments under posts; a citizen's earlier conversations.

Officers' words are never passed to FTS5 as syntax: every word becomes a quoted token (a prefix
search from three letters on, so "Roller" also finds "Rollers"), words in "double quotes" a phrase.
The indexes are kept in step with `messages` (schema `_v4`) and `comments` (`_v9`) by triggers: a
privacy deletion or the retention job removes an entry in the same transaction as its row. Chats come
one row per conversation (its best hit and the number of hits), comments one row per comment.
On PostgreSQL the same words, filters and pages come from GIN indexes (bot/handover/pg_search.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from bot.handover import pg_search
from bot.handover.records import STATES, Conversation
from bot.handover.search_index import forget_deleted, forget_deleted_soon  # noqa: F401 (re-exported for privacy.py)
from bot.handover.store import HandoverLog
from nlu.intents import INTENTS

logger = logging.getLogger(__name__)
CHANNELS = ("webchat", "telegram", "instagram", "messenger", "mastodon", "x")
COMMENT_CHANNELS = ("instagram", "messenger")  # comments under posts come from these
SCOPES = ("beides", "chats", "kommentare")
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
    """What an officer searches for: words and filters (all optional), where (chats, comments, both), and the page."""

    words: str = ""
    citizen: str = ""
    intent: str = ""
    channel: str = ""
    state: str = ""  # chats only
    since: str | None = None  # UTC ISO, inclusive
    until: str | None = None  # UTC ISO, exclusive (the day after "to")
    page: int = 1
    scope: str = "beides"  # one of SCOPES

    @property
    def empty(self) -> bool:
        """True when there is nothing to search for."""
        return not (self.words or self.citizen or self.intent or self.channel or self.state or self.since or self.until)

    @property
    def chats(self) -> bool:
        """Conversations are searched."""
        return self.scope in ("chats", "beides")

    @property
    def comments(self) -> bool:
        """Comments under posts are searched (not with a state filter: comments have no chat state)."""
        return self.scope in ("kommentare", "beides") and not self.state and self.channel in ("", *COMMENT_CHANNELS)


@dataclass(frozen=True)
class Hit:
    """One conversation that matched: its best hit (the best-ranked message; the newest without words) and how many."""

    message_id: int
    conversation_id: int
    created_at: str
    author: str
    intent: str | None
    snippet: str  # FTS5's snippet with OPEN/CLOSE around the hits, or the text's start without words
    channel: str
    citizen: str
    state: str
    count: int = 1  # messages in this conversation that matched


@dataclass(frozen=True)
class CommentHit:
    """One comment under a post that matched."""

    comment_id: int
    created_at: str
    author: str
    channel: str
    intent: str | None
    snippet: str
    caption: str  # the post's caption (an excerpt, may be empty)
    hidden: bool
    gone: bool  # deleted by us or on the platform


@dataclass(frozen=True)
class Results:
    """One page: conversations (newest hit first, one row each) and comments (newest first)."""

    hits: list[Hit]
    page: int
    more: bool
    marked: bool  # the snippets carry hit markers (a search with words)
    comments: list[CommentHit] = field(default_factory=list)
    searched: tuple[str, ...] = ("chats",)  # what was searched: "chats", "kommentare"


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
    def get(name: str) -> str:
        return str(form.get(name, "") or "")

    words = get("q").strip()
    fts_query(words)  # checks length and content
    citizen = get("person").strip()
    if citizen and not _PSEUDONYM.fullmatch(citizen):
        raise SearchError("Das Pseudonym sieht so aus: te-1a2b3c4d5e (Kanal, Strich, zehn Zeichen).")
    intent, channel, state = get("thema"), get("kanal"), get("status")
    if intent and intent not in INTENTS:
        raise SearchError("Dieses Thema kenne ich nicht. Bitte wähle eins aus der Liste.")
    if channel and channel not in CHANNELS:
        raise SearchError("Diesen Kanal kenne ich nicht. Bitte wähle einen aus der Liste.")
    if state and state not in STATES:
        raise SearchError("Diesen Status kenne ich nicht. Bitte wähle einen aus der Liste.")
    since, until = parse_day(get("von"), zone, "Von"), parse_day(get("bis"), zone, "Bis")
    if since and until and since > until:
        raise SearchError("„Von“ liegt nach „Bis“. Bitte tausch die beiden Daten.")
    try:
        page = min(MAX_PAGE, max(1, int(get("seite") or "1")))
    except ValueError:
        page = 1
    scope = get("in") or "beides"
    if scope not in SCOPES:
        raise SearchError("Bitte wähle: Chats, Kommentare oder beides.")
    return SearchQuery(words, citizen, intent, channel, state, _utc(since, zone) if since else None,
                       _utc(until + timedelta(days=1), zone) if until else None, page, scope)


def _filters(pairs: tuple[tuple[str, str | None], ...]) -> tuple[list[str], list[str]]:
    where, args = [], []
    for clause, value in pairs:
        if value:
            where.append(clause)
            args.append(value)
    return where, args


def _grouped(log: HandoverLog, rows: Any, page: int, page_size: int) -> tuple[list[int], dict[int, list[Any]], bool]:
    """Group a newest-first stream of (message id, conversation id, score) by conversation, for one page.

    Reads only as far as needed: once the page (and one more) has its conversations, matches older
    than their first message cannot belong to them, and the stream stops.
    """
    groups: dict[int, list[Any]] = {}  # conversation -> [hits, best message id, best score]
    order: list[int] = []
    wanted, floor = page * page_size + 1, None
    for message_id, conversation_id, score in rows:
        if floor is not None and message_id < floor:
            break
        group = groups.get(conversation_id)
        if group is None:
            if len(order) >= wanted:
                continue
            groups[conversation_id] = group = [0, message_id, score]
            order.append(conversation_id)
            if len(order) == wanted:
                mine = order[(page - 1) * page_size:]
                floor = log.db.execute(f"SELECT MIN(id) FROM messages WHERE conversation_id IN ({','.join('?' * len(mine))})",
                                       mine).fetchone()[0]
        group[0] += 1
        if score < group[2]:
            group[1], group[2] = message_id, score
    return order[(page - 1) * page_size:page * page_size], groups, len(order) > page * page_size


def search_chats(log: HandoverLog, query: SearchQuery, page_size: int = PAGE_SIZE) -> tuple[list[Hit], bool]:
    """One page of conversations whose messages (citizens' and officers', not the bot's) match, newest hit first."""
    where, args = _filters((("c.citizen = ?", query.citizen), ("c.channel = ?", query.channel), ("c.state = ?", query.state),
                            ("COALESCE(json_extract(m.meta, '$.relabel'), m.intent) = ?", query.intent),
                            ("m.created_at >= ?", query.since), ("m.created_at < ?", query.until)))
    where.insert(0, "m.author != 'bot'")
    expression = fts_query(query.words)
    postgres = getattr(log, "backend", "sqlite") == "postgresql"  # (PostgreSQL: bot/handover/pg_search.py)
    terms = pg_search.terms(log.db, expression) if postgres and expression else []
    if postgres:  # (one page in one query, the best hit ranked for those conversations only)
        rows = pg_search.chat_page(log, pg_search.tsquery(terms) if expression else None, where, args, query.page, page_size)
    elif expression:
        rows = log.db.execute(
            "SELECT m.id, m.conversation_id, bm25(messages_fts) FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
            f"JOIN conversations c ON c.id = m.conversation_id WHERE messages_fts MATCH ? AND {' AND '.join(where)} "
            "ORDER BY messages_fts.rowid DESC", [expression, *args])
    else:
        rows = log.db.execute(f"SELECT m.id, m.conversation_id, -m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                              f"WHERE {' AND '.join(where)} ORDER BY m.id DESC", args)
    try:
        order, groups, more = rows if postgres else _grouped(log, rows, query.page, page_size)
    finally:
        if not postgres:
            rows.close()
    best = [groups[c][1] for c in order]
    if not best:
        return [], more
    marks = ",".join("?" * len(best))
    snippets = dict(log.db.execute(
        f"SELECT rowid, snippet(messages_fts, 0, '{OPEN}', '{CLOSE}', ' … ', 16) FROM messages_fts "
        f"WHERE messages_fts MATCH ? AND rowid IN ({marks})", [expression, *best]).fetchall()) if expression and not postgres else {}
    rows_ = {r["id"]: r for r in log._select(
        "SELECT m.id, m.conversation_id, m.created_at, m.author, m.intent, m.text, c.channel, c.citizen, c.state "
        f"FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.id IN ({marks})", best)}
    if expression and postgres:
        snippets = pg_search.snippets(log, {i: rows_[i]["text"] for i in best}, terms, OPEN, CLOSE)
    hits = [Hit(r["id"], r["conversation_id"], r["created_at"], r["author"], r["intent"], snippets.get(r["id"], r["text"]) or "",
                r["channel"], r["citizen"], r["state"], groups[r["conversation_id"]][0])
            for r in (rows_[i] for i in best)]
    return hits, more


def search_comments(log: HandoverLog, query: SearchQuery, page_size: int = PAGE_SIZE) -> tuple[list[CommentHit], bool]:
    """One page of citizens' comments under posts that match, newest first."""
    where, args = _filters((("c.author = ?", query.citizen), ("c.channel = ?", query.channel), ("c.intent = ?", query.intent),
                            ("c.created_at >= ?", query.since), ("c.created_at < ?", query.until)))
    where[:0] = ["c.own = 0", "c.text != ''"]
    limit = [page_size + 1, (query.page - 1) * page_size]
    columns = ("c.id, c.created_at, c.author, c.channel, c.intent, c.hidden, c.deleted, c.removed_at, "
               "COALESCE(p.caption, '') AS caption")
    expression = fts_query(query.words)
    if expression and getattr(log, "backend", "sqlite") == "postgresql":  # (bot/handover/pg_search.py)
        terms = pg_search.terms(log.db, expression)
        rows = pg_search.comment_rows(log, columns, pg_search.tsquery(terms), where, [*args, *limit])
        marked = pg_search.snippets(log, {r["id"]: r["snip"] for r in rows[:page_size]}, terms, OPEN, CLOSE)
        rows = [{**r, "snip": marked.get(r["id"], r["snip"])} for r in rows]
    elif expression:
        rows = log._select(
            f"SELECT {columns}, snippet(comments_fts, 0, '{OPEN}', '{CLOSE}', ' … ', 16) AS snip FROM comments_fts "
            "JOIN comments c ON c.id = comments_fts.rowid JOIN posts p ON p.id = c.post_id "
            f"WHERE comments_fts MATCH ? AND {' AND '.join(where)} ORDER BY comments_fts.rowid DESC LIMIT ? OFFSET ?",
            [expression, *args, *limit])
    else:
        rows = log._select(f"SELECT {columns}, c.text AS snip FROM comments c JOIN posts p ON p.id = c.post_id "
                           f"WHERE {' AND '.join(where)} ORDER BY c.id DESC LIMIT ? OFFSET ?", [*args, *limit])
    hits = [CommentHit(r["id"], r["created_at"], r["author"], r["channel"], r["intent"], r["snip"] or "", r["caption"],
                       bool(r["hidden"]), bool(r["deleted"] or r["removed_at"])) for r in rows[:page_size]]
    return hits, len(rows) > page_size


def search(log: HandoverLog, query: SearchQuery, page_size: int = PAGE_SIZE) -> Results:
    """One page of chats (one row per conversation) and comments, as the query's scope asks."""
    chats, more_chats = search_chats(log, query, page_size) if query.chats else ([], False)
    comments, more_comments = search_comments(log, query, page_size) if query.comments else ([], False)
    searched = tuple(name for name, on in (("chats", query.chats), ("kommentare", query.comments)) if on)
    return Results(chats, query.page, more_chats or more_comments, bool(fts_query(query.words)), comments, searched)


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
