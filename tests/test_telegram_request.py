"""The aiohttp transport for python-telegram-bot: PTB's errors for timeouts and network trouble."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from telegram.error import NetworkError, TimedOut

from bot.channels.telegram_request import AiohttpRequest
from tests.fake_bot_api import free_port


async def test_a_closed_port_is_a_network_error_and_a_slow_answer_a_timeout() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    request = AiohttpRequest(read_timeout=0.2)
    try:
        with pytest.raises(NetworkError):
            await request.do_request(f"http://127.0.0.1:{free_port()}/x", "POST")
        with pytest.raises(TimedOut):
            await request.do_request(f"http://127.0.0.1:{port}/slow", "POST")
        status, body = await request.do_request(f"http://127.0.0.1:{port}/slow", "POST", read_timeout=5)
        assert status == 200 and b'"ok": true' in body
    finally:
        await request.shutdown()
        await runner.cleanup()
