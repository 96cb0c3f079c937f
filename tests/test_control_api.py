"""The control API and the CLI through the real path: ``lasersell-bot run`` as a
subprocess on the simulator, the API on its HTTP server, the CLI as another process."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from solders.keypair import Keypair

from lasersell_bot import protocol
from lasersell_bot.journal import JournalReader
from lasersell_bot.sim.world import LAMPORTS_PER_SOL
from tests.controlkit import ControlSetup, token_mode


async def _stop(daemon: Any) -> None:
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(15) == 0


async def test_every_api_route_needs_the_token_and_health_does_not(ctl: ControlSetup) -> None:
    daemon = await ctl.start()
    assert token_mode(ctl.token_path) == 0o600
    for method, path in (("GET", "/api/v1/state"), ("GET", "/api/v1/trades"),
                         ("GET", "/api/v1/events"), ("POST", "/api/v1/positions/1/sell"),
                         ("POST", "/api/v1/mirror/pause"), ("PUT", "/api/v1/strategy")):
        status, body = await ctl.api(method, path, token=None)
        assert status == 401, (method, path)
        assert body["error"]["code"] == "unauthorized"
        status, _ = await ctl.api(method, path, token="x" * 43)
        assert status == 401, (method, path)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(ctl.url + "/") as response:  # the dashboard: a login page
            assert response.status == 401
            assert "token" in (await response.text()).lower()
        async with http.get(ctl.url + "/static/app.js") as response:
            assert response.status == 401
        async with http.get(ctl.url + "/healthz") as response:
            assert response.status == 200
        async with http.get(ctl.url + "/metrics") as response:
            assert response.status == 200
        async with http.post(ctl.url + "/login", data={"token": "x" * 43}) as response:
            assert response.status == 401 and not response.cookies
        async with http.post(ctl.url + "/login", data={"token": ctl.token()},
                             allow_redirects=False) as response:
            assert response.status == 303
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with http.get(ctl.url + "/api/v1/state") as response:  # the cookie is enough
            assert response.status == 200
        async with http.post(ctl.url + "/api/v1/mirror/pause") as response:
            assert response.status == 403  # a cookie alone cannot change anything
        async with http.post(ctl.url + "/api/v1/mirror/pause",
                             headers={"X-Lasersell-Request": "1",
                                      "Origin": "http://evil.example"}) as response:
            assert response.status == 403
        async with http.post(ctl.url + "/api/v1/mirror/resume",
                             headers={"X-Lasersell-Request": "1"}) as response:
            assert response.status == 200
    assert ctl.token() not in "\n".join(daemon.stdout)  # never logged
    await _stop(daemon)


async def test_a_token_file_others_can_read_turns_the_api_off_not_the_daemon(
        ctl: ControlSetup) -> None:
    ctl.token_path.write_text("t" * 43 + "\n")
    ctl.token_path.chmod(0o644)
    daemon = await ctl.start()
    disabled = await daemon.wait_event("control_api_disabled")
    assert "readable by other users" in disabled["error"]
    status, body = await ctl.api("GET", "/api/v1/state", token="t" * 43)
    assert status == 503 and body["error"]["code"] == "api_disabled"
    assert (await ctl.api("GET", "/healthz", token=None))[0] == 200
    pid = await ctl.open_position(daemon)  # still trading
    await ctl.world.set_profit_pct(pid, 35)
    await daemon.wait_event("tx_confirmed", position_id=pid, state="landed")
    await _stop(daemon)


def test_api_stays_off_on_a_wildcard_address_without_expose_api(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from lasersell_bot.config import Config, HttpConfig
    from lasersell_bot.control.setup import control_plane

    cfg = Config(http=HttpConfig(listen="0.0.0.0:9464"))
    assert control_plane(SimpleNamespace(cfg=cfg)) is None  # type: ignore[arg-type]
    cfg = Config(http=HttpConfig(listen="127.0.0.1:9464", api=False))
    assert control_plane(SimpleNamespace(cfg=cfg)) is None  # type: ignore[arg-type]


async def test_status_shows_positions_and_sell_lands_an_exit(ctl: ControlSetup) -> None:
    daemon = await ctl.start()
    pid = await ctl.open_position(daemon)
    await ctl.world.set_profit_pct(pid, 12)

    async def position() -> Any:
        state = (await ctl.api("GET", "/api/v1/state"))[1]
        return next(p for p in state["positions"] if p["id"] == pid)

    for _ in range(100):  # the history is sampled twice a second; state is cached 1 s
        if (await position())["pnl_history"]:
            break
        await asyncio.sleep(0.05)
    assert (await position())["profit_pct"] == pytest.approx(12, abs=0.5)

    code, out, err = await ctl.cli("status", "--json")
    assert code == 0, err
    state = json.loads(out)
    assert [p["id"] for p in state["positions"]] == [pid]
    position = state["positions"][0]
    assert position["mint"] and position["status"] == "open"
    assert position["pnl_history"] and state["session"]["connected"] is True
    code, out, err = await ctl.cli("status")
    assert code == 0, err
    assert f"{pid:>6}" in out and "+12.0%" in out

    code, out, err = await ctl.cli("sell", "999999", "--yes")
    assert code == 1 and "no open position" in err
    status, body = await ctl.api("POST", "/api/v1/positions/999999/sell")
    assert status == 404 and body["error"]["field"] == "id"
    status, body = await ctl.api("POST", f"/api/v1/positions/{pid}/sell",
                                 {"slippage_bps": 99_999})
    assert status == 400 and body["error"]["field"] == "slippage_bps"
    status, body = await ctl.api("POST", f"/api/v1/positions/{pid}/sell", "[1]")
    assert status == 400 and body["error"]["field"] == "body"
    code, _, err = await ctl.cli("sell", str(pid))  # no terminal, no --yes: nothing sent
    assert code == 2 and "--yes" in err
    assert not [r for r in ctl.world.stream.received
                if isinstance(r.message, protocol.RequestExitSignal)]

    # The first two submissions hang and are dropped: the sell is in flight a while.
    ctl.world.rpc.faults.add("sendTransaction", "reset", count=2, delay=1.0)
    code, out, err = await ctl.cli("sell", str(pid), "--yes", "--slippage-bps", "1500")
    assert code == 0, err
    status, body = await ctl.api("POST", f"/api/v1/positions/{pid}/sell")
    assert status == 409, body  # the first request's sell may still land
    assert body["error"]["code"] in ("sell_requested", "sell_in_flight")
    await daemon.wait_event("tx_confirmed", position_id=pid, state="landed")
    requests = [r.message for r in ctl.world.stream.received
                if isinstance(r.message, protocol.RequestExitSignal)]
    assert [(m.position_id, m.slippage_bps) for m in requests] == [(pid, 1500)]
    await daemon.wait("the position to close", lambda: not ctl.world.is_tracked(pid))
    await _stop(daemon)
    rows = JournalReader(ctl.tmp / "journal.sqlite3").recent_trades(10)
    assert [(r.position_id, r.reason, r.state) for r in rows] == [(pid, "manual", "landed")]


async def test_pause_refuses_mirror_buys_and_resume_takes_them_again(ctl: ControlSetup) -> None:
    watched = str(Keypair().pubkey())
    ctl.config_data["watch_wallets"] = [{"pubkey": watched, "auto_buy_sol": 0.1}]
    ctl.configure(mirror={"enabled": True})
    daemon = await ctl.start()
    code, out, err = await ctl.cli("pause-buys")
    assert (code, out.strip()) == (0, "mirror buys paused"), err
    assert (await ctl.api("GET", "/api/v1/state"))[1]["mirror"]["paused"] is True

    paused_mint = ctl.world.new_token(lamports_per_token=0.5)
    await ctl.world.mirror_buy(watched, paused_mint, ctl.wallet, LAMPORTS_PER_SOL // 10)
    refused = await daemon.wait_event("guard_refused", reason="mirror_paused")
    assert refused["kind"] == "mirror_buy"
    account = ctl.world.chain.token_account(ctl.wallet, paused_mint)
    assert ctl.world.chain.token_balance(account) == 0

    # A pause survives a restart (a watchdog restart must not resume buying).
    await _stop(daemon)
    daemon = await ctl.start()
    assert (await ctl.api("GET", "/api/v1/state"))[1]["mirror"]["paused"] is True
    assert daemon.events("mirror_paused", source="saved")
    code, out, err = await ctl.cli("resume-buys")
    assert code == 0, err
    assert not (ctl.tmp / "journal.mirror-paused").exists()
    mint = ctl.world.new_token(lamports_per_token=0.5)
    await ctl.world.mirror_buy(watched, mint, ctl.wallet, LAMPORTS_PER_SOL // 10)
    account = ctl.world.chain.token_account(ctl.wallet, mint)
    await daemon.wait("the resumed mirror buy to land",
                      lambda: ctl.world.chain.token_balance(account) > 0, 15)
    assert daemon.events("guard_refused") == []
    await _stop(daemon)
    rows = JournalReader(ctl.tmp / "journal.sqlite3").recent_trades(10)
    assert [(r.kind, r.guard_reason) for r in rows][-1] == ("mirror_buy", "mirror_paused")


async def test_events_stream_and_strategy_changes(ctl: ControlSetup) -> None:
    daemon = await ctl.start()
    seen: list[tuple[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.get(
            ctl.url + "/api/v1/events",
            headers={"Authorization": f"Bearer {ctl.token()}"}) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")

        async def read() -> None:
            name = ""
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    seen.append((name, json.loads(line[6:])))

        reader = asyncio.create_task(read())
        try:
            await daemon.wait("the first state event", lambda: bool(seen))
            assert seen[0][0] == "state"
            pid = await ctl.open_position(daemon)
            await ctl.world.set_profit_pct(pid, 5)
            await daemon.wait("a pnl event", lambda: any(
                n == "pnl" and d["id"] == pid and d["profit_pct"] == 5
                for n, d in seen))
        finally:
            reader.cancel()

    status, body = await ctl.api("PUT", "/api/v1/strategy", {"stop_loss_pct": -3})
    assert status == 400 and body["error"]["field"] == "stop_loss_pct"
    status, body = await ctl.api("PUT", "/api/v1/strategy", {"take_profit": 3})
    assert status == 400 and body["error"]["field"] == "take_profit"
    status, body = await ctl.api("PUT", "/api/v1/strategy",
                                 {"target_profit_pct": 80, "stop_loss_pct": 25})
    assert status == 200 and body["differs_from_config"] is True
    await daemon.wait("update_strategy at the sim", lambda: any(
        isinstance(r.message, protocol.UpdateStrategy) for r in ctl.world.stream.received))
    state = (await ctl.api("GET", "/api/v1/state"))[1]
    assert state["strategy"]["source"] == "runtime"
    assert state["strategy"]["effective"]["target_profit_pct"] == 80
    status, body = await ctl.api("PUT", f"/api/v1/positions/{pid}/strategy",
                                 {"target_profit_pct": 500, "stop_loss_pct": 50})
    assert status == 200
    await daemon.wait("update_position_strategy at the sim", lambda: any(
        isinstance(r.message, protocol.UpdatePositionStrategy)
        for r in ctl.world.stream.received))
    status, body = await ctl.api("GET", "/api/v1/nothing")
    assert status == 404
    status, body = await ctl.api("GET", "/api/v1/trades?limit=abc")
    assert status == 400 and body["error"]["field"] == "limit"
    await _stop(daemon)


async def test_an_open_events_stream_does_not_hold_up_shutdown(ctl: ControlSetup) -> None:
    daemon = await ctl.start()
    async with aiohttp.ClientSession() as http, http.get(
            ctl.url + "/api/v1/events",
            headers={"Authorization": f"Bearer {ctl.token()}"}) as response:
        assert (await response.content.readline()).startswith(b"id: 0")
        started = asyncio.get_running_loop().time()
        daemon.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit(10) == 0
        assert asyncio.get_running_loop().time() - started < 5
        assert daemon.events("shutdown_complete")
