"""``lasersell-bot sim``'s market maker and command line, in process and as a process."""

from __future__ import annotations

import random

import aiohttp

from lasersell_bot.protocol import (
    ClosePosition,
    Configure,
    HelloOk,
    PositionClosed,
    PositionOpened,
    Strategy,
    encode,
    server_decoder,
)
from lasersell_bot.sim.standalone import MarketMaker
from lasersell_bot.sim.world import SimWorld

KEY = {"x-api-key": "test-key"}


async def _next_of(ws: aiohttp.ClientWebSocketResponse, kind: type) -> object:
    decoder = server_decoder()
    while True:
        message = decoder.decode((await ws.receive(timeout=3)).data)
        if isinstance(message, kind):
            return message


async def test_client_close_does_not_kill_the_market_maker() -> None:
    """A client's close_position ends the position on the server only; the maker's
    next step used to raise KeyError('no tracked position N') and end the process."""
    async with SimWorld(slot_ms=50) as world, aiohttp.ClientSession() as http:
        wallet = world.new_wallet()
        world.stream.register_wallet(str(wallet.pubkey()))
        maker = MarketMaker(world, positions_per_wallet=1, rng=random.Random(3))
        ws = await http.ws_connect(world.ws_url, headers=KEY)
        await ws.send_str(encode(Configure(wallet_pubkeys=[str(wallet.pubkey())],
                                             strategy=Strategy(500.0, 90.0))).decode())
        await _next_of(ws, HelloOk)
        await world.stream.wait_configured()
        await maker.step()
        opened = await _next_of(ws, PositionOpened)
        assert isinstance(opened, PositionOpened)
        await ws.send_str(encode(ClosePosition(position_id=opened.position_id)).decode())
        closed = await _next_of(ws, PositionClosed)
        assert isinstance(closed, PositionClosed) and closed.reason == "manual"
        for _ in range(3):
            await maker.step()
        assert not world.is_tracked(opened.position_id)
        replacement = await _next_of(ws, PositionOpened)
        assert isinstance(replacement, PositionOpened)
        assert replacement.position_id != opened.position_id
        await ws.close()
