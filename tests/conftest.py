"""Shared test set-up: every test starts with default logging; ``harness_factory`` starts
the real daemon against a fresh simulator (tests/e2ekit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from lasersell_bot.sim.world import SimWorld
from tests.controlkit import ControlSetup
from tests.e2ekit import harness_factory_for


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
async def harness_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    async for start in harness_factory_for(tmp_path):
        yield start


@pytest.fixture
async def world() -> AsyncIterator[SimWorld]:
    """A started simulator (stream, chain, RPC) on loopback; modules may define their own."""
    sim = SimWorld(slot_ms=20)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def ctl(tmp_path: Path) -> AsyncIterator[ControlSetup]:
    """A simulator plus the control-API test set-up; daemon processes are killed after."""
    world = SimWorld(slot_ms=20)
    await world.start()
    harness = ControlSetup(tmp_path, world)
    try:
        yield harness
    finally:
        for process in harness.processes:
            await process.kill()
        await world.stop()
