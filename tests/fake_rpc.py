"""A small fake JSON-RPC / transaction-sender server for the send tests.

A real aiohttp server on 127.0.0.1 (port 0). It records every request and
which TCP connection carried it, answers ``sendTransaction`` with the
transaction's first signature, serves ``getSignatureStatuses`` and
``isBlockhashValid`` from scripted state, and can be told to misbehave on a
path: HTTP 429 with ``Retry-After``, 5xx, hang past the client's timeout,
reset the TCP connection, or return a JSON-RPC error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from solders.signature import Signature


@dataclass(frozen=True)
class Http:
    """Answer with this HTTP status (and ``Retry-After`` if given)."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True)
class Hang:
    """Wait this long before answering normally."""

    seconds: float


@dataclass(frozen=True)
class Reset:
    """Reset the TCP connection (RST) instead of answering."""


@dataclass(frozen=True)
class RpcFailure:
    """Answer HTTP 200 with a JSON-RPC error object."""

    code: int
    message: str


Behaviour = Http | Hang | Reset | RpcFailure


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    http_method: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]
    time: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def rpc_method(self) -> str | None:
        payload = self.json
        return payload.get("method") if isinstance(payload, dict) else None


def signature_of(tx: bytes) -> str:
    """The first signature of a serialized transaction (after the 1-byte count)."""
    return str(Signature.from_bytes(tx[1:65]))


def fake_tx(seed: int) -> tuple[bytes, str]:
    """A transaction-shaped byte string and its signature: count 1, 64-byte sig, message."""
    sig = bytes((seed + i) % 256 for i in range(64))
    raw = b"\x01" + sig + b"message-bytes-" + seed.to_bytes(4, "big") * 50
    return raw, signature_of(raw)


@dataclass
class FakeRpc:
    """The server; ``await start()`` then use ``url(path)``."""

    requests: list[Recorded] = field(default_factory=list)
    statuses: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    blockhash_valid: Callable[[str], bool] = lambda blockhash: True
    on_send: Callable[[str, int], None] | None = None
    send_counts: Counter[str] = field(default_factory=Counter)
    _scripts: dict[tuple[str, str], deque[Behaviour]] = field(
        default_factory=lambda: defaultdict(deque))
    _runner: web.AppRunner | None = None
    _port: int = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/", netloc_prefix: str = "", query: str = "") -> str:
        suffix = f"?{query}" if query else ""
        return f"http://{netloc_prefix}127.0.0.1:{self._port}{path}{suffix}"

    def script(self, path: str, rpc_method: str, *behaviours: Behaviour) -> None:
        """Queue misbehaviours for the next requests of ``rpc_method`` on ``path``."""
        self._scripts[(path, rpc_method)].extend(behaviours)

    def on(self, path: str, rpc_method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests
                if r.path == path and (rpc_method is None or r.rpc_method == rpc_method)]

    def connections(self, *paths: str) -> set[tuple[str, int]]:
        """Distinct client (host, port) pairs, i.e. TCP connections, seen on ``paths``."""
        return {r.peer for r in self.requests if not paths or r.path in paths}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        record = Recorded(request.path, request.method, dict(request.headers), body,
                          tuple(peer) if peer else ("?", 0),
                          asyncio.get_running_loop().time())
        self.requests.append(record)
        if request.method == "GET":
            return web.Response(text="ok")
        queue = self._scripts.get((request.path, record.rpc_method or ""))
        behaviour = queue.popleft() if queue else None
        return await self._behave(request, record, behaviour)

    async def _behave(self, request: web.Request, record: Recorded,
                      behaviour: Behaviour | None) -> web.StreamResponse:
        if isinstance(behaviour, Http):
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            return web.Response(status=behaviour.status, headers=headers, text="nope")
        if isinstance(behaviour, Reset):
            _reset(request)
            return web.Response(status=500)  # never written: the socket is gone
        if isinstance(behaviour, RpcFailure):
            return _rpc_reply(error={"code": behaviour.code, "message": behaviour.message})
        if isinstance(behaviour, Hang):
            await asyncio.sleep(behaviour.seconds)
        return self._answer(record.json)

    def _answer(self, payload: dict[str, Any]) -> web.Response:
        method, params = payload["method"], payload.get("params", [])
        context = {"slot": 1000, "apiVersion": "2.2.0"}
        if method == "sendTransaction":
            return _rpc_reply(self._accept(params[0]))
        if method == "getSignatureStatuses":
            statuses = [self.statuses.get(sig) for sig in params[0]]
            return _rpc_reply({"context": context, "value": statuses})
        if method == "isBlockhashValid":
            return _rpc_reply({"context": context, "value": self.blockhash_valid(params[0])})
        if method == "getLatestBlockhash":
            latest = {"blockhash": "EkSnNWid2cvwEVnVx9aBqawnmiCNiDgp3gUdkDPTKN1N",
                      "lastValidBlockHeight": 1150}
            return _rpc_reply({"context": context, "value": latest})
        if method == "getBlockHeight":
            return _rpc_reply(1000)
        if method == "getHealth":
            return _rpc_reply("ok")
        return _rpc_reply(error={"code": -32601, "message": "Method not found"})

    def _accept(self, tx_b64: str) -> str:
        sig = signature_of(base64.b64decode(tx_b64))
        self.send_counts[sig] += 1
        if self.on_send is not None:
            self.on_send(sig, self.send_counts[sig])
        return sig


def _rpc_reply(result: Any = None, error: dict[str, Any] | None = None) -> web.Response:
    payload: dict[str, Any] = {"jsonrpc": "2.0", "id": 1}
    if error is not None:
        payload["error"] = error
    else:
        payload["result"] = result
    return web.json_response(payload)


def _reset(request: web.Request) -> None:
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
