"""The officers' day on a year of traffic: how fast do the inbox pages answer on a big handover log?

Generates (once, cached in bench/out/ by size) a handover log with 100,000 conversations and
1,000,000 messages over the last year: six channels, the intents in realistic shares, bot answers,
handovers with officers' replies and notes, escalations, relabels and the audit events. Then starts
the real app on 127.0.0.1 with that log, logs in and times 100 requests each (p50/p95/p99) for
  queue:        GET /inbox (the whole page),
  conversation: GET /inbox/c/<id> (different conversations),
  stats:        GET /inbox/stats (the dashboard; skipped with a note while the route is missing),
  search:       GET /inbox/suche with varied words and filters, over chats and comments under posts
                (the log gets one comment for every ten messages, added once to the cached log).
Targets: queue, conversation, stats <= 200 ms, search <= 100 ms (p95).

    .venv/bin/python -m bench.officers_day [--smoke] [--requests 100] [--fresh]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.handover import HandoverLog
from bot.settings import ROOT, Settings
from bot.web.app import create_app
from bot.web.keys import OFFICERS

OUT = ROOT / "bench" / "out"
PASSWORD = "bench-passwort-123"
TARGETS_MS = {"queue": 200, "conversation": 200, "stats": 200, "search": 100}
CHANNELS = {"webchat": 35, "instagram": 25, "telegram": 18, "messenger": 9, "x": 7, "mastodon": 6}
INTENTS = {  # share, what the bot does
    "bike_theft": (12, "answer"), "lost_found": (11, "answer"), "report_crime": (10, "answer"), "fraud_scam": (9, "answer"),
    "station_contact": (9, "answer"), "noise_complaint": (7, "answer"), "traffic": (7, "answer"), "greet": (6, "answer"),
    "police_career": (5, "answer"), "cybercrime": (5, "answer"), "human_handoff": (5, "handover"), "out_of_scope": (4, "fallback"),
    "tip_off": (3, "handover"), "thanks": (3, "answer"), "insult": (1, "answer"), "emergency": (1.5, "escalate"),
    "domestic_violence": (1, "escalate"), "self_harm": (0.5, "escalate"),
}
THINGS = ["Fahrrad", "E-Roller", "Handy", "Geldbörse", "Rucksack", "Schlüsselbund", "Laptop", "Auto", "Moped", "Tablet",
          "Kinderwagen", "Ausweis", "Führerschein", "Kopfhörer", "Jacke", "Paket", "Hund", "Katze", "Bankkarte", "Brille"]
PLACES = ["am Bahnhof", "im Park", "vor der Schule", "in der Straßenbahn", "am Marktplatz", "im Supermarkt", "an der Uni",
          "beim Schwimmbad", "in der Fußgängerzone", "am Hafen", "vor dem Kino", "im Treppenhaus", "auf dem Parkplatz",
          "in der Tiefgarage", "am Spielplatz", "hinter der Kirche", "an der Tankstelle", "im Fitnessstudio"]
WHEN = ["gestern Abend", "heute Morgen", "letzte Nacht", "am Wochenende", "vorhin", "seit Montag", "vor einer Stunde", "letzten Freitag"]
COLOURS = ["schwarz", "rot", "blau", "grün", "silbern", "weiß", "gelb", "grau"]
TEXTS = {
    "bike_theft": ["Mein {t} wurde {w} {p} geklaut, was soll ich tun?", "{w} ist mein {c}es {t} {p} verschwunden",
                   "Hallo, jemand hat mein {t} {p} gestohlen. Schloss aufgebrochen."],
    "lost_found": ["Ich habe {w} meinen {t} {p} verloren", "Hat jemand einen {c}en {t} abgegeben? Verloren {p}",
                   "Ich habe {p} einen {t} gefunden, wo kann ich den abgeben?"],
    "report_crime": ["Ich möchte eine Anzeige erstatten, {w} wurde {p} eingebrochen", "Wie zeige ich an, dass mein {t} beschädigt wurde?",
                     "Jemand hat {w} {p} mein {t} zerkratzt. Anzeige möglich?"],
    "fraud_scam": ["Ich habe eine komische SMS bekommen wegen einem Paket, ist das Betrug?", "Ein falscher Polizist hat {w} bei Oma angerufen",
                   "Online einen {t} gekauft, bezahlt und nichts bekommen", "Mein Enkel schreibt per WhatsApp von einer neuen Nummer und will Geld"],
    "station_contact": ["Wann hat die Wache {p} geöffnet?", "Wie ist die Telefonnummer vom Revier?", "Wo ist die nächste Polizeiwache?"],
    "noise_complaint": ["Die Nachbarn feiern {w} schon wieder total laut", "Ruhestörung {p}, Musik seit Stunden", "Es ist so laut im Haus, wen rufe ich an?"],
    "traffic": ["Ein Auto parkt {w} {p} auf dem Radweg", "Unfall {p}, niemand verletzt, was muss ich machen?", "Blitzer {p}: darf der da stehen?"],
    "greet": ["Hallo", "Hi, ist da jemand?", "Guten Tag", "Moin"],
    "police_career": ["Wie werde ich Polizistin?", "Welche Voraussetzungen braucht man für die Ausbildung bei der Polizei?", "Gibt es ein Praktikum bei euch?"],
    "cybercrime": ["Mein Instagram Konto wurde gehackt", "Jemand erpresst mich mit Fotos im Internet", "Mein Passwort wurde geändert, nicht von mir"],
    "human_handoff": ["Kann ich bitte mit einem Menschen sprechen?", "Ich will mit einem echten Polizisten reden", "Bitte einen Beamten, kein Bot"],
    "out_of_scope": ["Wie wird das Wetter morgen?", "Was kostet ein Döner?", "Wer gewinnt die Bundesliga?"],
    "tip_off": ["Ich habe einen Hinweis zu dem {t} {p}", "Ich glaube ich weiß wer das {w} war", "Da dealt jemand {p}, jeden Abend"],
    "thanks": ["Danke!", "Vielen Dank für die Hilfe", "Super, danke euch"],
    "insult": ["Ihr seid doch alle nutzlos", "Bullen sind das Letzte"],
    "emergency": ["Hilfe, bei uns wird gerade eingebrochen!", "Da liegt jemand bewusstlos {p}", "Ein Mann bedroht Leute mit einem Messer {p}"],
    "domestic_violence": ["Mein Freund schlägt mich und ich habe Angst", "Nebenan schreit eine Frau, er schlägt sie wieder"],
    "self_harm": ["Ich will nicht mehr leben", "Ich weiß nicht mehr weiter und will mir was antun"],
}
FOLLOW_UPS = ["Und was brauche ich dafür?", "Ok, danke. Muss ich da persönlich hin?", "Das {t} ist {c}, falls das hilft",
              "Es war {p}, {w}", "Geht das auch online?", "Wie lange dauert das?", "Hab ich gemacht, und jetzt?", "Ich hab ein Foto davon"]
OFFICER = ["Hallo, hier ist {o} vom Social-Media-Team. Kannst du mir sagen, wo genau {p}?", "Danke für deine Nachricht. Bitte erstatte die Anzeige über die Onlinewache.",
           "Wir schicken eine Streife vorbei. Bleib bitte in Sicherheit.", "Hast du die 110 schon angerufen?", "Ich habe das an die Kollegen weitergegeben."]
BOT = "Danke für deine Nachricht. Für eine Anzeige nutze bitte die Onlinewache. In Notfällen ruf immer die 110 an."
SEARCHES = [  # (query string) varied words and filters
    "q=Fahrrad", "q=Roller+Bahnhof", "q=geklaut&kanal=instagram", "q=Anzeige&status=closed", "q=Geldbörse&thema=lost_found",
    "q=%22am+Bahnhof%22", "q=Passwort", "q=Nachbarn+laut", "q=Handy&von={m3}&bis={today}", "q=Betrug", "q=Schlüsselbund+verloren",
    "q=Enkel+WhatsApp", "q=Messer", "q=Tiefgarage&kanal=webchat", "q=Kinderwagen", "q=Schul", "q=Praktikum&thema=police_career",
    "kanal=telegram&status=queued", "thema=emergency&von={m1}", "q=Onlinewache&kanal=x", "q=Laptop&von={y1}&bis={m6}",
    "q=Hund+Park", "q=Fußgängerzone&status=bot", "person={citizen}", "q=gehackt", "q=Unfall+Radweg", "q=Brille&bis={m6}",
    "q=Fahrrad&in=kommentare", "q=geklaut&in=chats", "q=Anzeige&in=kommentare&von={m3}", "q=Bullen", "q=Wache&kanal=instagram",
]
COMMENT_INTENTS = ["bike_theft", "lost_found", "report_crime", "fraud_scam", "station_contact", "traffic", "police_career",
                   "thanks", "insult", "tip_off", "out_of_scope", "greet"]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def fill(template: str, rng: random.Random) -> str:
    return template.format(t=rng.choice(THINGS), p=rng.choice(PLACES), w=rng.choice(WHEN), c=rng.choice(COLOURS), o=rng.choice(["Anna", "Ben", "Can", "Dana"]))


def message_counts(conversations: int, messages: int, rng: random.Random) -> list[int]:
    """How many messages each conversation has (2 to 24, summing to `messages` exactly)."""
    mean = messages / conversations
    counts = [max(2, min(24, round(rng.expovariate(1 / (mean - 1.5)) + 1.5))) for _ in range(conversations)]
    while (diff := messages - sum(counts)) != 0:
        i = rng.randrange(conversations)
        step = 1 if diff > 0 else -1
        if 2 <= counts[i] + step <= 24:
            counts[i] += step
    return counts


def generate(path: Path, conversations: int, messages: int, seed: int = 15) -> None:
    """Write the handover log: executemany in one transaction (the search index fills through its triggers)."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    log = HandoverLog.open(path, busy_ms=10_000)
    db = log.db
    db.execute("PRAGMA synchronous = OFF")
    starts = sorted(now - timedelta(seconds=rng.uniform(3 * 3600, 365 * 86400)) for _ in range(conversations))
    counts = message_counts(conversations, messages, rng)
    channels, channel_weights = list(CHANNELS), list(CHANNELS.values())
    intents, intent_weights = list(INTENTS), [v[0] for v in INTENTS.values()]
    citizens = [f"{rng.choice(channels)[:2]}-{rng.getrandbits(40):010x}" for _ in range(int(conversations * 0.7))]
    open_from = conversations - 300  # the last ones are still with the team
    conv_rows, msg_rows, events, notes = [], [], [], []
    message_id = 0
    for n, (start, count) in enumerate(zip(starts, counts), 1):
        channel = rng.choices(channels, channel_weights)[0]
        intent = rng.choices(intents, intent_weights)[0]
        action = INTENTS[intent][1]
        if action == "answer" and rng.random() < 0.08:
            action = "handover"
        handed = action in ("handover", "escalate")
        state = "closed" if handed else "bot"
        if n > open_from:
            state = "queued" if n % 5 else "claimed"
            action = "escalate" if n % 7 == 0 else action if handed else "handover"
            handed = True
        at = start
        officer = rng.choice(["anna", "ben", "can", "dana"]) if handed else None
        times: list[datetime] = []
        for i in range(count):
            message_id += 1
            inbound = i % 2 == 0
            at += timedelta(seconds=rng.uniform(20, 600) if inbound else rng.uniform(1, 3) if not handed else rng.uniform(60, 1800))
            times.append(at)
            if inbound:
                text = fill(rng.choice(TEXTS[intent]) if i == 0 else rng.choice(FOLLOW_UPS), rng)
                meta = '{"relabel": "report_crime", "relabelled_by": "anna"}' if rng.random() < 0.02 else "{}"
                msg_rows.append((message_id, n, channel, "in", "citizen", text, f"p{message_id}", intent if i == 0 else rng.choice(intents),
                                 round(rng.uniform(0.3, 0.99), 2), action if i == 0 else "answer", "processed", None, None, iso(at), None, meta))
                if meta != "{}":
                    events.append((iso(at + timedelta(hours=2)), "anna", "relabel", n, f'{{"message_id": {message_id}, "intent": "report_crime"}}'))
            elif handed and i > 1:
                msg_rows.append((message_id, n, channel, "out", "officer", fill(rng.choice(OFFICER), rng), f"o{message_id}", None, None, None,
                                 "sent", officer, message_id - 1, iso(at), iso(at), "{}"))
            else:
                msg_rows.append((message_id, n, channel, "out", "bot", BOT, f"b{message_id}", None, None, None, "sent", None, message_id - 1,
                                 iso(at), iso(at), "{}"))
        queued_at = iso(times[0]) if handed else None
        claimed = iso(times[1] + timedelta(minutes=1)) if handed and state != "queued" else None
        closed = iso(at + timedelta(minutes=5)) if state == "closed" else None
        priority = 2 if action == "escalate" else 1 if handed else 0
        conv_rows.append((n, channel, f"chat-{n}", rng.choice(citizens), "de", state, priority if state in ("queued", "claimed") else 0,
                          {"escalate": "Notfall", "handover": "möchte einen Menschen"}.get(action), officer if state != "queued" else None,
                          iso(start), closed or iso(at), queued_at, claimed, closed, iso(times[-2] if count > 1 else times[-1]), "{}"))
        if handed:
            events.append((queued_at, "bot", "queue", n, f'{{"action": "{action}"}}'))
            if claimed:
                events.append((claimed, officer, "claim", n, "{}"))
            if closed:
                events.append((closed, officer, "close", n, "{}"))
            if rng.random() < 0.3:
                notes.append((n, officer, fill("Ruft wegen {t} nochmal an", rng), iso(times[0] + timedelta(minutes=3))))
    with log.transaction():
        db.conn.executemany(
            "INSERT INTO conversations (id, channel, chat_id, citizen, language, state, priority, reason, officer, created_at, "
            "updated_at, queued_at, claimed_at, closed_at, last_inbound_at, meta) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", conv_rows)
        # events before messages: an officer's reply finds its handover's `queue` event (the dashboard's first replies)
        db.conn.executemany("INSERT INTO events (at, actor, action, conversation_id, detail) VALUES (?,?,?,?,?)", events)
        db.conn.executemany(
            "INSERT INTO messages (id, conversation_id, channel, direction, author, text, platform_id, intent, confidence, action, "
            "status, officer, reply_to, created_at, sent_at, meta) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", msg_rows)
        db.conn.executemany("INSERT INTO notes (conversation_id, officer, text, created_at) VALUES (?,?,?,?)", notes)
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log.close()


def add_comments(path: Path, count: int, seed: int = 14) -> None:
    """Comments under posts (Instagram and Facebook) over the same year, once per cached log (the search's comments index)."""
    log = HandoverLog.open(path, busy_ms=10_000)  # (migrates the cached log to the current schema)
    if log.db.execute("SELECT COUNT(*) FROM comments").fetchone()[0]:
        log.close()
        return
    started, rng, now = time.perf_counter(), random.Random(seed), datetime.now(timezone.utc)
    posts = max(1, count // 50)
    post_rows = [(n, rng.choice(["instagram", "messenger"]), f"post{n}", f"https://www.instagram.com/p/bench{n}/",
                  fill("Vorsicht vor Diebstahl {p}: Schließt euer {t} immer ab!", rng), iso(now - timedelta(days=365 * (1 - n / posts))))
                 for n in range(1, posts + 1)]
    comment_rows = []
    for n in range(1, count + 1):
        post = post_rows[min(posts - 1, (n - 1) * posts // count)]
        intent = rng.choice(COMMENT_INTENTS)
        at = iso(datetime.fromisoformat(post[5]) + timedelta(minutes=rng.uniform(1, 3000)))
        comment_rows.append((n, post[1], f"k{n}", post[0], f"{post[1][:2]}-{rng.getrandbits(40):010x}", fill(rng.choice(TEXTS[intent]), rng),
                             at, at, "decided", intent, 2 if intent == "insult" else 3, 1 if intent == "insult" else 0))
    with log.transaction():
        log.db.conn.executemany("INSERT INTO posts (id, channel, platform_id, permalink, caption, created_at) VALUES (?,?,?,?,?,?)", post_rows)
        log.db.conn.executemany("INSERT INTO comments (id, channel, platform_id, post_id, author, text, created_at, received_at, status, "
                                "intent, need, hidden) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", comment_rows)
    log.db.execute("ANALYZE")
    log.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log.close()
    print(f"added {count:,} comments under {posts:,} posts in {time.perf_counter() - started:.0f} s")


def database(conversations: int, messages: int, fresh: bool = False) -> Path:
    """The cached log of this size (generated when missing)."""
    path = OUT / f"officers_day-{conversations}-{messages}.sqlite3"
    if fresh or not path.is_file():
        for old in path.parent.glob(path.name + "*"):
            old.unlink()
        partial = path.with_suffix(".partial")
        for old in path.parent.glob(partial.name + "*"):
            old.unlink()
        started = time.perf_counter()
        generate(partial, conversations, messages)
        partial.rename(path)
        print(f"generated {conversations:,} conversations, {messages:,} messages in {time.perf_counter() - started:.0f} s "
              f"({path.stat().st_size / 1e6:.0f} MB): {path}")
    return path


def percentiles(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {p: ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))] for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}


def search_queries(citizen: str) -> list[str]:
    today = datetime.now(timezone.utc).date()
    days = {"today": 0, "m1": 30, "m3": 91, "m6": 182, "y1": 364}
    values = {k: (today - timedelta(days=d)).isoformat() for k, d in days.items()}
    return [q.format(citizen=citizen, **values) for q in SEARCHES]


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.get(url, allow_redirects=False) as response:
        await response.read()
        return time.perf_counter() - started, response.status


async def measure(path: Path, requests: int) -> dict[str, Any]:
    """Start the app on the log, log in, time each page; the figures per page (or a note why not)."""
    tmp = Path(tempfile.mkdtemp(prefix="streife-officers-day-"))
    env = {"DATABASE_PATH": str(path), "MODEL_PATH": str(tmp / "no-model.tar.gz"), "LOG_LEVEL": "WARNING", "RETENTION_DAYS": "400"}
    app = create_app(Settings.from_env(env, dotenv=tmp / "none.env"), load_model=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    app[OFFICERS].add("bench", PASSWORD)
    results: dict[str, Any] = {}
    rng = random.Random(8)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            page = await (await session.get(f"{base}/inbox/login")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
            async with session.post(f"{base}/inbox/login", data={"name": "bench", "password": PASSWORD, "csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 303, r.status
            conv_ids = [r[0] for r in app_db(app).execute("SELECT id FROM conversations ORDER BY random() LIMIT ?", [requests])]
            citizen = app_db(app).execute("SELECT citizen FROM conversations ORDER BY id DESC LIMIT 1").fetchone()[0]
            queries = search_queries(citizen)
            plan = {
                "queue": [f"{base}/inbox"] * requests,
                "conversation": [f"{base}/inbox/c/{conv_ids[i % len(conv_ids)]}" for i in range(requests)],
                "stats": [f"{base}/inbox/stats"] * requests,
                "search": [f"{base}/inbox/suche?{queries[i % len(queries)]}" for i in range(requests)],
            }
            for name, urls in plan.items():
                _, status = await timed(session, urls[0])  # warm-up (and: does the route exist?)
                if status == 404:
                    results[name] = "skipped: the route answers 404 (not built yet)"
                    continue
                times, statuses = [], set()
                for url in rng.sample(urls, len(urls)):
                    seconds, status = await timed(session, url)
                    times.append(seconds)
                    statuses.add(status)
                results[name] = {**percentiles(times), "n": len(times), "statuses": sorted(statuses)}
    finally:
        await runner.cleanup()
    return results


def app_db(app: web.Application) -> Any:
    from bot.web.keys import SERVICES
    return app[SERVICES].handover.db


def report(results: dict[str, Any], conversations: int, messages: int) -> str:
    lines = [f"officers' day on {conversations:,} conversations / {messages:,} messages, app on 127.0.0.1, one officer, sequential requests"]
    for name, figures in results.items():
        if isinstance(figures, str):
            lines.append(f"{name:<13} {figures}")
            continue
        ok = "ok" if figures["p95"] <= TARGETS_MS[name] else "OVER TARGET"
        lines.append(f"{name:<13} n={figures['n']:3d}  p50 {figures['p50']:7.1f} ms  p95 {figures['p95']:7.1f} ms  "
                     f"p99 {figures['p99']:7.1f} ms  (target p95 <= {TARGETS_MS[name]} ms: {ok}; HTTP {figures['statuses']})")
    return "\n".join(lines)


async def main(smoke: bool = False, requests: int = 100, fresh: bool = False) -> dict[str, Any]:
    conversations, messages = (1_000, 10_000) if smoke else (100_000, 1_000_000)
    path = database(conversations, messages, fresh)
    add_comments(path, messages // 10)  # a comment for every ten messages (issue 14's teams get more; cheap to add)
    results = await measure(path, min(requests, 20) if smoke else requests)
    print(report(results, conversations, messages))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1,000 conversations and 20 requests per page (seconds)")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="generate the log again")
    args = parser.parse_args()
    asyncio.run(main(args.smoke, args.requests, args.fresh))
