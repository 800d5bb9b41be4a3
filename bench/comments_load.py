"""Comments under posts under load: a burst of signed comment webhooks, from Meta's 200 to the action done.

    .venv/bin/python -m bench.comments_load [--comments 1000] [--seconds 60] [--no-model] [--smoke]

The whole app on 127.0.0.1 (with the NLU model unless --no-model: without it only the safety net reads, so
questions and insults are merely listed) and the fake Graph API (tests/fake_graph_api.py) on 127.0.0.1.
Comments are mixed (about 3 % emergencies, questions, insults, thanks and emoji), 70 % Instagram `comments`,
30 % Facebook Page `feed`, each from its own author, signed like Meta signs them, offered evenly over `--seconds`.
Measured: webhook -> last action of the comment accepted by the fake Graph API (p50/p99, emergencies apart), the
share the bot handled without an officer (FAQ answered privately, or nothing to do), lost comments or actions
(stored, planned, settled), doubled calls (the same action on the same comment twice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.meta_webhook import sign
from bot.web.app import create_app
from bot.web.keys import SERVICES
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import ACCOUNT, PAGE, PAGE_TOKEN, SECRET, TOKEN, meta_settings

EMERGENCY = ["Hilfe, bei uns wird gerade eingebrochen, die sind noch im Haus!", "Jemand bedroht mich gerade mit einem Messer",
             "Da liegt ein Mann bewusstlos auf der Straße und atmet kaum", "Mein Nachbar schlägt gerade seine Frau, ich höre Schreie"]
QUESTION = ["Wie zeige ich einen Fahrraddiebstahl an?", "Wo kann ich eine gefundene Geldbörse abgeben?",
            "Wie kann man sich bei euch für die Ausbildung bewerben?", "Ich hab eine SMS mit einem Link bekommen, ist das Betrug?",
            "Wann hat die Wache in der Innenstadt offen?", "Mein Auto wurde aufgebrochen, was muss ich jetzt machen?",
            "Darf ich nachts im Park laut Musik hören?", "Jemand hat mein Insta-Konto gehackt, was kann ich tun?"]
ABUSE = ["Ihr seid doch alle Idioten", "Scheiß Bullen, verpisst euch", "Ihr Versager kriegt doch eh nix hin",
         "Halt die Fresse, Polizei"]
THANKS = ["Danke für eure Arbeit!", "Tolles Foto 👍", "Super, weiter so", "👏👏👏", "Schöner Beitrag, danke euch",
          "@freundin schau mal"]
MIX = [("emergency", EMERGENCY, 0.03), ("question", QUESTION, 0.40), ("abuse", ABUSE, 0.15), ("thanks", THANKS, 0.42)]
MEDIA = [f"179000000000{n:05d}" for n in range(20)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def payload(n: int, text: str, rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """(channel, comment id, webhook body) for comment number n."""
    now = int(time.time())
    if rng.random() < 0.7:
        comment_id = f"1780{n:013d}"
        value = {"id": comment_id, "from": {"id": f"6{n:09d}", "username": f"nutzer{n}"},
                 "media": {"id": rng.choice(MEDIA), "media_product_type": "FEED"}, "text": text}
        return "instagram", comment_id, {"object": "instagram", "entry": [
            {"id": ACCOUNT, "time": now, "changes": [{"field": "comments", "value": value}]}]}
    post = f"{PAGE}_{2000 + n % 20}"
    comment_id = f"{2000 + n % 20}_{900000 + n}"
    value = {"item": "comment", "verb": "add", "comment_id": comment_id, "post_id": post, "parent_id": post,
             "from": {"id": f"7{n:09d}", "name": f"Person {n}"}, "message": text, "created_time": now}
    return "messenger", comment_id, {"object": "page", "entry": [{"id": PAGE, "time": now, "changes": [{"field": "feed", "value": value}]}]}


async def settle(log: Any, expected: int, timeout: float) -> None:
    """Wait until every comment is stored and decided and no action is pending or sending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored, undecided = log.db.execute("SELECT COUNT(*), SUM(status = 'new') FROM comments WHERE own = 0").fetchone()
        busy = log.db.execute("SELECT COUNT(*) FROM comment_actions WHERE status IN ('pending', 'sending')").fetchone()[0]
        if stored >= expected and not undecided and not busy:
            return
        await asyncio.sleep(0.1)


async def run(comments: int = 1000, seconds: float = 60.0, use_model: bool = True, seed: int = 14) -> dict[str, Any]:
    rng = random.Random(seed)
    graph = await FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN}).start()
    with tempfile.TemporaryDirectory() as folder:
        env = {"LOG_LEVEL": "WARNING", "MESSENGER_PAGE_ID": PAGE}
        if not use_model:
            env["MODEL_PATH"] = f"{folder}/no-model.tar.gz"
        app = create_app(meta_settings(Path(folder), graph, **env), load_model=use_model)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/instagram/webhook"
        if use_model:
            await app[SERVICES].triage.parser.wait_ready(300)
        kinds: dict[tuple[str, str], str] = {}
        posted: dict[str, float] = {}
        acks: list[float] = []
        async with aiohttp.ClientSession() as session:

            async def one(n: int) -> None:
                kind, texts, _ = rng.choices(MIX, weights=[w for *_, w in MIX])[0]
                channel, comment_id, body_json = payload(n, rng.choice(texts), rng)
                kinds[(channel, comment_id)] = kind
                graph.add_comment(comment_id, author_id=f"{6 if channel == 'instagram' else 7}{n:09d}")  # Meta knows the author
                body = json.dumps(body_json).encode()
                posted[comment_id] = time.monotonic()
                async with session.post(url, data=body, headers={"X-Hub-Signature-256": sign(SECRET, body),
                                                                 "Content-Type": "application/json"}) as r:
                    assert r.status == 200, r.status
                acks.append(time.monotonic() - posted[comment_id])

            started = time.monotonic()
            tasks = []
            for n in range(comments):
                tasks.append(asyncio.ensure_future(one(n)))
                await asyncio.sleep(max(0.0, started + (n + 1) * seconds / comments - time.monotonic()))
            await asyncio.gather(*tasks)
            log = app[SERVICES].handover
            await settle(log, comments, timeout=120 + seconds)
        rows = log._select("SELECT c.id, c.channel, c.platform_id, c.policy, c.conversation_id, a.kind, a.status FROM comments c "
                           "LEFT JOIN comment_actions a ON a.comment_id = c.id WHERE c.own = 0")
        await runner.cleanup()
    await graph.stop()
    return summarize(comments, kinds, posted, acks, rows, graph)


def summarize(comments: int, kinds: dict[tuple[str, str], str], posted: dict[str, float], acks: list[float],
              rows: list[dict[str, Any]], graph: FakeGraphApi) -> dict[str, Any]:
    """The figures: latency to the last action per comment, shares, lost and doubled."""
    done_at: dict[str, float] = {}
    calls = Counter()
    for call in graph.done():
        done_at[call.target] = max(done_at.get(call.target, 0.0), call.at)
        calls[(call.target, call.kind)] += 1
    by_comment: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = by_comment.setdefault(r["platform_id"], {"channel": r["channel"], "policy": r["policy"], "actions": [],
                                                         "dm": r["conversation_id"]})
        if r["kind"]:
            entry["actions"].append((r["kind"], r["status"]))
    settled = [c for c in by_comment.values() if c["actions"]]
    latency = {pid: done_at[pid] - posted[pid] for pid, c in by_comment.items() if c["actions"] and pid in done_at}
    urgent = [v for pid, v in latency.items() if by_comment[pid]["policy"] == "escalate"]
    statuses = Counter(s for c in settled for _, s in c["actions"])
    policies = Counter(c["policy"] for c in by_comment.values())
    faq_done = sum(1 for c in by_comment.values() if c["policy"] == "faq" and all(s == "sent" for _, s in c["actions"]))
    without_officer = faq_done + policies.get("none", 0)
    sent_mix = Counter(kinds.values())
    return {
        "comments": comments, "stored": len(by_comment), "mix": dict(sent_mix), "policies": dict(policies),
        "actions": sum(statuses.values()), "action_status": dict(statuses),
        "lost": comments - len(by_comment) + statuses.get("pending", 0) + statuses.get("sending", 0),
        "doubled": sum(n - 1 for n in calls.values() if n > 1),
        "private_without_dm": sum(1 for c in settled if ("private_reply", "sent") in c["actions"] and c["dm"] is None),
        "ack_p50_ms": 1000 * statistics.median(acks), "ack_p99_ms": 1000 * percentile(acks, 0.99),
        "action_p50_ms": 1000 * statistics.median(latency.values() or [float("nan")]), "action_p99_ms": 1000 * percentile(list(latency.values()), 0.99),
        "emergency_n": len(urgent), "emergency_p50_ms": 1000 * statistics.median(urgent or [float("nan")]), "emergency_max_ms": 1000 * max(urgent, default=float("nan")),
        "handled_without_officer": without_officer / max(1, comments), "answered_by_bot": faq_done / max(1, comments),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-model", action="store_true", help="safety net only (no NLU workers)")
    parser.add_argument("--smoke", action="store_true", help="30 comments in 3 s without the model")
    args = parser.parse_args(argv)
    if args.smoke:
        args.comments, args.seconds, args.no_model = 30, 3.0, True
    result = asyncio.run(run(args.comments, args.seconds, use_model=not args.no_model))
    for key, value in result.items():
        print(f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}")
    return 0 if result["lost"] == 0 and result["doubled"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
