"""The pieces the executor's flows pass around, and the pure helpers around them.

What the executor needs from its collaborators (``Lander``, ``SessionHooks``,
``Notify``), a transaction's stages on its way to the wire (``Attempt``, ``Prepared``,
``Signed``), and pure functions: decode and sign, classify a landing outcome, describe a
guard verdict for the journal and the log.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from solders.keypair import Keypair
from solders.transaction import VersionedTransaction

from lasersell_bot import landing, protocol
from lasersell_bot.config import WatchWalletConfig
from lasersell_bot.exitbook import Outcome
from lasersell_bot.guard import Expectation, Verdict
from lasersell_bot.journal import AttemptState
from lasersell_bot.logs import get_logger
from lasersell_bot.notify import NotifyKind
from lasersell_bot.session import Position
from lasersell_bot.vet import Refused, Vetted, classify_failure
from lasersell_bot.wallet import SigningRefused, sign_into_slot

log = get_logger("executor")

LAMPORTS_PER_SOL = 1_000_000_000
USD1_UNITS = 1_000_000


class Lander(Protocol):
    """What the executor needs from send.py (a Sender wraps targets and the RPC)."""

    async def land(
        self, signed_tx: bytes, signature: str, blockhash: str,
        on_submitted: Callable[[str, float], None] | None = None,
    ) -> landing.Outcome: ...

    async def submit_once(self, signed_tx: bytes, signature: str) -> bool: ...


@runtime_checkable
class EagerLander(Lander, Protocol):
    """A lander that can write a first submission in the caller's turn (``RpcLander``):
    ``send_now`` writes the bytes and returns a handle that ``land(first=...)`` takes."""

    def send_now(self, signed_tx: bytes) -> Any: ...

    async def land(
        self, signed_tx: bytes, signature: str, blockhash: str,
        on_submitted: Callable[[str, float], None] | None = None, first: Any = None,
    ) -> landing.Outcome: ...


class SessionHooks(Protocol):
    def position(self, position_id: int) -> Position | None: ...
    def exit_started(self, position_id: int) -> None: ...
    def exit_finished(self, position_id: int, landed: bool, now_ms: int) -> None: ...


class Notify(Protocol):
    def notify(self, kind: NotifyKind, text: str) -> bool: ...


@dataclass
class Attempt:
    signal: protocol.ExitSignalWithTx
    signal_id: int
    attempt_no: int
    received_ns: int


@dataclass(frozen=True)
class Signed:
    tx: bytes
    signature: str

    @property
    def blockhash(self) -> str:
        """Read when landing starts, not on the way to the first send (~5 us decode)."""
        return blockhash_of(self.tx)


@dataclass(frozen=True)
class Prepared:
    """A transaction on its way to signing: whose key, the bytes, what was expected, and
    the vetting so far (a final ``Vetted``, or the static ``Verdict`` still to finish)."""

    keypair: Keypair
    unsigned: bytes
    expect: Expectation
    vetted: Vetted | Verdict


def decode_b64(tx_b64: str) -> bytes:
    try:
        return base64.b64decode(tx_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Refused("undecodable", f"unsigned_tx_b64 is not valid base64: {exc}") from exc


def sign(unsigned: bytes, keypair: Keypair) -> Signed:
    try:
        signed, signature = sign_into_slot(unsigned, keypair)
    except SigningRefused as exc:
        raise Refused("signing_refused", str(exc)) from exc
    return Signed(signed, signature)


def blockhash_of(tx: bytes) -> str:
    return str(VersionedTransaction.from_bytes(tx).message.recent_blockhash)


def exit_outcome(result: landing.Outcome, signed_tx: bytes) -> tuple[Outcome, AttemptState]:
    """Map a known landing outcome (``_land_until_known`` never returns Unknown)."""
    if isinstance(result, landing.Landed):
        return Outcome.LANDED, "landed"
    if isinstance(result, landing.Failed):
        slippage = classify(result.err, signed_tx) == "slippage"
        return (Outcome.FAILED_SLIPPAGE if slippage else Outcome.FAILED), "failed"
    return Outcome.EXPIRED, "expired"


def classify(err: Any, signed_tx: bytes) -> str:
    return classify_failure(err, VersionedTransaction.from_bytes(signed_tx).message)


def vetted_detail(vetted: Vetted) -> dict[str, Any]:
    detail: dict[str, Any] = {"path": vetted.path}
    if vetted.static.unknown_programs:
        detail["unknown_programs"] = list(vetted.static.unknown_programs)
    if vetted.effects is not None and vetted.effects.deltas is not None:
        deltas = vetted.effects.deltas
        detail["deltas"] = {"sol": deltas.sol, "mint": deltas.mint, "quote": deltas.quote}
    if vetted.simulation_ms is not None:
        detail["simulation_ms"] = round(vetted.simulation_ms, 3)
    return detail


def log_vetted(vetted: Vetted, **context: Any) -> None:
    log.info("guard_passed", summary=vetted.summary(), **context)


def agreed_amount(watch: WatchWalletConfig, quote_input: str) -> int:
    if quote_input == "USD1":
        return round(watch.auto_buy_usd1 * USD1_UNITS)
    return round(watch.auto_buy_sol * LAMPORTS_PER_SOL)


def realized_part(signal: protocol.ExitSignalWithTx) -> float:
    """The profit this sell realised, for the metric; 0 when it is beyond a float (the
    decoder keeps integers of any size, and a hostile server may send one)."""
    try:
        if signal.sell_tokens and signal.position_tokens:
            return signal.profit_units * signal.sell_tokens / signal.position_tokens
        return float(signal.profit_units)
    except OverflowError:
        return 0.0
