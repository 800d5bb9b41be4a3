"""Fuzzed webhook bodies (Telegram and Meta shapes, and junk): only 2xx/4xx, nothing stored for a 4xx, no crash.

A small run (300 bodies); `python -m bench.fuzz_webhooks` sends 10,000.
"""

from __future__ import annotations


import pytest

from bench.fuzz_webhooks import Target, fuzz


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    with Target(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


@pytest.mark.parametrize("webhook", ["telegram", "meta"])
def test_fuzzed_webhook_bodies_get_2xx_or_4xx_and_refused_ones_store_nothing(target: Target, webhook: str) -> None:
    statuses = fuzz(target, 150, (webhook,), derandomize=True)
    assert sum(statuses.values()) >= 150
    classes = {klass for (_, klass) in statuses}
    assert 400 in classes, "no body was refused: the fuzzer does not reach the checks"
    assert target.healthy()


# Bodies the fuzzer found that once crashed a parser (500: the platform would redeliver them forever).
FOUND = [
    ("/telegram/webhook", b'{"update_id": 0, "message": {"message_id": 0, "date": 0, "chat": null}}'),
    ("/instagram/webhook", b'{"object": "instagram", "entry": [{"id": "17841400000000001", "time": 0, "messaging": '
                           b'[{"sender": [null], "recipient": {"id": "17841400000000001"}, "timestamp": 0}]}]}'),
    ("/instagram/webhook", b'{"object": "instagram", "entry": [{"id": "17841400000000001", "time": 0, "messaging": '
                           b'[{"sender": {"id": ""}, "recipient": [null], "timestamp": 0}]}]}'),
]


@pytest.mark.parametrize("path, body", FOUND)
def test_bodies_that_once_crashed_a_parser_are_answered_without_5xx(target: Target, path: str, body: bytes) -> None:
    from bench.fuzz_webhooks import SECRET, TG_SECRET
    from bot.channels.meta_webhook import sign

    before = target.stored()
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET} if path.startswith("/telegram") else {"X-Hub-Signature-256": sign(SECRET, body)}
    status = target.post(path, body, headers)
    assert 200 <= status < 500
    if status >= 400:
        assert target.stored() == before


def test_well_formed_messages_among_fuzzed_bodies_are_stored(target: Target) -> None:
    """Valid bodies still work after the fuzzing (a webhook that refuses everything would pass the test above)."""
    import json

    from bench.fuzz_webhooks import ACCOUNT, SECRET, TG_SECRET
    from bot.channels.meta_webhook import sign

    before = target.stored()
    update = {"update_id": 99_000_001, "message": {"message_id": 1, "date": 1_700_000_000,
              "chat": {"id": 777, "type": "private"}, "from": {"id": 777, "is_bot": False, "first_name": "A"}, "text": "hallo"}}
    assert target.post("/telegram/webhook", json.dumps(update).encode(), {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}) == 200
    body = json.dumps({"object": "instagram", "entry": [{"id": ACCOUNT, "time": 1, "messaging": [
        {"sender": {"id": "5550123"}, "recipient": {"id": ACCOUNT}, "timestamp": 1_700_000_000_000,
         "message": {"mid": "fuzz-valid-mid-1", "text": "hallo"}}]}]}).encode()
    assert target.post("/instagram/webhook", body, {"X-Hub-Signature-256": sign(SECRET, body)}) == 200
    assert target.stored() == before + 2


@pytest.mark.parametrize("chat_id", ['{"a": [{}]}', '"777"', "true", "[1]"])
def test_a_telegram_message_whose_chat_id_is_no_number_is_refused_and_not_stored(target: Target, chat_id: str) -> None:
    """Found by the 10,000-body run: PTB took a dict as chat id; the stored reply could never be sent."""
    from bench.fuzz_webhooks import TG_SECRET

    before = target.stored()
    body = ('{"update_id": 99000100, "message": {"message_id": 1, "date": 1700000000, "chat": {"id": %s, "type": "private"}, '
            '"from": {"id": 777, "is_bot": false, "first_name": "A"}, "text": "hallo"}}' % chat_id).encode()
    assert target.post("/telegram/webhook", body, {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}) == 400
    assert target.stored() == before
