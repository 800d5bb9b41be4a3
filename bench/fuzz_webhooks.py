"""Fuzz the webhooks: Telegram- and Meta-shaped JSON (and junk) against /telegram/webhook and /instagram/webhook.

The whole app runs on 127.0.0.1 in a background thread (Telegram in webhook mode against the fake
Bot API, Instagram and Messenger against the fake Graph API, no NLU model); hypothesis generates
bodies, most correctly authenticated so the parsers are reached. Every answer must be 2xx or 4xx,
a 4xx must leave the log untouched, and the app must still be healthy at the end.

Run: .venv/bin/python -m bench.fuzz_webhooks [--examples 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bench.rasa_stack import free_port
from bot.channels.meta_webhook import sign

SECRET = "fuzz-app-secret"
TG_SECRET = "fuzz-telegram-secret"
ACCOUNT = "17841400000000001"

# -- bodies ------------------------------------------------------------------------------------

junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the right type, sometimes anything at all."""
    return st.one_of(strategy, strategy, strategy, junk)


def shaped(required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A dict with these fields (each possibly of the wrong type), optional ones sometimes left out."""
    return st.fixed_dictionaries({k: maybe(v) for k, v in required.items()},
                                 optional={k: maybe(v) for k, v in optional.items()})


ids = st.integers(min_value=-2**53, max_value=2**53)
chat = shaped({"id": ids, "type": st.sampled_from(["private", "group", "supergroup", "channel"])}, {"first_name": st.text(max_size=10)})
user = shaped({"id": ids, "is_bot": st.booleans(), "first_name": st.text(max_size=10)}, {"language_code": st.sampled_from(["de", "en", ""])})
tg_message = shaped(
    {"message_id": st.integers(min_value=0), "date": st.integers(min_value=0, max_value=2**32), "chat": chat},
    {"from": user, "text": st.text(max_size=200), "caption": st.text(max_size=50),
     "photo": st.lists(shaped({"file_id": st.text(max_size=8), "file_unique_id": st.text(max_size=8),
                               "width": st.integers(0, 99), "height": st.integers(0, 99)}, {}), max_size=2),
     "voice": shaped({"file_id": st.text(max_size=8), "file_unique_id": st.text(max_size=8), "duration": st.integers(0, 99)}, {}),
     "entities": st.lists(shaped({"type": st.sampled_from(["bot_command", "url", "bold"]), "offset": st.integers(-2, 50),
                                  "length": st.integers(-2, 50)}, {}), max_size=2)})
callback = shaped({"id": st.text(max_size=8), "from": user, "chat_instance": st.text(max_size=8)},
                  {"data": st.text(max_size=30), "message": tg_message})
telegram_update = st.one_of(
    shaped({"update_id": st.integers(min_value=0, max_value=2**31)},
           {"message": tg_message, "edited_message": tg_message, "callback_query": callback,
            "channel_post": tg_message, "business_message": tg_message}),
    junk,
)

attachment = shaped({"type": st.sampled_from(["image", "video", "audio", "file", "share", "story_mention", "x"])},
                    {"payload": shaped({}, {"url": st.text(max_size=20)})})
meta_message = shaped({"mid": st.text(max_size=20)},
                      {"text": st.text(max_size=200), "is_echo": st.booleans(), "app_id": ids,
                       "attachments": st.lists(attachment, max_size=2),
                       "quick_reply": shaped({"payload": st.text(max_size=20)}, {}),
                       "reply_to": shaped({"mid": st.text(max_size=10)}, {})})
messaging = shaped({"sender": shaped({"id": st.text(max_size=12)}, {}), "recipient": shaped({"id": st.just(ACCOUNT)}, {}),
                    "timestamp": st.integers(min_value=-1, max_value=2**45)},
                   {"message": meta_message, "postback": shaped({"payload": st.text(max_size=20)}, {"title": st.text(max_size=10)}),
                    "read": shaped({"mid": st.text(max_size=10)}, {}), "reaction": junk})
meta_body = st.one_of(
    shaped({"object": st.sampled_from(["instagram", "page", "user"]),
            "entry": st.lists(shaped({"id": st.just(ACCOUNT), "time": st.integers(0, 2**45)},
                                     {"messaging": st.lists(messaging, max_size=3)}), max_size=2)}, {}),
    junk,
)


def encoded(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """JSON of the strategy's values, or sometimes raw bytes that are not JSON at all."""
    return st.one_of(strategy.map(lambda v: json.dumps(v).encode()), strategy.map(lambda v: json.dumps(v).encode()),
                     strategy.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200))


# -- the app under fuzz ------------------------------------------------------------------------

class Target:
    """The app, the fake Bot API and the fake Graph API on one event loop in a background thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.database = folder / "fuzz.sqlite3"
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-target", daemon=True)

    def __enter__(self) -> "Target":
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _call(self, coro: Any, timeout: float = 120) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    async def _start(self) -> None:
        from bot.settings import Settings
        from bot.web.app import create_app
        from tests.fake_bot_api import FakeBotApi
        from tests.fake_graph_api import FakeGraphApi

        self.bot_api = await FakeBotApi().start()
        self.graph = await FakeGraphApi(token="ig-token", tokens={"page-token"}).start()
        settings = Settings.from_env({
            "DATABASE_PATH": str(self.database), "MODEL_PATH": str(self.folder / "no-model.tar.gz"),
            "WEB_PORT": str(self.port), "LOG_LEVEL": "ERROR",
            "TELEGRAM_BOT_TOKEN": self.bot_api.token, "TELEGRAM_API_BASE_URL": self.bot_api.base_url,
            "TELEGRAM_WEBHOOK_URL": "https://streife.example.org", "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "INSTAGRAM_VERIFY_TOKEN": "fuzz-verify", "INSTAGRAM_APP_SECRET": SECRET, "INSTAGRAM_ACCESS_TOKEN": "ig-token",
            "INSTAGRAM_ACCOUNT_ID": ACCOUNT, "MESSENGER_ACCESS_TOKEN": "page-token",
            "GRAPH_API_BASE_URL": self.graph.url,
        }, dotenv=self.folder / "none.env")
        self.runner = web.AppRunner(create_app(settings, load_model=False), access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        await self.bot_api.wait_for(lambda: bool(self.bot_api.webhook.get("url")), timeout=30)

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.bot_api.stop()
        await self.graph.stop()
        await asyncio.sleep(0.05)  # let the fake's cancelled webhook pusher finish

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """POST over a fresh HTTP connection; return the status."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def stored(self) -> int:
        """Inbound messages in the log (read on a connection of its own)."""
        with sqlite3.connect(self.database, timeout=10) as db:
            return db.execute("SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0]

    def undeliverable(self) -> list[tuple[str, str, str]]:
        """(channel, chat id, error) of replies that failed: a stored message the bot can never answer."""
        with sqlite3.connect(self.database, timeout=10) as db:
            return db.execute("SELECT m.channel, c.chat_id, m.error FROM messages m JOIN conversations c "
                              "ON c.id = m.conversation_id WHERE m.direction = 'out' AND m.error IS NOT NULL").fetchall()


class FuzzFailure(AssertionError):
    """The app answered a fuzzed body wrongly."""


def fuzz(target: Target, examples: int, webhooks: tuple[str, ...] = ("telegram", "meta"), derandomize: bool = False) -> Counter:
    """Send `examples` bodies to each webhook; raise FuzzFailure on a 5xx or a 4xx that stored something.

    derandomize: the same bodies on every run (for the test suite); otherwise new ones each time.
    """
    statuses: Counter = Counter()

    def check(path: str, body: bytes, headers: dict[str, str]) -> None:
        before = target.stored()
        status = target.post(path, body, headers)
        statuses[(path, status // 100 * 100)] += 1
        if not (200 <= status < 500):
            raise FuzzFailure(f"{path} answered {status} to {body[:300]!r}")
        if status >= 400 and target.stored() != before:
            raise FuzzFailure(f"{path} refused with {status} but stored a message: {body[:300]!r}")

    phases = [Phase.generate] if derandomize else list(Phase)  # the test suite does not spend time shrinking
    run = settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize, phases=phases,
                   suppress_health_check=list(HealthCheck))

    @run
    @given(encoded(telegram_update), st.sampled_from([TG_SECRET] * 8 + ["", "wrong"]))
    def telegram(body: bytes, secret: str) -> None:
        check("/telegram/webhook", body, {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {})

    @run
    @given(encoded(meta_body), st.sampled_from(["ok"] * 8 + ["none", "wrong"]))
    def meta(body: bytes, signature: str) -> None:
        headers = {"ok": {"X-Hub-Signature-256": sign(SECRET, body)}, "none": {},
                   "wrong": {"X-Hub-Signature-256": sign("not-the-secret", body)}}[signature]
        check("/instagram/webhook", body, headers)

    for name, run_fuzz in (("telegram", telegram), ("meta", meta)):
        if name in webhooks:
            run_fuzz()
    if not target.healthy():
        raise FuzzFailure("/healthz is not 200 after fuzzing")
    time.sleep(1.0)  # replies to the accepted bodies are sent in the background
    undeliverable = target.undeliverable()
    if undeliverable:
        raise FuzzFailure(f"accepted bodies whose replies cannot be sent: {undeliverable[:5]}")
    return statuses


def main(argv: list[str] | None = None) -> int:
    """Fuzz both webhooks and print the answers by status class."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10_000, help="bodies in total, split over the webhooks")
    parser.add_argument("--only", choices=["telegram", "meta"], default=None, help="fuzz one webhook")
    args = parser.parse_args(argv)
    logging.getLogger("bot").setLevel(logging.CRITICAL)  # every refused body logs a warning: thousands of lines
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="streife-fuzz-") as tmp, Target(Path(tmp)) as target:
        webhooks = (args.only,) if args.only else ("telegram", "meta")
        statuses = fuzz(target, args.examples // len(webhooks), webhooks)
        stored = target.stored()
    print(f"{args.examples} fuzzed bodies in {time.perf_counter() - started:.0f} s: no 5xx, no crash, "
          f"no 4xx stored anything; {stored} valid messages stored, each answerable")
    for (path, klass), n in sorted(statuses.items()):
        print(f"  {path} {klass // 100}xx: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
