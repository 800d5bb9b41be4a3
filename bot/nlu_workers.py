"""Start and supervise the NLU worker processes (Rasa on its own Python, nlu/worker.py).

One worker per core by default. A worker that exits is started again (after 0.5 s, doubling up
to 30 s while it keeps failing). Each worker ends by itself when the service dies (its standard
input closes). SIGHUP to the service is passed on, so `kill -HUP` still reloads the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from pathlib import Path

from bot.nlu_client import NluClient
from bot.settings import ROOT, Settings

log = logging.getLogger(__name__)


class NluSupervisor:
    """The worker processes and the client that talks to them."""

    def __init__(self, settings: Settings, workers: int | None = None) -> None:
        self.settings = settings
        self.count = max(1, workers or settings.nlu_workers)
        self._dir = Path(tempfile.mkdtemp(prefix="streife-nlu-"))  # 0700: only this user reaches the sockets
        self.sockets = [self._dir / f"worker{i}.sock" for i in range(self.count)]
        self.client = NluClient(self.sockets, settings.nlu_deadline)
        self.procs: list[asyncio.subprocess.Process | None] = [None] * self.count
        self.restarts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def command(self, index: int) -> list[str]:
        """The worker's command line."""
        s = self.settings
        return [
            str(s.nlu_python), "-m", "nlu.worker", "--socket", str(self.sockets[index]),
            "--model", str(s.model_path), "--data", str(s.data_dir), "--threshold", str(s.escalation_threshold),
            "--watch", str(s.model_watch_seconds), "--exit-with-stdin",
        ]

    async def start(self) -> None:
        """Start every worker; parses are answered as soon as one has loaded its model."""
        if not Path(self.settings.nlu_python).exists():
            log.error("no NLU Python at %s (run `make setup`); the safety net answers alone", self.settings.nlu_python)
            return
        self._tasks = [asyncio.create_task(self._supervise(i), name=f"nlu-worker-{i}") for i in range(self.count)]
        self._tasks.append(asyncio.create_task(self._keep_connected(), name="nlu-connect"))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
            log.info("reload the NLU model in every worker with: kill -HUP %d (or replace %s)", os.getpid(),
                     self.settings.model_path)

    async def _supervise(self, index: int) -> None:
        backoff = 0.5
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT),
               "LOG_LEVEL": self.settings.log_level}
        while not self._stopping:
            started = asyncio.get_running_loop().time()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.command(index), stdin=asyncio.subprocess.PIPE, cwd=str(ROOT), env=env,
                    start_new_session=True,  # a Ctrl+C on the terminal stops the service, which then stops us
                )
            except OSError as err:
                log.error("cannot start NLU worker %d: %s", index, err)
                proc = None
            else:
                self.procs[index] = proc
                log.info("NLU worker %d started (pid %d)", index, proc.pid)
                code = await proc.wait()
                if self._stopping:
                    return
                self.restarts += 1
                log.error("NLU worker %d (pid %d) exited with %s; starting it again", index, proc.pid, code)
            if asyncio.get_running_loop().time() - started > 60:
                backoff = 0.5
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _keep_connected(self) -> None:
        """Connect to (re)started workers early, so their status is known before a citizen writes."""
        while not self._stopping:
            await self.client.refresh()
            await asyncio.sleep(0.5)

    def reload(self) -> None:
        """Ask every worker to reload the model file (SIGHUP)."""
        for proc in self.procs:
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGHUP)

    def pids(self) -> list[int]:
        """The running workers' process ids."""
        return [p.pid for p in self.procs if p is not None and p.returncode is None]

    async def stop(self) -> None:
        """Stop the workers and close the connections."""
        self._stopping = True
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self.client.close()
        for proc in self.procs:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self.procs:
            if proc is not None:
                try:
                    await asyncio.wait_for(proc.wait(), timeout=5)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self.sockets:
            sock.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._dir.rmdir()
