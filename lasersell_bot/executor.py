"""Exit and mirror-buy flows: guard, sign, send, confirm, retry, report.

The synchronous part of a flow (stale check, guard, signing) runs inline on the
stream reader, so a signed transaction is handed to the sender within the same
loop turn as its frame. Landing runs in tasks owned by the executor's task group.
Which signal may run, and what follows an outcome, is decided by the pure
``ExitBook``; this module only carries the decisions out and records them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from solders.keypair import Keypair

from lasersell_bot import landing, protocol, terms
from lasersell_bot.config import Config
from lasersell_bot.exitbook import (
    Decision,
    ExitBook,
    GiveUp,
    LevelFailed,
    Outcome,
    RequestExit,
    RetryPolicy,
    Start,
    Superseded,
)
from lasersell_bot.flows import (
    Attempt,
    EagerLander,
    Lander,
    Notify,
    Prepared,
    SessionHooks,
    Signed,
    agreed_amount,
    decode_b64,
    exit_outcome,
    log_vetted,
    realized_part,
    sign,
    vetted_detail,
)
from lasersell_bot.guard import Expectation, Verdict
from lasersell_bot.guard.effects import Promise
from lasersell_bot.journal import AttemptState, Journal, PendingAttempt
from lasersell_bot.logs import get_logger
from lasersell_bot.metrics import Metrics
from lasersell_bot.notify import NotifyKind
from lasersell_bot.simulate import Simulator
from lasersell_bot.vet import PromiseFor, Vetted, Vetter
from lasersell_bot.vet import Refused as _Refused
from lasersell_bot.wallet import Wallets

log = get_logger("executor")

TICK_SECONDS = 0.2
UNKNOWN_RECHECK_SEC = 5.0
_T = TypeVar("_T")


class Executor:
    """Carries out exit and mirror-buy signals for the keys we hold."""

    def __init__(
        self,
        cfg: Config,
        *,
        wallets: Wallets,
        lander: Lander,
        journal: Journal,
        send_to_stream: Callable[[protocol.ClientMessage], None],
        session: SessionHooks,
        metrics: Metrics,
        notifier: Notify | None = None,
        simulator: Simulator | None = None,
    ) -> None:
        self._cfg = cfg
        self._wallets = wallets
        self._lander = lander
        self._eager = lander if isinstance(lander, EagerLander) else None
        self._journal = journal
        self._send_to_stream = send_to_stream
        self._session = session
        self._metrics = metrics
        self._notifier = notifier
        self._vetter = Vetter(cfg.guard, simulator, metrics)
        self._book = ExitBook(_retry_policy(cfg))
        self._signal_ids: dict[int, tuple[int, int]] = {}
        self._busy: set[int] = set()
        self._tasks: asyncio.TaskGroup | None = None
        self._in_flight = 0
        self._accepting = True
        self.last_signal_monotonic: float | None = None
        # server clock minus ours, from hello_ok; signal ages are measured on its clock
        self.server_clock_offset_ms = 0
        self._stream_up = True
        # Set by the control API (pause-buys): mirror buys are refused as mirror_paused.
        self.mirror_paused = False
        # Signatures whose outcome is unknown (past the confirm timeout): health degraded.
        self.unknown_outcomes: set[str] = set()

    # ----------------------------------------------------------------- lifecycle

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Own every flow task; tick the exit book until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            if ready is not None:
                ready.set()
            while True:
                await asyncio.sleep(TICK_SECONDS)
                if self._stream_up:
                    self._apply(self._book.tick(_now_ms()))
                for position_id in list(self._busy):
                    self._sync_busy(position_id, landed=False)

    def apply_config(self, cfg: Config) -> None:
        """Use a reloaded config from now on (guard, retries, dry run, mirror rules)."""
        self._cfg = cfg
        self._vetter.apply_config(cfg.guard)
        self._book.set_policy(_retry_policy(cfg))

    def set_stream_up(self, up: bool) -> None:
        """While the stream is down, requested signals cannot come: don't count the wait."""
        if up and not self._stream_up:
            self._book.restart_waits(_now_ms())
        self._stream_up = up

    def stop_accepting(self) -> None:
        self._accepting = False

    async def drain(self, grace_sec: float) -> bool:
        """Wait for in-flight flows; True when none is left."""
        deadline = time.monotonic() + grace_sec
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._in_flight == 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def is_busy(self, position_id: int) -> bool:
        return self._book.is_busy(position_id)

    async def recover(self) -> int:
        """Re-check sells left pending by a previous run before allowing new ones."""
        pending = await asyncio.to_thread(self._journal.pending_attempts)
        for attempt in pending:
            if attempt.position_id is not None:
                self._book.lock(attempt.position_id)
                self._sync_busy(attempt.position_id, landed=False)
            self._spawn(self._resolve_pending(attempt))
        if pending:
            log.warning("recovering_pending_sells", count=len(pending))
        return len(pending)

    # ----------------------------------------------------------------- exit flow

    def on_exit_signal(self, signal: protocol.ExitSignalWithTx, received_ns: int) -> None:
        # Journal writes are queued when this returns, after the first send is written.
        with self._journal.deferred():
            self._on_exit_signal(signal, received_ns)

    def _on_exit_signal(self, signal: protocol.ExitSignalWithTx, received_ns: int) -> None:
        self.last_signal_monotonic = time.monotonic()
        self._metrics.signals.inc("exit")
        signal_id = self._journal.record_signal("exit", signal, _now_ms())
        if self._wallets.for_pubkey(signal.wallet_pubkey) is None:
            self._refuse_signal(signal_id, "unknown_wallet",
                                f"no keypair for wallet {signal.wallet_pubkey}")
            return
        # Exits keep running during a shutdown drain: a missed exit costs money.
        self._signal_ids[id(signal)] = (signal_id, received_ns)
        self._apply(self._book.offer(signal, _now_ms()))
        self._sync_busy(signal.position_id, landed=False)
        log.info("exit_signal", position_id=signal.position_id, reason=signal.reason,
                 level_index=signal.level_index, mint=signal.mint,
                 profit_units=signal.profit_units, signal_id=signal_id)

    def on_position_closed(self, position_id: int) -> None:
        self._apply(self._book.position_closed(position_id))

    def _apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Start):
                self._sync_busy(decision.signal.position_id, landed=False)
                self._start_exit(decision.signal, decision.attempt_no)
            elif isinstance(decision, RequestExit):
                self._request_exit(decision)
            elif isinstance(decision, GiveUp):
                self._give_up(decision)
            elif isinstance(decision, Superseded):
                self._superseded(decision)
            elif isinstance(decision, LevelFailed):
                self._level_failed(decision)

    def _sync_busy(self, position_id: int, landed: bool) -> None:
        """Tell the session when a position turns busy (a sell may land) or idle."""
        busy = self._book.is_busy(position_id)
        if busy and position_id not in self._busy:
            self._busy.add(position_id)
            self._session.exit_started(position_id)
        elif not busy and position_id in self._busy:
            self._busy.discard(position_id)
            self._session.exit_finished(position_id, landed, _now_ms())

    def _finish(self, position_id: int, outcome: Outcome) -> None:
        self._apply(self._book.finished(position_id, outcome, _now_ms()))
        self._sync_busy(position_id, landed=outcome in (Outcome.LANDED, Outcome.DRY_RUN))

    def _start_exit(self, signal: protocol.ExitSignalWithTx, attempt_no: int) -> None:
        signal_id, received_ns = self._signal_ids.pop(id(signal), (0, time.perf_counter_ns()))
        attempt = Attempt(signal, signal_id, attempt_no, received_ns)
        prepared = self._unless_refused(attempt, lambda: self._prepare_exit(signal))
        if prepared is None:
            return
        if isinstance(prepared.vetted, Verdict):
            self._spawn(self._vet_then_exit(attempt, prepared))
            return
        self._sign_and_launch(attempt, prepared, prepared.vetted)

    def _prepare_exit(self, signal: protocol.ExitSignalWithTx) -> Prepared:
        self._check_fresh(signal)
        keypair = self._keypair(signal.wallet_pubkey)
        unsigned = decode_b64(signal.unsigned_tx_b64)
        expect = terms.exit_expectation(signal, self._cfg.guard,
                                        self._session.position(signal.position_id))
        return Prepared(keypair, unsigned, expect, self._vetter.vet_now(unsigned, expect))

    async def _vet_then_exit(self, attempt: Attempt, prepared: Prepared) -> None:
        """Lookup tables and simulation, then sign and send (nothing is sent before)."""
        static = prepared.vetted if isinstance(prepared.vetted, Verdict) else None
        try:
            vetted = await self._vetter.vet(prepared.unsigned, prepared.expect,
                                            self._exit_promise(attempt.signal), static)
        except _Refused as refusal:
            self._journal.record_guard(attempt.signal_id, False, refusal.reason, refusal.detail)
            self._exit_refused(attempt, refusal)
            return
        except Exception as exc:
            self._exit_crashed(attempt, exc)
            return
        with self._journal.deferred():
            self._sign_and_launch(attempt, prepared, vetted)

    def _sign_and_launch(self, attempt: Attempt, prepared: Prepared, vetted: Vetted) -> None:
        recorded = self._unless_refused(attempt, lambda: self._sign_exit(attempt, prepared, vetted))
        if recorded is None:
            return
        signed, attempt_id = recorded
        # From here the bytes may be on the wire: never treat a failure as a refusal.
        first = self._send_first(signed)
        self._spawn(self._land_exit(attempt, signed, attempt_id, first))
        log_vetted(vetted, kind="exit", position_id=attempt.signal.position_id)

    def _sign_exit(self, attempt: Attempt, prepared: Prepared,
                   vetted: Vetted) -> tuple[Signed, int]:
        signed = sign(prepared.unsigned, prepared.keypair)
        self._journal.record_guard(attempt.signal_id, True, "", vetted_detail(vetted))
        # On disk (the journal's intent log) before its first byte can be sent.
        attempt_id = self._journal.record_attempt(
            attempt.signal_id, attempt.attempt_no, signature=signed.signature,
            slippage_bps=self._book.slippage_for(attempt.signal.position_id),
            signed_tx_b64=base64.b64encode(signed.tx).decode(),
            dry_run=self._cfg.send.dry_run)
        return signed, attempt_id

    def _unless_refused(self, attempt: Attempt, step: Callable[[], _T]) -> _T | None:
        """Run a step that sends nothing; a refusal or a crash in it refuses the exit."""
        try:
            return step()
        except _Refused as refusal:
            self._journal.record_guard(attempt.signal_id, False, refusal.reason, refusal.detail)
            self._exit_refused(attempt, refusal)
        except Exception as exc:
            self._exit_crashed(attempt, exc)
        return None

    def _exit_crashed(self, attempt: Attempt, exc: Exception) -> None:
        """A bug before anything was sent: counted as refused, so the position does not
        stick busy, and a fresh signal is asked for."""
        log.exception("exit_start_failed", position_id=attempt.signal.position_id)
        failure = _Refused("internal_error", f"{type(exc).__name__}: {exc}")
        self._journal.record_guard(attempt.signal_id, False, failure.reason, failure.detail)
        self._exit_refused(attempt, failure)

    def _exit_promise(self, signal: protocol.ExitSignalWithTx) -> PromiseFor:
        def promise(static: Verdict) -> Promise:
            made = terms.exit_promise(signal, self._cfg, self._session.position(signal.position_id),
                                      self._allowed_slippage(signal.position_id), static)
            if made is None:
                raise _Refused("unverifiable", f"position {signal.position_id} is unknown: "
                               "no entry to value the exit against")
            return made
        return promise

    def _allowed_slippage(self, position_id: int) -> int:
        """The slippage this attempt asked for (bumped after a slippage failure), else the
        configured base: how far below the signalled value the proceeds may come in."""
        requested = self._book.slippage_for(position_id)
        return self._cfg.send.slippage_base_bps if requested is None else requested

    def _check_fresh(self, signal: protocol.ExitSignalWithTx) -> None:
        limit = self._cfg.send.max_signal_age_ms
        age = _now_ms() + self.server_clock_offset_ms - signal.triggered_at_ms
        if limit and age > limit:
            raise _Refused("stale_signal", f"signal is {age} ms old (limit {limit} ms)")

    def _exit_refused(self, attempt: Attempt, refusal: _Refused) -> None:
        self._metrics.guard_refusals.inc(refusal.reason)
        log.error("guard_refused", kind="exit", position_id=attempt.signal.position_id,
                  reason=refusal.reason, path=refusal.path, detail=refusal.detail)
        self._notify("guard_refused", f"exit for position {attempt.signal.position_id} "
                     f"refused: {refusal.reason}")
        # A simulated slippage failure is what an on-chain one would be: retried with more.
        outcome = Outcome.FAILED_SLIPPAGE if refusal.slippage else Outcome.REFUSED
        self._finish(attempt.signal.position_id, outcome)

    def _send_first(self, signed: Signed) -> Any:
        """Write the first submission now, in this turn, when the lander can."""
        if self._eager is None or self._cfg.send.dry_run:
            return None
        try:
            return self._eager.send_now(signed.tx)
        except Exception:
            # The lander submits the same signed bytes (same signature) right after.
            log.exception("first_send_failed", signature=signed.signature)
            return None

    async def _land_exit(self, attempt: Attempt, signed: Signed, attempt_id: int,
                         first: Any = None) -> None:
        if self._cfg.send.dry_run:
            self._finish_exit(attempt, attempt_id, Outcome.DRY_RUN, "dry_run", None, None)
            return
        result = await self._land_until_known(
            signed, self._submitted_callback(attempt, attempt_id, signed.signature), attempt_id,
            first)
        outcome, state = exit_outcome(result, signed.tx)
        err = result.err if isinstance(result, landing.Failed) else None
        slot = result.slot if isinstance(result, landing.Landed | landing.Failed) else None
        self._finish_exit(attempt, attempt_id, outcome, state, err, slot)

    async def _land_until_known(
        self, signed: Signed, on_submitted: Callable[[str, float], None] | None,
        attempt_id: int, first: Any = None,
    ) -> landing.Outcome:
        """Land ``signed``; while the outcome is unknown it may still land, so keep
        re-broadcasting the same bytes (same signature: it cannot sell twice)."""
        result = await self._land_once(signed, on_submitted, first)
        if not isinstance(result, landing.Unknown):
            return result
        # Bounded: past confirm_timeout_sec the outcome is reported unknown, alerted once,
        # and /healthz is degraded until a provider proves it landed, failed or expired.
        self.unknown_outcomes.add(signed.signature)
        self._notify("tx_unknown", f"outcome of {signed.signature} unknown: {result.reason}; "
                     "re-checking the same transaction")
        try:
            while isinstance(result, landing.Unknown):
                self._journal.record_outcome(attempt_id, "unknown", err=result.reason)
                log.error("tx_outcome_unknown", signature=signed.signature,
                          reason=result.reason,
                          detail="RPC cannot tell; re-checking the same transaction")
                await asyncio.sleep(UNKNOWN_RECHECK_SEC)
                result = await self._land_once(signed, None)
        finally:
            self.unknown_outcomes.discard(signed.signature)
        log.warning("tx_outcome_resolved", signature=signed.signature, outcome=result.kind)
        return result

    async def _land_once(
        self, signed: Signed, on_submitted: Callable[[str, float], None] | None,
        first: Any = None,
    ) -> landing.Outcome:
        """One landing pass; a crash counts as unknown (the bytes may be on the wire)."""
        try:
            if first and self._eager is not None:
                return await self._eager.land(signed.tx, signed.signature, signed.blockhash,
                                              on_submitted=on_submitted, first=first)
            return await self._lander.land(signed.tx, signed.signature, signed.blockhash,
                                           on_submitted=on_submitted)
        except Exception as exc:
            log.exception("land_crashed", signature=signed.signature)
            return landing.Unknown(reason=f"crash: {type(exc).__name__}")

    def _submitted_callback(
        self, attempt: Attempt, attempt_id: int, signature: str
    ) -> Callable[[str, float], None]:
        first = [True]

        def submitted(target: str, elapsed_ms: float) -> None:
            self._journal.record_submission(attempt_id, target, True, "", elapsed_ms)
            if first[0]:
                first[0] = False
                latency_ms = (time.perf_counter_ns() - attempt.received_ns) / 1e6
                self._metrics.signal_to_submit_ms.observe(latency_ms)
                log.info("tx_submitted", position_id=attempt.signal.position_id,
                         signature=signature, target=target,
                         signal_to_submit_ms=round(latency_ms, 3))

        return submitted

    def _finish_exit(
        self, attempt: Attempt, attempt_id: int, outcome: Outcome, state: AttemptState,
        err: Any, slot: int | None,
    ) -> None:
        signal = attempt.signal
        self._journal.record_outcome(attempt_id, state, err=err, slot=slot)
        self._metrics.confirmations.inc(state)
        landed = outcome in (Outcome.LANDED, Outcome.DRY_RUN)
        event = "tx_confirmed" if landed else "tx_failed"
        level = log.info if landed else log.error
        level(event, position_id=signal.position_id, state=state, slot=slot, err=err,
              reason=signal.reason, level_index=signal.level_index)
        if outcome is Outcome.LANDED:
            self._metrics.realized_pnl_lamports.inc(amount=realized_part(signal))
            self._notify("exit_landed", f"exit landed for {signal.mint} ({signal.reason})")
        elif not landed:
            self._notify("exit_failed", f"exit {state} for {signal.mint} ({signal.reason})")
        self._finish(signal.position_id, outcome)

    def _request_exit(self, decision: RequestExit) -> None:
        log.warning("exit_retry_requested", position_id=decision.position_id,
                    slippage_bps=decision.slippage_bps, attempt=decision.attempt_no)
        self._send_to_stream(protocol.RequestExitSignal(
            position_id=decision.position_id, slippage_bps=decision.slippage_bps))

    def _give_up(self, decision: GiveUp) -> None:
        log.error("exit_gave_up", position_id=decision.position_id, reason=decision.reason,
                  attempts=decision.attempts)
        self._notify("exit_failed", f"gave up exiting position {decision.position_id} "
                     f"after {decision.attempts} attempts")

    def _level_failed(self, decision: LevelFailed) -> None:
        signal = decision.signal
        log.error("exit_level_failed", position_id=signal.position_id,
                  level_index=signal.level_index, outcome=decision.outcome.value,
                  detail="a partial sell is not retried as a full exit; the server re-signals")
        self._notify("exit_failed", f"ladder level {signal.level_index} of {signal.mint} "
                     f"{decision.outcome.value}")

    def _superseded(self, decision: Superseded) -> None:
        entry = self._signal_ids.pop(id(decision.signal), None)
        log.info("exit_signal_superseded", position_id=decision.signal.position_id,
                 level_index=decision.signal.level_index, reason=decision.reason)
        if entry is not None:
            self._journal.record_guard(entry[0], False, "superseded", decision.reason)

    async def _resolve_pending(self, attempt: PendingAttempt) -> None:
        state: AttemptState = "error"
        err: Any = "no signed transaction recorded"
        if attempt.signed_tx_b64 and attempt.signature:
            try:
                signed = base64.b64decode(attempt.signed_tx_b64)
                stored = Signed(signed, attempt.signature)
            except ValueError as exc:
                err = f"stored transaction unreadable: {exc}"
            else:
                result = await self._land_until_known(stored, None, attempt.attempt_id)
                _, state = exit_outcome(result, signed)
                err = result.err if isinstance(result, landing.Failed) else None
        self._journal.record_outcome(attempt.attempt_id, state, err=err)
        log.warning("pending_tx_resolved", kind=attempt.kind, position_id=attempt.position_id,
                    signature=attempt.signature, state=state)
        if attempt.position_id is not None:
            self._apply(self._book.unlock(attempt.position_id))
            self._sync_busy(attempt.position_id, landed=state == "landed")

    # ----------------------------------------------------------------- mirror flow

    def on_mirror_signal(self, signal: protocol.MirrorBuySignal, received_ns: int) -> None:
        self.last_signal_monotonic = time.monotonic()
        self._metrics.signals.inc("mirror_buy")
        signal_id = self._journal.record_signal("mirror_buy", signal, _now_ms())
        log.info("mirror_buy_signal", watched_wallet=signal.watched_wallet, mint=signal.mint,
                 amount_quote_units=signal.amount_quote_units, input=signal.input)
        with self._buy_refusals(signal, signal_id):
            if not self._accepting:
                raise _Refused("shutting_down", "the daemon is stopping; no new buys")
            if self.mirror_paused:
                raise _Refused("mirror_paused", "mirror buys are paused (resume-buys)")
            expectation = self._mirror_expectation(signal)
            keypair = self._keypair(signal.user_wallet)
            unsigned = decode_b64(signal.unsigned_tx_b64)
            vetted = self._vetter.vet_now(unsigned, expectation)
            prepared = Prepared(keypair, unsigned, expectation, vetted)
            if isinstance(vetted, Verdict):
                self._spawn(self._vet_then_buy(signal, signal_id, prepared, received_ns))
                return
            self._sign_and_buy(signal, signal_id, prepared, vetted, received_ns)

    async def _vet_then_buy(self, signal: protocol.MirrorBuySignal, signal_id: int,
                            prepared: Prepared, received_ns: int) -> None:
        static = prepared.vetted if isinstance(prepared.vetted, Verdict) else None
        with self._buy_refusals(signal, signal_id):
            vetted = await self._vetter.vet(prepared.unsigned, prepared.expect,
                                            self._buy_promise(signal), static)
            self._sign_and_buy(signal, signal_id, prepared, vetted, received_ns)

    @contextlib.contextmanager
    def _buy_refusals(self, signal: protocol.MirrorBuySignal, signal_id: int) -> Iterator[None]:
        """Nothing was sent yet: a refusal, or a bug, reports the buy as failed, once."""
        try:
            yield
        except _Refused as refusal:
            self._mirror_refused(signal, signal_id, refusal)
        except Exception as exc:
            log.exception("mirror_start_failed", mint=signal.mint)
            self._mirror_refused(signal, signal_id,
                                 _Refused("internal_error", f"{type(exc).__name__}: {exc}"))

    def _sign_and_buy(self, signal: protocol.MirrorBuySignal, signal_id: int,
                      prepared: Prepared, vetted: Vetted, received_ns: int) -> None:
        signed = sign(prepared.unsigned, prepared.keypair)
        self._journal.record_guard(signal_id, True, "", vetted_detail(vetted))
        self._spawn(self._land_mirror(signal, signal_id, signed, received_ns))
        log_vetted(vetted, kind="mirror_buy", mint=signal.mint)

    def _buy_promise(self, signal: protocol.MirrorBuySignal) -> PromiseFor:
        return lambda static: terms.mirror_promise(signal, self._cfg, static)

    def _mirror_refused(self, signal: protocol.MirrorBuySignal, signal_id: int,
                        refusal: _Refused) -> None:
        self._journal.record_guard(signal_id, False, refusal.reason, refusal.detail)
        self._metrics.guard_refusals.inc(refusal.reason)
        log.error("guard_refused", kind="mirror_buy", mint=signal.mint,
                  reason=refusal.reason, detail=refusal.detail)
        self._notify("guard_refused", f"mirror buy of {signal.mint} refused: {refusal.reason}")
        self._report_mirror(signal.mint, False)

    def _mirror_expectation(self, signal: protocol.MirrorBuySignal) -> Expectation:
        if not self._cfg.mirror.enabled:
            raise _Refused("mirror_disabled", "mirror.enabled is false in the config")
        watch = next((w for w in self._cfg.watch_wallets if w.pubkey == signal.watched_wallet),
                     None)
        if watch is None:
            raise _Refused("mirror_not_configured",
                           f"watched wallet {signal.watched_wallet} is not in watch_wallets")
        buyer = watch.auto_buy_wallet or self._wallets.pubkeys()[0]
        if signal.user_wallet != buyer:
            raise _Refused("buy_wallet_mismatch",
                           f"buy for wallet {signal.user_wallet}, configured {buyer}")
        if signal.input != "SOL":
            raise _Refused("buy_input_unverifiable",
                           f"{signal.input} buys cannot be bounded by the guard; only SOL")
        agreed = agreed_amount(watch, signal.input)
        if signal.amount_quote_units > agreed:
            raise _Refused("buy_amount_mismatch",
                           f"asked to spend {signal.amount_quote_units} {signal.input} units, "
                           f"configured {agreed}")
        return terms.buy_expectation(signal, self._cfg, agreed)

    async def _land_mirror(
        self, signal: protocol.MirrorBuySignal, signal_id: int, signed: Signed, received_ns: int
    ) -> None:
        attempt_id = self._journal.record_attempt(
            signal_id, 1, signature=signed.signature, slippage_bps=signal.slippage_bps,
            signed_tx_b64=base64.b64encode(signed.tx).decode(), dry_run=self._cfg.send.dry_run)
        if self._cfg.send.dry_run:
            self._journal.record_outcome(attempt_id, "dry_run")
            log.info("tx_dry_run", kind="mirror_buy", signature=signed.signature)
            self._report_mirror(signal.mint, False)
            return
        submitted = await self._lander.submit_once(signed.tx, signed.signature)
        self._report_mirror(signal.mint, submitted)
        if not submitted:
            self._journal.record_outcome(attempt_id, "error", err="all targets refused")
            log.error("tx_failed", kind="mirror_buy", mint=signal.mint, state="not_submitted")
            return
        latency_ms = (time.perf_counter_ns() - received_ns) / 1e6
        self._metrics.signal_to_submit_ms.observe(latency_ms)
        log.info("tx_submitted", kind="mirror_buy", mint=signal.mint,
                 signature=signed.signature, signal_to_submit_ms=round(latency_ms, 3))
        self._notify("mirror_buy", f"mirror buy of {signal.mint} submitted")
        result = await self._land_until_known(signed, None, attempt_id)
        _, state = exit_outcome(result, signed.tx)
        self._journal.record_outcome(attempt_id, state,
                                     err=result.err if isinstance(result, landing.Failed) else None)
        self._metrics.confirmations.inc(state)
        log.info("mirror_buy_outcome", mint=signal.mint, signature=signed.signature, state=state)

    def _report_mirror(self, mint: str, success: bool) -> None:
        self._send_to_stream(protocol.MirrorBuyResult(mint=mint, success=success))
        log.info("mirror_buy_result_sent", mint=mint, success=success)

    # ----------------------------------------------------------------- shared

    def _keypair(self, wallet: str) -> Keypair:
        keypair = self._wallets.for_pubkey(wallet)
        if keypair is None:
            raise _Refused("unknown_wallet", f"no keypair for wallet {wallet}")
        return keypair

    def _refuse_signal(self, signal_id: int, reason: str, detail: str) -> None:
        self._journal.record_guard(signal_id, False, reason, detail)
        self._metrics.guard_refusals.inc(reason)
        log.error("guard_refused", reason=reason, detail=detail)

    def _spawn(self, flow: Any) -> None:
        if self._tasks is None:
            flow.close()
            raise RuntimeError("executor is not running")
        self._in_flight += 1
        task = self._tasks.create_task(self._guarded(flow))
        task.add_done_callback(self._flow_done)

    async def _guarded(self, flow: Any) -> None:
        try:
            await flow
        except Exception:
            log.exception("flow_crashed")

    def _flow_done(self, _task: asyncio.Task[None]) -> None:
        self._in_flight -= 1

    def _notify(self, kind: NotifyKind, text: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(kind, text)


def _retry_policy(cfg: Config) -> RetryPolicy:
    return RetryPolicy(
        max_retries=cfg.send.max_retries,
        slippage_base_bps=cfg.send.slippage_base_bps,
        slippage_bump_bps=cfg.send.slippage_bump_bps,
        slippage_max_bps=cfg.send.slippage_max_bps,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
