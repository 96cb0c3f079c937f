"""What a new user sees when something is off: one clear line, never a traceback.

Each case runs the real CLI in a subprocess, as a user would from a shell.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from lasersell_bot.cli import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lasersell_bot", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          **kwargs)  # type: ignore[call-overload]


def test_journal_at_a_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "x.sqlite3"
    result = cli("journal", "--path", str(missing))
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"lasersell-bot: journal {missing}: no such file (a typo in the path, or no daemon "
        "has run with this journal.path yet)"]
    assert not missing.parent.exists()


def test_sim_on_a_busy_port_says_so_in_one_line_and_exits_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("sim", "--port", str(port))
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"lasersell-bot sim: cannot listen on 127.0.0.1:{port} (stream) and "
                           f"127.0.0.1:{port + 1} (rpc): ")
    assert "address already in use" in line.lower() and line.endswith("choose another --port")


def test_check_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`lasersell-bot check ... | head`: the reader leaves; no BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line is written
    try:
        result = subprocess.run(
            [sys.executable, "-m", "lasersell_bot", "check", "--config",
             str(tmp_path / "missing.toml")],
            cwd=REPO, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
            check=False)
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == EXIT_BROKEN_PIPE
