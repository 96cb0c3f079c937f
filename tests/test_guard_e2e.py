"""The guard through the real path: the daemon with its default config, the simulated
stream, and the LiteSVM-backed RPC answering the effects simulation. Router-shaped
exits and buys (fee vault, referrers, lookup tables) land; every hostile effect is
refused for its own reason and never reaches the chain."""

from __future__ import annotations

from typing import Any

import pytest
from solders.keypair import Keypair

from lasersell_bot.sim.txbuild import Hostile, TxShape
from lasersell_bot.sim.world import LAMPORTS_PER_SOL
from tests.e2ekit import Harness, until


@pytest.mark.parametrize("shape", ["router", "router_lookup_table", "fee_transfers", "direct"])
async def test_honest_exits_of_every_shape_are_verified_and_land(
        harness_factory: Any, shape: TxShape) -> None:
    h: Harness = await harness_factory()
    h.world.tx_shape = shape
    start = h.world.chain.balance(h.wallet)
    pid = await h.open()
    for pct in (10, 25, 31):
        await h.world.set_profit_pct(pid, pct)
    await h.closed(pid)
    assert h.world.chain.balance(h.wallet) > start
    metrics = h.daemon.metrics
    assert metrics.guard_verdicts.get("simulated", "accepted") == 1
    assert metrics.guard_refusals.values == {}
    if shape.startswith("router"):
        assert metrics.guard_unknown_programs.values  # the router's id is counted


async def mirroring(harness_factory: Any) -> tuple[Harness, str]:
    """A daemon that mirrors a watched wallet's buys with 0.25 SOL, once the server has
    its watch list."""
    watched = str(Keypair().pubkey())
    h: Harness = await harness_factory(
        mirror={"enabled": True},
        watch_wallets=[{"pubkey": watched, "auto_buy_sol": 0.25}])
    await until("the server has our watch wallets", lambda: bool(h.configures()))
    return h, watched


async def test_a_router_mirror_buy_is_verified_and_lands(harness_factory: Any) -> None:
    h, watched = await mirroring(harness_factory)
    mint = h.world.new_token(lamports_per_token=0.5)
    await h.world.mirror_buy(watched, mint, h.wallet, LAMPORTS_PER_SOL // 4)
    account = h.world.chain.token_account(h.wallet, mint)
    await until("the mirror buy lands", lambda: h.world.chain.token_balance(account) > 0)
    assert h.daemon.metrics.guard_verdicts.get("simulated", "accepted") == 1


@pytest.mark.parametrize(("variant", "reason"), [
    ("proceeds_elsewhere", "effects_proceeds_too_low"),
    ("delegate", "effects_delegate_added"),
    ("owner_change", "effects_owner_changed"),
    ("drain_holding", "effects_token_drained"),
    ("drain_sol", "effects_sol_drained"),
    ("output_not_ours", "effects_proceeds_too_low"),
])
async def test_each_theft_is_refused_for_its_reason_and_the_honest_retry_lands(
        harness_factory: Any, variant: Hostile, reason: str) -> None:
    h: Harness = await harness_factory()
    pid = await h.open()
    if variant == "drain_holding":
        other = h.world.new_token(lamports_per_token=0.5)
        h.world.chain.mint_to(h.wallet, other, 777)
    h.world.factory.arm_hostile_once(variant)
    for pct in (10, 25, 31):
        await h.world.set_profit_pct(pid, pct)
    await until(f"refused as {reason}",
                lambda: h.daemon.metrics.guard_refusals.get(reason) == 1)
    await h.closed(pid)  # the daemon asked again; the honest transaction landed
    await until("the honest sale is confirmed",
                lambda: h.daemon.metrics.confirmations.get("landed") == 1)
    assert h.daemon.metrics.guard_refusals.values == {(reason,): 1.0}


async def test_a_mirror_buy_whose_tokens_go_elsewhere_is_refused(harness_factory: Any) -> None:
    h, watched = await mirroring(harness_factory)
    mint = h.world.new_token(lamports_per_token=0.5)
    start = h.world.chain.balance(h.wallet)
    h.world.factory.arm_hostile_once("proceeds_elsewhere")
    await h.world.mirror_buy(watched, mint, h.wallet, LAMPORTS_PER_SOL // 4)
    await until("the buy is refused", lambda: h.daemon.metrics.guard_refusals.get(
        "effects_buy_receives_nothing") == 1)
    await until("mirror_buy_result false reaches the server",
                lambda: any(not r.success for _, r in h.world.stream.mirror_results))
    assert h.world.chain.balance(h.wallet) == start  # nothing was signed or spent


async def test_with_simulation_off_a_router_exit_is_refused_on_sight(
        harness_factory: Any) -> None:
    h: Harness = await harness_factory(guard={"simulate": "never"})
    pid = await h.open()
    for pct in (10, 25, 31):
        await h.world.set_profit_pct(pid, pct)
    await until("refused", lambda: h.daemon.metrics.guard_refusals.get(
        "program_not_allowed") >= 1)
    assert h.world.is_tracked(pid)
