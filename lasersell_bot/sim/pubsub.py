"""Solana's websocket (PubSub) API over a ``SimChain``: what clients confirm with.

web3.js ``confirmTransaction`` / ``sendAndConfirmTransaction`` wait on
``signatureSubscribe``; its ``Connection`` derives the websocket URL from the
RPC URL by taking port + 1 (Agave's convention: 8899 for HTTP, 8900 for
websockets). ``PubSub`` serves ``signatureSubscribe`` (with
``enableReceivedNotification``), ``slotSubscribe`` and ``accountSubscribe`` and
their ``*Unsubscribe``, with Agave's message shapes. It polls the chain every
``poll_s``: a signature is notified once its status reaches the requested
commitment (default ``finalized``), then the subscription ends; an account is
notified when its ``getAccountInfo`` value changes; a slot on every new slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import WSMsgType, web
from solders.pubkey import Pubkey
from solders.signature import Signature

from lasersell_bot.sim.chain import SimChain
from lasersell_bot.sim.rpc_extra import COMMITMENT_RANK, commitment_level

ROOT_LAG_SLOTS: Final = 32
INVALID_PARAMS: Final = -32602
METHOD_NOT_FOUND: Final = -32601
PARSE_ERROR: Final = -32700

Call = Callable[[str, list[Any]], Any]


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Sub:
    kind: str  # "signature" | "slot" | "account"
    target: str = ""
    commitment: str = "finalized"
    encoding: str = "base64"
    received: bool = False
    last: Any = None


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    subs: dict[int, _Sub] = field(default_factory=dict)


def _config(params: list[Any], index: int) -> dict[str, Any]:
    value = params[index] if len(params) > index else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Refused(INVALID_PARAMS, "Invalid params: config must be an object")
    return value


def _text(params: list[Any], name: str) -> str:
    if not params or not isinstance(params[0], str):
        raise _Refused(INVALID_PARAMS, f"Invalid params: missing or invalid {name}")
    return params[0]


class PubSub:
    """The websocket endpoint: an aiohttp handler plus the chain poller."""

    def __init__(self, chain: SimChain, call: Call, *, poll_s: float = 0.02) -> None:
        self.chain = chain
        self._call = call
        self._poll_s = poll_s
        self._conns: set[_Conn] = set()
        self._ids = itertools.count(0)
        self._poller: asyncio.Task[None] | None = None
        self._last_slot = chain.slot

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        for conn in list(self._conns):
            await conn.ws.close()

    def subscription_count(self) -> int:
        return sum(len(conn.subs) for conn in self._conns)

    # ----------------------------------------------------------------- websocket

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET with an upgrade: the PubSub session; plain GET: 405 like Agave's HTTP port."""
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        if not ws.can_prepare(request).ok:
            return web.Response(status=405, text="Used HTTP Method is not allowed. POST or "
                                "OPTIONS is required")
        await ws.prepare(request)
        conn = _Conn(ws)
        self._conns.add(conn)
        try:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    await ws.send_str(self._answer(conn, frame.data))
        finally:
            self._conns.discard(conn)
        return ws

    def _answer(self, conn: _Conn, text: str) -> str:
        try:
            call = json.loads(text)
        except ValueError:
            return _error(None, PARSE_ERROR, "Parse error")
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            return _error(None, -32600, "Invalid request")
        params = call.get("params") or []
        if not isinstance(params, list):
            return _error(call.get("id"), INVALID_PARAMS, "Invalid params: expected an array")
        try:
            result = self._dispatch(conn, call["method"], params)
        except _Refused as refused:
            return _error(call.get("id"), refused.code, refused.message)
        except Exception as exc:  # an RpcError from the method call behind it
            return _error(call.get("id"), getattr(exc, "code", INVALID_PARAMS), str(exc))
        return json.dumps({"jsonrpc": "2.0", "result": result, "id": call.get("id")})

    def _dispatch(self, conn: _Conn, method: str, params: list[Any]) -> Any:
        if method.endswith("Unsubscribe") and method[:-11] in ("signature", "slot", "account"):
            return self._unsubscribe(conn, method[:-11], params)
        if method == "signatureSubscribe":
            return self._add(conn, self._signature_sub(params))
        if method == "slotSubscribe":
            return self._add(conn, _Sub("slot", last=self.chain.slot))
        if method == "accountSubscribe":
            return self._add(conn, self._account_sub(params))
        raise _Refused(METHOD_NOT_FOUND, "Method not found")

    def _add(self, conn: _Conn, sub: _Sub) -> int:
        sub_id = next(self._ids)
        conn.subs[sub_id] = sub
        return sub_id

    def _unsubscribe(self, conn: _Conn, kind: str, params: list[Any]) -> bool:
        sub_id = params[0] if params else None
        if not isinstance(sub_id, int) or sub_id not in conn.subs \
                or conn.subs[sub_id].kind != kind:
            raise _Refused(INVALID_PARAMS, "Invalid subscription id.")
        del conn.subs[sub_id]
        return True

    def _signature_sub(self, params: list[Any]) -> _Sub:
        signature = _text(params, "signature")
        try:
            Signature.from_string(signature)
        except ValueError:
            raise _Refused(INVALID_PARAMS, "Invalid params: invalid signature") from None
        config = _config(params, 1)
        sub = _Sub("signature", signature, commitment_level(config))
        sub.received = not config.get("enableReceivedNotification", False)
        return sub

    def _account_sub(self, params: list[Any]) -> _Sub:
        pubkey = _text(params, "pubkey")
        try:
            Pubkey.from_string(pubkey)
        except ValueError:
            raise _Refused(INVALID_PARAMS, "Invalid params: invalid pubkey") from None
        config = _config(params, 1)
        encoding = str(config.get("encoding", "binary"))
        sub = _Sub("account", pubkey, commitment_level(config), encoding)
        sub.last = self._account_value(sub)
        return sub

    def _account_value(self, sub: _Sub) -> Any:
        answer = self._call("getAccountInfo", [sub.target, {"encoding": sub.encoding}])
        return answer["value"]

    # ----------------------------------------------------------------- notifications

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            await self.poll()

    async def poll(self) -> None:
        """Send every notification that is due now."""
        slot = self.chain.slot
        new_slot = slot != self._last_slot
        self._last_slot = slot
        for conn in list(self._conns):
            for sub_id, sub in list(conn.subs.items()):
                try:
                    due = self._due(sub, slot, new_slot)
                except Exception:  # the account became unreadable: end the subscription
                    conn.subs.pop(sub_id, None)
                    continue
                for method, result, done in due:
                    if done:
                        conn.subs.pop(sub_id, None)
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await conn.ws.send_str(json.dumps({
                            "jsonrpc": "2.0", "method": method,
                            "params": {"result": result, "subscription": sub_id}}))

    def _due(self, sub: _Sub, slot: int, new_slot: bool) -> list[tuple[str, Any, bool]]:
        if sub.kind == "slot":
            if not new_slot:
                return []
            return [("slotNotification",
                     {"parent": slot - 1, "root": max(0, slot - ROOT_LAG_SLOTS), "slot": slot},
                     False)]
        if sub.kind == "account":
            value = self._account_value(sub)
            if value == sub.last:
                return []
            sub.last = value
            return [("accountNotification", {"context": {"slot": slot}, "value": value}, False)]
        return self._signature_due(sub, slot)

    def _signature_due(self, sub: _Sub, slot: int) -> list[tuple[str, Any, bool]]:
        status = self.chain.signature_statuses([sub.target])[0]
        if status is None:
            return []
        due: list[tuple[str, Any, bool]] = []
        if not sub.received:
            sub.received = True
            due.append(("signatureNotification",
                        {"context": {"slot": slot}, "value": "receivedSignature"}, False))
        if COMMITMENT_RANK[status["confirmationStatus"]] >= COMMITMENT_RANK[sub.commitment]:
            due.append(("signatureNotification",
                        {"context": {"slot": status["slot"]}, "value": {"err": status["err"]}},
                        True))
        return due


def _error(request_id: Any, code: int, message: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message},
                       "id": request_id})


def bind_pair(host: str, port: int, tries: int = 50) -> tuple[socket.socket, socket.socket]:
    """Listening sockets on ``port`` and ``port + 1``; with ``port`` 0, the first free
    pair the kernel's ephemeral ports give. OSError when an explicit port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(tries if port == 0 else 1):
        first = _listen(family, host, port)
        try:
            return first, _listen(family, host, first.getsockname()[1] + 1)
        except OSError:
            first.close()
            if port != 0:
                raise
    raise OSError(f"no free port pair on {host} after {tries} tries")


def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
