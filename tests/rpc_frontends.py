"""RPC front-ends for the chaos tests: the black-hole proxy (``sim/blackhole.py``) and a
JSON-RPC front-end that answers chosen read methods with malformed replies and forwards
everything else."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

from lasersell_bot.sim.blackhole import BlackholeProxy

__all__ = ["BlackholeProxy", "MalformedRpc"]


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
