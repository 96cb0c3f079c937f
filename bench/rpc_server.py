"""Lean Solana JSON-RPC server for the benchmark (own process, aiohttp low-level on uvloop).

``sendTransaction`` is stamped with ``time.monotonic_ns()`` as soon as the whole
request body has been read, kept with its raw bytes, and answered with the
transaction's first signature. ``getSignatureStatuses`` answers ``confirmed`` for
every signature so landing completes; ``getHealth``, ``isBlockhashValid``,
``getLatestBlockhash``, ``getBlockHeight`` and ``GET /ping`` answer like a healthy node;
``simulateTransaction`` and ``getMultipleAccounts`` (alone or in a JSON-RPC batch) answer
the daemon's effects verification as for an honest sell (``bench.effects_rpc``).

Checking happens off the hot path, when ``GET /bench/records`` is asked: every
received transaction is decoded and its signature verified with solders against the
expected wallet, and reported with its memo sequence number, message digest and
receive time. ``GET /bench/count`` is cheap; ``POST /bench/clear`` forgets what was
received.

Usage: python -m bench.rpc_server --wallet PUBKEY  (or --wallets-file wallets.json)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from aiohttp import web
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from bench.common import announce, memo_seq, now_ns
from bench.effects_rpc import EffectsRpc
from bench.txtemplate import message_digest


class Call(msgspec.Struct):
    method: str = ""
    params: list[Any] = []
    id: Any = 1


_decode_call = msgspec.json.Decoder(Call).decode
_decode_batch = msgspec.json.Decoder(list[Call]).decode
_encode = msgspec.json.Encoder().encode
_HEADERS = {"Content-Type": "application/json"}


class BenchRpc:
    def __init__(self, wallets: list[str]) -> None:
        self.wallets = {Pubkey.from_string(wallet) for wallet in wallets}
        self.effects = EffectsRpc(self.wallets)
        self.received: list[tuple[int, bytes]] = []
        self.counts: dict[str, int] = {}

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET":
            return await self.handle_get(request)
        body = await request.read()
        received_ns = now_ns()
        if request.path == "/bench/clear":
            self.received.clear()
            self.counts.clear()
            return web.Response(body=b"{}", headers=_HEADERS)
        if body.lstrip().startswith(b"["):
            return self.batch(body)
        try:
            call = _decode_call(body)
        except msgspec.DecodeError:
            return self.reply(None, error={"code": -32700, "message": "parse error"})
        self.counts[call.method] = self.counts.get(call.method, 0) + 1
        if call.method == "sendTransaction":
            return self.send_transaction(call, received_ns)
        if call.method == "getSignatureStatuses":
            sigs = call.params[0] if call.params else []
            return self.reply(call.id, {"context": {"slot": 1}, "value": [
                {"slot": 1, "confirmations": None, "err": None, "status": {"Ok": None},
                 "confirmationStatus": "confirmed"} for _ in sigs]})
        if call.method == "getHealth":
            return self.reply(call.id, "ok")
        if call.method == "isBlockhashValid":
            return self.reply(call.id, {"context": {"slot": 1}, "value": True})
        if call.method == "getLatestBlockhash":
            return self.reply(call.id, {"context": {"slot": 1}, "value": {
                "blockhash": "11111111111111111111111111111111",
                "lastValidBlockHeight": 1000}})
        if call.method == "getBlockHeight":
            return self.reply(call.id, 1)
        if call.method in ("simulateTransaction", "getMultipleAccounts"):
            return web.Response(body=_encode(self.answer(call)), headers=_HEADERS)
        return self.reply(call.id, error={"code": -32601, "message": "Method not found"})

    def batch(self, body: bytes) -> web.Response:
        """A JSON-RPC batch: the effects verification's getMultipleAccounts plus
        simulateTransaction (answered simulation first, so its accounts are known)."""
        try:
            calls = _decode_batch(body)
        except msgspec.DecodeError:
            return self.reply(None, error={"code": -32700, "message": "parse error"})
        order = sorted(range(len(calls)), key=lambda i: calls[i].method != "simulateTransaction")
        replies: list[Any] = [None] * len(calls)
        for index in order:
            call = calls[index]
            self.counts[call.method] = self.counts.get(call.method, 0) + 1
            replies[index] = self.answer(call)
        return web.Response(body=_encode(replies), headers=_HEADERS)

    def answer(self, call: Call) -> dict[str, Any]:
        if call.method == "simulateTransaction":
            return {"jsonrpc": "2.0", "id": call.id, "result": self.effects.simulate(call.params)}
        if call.method == "getMultipleAccounts":
            return {"jsonrpc": "2.0", "id": call.id,
                    "result": self.effects.multiple_accounts(call.params)}
        return {"jsonrpc": "2.0", "id": call.id,
                "error": {"code": -32601, "message": "Method not found"}}

    def send_transaction(self, call: Call, received_ns: int) -> web.Response:
        try:
            raw = base64.b64decode(call.params[0], validate=True)
        except (IndexError, TypeError, binascii.Error, ValueError):
            return self.reply(call.id, error={"code": -32602, "message": "invalid transaction"})
        self.received.append((received_ns, raw))
        return self.reply(call.id, str(Signature.from_bytes(raw[1:65])))

    @staticmethod
    def reply(call_id: Any, result: Any = None, error: Any = None) -> web.Response:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": call_id}
        if error is not None:
            body["error"] = error
        else:
            body["result"] = result
        return web.Response(body=_encode(body), headers=_HEADERS)

    async def handle_get(self, request: web.BaseRequest) -> web.Response:
        if request.path == "/bench/records":
            return web.Response(body=_encode(self.records()), headers=_HEADERS)
        if request.path == "/bench/count":
            return web.Response(body=_encode({"count": len(self.received)}), headers=_HEADERS)
        return web.Response(text="ok")

    def records(self) -> dict[str, Any]:
        """Every received transaction, decoded and verified (this is the slow part)."""
        out = []
        for received_ns, raw in self.received:
            out.append({"t_ns": received_ns, **self.verify(raw)})
        return {"records": out, "counts": self.counts}

    def verify(self, raw: bytes) -> dict[str, Any]:
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except ValueError as exc:
            return {"seq": memo_seq(raw), "valid": False, "why": f"undecodable: {exc}"}
        keys = tx.message.account_keys
        signers = tx.message.header.num_required_signatures
        why = ""
        if signers != 1 or keys[0] not in self.wallets:
            why = "fee payer is not the bench wallet or extra signers"
        elif not all(tx.verify_with_results()):
            why = "signature does not verify"
        return {"seq": memo_seq(raw), "valid": not why, "why": why,
                "digest": message_digest(raw), "signature": str(tx.signatures[0])}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wallet", action="append", default=[])
    parser.add_argument("--wallets-file", help="JSON list of wallet pubkeys (tier phase)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    wallets = list(args.wallet)
    if args.wallets_file:
        wallets += json.loads(Path(args.wallets_file).read_text())
    rpc = BenchRpc(wallets)
    server = web.Server(rpc.handle, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", args.port)
    announce(port=listener.sockets[0].getsockname()[1])
    try:
        await asyncio.Event().wait()
    finally:
        listener.close()
        await server.shutdown()


if __name__ == "__main__":
    uvloop.run(main())
