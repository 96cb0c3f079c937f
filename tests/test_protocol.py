"""Wire codec: every message of the vendor docs round-trips; bad frames never raise."""

from __future__ import annotations

import json

import msgspec
import pytest

from lasersell_bot import protocol as p

SERVER_EXAMPLES = {
    "hello_ok": {
        "type": "hello_ok", "session_id": 42, "server_time_ms": 1706000000000,
        "limits": {"hi_capacity": 1024, "pnl_flush_ms": 1000, "max_positions_per_session": 100,
                   "max_wallets_per_session": 10, "max_positions_per_wallet": 20,
                   "max_sessions_per_api_key": 5},
    },
    "pong": {"type": "pong", "server_time_ms": 1706000000001},
    "error": {"type": "error", "code": "invalid_strategy",
              "message": "target_profit_pct must be >= 0"},
    "balance_update": {
        "type": "balance_update", "wallet_pubkey": "Abc123...", "mint": "TokenMint...",
        "token_account": "ATA...", "token_program": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
        "tokens": 5000000, "slot": 280000000,
    },
    "position_opened": {
        "type": "position_opened", "position_id": 1, "wallet_pubkey": "Abc123...",
        "mint": "TokenMint...", "token_account": "ATA...",
        "token_program": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "tokens": 5000000,
        "entry_quote_units": 100000000,
        "market_context": {"market_type": "pump_swap", "pumpswap": {"pool": "PoolAddress..."}},
        "slot": 280000000,
    },
    "position_closed": {
        "type": "position_closed", "position_id": 1, "wallet_pubkey": "Abc123...",
        "mint": "TokenMint...", "token_account": "ATA...", "reason": "stop_loss",
        "slot": 280000100,
    },
    "exit_signal_with_tx": {
        "type": "exit_signal_with_tx", "session_id": 42, "position_id": 1,
        "wallet_pubkey": "Abc123...", "mint": "TokenMint...", "token_account": "ATA...",
        "token_program": "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
        "position_tokens": 5000000, "profit_units": 50000000, "reason": "target_profit",
        "triggered_at_ms": 1706000005000,
        "market_context": {"market_type": "pump_swap", "pumpswap": {"pool": "PoolAddress..."}},
        "unsigned_tx_b64": "AQAAAA==",
    },
    "mirror_buy_signal": {
        "type": "mirror_buy_signal", "session_id": 42, "watched_wallet": "Watched...",
        "mint": "TokenMint...", "user_wallet": "YourWallet...", "amount_quote_units": 100000000,
        "input": "SOL", "unsigned_tx_b64": "AQAAAA==", "slippage_bps": 2500,
        "send_mode": "helius_sender", "tip_lamports": 1000,
        "market_context": {"market_type": "pump_swap", "pumpswap": {"pool": "PoolAddress..."}},
    },
    "mirror_buy_failed": {"type": "mirror_buy_failed", "watched_wallet": "Watched...",
                          "mint": "TokenMint...", "reason": "insufficient_balance"},
    "mirror_wallet_auto_disabled": {
        "type": "mirror_wallet_auto_disabled", "watched_wallet": "Watched...",
        "reason": "consecutive_loss_limit_reached", "loss_count": 3,
    },
    "pnl_update": {"type": "pnl_update", "position_id": 1, "profit_units": 25000000,
                   "proceeds_units": 125000000, "server_time_ms": 1706000003000},
    "liquidity_snapshot": {
        "type": "liquidity_snapshot", "position_id": 1,
        "bands": [{"slippage_bps": 100, "max_tokens": 500000, "coverage_pct": 10.0},
                  {"slippage_bps": 1000, "max_tokens": 5000000, "coverage_pct": 100.0}],
        "liquidity_trend": "stable", "server_time_ms": 1706000003000,
    },
    "trade_tick": {
        "type": "trade_tick", "position_id": 1, "time_ms": 1706000005000, "side": "buy",
        "token_amount": 500000, "quote_amount": 25000000, "price_quote": 50000,
        "maker": "TraderWallet...", "tx_signature": "5abc...", "watched": True,
    },
}

CLIENT_EXAMPLES = {
    "ping": {"type": "ping", "client_time_ms": 1706000000000},
    "configure": {
        "type": "configure", "wallet_pubkeys": ["WalletPubkey1...", "WalletPubkey2..."],
        "strategy": {"target_profit_pct": 5.0, "stop_loss_pct": 1.5, "trailing_stop_pct": 3.0},
        "send_mode": "helius_sender", "tip_lamports": 1000,
        "watch_wallets": [
            {"pubkey": "Watch1..."},
            {"pubkey": "Watch2...",
             "auto_buy": {"wallet_pubkey": "YourBuyWallet...", "amount_quote_units": 100000000}},
        ],
        "mirror_config": {"max_positions_per_wallet": 2, "cooldown_sec": 30,
                          "skip_creator_tokens": False, "max_active_sol": 5.0,
                          "buy_slippage_bps": 2500, "min_liquidity_sol": None,
                          "max_entry_drift_pct": None, "max_consecutive_losses": None},
    },
    "update_strategy": {"type": "update_strategy", "strategy": {
        "target_profit_pct": 15.0, "stop_loss_pct": 3.0, "trailing_stop_pct": 7.0,
        "sell_on_graduation": True}},
    "close_position": {"type": "close_position", "position_id": 1},
    "request_exit_signal": {"type": "request_exit_signal", "token_account": "ATA...",
                            "slippage_bps": 3000},
    "update_wallets": {"type": "update_wallets", "wallet_pubkeys": ["W1...", "W3..."]},
    "update_position_strategy": {"type": "update_position_strategy", "position_id": 1,
                                 "strategy": {"target_profit_pct": 200.0, "stop_loss_pct": 5.0}},
    "update_watch_wallets": {"type": "update_watch_wallets",
                             "watch_wallets": [{"pubkey": "Watch1...", "mirror_sell": True}]},
    "mirror_buy_result": {"type": "mirror_buy_result", "mint": "TokenMint...", "success": True},
}


def _roundtrip(decoder: p.Decoder, example: dict[str, object]) -> object:
    message = decoder.decode(json.dumps(example).encode())
    assert not isinstance(message, p.MalformedFrame | p.UnknownMessage), message
    again = decoder.decode(p.encode(message))  # type: ignore[arg-type]
    assert again == message
    return message


@pytest.mark.parametrize("tag", sorted(SERVER_EXAMPLES))
def test_server_message_roundtrip(tag: str) -> None:
    message = _roundtrip(p.server_decoder(), SERVER_EXAMPLES[tag])
    assert type(message).__struct_config__.tag == tag  # type: ignore[attr-defined]
    encoded = json.loads(p.encode(message))  # type: ignore[arg-type]
    for key, value in SERVER_EXAMPLES[tag].items():
        assert encoded[key] == value, key


@pytest.mark.parametrize("tag", sorted(CLIENT_EXAMPLES))
def test_client_message_roundtrip(tag: str) -> None:
    message = _roundtrip(p.client_decoder(), CLIENT_EXAMPLES[tag])
    encoded = json.loads(p.encode(message))  # type: ignore[arg-type]
    assert encoded == CLIENT_EXAMPLES[tag]


def test_every_message_type_has_an_example() -> None:
    server_tags = {c.__struct_config__.tag for c in p.AnyServerMessage.__args__}  # type: ignore[attr-defined]
    client_tags = {c.__struct_config__.tag for c in p.AnyClientMessage.__args__}  # type: ignore[attr-defined]
    assert server_tags == set(SERVER_EXAMPLES)
    assert client_tags == set(CLIENT_EXAMPLES)


def test_extras_beyond_the_docs_are_decoded() -> None:
    frame = dict(SERVER_EXAMPLES["exit_signal_with_tx"], sell_tokens=2500000, level_index=1,
                 mirror_source="Watched...", watched=True)
    message = p.server_decoder().decode(json.dumps(frame))
    assert isinstance(message, p.ExitSignalWithTx)
    assert (message.sell_tokens, message.level_index, message.watched) == (2500000, 1, True)
    assert message.mirror_source == "Watched..."


def test_u64_and_i64_stay_exact() -> None:
    frame = (b'{"type":"pnl_update","position_id":18446744073709551615,'
             b'"profit_units":-9223372036854775808,"proceeds_units":18446744073709551615,'
             b'"server_time_ms":1}')
    message = p.server_decoder().decode(frame)
    assert isinstance(message, p.PnlUpdate)
    assert message.position_id == 2**64 - 1
    assert message.profit_units == -(2**63)
    assert b"18446744073709551615" in p.encode(message)


def test_quote_prices_are_exact_u64_integers() -> None:
    """``*_quote`` fields are u64 quote atomic units (vendor: Go ``*uint64``, Python
    ``int``), not floats: a price past 2**53 keeps every digit."""
    big = 2**64 - 1
    frames = [
        {"type": "pnl_update", "position_id": 1, "profit_units": 0, "proceeds_units": 0,
         "server_time_ms": 1, "token_price_quote": big, "market_cap_quote": big},
        dict(SERVER_EXAMPLES["trade_tick"], price_quote=big),
        dict(SERVER_EXAMPLES["position_opened"], token_price_quote=big, market_cap_quote=big,
             pool_liquidity_quote=big),
    ]
    for frame in frames:
        message = p.server_decoder().decode(json.dumps(frame))
        values = [getattr(message, f) for f in ("token_price_quote", "market_cap_quote",
                                                "pool_liquidity_quote", "price_quote")
                  if hasattr(message, f)]
        assert values and all(type(v) is int and v == big for v in values), message
        assert str(big).encode() in p.encode(message)


def test_unknown_keys_are_ignored() -> None:
    frame = dict(SERVER_EXAMPLES["pong"], brand_new_field={"nested": [1, 2]})
    assert p.server_decoder().decode(json.dumps(frame)) == p.Pong(server_time_ms=1706000000001)


def test_unknown_type_is_reported_not_raised() -> None:
    assert p.server_decoder().decode(b'{"type":"funding_rate","x":1}') == p.UnknownMessage(
        type="funding_rate")


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (b'{"type":"pong","server_time_ms":"soon"}', "$.server_time_ms"),
        (b'{"type":"position_opened","position_id":1}', "wallet_pubkey"),
        (b'{"type":"liquidity_snapshot","position_id":1,"bands":[{"slippage_bps":"x"}],'
         b'"liquidity_trend":"stable","server_time_ms":1}', "$.bands[0]"),
        (b'{"type": "pong"', "truncated"),
        (b"[]", "object"),
        (b'{"no_type":1}', "type"),
        (b"\xff\xfe", "malformed"),
    ],
)
def test_malformed_frames_name_the_problem(frame: bytes, needle: str) -> None:
    result = p.server_decoder().decode(frame)
    assert isinstance(result, p.MalformedFrame)
    assert needle in result.error


def test_client_encoding_omits_unset_optionals_but_keeps_required_zeros() -> None:
    configure = p.Configure(wallet_pubkeys=["W"], strategy=p.Strategy(
        target_profit_pct=0.0, stop_loss_pct=10.0,
        take_profit_levels=[p.TakeProfitLevel(profit_pct=20.0, sell_pct=50.0)]))
    assert json.loads(p.encode(configure)) == {
        "type": "configure", "wallet_pubkeys": ["W"],
        "strategy": {"target_profit_pct": 0.0, "stop_loss_pct": 10.0,
                     "take_profit_levels": [{"profit_pct": 20.0, "sell_pct": 50.0}]},
    }


def test_strategy_has_exit_accepts_ladder_only_and_deadline_only() -> None:
    ladder = p.Strategy(target_profit_pct=0, stop_loss_pct=0,
                        take_profit_levels=[p.TakeProfitLevel(profit_pct=10, sell_pct=50)])
    nothing = p.Strategy(target_profit_pct=0, stop_loss_pct=0)
    assert p.strategy_has_exit(ladder)
    assert p.strategy_has_exit(nothing, deadline_timeout_sec=30)
    assert not p.strategy_has_exit(nothing)


def test_decoder_does_not_raise_on_arbitrary_bytes() -> None:
    decoder = p.server_decoder()
    for frame in (b"", b"null", b"1e999999", b'{"type":null}', b'{"type":1}',
                  b'{"type":"hello_ok","session_id":-1e400}', b"{" * 10000):
        assert isinstance(decoder.decode(frame), p.MalformedFrame | p.UnknownMessage)


def test_market_context_siblings() -> None:
    ctx = msgspec.json.decode(
        b'{"market_type":"raydium_cpmm","raydium_cpmm":{"pool":"P","config":"C",'
        b'"quote_mint":"Q","user_quote_account":"U"}}', type=p.MarketContext)
    assert ctx.raydium_cpmm is not None and ctx.raydium_cpmm.user_quote_account == "U"
    assert ctx.pumpswap is None
