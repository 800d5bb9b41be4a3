"""How fast does an emergency reach the officers? Prints numbers, asserts nothing.

A citizen posts an emergency to the web chat of the app served on 127.0.0.1; we time
  reply:  until the citizen's POST returns (the 110 prompt is stored and delivered),
  sse:    until a logged-in officer's inbox stream (server-sent events) announces the escalation,
  shown:  until the queue fragment the inbox page swaps in lists the conversation,
  alert:  until the officers' Telegram alert arrives at a fake Bot API on 127.0.0.1.

    .venv/bin/python -m bench.inbox_latency [--runs 30] [--no-model]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.settings import ROOT, Settings
from bot.web.app import create_app
from bot.web.keys import OFFICERS, SERVICES

PASSWORD = "bench-passwort-123"
ALERT_CHAT = "-100777"


class TinyBotApi:
    """Just enough of the Bot API for the app to start its Telegram channel; records sendMessage times."""

    def __init__(self) -> None:
        self.alerts: list[tuple[float, str]] = []
        self.app = web.Application()
        self.app.router.add_post("/bot{token}/{method}", self.handle)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.port = 0

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}/bot"

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await request.json() if request.content_type == "application/json" else dict(await request.post())
        if method == "getMe":
            result: object = {"id": 1, "is_bot": True, "first_name": "Streife", "username": "streife_bench_bot"}
        elif method == "getUpdates":
            await asyncio.sleep(min(float(params.get("timeout") or 0), 1.0))
            result = []
        elif method == "sendMessage":
            if str(params.get("chat_id")) == ALERT_CHAT:
                self.alerts.append((time.perf_counter(), str(params.get("text"))))
            result = {"message_id": len(self.alerts), "date": int(time.time()), "chat": {"id": int(params["chat_id"]), "type": "group"}}
        else:
            result = True
        return web.json_response({"ok": True, "result": result})


async def login(session: aiohttp.ClientSession, base: str) -> None:
    page = await (await session.get(f"{base}/inbox/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    async with session.post(f"{base}/inbox/login", data={"name": "bench", "password": PASSWORD, "csrf": csrf}, allow_redirects=False) as r:
        assert r.status == 303, r.status


async def sse_events(response: aiohttp.ClientResponse, out: asyncio.Queue[tuple[float, dict]]) -> None:
    event = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "update":
            await out.put((time.perf_counter(), json.loads(line[6:])))


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"{name:<6} n={len(ms):3d}  median {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  max {ms[-1]:7.1f} ms"


async def main(runs: int, use_model: bool) -> None:
    fake = TinyBotApi()
    api_base = await fake.start()
    tmp = Path(tempfile.mkdtemp(prefix="streife-bench-"))
    env = {"DATABASE_PATH": str(tmp / "bench.sqlite3"), "TELEGRAM_BOT_TOKEN": "1:bench", "TELEGRAM_API_BASE_URL": api_base,
           "OFFICER_ALERT_CHAT_ID": ALERT_CHAT, "LOG_LEVEL": "WARNING"}
    if not use_model:
        env["MODEL_PATH"] = str(tmp / "no-model.tar.gz")
    settings = Settings.from_env(env, dotenv=tmp / "none.env")
    app = create_app(settings, load_model=use_model)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    app[OFFICERS].add("bench", PASSWORD)
    if use_model:
        started = time.perf_counter()
        ready = await app[SERVICES].triage.parser.wait_ready(300)
        print(f"model loaded in {time.perf_counter() - started:.1f} s ({'ok' if ready else app[SERVICES].model_status()['model_error']})")
    reply, sse, shown, alert = [], [], [], []
    officer = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await login(officer, base)
        stream = await officer.get(f"{base}/inbox/events", timeout=aiohttp.ClientTimeout(total=None))
        events: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
        reader = asyncio.create_task(sse_events(stream, events))
        for n in range(runs):
            async with aiohttp.ClientSession() as citizen:
                chat = f"bench-{uuid.uuid4().hex[:12]}"
                alerts_before = len(fake.alerts)
                t0 = time.perf_counter()
                async with citizen.post(f"{base}/chat/messages", json={"text": "Hilfe, ein Einbrecher ist in unserer Wohnung!", "id": uuid.uuid4().hex},
                                        headers={"Cookie": f"streife_chat={chat}"}) as r:
                    assert r.status == 202, await r.text()
                reply.append(time.perf_counter() - t0)
                while True:
                    at, data = await asyncio.wait_for(events.get(), 10)
                    if data.get("escalated"):
                        break
                sse.append(at - t0)
                fragment = await (await officer.get(f"{base}/inbox/queue")).text()
                assert f'data-conversation="{data["conversation_id"]}"' in fragment
                shown.append(time.perf_counter() - t0)
                deadline = time.perf_counter() + 10
                while len(fake.alerts) <= alerts_before and time.perf_counter() < deadline:
                    await asyncio.sleep(0.001)
                if len(fake.alerts) > alerts_before:
                    alert.append(fake.alerts[alerts_before][0] - t0)
            await asyncio.sleep(0.1)
        reader.cancel()
        stream.close()
    finally:
        await officer.close()
        await runner.cleanup()
        await fake.runner.cleanup()
    print(f"emergency -> officers, {runs} runs, {'NLU model' if use_model else 'safety net only'}, 127.0.0.1")
    for name, values in (("reply", reply), ("sse", sse), ("shown", shown), ("alert", alert)):
        print(summary(name, values))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-model", action="store_true", help="safety net only (no 15 s model load)")
    args = parser.parse_args()
    asyncio.run(main(args.runs, not args.no_model and (ROOT / "models" / "nlu.tar.gz").is_file()))
