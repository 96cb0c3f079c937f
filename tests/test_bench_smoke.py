"""The benchmark harness end to end, tiny: real processes, real signatures, no timing asserts.

Runs ``python -m bench.run --quick --no-baseline --no-plot`` (50 signals idle and 50
under a 10k frames/s flood, a short memory phase, one startup, and a small tier phase:
20 wallets x 5 positions), then checks that the results have every figure the report
needs and that every signal's transaction reached the bench RPC server signed by the
bot's wallet (each of the tier's wallets in turn), unaltered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import REPO_DIR


def test_quick_bench_produces_results_and_every_tx_is_signed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--no-baseline", "--no-plot",
         "--out", str(tmp_path)],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "latest.json").read_text())
    report = (tmp_path / "latest.md").read_text()
    assert "| signal-to-wire idle p50 |" in report and "physical floor" in report

    ours = results["ours"]
    phases = ours["phases"]
    assert set(phases) == {"idle", "sparse", "flood_10000"}
    for label, phase in phases.items():
        assert phase["signals"] == (30 if label == "sparse" else 50), label
        assert phase["missing"] == 0 and phase["invalid"] == 0, (label, phase)
        assert len(phase["latencies_us"]) == phase["signals"], label
        assert set(phase["summary"]) >= {"p50", "p90", "p99", "max"}
        assert all(v > 0 for v in phase["latencies_us"]), "received after written"
    assert phases["flood_10000"]["flood"]["written"] > 0
    assert phases["flood_10000"]["client_ingest"]["ingested"] > 0

    static = results["ours_static"]["phases"]
    assert set(static) == {"idle", "sparse"}
    assert all(p["missing"] == 0 and p["invalid"] == 0 for p in static.values())
    assert results["rpc_batch"]["count"] == results["plan"]["floor_count"]
    assert "| added by effects verification at p50 (sparse, end to end) |" in report
    assert "| our own time on the effects path" in report

    memory = ours["memory_kib"]
    assert {"after_start", "after_frames", "after_signals", "bytes_per_frame"} <= set(memory)
    assert len(ours["startup_ms"]) == 1 and ours["startup_ms"][0] > 0
    assert results["floor"]["count"] == results["plan"]["floor_count"]
    assert {"decode", "guard", "sign", "encode", "inline_total"} <= set(results["micro"]["ours"])
    assert results["machine"]["nproc"] and results["command"].startswith("python -m bench.run")

    tier = results["tier"]
    assert "## Advanced tier: 20 wallets, 100 positions" in report
    assert tier["startup_ms"] > 0 and tier["absorb_s"] is not None
    assert set(tier["phases"]) == {"tier_idle", "tier_pnl_2000"}
    for label, phase in tier["phases"].items():
        assert phase["missing"] == 0 and phase["invalid"] == 0, (label, phase)
        assert len(phase["latencies_us"]) == 20, label
    ingest = tier["phases"]["tier_pnl_2000"]["client_ingest"]
    assert ingest["decoded"] + ingest["coalesced"] > 0
    assert tier["gc"]["wall"] and tier["rss_kib"]["with_positions"] > 0
