"""Latency distributions from ``latest.json`` as a PNG (runs in bench/.venv-plot).

Left: lasersell-bot vs the SDK baseline, idle and under the heaviest flood, as
empirical CDFs on a log time axis. Middle: lasersell-bot idle vs each flood rate.
Right (when the run has a tier phase): 20,000 positions idle and at the tier's full
PnL / PnL + liquidity rates, beside the 100-position idle curve.

Usage: python -m bench.plot latest.json latency.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def ecdf(values: list[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(values)
    n = len(ordered)
    return ordered, [(i + 1) / n for i in range(n)]


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as handle:
        results = json.load(handle)
    ours = results["ours"]["phases"]
    base = results.get("baseline", {}).get("phases", {})
    floods = [label for label in ours if label.startswith("flood_")]
    heaviest = floods[-1] if floods else None

    tier = results.get("tier", {}).get("phases", {})
    fig, axes = plt.subplots(1, 3 if tier else 2, figsize=(19 if tier else 13, 5),
                             sharey=True)
    left, right = axes[0], axes[1]
    series = [("lasersell-bot idle", ours.get("idle"), "tab:blue", "-")]
    if heaviest:
        series.append((f"lasersell-bot {heaviest}/s", ours[heaviest], "tab:blue", "--"))
    if base:
        series.append(("SDK idle", base.get("idle"), "tab:red", "-"))
        if heaviest and heaviest in base:
            series.append((f"SDK {heaviest}/s", base[heaviest], "tab:red", "--"))
    floor = results.get("floor", {}).get("latencies_us")
    if floor:
        series.append(("floor: sign + POST", {"latencies_us": floor}, "tab:gray", ":"))
    for name, phase, color, style in series:
        if phase and phase["latencies_us"]:
            xs, ys = ecdf(phase["latencies_us"])
            left.plot(xs, ys, color=color, linestyle=style, label=name)
    left.set_title("lasersell-bot vs vendor SDK: signal-to-wire")

    colors = ["tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
    for label, color in zip(["idle", *floods], colors, strict=False):
        phase = ours.get(label)
        if phase and phase["latencies_us"]:
            xs, ys = ecdf(phase["latencies_us"])
            right.plot(xs, ys, color=color, label=label.replace("_", " ") +
                       ("" if label == "idle" else " frames/s"))
    right.set_title("lasersell-bot: idle vs low-priority floods")
    if tier:
        third = axes[2]
        idle = ours.get("idle")
        if idle and idle["latencies_us"]:
            xs, ys = ecdf(idle["latencies_us"])
            third.plot(xs, ys, color="tab:blue", linestyle=":", label="100 positions idle")
        for (label, phase), color in zip(tier.items(), colors, strict=False):
            if phase["latencies_us"]:
                xs, ys = ecdf(phase["latencies_us"])
                rate = phase["flood"].get("rate") if phase["flood"] else None
                name = label.replace("tier_", "").replace("_", " ")
                third.plot(xs, ys, color=color,
                           label=f"{name} (sent {rate:,.0f}/s)" if rate else name)
        third.set_title(f"Advanced tier: {results['tier']['positions']:,} positions")
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlabel("signal-to-wire (µs, log scale)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
        axis.axhline(0.99, color="black", linewidth=0.5, alpha=0.5)
        axis.axhline(0.5, color="black", linewidth=0.5, alpha=0.5)
    left.set_ylabel("fraction of signals (CDF)")
    fig.suptitle(f"{results['machine']['nproc']} cores, {results['machine']['cpu_model']}, "
                 f"{results['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
