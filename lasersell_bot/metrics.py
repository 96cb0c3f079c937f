"""In-process counters, gauges and histograms, rendered as Prometheus text.

One ``Metrics`` object is created by the daemon and handed to every component;
updating a metric is a dict update, cheap enough for the hot path.
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Iterator
from typing import Any

LabelValues = tuple[str, ...]


def _label_text(names: tuple[str, ...], values: LabelValues) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Counter:
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.values: dict[LabelValues, float] = {}

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        self.values[label_values] = self.values.get(label_values, 0.0) + amount

    def get(self, *label_values: str) -> float:
        return self.values.get(label_values, 0.0)

    def samples(self) -> Iterator[str]:
        # A copy: the journal's writer thread may add a key meanwhile.
        for key, value in sorted(list(self.values.items())):
            yield f"{self.name}{_label_text(self.labels, key)} {_number(value)}"


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, *label_values: str) -> None:
        self.values[label_values] = value


class Histogram:
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def samples(self) -> Iterator[str]:
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            yield f'{self.name}_bucket{{le="{_number(bound)}"}} {running}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{self.name}_sum {_number(self.total)}"
        yield f"{self.name}_count {self.count}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    """Every metric the daemon exports, as attributes."""

    def __init__(self) -> None:
        p = "lasersell_bot_"
        self.frames = Counter(p + "frames_total", "Stream frames received by type.", ("type",))
        self.frames_malformed = Counter(p + "frames_malformed_total",
                                        "Frames that failed to decode.")
        self.frames_unknown = Counter(p + "frames_unknown_total", "Frames of an unknown type.")
        self.low_lane_dropped = Counter(p + "low_lane_dropped_total",
                                        "Low-priority frames dropped.")
        self.low_lane_coalesced = Counter(
            p + "low_lane_coalesced_total",
            "Low-priority frames replaced by a newer one for the same type and position "
            "before they were read.")
        self.reconnects = Counter(p + "reconnects_total", "Stream reconnect attempts.")
        self.stream_connected = Gauge(p + "stream_connected", "1 while a session is configured.")
        self.stream_rtt_ms = Gauge(p + "stream_rtt_ms", "Last application ping round trip (ms).")
        self.signals = Counter(p + "signals_total", "Signals received by kind.", ("kind",))
        self.guard_refusals = Counter(
            p + "guard_refusals_total", "Transactions refused by the guard.", ("reason",)
        )
        self.guard_verdicts = Counter(
            p + "guard_verdicts_total", "Guard verdicts by path (static, simulated) and outcome "
            "(accepted, refused, unverifiable).", ("path", "outcome"))
        self.guard_unknown_programs = Counter(
            p + "guard_unknown_programs_total", "Accepted transactions calling a program that "
            "is not built in, by program id (the LaserSell router shows here).", ("program",))
        self.simulation_ms = Histogram(
            p + "simulation_ms", "Milliseconds for the effects simulation round trip.",
            (0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500))
        self.submissions = Counter(
            p + "submissions_total", "Submissions by target and outcome.", ("target", "outcome")
        )
        self.confirmations = Counter(
            p + "confirmations_total", "Final outcomes of submitted transactions.", ("outcome",)
        )
        self.signal_to_submit_ms = Histogram(
            p + "signal_to_submit_ms",
            "Milliseconds from frame received to first submission written.",
            (0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000),
        )
        self.open_positions = Gauge(p + "open_positions", "Positions currently tracked.")
        self.gc_pause_max_ms = Gauge(
            p + "gc_pause_max_ms", "Longest garbage-collector pause since start (ms, wall "
            "clock), by generation.", ("generation",))
        self.gc_pause_max_cpu_ms = Gauge(
            p + "gc_pause_max_cpu_ms", "CPU time of the longest-running garbage collection "
            "since start (ms; without time the process was not scheduled), by generation.",
            ("generation",))
        self.gc_pause_ms = Histogram(
            p + "gc_pause_ms", "Garbage-collector pauses (ms, wall clock), every generation.",
            (0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100))
        self.gc_collections = Counter(
            p + "gc_collections_total", "Garbage collections by generation.", ("generation",))
        self.realized_pnl_lamports = Gauge(
            p + "realized_pnl_lamports", "Realized profit of landed exits (quote units)."
        )
        self.journal_errors = Counter(p + "journal_errors_total", "Journal writes that failed.")
        self.intent_sync_seconds = Histogram(
            p + "intent_sync_seconds",
            "fdatasync of the intent record written before a signed transaction is sent.",
            (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
        )
        self.rpc_provider_up = Gauge(p + "rpc_provider_up",
                                     "1 while an RPC provider is up, 0 while it is down.",
                                     ("provider",))
        self.rpc_latency_ms = Gauge(p + "rpc_latency_ms",
                                    "Recent latency of an RPC provider's reads (moving average).",
                                    ("provider",))
        self.rpc_requests = Counter(p + "rpc_requests_total",
                                    "RPC reads by provider and outcome (ok, error).",
                                    ("provider", "outcome"))
        self.rpc_switches = Counter(p + "rpc_switches_total",
                                    "Times reads moved to another preferred RPC provider.")
        self.notify_dropped = Counter(
            p + "notify_dropped_total", "Notifications dropped: queue full, or undelivered "
            "at shutdown.")
        self.notify_sent = Counter(
            p + "notify_sent_total", "Notification deliveries by channel and outcome.",
            ("channel", "outcome"))

    def all(self) -> list[Counter | Histogram]:
        return [m for m in vars(self).values() if isinstance(m, Counter | Histogram)]

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.all():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"


class GcPauses:
    """Times every garbage collection (``gc.callbacks``) into ``gc_pause_max_ms`` and
    ``gc_collections_total``; ``install`` on start, ``uninstall`` on stop."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._started_ns = 0
        self._started_cpu_ns = 0
        self._max_ms: dict[str, float] = {}
        self._max_cpu_ms: dict[str, float] = {}

    def install(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started_ns = time.perf_counter_ns()
            self._started_cpu_ns = time.thread_time_ns()
            return
        pause_ms = (time.perf_counter_ns() - self._started_ns) / 1e6
        cpu_ms = (time.thread_time_ns() - self._started_cpu_ns) / 1e6
        generation = str(info.get("generation", "?"))
        self._metrics.gc_collections.inc(generation)
        self._metrics.gc_pause_ms.observe(pause_ms)
        if pause_ms > self._max_ms.get(generation, 0.0):
            self._max_ms[generation] = pause_ms
            self._metrics.gc_pause_max_ms.set(round(pause_ms, 3), generation)
        if cpu_ms > self._max_cpu_ms.get(generation, 0.0):
            self._max_cpu_ms[generation] = cpu_ms
            self._metrics.gc_pause_max_cpu_ms.set(round(cpu_ms, 3), generation)
