"""The attacker's side of bench/attack.py, run in its own process so its load does not slow the measuring.

Every attack targets 127.0.0.1 only, is bounded in count and time, and returns what the service
answered: HTTP status -> count, and client-side errors (timeouts, resets) by kind. The attacker is
one client: one address (sent as X-Forwarded-For through the trusted local proxy), as many chat
cookies as it likes (a cookie costs nothing to make up).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
import uuid
import zlib
from collections import Counter
from typing import Any, Awaitable, Callable
from urllib.parse import urlparse

import aiohttp

from bench.load import local_only
from bot.channels.meta_webhook import sign
from tests.instagram_helpers import message, notification

# Questions the bot answers itself (no safety-net word in them): the model must parse every one.
BENIGN = ("Wie erstatte ich eine Anzeige?", "Mein Fahrrad wurde geklaut, was nun?", "Wo ist die nächste Polizeiwache?",
          "Ich habe meinen Geldbeutel verloren", "Wie werde ich Polizist?", "Danke für eure Arbeit!",
          "Kann ich eine Anzeige auch online machen?", "Wann habt ihr geöffnet?", "Wie melde ich einen Fundgegenstand?",
          "Jemand hat mein Auto zerkratzt, was soll ich tun?")
FAKE_EMERGENCIES = ("Hilfe, bei uns ist gerade ein Einbrecher im Haus!", "Es brennt im Treppenhaus, bitte kommt schnell",
                    "Mein Nachbar bedroht mich mit einem Messer", "Ein Mann schlägt gerade eine Frau vor unserem Haus")
TIMEOUT = aiohttp.ClientTimeout(total=20)


class Tally:
    """What the service answered: statuses and client-side errors."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.started = time.monotonic()

    async def post(self, session: aiohttp.ClientSession, url: str, **kw: Any) -> int:
        """POST and count the answer; 0 when none came."""
        try:
            async with session.post(url, **kw) as response:
                await response.read()
                self.statuses[response.status] += 1
                return response.status
        except asyncio.TimeoutError:
            self.errors["timeout"] += 1
        except aiohttp.ClientError as err:
            self.errors[type(err).__name__] += 1
        return 0

    def result(self, **extra: Any) -> dict[str, Any]:
        return {"statuses": dict(self.statuses), "errors": dict(self.errors),
                "seconds": round(time.monotonic() - self.started, 2), **extra}


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=TIMEOUT)


def _headers(cookie: str, address: str) -> dict[str, str]:
    return {"Cookie": f"streife_chat={cookie}", "X-Forwarded-For": address}


async def h1_fake_emergencies(base: str, fakes: int, address: str, prefix: str, concurrency: int = 10) -> dict[str, Any]:
    """H1: `fakes` fake emergencies, each from a new cookie, all from one address."""
    url, tally, gate = local_only(base) + "/chat/messages", Tally(), asyncio.Semaphore(concurrency)
    async with _session(concurrency) as session:

        async def one(n: int) -> None:
            async with gate:
                body = {"text": FAKE_EMERGENCIES[n % len(FAKE_EMERGENCIES)], "id": uuid.uuid4().hex}
                await tally.post(session, url, json=body, headers=_headers(f"{prefix}{n:05d}", address))

        await asyncio.gather(*(one(n) for n in range(fakes)))
    return tally.result(sent=fakes)


def long_text(rng: random.Random, size: int) -> str:
    """About `size` characters of ordinary questions, different every time."""
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(rng.choice(BENIGN))
    return " ".join(parts)[:size]


async def h2_long_messages(base: str, workers: int, seconds: float, address: str, prefix: str,
                           size: int = 4000) -> dict[str, Any]:
    """H2: `workers` concurrent senders of `size`-character messages for `seconds`; a refused chat takes a new cookie."""
    url, tally, rng = local_only(base) + "/chat/messages", Tally(), random.Random(12)
    end = time.monotonic() + seconds
    cookies = 0
    async with _session(workers) as session:

        async def worker(w: int) -> None:
            nonlocal cookies
            cookie = f"{prefix}{w:04d}-0"
            while time.monotonic() < end:
                status = await tally.post(session, url, json={"text": long_text(rng, size), "id": uuid.uuid4().hex},
                                          headers=_headers(cookie, address))
                if status == 429:  # over this chat's limit: a new cookie (the new-chats limit per address remains)
                    cookies += 1
                    cookie = f"{prefix}{w:04d}-{cookies}"
                elif status == 0:
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(worker(w) for w in range(workers)))
    return tally.result(sent=sum(tally.statuses.values()) + sum(tally.errors.values()), cookies=cookies + workers)


def gzip_bomb(compressed_bytes: int, prefix: bytes = b'{"id":"gzip-bomb-000001","text":"') -> tuple[bytes, int]:
    """A gzip body of about `compressed_bytes` that decompresses to a JSON object about 1,000 times larger."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    out, size = [packer.compress(prefix)], len(prefix)
    chunk = b"A" * (1 << 20)
    while sum(map(len, out)) < compressed_bytes:
        out.append(packer.compress(chunk))
        size += len(chunk)
    out += [packer.compress(b'"}'), packer.flush()]
    return b"".join(out), size + 2


async def h3_gzip(base: str, bodies: int, compressed_kb: int, address: str, prefix: str, secret: str) -> dict[str, Any]:
    """H3: `bodies` gzip bodies at once (Content-Encoding: gzip), alternately to the web chat and the Instagram webhook."""
    base, tally = local_only(base), Tally()
    body, inflated = gzip_bomb(compressed_kb * 1024)
    async with _session(bodies) as session:

        async def one(n: int) -> None:
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            if n % 2 == 0:
                await tally.post(session, base + "/chat/messages", data=body,
                                 headers={**headers, **_headers(f"{prefix}{n:04d}", address)})
            else:  # signed over the compressed bytes: the service checks the inflated body, so only after reading it all
                await tally.post(session, base + "/instagram/webhook", data=body,
                                 headers={**headers, "X-Hub-Signature-256": sign(secret, body)})

        await asyncio.gather(*(one(n) for n in range(bodies)))
    return tally.result(sent=bodies, compressed_kb=round(len(body) / 1024), inflated_mb=round(inflated / 1e6))


def _slow_send(port: int, path: str, head: dict[str, str], body: bytes, max_seconds: float) -> dict[str, Any]:
    """One connection: the headers, then the body one byte per send(); the answer's status (0: none)."""
    started, sent, status, error = time.monotonic(), 0, 0, ""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}",
                     "Content-Type: application/json", "Connection: close", *(f"{k}: {v}" for k, v in head.items())]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            end = started + max_seconds
            for i in range(len(body)):
                sock.send(body[i:i + 1])
                sent += 1
                if i % 4096 == 0 and time.monotonic() > end:
                    error = "stopped at the time limit"
                    break
            answer = sock.recv(4096).decode("latin-1")
            status = int(answer.split(" ", 2)[1]) if answer.startswith("HTTP/") else 0
    except (OSError, ValueError, IndexError) as err:
        error = error or type(err).__name__
    return {"path": path, "status": status, "bytes_sent": sent, "seconds": round(time.monotonic() - started, 2),
            "error": error}


PLACE = "@@TEXT@@"  # where _padded puts the text


def notification_of(user: str) -> str:
    """A Meta webhook body (JSON) with one message from `user`, its text still the PLACE marker."""
    return json.dumps(notification(message(user, PLACE)))


def _padded(template: str, size: int, filler: str) -> bytes:
    """`template` with PLACE replaced by as much of `filler` as makes exactly `size` bytes of valid UTF-8."""
    head, tail = (part.encode() for part in template.split(PLACE, 1))
    room = size - len(head) - len(tail)
    text = filler.encode()[:room].decode("utf-8", "ignore").replace("\\", " ").replace('"', " ")
    middle = text.encode()
    return head + middle + b" " * (room - len(middle)) + tail


async def h3_slow(base: str, senders: int, size: int, address: str, prefix: str, secret: str,
                  max_seconds: float = 60.0) -> dict[str, Any]:
    """H3: `senders` connections each sending a `size`-byte body one byte at a time (web chat, Instagram, web chat...)."""
    port = urlparse(local_only(base)).port or 80
    jobs = []
    for n in range(senders):
        filler = (" ".join(BENIGN) + " ") * (size // 300 + 1)
        if n % 3 == 1:  # shaped as Meta posts it; the attacker does not know the app secret, so its signature is wrong
            path, body = "/instagram/webhook", _padded(notification_of(f"88{n:08d}"), size, filler)
            head = {"X-Hub-Signature-256": sign("guessed-" + secret[::-1], body)}
        else:
            path, head = "/chat/messages", _headers(f"{prefix}{n:04d}", address)
            body = _padded(f'{{"id":"{prefix}{n:04d}-slowbody","text":"{PLACE}"}}', size, filler)
        jobs.append((path, head, body))
    results: list[dict[str, Any]] = [{}] * senders

    def run(n: int) -> None:
        results[n] = _slow_send(port, *jobs[n], max_seconds)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(senders)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [t.join(max_seconds + 60) for t in threads])
    statuses = Counter(r.get("status", 0) for r in results if r.get("status"))
    errors = Counter(r["error"] for r in results if r.get("error"))
    return {"statuses": dict(statuses), "errors": dict(errors), "seconds": round(time.monotonic() - started, 2),
            "sent": senders, "senders": results}


# The officers' new pages, asked for by anonymous clients (no session; every other request a made-up session cookie).
INBOX_PAGES = (("GET", "/inbox/stats?tage=90"), ("GET", "/inbox/stats.csv?from=2025-01-01&to=2026-11-01"),
               ("GET", "/inbox/suche?q=messer&kanal=webchat"), ("POST", "/inbox/suche"))


async def h4_anonymous_pages(base: str, requests: int, concurrency: int, address: str, prefix: str) -> dict[str, Any]:
    """H4: `requests` anonymous requests for the dashboard, its CSV and the search (POSTs carry a 100 KB form)."""
    base, tally, gate = local_only(base), Tally(), asyncio.Semaphore(concurrency)
    latency: dict[str, list[float]] = {path.split("?")[0] + f" {method}": [] for method, path in INBOX_PAGES}
    form = {"q": "messer " * 14_000, "csrf": "guessed"}  # about 100 KB: refused before it is read
    async with _session(concurrency) as session:

        async def one(n: int) -> None:
            method, path = INBOX_PAGES[n % len(INBOX_PAGES)]
            headers = {"X-Forwarded-For": address}
            if n % 2:
                headers["Cookie"] = f"streife_session={prefix}{uuid.uuid4().hex}{uuid.uuid4().hex}"
            async with gate:
                started = time.perf_counter()
                try:
                    async with session.request(method, base + path, headers=headers, allow_redirects=False,
                                               data=form if method == "POST" else None) as response:
                        await response.read()
                        tally.statuses[response.status] += 1
                        if response.status == 303 and not response.headers.get("Location", "").startswith("/inbox/login"):
                            tally.errors["redirect elsewhere than the login"] += 1
                except asyncio.TimeoutError:
                    tally.errors["timeout"] += 1
                except aiohttp.ClientError as err:
                    tally.errors[type(err).__name__] += 1
                latency[path.split("?")[0] + f" {method}"].append(time.perf_counter() - started)

        await asyncio.gather(*(one(n) for n in range(requests)))
    ms = {k: [round(1000 * sorted(v)[len(v) // 2], 1), round(1000 * sorted(v)[max(0, -(-99 * len(v) // 100) - 1)], 1)]
          for k, v in latency.items() if v}
    return tally.result(sent=requests, refusal_ms_p50_p99=ms)


FLOODS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "h1": h1_fake_emergencies, "h2": h2_long_messages, "h3_gzip": h3_gzip, "h3_slow": h3_slow,
    "h4": h4_anonymous_pages}


def warm() -> bool:
    """Nothing: starts the attacker's process (and its imports) before any measurement."""
    return True


def run(name: str, **kwargs: Any) -> dict[str, Any]:
    """Entry point in the attacker's process (multiprocessing, spawn)."""
    return asyncio.run(FLOODS[name](**kwargs))
