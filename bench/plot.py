"""Latency distributions from ``latest.json`` as a PNG (runs in bench/.venv-plot).

Left: lasersell-bot vs the SDK baseline, idle and under the heaviest flood, as
empirical CDFs on a log time axis. Right: lasersell-bot idle vs each flood rate.

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

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
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
    for axis in (left, right):
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
