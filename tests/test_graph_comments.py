"""The Graph API comment client against the fake Graph API on 127.0.0.1: the calls Meta documents, the errors it sends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from bot.channels.graph_comments import CommentApiError, GraphComments, classify
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import graph, meta_settings  # noqa: F401  (fixture)


@pytest.fixture
async def client(tmp_path: Path, graph: FakeGraphApi) -> AsyncIterator[GraphComments]:  # noqa: F811
    async with aiohttp.ClientSession() as session:
        yield GraphComments(session, meta_settings(tmp_path, graph))


async def test_public_replies_go_to_the_documented_edges(client: GraphComments, graph: FakeGraphApi) -> None:  # noqa: F811
    graph.add_comment("17800000000000001", "17900000000000001", "Wo ist die Wache?")
    ig_id = await client.reply_public("instagram", "17800000000000001", "Wir haben dir eine Nachricht geschickt.")
    fb_id = await client.reply_public("messenger", "104000000000001_5001", "Schau in deine Nachrichten.")
    assert ig_id and fb_id and ig_id != fb_id
    assert [(c.kind, c.target, c.text) for c in graph.done()] == [
        ("reply", "17800000000000001", "Wir haben dir eine Nachricht geschickt."),
        ("reply", "104000000000001_5001", "Schau in deine Nachrichten."),
    ]
    assert ig_id in graph.comments["17800000000000001"].replies


async def test_one_private_reply_per_comment_and_the_second_is_refused(client: GraphComments, graph: FakeGraphApi) -> None:  # noqa: F811
    graph.add_comment("17800000000000002", author_id="5550001")
    recipient, message_id = await client.reply_private("instagram", "17800000000000002", "Hallo, hier ist die Polizei.")
    assert recipient == "5550001" and message_id
    with pytest.raises(CommentApiError) as err:
        await client.reply_private("instagram", "17800000000000002", "Noch einmal.")
    assert err.value.final and err.value.reason == "private_closed"
    assert "schon privat geantwortet" in err.value.officer_text
    assert len(graph.done("private_reply")) == 1


async def test_no_private_reply_after_seven_days(client: GraphComments, graph: FakeGraphApi) -> None:  # noqa: F811
    graph.add_comment("17800000000000003", age=timedelta(days=7, minutes=1))
    with pytest.raises(CommentApiError) as err:
        await client.reply_private("messenger", "17800000000000003", "Hallo.")
    assert err.value.final and (err.value.code, err.value.subcode) == (10, 2018278)
    assert graph.done() == []


async def test_a_private_reply_too_long_for_one_message_is_refused_never_cut(client: GraphComments, graph: FakeGraphApi) -> None:  # noqa: F811
    text = "Bitte ruf sofort die 110 an. " + "Wir sind für dich da. " * 80
    with pytest.raises(CommentApiError) as refused:
        await client.reply_private("instagram", "17800000000000004", text)
    assert refused.value.final and "höchstens 1000 Zeichen" in refused.value.officer_text
    assert graph.done("private_reply") == []  # nothing went out: the transcript can never show a text Meta did not get
    await client.reply_private("messenger", "555_17800000000000004", text)  # Messenger takes 2,000
    [call] = graph.done("private_reply")
    assert call.text == text.strip()


async def test_hide_unhide_and_delete(client: GraphComments, graph: FakeGraphApi) -> None:  # noqa: F811
    await client.hide("instagram", "17800000000000005", True)
    assert graph.comments["17800000000000005"].hidden
    await client.hide("messenger", "104000000000001_5002", True)
    await client.hide("messenger", "104000000000001_5002", False)
    assert not graph.comments["104000000000001_5002"].hidden
    await client.delete("instagram", "17800000000000005")
    assert graph.comments["17800000000000005"].deleted
    assert [c.kind for c in graph.done()] == ["hide", "hide", "unhide", "delete"]


async def test_a_comment_deleted_by_its_author_is_gone_for_good(client: GraphComments, graph: FakeGraphApi) -> None:  # noqa: F811
    graph.add_comment("17800000000000006")
    graph.delete_comment("17800000000000006")
    for call in (client.reply_public("instagram", "17800000000000006", "Danke!"), client.hide("instagram", "17800000000000006", True),
                 client.reply_private("instagram", "17800000000000006", "Hallo.")):
        with pytest.raises(CommentApiError) as err:
            await call
        assert err.value.final and err.value.reason == "gone" and "gibt es auf Instagram nicht mehr" in err.value.officer_text


@pytest.mark.parametrize("fault, reason", [("rate_limit", "rate_limit"), ("app_rate_limit", "rate_limit"),
                                           ("server_error", "transient"), ("bad_gateway", "transient")])
async def test_rate_limits_and_server_errors_are_worth_retrying(client: GraphComments, graph: FakeGraphApi,  # noqa: F811
                                                                fault: str, reason: str) -> None:
    graph.fail_comments(fault)
    with pytest.raises(CommentApiError) as err:
        await client.hide("instagram", "17800000000000007", True)
    assert not err.value.final and err.value.reason == reason and "erneut versucht" in err.value.officer_text
    await client.hide("instagram", "17800000000000007", True)  # the next call goes through
    assert graph.comments["17800000000000007"].hidden


async def test_a_lost_answer_may_mean_it_was_done(client: GraphComments, graph: FakeGraphApi) -> None:  # noqa: F811
    graph.fail_comments("lost_answer")
    with pytest.raises(CommentApiError) as err:
        await client.reply_private("instagram", "17800000000000008", "Hallo.")
    assert err.value.maybe_sent and not err.value.final
    assert graph.comments["17800000000000008"].private_replied  # Meta did send it


async def test_no_connection_means_not_sent(tmp_path: Path, graph: FakeGraphApi) -> None:  # noqa: F811
    settings = meta_settings(tmp_path, graph, GRAPH_API_BASE_URL="http://127.0.0.1:9")  # nothing listens on port 9
    async with aiohttp.ClientSession() as session:
        with pytest.raises(CommentApiError) as err:
            await GraphComments(session, settings).reply_private("instagram", "17800000000000009", "Hallo.")
    assert not err.value.final and not err.value.maybe_sent


async def test_an_invalid_token_is_final_and_says_what_to_do(tmp_path: Path, graph: FakeGraphApi) -> None:  # noqa: F811
    async with aiohttp.ClientSession() as session:
        client = GraphComments(session, meta_settings(tmp_path, graph, INSTAGRAM_ACCESS_TOKEN="expired"))
        with pytest.raises(CommentApiError) as err:
            await client.delete("instagram", "17800000000000010")
    assert err.value.final and err.value.reason == "token" and "Technik" in err.value.officer_text


async def test_listing_a_posts_comments(client: GraphComments, graph: FakeGraphApi) -> None:  # noqa: F811
    graph.add_comment("17800000000000011", "17900000000000002", "Erster", author_id="111")
    graph.add_comment("17800000000000012", "17900000000000002", "Zweiter", author_id="222")
    graph.add_comment("17800000000000013", "17900000000000003", "Anderer Post")
    found = await client.comments("instagram", "17900000000000002")
    assert [(c["id"], c["text"], c["author_id"]) for c in found] == [("17800000000000011", "Erster", "111"),
                                                                    ("17800000000000012", "Zweiter", "222")]
    reply = await client.reply_public("instagram", "17800000000000011", "Danke dir!")
    assert [r["id"] for r in await client.replies("instagram", "17800000000000011")] == [reply]


def test_the_usage_header_tells_how_long_to_wait() -> None:
    body = {"error": {"code": 80002, "message": "There have been too many calls to this Instagram account."}}
    headers = {"X-Business-Use-Case-Usage": '{"17841400000000001": [{"type": "instagram", "call_count": 100, '
                                            '"estimated_time_to_regain_access": 3}]}'}
    error = classify(400, body, headers, "Instagram")
    assert not error.final and error.retry_after == 180.0
    assert classify(429, {}, {"Retry-After": "7"}, "Instagram").retry_after == 7.0
