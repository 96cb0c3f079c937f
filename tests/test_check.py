"""``lasersell-bot check`` against the simulators on 127.0.0.1 (LiteSVM RPC, stream server).

Every check runs over real sockets: JSON-RPC to ``SimRpcServer`` (also standing in for
Helius Sender at ``/fast`` and ``GET /ping``), registration and the websocket session
to ``SimStreamServer``. Failure cases: an unsafe key file, a closed RPC port, a hanging
RPC, a refused API key, and an ``error`` frame in answer to configure.
"""

from __future__ import annotations

import errno
import io
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import msgspec
import pytest
import structlog
from solders.keypair import Keypair

from lasersell_bot.check import run_check
from lasersell_bot.config import (
    SECRET_SOURCES,
    Config,
    RpcConfig,
    SendConfig,
    StrategyConfig,
    StreamConfig,
    WalletConfig,
    dump_config,
)
from lasersell_bot.neterrors import describe_connection_error
from lasersell_bot.protocol import Configure, Ping
from lasersell_bot.sim.chain import SimChain
from lasersell_bot.sim.rpc import SimRpcServer
from lasersell_bot.sim.standalone import config_lines
from lasersell_bot.sim.stream_server import SimStreamServer

API_KEY = "check-test-api-key-0001"
FAST_TIMEOUT = 0.5


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No secret from the environment; structlog as it was (run_check configures it)."""
    for source in SECRET_SOURCES:
        monkeypatch.delenv(source.env_var, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
async def rpc() -> AsyncIterator[SimRpcServer]:
    server = SimRpcServer(SimChain(), slot_ms=None)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def stream() -> AsyncIterator[SimStreamServer]:
    async with SimStreamServer(api_keys={API_KEY}) as server:
        yield server


@pytest.fixture
def keypair() -> Keypair:
    return Keypair()


def write_key(path: Path, keypair: Keypair, mode: int = 0o600) -> Path:
    path.write_text(str(list(bytes(keypair))))
    path.chmod(mode)
    return path


def write_config(tmp_path: Path, rpc_url: str, sim: SimStreamServer, keypair: Keypair,
                 /, **changes: Any) -> str:
    """A config pointing at the simulators; ``changes`` replace whole sections."""
    cfg = Config(
        stream=StreamConfig(url=sim.ws_url, api_url=sim.api_url, api_key=API_KEY),
        rpc=RpcConfig(url=rpc_url),
        wallets=[WalletConfig(keypair_path=str(write_key(tmp_path / "wallet.json", keypair)))],
        strategy=StrategyConfig(target_profit_pct=50, stop_loss_pct=20),
        send=SendConfig(mode="rpc", targets=["rpc", "helius_sender"],
                        helius_sender_url=f"{rpc_url}/fast"),
    )
    path = tmp_path / "lasersell-bot.toml"
    path.write_text(dump_config(msgspec.structs.replace(cfg, **changes)))
    path.chmod(0o600)
    return str(path)


async def check(config_path: str, timeout: float = FAST_TIMEOUT) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = await run_check(config_path, timeout=timeout, out=out)
    return code, out.getvalue().splitlines()


def line(lines: list[str], name: str) -> str:
    """The result line of the check called ``name``."""
    found = [text for text in lines if text[5:].startswith(f"{name}: ")]
    assert len(found) == 1, (name, lines)
    return found[0]


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port


# --------------------------------------------------------------------------- all good


async def test_every_check_passes_against_the_simulators(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair
) -> None:
    code, lines = await check(write_config(tmp_path, rpc.url, stream, keypair))

    assert code == 0, lines
    results, summary = lines[:-1], lines[-1]
    names = [text[5:].split(": ", 1)[0] for text in results]
    port = rpc.url.rsplit(":", 1)[1]
    assert names == ["config", "keypair[0]", "rpc getHealth", "rpc getLatestBlockhash",
                     f"target rpc(127.0.0.1:{port})",
                     f"target helius_sender(127.0.0.1:{port})", "registration", "stream"]
    assert all(text.startswith("OK   ") for text in results), lines
    assert str(keypair.pubkey()) in line(lines, "keypair[0]")
    assert "GET /ping: HTTP 200" in line(lines, f"target helius_sender(127.0.0.1:{port})")
    assert summary.startswith("all 8 checks passed")
    assert rpc.counts["getHealth"] == 1 and rpc.counts["getLatestBlockhash"] == 1
    assert rpc.counts["ping"] == 1
    assert stream.is_registered(str(keypair.pubkey()))


async def test_empty_api_key_passes_against_an_open_local_simulator(
    tmp_path: Path, rpc: SimRpcServer, keypair: Keypair
) -> None:
    """README: ``stream.api_key`` may stay empty for a loopback stream (the simulator)."""
    async with SimStreamServer() as open_sim:
        keyless = StreamConfig(url=open_sim.ws_url, api_url=open_sim.api_url)
        code, lines = await check(write_config(tmp_path, rpc.url, open_sim, keypair,
                                               stream=keyless))
        assert code == 0, lines
        assert line(lines, "registration").startswith("OK   ")
        assert line(lines, "stream").startswith("OK   ")
        assert open_sim.is_registered(str(keypair.pubkey()))


async def test_the_config_lines_sim_prints_pass_check_in_helius_sender_mode(
    tmp_path: Path, rpc: SimRpcServer, keypair: Keypair
) -> None:
    """``lasersell-bot sim`` prints config lines; with them Helius Sender mode works."""
    async with SimStreamServer() as open_sim:
        printed = config_lines(open_sim.ws_url, open_sim.api_url, rpc.url)
        key_path = write_key(tmp_path / "wallet.json", keypair)
        config = tmp_path / "sim.toml"
        config.write_text("\n".join([*printed, 'mode = "helius_sender"', "",
                                     "[[wallets]]", f'keypair_path = "{key_path}"', "",
                                     "[strategy]", "stop_loss_pct = 20.0", ""]))
        code, lines = await check(str(config))
    port = rpc.url.rsplit(":", 1)[1]
    assert code == 0, lines
    assert "GET /ping: HTTP 200" in line(lines, f"target helius_sender(127.0.0.1:{port})")
    assert f'helius_sender_url = "{rpc.url}/fast"' in printed[-1]


async def test_stream_gets_the_daemons_configure_and_a_close_frame(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair
) -> None:
    await check(write_config(tmp_path, rpc.url, stream, keypair))

    received = [r.message for r in stream.received]
    assert [type(m) for m in received] == [Configure, Ping]
    configure = received[0]
    assert isinstance(configure, Configure)
    assert configure.wallet_pubkeys == [str(keypair.pubkey())]
    assert configure.strategy.target_profit_pct == 50
    assert configure.strategy.stop_loss_pct == 20
    assert configure.send_mode == "rpc"
    await stream.wait_until(lambda: not stream.session_ids())


async def test_no_secret_is_printed(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair
) -> None:
    secret_rpc = f"{rpc.url}/?api-key=rpc-secret-in-query"
    path = write_config(tmp_path, secret_rpc, stream, keypair)
    _, lines = await check(path)
    text = "\n".join(lines)

    assert API_KEY not in text
    assert "rpc-secret-in-query" not in text
    assert str(list(bytes(keypair))).replace(" ", "") not in text.replace(" ", "")
    assert str(keypair) not in text
    assert str(keypair.pubkey()) in text


# --------------------------------------------------------------------------- failures


async def test_unsafe_key_file_fails_with_chmod_hint(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair
) -> None:
    path = write_config(tmp_path, rpc.url, stream, keypair)
    (tmp_path / "wallet.json").chmod(0o644)

    code, lines = await check(path)

    assert code == 1
    key_line = line(lines, "keypair[0]")
    assert key_line.startswith("FAIL ")
    assert "0644" in key_line and f"chmod 600 {tmp_path / 'wallet.json'}" in key_line
    assert line(lines, "registration").startswith("SKIP ")
    assert line(lines, "stream").startswith("SKIP ")
    assert line(lines, "rpc getHealth").startswith("OK   ")
    assert lines[-1].startswith("1 failed")


async def test_rpc_down_fails_the_rpc_steps_and_still_runs_the_stream(
    tmp_path: Path, stream: SimStreamServer, keypair: Keypair, closed_port: int
) -> None:
    down = f"http://127.0.0.1:{closed_port}"
    code, lines = await check(write_config(tmp_path, down, stream, keypair))

    assert code == 1
    refused = "connection refused (nothing listens on that port)"
    assert line(lines, "rpc getHealth") == (
        f"FAIL rpc getHealth: getHealth: {refused} (rpc(127.0.0.1:{closed_port}))")
    assert line(lines, "rpc getLatestBlockhash").startswith(
        f"FAIL rpc getLatestBlockhash: getLatestBlockhash: {refused}")
    assert line(lines, f"target rpc(127.0.0.1:{closed_port})").startswith("FAIL ")
    assert line(lines, f"target helius_sender(127.0.0.1:{closed_port})") == (
        f"FAIL target helius_sender(127.0.0.1:{closed_port}): GET /ping: {refused} "
        f"(helius_sender(127.0.0.1:{closed_port}))")
    assert line(lines, "stream").startswith("OK   ")


def _connector_error(cls: type[aiohttp.ClientConnectorError], os_error: OSError) -> Exception:
    key = SimpleNamespace(host="rpc.example", port=443, ssl=True)
    return cls(key, os_error)  # type: ignore[arg-type]


@pytest.mark.parametrize(("error", "words"), [
    (_connector_error(aiohttp.ClientConnectorError, ConnectionRefusedError(111, "refused")),
     "connection refused"),
    (_connector_error(aiohttp.ClientConnectorDNSError, socket.gaierror(-2, "not known")),
     "DNS failed"),
    (_connector_error(aiohttp.ClientConnectorError, TimeoutError()), "timed out"),
    (aiohttp.ConnectionTimeoutError(), "timed out"),
    (_connector_error(aiohttp.ClientConnectorError, OSError(errno.EHOSTUNREACH, "no route")),
     "host unreachable"),
    (aiohttp.ServerDisconnectedError(), "the server closed the connection"),
    (aiohttp.ClientPayloadError("cut"), "connection error: ClientPayloadError"),
])
def test_connection_errors_are_described_in_plain_words(error: Exception, words: str) -> None:
    assert describe_connection_error(error).startswith(words)


async def test_every_rpc_endpoint_is_checked_on_its_own(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair,
    closed_port: int
) -> None:
    """With rpc.urls, a dead second provider is reported even though the first answers."""
    down = f"http://127.0.0.1:{closed_port}"
    config = write_config(tmp_path, rpc.url, stream, keypair,
                          rpc=RpcConfig(urls=[rpc.url, down], send_to_all=True))
    code, lines = await check(config)

    assert code == 1
    assert line(lines, "rpc getHealth").startswith("OK   rpc getHealth: ok from rpc(")
    assert line(lines, "rpc_2 getHealth") == (
        f"FAIL rpc_2 getHealth: getHealth: connection refused (nothing listens on that port) "
        f"(rpc_2(127.0.0.1:{closed_port}))")
    assert line(lines, f"target rpc_2(127.0.0.1:{closed_port})") == (
        f"FAIL target rpc_2(127.0.0.1:{closed_port}): same endpoint as rpc_2 getHealth, "
        "which failed")


async def test_hanging_rpc_times_out_naming_the_step(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair
) -> None:
    rpc.faults.add("getHealth", "timeout", delay=5.0)
    code, lines = await check(write_config(tmp_path, rpc.url, stream, keypair), timeout=0.3)

    assert code == 1
    assert line(lines, "rpc getHealth") == "FAIL rpc getHealth: no answer within 0.3 s"
    assert line(lines, "rpc getLatestBlockhash").startswith("OK   ")


async def test_unhealthy_rpc_reports_the_rpc_error(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair
) -> None:
    rpc.faults.add("getHealth", "rpc_error")
    code, lines = await check(write_config(tmp_path, rpc.url, stream, keypair))

    assert code == 1
    assert "rpc -32005: Node is unhealthy" in line(lines, "rpc getHealth")


async def test_refused_api_key_fails_registration_and_stream(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair
) -> None:
    wrong = StreamConfig(url=stream.ws_url, api_url=stream.api_url, api_key="not-the-right-key")
    code, lines = await check(write_config(tmp_path, rpc.url, stream, keypair, stream=wrong))

    assert code == 1
    assert "invalid_api_key" in line(lines, "registration")
    stream_line = line(lines, "stream")
    assert stream_line.startswith("FAIL stream: websocket upgrade answered HTTP 401")
    assert "API key was refused" in stream_line
    assert "not-the-right-key" not in "\n".join(lines)


async def test_error_frame_fails_the_stream_with_its_code(
    tmp_path: Path, rpc: SimRpcServer, stream: SimStreamServer, keypair: Keypair
) -> None:
    unregistered = StreamConfig(url=stream.ws_url, api_url=stream.api_url, api_key=API_KEY,
                                register_wallets=False)
    path = write_config(tmp_path, rpc.url, stream, keypair, stream=unregistered)

    code, lines = await check(path)

    assert code == 1
    assert line(lines, "registration").startswith("SKIP registration: turned off")
    assert line(lines, "stream") == (
        f"FAIL stream: server error wallet_not_registered: wallet {keypair.pubkey()} "
        "is not registered")


async def test_bad_config_fails_and_skips_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[strategy]\nstop_loss_pct = -1\n')

    code, lines = await check(str(path))

    assert code == 1
    assert line(lines, "config") == (
        "FAIL config: strategy.stop_loss_pct: must be >= 0 (got -1)")
    assert [text[:4] for text in lines[1:-1]] == ["SKIP"] * 5


async def test_missing_config_file(tmp_path: Path) -> None:
    code, lines = await check(str(tmp_path / "nope.toml"))
    assert code == 1
    assert "config file not found" in line(lines, "config")


def test_cli_check_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lasersell_bot.cli import main

    assert main(["check", "--config", str(tmp_path / "nope.toml")]) == 1
    assert capsys.readouterr().out.startswith("FAIL config: ")
    assert os.path.exists(tmp_path) and not (tmp_path / "nope.toml").exists()


# ----------------------------------------------------------------------------- --preview-sell


async def preview(tmp_path: Path, **sections: Any) -> tuple[int, str, Any]:
    from lasersell_bot.sim.world import SimWorld
    from tests.faultkit import write_config as write_world_config

    world = SimWorld(slot_ms=None)
    await world.start()
    try:
        keypair = world.new_wallet(sol=5)
        await world.open_position(keypair.pubkey(), 1_000_000_000, 500_000_000)
        path = write_world_config(tmp_path, world, keypair, **sections)
        out = io.StringIO()
        code = await run_check(str(path), timeout=FAST_TIMEOUT * 4, out=out, preview=True)
        return code, out.getvalue(), world
    finally:
        await world.stop()


async def test_preview_sell_shows_a_router_sell_the_guard_would_sign(tmp_path: Path) -> None:
    code, text, world = await preview(tmp_path)
    line = next(x for x in text.splitlines() if "preview sell" in x)
    assert line.startswith("OK   preview sell: sell of 1000000000 "), text
    assert "would be signed" in line
    assert "LaserSe11Router" in text  # the router, judged by its effects
    assert "you would receive" in text
    assert code == 0
    assert world.rpc.counts["simulateTransaction"] == 1
    assert world.rpc.counts["sendTransaction"] == 0  # never signed, never sent


async def test_preview_sell_names_a_refusal_and_what_to_do(tmp_path: Path) -> None:
    code, text, _ = await preview(tmp_path, guard={"simulate": "never"})
    line = next(x for x in text.splitlines() if "preview sell" in x)
    assert line.startswith("FAIL preview sell: would be REFUSED (static): program_not_allowed")
    assert 'Use the default guard.simulate = "always"' in line
    assert code == 1


async def test_preview_sell_refuses_a_theft_on_its_effects(tmp_path: Path) -> None:
    from lasersell_bot.sim.world import SimWorld
    from tests.faultkit import write_config as write_world_config

    async with SimWorld(slot_ms=None) as world:
        keypair = world.new_wallet(sol=5)
        await world.open_position(keypair.pubkey(), 1_000_000_000, 500_000_000)
        path = write_world_config(tmp_path, world, keypair)
        world.factory.arm_hostile_once("owner_change")
        out = io.StringIO()
        code = await run_check(str(path), timeout=FAST_TIMEOUT * 4, out=out, preview=True)
    line = next(x for x in out.getvalue().splitlines() if "preview sell" in x)
    assert "would be REFUSED (simulated): effects_owner_changed" in line
    assert code == 1
