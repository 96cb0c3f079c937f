"""A short soak of the real daemon against SimWorld under chaos (``tools/soak.py``)."""

from __future__ import annotations

from pathlib import Path

from tools.soak import Summary, run_soak, slope_per_min


async def test_short_soak_passes_every_check(tmp_path: Path) -> None:
    summary = await run_soak(duration=12.0, seed=11, directory=tmp_path)
    print("\n" + summary.table())
    assert summary.ok, summary.table()
    counts = summary.counts
    for kind in ("positions", "ladders", "mirror_buy_signals", "pnl_floods", "disconnects",
                 "rpc_faults", "hostile_sent", "exit_signals_sent", "swaps_landed"):
        assert counts[kind] > 0, kind
    assert counts["hostile_refused"] == counts["hostile_sent"]
    assert {c.name for c in summary.checks} == {
        "all positions sold out", "no exit signal lost", "no duplicate sale",
        "every mirror buy reported", "hostile signals refused", "RSS flat",
        "no task or fd leak", "rpc blackhole survived"}
    assert ", lost 0, " in summary.check("no exit signal lost").detail
    assert "switched in " in summary.check("rpc blackhole survived").detail


def test_rss_slope_is_least_squares_per_minute() -> None:
    ramp = [(float(t), 1_000 + 10 * t) for t in range(30)]
    assert abs(slope_per_min(ramp) - 600.0) < 1e-6
    assert slope_per_min([(0.0, 5), (1.0, 5), (2.0, 5)]) == 0.0
    assert slope_per_min([(0.0, 5)]) == 0.0


def test_summary_fails_when_any_check_fails() -> None:
    from tools.soak import Check

    summary = Summary(seconds=1.0, checks=[Check("a", True, ""), Check("b", False, "why")])
    assert not summary.ok
    assert "FAIL  b" in summary.table() and summary.table().endswith("SOAK FAILED")
