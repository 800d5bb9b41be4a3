"""The admin commands: `officers add|list|deactivate|reactivate|role`, `privacy export|delete`, `handover list|show|close`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TextIO

from bot.handover import HandoverError, HandoverLog
from bot.handover.accounts import ROLES, AccountError, Accounts
from bot.handover.officers import OfficerError, Officers
from bot.handover.privacy import delete_citizen, export_citizen
from bot.handover.queue_view import PAGE_SIZE, queue_view
from bot.handover.records import CLI_BUSY_MS
from bot.handover.states import HandoverStates
from bot.settings import Settings


def add_admin_commands(commands: argparse._SubParsersAction) -> None:
    """Register the admin commands on the main parser."""
    officers = commands.add_parser("officers", help="inbox accounts").add_subparsers(dest="action", required=True)
    add = officers.add_parser("add", help="create an account or set a new password (password from stdin)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="the account may manage accounts (role admin)")
    officers.add_parser("list", help="every account: name, role, active or not")
    for action, text in (("deactivate", "lock an account out; its sessions end at once"),
                         ("reactivate", "let a deactivated account log in again")):
        officers.add_parser(action, help=text).add_argument("name")
    role = officers.add_parser("role", help="make an account an admin or an officer")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    privacy = commands.add_parser("privacy", help="a citizen's data on request").add_subparsers(dest="action", required=True)
    for action, text in (("export", "print everything stored about a citizen as JSON"),
                         ("delete", "erase a citizen's conversations (the audit trail keeps that it happened)")):
        privacy.add_parser(action, help=text).add_argument("citizen", help="the pseudonym, e.g. we-1a2b3c4d5e")
    handover = commands.add_parser("handover", help="conversations with the team").add_subparsers(dest="action", required=True)
    listing = handover.add_parser("list", help="chats waiting for or with the team: every open emergency, then the rest in pages")
    listing.add_argument("--page", type=int, default=1, help="page of the other chats (default 1)")
    listing.add_argument("--per-page", type=int, default=PAGE_SIZE, help=f"chats per page (default {PAGE_SIZE})")
    handover.add_parser("show", help="one conversation with its transcript").add_argument("id", type=int)
    handover.add_parser("close", help="hand a chat back to the bot (the citizen is told)").add_argument("id", type=int)


def actor() -> str:
    """Who runs the command, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def read_password(stdin: TextIO) -> str:
    """The password: prompted on a terminal, else the first line of stdin."""
    if stdin.isatty():
        return getpass.getpass("Passwort: ")
    return stdin.readline().rstrip("\r\n")


async def run_admin(args: argparse.Namespace, settings: Settings, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Run one admin command against the handover log; errors go to stderr with exit code 1."""
    log = HandoverLog.open(settings.database, settings.pseudonym_key, busy_ms=CLI_BUSY_MS)
    try:
        if args.command == "officers":
            _officers(log, args, stdin, stdout)
        elif args.command == "privacy" and args.action == "export":
            json.dump(export_citizen(log, args.citizen), stdout, ensure_ascii=False, indent=2)
            stdout.write("\n")
        elif args.command == "privacy":
            counts = delete_citizen(log, args.citizen, actor())
            print(f"deleted for {args.citizen}: {json.dumps(counts)}", file=stdout)
        elif args.action == "list":
            _list(log, args.page, args.per_page, stdout)
        elif args.action == "show":
            conv = log.conversation(args.id)
            print(json.dumps({k: v for k, v in conv.__dict__.items()}, ensure_ascii=False), file=stdout)
            for m in log.transcript(conv.id):
                reading = f" [{m.intent} {m.confidence:.2f} {m.action}]" if m.intent and m.confidence is not None else ""
                print(f"{m.created_at} {m.author}{reading} ({m.status}): {m.text}", file=stdout)
        else:
            await _close(log, settings, args.id, stdout)
        return 0
    except (HandoverError, OfficerError, AccountError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        log.close()


def _officers(log: HandoverLog, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> None:
    """Accounts: add (or new password), list, deactivate, reactivate, role; every change audited."""
    officers, who = Officers(log), actor()
    accounts = Accounts(officers)
    if args.action == "add":
        officers.add(args.name, read_password(stdin), actor=who)
        if args.admin:
            accounts.set_role(args.name.strip(), "admin", who)
        note = "" if accounts.get(args.name.strip()).active else f" (still deactivated: 'officers reactivate {args.name}' lets it log in)"
        print(f"account {args.name} saved{note}", file=stdout)
    elif args.action == "list":
        for a in accounts.roster():
            print(f"{a.name}\t{a.role}\t{'active' if a.active else 'deactivated'}\t{a.created_at}", file=stdout)
    elif args.action == "deactivate":
        ended = accounts.deactivate(args.name, who)
        print(f"account {args.name} deactivated; {ended} session(s) ended "
              "(a running service closes its open live pages within 15 s)", file=stdout)
    elif args.action == "reactivate":
        accounts.reactivate(args.name, who)
        print(f"account {args.name} active again", file=stdout)
    else:
        accounts.set_role(args.name, args.role, who)
        print(f"account {args.name} is now {args.role}", file=stdout)


def _list(log: HandoverLog, page: int, per_page: int, stdout: TextIO) -> None:
    """Every waiting emergency (a client's many grouped, after the single ones), then a page of the rest.

    One line per chat on stdout (tab-separated: id, state, EMERGENCY|handover, channel, citizen, reason,
    officer, queued at, group); the counts on stderr.
    """
    view = queue_view(log, page, max(1, per_page))
    print(f"{view.emergency_count} open emergencies ({view.grouped_count} of them in {len(view.groups)} groups of one client); "
          f"{view.waiting_count} other chats waiting, {view.claimed_count} in progress: page {view.page} of {view.pages}",
          file=sys.stderr)
    rows = [(c, "-") for c in view.emergencies]
    rows += [(c, f"{g.label_en} ({g.client})") for g in view.groups for c in g.conversations]
    rows += [(c, "-") for c in view.waiting + view.claimed]
    for conv, group in rows:
        flag = "EMERGENCY" if conv.priority >= 2 else "handover"
        print(f"{conv.id}\t{conv.state}\t{flag}\t{conv.channel}\t{conv.citizen}\t{conv.reason or '-'}\t"
              f"{conv.officer or '-'}\t{conv.queued_at or '-'}\t{group}", file=stdout)


async def _close(log: HandoverLog, settings: Settings, conversation_id: int, stdout: TextIO) -> None:
    """Close a conversation and send the citizen the hand-back text (a running service resends what stays pending)."""
    from bot.services import build_triage
    from bot.dispatcher import Dispatcher
    from bot.channels.base import LogOnlySender

    triage = build_triage(settings)
    message_id = HandoverStates(log, triage.responses).close(conversation_id, actor())
    sent = await Dispatcher(log, triage, {"webchat": LogOnlySender()}).deliver([message_id])
    note = "sent" if sent else "stored; the running service sends it on its next start or retry"
    print(f"conversation {conversation_id} closed; hand-back message {note}", file=stdout)
