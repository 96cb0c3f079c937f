"""What an operator may do to a running daemon, shared by the HTTP API, the CLI
(through the API) and Telegram.

Nothing here signs or sends a transaction. A manual sell is a
``request_exit_signal`` to the server; the exit signal it brings back goes through
the same guard and executor as any other, and it is refused while an earlier sell
of the position may still land. Bad input raises ``ControlError`` naming the field.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from lasersell_bot import config as config_mod
from lasersell_bot import protocol
from lasersell_bot import session as session_mod
from lasersell_bot.config import StrategyConfig
from lasersell_bot.logs import get_logger

# A manual sell request waits this long for its exit signal before another may be sent.
SELL_REQUEST_WAIT_SEC: Final = 15.0
MAX_BPS: Final = 10_000

log = get_logger("control")


class ControlError(Exception):
    """A refused request: HTTP status, a stable code, the field at fault (if any)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class DaemonControls(Protocol):
    """The parts of the daemon the actions use (``Daemon`` has them)."""

    session: session_mod.Session

    def send_to_stream(self, message: protocol.ClientMessage) -> None: ...
    def stream_ready(self) -> bool: ...
    def exit_busy(self, position_id: int) -> bool: ...
    def set_mirror_paused(self, paused: bool) -> None: ...
    def mirror_paused(self) -> bool: ...
    def dispatch(self, actions: list[session_mod.Action]) -> None: ...
    def config_strategy(self) -> StrategyConfig: ...
    def max_slippage_bps(self) -> int: ...


@dataclass
class Actions:
    """Operator actions over ``daemon``; ``publish`` reports each one as an event."""

    daemon: DaemonControls
    publish: Callable[[str, dict[str, Any]], None]
    clock: Callable[[], float] = time.monotonic
    _sell_requests: dict[int, float] = field(default_factory=dict)
    runtime_strategy: StrategyConfig | None = None

    # ----------------------------------------------------------------- positions

    def position(self, position_id: int) -> session_mod.Position:
        position = self.daemon.session.position(position_id)
        if position is None:
            raise ControlError(404, "position_not_found", f"no open position {position_id}",
                               "id")
        return position

    def resolve(self, target: str) -> list[int]:
        """Position ids for ``ID``, ``MINT`` or ``all`` (404 when nothing matches)."""
        positions = self.daemon.session.positions()
        if target == "all":
            return [p.position_id for p in positions]
        if target.isdigit():
            return [self.position(int(target)).position_id]
        matches = [p.position_id for p in positions if p.opened.mint == target]
        if not matches:
            raise ControlError(404, "position_not_found", f"no open position for {target}", "id")
        return matches

    def sell(self, position_id: int, slippage_bps: int | None = None,
             source: str = "api") -> dict[str, Any]:
        position = self.position(position_id)
        if position.opened.watched:
            raise ControlError(409, "watched_position", f"position {position_id} belongs to a "
                               "watched wallet, not to one of ours")
        if slippage_bps is not None:
            check_slippage(slippage_bps, self.daemon.max_slippage_bps())
        if self.daemon.exit_busy(position_id):
            raise ControlError(409, "sell_in_flight", f"an exit of position {position_id} "
                               "may still land; wait for its outcome")
        requested = self._sell_requests.get(position_id)
        if requested is not None and self.clock() - requested < SELL_REQUEST_WAIT_SEC:
            raise ControlError(409, "sell_requested", f"a sell of position {position_id} was "
                               "requested moments ago; its exit signal is on the way")
        self._require_stream()
        self.daemon.send_to_stream(protocol.RequestExitSignal(
            position_id=position_id, slippage_bps=slippage_bps))
        self._sell_requests[position_id] = self.clock()
        log.info("manual_sell_requested", position_id=position_id, mint=position.opened.mint,
                 slippage_bps=slippage_bps, source=source)
        result = {"position_id": position_id, "requested": "sell", "slippage_bps": slippage_bps}
        self.publish("action", {**result, "source": source})
        return result

    def exit_seen(self, position_id: int) -> None:
        """An exit signal arrived (or the position closed): a new request may follow."""
        self._sell_requests.pop(position_id, None)

    def sell_pending(self, position_id: int) -> bool:
        requested = self._sell_requests.get(position_id)
        return requested is not None and self.clock() - requested < SELL_REQUEST_WAIT_SEC

    def close(self, position_id: int, source: str = "api") -> dict[str, Any]:
        """Stop tracking a position on the server (no sell)."""
        self.position(position_id)
        self._require_stream()
        self.daemon.send_to_stream(protocol.ClosePosition(position_id=position_id))
        log.info("manual_close_requested", position_id=position_id, source=source)
        result = {"position_id": position_id, "requested": "close"}
        self.publish("action", {**result, "source": source})
        return result

    def set_position_strategy(self, position_id: int, body: Any) -> dict[str, Any]:
        self.position(position_id)
        strategy = parse_strategy(body)
        self.daemon.dispatch(self.daemon.session.set_position_strategy(
            position_id, config_mod.to_strategy(strategy)))
        log.info("position_strategy_set", position_id=position_id)
        self.publish("action", {"position_id": position_id, "requested": "strategy"})
        return {"position_id": position_id, "strategy": strategy_body(strategy)}

    def set_strategy(self, body: Any) -> dict[str, Any]:
        """Change the global strategy at run time (kept across reconnects, not saved)."""
        strategy = parse_strategy(body)
        actions = self.daemon.session.set_strategy(
            config_mod.to_strategy(strategy), strategy.deadline_timeout_sec,
            int(time.time() * 1000), deadline_retry_sec=strategy.deadline_retry_sec)
        self.runtime_strategy = strategy
        self.daemon.dispatch(actions)
        differs = strategy != self.daemon.config_strategy()
        log.info("runtime_strategy_set", differs_from_config=differs)
        self.publish("action", {"requested": "strategy", "differs_from_config": differs})
        return {"strategy": strategy_body(strategy), "differs_from_config": differs}

    # ----------------------------------------------------------------- mirror

    def pause_mirror(self, source: str = "api") -> dict[str, Any]:
        self.daemon.set_mirror_paused(True)
        log.warning("mirror_paused", source=source)
        self.publish("mirror", {"paused": True})
        return {"paused": True}

    def resume_mirror(self, source: str = "api") -> dict[str, Any]:
        self.daemon.set_mirror_paused(False)
        log.info("mirror_resumed", source=source)
        self.publish("mirror", {"paused": False})
        return {"paused": False}

    def _require_stream(self) -> None:
        if not self.daemon.stream_ready():
            raise ControlError(503, "stream_down", "the stream session is not connected; "
                               "the request cannot reach the server now")


def check_slippage(value: Any, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(400, "invalid_field", "slippage_bps: must be an integer",
                           "slippage_bps")
    if not 0 < value <= min(maximum, MAX_BPS):
        raise ControlError(400, "invalid_field", f"slippage_bps: must be between 1 and "
                           f"{min(maximum, MAX_BPS)} (send.slippage_max_bps) (got {value})",
                           "slippage_bps")
    return value


def parse_strategy(body: Any) -> StrategyConfig:
    """A strategy object as in the config's ``[strategy]``; errors name the field."""
    if not isinstance(body, dict):
        raise ControlError(400, "invalid_body", "the body must be a JSON object of strategy "
                           "settings", "strategy")
    try:
        strategy = config_mod._convert({"strategy": body}).strategy
        config_mod._check_strategy(strategy)
    except config_mod.ConfigError as exc:
        key = str(exc).split(":", 1)[0]
        field_name = key.removeprefix("strategy.") if key.startswith("strategy.") else key
        raise ControlError(400, "invalid_field", str(exc).removeprefix("strategy."),
                           field_name) from None
    return strategy


def strategy_body(strategy: StrategyConfig) -> dict[str, Any]:
    import msgspec

    body: dict[str, Any] = msgspec.to_builtins(strategy)
    return body
