"""Run streife as real processes behind the round-robin proxy: one or more `python -m bot serve`, one database.

`Cluster` starts (and stops) everything on 127.0.0.1:
- the database: a throwaway PostgreSQL server (tests/pg.py's `start_server`) for more than one
  instance, or one SQLite file (one instance: the default deployment);
- the fake Telegram Bot API (long polling; each instance gets its own base URL `/i<n>/bot`, so the
  fake knows which instance polls) and the fake Graph API (Instagram and Messenger sends);
- the instances, with the same DATABASE_URL, PSEUDONYM_KEY, tokens and fakes, each on its own port,
  its log in the cluster's folder;
- bench/proxy.py in front, alternating requests between the instances.
`kill(n)` SIGKILLs an instance, `start(n)` starts it again; `leader()` names the instance that polls.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.proxy import Proxy
from bench.servers import METRICS_TOKEN, NO_WEBCHAT_LIMITS
from tests.fake_bot_api import FakeBotApi, free_port
from tests.fake_graph_api import FakeGraphApi
from tests.instagram_helpers import ACCOUNT, PAGE_TOKEN, SECRET, TOKEN, VERIFY

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
PSEUDONYM_KEY = "cluster-run-pseudonym-key-0123456789"
# Settings an instance must not inherit from the caller's environment (another deployment's channels or database).
FOREIGN = ("TELEGRAM_", "INSTAGRAM_", "MESSENGER_", "X_", "MASTODON_", "DATABASE_", "GRAPH_API_", "OFFICER_ALERT")


class ClusterError(RuntimeError):
    """An instance or the database did not come up."""


class TaggedBotApi(FakeBotApi):
    """The fake Bot API, also under /<tag>/bot<token>/<method>: records which instance called getUpdates, and when."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.polls: list[tuple[float, str]] = []  # (time.monotonic() on arrival, tag)

    def routes(self, app: web.Application) -> None:
        """The Bot API's paths, also under /<tag>/ (the instance that polls)."""
        super().routes(app)
        app.router.add_route("*", "/{tag}/bot{token}/{method}", self._tagged)

    def tagged_url(self, tag: str) -> str:
        """The base URL (PTB's form) an instance tagged `tag` uses."""
        return f"http://127.0.0.1:{self.port}/{tag}/bot"

    async def _tagged(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["method"] == "getUpdates":
            self.polls.append((time.monotonic(), request.match_info["tag"]))
        return await self._handle(request)

    def polls_after(self, moment: float) -> list[tuple[float, str]]:
        """getUpdates calls that arrived after `moment` (time.monotonic())."""
        return [p for p in self.polls if p[0] > moment]


@dataclass
class Instance:
    """One `python -m bot serve` process."""

    tag: str
    port: int
    env: dict[str, str] = field(repr=False)
    log_path: Path
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start the process (its output appended to its log)."""
        self.starts += 1
        with open(self.log_path, "ab") as out:
            out.write(f"\n--- start {self.starts} ---\n".encode())
            out.flush()
            self.proc = await asyncio.create_subprocess_exec(
                str(PYTHON if PYTHON.exists() else sys.executable), "-m", "bot", "serve", cwd=ROOT, env=self.env,
                stdout=out, stderr=asyncio.subprocess.STDOUT)

    async def wait_ready(self, timeout: float = 60.0, mode: str | None = None) -> float:
        """Wait until /healthz answers 200 (and reports `mode`, e.g. "nlu"); the seconds waited."""
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < timeout:
                if not self.running:
                    raise ClusterError(f"instance {self.tag} exited with {self.proc.returncode if self.proc else None}; "
                                       f"the end of its log:\n{self.log_tail()}")
                try:
                    async with session.get(f"{self.base}/healthz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                                           timeout=aiohttp.ClientTimeout(total=2)) as response:
                        body = await response.json(content_type=None)
                        if response.status == 200 and (mode is None or (body.get("mode") == mode and not body.get("model_loading"))):
                            return time.monotonic() - started
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    pass
                await asyncio.sleep(0.1)
        raise ClusterError(f"instance {self.tag} not ready within {timeout:.0f} s; the end of its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the instance's output (the folder may be gone when someone reads the error)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def kill(self) -> float:
        """SIGKILL (no goodbye: open transactions, sessions and locks die with it); the moment of the kill."""
        assert self.proc is not None
        moment = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        return moment

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class Cluster:
    """`instances` processes on one database behind the proxy, with the fake platforms. Use `async with`."""

    instances: int = 2
    database: str = "postgresql"  # or "sqlite" (one instance)
    model: bool = False  # False: no NLU model (the safety net and the topic buttons answer; fast start)
    extra_env: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None  # kept when given; a temporary folder otherwise

    def __post_init__(self) -> None:
        if self.database == "sqlite" and self.instances != 1:
            raise ValueError("SQLite runs one instance; two need DATABASE_URL (PostgreSQL)")
        self.nodes: list[Instance] = []
        self.telegram = TaggedBotApi()
        self.graph = FakeGraphApi(token=TOKEN, tokens={PAGE_TOKEN})
        self.proxy: Proxy | None = None
        self.pg: Any = None
        self.database_target = ""  # the URL (PostgreSQL) or the file (SQLite)
        self._own_folder = self.folder is None

    async def __aenter__(self) -> "Cluster":
        self.folder = Path(tempfile.mkdtemp(prefix="streife-cluster-")) if self.folder is None else self.folder
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        assert self.folder is not None
        if self.database == "postgresql":
            from tests.pg import start_server

            self.pg = await asyncio.to_thread(start_server, self.folder / "pg")
            self.database_target = await asyncio.to_thread(self.pg.create_database, "streife")
        else:
            self.database_target = str(self.folder / "streife.sqlite3")
        await self.telegram.start()
        await self.graph.start()
        for n in range(1, self.instances + 1):
            tag = f"i{n}"
            port = free_port()
            self.nodes.append(Instance(tag, port, self._env(tag, port), self.folder / f"{tag}.log"))
        for node in self.nodes:  # one after the other: the first migrates the database, the next finds it ready
            await node.start()
            await node.wait_ready(timeout=300 if self.model else 60, mode="nlu" if self.model else None)
        self.proxy = await Proxy([node.base for node in self.nodes]).start()

    def _env(self, tag: str, port: int) -> dict[str, str]:
        assert self.folder is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env.update(NO_WEBCHAT_LIMITS)
        env.update(
            WEB_HOST="127.0.0.1", WEB_PORT=str(port), LOG_LEVEL="INFO", METRICS_TOKEN=METRICS_TOKEN,
            PSEUDONYM_KEY=PSEUDONYM_KEY, TRUSTED_PROXIES="127.0.0.1", FLOOD_MESSAGES="1000",
            TELEGRAM_BOT_TOKEN=self.telegram.token, TELEGRAM_API_BASE_URL=self.telegram.tagged_url(tag),
            INSTAGRAM_VERIFY_TOKEN=VERIFY, INSTAGRAM_APP_SECRET=SECRET, INSTAGRAM_ACCESS_TOKEN=TOKEN,
            INSTAGRAM_ACCOUNT_ID=ACCOUNT, MESSENGER_ACCESS_TOKEN=PAGE_TOKEN, GRAPH_API_BASE_URL=self.graph.url,
            GRAPH_API_VERSION="v21.0", NLU_WORKERS="1", PYTHONUNBUFFERED="1",
        )
        if self.database == "postgresql":
            env["DATABASE_URL"] = self.database_target
            env["DATABASE_PATH"] = str(self.folder / f"{tag}-unused.sqlite3")  # must never be written
        else:
            env["DATABASE_PATH"] = self.database_target
        if not self.model:
            env["MODEL_PATH"] = str(self.folder / "no-model.tar.gz")
        env.update(self.extra_env)
        return env

    async def __aexit__(self, *exc: object) -> None:
        for node in self.nodes:
            await node.stop()
        if self.proxy is not None:
            await self.proxy.stop()
        await self.telegram.stop()
        await self.graph.stop()
        if self.pg is not None:
            await asyncio.to_thread(self.pg.stop)
        if self._own_folder and self.folder is not None and not os.environ.get("STREIFE_KEEP_CLUSTER"):
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- faults ------------------------------------------------------------------------------

    def node(self, tag: str) -> Instance:
        return next(n for n in self.nodes if n.tag == tag)

    def leader(self) -> Instance | None:
        """The instance that called getUpdates last (None before the first poll)."""
        return self.node(self.telegram.polls[-1][1]) if self.telegram.polls else None

    async def wait_for_leader(self, timeout: float = 30.0) -> Instance:
        """The polling instance, once one polls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader.running:
                return leader
            await asyncio.sleep(0.05)
        raise ClusterError(f"no instance polled Telegram within {timeout:.0f} s")

    async def takeover(self, killed_at: float, timeout: float = 30.0) -> tuple[float, str]:
        """Seconds from a kill to the next getUpdates (by then only live instances can call), and who called."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            after = self.telegram.polls_after(killed_at)
            if after:
                return after[0][0] - killed_at, after[0][1]
            await asyncio.sleep(0.02)
        tails = "\n".join(f"--- {n.tag} ({'running' if n.running else 'exited'}):\n{n.log_tail()}" for n in self.nodes)
        raise ClusterError(f"nobody polled Telegram within {timeout:.0f} s of the kill\n{tails}")

    def database_query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the shared database (for assertions after a run)."""
        if self.database == "postgresql":
            import psycopg

            with psycopg.connect(self.database_target) as conn:
                return [tuple(r) for r in conn.execute(sql).fetchall()]
        import sqlite3

        with sqlite3.connect(self.database_target) as conn:
            return conn.execute(sql).fetchall()
