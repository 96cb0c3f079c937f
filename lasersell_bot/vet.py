"""The guard pipeline the executor runs before it signs: lookup tables, static rules,
simulation, effects verdict.

``Vetter.vet_now`` is the synchronous path: when every lookup table is known and the
static rules alone may decide (``guard.simulate = "never"``, or ``"unvouched"`` and the
static rules could vouch), it answers in the signal's own loop turn. Otherwise ``vet``
does the rest: at most one round trip for unknown lookup tables (they are kept), then one
round trip for the simulation (``simulate.Simulator``), then the pure effects verdict
(``guard.effects.judge``). A transaction the static rules refuse is never simulated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from solders.message import Message, MessageV0, MessageV1
from solders.transaction import VersionedTransaction

from lasersell_bot import landing
from lasersell_bot.config import GuardConfig
from lasersell_bot.guard import Expectation, GuardPolicy, Verdict, check_transaction
from lasersell_bot.guard.effects import EffectsVerdict, Promise, judge
from lasersell_bot.guard.policy import DEX_PROGRAM_IDS
from lasersell_bot.guard.tables import LookupTables, MissingLookupTable, resolve_keys
from lasersell_bot.metrics import Metrics
from lasersell_bot.simulate import Simulator, Unverifiable

Path = Literal["static", "simulated"]
PromiseFor = Callable[[Verdict], Promise]
AnyMessage = Message | MessageV0 | MessageV1
MAX_PROGRAM_LABELS = 64
_LOG_LINES_SHOWN = 3


@dataclass(frozen=True, slots=True)
class Vetted:
    """An accepted transaction and how it was judged."""

    path: Path
    static: Verdict
    effects: EffectsVerdict | None = None
    simulation_ms: float | None = None

    def summary(self) -> str:
        """One line for the journal and logs: path, unknown programs, deltas, time."""
        parts: list[str] = [self.path]
        if self.static.unknown_programs:
            parts.append("unknown programs " + ",".join(self.static.unknown_programs))
        if self.effects is not None and self.effects.deltas is not None:
            parts.append(self.effects.deltas.text())
        if self.simulation_ms is not None:
            parts.append(f"simulated in {self.simulation_ms:.1f} ms")
        return "; ".join(parts)


class Refused(Exception):
    """Not to be signed. ``slippage``: the simulation failed on a DEX slippage bound."""

    def __init__(self, reason: str, detail: str, *, slippage: bool = False,
                 path: Path = "static") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.slippage, self.path = reason, detail, slippage, path


class Vetter:
    """Static rules, lookup tables and simulation, with the metrics they report."""

    def __init__(self, cfg: GuardConfig, simulator: Simulator | None, metrics: Metrics) -> None:
        self._simulator = simulator
        self._tables = simulator.tables if simulator is not None else LookupTables()
        self._metrics = metrics
        self.apply_config(cfg)

    def apply_config(self, cfg: GuardConfig) -> None:
        self.cfg = cfg
        self.policy = GuardPolicy.from_config(cfg)
        if self._simulator is not None:
            self._simulator.timeout_sec = cfg.simulation_timeout_ms / 1000

    def vet_now(self, tx: bytes, expect: Expectation) -> Vetted | Verdict:
        """Decide without I/O when possible: a ``Vetted`` to sign now, or the static
        ``Verdict`` (possibly ``lookup_table_unavailable``) to hand to ``vet``.
        Raises ``Refused`` when the static rules refuse."""
        verdict = check_transaction(tx, self.policy, expect, self._tables.as_mapping())
        if not verdict.ok and verdict.reason == "lookup_table_unavailable":
            return verdict
        self._refuse_if_bad(verdict)
        if self._needs_simulation(verdict, tx):
            return verdict
        return self._accepted(Vetted("static", verdict))

    async def vet(self, tx: bytes, expect: Expectation, promise_for: PromiseFor,
                  static: Verdict | None = None) -> Vetted:
        """The whole pipeline; ``static`` is ``vet_now``'s verdict, if it gave one."""
        message = _message(tx)
        if static is None or not static.ok:
            await self._fetch_tables(message)
            static = check_transaction(tx, self.policy, expect, self._tables.as_mapping())
            self._refuse_if_bad(static)
        if not self._needs_simulation(static, tx):
            return self._accepted(Vetted("static", static))
        return self._accepted(await self._simulate(tx, message, promise_for(static), static))

    def _needs_simulation(self, verdict: Verdict, tx: bytes) -> bool:
        """``always``; or, ``unvouched``, when the static rules could not vouch for it or a
        DEX trade is in it (a DEX pays whatever output account it is given: only the
        effects show whose it is)."""
        mode = self.cfg.simulate
        if mode != "unvouched":
            return mode == "always"
        return verdict.needs_effects or _calls_dex(tx)

    def _refuse_if_bad(self, verdict: Verdict) -> None:
        if not verdict.ok:
            self._metrics.guard_verdicts.inc("static", "refused")
            raise Refused(verdict.reason, verdict.detail)

    async def _fetch_tables(self, message: AnyMessage | None) -> None:
        missing = self._tables.missing(message) if message is not None else []
        if not missing:
            return
        if self._simulator is None:
            raise self._unverifiable("lookup tables cannot be fetched: no RPC")
        try:
            await self._simulator.fetch_tables(missing)
        except Unverifiable as exc:
            raise self._unverifiable(str(exc)) from None

    async def _simulate(self, tx: bytes, message: AnyMessage | None,
                        promise: Promise, static: Verdict) -> Vetted:
        if self._simulator is None or message is None:
            raise self._unverifiable("no RPC to simulate on")
        try:
            addresses = resolve_keys(message, self._tables.as_mapping()).writable_keys()
            simulation = await self._simulator.run(tx, addresses)
        except (Unverifiable, MissingLookupTable) as exc:
            raise self._unverifiable(str(exc)) from None
        self._metrics.simulation_ms.observe(simulation.elapsed_ms)
        if simulation.err is not None:
            self._metrics.guard_verdicts.inc("simulated", "refused")
            slippage = classify_failure(simulation.err, message, simulation.logs) == "slippage"
            tail = " | ".join(simulation.logs[-_LOG_LINES_SHOWN:])
            raise Refused("simulation_slippage" if slippage else "simulation_failed",
                          f"{simulation.err}" + (f" (logs: {tail})" if tail else ""),
                          slippage=slippage, path="simulated")
        effects = judge(promise, addresses, simulation.pre, simulation.post)
        if not effects.ok:
            self._metrics.guard_verdicts.inc("simulated", "refused")
            deltas = f" [{effects.deltas.text()}]" if effects.deltas is not None else ""
            raise Refused(effects.reason, effects.detail + deltas, path="simulated")
        return Vetted("simulated", static, effects, simulation.elapsed_ms)

    def _unverifiable(self, detail: str) -> Refused:
        self._metrics.guard_verdicts.inc("simulated", "unverifiable")
        return Refused("unverifiable", detail, path="simulated")

    def _accepted(self, vetted: Vetted) -> Vetted:
        self._metrics.guard_verdicts.inc(vetted.path, "accepted")
        for program in vetted.static.unknown_programs:
            self._count_program(program)
        return vetted

    def _count_program(self, program: str) -> None:
        counter = self._metrics.guard_unknown_programs
        if (program,) not in counter.values and len(counter.values) >= MAX_PROGRAM_LABELS:
            program = "other"
        counter.inc(program)


def _calls_dex(tx: bytes) -> bool:
    message = _message(tx)
    if message is None:
        return True
    keys = message.account_keys
    return any(keys[ix.program_id_index] in DEX_PROGRAM_IDS for ix in message.instructions)


def _message(tx: bytes) -> AnyMessage | None:
    try:
        return VersionedTransaction.from_bytes(tx).message
    except (ValueError, TypeError):
        return None


def classify_failure(err: Any, message: AnyMessage,
                     logs: Sequence[str] | None = None) -> landing.ErrorClass:
    """Slippage or other, for an on-chain or simulated failure of ``message``: an exact
    match when the failing top-level program is a known DEX, else any DEX's code."""
    keys = message.account_keys
    programs = [str(keys[ix.program_id_index]) for ix in message.instructions]
    index = _failed_instruction(err)
    if index is not None and index < len(programs) and programs[index] in landing.SLIPPAGE_CODES:
        return landing.classify_error(err, programs, logs)
    return landing.classify_error(err, None, logs)


def _failed_instruction(err: Any) -> int | None:
    if isinstance(err, dict):
        detail = err.get("InstructionError")
        if isinstance(detail, list) and detail and isinstance(detail[0], int):
            return detail[0]
    return None
