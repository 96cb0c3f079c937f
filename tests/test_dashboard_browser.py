"""The dashboard in headless Chromium against the daemon on the simulator: log in with
the token, see a position's PnL change live, click Sell, confirm, see the trade land.

The screenshot is saved in the test's temporary folder; with
``LASERSELL_UPDATE_SCREENSHOT=1`` it also replaces ``docs/dashboard.png`` (the README's).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from solders.keypair import Keypair

from lasersell_bot.journal import JournalReader
from lasersell_bot.sim.world import LAMPORTS_PER_SOL
from tests.cdp import Page, chromium, find_chromium
from tests.controlkit import ControlSetup

REPO = Path(__file__).resolve().parents[1]


def pnl_text(position_id: int) -> str:
    return (f"(document.querySelector('[data-position-id=\"{position_id}\"] .pnl-pct') "
            "|| {}).textContent")


async def see_pnl(page: Page, position_id: int, text: str) -> None:
    await page.wait_for(f"position {position_id} showing {text}",
                        f"{pnl_text(position_id)} === {json.dumps(text)}")


async def test_dashboard_shows_live_pnl_and_sells_with_confirmation(ctl: ControlSetup) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium not found and cannot be installed here (apt-get install chromium)")
    daemon = await ctl.start()
    kept = await ctl.open_position(daemon)
    sold = await ctl.open_position(daemon)
    async with chromium(binary, ctl.tmp / "profile") as page:
        await page.viewport(1280, 1000)
        await page.navigate(ctl.url + "/")  # no cookie yet: the sign-in page
        await page.wait_for("the sign-in form", "!!document.querySelector('#token')")
        await page.evaluate(f"document.querySelector('#token').value = {json.dumps(ctl.token())}")
        await page.click("button[type=submit]")  # POST /login sets the cookie
        await page.wait_for("the dashboard", "!!document.querySelector('#positions .position')")
        for pct in (4, -3, 9):
            await ctl.world.set_profit_pct(kept, pct)
            await asyncio.sleep(1.05)  # one history point per second
        await ctl.world.set_profit_pct(sold, 6)
        await see_pnl(page, sold, "+6.0%")
        await ctl.world.set_profit_pct(sold, 14)  # the change arrives live
        await see_pnl(page, sold, "+14.0%")
        await see_pnl(page, kept, "+9.0%")

        await page.click(f'[data-position-id="{sold}"] .sell')
        await page.wait_for("the confirmation", "document.querySelector('#confirm').open")
        text = await page.evaluate("document.querySelector('#confirm-text').textContent")
        assert f"#{sold}" in text and "+14.0%" in text
        assert not [r for r in ctl.world.stream.received if "RequestExit" in type(
            r.message).__name__]  # nothing is sent before the confirmation
        await page.click("#confirm-yes")
        await daemon.wait_event("tx_confirmed", position_id=sold, state="landed")
        await page.wait_for("the landed trade in the table",
                            "[...document.querySelectorAll('#trades tbody tr')].some("
                            "r => r.textContent.includes('#" + str(sold) + "') && "
                            "r.querySelector('.state.landed'))")
        await page.wait_for("the sold position to leave the list",
                            f"!document.querySelector('[data-position-id=\"{sold}\"]')")
        await page.wait_for("the realised PnL", "document.querySelector('#realized')"
                            ".textContent.startsWith('+')")
        shot = await page.screenshot(ctl.tmp / "dashboard.png")
        await page.viewport(390, 844, mobile=True)  # a phone: still one readable column
        await see_pnl(page, kept, "+9.0%")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width}px wide on a 390px phone"
        await page.screenshot(ctl.tmp / "dashboard-phone.png")
        assert page.console == []
    assert shot.stat().st_size > 10_000
    if os.environ.get("LASERSELL_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, REPO / "docs" / "dashboard.png")
    events = daemon.events("manual_sell_requested")
    assert [(e["position_id"], e["source"]) for e in events] == [(sold, "dashboard")]
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(15) == 0
    rows = JournalReader(ctl.tmp / "journal.sqlite3").recent_trades(10)
    assert [(r.position_id, r.reason, r.state) for r in rows] == [(sold, "manual", "landed")]


async def test_dashboard_pauses_mirror_buys_and_shows_the_refusal(ctl: ControlSetup) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium not found and cannot be installed here (apt-get install chromium)")
    watched = str(Keypair().pubkey())
    ctl.config_data["watch_wallets"] = [{"pubkey": watched, "auto_buy_sol": 0.1}]
    ctl.configure(mirror={"enabled": True})
    daemon = await ctl.start()
    async with chromium(binary, ctl.tmp / "profile") as page:
        await page.viewport(390, 844, mobile=True)
        await page.navigate(f"{ctl.url}/?token={ctl.token()}")
        await page.wait_for("the mirror card", "document.querySelector('#mirror-state')"
                            ".textContent === 'on'")
        await page.click("#mirror-toggle")
        await page.wait_for("the confirmation", "document.querySelector('#confirm').open")
        await page.click("#confirm-yes")
        await page.wait_for("mirror buys paused", "document.querySelector('#mirror-state')"
                            ".textContent === 'paused'")
        mint = ctl.world.new_token(lamports_per_token=0.5)
        await ctl.world.mirror_buy(watched, mint, ctl.wallet, LAMPORTS_PER_SOL // 10)
        await daemon.wait_event("guard_refused", reason="mirror_paused")
        await page.wait_for("the refusal with its reason", "document.querySelector('#refusals')"
                            ".textContent.includes('mirror_paused')")
        await page.wait_for("the mirror signal in the list", "document.querySelector("
                            "'#mirror-recent').textContent.includes('buy signal')")
        assert page.console == []
    assert [e["source"] for e in daemon.events("mirror_paused")] == ["dashboard"]
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(15) == 0
