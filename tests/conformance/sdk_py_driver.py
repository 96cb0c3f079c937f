"""The vendor's Python SDK (lasersell-sdk) against ``lasersell-bot sim``, through its API.

Runs in the SDK's own virtualenv (no lasersell_bot import). Registers two wallets
(``prove_ownership`` + ``ExitApiClient.register_wallet``), connects a
``StreamSession`` and sends every client message type through ``StreamSender`` /
``StreamSession``; every exit and mirror buy is signed with ``sign_unsigned_tx`` and
sent with ``send_transaction(SendTargetRpc)``, then confirmed on the RPC. Every text
frame the SDK receives also goes through a recorder around the SDK's own parser
(``server_message_from_text``), because the SDK skips frames it cannot parse
silently. Prints one JSON report line; the pytest side asserts on it.

Usage: python sdk_py_driver.py STREAM_URL API_URL RPC_URL KEYPAIR1 KEYPAIR2 WATCHED1 WATCHED2
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lasersell_sdk.stream.client as sdk_client
from lasersell_sdk.exit_api import ExitApiClient, prove_ownership
from lasersell_sdk.stream.client import (
    StreamClient,
    StreamConfigure,
    strategy_config_from_optional,
)
from lasersell_sdk.stream.proto import server_message_from_text
from lasersell_sdk.stream.session import StreamEvent, StreamSession
from lasersell_sdk.tx import SendTargetRpc, send_transaction, sign_unsigned_tx
from solders.keypair import Keypair

API_KEY = "conformance-key"
PHASE_TIMEOUT_S = 8.0
MIRROR_LAMPORTS = 20_000_000
QUIET = strategy_config_from_optional(target_profit_pct=500.0, stop_loss_pct=95.0)
TRIGGER_HAPPY = strategy_config_from_optional(target_profit_pct=0.01, stop_loss_pct=0.01)

frames: Counter[str] = Counter()
parse_failures: list[dict[str, str]] = []


def _recording_parser(text: str) -> Any:
    try:
        message = server_message_from_text(text)
    except ValueError as exc:
        parse_failures.append({"frame": text[:300], "error": str(exc)})
        raise
    frames[str(message.get("type"))] += 1
    return message


# Observe, do not alter: the SDK's own parser, wrapped to record what it rejects.
sdk_client.server_message_from_text = _recording_parser  # type: ignore[assignment]


def rpc_call(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


async def confirm(url: str, signature: str, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = await asyncio.to_thread(rpc_call, url, "getSignatureStatuses",
                                         [[signature], {"searchTransactionHistory": True}])
        status = answer["result"]["value"][0]
        if status and status["confirmationStatus"] in ("confirmed", "finalized"):
            return dict(status)
        await asyncio.sleep(0.05)
    return {"err": "confirm timeout"}


class Driver:
    def __init__(self, session: StreamSession, wallets: dict[str, Keypair], rpc_url: str):
        self.session = session
        self.wallets = wallets
        self.target = SendTargetRpc(url=rpc_url)
        self.rpc_url = rpc_url
        self.events: list[StreamEvent] = []
        self.exits: list[dict[str, Any]] = []
        self.mirrors: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def pump_until(self, what: str, done: Callable[[], bool],
                         timeout: float = PHASE_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"phase {what!r}: not reached in {timeout}s")
            try:
                event = await asyncio.wait_for(self.session.recv(), min(remaining, 0.2))
            except TimeoutError:
                continue
            if event is None:
                raise ConnectionError(f"phase {what!r}: the SDK session ended")
            self._handle(event)

    def _handle(self, event: StreamEvent) -> None:
        self.events.append(event)
        kind = event.message.get("type")
        if kind == "exit_signal_with_tx":
            self._spawn(self._execute_exit(event.message))
        elif kind == "mirror_buy_signal":
            self._spawn(self._execute_mirror(event.message))
        elif kind == "error":
            self.errors.append(f"{event.message['code']}: {event.message['message']}")

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _sign_send_confirm(self, unsigned_b64: str, wallet: str) -> dict[str, Any]:
        signed = sign_unsigned_tx(unsigned_b64, self.wallets[wallet])
        signature = await send_transaction(self.target, signed)
        status = await confirm(self.rpc_url, signature)
        return {"signature": signature, "err": status.get("err")}

    async def _execute_exit(self, message: dict[str, Any]) -> None:
        try:
            outcome = await self._sign_send_confirm(message["unsigned_tx_b64"],
                                                    message["wallet_pubkey"])
        except Exception as exc:
            outcome = {"signature": None, "err": f"{type(exc).__name__}: {exc}"}
        self.exits.append({"position_id": message["position_id"],
                           "reason": message["reason"], **outcome})

    async def _execute_mirror(self, message: dict[str, Any]) -> None:
        try:
            outcome = await self._sign_send_confirm(message["unsigned_tx_b64"],
                                                    message["user_wallet"])
        except Exception as exc:
            outcome = {"signature": None, "err": f"{type(exc).__name__}: {exc}"}
        success = outcome["err"] is None
        self.session.sender().mirror_buy_result(message["mint"], success)
        self.mirrors.append({"mint": message["mint"], "watched": message["watched_wallet"],
                             "success": success, **outcome})

    # -------------------------------------------------------------- queries

    def of(self, kind: str) -> list[StreamEvent]:
        return [e for e in self.events if e.message.get("type") == kind]

    def closed(self, position_id: int) -> StreamEvent | None:
        found = [e for e in self.of("position_closed")
                 if e.message["position_id"] == position_id]
        return found[0] if found else None

    def landed(self, position_id: int) -> bool:
        return any(x["position_id"] == position_id and x["signature"] for x in self.exits)

    def open_ids(self, wallet: str) -> list[int]:
        return [h.position_id for h in self.session.positions() if h.wallet_pubkey == wallet]


async def run(argv: list[str]) -> dict[str, Any]:
    stream_url, api_url, rpc_url, key1, key2, watched1, watched2 = argv
    w1, w2 = (Keypair.from_bytes(bytes(json.loads(Path(k).read_text()))) for k in (key1, key2))
    wallets = {str(w1.pubkey()): w1, str(w2.pubkey()): w2}
    api = ExitApiClient.with_api_key(API_KEY).with_base_url(api_url)
    for keypair in (w1, w2):
        await api.register_wallet(prove_ownership(keypair))
    me = str(w1.pubkey())
    session = await StreamSession.connect(
        StreamClient(API_KEY).with_endpoint(stream_url),
        StreamConfigure(
            wallet_pubkeys=[me], strategy=QUIET, send_mode="rpc", tip_lamports=1000,
            watch_wallets=[{"pubkey": watched1,
                            "auto_buy": {"wallet_pubkey": me,
                                         "amount_quote_units": MIRROR_LAMPORTS}}],
            mirror_config={"max_positions_per_wallet": 0, "cooldown_sec": 0,
                           "buy_slippage_bps": 1500},
        ),
    )
    d = Driver(session, wallets, rpc_url)
    checks: dict[str, Any] = {}
    sender = session.sender()

    await d.pump_until("hello_ok", lambda: frames["hello_ok"] >= 1)
    await d.pump_until("two positions, pnl, liquidity, ticks", lambda: (
        len(d.open_ids(me)) >= 2 and bool(d.of("pnl_update")) and bool(d.of("trade_tick"))
        and bool(d.of("liquidity_snapshot")) and frames["balance_update"] >= 2))
    handle = d.session.positions()[0]
    checks["position_handle"] = {
        "token_price_quote": handle.token_price_quote,
        "market_cap_quote": handle.market_cap_quote,
        "pool_liquidity_quote": handle.pool_liquidity_quote,
        "token_decimals": handle.token_decimals, "market_type": handle.market_type,
    }

    sender.ping(int(time.time() * 1000))
    await d.pump_until("pong", lambda: frames["pong"] >= 1)

    first, second = sorted(d.open_ids(me))[:2]
    by_id = {h.position_id: h for h in d.session.positions()}
    d.session.request_exit_signal(by_id[first], slippage_bps=700)
    await d.pump_until("request_exit_signal lands", lambda: d.landed(first)
                       and d.closed(first) is not None)
    checks["requested_exit_reason"] = [x["reason"] for x in d.exits
                                       if x["position_id"] == first]

    d.session.close(by_id[second])
    await d.pump_until("close_position", lambda: d.closed(second) is not None)
    closed = d.closed(second)
    checks["close_reason"] = closed.message["reason"] if closed else None

    await d.pump_until("replacements", lambda: len(d.open_ids(me)) >= 2)
    third = max(d.open_ids(me))
    sender.update_position_strategy(third, TRIGGER_HAPPY)
    await d.pump_until("update_position_strategy fires", lambda: d.landed(third)
                       and d.closed(third) is not None)

    await d.pump_until("auto_buy mirror lands", lambda: any(
        m["watched"] == watched1 and m["signature"] for m in d.mirrors))
    mirror_mint = next(m["mint"] for m in d.mirrors if m["watched"] == watched1)
    await d.pump_until("mirrored position opened", lambda: any(
        e.message.get("mirror_source") == watched1 and e.message["mint"] == mirror_mint
        for e in d.of("position_opened")))

    sender.update_watch_wallets([
        {"pubkey": watched2, "auto_buy": {"wallet_pubkey": me,
                                          "amount_quote_units": MIRROR_LAMPORTS}}])
    await d.pump_until("update_watch_wallets: new mirror", lambda: any(
        m["watched"] == watched2 and m["signature"] for m in d.mirrors))

    two = str(w2.pubkey())
    sender.update_wallets([me, two])
    await d.pump_until("update_wallets: second wallet's positions",
                       lambda: len(d.open_ids(two)) >= 1)

    before = {e.message["position_id"] for e in d.of("exit_signal_with_tx")}
    d.session.update_strategy(TRIGGER_HAPPY)
    await d.pump_until("update_strategy fires on both wallets", lambda: {
        x["position_id"] for x in d.exits if x["signature"]} - before
        and {e.message["wallet_pubkey"] for e in d.of("exit_signal_with_tx")
             if e.message["position_id"] not in before} >= {me, two})

    # Deadline (client side): quiet strategy again; the SDK's timer requests exits.
    d.session.update_strategy(QUIET, deadline_timeout_sec=1)
    await d.pump_until("in-flight exits settled", lambda: not d.tasks)
    since = len(d.exits)
    await d.pump_until("deadline timer requests an exit", lambda: any(
        x["signature"] and x["reason"] == "manual" for x in d.exits[since:]))
    checks["deadline_exit_reasons"] = [x["reason"] for x in d.exits[since:]]

    await d.pump_until("every exit and mirror settled", lambda: not d.tasks, timeout=15)
    session.close()
    return {
        "frames": dict(frames), "parse_failures": parse_failures, "errors": d.errors,
        "exits": d.exits, "mirrors": d.mirrors, "checks": checks,
        "events": dict(Counter(e.type for e in d.events)),
    }


def main() -> int:
    try:
        report = asyncio.run(run(sys.argv[1:]))
    except Exception as exc:
        report = {"fatal": f"{type(exc).__name__}: {exc}", "frames": dict(frames),
                  "parse_failures": parse_failures}
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
