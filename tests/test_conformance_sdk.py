"""Conformance: the vendor's own clients against ``lasersell-bot sim``.

The Python SDK (``lasersell-sdk`` 1.1.0, in its own venv) and, where Node.js is
installed, the TypeScript SDK (``@lasersell/lasersell-sdk`` 1.1.0) with
@solana/web3.js (npm, cached outside the repo) run against the simulator as a real
process, through their public APIs: register, connect a ``StreamSession``, send every
client message type, sign and send every exit and mirror buy with the SDK's helpers,
confirm. Asserted: every frame parses in the SDK, every client message has its
documented effect, every exit and mirror buy lands. web3.js also runs
``sendAndConfirmTransaction`` (websocket confirmation on RPC port + 1), rent, fee,
airdrop and ``getTransaction`` against the RPC.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair

from tests.conformance.harness import (
    REPO_DIR,
    SDK_LOCAL_API,
    SDK_LOCAL_STREAM,
    SimProcess,
    node_packages,
    python_sdk,
    start_sim,
    write_keypair,
)

DRIVERS = REPO_DIR / "tests" / "conformance"
EVERY_SERVER_TYPE = {"hello_ok", "pong", "balance_update", "position_opened",
                     "position_closed", "exit_signal_with_tx", "pnl_update",
                     "liquidity_snapshot", "trade_tick", "mirror_buy_signal"}


@pytest.fixture(params=["docs_order", "sdk_order"])
def sim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimProcess]:
    extra = ("--hello-after-configure",) if request.param == "sdk_order" else ()
    process = start_sim(tmp_path, *extra)
    yield process
    process.stop()


def _wallets(tmp_path: Path) -> tuple[list[str], list[str]]:
    paths = [tmp_path / "w1.json", tmp_path / "w2.json"]
    for path in paths:
        write_keypair(path)
    watched = [str(Keypair().pubkey()), str(Keypair().pubkey())]
    return [str(p) for p in paths], watched


def _check_report(report: dict[str, Any], sim: SimProcess) -> None:
    assert "fatal" not in report, f"{report}\n--- sim log ---\n{sim.log[-4000:]}"
    assert report["parse_failures"] == [], report["parse_failures"]
    assert set(report["frames"]) >= EVERY_SERVER_TYPE, report["frames"]
    # The SDKs' deadline timers may ask for a position the server closed a moment ago
    # (its exit landed): the server answers position_not_found, as the real one does.
    assert [e for e in report["errors"] if not e.startswith("position_not_found")] == []
    assert report["exits"] and all(x["signature"] and x["err"] is None
                                   for x in report["exits"]), report["exits"]
    assert {m["success"] for m in report["mirrors"]} == {True}, report["mirrors"]
    assert len(report["mirrors"]) >= 2
    handle = report["checks"]["position_handle"]
    for field in ("token_price_quote", "market_cap_quote", "pool_liquidity_quote"):
        assert isinstance(handle[field], int) and handle[field] > 0, handle
    assert report["checks"]["close_reason"] == "manual"
    assert report["checks"]["deadline_exit_reasons"], "the SDK's deadline timer never fired"
    assert sim.alive(), sim.log[-4000:]
    log = sim.log
    assert log.count("sim_mirror_buy_result") >= 2 and "sim_mirror_result_unexpected" not in log
    assert "Traceback" not in log, log[-4000:]
    assert log.count("sim_error_sent") == len(report["errors"]), log[-4000:]


def test_python_sdk_against_the_simulator(sim: SimProcess, tmp_path: Path) -> None:
    python = python_sdk()
    keys, watched = _wallets(tmp_path)
    done = subprocess.run(
        [str(python), str(DRIVERS / "sdk_py_driver.py"), sim.urls["stream url"],
         sim.urls["api url"], sim.urls["rpc url"], *keys, *watched],
        capture_output=True, text=True, timeout=120, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-4000:]
    _check_report(json.loads(lines[-1]), sim)


def test_python_sdk_local_mode_addresses_are_the_vendor_local_layout() -> None:
    """``lasersell-bot sim --vendor-local`` serves where the SDK's local mode looks."""
    python = python_sdk()
    code = ("from lasersell_sdk.exit_api import LOCAL_EXIT_API_BASE_URL as a\n"
            "from lasersell_sdk.stream.client import LOCAL_STREAM_ENDPOINT as s\n"
            "print(a); print(s)")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.split() == [SDK_LOCAL_API, SDK_LOCAL_STREAM]
    from lasersell_bot.sim.standalone import VENDOR_LOCAL_API_PORT, VENDOR_LOCAL_STREAM_PORT

    assert SDK_LOCAL_API.endswith(f":{VENDOR_LOCAL_API_PORT}")
    assert f":{VENDOR_LOCAL_STREAM_PORT}/" in SDK_LOCAL_STREAM


def test_sim_serves_rest_on_the_api_port_too(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    process = start_sim(tmp_path)
    try:
        api, stream = process.urls["api url"], process.urls["stream url"]
        assert api.rsplit(":", 1)[1] not in stream
        for base in (api, stream.replace("ws://", "http://").removesuffix("/v1/ws")):
            request = urllib.request.Request(base + "/v1/wallets/register", b"{}",
                                             {"x-api-key": "k"})
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=5)
            assert info.value.code == 400  # reached the endpoint: body refused
    finally:
        process.stop()


def _node_or_skip() -> Path:
    root = node_packages()
    if root is None:
        pytest.skip("Node.js (node and npm) not found: the TypeScript SDK and web3.js "
                    "conformance tests need it")
    return root


def _run_node(root: Path, script: str, *args: str) -> dict[str, Any]:
    target = root / script
    target.write_text((DRIVERS / script).read_text())
    done = subprocess.run(["node", str(target), *args], cwd=root, capture_output=True,
                          text=True, timeout=120, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def test_typescript_sdk_against_the_simulator(sim: SimProcess, tmp_path: Path) -> None:
    root = _node_or_skip()
    keys, watched = _wallets(tmp_path)
    report = _run_node(root, "sdk_ts_driver.mjs", sim.urls["stream url"], sim.urls["api url"],
                       sim.urls["rpc url"], *keys, *watched)
    _check_report(report, sim)
    assert report["signature_notifications"] >= 1, "web3.js never heard from the websocket"


def test_web3js_against_the_simulator_rpc(tmp_path: Path) -> None:
    root = _node_or_skip()
    process = start_sim(tmp_path)
    try:
        report = _run_node(root, "web3_driver.mjs", process.urls["rpc url"])
    finally:
        process.stop()
    assert "fatal" not in report, report
    assert report["rent"] == report["expected_rent"] > 0
    assert report["fee"] == 5000
    assert report["airdrop_balance"] == 2 * 10**9
    assert report["transfer_balance"] == 1_000_000
    assert report["transaction_fee"] == 5000 and report["transaction_err"] is None
    assert report["version"]
    assert report["on_signature"] == {"err": None}
    assert report["parsed_keys"] == [[report["payer"], True, True], [report["dest"], False, True],
                                     ["11111111111111111111111111111111", False, False]]
    assert report["ws_url"].endswith(str(int(process.urls["rpc url"].rsplit(":", 1)[1]) + 1))


REFUSAL_PROBE = """
import asyncio, sys
from lasersell_sdk.stream.client import StreamClient, StreamClientError, StreamConfigure
from lasersell_sdk.stream.client import strategy_config_from_optional
from solders.keypair import Keypair

async def main() -> None:
    client = StreamClient("k").with_endpoint(sys.argv[1])
    configure = StreamConfigure(wallet_pubkeys=[str(Keypair().pubkey())],
                                strategy=strategy_config_from_optional(stop_loss_pct=10.0))
    try:
        connection = await asyncio.wait_for(client.connect(configure), 10)
    except StreamClientError as exc:
        print("refused:", exc)
        return
    first = await asyncio.wait_for(connection.recv(), 5)
    second = await asyncio.wait_for(connection.recv(), 5)
    print("connected:", first["type"], second["type"], second.get("code"))
    connection.close()

asyncio.run(main())
"""


@pytest.mark.parametrize(("flag", "expected"), [
    ((), "connected: hello_ok error wallet_not_registered"),
    (("--hello-after-configure",), "refused: protocol error: expected hello_ok after "
                                   "configure, got: error"),
])
def test_python_sdk_sees_an_unregistered_wallet_refused_in_either_order(
    tmp_path: Path, flag: tuple[str, ...], expected: str
) -> None:
    """Docs order: hello_ok, then the error as an event. SDK order: the error where
    hello_ok would be, which the SDK's connect() turns into a StreamClientError."""
    python = python_sdk()
    process = start_sim(tmp_path, *flag)
    try:
        done = subprocess.run([str(python), "-c", REFUSAL_PROBE, process.urls["stream url"]],
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        process.stop()
    assert done.stdout.strip() == expected, done.stdout + done.stderr[-2000:]
    assert "sim_session_refused" in process.log


MARKET_TYPES = ("pump_fun", "pump_swap", "meteora_dbc", "meteora_damm_v2",
                "raydium_launchpad", "raydium_cpmm")


def _every_frame_the_simulator_builds() -> list[str]:
    """Every server message type, built by the simulator's own code, every market type."""
    from lasersell_bot.protocol import (
        ErrorMsg,
        HelloOk,
        MirrorBuyFailed,
        MirrorBuySignal,
        MirrorWalletAutoDisabled,
        Pong,
        encode,
    )
    from lasersell_bot.sim.scenario import (
        ExitDecision,
        SimPosition,
        associated_token_account,
        market_context_for,
    )
    from lasersell_bot.sim.stream_server import DEFAULT_LIMITS

    wallet, mint, watched = (str(Keypair().pubkey()) for _ in range(3))
    frames = [HelloOk(session_id=1, server_time_ms=2, limits=DEFAULT_LIMITS),
              Pong(server_time_ms=3), ErrorMsg(code="wallet_not_registered", message="m"),
              MirrorBuyFailed(watched_wallet=watched, mint=mint, reason="no_route"),
              MirrorWalletAutoDisabled(watched_wallet=watched, reason="losses", loss_count=3)]
    for i, market in enumerate(MARKET_TYPES, start=1):
        context = market_context_for(market, mint, wallet)
        position = SimPosition(i, wallet, mint, associated_token_account(wallet, mint),
                               3_000_000_007, 123_456_789, context, 1_700_000_000_000,
                               slot=300_000_000 + i, mirror_source=watched if i % 2 else None)
        position.observe(150_000_001)
        frames += [position.balance_message(), position.opened_message(),
                   position.pnl_message(5), position.liquidity_message(6),
                   position.trade_message(7), position.closed_message("stop_loss"),
                   position.exit_message(1, ExitDecision("target_profit", 10, 0), "AAAA", 8),
                   MirrorBuySignal(session_id=1, watched_wallet=watched, mint=mint,
                                   user_wallet=wallet, amount_quote_units=5, input="SOL",
                                   unsigned_tx_b64="AAAA", slippage_bps=2500,
                                   send_mode="rpc", tip_lamports=1000,
                                   market_context=context)]
    return [encode(frame).decode() for frame in frames]


PY_PARSE_ALL = """
import json, sys
from lasersell_sdk.stream.proto import server_message_from_text
bad = []
for line in open(sys.argv[1]):
    try:
        server_message_from_text(line)
    except ValueError as exc:
        bad.append([line[:200], str(exc)])
print(json.dumps(bad))
"""


def test_every_frame_type_and_market_parses_in_the_python_sdk(tmp_path: Path) -> None:
    frames = _every_frame_the_simulator_builds()
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(frames) + "\n")
    done = subprocess.run([str(python_sdk()), "-c", PY_PARSE_ALL, str(path)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == []
    assert len(frames) == 5 + 8 * len(MARKET_TYPES)


def test_every_frame_type_and_market_parses_in_the_typescript_sdk(tmp_path: Path) -> None:
    root = _node_or_skip()
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(_every_frame_the_simulator_builds()) + "\n")
    report = _run_node(root, "parse_driver.mjs", str(path))
    assert report == {"bad": [], "parsed": 5 + 8 * len(MARKET_TYPES),
                      "local": [SDK_LOCAL_API, SDK_LOCAL_STREAM]}
