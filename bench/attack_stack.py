"""The service under attack and its honest traffic, all on 127.0.0.1 (bench/attack.py uses this).

`python -m bot serve` runs as its own process with a temporary database, a free port, the NLU
workers and a fake Telegram Bot API and a fake Graph API (tests/fake_*.py) in this process.
Citizens with real emergencies write on the web chat, Telegram and Instagram, each from a new
chat, and the time until the 110 prompt reaches them is measured. Memory is read from /proc.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import sqlite3
import sys
import time
import uuid
from collections import Counter
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

from bench.inbox_latency import login
from bot.channels.meta_webhook import sign
from tests.fake_bot_api import FakeBotApi, free_port
from tests.fake_graph_api import Call, FakeGraphApi
from tests.instagram_helpers import ACCOUNT, PAGE_TOKEN, SECRET, TOKEN, message, notification

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-passwort-123"  # the officer "bench" (bench.inbox_latency.login logs in with it)
METRICS_TOKEN = "bench-attack-metrics-token"
REPLY_TIMEOUT = 15.0  # an emergency not answered within this counts as missed
# Real emergencies (each fires the safety net; checked in tests/test_bench_attack.py).
EMERGENCIES = (
    "Hilfe, bei uns ist gerade ein Einbrecher im Haus!",
    "Mein Nachbar bedroht mich mit einem Messer",
    "Es brennt im Treppenhaus, bitte kommt schnell",
    "Auf der A6 ist ein schwerer Unfall, da liegen Verletzte",
    "Ein Mann schlägt gerade eine Frau vor unserem Haus",
    "Jemand ist bei mir eingebrochen und noch in der Wohnung",
    "Ich werde verfolgt und habe Angst, er ist direkt hinter mir",
)


def citizen_address(n: int) -> str:
    """A distinct address per honest citizen (in 10.77.0.0/16; attackers and the H1 citizen use other ranges)."""
    return f"10.77.{n // 250 % 256}.{n % 250 + 1}"


class GraphWatch(FakeGraphApi):
    """The fake Graph API, telling a waiter when the 110 prompt reaches its recipient."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.waiting: dict[str, asyncio.Future[float]] = {}

    def _check(self, call: Call) -> tuple[int, dict[str, Any] | None]:
        status, error = super()._check(call)
        future = self.waiting.get(call.recipient)
        if status == 200 and "110" in call.text and future is not None and not future.done():
            future.set_result(time.perf_counter())
        return status, error


@dataclass
class Stack:
    """A running service, its fakes, and HTTP sessions for citizens and one logged-in officer."""

    proc: asyncio.subprocess.Process
    base: str
    env: dict[str, str]
    folder: Path
    bot_api: FakeBotApi
    graph: GraphWatch
    citizens: aiohttp.ClientSession
    officer: aiohttp.ClientSession
    model: bool
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (path, HTTP status) -> count
    telegram_waiting: dict[int, asyncio.Future[float]] = field(default_factory=dict)
    numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def seen(self, path: str, status: int) -> None:
        """Count one response the service gave."""
        self.statuses[(path, status)] += 1

    def five_xx(self) -> int:
        """5xx responses seen by the citizens' and the officer's sessions so far."""
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)

    def _telegram_sent(self, params: dict[str, Any]) -> None:
        future = self.telegram_waiting.get(int(params["chat_id"]))
        if future is not None and not future.done() and "110" in str(params.get("plain", "")):
            future.set_result(time.perf_counter())

    async def webchat_emergency(self, text: str, cookie: str, address: str) -> float:
        """A citizen posts an emergency; seconds until the 110 prompt is in the chat's transcript."""
        headers = {"Cookie": f"streife_chat={cookie}", "X-Forwarded-For": address}
        started = time.perf_counter()
        async with self.citizens.post(f"{self.base}/chat/messages", json={"text": text, "id": uuid.uuid4().hex},
                                      headers=headers) as response:
            self.seen("/chat/messages", response.status)
            await response.read()
            if response.status != 202:
                raise RuntimeError(f"web chat answered {response.status}")
        while True:  # the page fetches the transcript on every change; here: at once, then every 50 ms
            async with self.citizens.get(f"{self.base}/chat/transcript", headers=headers) as response:
                self.seen("/chat/transcript", response.status)
                body = await response.json() if response.status == 200 else {}
            if any(m.get("author") != "citizen" and "110" in (m.get("text") or "") for m in body.get("messages", [])):
                return time.perf_counter() - started
            await asyncio.sleep(0.05)

    async def telegram_emergency(self, text: str, chat: int) -> float:
        """A Telegram update appears; seconds until the bot's sendMessage with 110 reaches the Bot API."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.telegram_waiting[chat] = future
        started = time.perf_counter()
        self.bot_api.text(chat, text)
        try:
            return await future - started
        finally:
            self.telegram_waiting.pop(chat, None)

    async def instagram_emergency(self, text: str, user: str) -> float:
        """Meta posts a signed webhook; seconds until the 110 prompt reaches the Graph API."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.graph.waiting[user] = future
        body = json.dumps(notification(message(user, text))).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)}
        started = time.perf_counter()
        try:
            async with self.citizens.post(f"{self.base}/instagram/webhook", data=body, headers=headers) as response:
                self.seen("/instagram/webhook", response.status)
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"webhook answered {response.status}")
            return await future - started
        finally:
            self.graph.waiting.pop(user, None)

    async def emergency(self, channel: str, n: int) -> float:
        """Emergency number n from a new citizen on `channel`; seconds until the 110 prompt arrived."""
        text = EMERGENCIES[n % len(EMERGENCIES)]
        if channel == "webchat":
            return await self.webchat_emergency(text, f"citizen-{n:06d}-{uuid.uuid4().hex[:8]}", citizen_address(n))
        if channel == "telegram":
            return await self.telegram_emergency(text, 700_000_000 + n)
        return await self.instagram_emergency(text, f"77{n:08d}")

    def conversation_ids(self, channel: str, prefix: str) -> dict[str, int]:
        """chat id -> conversation id of the chats on `channel` whose chat id starts with `prefix` (read-only)."""
        db = sqlite3.connect(f"file:{self.env['DATABASE_PATH']}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute("SELECT chat_id, id FROM conversations WHERE channel = ? AND chat_id LIKE ?",
                              (channel, prefix + "%")).fetchall()
        finally:
            db.close()
        return dict(rows)

    async def inbox_order(self) -> tuple[list[int], str]:
        """Conversation ids as the officer's /inbox page lists them under "waiting" (in order), and the page."""
        async with self.officer.get(f"{self.base}/inbox") as response:
            self.seen("/inbox", response.status)
            page = await response.text()
        waiting = page.split("In Bearbeitung", 1)[0]
        return list(dict.fromkeys(int(i) for i in re.findall(r'data-conversation="(\d+)"', waiting))), page

    async def handover_list(self) -> list[int]:
        """Conversation ids in the order `python -m bot handover list` prints them."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "handover", "list", cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return [int(line.split("\t", 1)[0]) for line in out.decode().splitlines() if line[:1].isdigit()]


async def _wait_ready(base: str, proc: asyncio.subprocess.Process, model: bool, timeout: float) -> None:
    """Wait until the service answers (and, with a model, until a worker has it loaded)."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"bot serve exited with {proc.returncode}")
            with suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                async with session.get(f"{base}/healthz", headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as r:
                    body = await r.json()
                    if not model or (body.get("mode") == "nlu" and not body.get("model_loading")):
                        return
            await asyncio.sleep(0.3)
    raise RuntimeError(f"the service at {base} was not ready within {timeout:.0f} s")


async def _add_officer(env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "officers", "add", "bench", cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(PASSWORD.encode() + b"\n")
    if proc.returncode != 0:
        raise RuntimeError(f"officers add failed: {err.decode()[-500:]}")


@asynccontextmanager
async def running_service(folder: Path, model: Path | None, nlu_workers: int | None = None,
                          ready_timeout: float = 300) -> AsyncIterator[Stack]:
    """`bot serve` with every channel pointed at the fakes; without a model only the safety net answers."""
    bot_api = await FakeBotApi().start()
    graph = await GraphWatch(token=TOKEN, tokens={PAGE_TOKEN}).start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "INSTAGRAM_", "MESSENGER_"))}
    env.update(
        DATABASE_PATH=str(folder / "streife.sqlite3"), WEB_HOST="127.0.0.1", WEB_PORT=str(port), LOG_LEVEL="WARNING",
        TELEGRAM_BOT_TOKEN=bot_api.token, TELEGRAM_API_BASE_URL=bot_api.base_url, TELEGRAM_MAX_RATE="1000",
        INSTAGRAM_APP_SECRET=SECRET, INSTAGRAM_ACCESS_TOKEN=TOKEN, INSTAGRAM_ACCOUNT_ID=ACCOUNT,
        INSTAGRAM_VERIFY_TOKEN="bench-verify", GRAPH_API_BASE_URL=graph.url, GRAPH_API_VERSION="v21.0",
        METRICS_TOKEN=METRICS_TOKEN, TRUSTED_PROXIES="127.0.0.1",  # as behind a reverse proxy: X-Forwarded-For names the client
        PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="2",
    )
    if model is not None:
        env["MODEL_PATH"] = str(model)
    else:  # no NLU workers at all: the safety net answers alone (fast start, for the smoke test)
        env.update(MODEL_PATH=str(folder / "no-model.tar.gz"), NLU_PYTHON=str(folder / "no-python"))
    if nlu_workers:
        env["NLU_WORKERS"] = str(nlu_workers)
    await _add_officer(env)
    log = open(folder / "serve.log", "wb")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env,
                                                stdout=log, stderr=asyncio.subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    timeout = aiohttp.ClientTimeout(total=REPLY_TIMEOUT)
    citizens = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=timeout)
    officer = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout)
    stack = Stack(proc, base, env, folder, bot_api, graph, citizens, officer, model is not None)
    bot_api.on_send = stack._telegram_sent
    try:
        await _wait_ready(base, proc, model is not None, ready_timeout)
        await login(officer, base)
        yield stack
    finally:
        await citizens.close()
        await officer.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
        await graph.stop()
        await bot_api.stop()


def log_problems(folder: Path, limit: int = 5) -> list[str]:
    """The service log's ERROR and CRITICAL lines and tracebacks' last lines (at most `limit`)."""
    path = folder / "serve.log"
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [line[:300] for line in lines if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")][:limit]
