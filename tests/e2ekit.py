"""The real daemon in-process against a fresh simulator: the harness the end-to-end tests
share (``harness_factory`` in conftest.py starts one per call)."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import tomli_w
from solders.keypair import Keypair

from lasersell_bot import protocol
from lasersell_bot.config import load_config
from lasersell_bot.daemon import Daemon
from lasersell_bot.sim.world import LAMPORTS_PER_SOL, SimWorld
from lasersell_bot.wallet import Wallets
from tests.faultkit import write_config

TOKENS = 1_000_000_000
ENTRY = LAMPORTS_PER_SOL // 2


async def until(what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Harness:
    def __init__(self, world: SimWorld, daemon: Daemon, keypair: Keypair,
                 config_path: Path) -> None:
        self.world, self.daemon, self.keypair = world, daemon, keypair
        self.config_path = config_path

    def edit_config(self, section: str, **values: Any) -> None:
        data = tomllib.loads(self.config_path.read_text())
        data[section].update(values)
        self.config_path.write_text(tomli_w.dumps(data))

    @property
    def wallet(self) -> Any:
        return self.keypair.pubkey()

    async def open(self) -> int:
        opened = await self.world.open_position(self.wallet, TOKENS, ENTRY)
        await until("daemon tracks the position",
                    lambda: self.daemon.session.position(opened.position_id) is not None)
        return opened.position_id

    async def closed(self, position_id: int, timeout: float = 10.0) -> None:
        await until(f"position {position_id} sold and closed",
                    lambda: not self.world.is_tracked(position_id), timeout)

    def configures(self) -> list[protocol.Configure]:
        return [r.message for r in self.world.stream.received
                if isinstance(r.message, protocol.Configure)]


async def harness_factory_for(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[SimWorld, Daemon, asyncio.Task[int]]] = []

    async def start(**sections: Any) -> Harness:
        world = SimWorld(slot_ms=20)
        await world.start()
        keypair = world.new_wallet(sol=10)
        config_path = write_config(tmp_path, world, keypair, **sections)
        cfg = load_config(config_path)
        daemon = Daemon(cfg, Wallets.load(cfg.wallets), config_path=str(config_path))
        task = asyncio.create_task(daemon.run(install_signal_handlers=False))
        started.append((world, daemon, task))
        await until("daemon configured", lambda: daemon.stream.state.configured
                    and daemon.stream.state.connected)
        return Harness(world, daemon, keypair, config_path)

    yield start
    for world, daemon, task in started:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0
        await world.stop()
