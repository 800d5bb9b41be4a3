"""python-telegram-bot's HTTP transport on aiohttp (the client the rest of the bot uses).

PTB's default transport is httpx. Under load the bot spent most of its CPU inside httpx: each
sendMessage and getUpdates cost about as much as parsing the message with the NLU model. aiohttp
does the same requests for less (bench/RESULTS.md, section 2). This is PTB's documented extension
point (telegram.request.BaseRequest): PTB still builds every request and reads every answer.
"""

from __future__ import annotations

import asyncio

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput


class AiohttpRequest(BaseRequest):
    """One aiohttp session with a bounded connection pool; timeouts and errors as PTB expects them."""

    def __init__(self, connection_pool_size: int = 8, read_timeout: float | None = 5.0,
                 connect_timeout: float | None = 5.0, pool_timeout: float | None = 1.0) -> None:
        self._pool_size = connection_pool_size
        # aiohttp has no write timeout of its own: PTB's write_timeout is accepted and not used
        self._timeouts = {"read": read_timeout, "connect": connect_timeout, "pool": pool_timeout}
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The read timeout used when a call does not set its own."""
        return self._timeouts["read"]

    async def initialize(self) -> None:
        """Open the session (PTB calls this from Bot.initialize)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size), headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _timeout(self, name: str, value: ODVInput[float]) -> float | None:
        return self._timeouts[name] if isinstance(value, DefaultValue) else value  # type: ignore[return-value]

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request; TimedOut or NetworkError when it fails on the way."""
        if self._session is None or self._session.closed:  # replies recovered at start-up may come before Bot.initialize
            await self.initialize()
        assert self._session is not None
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            files = request_data.multipart_data
            if files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mimetype) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mimetype)
                data = form
            else:
                data = request_data.json_parameters
        connect = self._timeout("connect", connect_timeout)
        pool = self._timeout("pool", pool_timeout)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None if connect is None or pool is None else connect + pool,  # waiting for a pooled connection too
            sock_connect=connect,
            sock_read=self._timeout("read", read_timeout),
        )
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as response:
                return response.status, await response.read()
        except asyncio.TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
