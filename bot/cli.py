"""The `triage` and `chat` commands."""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, BinaryIO, TextIO

from bot.services import build_triage
from bot.settings import Settings
from bot.decision import Context
from bot.triage import Triage
from bot.nlu_client import NluClient
from bot.nlu_workers import NluSupervisor

log = logging.getLogger(__name__)

LOAD_WAIT = 300.0  # seconds the commands wait for the model to load before answering without it
BATCH_DEADLINE = 30.0  # a command has no citizen waiting: give each parse time rather than skip the model


@asynccontextmanager
async def nlu_worker(settings: Settings) -> AsyncIterator[NluClient]:
    """One NLU worker for a command; without a model the safety net still escalates emergencies."""
    supervisor = NluSupervisor(settings, workers=1)
    supervisor.client.deadline = max(settings.nlu_deadline, BATCH_DEADLINE)
    await supervisor.start()
    try:
        if not await supervisor.client.wait_ready(LOAD_WAIT):
            log.warning("running without NLU model (safety-net mode): %s", supervisor.client.status()["model_error"])
        yield supervisor.client
    finally:
        await supervisor.stop()


async def triage_lines(settings: Settings, stdin: BinaryIO, stdout: TextIO) -> int:
    """Read one message per line and write one JSON decision per line, in the same order."""
    async with nlu_worker(settings) as client:
        return await _triage_lines(build_triage(settings, client), stdin, stdout)


async def _triage_lines(triage: Triage, stdin: BinaryIO, stdout: TextIO) -> int:
    for raw in stdin:
        line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        try:
            decision = await triage.decide(line, Context())
            out = decision.to_json()
        except Exception as err:  # one bad line must never end the run
            log.exception("line failed")
            out = json.dumps({"text": line, "error": f"{type(err).__name__}: {err}"}, ensure_ascii=False)
        stdout.write(out + "\n")
        stdout.flush()
    return 0


async def chat(settings: Settings) -> int:
    """A console chat with the bot, one conversation."""
    async with nlu_worker(settings) as client:
        return await _chat(build_triage(settings, client))


async def _chat(triage: Triage) -> int:
    actions: list[str] = []
    language: str | None = None
    checked = None  # what the last "in danger?" asked about
    print("streife: schreib eine Nachricht (Strg+D beendet). / type a message (Ctrl+D to quit).", flush=True)
    while True:
        try:
            text = input("du> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        decision = await triage.decide(text, Context(tuple(actions[-3:]), not actions, language, checked))
        actions.append(decision.action)
        language = decision.language
        checked = decision.checked or checked
        print(f"\nbot [{decision.action} · {decision.intent or '-'} {decision.confidence:.2f}]>\n{decision.reply}", flush=True)
        if decision.buttons:
            print("  " + " | ".join(label for label, _ in decision.buttons), flush=True)
        print(flush=True)
