"""Shared parts of the conformance tests: ``lasersell-bot sim`` as a real process, the
vendor SDK installs (cached outside the test run), keypair files.

The Python SDK goes into ``bench/.venv-sdk`` (the benchmark's baseline venv, same
pinned requirement); the TypeScript SDK and @solana/web3.js go into
``~/.cache/lasersell-conformance/node`` (``LASERSELL_CONFORMANCE_CACHE`` overrides),
outside the repository. Both are stamped, so a re-run installs nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from solders.keypair import Keypair

REPO_DIR = Path(__file__).resolve().parents[2]
NODE_PACKAGES = ("@lasersell/lasersell-sdk@1.1.0", "@solana/web3.js@1.98.4")
SDK_LOCAL_STREAM = "ws://localhost:8082/v1/ws"
SDK_LOCAL_API = "http://localhost:8080"
_URL_LINE = re.compile(r"^(stream url|api url|rpc url|rpc ws url):\s+(\S+)")


def cache_dir() -> Path:
    override = os.environ.get("LASERSELL_CONFORMANCE_CACHE")
    base = Path(override) if override else Path.home() / ".cache" / "lasersell-conformance"
    base.mkdir(parents=True, exist_ok=True)
    return base


def python_sdk() -> Path:
    """The interpreter of the venv with lasersell-sdk (created once, then reused)."""
    from bench.run import SDK_REQUIREMENT, SDK_VENV, ensure_venv

    return ensure_venv(SDK_VENV, SDK_REQUIREMENT)


def node_packages() -> Path | None:
    """A directory whose node_modules has the TS SDK and web3.js; None without Node."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    root = cache_dir() / "node"
    stamp = root / ".installed"
    wanted = " ".join(NODE_PACKAGES)
    if stamp.exists() and stamp.read_text() == wanted:
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps(
        {"name": "lasersell-conformance", "private": True, "type": "module"}))
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                    "--ignore-scripts", *NODE_PACKAGES],
                   cwd=root, check=True, timeout=300, capture_output=True)
    stamp.write_text(wanted)
    return root


def write_keypair(path: Path, keypair: Keypair | None = None) -> Keypair:
    keypair = keypair or Keypair()
    path.write_text(json.dumps(list(bytes(keypair))))
    return keypair


@dataclass
class SimProcess:
    """``python -m lasersell_bot sim`` on free ports; its log is kept in ``log_path``."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    urls: dict[str, str]

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sim(workdir: Path, *extra: str, timeout: float = 20.0) -> SimProcess:
    log_path = workdir / "sim.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes to it; closed on exit
    argv = [sys.executable, "-m", "lasersell_bot", "sim", "--port", "0", "--api-port", "0",
            "--interval-ms", "100", "--slot-ms", "50", *extra]
    proc = subprocess.Popen(argv, cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT)
    sim = SimProcess(proc, log_path, {})
    deadline = time.monotonic() + timeout
    while len(sim.urls) < 4:
        if proc.poll() is not None or time.monotonic() > deadline:
            sim.stop()
            raise RuntimeError(f"lasersell-bot sim did not start:\n{sim.log}")
        for line in sim.log.splitlines():
            match = _URL_LINE.match(line)
            if match:
                sim.urls[match.group(1)] = match.group(2)
        time.sleep(0.05)
    return sim
