"""`python -m nlu.worker`: one NLU worker process. It loads the Rasa model and answers parse requests.

The service (bot/, another Python, no Rasa) starts one worker per core and talks to each over a
Unix socket, one JSON object per line:

    -> {"id": 7, "op": "parse", "text": "...", "urgent": false}
    <- {"id": 7, "parse": {"intent": "...", "confidence": 0.9, "ranking": [["...", 0.9], ...]}}
    <- {"id": 7, "error": "no model"}                      (not loaded yet, or broken)
    -> {"id": 8, "op": "status"}
    <- {"id": 8, "status": {"loaded": true, "model": "nlu.tar.gz@...", "loading": false, ...}}
    <- {"event": "status", "status": {...}}                 (pushed whenever the status changes)

Parses run one at a time on the model's thread; waiting requests are taken urgent first, then in
order of arrival. The model file is watched and reloaded as before (nlu/reload.py: loaded beside
the serving one, smoke-tested, swapped). With --exit-with-stdin the worker ends when its parent
closes the pipe, so a killed service leaves no orphan behind.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

MAX_LINE = 1024 * 1024  # a request line; texts are capped by the service long before this
MAX_TEXT = 8000  # characters parsed; the rest of a longer text does not change the intent

log = logging.getLogger("nlu.worker")


class Worker:
    """The model, the queue of waiting parses and the connected clients."""

    def __init__(self, model_path: Path, data_dir: Path, threshold: float, watch_seconds: float) -> None:
        from nlu.model import ModelHolder
        from nlu.reload import ModelReloader

        self.model_path = model_path
        self.holder = ModelHolder()
        self.reloader = ModelReloader(self.holder, model_path, data_dir, threshold, watch_seconds)
        self.queue: asyncio.PriorityQueue[tuple[int, int, str, asyncio.Future[Any]]] = asyncio.PriorityQueue()
        self.order = itertools.count()
        self.writers: set[asyncio.StreamWriter] = set()
        self.parsed = 0

    def status(self) -> dict[str, Any]:
        """What the service shows in /healthz."""
        model = self.holder.model
        return {
            "loaded": model is not None,
            "model": model.name if model is not None else None,
            "loading": self.holder.loading,
            "error": self.holder.error,
            "rejected": self.holder.rejected,
            "queued": self.queue.qsize(),
            "parsed": self.parsed,
            "pid": os.getpid(),
        }

    async def run(self, socket_path: Path) -> None:
        """Load the model, serve the socket, parse, and push status changes until cancelled."""
        server = await asyncio.start_unix_server(self.client, path=str(socket_path), limit=MAX_LINE)
        os.chmod(socket_path, 0o600)
        log.info("NLU worker %d listening on %s", os.getpid(), socket_path)
        tasks = [asyncio.create_task(self.parse_loop()), asyncio.create_task(self.push_status())]
        await asyncio.to_thread(self.holder.load, self.model_path)
        self.reloader.start()
        try:
            async with server:
                await server.serve_forever()
        finally:
            await self.reloader.stop()
            for task in tasks:
                task.cancel()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one connection's requests; answers may come back out of order (by id)."""
        self.writers.add(writer)
        pending: set[asyncio.Task[None]] = set()
        try:
            self.send(writer, {"event": "status", "status": self.status()})
            while line := await reader.readline():
                task = asyncio.create_task(self.answer(writer, line))
                pending.add(task)
                task.add_done_callback(pending.discard)
        except (ConnectionError, ValueError) as err:  # ValueError: a line over MAX_LINE
            log.warning("client connection dropped: %s", err)
        finally:
            self.writers.discard(writer)
            for task in pending:
                task.cancel()
            writer.close()

    async def answer(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        """Answer one request line."""
        try:
            request = json.loads(line)
            rid, op = request["id"], request.get("op", "parse")
        except (ValueError, KeyError, TypeError):
            self.send(writer, {"id": None, "error": "bad request"})
            return
        if op == "status":
            self.send(writer, {"id": rid, "status": self.status()})
            return
        text = request.get("text")
        if op != "parse" or not isinstance(text, str):
            self.send(writer, {"id": rid, "error": "bad request"})
            return
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((0 if request.get("urgent") else 1, next(self.order), text[:MAX_TEXT], future))
        self.send(writer, {"id": rid, **(await future)})

    async def parse_loop(self) -> None:
        """Parse waiting requests one at a time, urgent ones first."""
        while True:
            _, _, text, future = await self.queue.get()
            if future.done():
                continue
            model = self.holder.model
            if model is None:
                future.set_result({"error": "no model"})
                continue
            try:
                parse = await model.parse(text)
            except Exception as err:  # a message that breaks the model must not break the worker
                log.exception("parse failed")
                future.set_result({"error": f"parse failed: {type(err).__name__}"})
                continue
            self.parsed += 1
            if not future.done():
                future.set_result({"parse": parse.as_json()})

    async def push_status(self) -> None:
        """Tell every client when the model was loaded, reloaded, refused or lost."""
        last: tuple[Any, ...] = ()
        while True:
            status = self.status()
            key = (status["loaded"], status["model"], status["loading"], status["error"], status["rejected"])
            if key != last:
                last = key
                for writer in list(self.writers):
                    self.send(writer, {"event": "status", "status": status})
            await asyncio.sleep(0.2)

    @staticmethod
    def send(writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        """Write one JSON line (a closed connection is the client's business)."""
        if not writer.is_closing():
            writer.write(json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n")


def exit_with_stdin(loop: asyncio.AbstractEventLoop, main: asyncio.Task[None]) -> None:
    """End the worker when the parent process closes our standard input (it died or stopped us)."""
    def wait() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(main.cancel)

    threading.Thread(target=wait, name="parent-watch", daemon=True).start()


async def amain(args: argparse.Namespace) -> int:
    """Run one worker until cancelled."""
    socket_path = Path(args.socket)
    socket_path.unlink(missing_ok=True)
    worker = Worker(Path(args.model), Path(args.data), args.threshold, args.watch)
    main = asyncio.current_task()
    assert main is not None
    if args.exit_with_stdin:
        exit_with_stdin(asyncio.get_running_loop(), main)
    try:
        await worker.run(socket_path)
    except asyncio.CancelledError:
        log.info("NLU worker %d stops", os.getpid())
    finally:
        socket_path.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, quiet Rasa's import noise, serve."""
    parser = argparse.ArgumentParser(prog="python -m nlu.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on")
    parser.add_argument("--model", default="models/nlu.tar.gz")
    parser.add_argument("--data", default="data", help="data dir (the reload smoke test reads data/nlu)")
    parser.add_argument("--threshold", type=float, default=0.35, help="escalation threshold for the smoke test")
    parser.add_argument("--watch", type=float, default=5.0, help="seconds between looks at the model file (0: SIGHUP only)")
    parser.add_argument("--exit-with-stdin", action="store_true", help="stop when standard input closes")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")  # Rasa's and TensorFlow's deprecation noise is not for operators ...
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    logging.captureWarnings(True)  # ... and the libraries that turn warnings back on print them to the log,
    logging.getLogger("py.warnings").setLevel(logging.ERROR)  # where they are dropped
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
