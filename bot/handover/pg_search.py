"""Search on PostgreSQL: the officers' words as a tsquery, the matching rows, and hits marked like FTS5's snippets.

The index (pg_features.sql) holds `streife_tsv(text)`: the text with diacritics removed (unaccent),
in lower case, split at everything that is not a letter or digit, for citizens' and officers' messages
(not the bot's) and citizens' comments (own = 0), as FTS5's indexes do. The words come in as the FTS5
expression `search.fts_query` builds (quoted tokens and phrases, a prefix `*` from three letters on)
and become the same tsquery: a token a lexeme, a phrase `<->`, a prefix `:*`, all of them required.
Ranking is ts_rank_cd (cover density, divided by 1 + log of the length), close to bm25: more hits and
shorter texts first. The best hit is marked in Python on the stored text, with the database's own
folding of each word, so a word is marked exactly when the index matched it.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from bot.handover.store import HandoverLog

SNIPPET_TOKENS = 16  # as FTS5's snippet(..., 16)
ELLIPSIS = " … "
_TERM = re.compile(r'"([^"]*)"(\*?)')
_WORD = re.compile(r"[^\W_]+")  # a word as FTS5's unicode61 sees it: letters and digits
Term = tuple[list[str], bool]  # a phrase's lexemes (one for a word) and whether the last is a prefix


def folded(db: Any, texts: Sequence[str]) -> list[list[str]]:
    """Each text's words as the index folds them (the database's unaccent and lower case), in order."""
    if not texts:
        return []
    rows = db.execute("SELECT public.streife_words(t) FROM unnest(?::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
                      [list(texts)]).fetchall()
    return [(row[0] or "").split() for row in rows]


def terms(db: Any, expression: str) -> list[Term]:
    """The terms of an FTS5 expression from `fts_query`, folded as the index folds its words."""
    parsed = [(m[1], bool(m[2])) for m in _TERM.finditer(expression)]
    return [(lexemes, prefix) for lexemes, (_, prefix) in zip(folded(db, [t for t, _ in parsed]), parsed) if lexemes]


def tsquery(terms_: list[Term]) -> str:
    """The tsquery text for the terms: all required; '' (matches nothing) when no term has a word."""
    def term(lexemes: list[str], prefix: bool) -> str:
        quoted = [f"'{lexeme}'" for lexeme in lexemes]  # (letters and digits only: nothing to escape)
        quoted[-1] += ":*" if prefix else ""
        return "(" + " <-> ".join(quoted) + ")"

    return " & ".join(term(lexemes, prefix) for lexemes, prefix in terms_)


def chat_page(log: HandoverLog, query: str | None, where: list[str], args: list[Any], page: int,
              page_size: int) -> tuple[list[int], dict[int, list[Any]], bool]:
    """One page of conversations as `search._grouped` gives it: their ids, newest hit first; per conversation
    [hits, best message id, 0]; whether more follow. Without words the best hit is the newest message.

    One query: the conversations are grouped in PostgreSQL (all hits are counted, none is sent here), and
    only the page's conversations have their messages ranked (ts_rank_cd reads each text again).
    """
    match = "public.streife_tsv(m.text) @@ ?::tsquery AND " if query is not None else ""
    rank = "ts_rank_cd(public.streife_tsv(m.text), ?::tsquery, 1) DESC, " if query is not None else ""
    words = [query] if query is not None else []
    hits = f"FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE {match}{' AND '.join(where)}"
    rows = log.db.execute(
        f"SELECT p.conversation_id, p.n, (SELECT m.id {hits} AND m.conversation_id = p.conversation_id ORDER BY {rank}m.id DESC LIMIT 1)"
        f" FROM (SELECT m.conversation_id, MAX(m.id) AS newest, COUNT(*) AS n {hits} GROUP BY m.conversation_id"
        " ORDER BY newest DESC LIMIT ? OFFSET ?) AS p ORDER BY p.newest DESC",
        [*words, *args, *words, *words, *args, page_size + 1, (page - 1) * page_size]).fetchall()
    groups = {conversation: [int(n), best, 0] for conversation, n, best in rows}
    return [r[0] for r in rows[:page_size]], groups, len(rows) > page_size


def comment_rows(log: HandoverLog, columns: str, query: str, where: list[str], args: list[Any]) -> list[dict[str, Any]]:
    """One page (LIMIT, OFFSET at the end of `args`) of the matching comments, newest first, their text as `snip`."""
    return log._select(
        f"SELECT {columns}, c.text AS snip FROM comments c JOIN posts p ON p.id = c.post_id "
        f"WHERE public.streife_tsv(c.text) @@ ?::tsquery AND {' AND '.join(where)} ORDER BY c.id DESC LIMIT ? OFFSET ?",
        [query, *args])


def _instances(words: list[list[str]], terms_: list[Term]) -> list[tuple[int, int, int]]:
    """Each match of a term in the text as (first word, last word + 1, term), by position (a phrase only where all of it matches)."""
    flat = [(i, part) for i, parts in enumerate(words) for part in parts]
    found = []
    for number, (lexemes, prefix) in enumerate(terms_):
        for start in range(len(flat) - len(lexemes) + 1):
            window = flat[start:start + len(lexemes)]
            last = window[-1][1]
            if all(part == lexeme for (_, part), lexeme in zip(window[:-1], lexemes[:-1])) and (
                    last == lexemes[-1] or (prefix and last.startswith(lexemes[-1]))):
                found.append((window[0][0], window[-1][0] + 1, number))
    return sorted(found)


def _score(found: list[tuple[int, int, int]], start: int) -> tuple[int, int, int]:
    """FTS5's score of the window from `start` on: 1000 for each term it shows, 1 for each repeat; its first and last hit."""
    seen: set[int] = set()
    score, first, last = 0, -1, 0
    for begin, end, term in found:
        if start <= begin < start + SNIPPET_TOKENS:
            score += 1 if term in seen else 1000
            seen.add(term)
            first = begin if first < 0 else first
            last = end
    return score, first, last


def _sentences(text: str, spans: list[tuple[int, int]]) -> list[int]:
    """The words that start a sentence (the first one, and one after '.' or ':' and a space), as FTS5 finds them."""
    starts = [0]
    for i in range(1, len(spans)):
        before = text[spans[i - 1][1]:spans[i][0]]
        if before != before.rstrip() and before.rstrip()[-1:] in (".", ":"):
            starts.append(i)
    return starts


def _window(text: str, spans: list[tuple[int, int]], found: list[tuple[int, int, int]]) -> int:
    """The first word of the snippet: FTS5's choice (the most terms, the hits centred, or a sentence's start)."""
    size, best, chosen = SNIPPET_TOKENS, 0, 0
    sentences = _sentences(text, spans)
    for begin, _, _ in found:
        score, first, last = _score(found, begin)
        adjusted = max(0, min(first - int((size - (last - first)) / 2), len(spans) - size))
        if score > best:
            best, chosen = score, adjusted
        sentence = max(s for s in sentences if s <= begin)
        if sentence < begin:
            score = _score(found, sentence)[0] + (120 if sentence == 0 else 100)
            if score > best:
                best, chosen = score, sentence
    return chosen


def snippet(text: str, words: list[list[str]], spans: list[tuple[int, int]], terms_: list[Term], open_: str, close: str) -> str:
    """FTS5's snippet on PostgreSQL: up to SNIPPET_TOKENS words around the most hits, each hit between the markers."""
    found = _instances(words, terms_)
    first = _window(text, spans, found) if len(spans) > SNIPPET_TOKENS else 0
    last = min(len(spans), first + SNIPPET_TOKENS)
    marked: list[list[int]] = []  # [first word, last word + 1] of each highlight (overlapping hits merged)
    for begin, end, _ in found:
        if first <= begin < last:
            if marked and begin < marked[-1][1]:
                marked[-1][1] = max(marked[-1][1], min(end, last))
            else:
                marked.append([begin, min(end, last)])
    opens, closes = {b for b, _ in marked}, {e - 1 for _, e in marked}
    out = [ELLIPSIS if first else ""]
    position = spans[first][0] if first else 0
    for i in range(first, last):
        begin, end = spans[i]
        out.append(text[position:begin] + (open_ if i in opens else "") + text[begin:end] + (close if i in closes else ""))
        position = end
    out.append(text[position:] if last == len(spans) else ELLIPSIS)
    return "".join(out)


def snippets(log: HandoverLog, texts: dict[int, str], terms_: list[Term], open_: str, close: str) -> dict[int, str]:
    """Snippets with the hits marked, for several texts at once (one query folds all their words)."""
    spans = {key: [m.span() for m in _WORD.finditer(text or "")] for key, text in texts.items()}
    flat = [(texts[key] or "")[b:e] for key in texts for b, e in spans[key]]
    folded_words = iter(folded(log.db, flat))
    out = {}
    for key, text in texts.items():
        words = [next(folded_words) for _ in spans[key]]
        out[key] = snippet(text or "", words, spans[key], terms_, open_, close) if spans[key] else (text or "")
    return out
