"""Shared test set-up: every test starts with default logging; ``harness_factory`` starts
the real daemon against a fresh simulator (tests/e2ekit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.e2ekit import harness_factory_for


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
async def harness_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    async for start in harness_factory_for(tmp_path):
        yield start
