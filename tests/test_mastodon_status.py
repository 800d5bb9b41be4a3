"""Reading and writing Mastodon statuses: HTML as text, our own mention, the length rule, malformed bodies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.mastodon_status import (Account, counted_length, html_to_text, neutralise_mentions,
                                          notification_inbound, split_status, status_inbound, strip_leading_mentions)

OWN = Account("1", "polizei", "polizei")
ANNA = {"id": "9001", "username": "anna", "acct": "anna@social.example"}


def status(**fields: Any) -> dict[str, Any]:
    return {"id": "110", "visibility": "direct", "content": "<p>Hallo</p>", "account": ANNA, "created_at": "2026-03-01T10:00:00.000Z",
            "mentions": [], "media_attachments": [], **fields}


@pytest.mark.parametrize(("html", "text"), [
    ("<p>Hallo</p><p>Welt</p>", "Hallo\n\nWelt"),
    ("eins<br>zwei<br/>drei", "eins\nzwei\ndrei"),
    ("&lt;b&gt;fett&lt;/b&gt; &amp; &quot;so&quot; &#128680;", '<b>fett</b> & "so" 🚨'),
    ("<p><script>alert(1)</script>weiter</p>", "alert(1)weiter"),  # markup never runs: its text stays, as text
    ('<a href="https://ex.am/ple/long"><span class="invisible">https://</span><span class="ellipsis">ex.am/pl</span>'
     '<span class="invisible">e/long</span></a>', "https://ex.am/ple/long"),
    ("<p>unclosed <b>tag", "unclosed tag"),
    ("", ""),
])
def test_status_html_becomes_the_text_a_reader_sees(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(("text", "rest"), [
    ("@polizei Hilfe", "Hilfe"),
    ("@Polizei@polizei.social @polizei Hilfe", "Hilfe"),
    ("@polizei @freund schau mal", "@freund schau mal"),
    ("Hallo @polizei", "Hallo @polizei"),
    ("@polizeipraesidium hallo", "@polizeipraesidium hallo"),
])
def test_only_leading_mentions_of_the_police_account_are_removed(text: str, rest: str) -> None:
    assert strip_leading_mentions(text, OWN) == rest


def test_mentions_in_replies_are_broken_but_mail_addresses_stay() -> None:
    assert neutralise_mentions("@max, (@lisa) und info@polizei.de") == "@\u200bmax, (@\u200blisa) und info@polizei.de"


def test_urls_count_23_and_mentions_without_their_domain() -> None:
    assert counted_length("@anna@social.example https://a.de") == len("@anna ") + 23
    assert counted_length("https://example.com/" + "x" * 100) == 23


@pytest.mark.parametrize("limit", [100, 500, 5000])
def test_long_texts_are_split_within_the_limit_without_losing_a_word(limit: int) -> None:
    text = "\n\n".join(f"Absatz {n}: " + "Wort " * 90 + "https://t.co/x" for n in range(8))
    parts = split_status(text, "@anna@social.example ", limit)
    assert all(counted_length(p) <= limit and p.startswith("@anna@social.example ") for p in parts)
    assert " ".join(p.removeprefix("@anna@social.example ") for p in parts).split() == text.split()
    assert len(parts) == 1 if limit == 5000 else len(parts) > 1


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=3000))
def test_any_text_splits_within_the_limit(text: str) -> None:
    parts = split_status(text, "@ben ", 120)
    assert all(counted_length(p) <= 120 for p in parts) and parts


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=500))
def test_any_html_reads_as_text_without_an_error(html: str) -> None:
    assert isinstance(html_to_text(html), str)


@pytest.mark.parametrize("payload", [
    None, [], "mention", {"type": "mention"}, {"type": "mention", "status": None},
    {"type": "mention", "status": status(account=None)},
    {"type": "mention", "status": status(account={"id": 5})},  # no name to answer to
    {"type": "mention", "status": status(id=None)},
    {"type": "mention", "status": status(visibility="limited")},
    {"type": "mention", "status": status(account={"id": "1", "acct": "polizei"})},  # our own
    {"type": "mention", "status": status(reblog={"id": "1"})},
    {"type": "favourite", "status": status()},
])
def test_notifications_that_are_not_a_citizens_mention_are_skipped(payload: Any) -> None:
    assert notification_inbound(payload, OWN)[1] is None


@pytest.mark.parametrize(("fields", "kind", "text"), [
    ({"content": "<p>@polizei Hallo</p>"}, "text", "Hallo"),
    ({"content": None}, "unsupported", ""),
    ({"content": 17}, "text", "17"),
    ({"content": ["x"], "media_attachments": [{"type": "image"}, "kaputt"]}, "photo", ""),
    ({"content": "", "media_attachments": [{"type": "audio"}]}, "voice", ""),
    ({"content": "", "media_attachments": "kaputt"}, "unsupported", ""),
    ({"visibility": "public", "content": "<p>Danke!</p>"}, "public_mention", "Danke!"),
    ({"spoiler_text": "Gewalt", "content": "<p>Mein Nachbar</p>"}, "text", "Gewalt\n\nMein Nachbar"),
    ({"created_at": "gestern"}, "text", "Hallo"),
])
def test_statuses_with_odd_fields_still_become_a_message(fields: dict[str, Any], kind: str, text: str) -> None:
    inbound = status_inbound(status(**fields), OWN)
    assert inbound is not None and (inbound.kind, inbound.text, inbound.chat_id, inbound.user_id) == (kind, text, "anna@social.example", "9001")


def test_a_huge_status_is_cut() -> None:
    inbound = status_inbound(status(content="<p>" + "a" * 50_000 + "</p>"), OWN)
    assert inbound is not None and len(inbound.text) == 10_001 and inbound.meta["truncated"] is True
