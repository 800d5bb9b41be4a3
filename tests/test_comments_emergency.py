"""An emergency in a comment: the officers' alert, and the 110 replies while another process locks the database.

Like an emergency DM (bot/unwritten.py). Real HTTP, a real SQLite file, fake Graph and Bot APIs on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from bot.handover.comments import Comments
from bot.web.keys import COMMENTS
from tests.fake_bot_api import FakeBotApi
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import Running, graph, meta_settings, running  # noqa: F401 (graph: fixture)
from tests.test_comments_inbound import EMERGENCY, KeywordParser, changes, ig_comment

CHAT = "-1004711"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotApi]:
    fake = await FakeBotApi().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def bot(tmp_path: Path, graph: FakeGraphApi, telegram: FakeBotApi) -> AsyncIterator[Running]:  # noqa: F811
    settings = meta_settings(tmp_path, graph, TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE_URL=telegram.base_url,
                             OFFICER_ALERT_CHAT_ID=CHAT, PUBLIC_URL="http://streife.example")
    async with running(settings, graph) as app:
        app.services.triage.parser = KeywordParser()
        yield app


async def test_an_emergency_comment_alerts_the_officers_like_an_emergency_dm(bot: Running, telegram: FakeBotApi) -> None:
    _, question = ig_comment("Wo kann ich ein gefundenes Portemonnaie abgeben?", user="9100")
    cid, emergency = ig_comment(EMERGENCY, user="9200")
    await bot.deliver(changes(question, emergency))
    await telegram.wait_for(lambda: bool(telegram.sent(int(CHAT))), timeout=5.0)
    await bot.channel.drain()
    c = Comments(bot.log).by_platform("instagram", cid)
    assert c is not None
    [alert] = telegram.sent(int(CHAT))  # one alert: the question raised none
    text = alert["plain"]
    assert text.startswith("🚨 NOTFALL") and "Kommentar" in text and "Instagram" in text
    assert f"http://streife.example/inbox/kommentare/{c.id}" in text and c.author in text
    assert "eingebrochen" not in text  # the citizen's words only with ALERT_INCLUDE_TEXT, as for DMs


@pytest.mark.sqlite_only
async def test_an_emergency_comment_is_answered_while_another_process_locks_the_database(
        bot: Running, telegram: FakeBotApi) -> None:
    other = sqlite3.connect(str(bot.services.settings.database_path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process (a backup, the admin CLI) holds the write lock
    try:
        cid, emergency = ig_comment(EMERGENCY, user="9300")
        started = time.monotonic()
        assert (await bot.post(changes(emergency))).status == 200
        calls = await bot.graph.wait_for_comments(
            lambda calls: {c.kind for c in calls if c.target == cid and c.status == 200} >= {"reply", "private_reply"}, timeout=5.0)
        assert time.monotonic() - started < 5.0
        await telegram.wait_for(lambda: bool(telegram.sent(int(CHAT))), timeout=5.0)
        assert (await bot.post(changes(emergency))).status == 200  # Meta delivers it again: dropped
        _, question = ig_comment("Wo kann ich ein gefundenes Portemonnaie abgeben?", user="9400")
        assert (await bot.post(changes(question))).status == 503  # not urgent: Meta delivers it again later
        assert Comments(bot.log).by_platform("instagram", cid) is None  # nothing written yet
    finally:
        other.rollback()
        other.close()
    store = Comments(bot.log)
    deadline = time.monotonic() + 5.0
    while (c := store.by_platform("instagram", cid)) is None or len(store.actions(c.id)) < 2:
        assert time.monotonic() < deadline, "the records were not written after the lock ended"
        await asyncio.sleep(0.05)
    assert (await bot.post(changes(emergency))).status == 200  # a late redelivery is a duplicate now
    await bot.channel.drain()
    await bot.app[COMMENTS].executor.drain()
    c = store.get(c.id)
    sent = [(a.kind, a.status, bool(a.platform_id)) for a in store.actions(c.id)]
    assert sent == [("public_reply", "sent", True), ("private_reply", "sent", True)]
    assert (c.policy, c.need, c.status) == ("escalate", 0, "decided") and c.conversation_id is not None
    calls = [x.kind for x in bot.graph.comment_calls if x.target == cid and x.status == 200]
    assert sorted(calls) == ["private_reply", "reply"]  # once each: never a second private reply
    [alert] = telegram.sent(int(CHAT))
    assert alert["plain"].startswith("🚨 NOTFALL") and "/inbox/kommentare" in alert["plain"]
