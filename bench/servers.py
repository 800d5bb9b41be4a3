"""Start the two servers under test on 127.0.0.1 and talk to them the way their clients do.

Ours: `python -m bot serve` with a fresh SQLite file; a citizen writes through the web chat
endpoint (POST /chat/messages, answered once the reply is stored). Rasa's: `rasa run` with its
REST channel (POST /webhooks/rest/webhook, answered with the bot's replies).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import aiohttp

from bench.rasa_stack import free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "bench-metrics-token"  # lets the bench read /healthz's details (everyone else gets {"status": "ok"})
# A throughput bench measures the bot, not the web chat's limits on anonymous intake (one address, many chats).
NO_WEBCHAT_LIMITS = {"WEBCHAT_MESSAGES_PER_MINUTE": "1000000", "WEBCHAT_NEW_CHATS_PER_HOUR": "1000000",
                     "WEBCHAT_CHAT_KB_PER_HOUR": "1000000", "WEBCHAT_TOTAL_MB_PER_HOUR": "1000000"}


class ServerError(RuntimeError):
    """A server under test did not start or answer as expected."""


def start_ours(database: Path, port: int | None = None, model: Path | None = None,
               log_file: Path | None = None, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `python -m bot serve` on 127.0.0.1 (no channel tokens); return the process and its base URL."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "INSTAGRAM_", "MESSENGER_"))}
    env.update(DATABASE_PATH=str(database), WEB_HOST="127.0.0.1", WEB_PORT=str(port), LOG_LEVEL="WARNING",
               TF_CPP_MIN_LOG_LEVEL="2", METRICS_TOKEN=METRICS_TOKEN, **(extra_env or {}))
    if model is not None:
        env["MODEL_PATH"] = str(model)
    log = open(log_file, "wb") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def healthz(base: str) -> dict:
    """GET /healthz as JSON (any status)."""
    try:
        request = urllib.request.Request(f"{base}/healthz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        return json.load(err)


def wait_for_mode(base: str, proc: subprocess.Popen, mode: str = "nlu", timeout: float = 180) -> float:
    """Wait until /healthz reports `mode` (and no model is loading); return the seconds waited."""
    started = time.perf_counter()
    wait_http(f"{base}/healthz", proc, timeout)
    while time.perf_counter() - started < timeout:
        body = healthz(base)
        if body.get("mode") == mode and not body.get("model_loading"):
            return time.perf_counter() - started
        if proc.poll() is not None:
            raise ServerError(f"bot exited with {proc.returncode}")
        time.sleep(0.2)
    raise ServerError(f"{base} did not reach mode {mode!r} within {timeout:.0f} s: {healthz(base)}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started here (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def citizen_id(n: int, run: str) -> str:
    """The chat id of simulated citizen `n` (valid as a web chat cookie)."""
    return f"bench-{run}-{n:04d}"


def webchat_sender(base: str, run: str):
    """Send one message as citizen n through our web chat; True when the bot's decision is stored."""
    url = f"{base}/chat/messages"

    async def send(session: aiohttp.ClientSession, n: int, text: str) -> bool:
        headers = {"Cookie": f"streife_chat={citizen_id(n, run)}"}
        async with session.post(url, json={"text": text, "id": uuid.uuid4().hex}, headers=headers) as response:
            await response.read()
            return response.status == 202

    return send


def rasa_sender(base: str, run: str):
    """Send one message as citizen n to Rasa's REST channel; True when it answered with a reply."""
    url = f"{base}/webhooks/rest/webhook"

    async def send(session: aiohttp.ClientSession, n: int, text: str) -> bool:
        async with session.post(url, json={"sender": citizen_id(n, run), "message": text}) as response:
            replies = await response.json(content_type=None) if response.status == 200 else None
            return bool(replies)

    return send
