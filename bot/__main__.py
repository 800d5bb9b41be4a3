"""Command line: `python -m bot triage|chat|serve`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.settings import Settings, SettingsError


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr (stdout is for results)."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command."""
    parser = argparse.ArgumentParser(prog="python -m bot", description="streife: first response for police DMs")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("triage", help="one message per line on stdin, one JSON decision per line on stdout")
    commands.add_parser("chat", help="talk to the bot in the console")
    commands.add_parser("serve", help="run the bot: web chat, officer inbox, channels with a token")
    from bot.admin_cli import add_admin_commands

    add_admin_commands(commands)  # officers, privacy, handover
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except (SettingsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    if args.command == "triage":
        from bot.cli import triage_lines

        return asyncio.run(triage_lines(settings, sys.stdin.buffer, sys.stdout))
    if args.command == "chat":
        from bot.cli import chat

        return asyncio.run(chat(settings))
    if args.command in ("officers", "privacy", "handover"):
        from bot.admin_cli import run_admin

        return asyncio.run(run_admin(args, settings))
    from bot.serve import serve

    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
