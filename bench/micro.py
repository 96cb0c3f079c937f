"""Hot-path micro costs per signal, measured with timeit (median of repeats, per call).

Ours (project venv): decode (msgspec tagged union), guard (base64 decode + Expectation +
``check_transaction``, as ``Executor._guard_and_sign``), sign (``sign_into_slot`` +
blockhash read, as ``executor._sign``), request-body encode (base64 + ``Target.body``),
and the whole inline path.

``--sdk`` (SDK venv): the vendor SDK's equivalents: decode (``server_message_from_text``),
sign (``sign_unsigned_tx``), request-body encode (``encode_signed_tx`` + the ``json.dumps``
its ``_post_json`` does). The SDK has no guard.

``--sync-dir DIR`` (ours): the cost of a durable intent record on DIR's disk: each of
``--sync-records`` records (the size of a signal plus its signed transaction) is written
to a preallocated intent log (``journal._IntentLog``) and ``fdatasync``ed, as
``Journal.record_attempt`` does before a send; ``intent_sync_p50``/``_p99`` are the sync
alone, ``intent_append_p50``/``_p99`` the whole append (write + sync).

Prints one JSON object of microseconds per call.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from solders.keypair import Keypair

from bench.common import POSITIONS, read_keypair_bytes


def per_call_us(fn: Callable[[], Any], budget_s: float) -> float:
    timer = timeit.Timer(fn)
    if budget_s < 0.1:  # --quick: just show it works
        return statistics.median(t / 50 for t in timer.repeat(3, 50)) * 1e6
    number, _ = timer.autorange()
    repeats = max(3, int(budget_s / max(1e-9, timer.timeit(number) / number) / number))
    repeats = min(repeats, 15)
    return statistics.median(t / number for t in timer.repeat(repeats, number)) * 1e6


def intent_sync(directory: str, records: int) -> dict[str, float]:
    """p50/p99 (µs) of the intent log's fdatasync, and of the whole durable append."""
    import time
    from pathlib import Path

    from lasersell_bot.journal import _IntentLog

    syncs: list[float] = []
    log = _IntentLog(Path(directory) / "micro-inflight", durable=True, on_sync=syncs.append)
    log.open()
    line = b'{"signal":{},"attempt":["' + b"A" * 2400 + b'"]}\n'
    appends: list[float] = []
    try:
        for index in range(records):
            started = time.perf_counter()
            assert log.append(line)
            appends.append(time.perf_counter() - started)
            if index % 4 == 3:  # the journal commits behind, and the log starts over
                log.committed(4)
    finally:
        log.close()
        (Path(directory) / "micro-inflight").unlink()
    return {
        "intent_sync_p50": _percentile(syncs, 50) * 1e6,
        "intent_sync_p99": _percentile(syncs, 99) * 1e6,
        "intent_append_p50": _percentile(appends, 50) * 1e6,
        "intent_append_p99": _percentile(appends, 99) * 1e6,
        "intent_sync_samples": float(len(syncs)),
    }


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def exit_frame(wallet: Keypair) -> tuple[bytes, str]:
    import msgspec

    from bench.txtemplate import TOKEN_PROGRAM, build_positions

    pos = build_positions(wallet.pubkey(), POSITIONS)[7]
    raw = pos.stamp(123)
    frame = msgspec.json.encode({
        "type": "exit_signal_with_tx", "session_id": 1, "position_id": pos.position_id,
        "wallet_pubkey": str(wallet.pubkey()), "mint": pos.mint,
        "token_account": pos.token_account, "token_program": str(TOKEN_PROGRAM),
        "position_tokens": 1_000_000_000, "profit_units": 50_000_000,
        "reason": "target_profit", "triggered_at_ms": 1_700_000_000_000,
        "market_context": {"market_type": "pump_fun", "pumpfun": {}},
        "unsigned_tx_b64": base64.b64encode(raw).decode()})
    return frame, pos.mint


def ours(budget: float) -> dict[str, float]:
    from lasersell_bot import protocol
    from lasersell_bot.config import GuardConfig
    from lasersell_bot.flows import sign as _sign
    from lasersell_bot.guard import Expectation, GuardPolicy, check_transaction
    from lasersell_bot.send import make_target

    wallet = Keypair()
    frame, _ = exit_frame(wallet)
    decoder = protocol.server_decoder()
    signal = decoder.decode(frame)
    assert isinstance(signal, protocol.ExitSignalWithTx)
    policy = GuardPolicy.from_config(GuardConfig())
    target = make_target("rpc", "http://127.0.0.1:1/")
    unsigned = base64.b64decode(signal.unsigned_tx_b64, validate=True)
    signed = _sign(unsigned, wallet)

    def guard() -> None:
        raw = base64.b64decode(signal.unsigned_tx_b64, validate=True)
        verdict = check_transaction(raw, policy, Expectation.exit(signal.wallet_pubkey,
                                                                  signal.mint))
        assert verdict.ok

    def inline() -> None:
        message = decoder.decode(frame)
        raw = base64.b64decode(message.unsigned_tx_b64, validate=True)  # type: ignore[union-attr]
        check_transaction(raw, policy, Expectation.exit(message.wallet_pubkey,  # type: ignore[union-attr]
                                                        message.mint))  # type: ignore[union-attr]
        done = _sign(raw, wallet)
        target.body(base64.b64encode(done.tx))

    return {
        "effects_own": effects_own_us(wallet, signal, budget),
        "decode": per_call_us(lambda: decoder.decode(frame), budget),
        "guard": per_call_us(guard, budget),
        "sign": per_call_us(lambda: _sign(unsigned, wallet), budget),
        "encode": per_call_us(lambda: target.body(base64.b64encode(signed.tx)), budget),
        "inline_total": per_call_us(inline, budget),
        "ed25519_sign_only": per_call_us(lambda: wallet.sign_message(unsigned[65:]), budget),
    }


def effects_own_us(wallet: Keypair, signal: Any, budget: float) -> float:
    """Our own time on the effects path, the RPC answering at once: what ``Vetter.vet``
    adds to the static check (request encode, reply decode, account parsing, the
    verdict), less the static check and the bare cost of running a coroutine."""
    import asyncio

    import msgspec
    from solders.pubkey import Pubkey

    from bench.effects_rpc import EffectsRpc
    from lasersell_bot.config import GuardConfig
    from lasersell_bot.guard import Expectation, check_transaction
    from lasersell_bot.guard.effects import ExitTerms
    from lasersell_bot.guard.policy import WSOL_ID
    from lasersell_bot.metrics import Metrics
    from lasersell_bot.rpcpool import _batch_results
    from lasersell_bot.simulate import Simulator
    from lasersell_bot.vet import Vetter

    effects = EffectsRpc({wallet.pubkey()})
    encode = msgspec.json.encode

    class AnsweringAtOnce:
        """The bench RPC's answers, produced in-process: only our own work is timed."""

        async def call(self, method: str, params: Any = ()) -> Any:
            raise AssertionError(method)

        async def batch(self, calls: Any) -> list[Any]:
            body = encode([{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                           for i, (m, p) in enumerate(calls)])
            params = msgspec.json.decode(body)
            reply = encode([{"jsonrpc": "2.0", "id": 0,
                             "result": effects.multiple_accounts(params[0]["params"])},
                            {"jsonrpc": "2.0", "id": 1,
                             "result": effects.simulate(params[1]["params"])}])
            return _batch_results(reply, len(calls))

    raw = base64.b64decode(signal.unsigned_tx_b64, validate=True)
    effects.learn(signal.unsigned_tx_b64)
    expect = Expectation.exit(signal.wallet_pubkey, signal.mint,
                              fee_allowance_lamports=10_000_000)
    vetter = Vetter(GuardConfig(), Simulator(AnsweringAtOnce(), 1.0), Metrics())
    terms = ExitTerms(wallet=wallet.pubkey(), mint=Pubkey.from_string(signal.mint),
                      quote_mint=WSOL_ID, sell_tokens=signal.position_tokens,
                      expected_quote=150_000_000, slippage_bps=1000, fee_bps=200,
                      min_fee_lamports=10_000_000, costs_lamports=20_000)
    loop = asyncio.new_event_loop()

    async def nothing() -> None:
        return None

    def vet() -> None:
        vetted = loop.run_until_complete(vetter.vet(raw, expect, lambda _: terms.promise()))
        assert vetted.path == "simulated"

    try:
        whole = per_call_us(vet, budget)
        bare = per_call_us(lambda: loop.run_until_complete(nothing()), budget)
        static = per_call_us(lambda: check_transaction(raw, vetter.policy, expect,
                                                       vetter._tables.as_mapping()), budget)
    finally:
        loop.close()
    return max(0.0, whole - bare - static)


def sdk(budget: float, frame_path: str, keypair_path: str) -> dict[str, float]:
    from lasersell_sdk.stream.proto import server_message_from_text
    from lasersell_sdk.tx import encode_signed_tx, sign_unsigned_tx

    wallet = Keypair.from_bytes(read_keypair_bytes(keypair_path))
    with open(frame_path, encoding="utf-8") as handle:
        frame = handle.read()
    message = server_message_from_text(frame)
    tx_b64 = message["unsigned_tx_b64"]  # type: ignore[typeddict-item]
    signed = sign_unsigned_tx(tx_b64, wallet)

    def encode() -> None:
        payload = {"jsonrpc": "2.0", "id": 1, "method": "sendTransaction",
                   "params": [encode_signed_tx(signed), {"encoding": "base64",
                              "skipPreflight": True, "maxRetries": 0,
                              "preflightCommitment": "processed"}]}
        json.dumps(payload, separators=(",", ":")).encode("utf-8")

    def inline() -> None:
        parsed = server_message_from_text(frame)
        done = sign_unsigned_tx(parsed["unsigned_tx_b64"], wallet)  # type: ignore[typeddict-item]
        payload = {"jsonrpc": "2.0", "id": 1, "method": "sendTransaction",
                   "params": [encode_signed_tx(done), {"encoding": "base64",
                              "skipPreflight": True, "maxRetries": 0,
                              "preflightCommitment": "processed"}]}
        json.dumps(payload, separators=(",", ":")).encode("utf-8")

    return {
        "decode": per_call_us(lambda: server_message_from_text(frame), budget),
        "sign": per_call_us(lambda: sign_unsigned_tx(tx_b64, wallet), budget),
        "encode": per_call_us(encode, budget),
        "inline_total": per_call_us(inline, budget),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdk", action="store_true")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per figure")
    parser.add_argument("--frame", help="exit frame file: written (ours), read (--sdk)")
    parser.add_argument("--keypair", help="wallet of that frame")
    parser.add_argument("--sync-dir", help="measure the intent-record sync on this disk")
    parser.add_argument("--sync-records", type=int, default=1000)
    args = parser.parse_args()
    if args.sdk:
        print(json.dumps(sdk(args.budget, args.frame, args.keypair)))
        return
    figures = ours(args.budget)
    if args.sync_dir:
        figures |= intent_sync(args.sync_dir, args.sync_records)
    if args.frame and args.keypair:
        wallet = Keypair.from_bytes(read_keypair_bytes(args.keypair))
        with open(args.frame, "wb") as handle:
            handle.write(exit_frame(wallet)[0])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
