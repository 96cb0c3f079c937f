"""A Solana JSON-RPC server on 127.0.0.1, backed by a ``SimChain``.

``RpcMethods`` owns the JSON-RPC semantics: the mainnet request and response
shapes and error codes of the methods the daemon uses. ``SimRpcServer`` owns
the HTTP side: aiohttp on loopback, the slot clock (one slot every
``slot_ms``), the paths that let it stand in for Helius Sender (``/fast``,
``GET /ping``) and Astralane (``/iris``), request counters, the log of received
transactions, and fault injection (``Faults``) for tests.

``simulateTransaction`` honours ``sigVerify`` (default false: unsigned transactions
with zero-filled signatures simulate), ``replaceRecentBlockhash`` and the ``accounts``
option (post-state including the chain's swap settlement, see ``sim.rpc_accounts``);
``getMultipleAccounts`` reads accounts in Agave's shape; a JSON array of calls is a
batch, answered by an array in the same order (``_handle_batch``).

``sendTransaction`` follows mainnet: with ``skipPreflight`` false it verifies
signatures and simulates first and answers -32003 / -32002 on failure; with
``skipPreflight`` true it always answers the signature, and a transaction the
chain refuses (bad signature, expired blockhash, duplicate) is silently
dropped (see ``SimChain.dropped``) and never gets a status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, get_args

import msgspec
from aiohttp import web
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction_status import TransactionErrorFieldless

from lasersell_bot.sim.chain import ChainError, SimChain, SimulationResult, decode_transaction
from lasersell_bot.sim.encoding import b58decode, b58encode, ui_amount
from lasersell_bot.sim.pubsub import PubSub, bind_pair
from lasersell_bot.sim.rpc_accounts import (
    AccountsError,
    check_min_context_slot,
    multiple_accounts,
    simulation_accounts,
    simulation_accounts_config,
)
from lasersell_bot.sim.rpc_extra import ExtraMethods, ExtraRpcError, TransactionHistory

API_VERSION: Final = "2.2.7"
MAX_SIGNATURES: Final = 256
DEFAULT_HANG_SEC: Final = 30.0
RPC_PATHS: Final = ("/", "/fast", "/iris")

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
PREFLIGHT_FAILURE: Final = -32002
SIGNATURE_VERIFICATION_FAILURE: Final = -32003
NODE_UNHEALTHY: Final = -32005

FaultKind = Literal["http_429", "http_500", "timeout", "reset", "rpc_error", "accept_no_land"]
FAULT_KINDS: Final = frozenset(get_args(FaultKind))



class RpcError(Exception):
    """A JSON-RPC error answer."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


# --------------------------------------------------------------------------- encodings


def _decode_wire(text: str, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            return base64.b64decode(text, validate=True)
        if encoding == "base58":
            return b58decode(text)
    except (ValueError, binascii.Error) as exc:
        raise RpcError(INVALID_PARAMS, f"invalid transaction: {exc}") from None
    raise RpcError(INVALID_PARAMS, f"unsupported encoding: {encoding}. Supported: base58, base64")


# --------------------------------------------------------------------------- methods


def _param(params: list[Any], index: int, kind: type, name: str) -> Any:
    if len(params) <= index or not isinstance(params[index], kind):
        raise RpcError(INVALID_PARAMS, f"Invalid params: missing or invalid {name}")
    return params[index]


def _config(params: list[Any], index: int) -> dict[str, Any]:
    if len(params) <= index or params[index] is None:
        return {}
    if not isinstance(params[index], dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: config must be an object")
    config: dict[str, Any] = params[index]
    return config


def _pubkey(params: list[Any]) -> Pubkey:
    try:
        return Pubkey.from_string(_param(params, 0, str, "pubkey"))
    except ValueError:
        raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None


def _simulation_json(sim: SimulationResult, replacement: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "err": None if sim.err is None else sim.err.json,
        "logs": sim.logs,
        "accounts": None,
        "unitsConsumed": sim.units_consumed,
        "returnData": None,
        "innerInstructions": None,
        "replacementBlockhash": replacement,
        "loadedAccountsDataSize": 0,
        "fee": sim.fee if sim.err is None else None,
    }


class RpcMethods:
    """The JSON-RPC methods over a ``SimChain``: ``call(method, params) -> result``."""

    def __init__(self, chain: SimChain) -> None:
        self.chain = chain
        self._table: dict[str, Callable[[list[Any]], Any]] = {
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "getSignatureStatuses": self.get_signature_statuses,
            "getLatestBlockhash": self.get_latest_blockhash,
            "isBlockhashValid": self.is_blockhash_valid,
            "getBlockHeight": lambda _: self.chain.block_height,
            "getSlot": lambda _: self.chain.slot,
            "getBalance": self.get_balance,
            "getAccountInfo": self.get_account_info,
            "getTokenAccountBalance": self.get_token_account_balance,
            "getHealth": lambda _: "ok",
            "getMultipleAccounts": self.get_multiple_accounts,
            "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
        }
        self.history = TransactionHistory(chain, time.time)
        self._table.update(ExtraMethods(chain, self.history, self._context, API_VERSION).table())

    def call(self, method: str, params: Any) -> Any:
        handler = self._table.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        if params is None:
            params = []
        if not isinstance(params, list):
            raise RpcError(INVALID_PARAMS, "Invalid params: expected an array")
        try:
            return handler(params)
        except ExtraRpcError as error:
            raise RpcError(error.code, error.message) from None

    def _context(self, value: Any) -> dict[str, Any]:
        return {"context": {"slot": self.chain.slot, "apiVersion": API_VERSION}, "value": value}

    @staticmethod
    def transaction_bytes(params: list[Any]) -> bytes:
        """The raw transaction of a send/simulate call (base58 unless told)."""
        text = _param(params, 0, str, "transaction")
        return _decode_wire(text, _config(params, 1).get("encoding", "base58"))

    def send_transaction(self, params: list[Any]) -> str:
        raw = self.transaction_bytes(params)
        try:
            tx = decode_transaction(raw)
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        if not _config(params, 1).get("skipPreflight", False):
            self._preflight(raw)
        self.history.submit(raw)
        return str(tx.signatures[0])

    def _preflight(self, raw: bytes) -> None:
        sim = self.chain.simulate(raw, sig_verify=True)
        if sim.err is None:
            return
        if sim.err == ChainError(TransactionErrorFieldless.SignatureFailure):
            raise RpcError(
                SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure"
            )
        raise RpcError(
            PREFLIGHT_FAILURE,
            f"Transaction simulation failed: {sim.err.message}",
            _simulation_json(sim, None),
        )

    def simulate_transaction(self, params: list[Any]) -> dict[str, Any]:
        raw = self.transaction_bytes(params)
        config = _config(params, 1)
        sig_verify = bool(config.get("sigVerify", False))
        replace = bool(config.get("replaceRecentBlockhash", False))
        if sig_verify and replace:
            raise RpcError(INVALID_PARAMS, "sigVerify may not be used with replaceRecentBlockhash")
        accounts = _accounts_call(lambda: simulation_accounts_config(config))
        _accounts_call(lambda: check_min_context_slot(config, self.chain.slot))
        try:
            sim = self.chain.simulate(raw, sig_verify=sig_verify, replace_blockhash=replace)
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        replacement = self._latest_blockhash_json() if replace else None
        value = _simulation_json(sim, replacement)
        if accounts is not None:
            keys, encoding = accounts
            value["accounts"] = _accounts_call(lambda: simulation_accounts(
                keys, encoding, sim.err is not None, sim.post, self.chain.account))
        return self._context(value)

    def get_multiple_accounts(self, params: list[Any]) -> dict[str, Any]:
        return self._context(_accounts_call(
            lambda: multiple_accounts(params, self.chain.account, self.chain.slot)))

    def get_signature_statuses(self, params: list[Any]) -> dict[str, Any]:
        signatures = _param(params, 0, list, "signatures")
        if len(signatures) > MAX_SIGNATURES:
            raise RpcError(INVALID_PARAMS, f"Too many inputs provided; max {MAX_SIGNATURES}")
        for signature in signatures:
            _check_signature(signature)
        return self._context(self.chain.signature_statuses(signatures))

    def _latest_blockhash_json(self) -> dict[str, Any]:
        blockhash, last_valid = self.chain.latest_blockhash()
        return {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}

    def get_latest_blockhash(self, _: list[Any]) -> dict[str, Any]:
        return self._context(self._latest_blockhash_json())

    def is_blockhash_valid(self, params: list[Any]) -> dict[str, Any]:
        try:
            blockhash = Hash.from_string(_param(params, 0, str, "blockhash"))
        except ValueError:
            raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None
        return self._context(self.chain.is_blockhash_valid(blockhash))

    def get_balance(self, params: list[Any]) -> dict[str, Any]:
        return self._context(self.chain.balance(_pubkey(params)))

    def get_account_info(self, params: list[Any]) -> dict[str, Any]:
        account = self.chain.account(_pubkey(params))
        if account is None:
            return self._context(None)
        encoding = _config(params, 1).get("encoding", "binary")
        return self._context(
            {
                "data": _account_data(account.data, encoding),
                "executable": account.executable,
                "lamports": account.lamports,
                "owner": str(account.owner),
                "rentEpoch": account.rent_epoch,
                "space": len(account.data),
            }
        )

    def get_token_account_balance(self, params: list[Any]) -> dict[str, Any]:
        pubkey = _pubkey(params)
        if self.chain.account(pubkey) is None:
            raise RpcError(INVALID_PARAMS, "Invalid param: could not find account")
        state = self.chain.token_state(pubkey)
        if state is None:
            raise RpcError(INVALID_PARAMS, "Invalid param: not a Token account")
        decimals = self.chain.mint_decimals(state.mint)
        ui_text = ui_amount(state.amount, decimals)
        return self._context(
            {
                "amount": str(state.amount),
                "decimals": decimals,
                "uiAmount": float(ui_text),
                "uiAmountString": ui_text,
            }
        )

    def get_token_accounts_by_owner(self, params: list[Any]) -> dict[str, Any]:
        """``[owner, {"mint"} | {"programId"}, {encoding}]``: base64 or jsonParsed."""
        owner = _pubkey(params)
        wanted = _param(params, 1, dict, "filter")
        if len(wanted) != 1 or not {"mint", "programId"} & wanted.keys():
            raise RpcError(INVALID_PARAMS, "Invalid params: filter must be mint or programId")
        encoding = _config(params, 2).get("encoding", "binary")
        found = []
        for pubkey in self.chain.token_accounts_of(owner):
            account, state = self.chain.account(pubkey), self.chain.token_state(pubkey)
            if account is None or state is None:
                continue
            if str(state.mint) != wanted.get("mint", str(state.mint)) or \
                    str(account.owner) != wanted.get("programId", str(account.owner)):
                continue
            data: Any = _account_data(account.data, encoding) if encoding != "jsonParsed" \
                else self._parsed_token(state)
            found.append({"pubkey": str(pubkey), "account": {
                "data": data, "executable": False, "lamports": account.lamports,
                "owner": str(account.owner), "rentEpoch": account.rent_epoch,
                "space": len(account.data)}})
        return self._context(found)

    def _parsed_token(self, state: Any) -> dict[str, Any]:
        decimals = self.chain.mint_decimals(state.mint)
        ui_text = ui_amount(state.amount, decimals)
        return {"program": "spl-token", "space": 165, "parsed": {"type": "account", "info": {
            "isNative": False, "mint": str(state.mint), "owner": str(state.owner),
            "state": "initialized", "tokenAmount": {
                "amount": str(state.amount), "decimals": decimals,
                "uiAmount": float(ui_text), "uiAmountString": ui_text}}}}


_T = TypeVar("_T")


def _accounts_call(read: Callable[[], _T]) -> _T:
    """Run an account read, turning its invalid-params error into an RPC error."""
    try:
        return read()
    except AccountsError as exc:
        raise RpcError(exc.code, exc.message, exc.data) from None


def _check_signature(text: Any) -> None:
    try:
        Signature.from_string(text)
    except (ValueError, TypeError):
        raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None


def _account_data(data: bytes, encoding: str) -> str | list[str]:
    """Account data in the requested encoding; jsonParsed falls back to base64,
    as mainnet does for accounts it cannot parse."""
    if encoding == "binary":
        return b58encode(data)
    if encoding == "base58":
        return [b58encode(data), "base58"]
    if encoding in ("base64", "jsonParsed"):
        return [base64.b64encode(data).decode(), "base64"]
    raise RpcError(INVALID_PARAMS, f"unsupported encoding: {encoding}")


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """One injected failure; ``remaining`` counts the requests it still spoils."""

    method: str
    kind: FaultKind
    remaining: int
    retry_after: float | None = None
    delay: float | None = None
    code: int = NODE_UNHEALTHY
    message: str = "Node is unhealthy"


class Faults:
    """Failures to inject, applied first-in first-out and consumed as they fire.

    Kinds: ``http_429`` (429 with Retry-After), ``http_500``, ``timeout``
    (the request is processed, then the answer is held back ``delay`` seconds,
    default 30: a send may land although the client gave up), ``reset`` (the
    connection is aborted unanswered and the request is not processed),
    ``rpc_error`` (a JSON-RPC error, ``code``/``message``), ``accept_no_land``
    (sendTransaction answers the signature but never executes the transaction).
    ``delay`` also postpones the other kinds' answers. ``method`` "*" matches
    every method.
    """

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()

    def add(
        self,
        method: str,
        kind: FaultKind,
        count: int = 1,
        retry_after: float | None = None,
        delay: float | None = None,
        *,
        code: int = NODE_UNHEALTHY,
        message: str = "Node is unhealthy",
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
        if kind == "accept_no_land" and method != "sendTransaction":
            raise ValueError("accept_no_land applies to sendTransaction only")
        if count < 1:
            raise ValueError("count must be >= 1")
        self._queue.append(Fault(method, kind, count, retry_after, delay, code, message))

    def take(self, method: str) -> Fault | None:
        """The oldest fault for ``method``, one use of it consumed."""
        for fault in self._queue:
            if fault.method in (method, "*"):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._queue.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class Received:
    """One sendTransaction as it arrived (``received_at`` is ``time.monotonic()``)."""

    raw: str
    path: str
    received_at: float
    fault: FaultKind | None


_encoder = msgspec.json.Encoder()


def _reply(request_id: Any, result: Any = None, error: RpcError | None = None) -> web.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is None:
        body["result"] = result
    else:
        body["error"] = error.to_json()
    return web.Response(body=_encoder.encode(body), content_type="application/json")


class SimRpcServer:
    """JSON-RPC over HTTP on 127.0.0.1 for a ``SimChain``, with a slot clock.

    ``slot_ms`` None (or 0) leaves the clock to the caller (``chain.advance``).
    The websocket (PubSub) API answers on the RPC port (``GET /``) and, where
    web3.js looks for it, on port + 1 (``ws_url``).
    """

    def __init__(
        self,
        chain: SimChain | None = None,
        *,
        slot_ms: float | None = 400,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.chain = chain or SimChain()
        self.methods = RpcMethods(self.chain)
        self.pubsub = PubSub(self.chain, self.methods.call)
        self.ws_url = ""
        self.faults = Faults()
        self.counts: Counter[str] = Counter()
        self.received: list[Received] = []
        self.slot_ms = slot_ms
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._clock: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self.url = ""

    async def start(self) -> str:
        """Listen and start the clock; returns the base URL."""
        app = web.Application()
        for path in RPC_PATHS:
            app.router.add_post(path, self._handle_rpc)
        app.router.add_get("/ping", self._handle_ping)
        app.router.add_get("/", self.pubsub.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        rpc_sock, ws_sock = bind_pair(self._host, self._port)
        for sock in (rpc_sock, ws_sock):
            await web.SockSite(self._runner, sock).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self.ws_url = f"ws://{host}:{port + 1}"
        self.pubsub.start()
        self._closing.clear()
        if self.slot_ms:
            self._clock = asyncio.create_task(self._run_clock(self.slot_ms / 1000))
        return self.url

    async def stop(self) -> None:
        """Stop the clock and the listener; held-back answers are released."""
        self._closing.set()
        await self.pubsub.stop()
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
            self._clock = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimRpcServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _run_clock(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            self.chain.advance()
            next_tick += interval

    async def _pause(self, seconds: float | None) -> None:
        """Sleep, but wake at once when the server stops."""
        if seconds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _handle_ping(self, _: web.Request) -> web.Response:
        self.counts["ping"] += 1
        return web.Response(text="pong")

    async def _handle_rpc(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        try:
            call = json.loads(await request.read())
        except ValueError:
            return _reply(None, error=RpcError(PARSE_ERROR, "Parse error"))
        if isinstance(call, list):
            return await self._handle_batch(request, call, received_at)
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            return _reply(None, error=RpcError(INVALID_REQUEST, "Invalid request"))
        method: str = call["method"]
        self.counts[method] += 1
        fault = self.faults.take(method)
        if method == "sendTransaction":
            self._log_send(call, request.path, received_at, fault)
        if fault is not None:
            return await self._faulty_answer(request, call, fault)
        return self._answer(call)

    async def _handle_batch(
        self, request: web.Request, calls: list[Any], received_at: float
    ) -> web.StreamResponse:
        """A JSON-RPC 2.0 batch: one answer per call that has an ``id``, in order; an
        empty batch is one Invalid request. A fault on any call's method applies: an
        HTTP-level one (429, 500, reset, timeout) to the whole batch, ``rpc_error`` and
        ``accept_no_land`` to that call."""
        if not calls:
            return _reply(None, error=RpcError(INVALID_REQUEST, "Invalid request"))
        answers: list[dict[str, Any]] = []
        whole_batch: Fault | None = None
        for call in calls:
            answer, fault = self._batch_answer(request, call, received_at)
            if fault is not None and fault.kind not in ("rpc_error", "accept_no_land"):
                whole_batch = whole_batch or fault
            if answer is not None:
                answers.append(answer)
        if whole_batch is not None:
            return await self._faulty_answer(request, {"id": None, "method": ""}, whole_batch)
        return web.Response(body=_encoder.encode(answers), content_type="application/json")

    def _batch_answer(
        self, request: web.Request, call: Any, received_at: float
    ) -> tuple[dict[str, Any] | None, Fault | None]:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            error = RpcError(INVALID_REQUEST, "Invalid request")
            return {"jsonrpc": "2.0", "error": error.to_json(), "id": None}, None
        method: str = call["method"]
        self.counts[method] += 1
        fault = self.faults.take(method)
        if method == "sendTransaction":
            self._log_send(call, request.path, received_at, fault)
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": call.get("id")}
        try:
            if fault is not None and fault.kind == "rpc_error":
                raise RpcError(fault.code, fault.message)
            if fault is not None and fault.kind == "accept_no_land":
                params = call.get("params")
                raw = RpcMethods.transaction_bytes(params if isinstance(params, list) else [])
                body["result"] = str(decode_transaction(raw).signatures[0])
            else:
                body["result"] = self.methods.call(method, call.get("params"))
        except RpcError as error:
            body["error"] = error.to_json()
        except ValueError as exc:
            body["error"] = RpcError(INVALID_PARAMS, str(exc)).to_json()
        return (body if "id" in call else None), fault

    def _log_send(
        self, call: dict[str, Any], path: str, received_at: float, fault: Fault | None
    ) -> None:
        params = call.get("params")
        raw = params[0] if isinstance(params, list) and params else ""
        raw = raw if isinstance(raw, str) else ""
        self.received.append(Received(raw, path, received_at, fault.kind if fault else None))

    def _answer(self, call: dict[str, Any]) -> web.Response:
        try:
            return _reply(call.get("id"), self.methods.call(call["method"], call.get("params")))
        except RpcError as error:
            return _reply(call.get("id"), error=error)

    async def _faulty_answer(
        self, request: web.Request, call: dict[str, Any], fault: Fault
    ) -> web.StreamResponse:
        if fault.kind == "timeout":
            answer = self._answer(call)
            await self._pause(DEFAULT_HANG_SEC if fault.delay is None else fault.delay)
            return answer
        await self._pause(fault.delay)
        if fault.kind == "reset":
            return _abort(request)
        if fault.kind == "http_429":
            retry_after = 1 if fault.retry_after is None else fault.retry_after
            return web.json_response(
                {"jsonrpc": "2.0", "id": call.get("id"),
                 "error": {"code": 429, "message": "Too many requests"}},
                status=429, headers={"Retry-After": _seconds_text(retry_after)},
            )
        if fault.kind == "http_500":
            return web.Response(status=500, text="Internal Server Error")
        if fault.kind == "rpc_error":
            return _reply(call.get("id"), error=RpcError(fault.code, fault.message))
        return self._accept_without_landing(call)

    def _accept_without_landing(self, call: dict[str, Any]) -> web.Response:
        params = call.get("params")
        try:
            raw = RpcMethods.transaction_bytes(params if isinstance(params, list) else [])
            signature = str(decode_transaction(raw).signatures[0])
        except RpcError as error:
            return _reply(call.get("id"), error=error)
        except ValueError as exc:
            return _reply(call.get("id"), error=RpcError(INVALID_PARAMS, str(exc)))
        return _reply(call.get("id"), signature)


def _abort(request: web.Request) -> web.StreamResponse:
    """Reset the connection (RST, no answer) and end the handler."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise asyncio.CancelledError


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
