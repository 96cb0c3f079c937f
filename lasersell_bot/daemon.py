"""The composition root: builds every component from the config and runs them.

It routes what the session decides (send a message, execute an exit) to the
stream and the executor, ticks the session's timers, answers signals (SIGTERM /
SIGINT stop gracefully, a second one exits at once, SIGHUP reloads the config
live), and keeps systemd, /healthz and the logs informed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import msgspec

from lasersell_bot import config as config_mod
from lasersell_bot import landing, protocol, session
from lasersell_bot.config import Config
from lasersell_bot.control.setup import control_plane
from lasersell_bot.executor import Executor
from lasersell_bot.journal import Journal
from lasersell_bot.logs import get_logger
from lasersell_bot.metrics import GcPauses, Metrics
from lasersell_bot.notify import Notifier, NotifyKind
from lasersell_bot.ops import (
    HealthReport,
    HealthServer,
    SdNotifier,
    Watchdog,
    assess_health,
    health_body,
)
from lasersell_bot.ops import status_line as make_status_line
from lasersell_bot.send import Confirmer, Submitter, land, rpc_pool
from lasersell_bot.simulate import Simulator
from lasersell_bot.startup import StartupExtender, freeze_startup_objects, freeze_when_settled
from lasersell_bot.stream import StreamClient, register_wallets
from lasersell_bot.tls import lasersell_session
from lasersell_bot.wallet import Wallets, registration_proof

log = get_logger("daemon")

STATUS_EVERY_SEC = 5.0
EXIT_NOW_CODE = 130
EXIT_STARTUP_FAILED = 1
# Watchdog pings stop (systemd restarts us) after this long without a stream session.
STREAM_DOWN_BUDGET_SEC = 300.0
# What SIGHUP cannot change in a running daemon: these sections and [send] keys are
# built into connections and sessions at start ([[wallets]] has its own warning).
RESTART_SECTIONS = ("stream", "rpc", "journal", "log", "http", "notify", "tls")
LIVE_SEND_KEYS = frozenset({"dry_run", "max_retries", "slippage_base_bps", "slippage_bump_bps",
                            "slippage_max_bps", "max_signal_age_ms"})


class RpcLander:
    """The executor's view of send.py: write a first submission now, land a signed tx,
    or submit it once."""

    def __init__(self, submitter: Submitter, params: landing.LandingParams,
                 confirmer: Confirmer | None = None) -> None:
        self._submitter = submitter
        self._confirmer = confirmer or Confirmer(submitter)
        self._params = params

    def send_now(self, signed_tx: bytes) -> dict[str, Any]:
        return self._submitter.send_now(signed_tx)

    async def land(
        self, signed_tx: bytes, signature: str, blockhash: str,
        on_submitted: Callable[[str, float], None] | None = None, first: Any = None,
    ) -> landing.Outcome:
        def submitted(target: str, seconds: float) -> None:
            if on_submitted is not None:
                on_submitted(target, seconds * 1000)

        result = await land(signed_tx, signature, blockhash, self._submitter, self._confirmer,
                            self._params, on_submitted=submitted, first=first)
        return result.outcome

    async def submit_once(self, signed_tx: bytes, signature: str) -> bool:
        return (await self._submitter.submit(signed_tx, signature)).ok


def desired_config(cfg: Config, wallets: Wallets) -> session.DesiredConfig:
    pubkeys = wallets.pubkeys()
    return session.DesiredConfig(
        wallet_pubkeys=tuple(pubkeys),
        strategy=config_mod.to_strategy(cfg.strategy),
        send_mode=cfg.send.mode,
        tip_lamports=cfg.send.tip_lamports,
        watch_wallets=tuple(config_mod.to_watch_wallets(cfg, pubkeys[0])),
        mirror_config=config_mod.to_mirror_config(cfg.mirror),
        deadline_timeout_sec=cfg.strategy.deadline_timeout_sec,
        deadline_retry_sec=cfg.strategy.deadline_retry_sec,
    )


def reload_plan(old: Config, new: Config) -> tuple[Config, list[str]]:
    """The config a running daemon switches to on reload, and the changed keys it cannot
    apply (they keep their values from ``old`` until a restart)."""
    fixed_send = [k for k in old.send.__struct_fields__ if k not in LIVE_SEND_KEYS]
    pending = [name for name in RESTART_SECTIONS if getattr(new, name) != getattr(old, name)]
    pending += [f"send.{k}" for k in fixed_send if getattr(new.send, k) != getattr(old.send, k)]
    send = msgspec.structs.replace(new.send, **{k: getattr(old.send, k) for k in fixed_send})
    kept = {name: getattr(old, name) for name in RESTART_SECTIONS}
    return msgspec.structs.replace(new, wallets=old.wallets, send=send, **kept), pending


class Daemon:
    """One running lasersell-bot: stream session, executor, journal, ops."""

    def __init__(self, cfg: Config, wallets: Wallets, *, config_path: str | None = None,
                 notify_socket: SdNotifier | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.wallets = wallets
        self.metrics = Metrics()
        self.session = session.Session(desired_config(cfg, wallets),
                                       reconcile_sec=cfg.stream.reconcile_sec)
        self.sd = notify_socket or SdNotifier()
        self.journal = Journal.open(cfg.journal.path, self.metrics, cfg.journal.durable)
        self.submitter = Submitter.from_config(cfg.send, cfg.rpc, self.metrics)
        self.rpc_pool = rpc_pool(self.submitter, cfg.rpc, self.metrics)
        self.confirmer = Confirmer(self.submitter, self.rpc_pool)
        self.notifier = Notifier(cfg.notify, self.metrics,
                                 telegram_api_base=cfg.notify.telegram_api_url)
        self.control = control_plane(self)
        for key in config_mod.plaintext_urls(cfg):
            log.warning("plaintext_transport", key=key,
                        detail="tls.allow_plaintext is set: this connection is not encrypted")
        # Stream and API share one session, pinned to tls.pins when set; opened in run().
        self._lasersell_http: aiohttp.ClientSession | None = None
        self.stream = StreamClient(
            cfg.stream, configure_messages=self._configure_messages, on_high=self._on_high,
            on_low=self._on_low, metrics=self.metrics,
            on_connection_change=self._on_connection_change, reregister=self._register_wallets,
            http_factory=self._lasersell_session)
        self.executor = Executor(
            cfg, wallets=wallets,
            lander=RpcLander(self.submitter, landing.LandingParams.from_config(cfg.send),
                             self.confirmer),
            journal=self.journal, send_to_stream=self.stream.send, session=self.session,
            metrics=self.metrics,
            notifier=self.notifier if self.control is None else self.control.tee(self.notifier),
            simulator=Simulator(self.confirmer, cfg.guard.simulation_timeout_ms / 1000))
        self.watchdog = Watchdog(self.sd)
        self.health_server = HealthServer(
            cfg.http.listen, self.health, self.metrics,
            routes=None if self.control is None else self.control.mount)
        self._stop = asyncio.Event()
        self._wakeup = asyncio.Event()
        self.session.on_wakeup_earlier = self._wakeup.set
        self.gc_pauses = GcPauses(self.metrics)
        self._ready_sent = False
        self._was_healthy = True
        self.started_monotonic = time.monotonic()

    # ----------------------------------------------------------------- run

    async def run(self, install_signal_handlers: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or ``request_stop``); returns the exit code."""
        if install_signal_handlers:
            self._install_signal_handlers()
        await self.submitter.start(warm=True)
        clean_stop = False
        self.rpc_pool.start()
        try:
            await self._register_wallets()
            await self.notifier.start()
            try:
                if self.control is not None:
                    self.control.prepare()
                await self.health_server.start()
            except OSError as exc:  # http.listen taken: one clear line, and systemd retries
                log.error("startup_failed", error=exc.strerror or str(exc))
                return EXIT_STARTUP_FAILED
            async with asyncio.TaskGroup() as tasks:
                executor_ready = asyncio.Event()
                background = [
                    tasks.create_task(self.executor.run(executor_ready)),
                    tasks.create_task(_supervised("watchdog",
                                                  lambda: self.watchdog.run(self._is_healthy))),
                    tasks.create_task(_supervised("session_ticker", self._tick_session)),
                    tasks.create_task(_supervised("status_reporter", self._report_status)),
                    tasks.create_task(freeze_when_settled(self.session.position_count)),
                ]
                if self.control is not None:
                    background.append(tasks.create_task(
                        _supervised("control", self.control.run)))
                await executor_ready.wait()
                await self.executor.recover()
                freeze_startup_objects()
                self.gc_pauses.install()  # from here on, a pause can delay an exit
                stream_task = tasks.create_task(self.stream.run())
                await self._stop.wait()
                await self._shutdown(stream_task)
                for task in background:
                    task.cancel()
            clean_stop = True
        finally:
            await self._close_resources()
        if clean_stop:  # not after a failed start: its error is the last word
            log.info("shutdown_complete")
        return 0

    async def _register_wallets(self) -> None:
        if not self.cfg.stream.register_wallets:
            return
        now_s = int(time.time())
        keypairs = [kp for pk in self.wallets.pubkeys()
                    if (kp := self.wallets.for_pubkey(pk)) is not None]
        proofs = [registration_proof(keypair, now_s) for keypair in keypairs]
        extend = StartupExtender(self.sd, len(proofs))
        await register_wallets(self._lasersell_session(), self.cfg.stream.api_url,
                               self.cfg.stream.api_key, proofs, on_progress=extend.progress)

    def _lasersell_session(self) -> aiohttp.ClientSession:
        if self._lasersell_http is None or self._lasersell_http.closed:
            self._lasersell_http = lasersell_session(self.cfg.tls.pins)
        return self._lasersell_http

    async def _shutdown(self, stream_task: asyncio.Task[None]) -> None:
        log.info("shutdown_started", in_flight=self.executor.in_flight)
        self.sd.stopping()
        self.executor.stop_accepting()
        drained = await self.executor.drain(self.cfg.daemon.shutdown_grace_sec)
        if not drained:
            log.error("shutdown_grace_expired", in_flight=self.executor.in_flight)
        await self.stream.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(stream_task), 5)

    async def _close_resources(self) -> None:
        if self.control is not None:
            self.control.close()
        self.gc_pauses.uninstall()
        await self.health_server.stop()
        await self.notifier.stop()
        await self.rpc_pool.close()
        await self.submitter.close()
        if self._lasersell_http is not None:
            await self._lasersell_http.close()
        await asyncio.to_thread(self.journal.close)

    def request_stop(self) -> None:
        self._stop.set()

    # ----------------------------------------------------------------- routing

    def _configure_messages(self) -> list[protocol.ClientMessage]:
        self.session.on_connection_opened(_now_ms())
        return self.session.configure_messages()

    def _on_connection_change(self, up: bool) -> None:
        self.executor.set_stream_up(up)
        if not up:
            self.session.on_connection_lost(_now_ms())
            return
        if not self._ready_sent:
            self._ready_sent = True
            self.sd.ready()
            log.info("ready", wallets=len(self.wallets.pubkeys()))

    def _on_high(self, message: Any, received_ns: int) -> None:
        if isinstance(message, protocol.HelloOk):
            self.executor.server_clock_offset_ms = message.server_time_ms - _now_ms()
        self._dispatch(self.session.on_message(message, _now_ms()), received_ns)

    def _on_low(self, message: Any) -> None:
        self.session.on_message(message, _now_ms())
        if self.control is not None:
            self.control.on_low(message)

    def _dispatch(self, actions: list[session.Action], received_ns: int) -> None:
        for action in actions:
            if isinstance(action, session.ExecuteExit):
                self.executor.on_exit_signal(action.signal, received_ns)
            elif isinstance(action, session.ExecuteMirrorBuy):
                self.executor.on_mirror_signal(action.signal, received_ns)
            elif isinstance(action, session.Send):
                self.stream.send(action.message)
            else:
                self._log_event(action)
        if self.control is not None:  # after the exits above are on the wire
            for action in actions:
                self.control.on_action(action)

    def dispatch(self, actions: list[session.Action]) -> None:
        """Carry out actions the control API got from the session."""
        self._dispatch(actions, time.perf_counter_ns())

    def _log_event(self, action: session.Action) -> None:
        if isinstance(action, session.PositionOpenedEvent):
            opened = action.position.opened
            log.info("position_opened", position_id=opened.position_id, mint=opened.mint,
                     wallet=opened.wallet_pubkey, tokens=opened.tokens,
                     entry_quote_units=opened.entry_quote_units)
        elif isinstance(action, session.PositionClosedEvent):
            closed = action.closed
            log.info("position_closed", position_id=closed.position_id, mint=closed.mint,
                     reason=closed.reason)
            self.executor.on_position_closed(closed.position_id)
        elif isinstance(action, session.PositionDropped):
            log.warning("position_dropped", position_id=action.position_id, reason=action.reason)
            self.executor.on_position_closed(action.position_id)
        elif isinstance(action, session.ServerError):
            log.error("server_error", code=action.code, message=action.message)
        elif isinstance(action, session.MirrorEvent):
            log.warning(action.message.__struct_config__.tag,
                        **_public_fields(action.message))
        elif isinstance(action, session.AppliesOnReconnect):
            log.info("setting_applies_on_reconnect", setting=action.setting)
        self.metrics.open_positions.set(self.session.position_count())

    async def _tick_session(self) -> None:
        """Call the session's timers when they are due (deadlines, reconcile); with
        nothing due, sleep until the session says a wake-up moved earlier."""
        while True:
            wake_ms = self.session.next_wakeup_ms()
            self._wakeup.clear()
            if wake_ms is None:
                await self._wakeup.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(),
                                           max(0.0, (wake_ms - _now_ms()) / 1000))
            self._dispatch(self.session.on_tick(_now_ms()), time.perf_counter_ns())

    def set_position_strategy(self, position_id: int, strategy: protocol.Strategy) -> None:
        """Override the strategy of one position (kept across reconnects)."""
        self._dispatch(self.session.set_position_strategy(position_id, strategy),
                       time.perf_counter_ns())

    # ----------------------------------------------------------------- reload

    def reload(self) -> None:
        """SIGHUP: re-read the config; apply strategy, wallets and watch list live."""
        if self.config_path is None:
            log.warning("reload_ignored", reason="no config file")
            return
        self.sd.reloading()
        try:
            new_cfg = config_mod.load_config(self.config_path)
        except config_mod.ConfigError as exc:
            log.error("reload_rejected", error=str(exc))
            self.sd.ready()
            return
        self._apply_reload(new_cfg)
        self.sd.ready()

    def _apply_reload(self, new: Config) -> None:
        old, now = self.cfg, _now_ms()
        actions: list[session.Action] = []
        if new.strategy != old.strategy:
            actions += self.session.set_strategy(
                config_mod.to_strategy(new.strategy), new.strategy.deadline_timeout_sec, now)
        if new.watch_wallets != old.watch_wallets:
            actions += self.session.set_watch_wallets(
                config_mod.to_watch_wallets(new, self.wallets.pubkeys()[0]))
        if new.mirror != old.mirror:
            actions += self.session.set_mirror_config(config_mod.to_mirror_config(new.mirror))
        if [w.keypair_path for w in new.wallets] != [w.keypair_path for w in old.wallets]:
            log.warning("reload_wallets_need_restart",
                        detail="keypairs are loaded at start; restart to change [[wallets]]")
        self.cfg, pending = reload_plan(old, new)
        if pending:
            log.warning("reload_needs_restart", keys=pending,
                        detail="these settings keep their start-up values until a restart")
        self.executor.apply_config(self.cfg)
        self._dispatch(actions, time.perf_counter_ns())
        log.info("config_reloaded", strategy_changed=new.strategy != old.strategy)

    # ----------------------------------------------------------------- health

    def health(self) -> HealthReport:
        state = self.stream.state
        last = self.executor.last_signal_monotonic
        return assess_health(
            connected=state.connected, configured=state.configured,
            loop_lag_ms=self.watchdog.loop_lag_ms(), journal_healthy=self.journal.healthy,
            last_signal_age_s=None if last is None else time.monotonic() - last,
            unknown_outcomes=len(self.executor.unknown_outcomes),
            rpc_providers=self.rpc_pool.states(), rpc_preferred=self.rpc_pool.preferred)

    def health_body(self) -> dict[str, Any]:
        return health_body(self.health())

    def _is_healthy(self) -> bool:
        report = self.health()
        if report.ok != self._was_healthy:
            self._was_healthy = report.ok
            kind: NotifyKind = "healthy" if report.ok else "unhealthy"
            log.warning("health_changed", status=report.status, reasons=report.reasons)
            self.notifier.notify(kind, f"lasersell-bot is {report.status}: "
                                 f"{', '.join(report.reasons) or 'all good'}")
        # A stream that is reconnecting is alive; one down past the budget is not.
        down_for = self.stream.state.down_for(time.monotonic())
        return report.connected or down_for < STREAM_DOWN_BUDGET_SEC

    async def _report_status(self) -> None:
        summary_every = self.cfg.log.pnl_summary_sec
        last_summary = time.monotonic()
        while True:
            last = self.executor.last_signal_monotonic
            self.sd.status(make_status_line(
                positions=self.session.position_count(),
                last_signal_age_s=None if last is None else time.monotonic() - last,
                reconnects=self.stream.state.reconnects))
            await asyncio.sleep(STATUS_EVERY_SEC)
            if time.monotonic() - last_summary >= summary_every:
                last_summary = time.monotonic()
                self._log_pnl_summary()

    def _log_pnl_summary(self) -> None:
        log.info("pnl_summary", positions=self.session.position_count(),
                 profit_units=self.session.profit_total(),
                 lane_dropped=int(self.metrics.low_lane_dropped.get()),
                 rtt_ms=self.stream.state.rtt_ms)

    # ----------------------------------------------------------------- signals

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            log.error("second_stop_signal_exiting_now", signal=sig.name)
            self.journal.flush(1.0)
            os._exit(EXIT_NOW_CODE)
        log.info("stop_signal", signal=sig.name)
        self._stop.set()


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _supervised(name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a background loop; if it crashes, log it and start it again."""
    while True:
        try:
            await loop()
            return
        except Exception:
            log.exception("background_task_crashed", task=name)
            await asyncio.sleep(1.0)


def _public_fields(message: Any) -> dict[str, Any]:
    return {f: getattr(message, f) for f in message.__struct_fields__}
