"""``python -m lasersell_bot run`` with per-signal timestamps at the hot path's seams.

Used by ``bench.run`` for the "where the time goes" table. Wraps (does not change)
``Executor._start_exit`` and ``Submitter.send_now`` to record, per signal sequence
number: the reader's receive time (the ``received_ns`` the stream layer stamped),
executor start, and the start and end of the synchronous first write. All stamps are
``perf_counter_ns`` (CLOCK_MONOTONIC on Linux, the clock the bench servers use).
Written as JSON to ``$LSB_TRACE_OUT`` when the daemon exits. The wrappers cost a few
microseconds per signal (a base64 decode to find the sequence number).

Usage: LSB_TRACE_OUT=trace.json python -m bench.trace_daemon ... run --config bot.toml
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import sys
import time
from typing import Any

from bench.common import memo_seq
from lasersell_bot import executor, send

_now = time.perf_counter_ns
_stamps: dict[int, list[int]] = {}  # seq -> [received, start, write_start, write_end]


def _install() -> None:
    start_exit = executor.Executor._start_exit
    send_now = send.Submitter.send_now

    def traced_start_exit(self: Any, signal: Any, attempt_no: int) -> None:
        started = _now()
        received = self._signal_ids.get(id(signal), (0, 0))[1]
        seq = memo_seq(base64.b64decode(signal.unsigned_tx_b64))
        if seq is not None:
            _stamps[seq] = [received, started, 0, 0]
        start_exit(self, signal, attempt_no)

    def traced_send_now(self: Any, signed_tx: bytes) -> Any:
        began = _now()
        answer = send_now(self, signed_tx)
        ended = _now()
        seq = memo_seq(signed_tx)
        if seq in _stamps and not _stamps[seq][2]:
            _stamps[seq][2:] = [began, ended]
        return answer

    executor.Executor._start_exit = traced_start_exit  # type: ignore[method-assign]
    send.Submitter.send_now = traced_send_now  # type: ignore[method-assign]


def _dump() -> None:
    with open(os.environ["LSB_TRACE_OUT"], "w", encoding="utf-8") as handle:
        json.dump(_stamps, handle)


def main() -> int:
    _install()
    atexit.register(_dump)
    from lasersell_bot.cli import main as cli_main

    args = sys.argv[1:]
    return cli_main(args[args.index("run"):])


if __name__ == "__main__":
    sys.exit(main())
