"""RPC front-ends for the chaos tests: a TCP proxy that can turn into a black hole (accepts,
reads, never answers; also for connections already open), and a JSON-RPC front-end that
answers chosen read methods with malformed replies and forwards everything else."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web


class BlackholeProxy:
    """Forwards TCP to ``upstream_port`` on loopback until ``blackhole()``; from then on
    it accepts connections and reads requests but never sends a byte back."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.holed = False
        self.held = 0  # connections accepted while in the black hole
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def start(self) -> BlackholeProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    def blackhole(self) -> None:
        self.holed = True

    def restore(self) -> None:
        self.holed = False

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened = [writer]
        self._writers.add(writer)
        try:
            if self.holed:
                self.held += 1
                await _swallow(reader)
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                                 self.upstream_port)
            opened.append(up_writer)
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for each in opened:
                each.close()
                self._writers.discard(each)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            if self.holed:
                continue  # swallowed: the other side waits forever
            sink.write(data)
            await sink.drain()


async def _swallow(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


class MalformedRpc:
    """A JSON-RPC front-end: ``methods`` get ``{"result": null}`` (or ``reply``), the rest
    is forwarded to ``upstream``. ``bad`` counts the malformed replies given."""

    def __init__(self, upstream: str, methods: Iterable[str], reply: Any = None) -> None:
        self.upstream = upstream
        self.methods = set(methods)
        self.reply = reply
        self.bad = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> MalformedRpc:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"
        self._http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with contextlib.suppress(ValueError):
            message = json.loads(body)
            if isinstance(message, dict) and message.get("method") in self.methods:
                self.bad += 1
                return web.json_response({"jsonrpc": "2.0", "id": message.get("id"),
                                          "result": self.reply})
        assert self._http is not None
        async with self._http.post(self.upstream, data=body,
                                   headers={"Content-Type": "application/json"}) as upstream:
            return web.Response(body=await upstream.read(), status=upstream.status,
                                content_type="application/json")
