"""A small reverse proxy on 127.0.0.1 that alternates requests between backends (round robin).

Like nginx with `proxy_next_upstream error`: a request goes to the next backend in turn; only when
that backend refuses the connection (nothing was sent) is the request tried on the next one. A
backend that fails after the request went out (killed mid-request, reset, timeout) is a 502: the
request may have been applied, so the client decides whether to send it again. Bodies and headers
pass through byte for byte (signed webhooks still verify; nothing is inflated); responses are
streamed, so server-sent events work through it.

    .venv/bin/python -m bench.proxy --port 8000 http://127.0.0.1:8081 http://127.0.0.1:8082
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections import Counter

import aiohttp
from aiohttp import web

# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's; the rest pass unchanged.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade"}
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=2, sock_read=60)


class Proxy:
    """Round robin over `backends` (base URLs); `counts` tells what happened to each request."""

    def __init__(self, backends: list[str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.backends = list(backends)
        self.host, self.port = host, port
        self.counts: Counter[str] = Counter()  # "<backend> ok", "<backend> refused", "<backend> failed", "502"
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "Proxy":
        """Listen (a free port unless one was given)."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._session = aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                                              timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=0))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False,
                                     shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Close the listener and the connections to the backends."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one request; the next backend only if this one refused the connection."""
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}]
        first = next(self._turn)
        for n in range(len(self.backends)):
            backend = self.backends[(first + n) % len(self.backends)]
            try:
                upstream = await self._session.request(  # type: ignore[union-attr]
                    request.method, backend + request.rel_url.raw_path_qs, data=body if body else None,
                    headers=headers, allow_redirects=False, skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"))
            except aiohttp.ClientConnectorError:
                self.counts[f"{backend} refused"] += 1  # nothing was sent: the next backend may take it
                continue
            except (aiohttp.ClientError, asyncio.TimeoutError):
                self.counts[f"{backend} failed"] += 1
                break
            try:
                return await self._relay(request, upstream, backend)
            finally:
                upstream.release()
        self.counts["502"] += 1
        return web.Response(status=502, text="Bad Gateway")

    async def _relay(self, request: web.Request, upstream: aiohttp.ClientResponse, backend: str) -> web.StreamResponse:
        """Stream the backend's answer to the client, headers unchanged (a cut-off stream ends the connection)."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in HOP_BY_HOP | {"content-length"}:
                response.headers.add(key, value)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        try:
            first = await upstream.content.readany()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.counts[f"{backend} failed"] += 1
            self.counts["502"] += 1
            return web.Response(status=502, text="Bad Gateway")
        await response.prepare(request)
        try:
            chunk = first
            while chunk:
                await response.write(chunk)
                chunk = await upstream.content.readany()
        except ConnectionResetError:  # the client left (a closed page's live stream)
            return response
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.counts[f"{backend} failed"] += 1
            if request.transport is not None:
                request.transport.close()  # the client must see a broken answer, not a short one
            return response
        await response.write_eof()
        self.counts[f"{backend} ok"] += 1
        return response


async def _main(port: int, backends: list[str]) -> None:
    proxy = await Proxy(backends, port=port).start()
    print(f"proxy on {proxy.url} -> {', '.join(backends)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await proxy.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("backends", nargs="+", help="base URLs, e.g. http://127.0.0.1:8081")
    args = parser.parse_args()
    try:
        asyncio.run(_main(args.port, [b.rstrip("/") for b in args.backends]))
    except KeyboardInterrupt:
        pass
