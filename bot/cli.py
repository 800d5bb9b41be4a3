"""The `triage` and `chat` commands."""

from __future__ import annotations

import json
import logging
from typing import BinaryIO, TextIO

from bot.services import build_triage
from bot.settings import Settings
from bot.triage import Context
from nlu.model import ModelHolder

log = logging.getLogger(__name__)


def load_models(settings: Settings) -> ModelHolder:
    """Load the model once; without one the safety net still escalates emergencies."""
    models = ModelHolder()
    if models.load(settings.model_path) is None:
        log.warning("running without NLU model (safety-net mode): %s", models.error)
    return models


async def triage_lines(settings: Settings, stdin: BinaryIO, stdout: TextIO) -> int:
    """Read one message per line and write one JSON decision per line, in the same order."""
    triage = build_triage(settings, load_models(settings))
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
    triage = build_triage(settings, load_models(settings))
    actions: list[str] = []
    language: str | None = None
    print("streife: schreib eine Nachricht (Strg+D beendet). / type a message (Ctrl+D to quit).", flush=True)
    while True:
        try:
            text = input("du> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        decision = await triage.decide(text, Context(tuple(actions[-3:]), not actions, language))
        actions.append(decision.action)
        language = decision.language
        print(f"\nbot [{decision.action} · {decision.intent or '-'} {decision.confidence:.2f}]>\n{decision.reply}", flush=True)
        if decision.buttons:
            print("  " + " | ".join(label for label, _ in decision.buttons), flush=True)
        print(flush=True)
