"""Fuzz the webhooks: Telegram, Meta (DMs and comments) and X bodies, junk and forgeries, while emergencies arrive.

The whole app runs on 127.0.0.1 in a background thread (Telegram in webhook mode against the fake
Bot API, Instagram and Messenger against the fake Graph API, X against the fake X API, no NLU
model); hypothesis generates bodies (bench/fuzz_bodies.py), most correctly signed so the parsers are
reached, the rest unsigned or forged. X's CRC GET gets fuzzed tokens. Every answer must be 2xx or
4xx, a 4xx (every forged body among them) must store nothing, the app must still be healthy at the
end, and meanwhile a real emergency DM (Instagram, X, Telegram in turn, every --every s) must get
its 110 reply within the deadline.

Run: .venv/bin/python -m bench.fuzz_webhooks [--examples 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import logging
import sqlite3
import sys
import tempfile
import threading
from contextlib import nullcontext
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bench.attack_stack import EMERGENCIES
from bench.fuzz_bodies import ACCOUNT, PAGE, X_ACCOUNT, crc_token, encoded, extreme_bodies, meta_body, telegram_update, x_body
from bench.rasa_stack import free_port
from bot.channels import x_webhook
from bot.channels.meta_webhook import sign

SECRET = "fuzz-app-secret"
TG_SECRET = "fuzz-telegram-secret"
WEBHOOKS = ("telegram", "meta", "x", "crc")
__all__ = ["ACCOUNT", "PAGE", "X_ACCOUNT", "SECRET", "TG_SECRET", "Target", "fuzz", "FuzzFailure"]


class Target:
    """The app, the fake Bot API, Graph API and X API on one event loop in a background thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.database = folder / "fuzz.sqlite3"
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.emergencies: Emergencies | None = None  # the last fuzz run's emergency DMs
        self.emergency_chats: set[str] = set()  # their chats: not the fuzzer's doing, so not counted by stored()
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
        from tests import fake_x_api
        from tests.fake_bot_api import FakeBotApi
        from tests.fake_graph_api import FakeGraphApi

        self.bot_api = await FakeBotApi().start()
        self.graph = await FakeGraphApi(token="ig-token", tokens={"page-token"}).start()
        self.xapi = await fake_x_api.FakeXApi().start()
        self.x_secret = fake_x_api.CONSUMER_SECRET
        settings = Settings.from_env({
            "DATABASE_PATH": str(self.database), "MODEL_PATH": str(self.folder / "no-model.tar.gz"),
            "WEB_PORT": str(self.port), "LOG_LEVEL": "ERROR",
            "TELEGRAM_BOT_TOKEN": self.bot_api.token, "TELEGRAM_API_BASE_URL": self.bot_api.base_url,
            "TELEGRAM_WEBHOOK_URL": "https://streife.example.org", "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "INSTAGRAM_VERIFY_TOKEN": "fuzz-verify", "INSTAGRAM_APP_SECRET": SECRET, "INSTAGRAM_ACCESS_TOKEN": "ig-token",
            "INSTAGRAM_ACCOUNT_ID": ACCOUNT, "MESSENGER_ACCESS_TOKEN": "page-token", "MESSENGER_PAGE_ID": PAGE,
            "GRAPH_API_BASE_URL": self.graph.url,
            "X_CONSUMER_KEY": fake_x_api.CONSUMER_KEY, "X_CONSUMER_SECRET": fake_x_api.CONSUMER_SECRET,
            "X_ACCESS_TOKEN": fake_x_api.ACCESS_TOKEN, "X_ACCESS_TOKEN_SECRET": fake_x_api.ACCESS_SECRET,
            "X_API_BASE_URL": self.xapi.url,
        }, dotenv=self.folder / "none.env")
        self.runner = web.AppRunner(create_app(settings, load_model=False), access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        await self.bot_api.wait_for(lambda: bool(self.bot_api.webhook.get("url")), timeout=30)

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.bot_api.stop()
        await self.graph.stop()
        await self.xapi.stop()
        await asyncio.sleep(0.05)  # let the fake's cancelled webhook pusher finish

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request over a fresh HTTP connection: status and body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """POST over a fresh HTTP connection; return the status."""
        return self.request("POST", path, body, headers)[0]

    def healthy(self) -> bool:
        return self.request("GET", "/livez")[0] == 200

    def stored(self) -> int:
        """Inbound messages (but the emergency DMs') and comments in the log (read on a connection of its own)."""
        with sqlite3.connect(self.database, timeout=10) as db:
            per_chat = db.execute("SELECT c.chat_id, count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                                  "WHERE m.direction = 'in' GROUP BY c.chat_id").fetchall()
            comments = db.execute("SELECT count(*) FROM comments").fetchone()[0]
        return comments + sum(n for chat, n in per_chat if str(chat) not in self.emergency_chats)

    def comments(self) -> int:
        """Comments stored (valid ones the fuzzer made)."""
        with sqlite3.connect(self.database, timeout=10) as db:
            return db.execute("SELECT count(*) FROM comments").fetchone()[0]

    def undeliverable(self) -> list[tuple[str, str, str]]:
        """(channel, chat id, error) of replies that failed: a stored message the bot can never answer."""
        with sqlite3.connect(self.database, timeout=10) as db:
            return db.execute("SELECT m.channel, c.chat_id, m.error FROM messages m JOIN conversations c "
                              "ON c.id = m.conversation_id WHERE m.direction = 'out' AND m.error IS NOT NULL").fetchall()


def signed_headers(target: Target, path: str, body: bytes, how: str) -> dict[str, str]:
    """Headers for `path` as the platform sends them ("ok"), without a signature ("none") or forged ("wrong")."""
    if path.startswith("/telegram"):
        return {"ok": {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}, "none": {},
                "wrong": {"X-Telegram-Bot-Api-Secret-Token": "guessed"}}[how]
    if path.startswith("/x"):
        secret = {"ok": target.x_secret, "wrong": "guessed-" + target.x_secret}.get(how)
        return {x_webhook.SIGNATURE_HEADER: x_webhook.sign(secret, body)} if secret else {}
    secret = {"ok": SECRET, "wrong": "not-the-secret"}.get(how)
    return {"X-Hub-Signature-256": sign(secret, body)} if secret else {}


REDELIVERIES = 3  # a platform delivers a webhook again when the connection drops or the answer is 429/5xx


class Emergencies:
    """Real emergency DMs (Instagram, X, Telegram in turn) during the fuzzing, timed until the 110 reply arrives."""

    def __init__(self, target: Target, every: float, deadline: float) -> None:
        self.target, self.every, self.deadline = target, every, deadline
        self.latency: dict[str, list[float]] = {"instagram": [], "x": [], "telegram": []}
        self.missed: Counter[str] = Counter()  # delivered, but no 110 reply within the deadline
        self.undelivered: Counter[str] = Counter()  # the webhook could not be reached even after redeliveries
        self.redelivered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-emergencies", daemon=True)
        self._numbers = itertools.count(1)

    def __enter__(self) -> "Emergencies":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.deadline + 30)

    def _deliver(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        """POST like the platforms do: a dropped connection, a 429 or a 5xx is delivered again (a few times, quickly)."""
        for attempt in range(REDELIVERIES + 1):
            try:
                if self.target.post(path, body, headers) < 429 or attempt == REDELIVERIES:
                    return
            except OSError:
                if attempt == REDELIVERIES:
                    raise
            self.redelivered += 1
            time.sleep(0.2)

    def _send(self, channel: str, n: int) -> Callable[[], bool]:
        """Send emergency number n on `channel`; return a check for its 110 reply."""
        t, text = self.target, EMERGENCIES[n % len(EMERGENCIES)]
        if channel == "instagram":
            user = f"66{n:08d}"
            t.emergency_chats.add(user)
            body = json.dumps({"object": "instagram", "entry": [{"id": ACCOUNT, "time": int(time.time() * 1000), "messaging": [
                {"sender": {"id": user}, "recipient": {"id": ACCOUNT}, "timestamp": int(time.time() * 1000),
                 "message": {"mid": f"fuzz-emergency-{n}", "text": text}}]}]}).encode()
            self._deliver("/instagram/webhook", body, signed_headers(t, "/instagram/webhook", body, "ok"))
            return lambda: any(c.recipient == user and "110" in c.text for c in list(t.graph.calls))
        if channel == "x":
            user = str(1_600_000_000_000_000_000 + n)
            t.emergency_chats.add(user)
            event = {"type": "message_create", "id": str(1_700_000_000_000_000_000 + n), "created_timestamp": str(int(time.time() * 1000)),
                     "message_create": {"target": {"recipient_id": X_ACCOUNT}, "sender_id": user, "message_data": {"text": text}}}
            body = json.dumps({"for_user_id": X_ACCOUNT, "direct_message_events": [event]}).encode()
            self._deliver("/x/webhook", body, signed_headers(t, "/x/webhook", body, "ok"))
            return lambda: any(c.participant == user and c.status == 201 and "110" in c.text for c in list(t.xapi.calls))
        chat = 880_000_000 + n
        t.emergency_chats.add(str(chat))
        update = {"update_id": 800_000_000 + n, "message": {"message_id": 1, "date": int(time.time()), "text": text,
                  "chat": {"id": chat, "type": "private"}, "from": {"id": chat, "is_bot": False, "first_name": "B"}}}
        body = json.dumps(update).encode()
        self._deliver("/telegram/webhook", body, signed_headers(t, "/telegram/webhook", body, "ok"))
        return lambda: any("110" in str(p.get("plain", "")) for p in t.bot_api.sent(chat))

    def _run(self) -> None:
        for n in self._numbers:
            if n > 1 and self._stop.wait(self.every):  # the first at once: even a short run has one
                return
            channel = list(self.latency)[n % len(self.latency)]
            started = time.perf_counter()
            try:
                answered = self._send(channel, n)
            except OSError:
                self.undelivered[channel] += 1
                continue
            while not answered() and time.perf_counter() - started < self.deadline:
                time.sleep(0.01)
            if answered():
                self.latency[channel].append(time.perf_counter() - started)
            else:
                self.missed[channel] += 1

    def late(self) -> list[str]:
        """Emergencies that got no 110 reply within the deadline, by channel."""
        return ([f"{channel}: {n} without a 110 reply within {self.deadline:g} s" for channel, n in self.missed.items() if n]
                + [f"{channel}: {n} not delivered (connection refused or reset {REDELIVERIES + 1} times)"
                   for channel, n in self.undelivered.items() if n])


class FuzzFailure(AssertionError):
    """The app answered a fuzzed body wrongly."""


def fuzz(target: Target, examples: int, webhooks: tuple[str, ...] = WEBHOOKS, derandomize: bool = False,
         every: float = 0.5, deadline: float = 5.0) -> Counter:
    """Send `examples` bodies to each webhook; raise FuzzFailure on a 5xx, a 4xx that stored something, or a late emergency.

    derandomize: the same bodies on every run (for the test suite); otherwise new ones each time.
    every/deadline: a real emergency DM every `every` s meanwhile, each answered within `deadline` s (0: none).
    """
    statuses: Counter = Counter()

    def check(path: str, body: bytes, how: str) -> None:
        before = target.stored()
        status = target.post(path, body, signed_headers(target, path, body, how))
        statuses[(path, status // 100 * 100)] += 1
        if not (200 <= status < 500):
            raise FuzzFailure(f"{path} answered {status} to {body[:300]!r}")
        if how != "ok" and status not in (403, 413):  # 413: too large to read, let alone to check
            raise FuzzFailure(f"{path} answered {status}, not 403, to a {how} signature: {body[:300]!r}")
        if status >= 400 and target.stored() != before:
            raise FuzzFailure(f"{path} refused with {status} but stored something: {body[:300]!r}")

    phases = [Phase.generate] if derandomize else list(Phase)  # the test suite does not spend time shrinking
    run = settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize, phases=phases,
                   suppress_health_check=list(HealthCheck))
    signatures = st.sampled_from(["ok"] * 8 + ["none", "wrong"])

    @run
    @given(encoded(telegram_update), signatures)
    def telegram(body: bytes, how: str) -> None:
        check("/telegram/webhook", body, how)

    @run
    @given(encoded(meta_body), signatures)
    def meta(body: bytes, how: str) -> None:
        check("/instagram/webhook", body, how)

    @run
    @given(encoded(x_body), signatures)
    def x(body: bytes, how: str) -> None:
        check("/x/webhook", body, how)

    @run
    @given(st.lists(crc_token, min_size=0, max_size=2))
    def crc(tokens: list[str]) -> None:
        query = "&".join(f"crc_token={quote(t, safe='')}" for t in tokens)
        status, answer = target.request("GET", "/x/webhook?" + query)
        statuses[("/x/webhook GET", status // 100 * 100)] += 1
        if status == 200:  # only for one token shaped like X's, and then the right HMAC (never a signature for a body)
            expected = x_webhook.crc_response(target.x_secret, tokens[0]) if len(tokens) == 1 else None
            if expected is None or json.loads(answer) != {"response_token": expected}:
                raise FuzzFailure(f"CRC answered 200 to {tokens!r}: {answer[:200]!r}")
        elif status != 400:
            raise FuzzFailure(f"CRC answered {status} to {tokens!r}")

    with Emergencies(target, every, deadline) if every > 0 else nullcontext() as emergencies:
        for name, run_fuzz in (("telegram", telegram), ("meta", meta), ("x", x), ("crc", crc)):
            if name in webhooks:
                run_fuzz()
        for what, body in extreme_bodies():
            for path in [p for name, p in (("telegram", "/telegram/webhook"), ("meta", "/instagram/webhook"),
                                           ("x", "/x/webhook")) if name in webhooks]:
                for how in ("ok", "wrong"):
                    try:
                        check(path, body, how)
                    except FuzzFailure as err:
                        raise FuzzFailure(f"{what}: {err}"[:600]) from None
    if not target.healthy():
        raise FuzzFailure("/livez is not 200 after fuzzing")
    if emergencies is not None and emergencies.late():
        raise FuzzFailure("; ".join(emergencies.late()))
    time.sleep(1.0)  # replies to the accepted bodies are sent in the background
    undeliverable = target.undeliverable()
    if undeliverable:
        raise FuzzFailure(f"accepted bodies whose replies cannot be sent: {undeliverable[:5]}")
    target.emergencies = emergencies
    return statuses


def main(argv: list[str] | None = None) -> int:
    """Fuzz every webhook and print the answers by status class and the emergencies' reply times."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10_000, help="bodies in total, split over the webhooks")
    parser.add_argument("--only", choices=WEBHOOKS, default=None, help="fuzz one webhook")
    parser.add_argument("--every", type=float, default=0.5, help="a real emergency DM every this many seconds (0: none)")
    parser.add_argument("--deadline", type=float, default=5.0, help="an emergency without its 110 reply by then fails the run")
    args = parser.parse_args(argv)
    logging.getLogger("bot").setLevel(logging.CRITICAL)  # every refused body logs a warning: thousands of lines
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="streife-fuzz-") as tmp, Target(Path(tmp)) as target:
        webhooks = (args.only,) if args.only else WEBHOOKS
        statuses = fuzz(target, args.examples // len(webhooks), webhooks, every=args.every, deadline=args.deadline)
        stored, comments, emergencies = target.stored(), target.comments(), target.emergencies
    print(f"{args.examples} fuzzed requests in {time.perf_counter() - started:.0f} s: no 5xx, no crash, "
          f"no 4xx stored anything, every forged body 403; {stored - comments} valid messages and {comments} comments stored, each message answerable")
    for (path, klass), n in sorted(statuses.items()):
        print(f"  {path} {klass // 100}xx: {n}")
    for channel, values in (emergencies.latency.items() if emergencies else ()):
        ordered = sorted(values)
        if ordered:
            print(f"  emergency DMs meanwhile, {channel}: {len(ordered)} answered with 110, p50 {1000 * ordered[len(ordered) // 2]:.0f} ms, "
                  f"slowest {1000 * ordered[-1]:.0f} ms (target 1 s: {'met' if ordered[-1] <= 1.0 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
