"""A small run of bench/attack.py: the real service under small attacks while emergencies arrive.

No model (the safety net answers alone, so the service starts in a second), one service for every
attack, small counts: a few seconds. It asserts what a citizen and an officer would notice; the
figures themselves are in bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bench import attack
from bench.attack_floods import BENIGN, FAKE_EMERGENCIES, gzip_bomb
from bench.attack_report import CHANNELS
from bench.attack_stack import EMERGENCIES
from bot.safety_net import SafetyNet
from bot.settings import ROOT, Settings
from bot.text import clean
from bot.web.app import create_app
from bot.web.keys import SERVICES

SMALL = ["--no-model", "--one-service", "--calm", "1", "--min-phase", "1", "--rate", "2", "--fakes", "20", "--workers", "5",
         "--seconds", "2", "--gzip", "2", "--gzip-kb", "20", "--slow", "2", "--slow-bytes", "20000", "--anon", "40", "--anon-concurrency", "8"]


def test_the_bench_emergencies_are_emergencies_and_the_flood_texts_are_not() -> None:
    net = SafetyNet.load(ROOT / "data" / "safety_net.yml")
    for text in (*EMERGENCIES, *FAKE_EMERGENCIES, attack.REAL_EMERGENCY):
        assert net.check(clean(text)) is not None, text
    for text in BENIGN:
        assert net.check(clean(text)) is None, text


def test_a_gzip_bomb_is_small_on_the_wire_and_large_inflated() -> None:
    body, inflated = gzip_bomb(20 * 1024)
    assert 20 * 1024 <= len(body) < 30 * 1024 and inflated > 500 * len(body)


def test_under_small_attacks_every_emergency_is_answered_and_the_real_one_comes_first() -> None:
    phases, _ = asyncio.run(attack.run_attacks(attack.parse_args(SMALL)))
    assert [p.name.split(":")[0] for p in phases] == ["calm", "H1", "H2", "H3", "H3", "H4"]
    for phase in phases:
        for channel in CHANNELS:  # every emergency on every channel got the 110 prompt, within the bench's 15 s
            assert phase.latency[channel] and not phase.missed[channel], (phase.name, channel, phase.missed)
        assert phase.five_xx == 0, phase.name
    h1 = phases[1]
    assert h1.attack["statuses"] == {202: 20} and h1.attack["flood_chats"] == 20
    assert isinstance(h1.attack["real_reply_s"], float)
    assert h1.inbox is not None and h1.inbox.rank is not None and h1.inbox.flood_above == 0, h1.inbox
    assert h1.handover is not None and h1.handover.rank is not None and h1.handover.flood_above == 0, h1.handover
    gzip, slow = phases[3], phases[4]
    assert set(gzip.attack["statuses"]) == {400}  # never inflated (auto_decompress=False): not JSON, refused
    assert all(s["bytes_sent"] == 20000 for s in slow.attack["senders"])  # slow bodies were read to the end
    assert slow.attack["statuses"] == {202: 1, 403: 1}  # the web chat took its message; a forged webhook was refused
    anonymous = phases[5].attack  # the dashboard, its CSV and the search: a login redirect (GET) or 401 (POST), nothing else
    assert anonymous["statuses"] == {303: 30, 401: 10} and not anonymous["errors"], anonymous
    assert "| H1: 20 fake emergencies |" in attack.table(phases)


async def _anonymous_requests(tmp_path: Path) -> tuple[list[tuple[str, str, int, str]], list[str], list[str]]:
    """The real app; anonymous GETs/POSTs of the inbox's new pages, and the SQL each request's own task ran."""
    settings = Settings.from_env({"DATABASE_PATH": str(tmp_path / "anon.sqlite3"),
                                  "MODEL_PATH": str(tmp_path / "no-model.tar.gz")}, dotenv=tmp_path / "none.env")
    app = create_app(settings, load_model=False)
    answers: list[tuple[str, str, int, str]] = []
    bare: list[str] = []
    with_cookie: list[str] = []
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        current: list[str] = bare

        def trace(sql: str) -> None:  # only statements run by a request handler (not the recovery loop)
            task = asyncio.current_task()
            if task is not None and "RequestHandler" in task.get_coro().__qualname__:
                current.append(sql)

        app[SERVICES].handover.db.conn.set_trace_callback(trace)
        for cookie in ("", "streife_session=" + "A" * 43):
            current = with_cookie if cookie else bare
            headers = {"Cookie": cookie} if cookie else {}
            for method, path in (("GET", "/inbox/stats?tage=90"), ("GET", "/inbox/stats.csv?from=2020-01-01&to=2026-11-01"),
                                 ("GET", "/inbox/suche?q=messer"), ("POST", "/inbox/suche")):
                data = {"q": "messer " * 15_000} if method == "POST" else None
                async with client.request(method, path, headers=headers, data=data, allow_redirects=False) as response:
                    answers.append((method, path, response.status, response.headers.get("Location", "")))
        app[SERVICES].handover.db.conn.set_trace_callback(None)
    return answers, bare, with_cookie


def test_anonymous_requests_for_the_dashboard_and_the_search_are_refused_without_database_work(tmp_path: Path) -> None:
    answers, bare, with_cookie = asyncio.run(_anonymous_requests(tmp_path))
    for method, path, status, location in answers:
        if method == "GET":
            assert status == 303 and location == "/inbox/login?next=" + path.split("?")[0], (path, status, location)
        else:
            assert status == 401, (path, status)
    assert bare == []  # no cookie: not a single SQL statement
    assert len(with_cookie) == 4 and all("FROM sessions" in sql for sql in with_cookie), with_cookie  # one key lookup each
