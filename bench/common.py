"""Shared by the bench processes: constants, the wallet file, stats, child-process I/O.

Stdlib only (plus solders, which every bench venv has), so the SDK baseline client
can import it from its own virtualenv.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
API_KEY = "bench-api-key"
MEMO_PREFIX = b"lsb:"
MEMO_DIGITS = 9
POSITIONS = 100


def write_keypair(path: Path, secret: bytes) -> None:
    """A Solana CLI keypair file (JSON array of the 64 bytes), mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(list(secret), handle)


def read_keypair_bytes(path: Path | str) -> bytes:
    return bytes(json.loads(Path(path).read_text()))


def memo_seq(raw_tx: bytes) -> int | None:
    """The signal sequence number the bench wrote into the transaction's memo."""
    at = raw_tx.find(MEMO_PREFIX)
    if at < 0:
        return None
    digits = raw_tx[at + len(MEMO_PREFIX):at + len(MEMO_PREFIX) + MEMO_DIGITS]
    return int(digits) if digits.isdigit() else None


def message_offset(raw_tx: bytes) -> int:
    """Where the message starts in a wire transaction (after the signature array)."""
    count = raw_tx[0]
    if count >= 0x80:  # more than 127 signatures never happens in the bench
        raise ValueError("unexpected signature count")
    return 1 + 64 * count


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile of an already sorted sequence."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (len(sorted_values) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    frac = rank - low
    return float(sorted_values[low] * (1 - frac) + sorted_values[high] * frac)


def summarize(values_us: Sequence[float]) -> dict[str, float | int]:
    ordered = sorted(values_us)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": float(ordered[-1]) if ordered else math.nan,
        "mean": sum(ordered) / len(ordered) if ordered else math.nan,
    }


def announce(**fields: Any) -> None:
    """One JSON line on stdout for the parent (ports, readiness)."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def now_ns() -> int:
    """The clock every bench process stamps with (per-boot monotonic on Linux)."""
    return time.monotonic_ns()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
