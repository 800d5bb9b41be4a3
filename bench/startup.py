"""Start-up: seconds from process start to the first answered emergency and to the first NLU answer.

Ours: `python -m bot serve`; the web chat endpoint is polled with an emergency until it answers
(the safety net answers before the model is loaded), then /healthz until the model serves, then
one FAQ message. Rasa's: `rasa run` polled over its REST channel until it answers.

Run: .venv/bin/python -m bench.startup [--runs 3] [--skip-rasa]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.load import ProcStats
from bench.rasa_stack import RASA, free_port, rasa_env, trained_model
from bench.servers import healthz, start_ours, stop

EMERGENCY = "hilfe bei uns wird gerade eingebrochen"
FAQ = "wie kann ich mich bei der polizei bewerben"


@dataclass
class Startup:
    """One start of one server."""

    first_emergency_s: float
    first_nlu_s: float
    emergency_reply: str
    rss_mb: float


def post_json(url: str, body: dict, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, bytes]:
    """POST JSON; return status and body (connection refused: status 0)."""
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def poll(deadline: float, attempt) -> float:
    """Call attempt() every 20 ms until it returns True; return the monotonic time it did."""
    while time.monotonic() < deadline:
        if attempt():
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError("no answer before the deadline")


def our_startup(model: Path | None = None, timeout: float = 180) -> Startup:
    """Start our bot and time the first emergency answer and the first NLU answer."""
    with tempfile.TemporaryDirectory(prefix="streife-startup-") as tmp:
        started = time.monotonic()
        proc, base = start_ours(Path(tmp) / "startup.sqlite3", model=model)
        deadline = started + timeout
        cookie = {"Cookie": "streife_chat=startup-emergency"}
        try:
            emergency = poll(deadline, lambda: post_json(f"{base}/chat/messages", {"text": EMERGENCY, "id": uuid.uuid4().hex},
                                                          cookie)[0] == 202)
            with urllib.request.urlopen(urllib.request.Request(f"{base}/chat/transcript", headers=cookie)) as r:
                replies = [m["text"] for m in json.load(r)["messages"] if m["author"] == "bot"]
            nlu = emergency
            if model is None or model.is_file():
                poll(deadline, lambda: healthz(base).get("mode") == "nlu")
                faq = {"Cookie": "streife_chat=startup-faq-chat"}
                nlu = poll(deadline, lambda: post_json(f"{base}/chat/messages", {"text": FAQ, "id": uuid.uuid4().hex}, faq)[0] == 202)
            rss = ProcStats(proc.pid).peak_rss_mb()
        finally:
            stop(proc)
    return Startup(emergency - started, nlu - started, replies[0] if replies else "", rss)


def rasa_startup(timeout: float = 300) -> Startup:
    """Start Rasa's server and time its first answer over the REST channel."""
    model = trained_model()
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([str(RASA), "run", "--enable-api", "--model", str(model), "--credentials", "credentials.yml",
                             "--endpoints", "endpoints.yml", "--interface", "127.0.0.1", "--port", str(port)],
                            cwd=model.parent.parent, env=rasa_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
        answered = poll(started + timeout, lambda: post_json(url, {"sender": "startup", "message": EMERGENCY})[0] == 200)
        status, body = post_json(url, {"sender": "startup", "message": EMERGENCY})
        rss = ProcStats(proc.pid).peak_rss_mb()
    finally:
        stop(proc)
    reply = (json.loads(body or b"[]") or [{}])[0].get("text", "")
    return Startup(answered - started, answered - started, reply, rss)


def summary(name: str, runs: list[Startup]) -> str:
    e = [r.first_emergency_s for r in runs]
    n = [r.first_nlu_s for r in runs]
    return (f"| {name} | {statistics.median(e):.2f} ({min(e):.2f}-{max(e):.2f}) | {statistics.median(n):.2f} "
            f"({min(n):.2f}-{max(n):.2f}) | {max(r.rss_mb for r in runs):.0f} | {len(runs)} |")


def main(argv: list[str] | None = None) -> int:
    """Start each server --runs times and print median (min-max) seconds."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-rasa", action="store_true")
    parser.add_argument("--model", type=Path, default=None, help="our NLU model (default: MODEL_PATH)")
    args = parser.parse_args(argv)
    ours = [our_startup(args.model) for _ in range(args.runs)]
    no_model = [our_startup(Path(tempfile.gettempdir()) / "streife-no-such-model.tar.gz") for _ in range(args.runs)]
    rasa = [] if args.skip_rasa else [rasa_startup() for _ in range(args.runs)]
    print("| server | first emergency answer s | first NLU answer s | RSS after start MB | runs |")
    print("|---|---|---|---|---|")
    print(summary("ours (python -m bot serve)", ours))
    print(summary("ours, model missing (safety net only)", no_model))
    if rasa:
        print(summary("Rasa (rasa run, REST)", rasa))
    print(f"\nour first emergency reply: {ours[0].emergency_reply[:120]!r}")
    if rasa:
        print(f"Rasa's reply to the same message: {rasa[0].emergency_reply!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
