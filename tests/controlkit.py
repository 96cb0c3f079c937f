"""A daemon subprocess on the simulator with its control API on a known port, and
helpers to call the API and the CLI (shared by the API, CLI, browser and Telegram tests)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from lasersell_bot.sim.world import SimWorld
from tests.faultkit import free_port
from tests.test_daemon_process import (
    ENTRY,
    REPO,
    TOKENS,
    DaemonProcess,
    base_config,
    child_env,
    run_args,
    write_config,
    write_keypair,
)


class ControlSetup:
    """A started ``SimWorld``, a funded wallet, a config with the API on ``port``."""

    def __init__(self, tmp: Path, world: SimWorld) -> None:
        self.tmp, self.world = tmp, world
        self.keypair = world.new_wallet(sol=10)
        self.key_path = write_keypair(tmp / "wallet.json", self.keypair)
        self.port = free_port()
        self.token_path = tmp / "api-token"
        self.config_data = base_config(tmp, world, self.key_path)
        self.config_data["http"] = {"listen": f"127.0.0.1:{self.port}",
                                    "api_token_file": str(self.token_path)}
        self.config = write_config(tmp / "bot.toml", self.config_data)
        self.processes: list[DaemonProcess] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def wallet(self) -> Any:
        return self.keypair.pubkey()

    def configure(self, **sections: Mapping[str, Any]) -> Path:
        return write_config(self.config, self.config_data, **sections)

    async def start(self, **env: str) -> DaemonProcess:
        daemon = await DaemonProcess.start(run_args(self.config), child_env(None, **env))
        self.processes.append(daemon)
        await daemon.wait_event("ready", timeout=20)
        await daemon.wait_event("http_listening")
        return daemon

    def token(self) -> str:
        return self.token_path.read_text().strip()

    async def open_position(self, daemon: DaemonProcess) -> int:
        opened = await self.world.open_position(self.wallet, TOKENS, ENTRY)
        await daemon.wait_event("position_opened", position_id=opened.position_id)
        return opened.position_id

    async def api(self, method: str, path: str, body: Any = None, *,
                  token: str | None = "default") -> tuple[int, Any]:
        headers = {}
        if token == "default":
            token = self.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession() as http, http.request(
                method, self.url + path, json=body, headers=headers,
                timeout=aiohttp.ClientTimeout(10)) as response:
            return response.status, await response.json(content_type=None)

    async def cli(self, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
        """``python -m lasersell_bot ARGS --config CONFIG``: (exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lasersell_bot", *args, "--config", str(self.config),
            cwd=REPO, env={**child_env(None), **(env or {})}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


def token_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
