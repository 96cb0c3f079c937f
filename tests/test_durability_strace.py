"""The intent record of a sale is durable before its first byte leaves: the daemon runs
against the simulator under ``strace -f``, and the trace must show the ``fdatasync`` of
``<journal>-inflight`` returning before any write of the signed transaction to a TCP
socket. Skips (with the reason) where strace is missing or cannot attach."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lasersell_bot.sim.world import SimWorld
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

TRACED = "fdatasync,fsync,sendto,write,writev"
_PID = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+")


def strace_or_skip() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.skip("strace is not installed (Debian: apt-get install -y strace)")
    probe = subprocess.run([path, "-f", "-o", "/dev/null", "true"], capture_output=True,
                           text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot attach here: {probe.stderr.strip()[:200]}")
    return path


def intent_sync_returns(lines: list[str], intent_name: str) -> list[int]:
    """Indexes of the lines where an fdatasync of the intent log returned 0 (a whole
    call, or the ``resumed`` half of one that another thread interrupted)."""
    found: list[int] = []
    waiting: set[str] = set()
    for index, line in enumerate(lines):
        match = _PID.match(line)
        pid = match.group(1) if match else ""
        body = line[match.end():] if match else line
        if body.startswith("fdatasync(") and intent_name in body:
            if "<unfinished ...>" in body:
                waiting.add(pid)
            elif body.rstrip().endswith("= 0"):
                found.append(index)
        elif body.startswith("<... fdatasync resumed>") and pid in waiting:
            waiting.discard(pid)
            if body.rstrip().endswith("= 0"):
                found.append(index)
    return found


def socket_writes_of(lines: list[str], needle: str) -> list[int]:
    """Indexes of write/writev/sendto calls on a TCP socket whose buffer has ``needle``."""
    calls = ("write(", "writev(", "sendto(")
    return [index for index, line in enumerate(lines)
            if any(call in line for call in calls) and "TCP" in line and needle in line]


def traced_child(strace_pid: int) -> int:
    """The daemon: strace's only child process."""
    children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


async def test_intent_record_is_synced_before_the_transaction_is_sent(
        tmp_path: Path, world: SimWorld) -> None:
    strace = strace_or_skip()
    keypair = world.new_wallet(sol=10)
    config = write_config(tmp_path / "bot.toml",
                          base_config(tmp_path, world, write_keypair(tmp_path / "w.json",
                                                                     keypair)))
    trace = tmp_path / "strace.txt"
    proc = await asyncio.create_subprocess_exec(
        strace, "-f", "-yy", "-s", "65536", "-e", f"trace={TRACED}", "-o", str(trace),
        sys.executable, *run_args(config), cwd=REPO, env=child_env(None),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    daemon = DaemonProcess(proc)
    traced_pid: int | None = None
    try:
        await daemon.wait_event("ready", timeout=60)
        traced_pid = traced_child(proc.pid)
        opened = await world.open_position(keypair.pubkey(), TOKENS, ENTRY)
        await daemon.wait_event("position_opened", position_id=opened.position_id, timeout=30)
        await world.set_profit_pct(opened.position_id, 31)
        await daemon.wait_event("tx_confirmed", position_id=opened.position_id, timeout=60)
        os.kill(traced_pid, signal.SIGTERM)  # strace itself would detach and leave it running
        assert await daemon.wait_exit(60) == 0  # strace exits with the daemon's code
    finally:
        if traced_pid is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(traced_pid, signal.SIGKILL)
        await daemon.kill()

    journal = tmp_path / "journal.sqlite3"
    with sqlite3.connect(journal) as conn:
        (signed_b64,), = conn.execute("SELECT signed_tx_b64 FROM attempts").fetchall()
    assert base64.b64decode(signed_b64)
    lines = trace.read_text(errors="replace").splitlines()
    syncs = intent_sync_returns(lines, f"{journal.name}-inflight>")
    sends = socket_writes_of(lines, signed_b64[:120])
    assert syncs, "no fdatasync of the intent log in the trace"
    assert sends, "the signed transaction was never written to a socket in the trace"
    assert syncs[0] < sends[0], (
        "the transaction was sent before its intent record was synced:\n"
        + "\n".join(line[:160] for line in lines[min(sends[0], syncs[0]):
                                                 max(sends[0], syncs[0]) + 1]))
