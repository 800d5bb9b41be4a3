"""What officers see first: every open emergency, floods from one client grouped, then the rest in pages.

One person can open hundreds of web chats and write an emergency into each. The queue must
not let that hide a real emergency from someone else: every open escalation is listed, with
true counts, and when one client (the same citizen, or for the web chat the same network,
kept only as a pseudonym) has GROUP_MIN or more of them, they are shown together as one marked
group after the single ones. Everything else (handovers, chats in progress) is paged.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from bot.handover.records import Conversation
from bot.handover.store import HandoverLog

GROUP_MIN = 3  # this many open emergencies from one client form a group
PAGE_SIZE = 50
ESCALATED = (2, 99)  # priority range of escalations
OTHERS = (0, 1)


def client_of(conv: Conversation) -> tuple[str, str]:
    """Who a conversation comes from: ("network", pseudonym) for a web chat client's address, else ("person", citizen)."""
    source = conv.meta.get("source")
    return ("network", str(source)) if source else ("person", conv.citizen)


@dataclass(frozen=True)
class Group:
    """Open emergencies from one client: probably one person, maybe a flood; each still needs a look."""

    kind: str  # person | network
    client: str  # the pseudonym
    conversations: list[Conversation]

    @property
    def label(self) -> str:
        """What the inbox says about the group."""
        count = len(self.conversations)
        where = " (Web-Chat, derselbe Anschluss)" if self.kind == "network" else ""
        return f"{count} Notfälle von derselben Person{where}"

    @property
    def label_en(self) -> str:
        """The same for the command line."""
        return f"{len(self.conversations)} emergencies from the same {'network' if self.kind == 'network' else 'person'}"


@dataclass(frozen=True)
class QueueView:
    """The queue of one page: all open emergencies (singles, then groups), and a page of everything else."""

    emergencies: list[Conversation]  # waiting escalations not in a group, longest waiting first
    groups: list[Group]  # waiting escalations from clients with many, biggest last
    emergency_count: int  # every waiting escalation, grouped or not
    waiting: list[Conversation]  # this page of the other waiting chats (handovers)
    waiting_count: int
    claimed: list[Conversation]  # this page of the chats in progress (escalations first)
    claimed_count: int
    page: int
    pages: int
    page_size: int

    @property
    def grouped_count(self) -> int:
        """Waiting escalations shown inside groups."""
        return sum(len(g.conversations) for g in self.groups)


def queue_view(log: HandoverLog, page: int = 1, page_size: int = PAGE_SIZE, group_min: int = GROUP_MIN) -> QueueView:
    """Build the queue: every waiting escalation (grouped by client), then page `page` of the rest."""
    escalations = log.conversations(("queued",), limit=None, priority=ESCALATED)
    by_client: defaultdict[tuple[str, str], list[Conversation]] = defaultdict(list)
    for conv in escalations:
        by_client[client_of(conv)].append(conv)
    grouped = {key for key, convs in by_client.items() if len(convs) >= group_min}
    singles = [c for c in escalations if client_of(c) not in grouped]
    groups = sorted((Group(kind, client, by_client[(kind, client)]) for kind, client in grouped),
                    key=lambda g: (len(g.conversations), g.conversations[0].queued_at or ""))
    waiting_count = log.count_conversations(("queued",), OTHERS)
    claimed_count = log.count_conversations(("claimed",))
    pages = max(1, math.ceil(max(waiting_count, claimed_count) / page_size))
    page = min(max(1, page), pages)
    offset = (page - 1) * page_size
    return QueueView(
        emergencies=singles,
        groups=groups,
        emergency_count=len(escalations),
        waiting=log.conversations(("queued",), limit=page_size, offset=offset, priority=OTHERS),
        waiting_count=waiting_count,
        claimed=log.conversations(("claimed",), limit=page_size, offset=offset),
        claimed_count=claimed_count,
        page=page,
        pages=pages,
        page_size=page_size,
    )
