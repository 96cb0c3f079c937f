"""Landing policy: when to poll, re-broadcast, check the blockhash, and give up.

Sans-I/O, in the style of python-websockets' ``protocol.py``: the I/O loop
(``send.land``) feeds events in (``on_submit_result``, ``on_status``,
``on_blockhash_valid``, ``on_rpc_error``) and asks ``next_action(now)`` what to
do next. Time is always an argument; nothing here sleeps or touches a socket.

The one rule that matters: a transaction is reported ``Expired`` only when the
RPC has said, repeatedly and over a grace window, that its blockhash is no
longer valid *and* a status poll made after that still cannot see the
signature. When expiry cannot be established (RPC unreachable) the policy
keeps going until a hard bound and reports ``Unknown``: the caller must treat
that as "may still land" and never sign a replacement sell on it.

Also here: ``classify_error`` (is an on-chain failure a slippage failure?) and
``next_slippage`` (the bumped slippage for the retry).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lasersell_bot.config import SendConfig

# --- outcomes ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Landed:
    """Confirmed (or finalized) on chain without error."""

    slot: int
    kind: Literal["landed"] = "landed"


@dataclass(frozen=True, slots=True)
class Failed:
    """Confirmed on chain with a non-null ``err`` (the RPC's JSON, untouched)."""

    err: Any
    slot: int
    kind: Literal["failed"] = "failed"


@dataclass(frozen=True, slots=True)
class Expired:
    """Blockhash proven expired and the signature never seen: it cannot land."""

    kind: Literal["expired"] = "expired"


@dataclass(frozen=True, slots=True)
class Unknown:
    """Gave up without proof either way: the transaction may still land."""

    reason: str
    kind: Literal["unknown"] = "unknown"


Outcome = Landed | Failed | Expired | Unknown

# --- actions ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poll:
    """Call ``getSignatureStatuses`` and feed the answer to ``on_status``."""


@dataclass(frozen=True, slots=True)
class Rebroadcast:
    """Send the same signed bytes again (results go to ``on_submit_result``)."""


@dataclass(frozen=True, slots=True)
class CheckBlockhash:
    """Call ``isBlockhashValid`` and feed the answer to ``on_blockhash_valid``."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do before monotonic time ``until``."""

    until: float


@dataclass(frozen=True, slots=True)
class Done:
    """Finished; ``outcome`` is final."""

    outcome: Outcome


Action = Poll | Rebroadcast | CheckBlockhash | Wait | Done

# --- statuses ---------------------------------------------------------------

LANDED_LEVELS = frozenset({"confirmed", "finalized"})


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """One entry of ``getSignatureStatuses``' ``value`` list."""

    slot: int
    confirmation_status: str
    err: Any = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SignatureStatus:
        level = value.get("confirmationStatus")
        if level is None:  # pre-1.5 nodes: confirmations == null means rooted
            level = "finalized" if value.get("confirmations") is None else "processed"
        return cls(slot=int(value.get("slot") or 0), confirmation_status=str(level),
                   err=value.get("err"))

    @property
    def settled(self) -> bool:
        """At a commitment level we act on (a processed result can still fork away)."""
        return self.confirmation_status in LANDED_LEVELS


# --- parameters -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LandingParams:
    """Cadences and bounds, in seconds."""

    poll_interval: float = 0.2
    rebroadcast_interval: float = 2.0
    confirm_timeout: float = 90.0
    blockhash_check_interval: float = 2.0
    expiry_grace: float = 4.0

    @classmethod
    def from_config(cls, send: SendConfig) -> LandingParams:
        return cls(
            poll_interval=send.confirm_poll_ms / 1000,
            rebroadcast_interval=send.rebroadcast_interval_ms / 1000,
            confirm_timeout=send.confirm_timeout_sec,
        )


# --- the state machine ------------------------------------------------------


class LandingPolicy:
    """Decides the next step for one signed transaction, from first send to outcome.

    ``now`` at construction is the time of the first send; the hard bound is
    ``params.confirm_timeout`` after it.
    """

    def __init__(self, params: LandingParams, now: float) -> None:
        self.params = params
        self.started = now
        self.deadline = now + params.confirm_timeout
        self.accepted_at: float | None = None
        self.rpc_errors = 0
        self.rebroadcasts = 0
        self._seen: SignatureStatus | None = None
        self._outcome: Outcome | None = None
        self._next_poll = now
        self._next_rebroadcast = now + params.rebroadcast_interval
        self._next_check = now + params.blockhash_check_interval
        self._invalid_since: float | None = None
        self._expiry_proven_at: float | None = None
        self._last_rpc_ok: float | None = None
        self._poll_issued = now

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    def on_submit_result(self, accepted: bool, now: float) -> None:
        """A (re-)broadcast finished; ``accepted`` if any target took the bytes."""
        if accepted and self.accepted_at is None:
            self.accepted_at = now

    def on_status(self, status: SignatureStatus | None, now: float) -> None:
        """The answer to a ``Poll``: ``None`` when the RPC does not know the signature."""
        self._last_rpc_ok = now
        if self._outcome is not None:
            return
        self._seen = status
        if status is None:
            proven = self._expiry_proven_at
            if proven is not None and self._poll_issued >= proven:
                self._outcome = Expired()
            return
        if status.settled:
            self._outcome = (Landed(status.slot) if status.err is None
                             else Failed(status.err, status.slot))

    def on_blockhash_valid(self, valid: bool, now: float) -> None:
        """The answer to a ``CheckBlockhash``."""
        self._last_rpc_ok = now
        if valid:
            self._invalid_since = None
            self._expiry_proven_at = None
            return
        if self._invalid_since is None:
            self._invalid_since = now
        if now - self._invalid_since >= self.params.expiry_grace:
            self._expiry_proven_at = now
            self._next_poll = min(self._next_poll, now)

    def on_rpc_error(self, now: float) -> None:
        """A ``Poll`` or ``CheckBlockhash`` got no usable answer."""
        self.rpc_errors += 1

    def next_action(self, now: float) -> Action:
        """What to do now; returning an action schedules its next occurrence."""
        if self._outcome is not None:
            return Done(self._outcome)
        if now >= self.deadline:
            self._outcome = Unknown(self._unknown_reason())
            return Done(self._outcome)
        due = self._due_action(now)
        if due is not None:
            return due
        return Wait(min(self._next_poll, self._next_rebroadcast_at(), self._next_check,
                        self.deadline))

    def _due_action(self, now: float) -> Action | None:
        """The most overdue of poll, re-broadcast and blockhash check, if any is due."""
        candidates: list[tuple[float, Action]] = [
            (self._next_poll, Poll()),
            (self._next_rebroadcast_at(), Rebroadcast()),
            (self._next_check, CheckBlockhash()),
        ]
        when, action = min(candidates, key=lambda pair: pair[0])
        if when > now:
            return None
        if isinstance(action, Poll):
            self._next_poll = now + self.params.poll_interval
            self._poll_issued = now
        elif isinstance(action, Rebroadcast):
            self._next_rebroadcast = now + self.params.rebroadcast_interval
            self.rebroadcasts += 1
        else:
            self._next_check = now + self.params.blockhash_check_interval
        return action

    def _next_rebroadcast_at(self) -> float:
        """Stop re-broadcasting once the signature is visible; resume if it forks away."""
        return float("inf") if self._seen is not None else self._next_rebroadcast

    def _unknown_reason(self) -> str:
        if self._last_rpc_ok is None:
            return "rpc_unreachable"
        if self._seen is not None:
            return "seen_not_confirmed"
        return "timeout"


# --- on-chain error classification -----------------------------------------

PUMP_FUN = "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P"
PUMP_SWAP = "pAMMBay6oceH9fJKBRHGP5D4bD4sWpmSwMn52FMfXEA"
RAYDIUM_LAUNCHPAD = "LanMV9sAd7wArD4vJFi2qDdfnVhFxYSUg6eADduJ3uj"
RAYDIUM_CPMM = "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"
METEORA_DBC = "dbcij3LWUppWqq96dh6gJWwBifmcGfLSB5D4DuSMaqN"
METEORA_DAMM_V2 = "cpamdpZCGKUy5JxQXB4dcpGPiikHawvSWAd6mEn1sGG"

# Anchor custom error codes (6000 + variant index) that mean "price moved past
# the slippage bound", read from each program's published IDL / error enum.
SLIPPAGE_CODES: dict[str, frozenset[int]] = {
    # pump.fun IDL: TooMuchSolRequired, TooLittleSolReceived, BuySlippageBelowMinTokensOut
    PUMP_FUN: frozenset({6002, 6003, 6042}),
    # pump_amm IDL: ExceededSlippage, BuySlippageBelowMinBaseAmountOut
    PUMP_SWAP: frozenset({6004, 6040}),
    # raydium launchpad ErrorCode: ExceededSlippage (after NotApproved, InvalidOwner,
    # InvalidInput, InputNotMatchCurveConfig)
    RAYDIUM_LAUNCHPAD: frozenset({6004}),
    # raydium-cp-swap error.rs: ExceededSlippage (sixth variant)
    RAYDIUM_CPMM: frozenset({6005}),
    # meteora dynamic-bonding-curve and damm-v2 PoolError: ExceededSlippage (third)
    METEORA_DBC: frozenset({6002}),
    METEORA_DAMM_V2: frozenset({6002}),
}
ANY_DEX_SLIPPAGE_CODES = frozenset().union(*SLIPPAGE_CODES.values())

_HEX_CUSTOM = re.compile(r"custom program error: (0x[0-9a-fA-F]+)")
_NUMBER_CUSTOM = re.compile(r"Custom\W+(\d+)")

ErrorClass = Literal["slippage", "other"]


def classify_error(
    err: Any,
    instruction_programs: Sequence[str] | None = None,
    logs: Sequence[str] | None = None,
) -> ErrorClass:
    """``"slippage"`` if an on-chain ``err`` is a DEX slippage bound, else ``"other"``.

    ``err`` is the RPC's JSON (``{"InstructionError": [i, {"Custom": n}]}``) or an
    error string. ``instruction_programs[i]`` (the program id of top-level
    instruction ``i``) makes the match exact; without it any known DEX
    slippage code counts. Program logs mentioning "slippage" also count.
    """
    if logs is not None and any("slippage" in line.lower() for line in logs):
        return "slippage"
    index, code = _custom_error(err)
    if code is None:
        return "other"
    program = _program_at(instruction_programs, index)
    codes = SLIPPAGE_CODES.get(program, frozenset()) if program else ANY_DEX_SLIPPAGE_CODES
    return "slippage" if code in codes else "other"


def _custom_error(err: Any) -> tuple[int | None, int | None]:
    """(instruction index, custom code) from an ``InstructionError``, if any."""
    if isinstance(err, Mapping):
        detail = err.get("InstructionError")
        if isinstance(detail, list | tuple) and len(detail) == 2:
            index, inner = detail
            if isinstance(inner, Mapping) and isinstance(inner.get("Custom"), int):
                return (index if isinstance(index, int) else None), inner["Custom"]
        return None, None
    if isinstance(err, str):
        hex_match = _HEX_CUSTOM.search(err)
        if hex_match:
            return None, int(hex_match.group(1), 16)
        number_match = _NUMBER_CUSTOM.search(err)
        if number_match:
            return None, int(number_match.group(1))
    return None, None


def _program_at(programs: Sequence[str] | None, index: int | None) -> str | None:
    if programs is None or index is None or not 0 <= index < len(programs):
        return None
    return programs[index]


def next_slippage(current_bps: int, bump_bps: int, max_bps: int) -> int | None:
    """The slippage for the next attempt, or ``None`` when already at the cap."""
    if bump_bps <= 0 or current_bps >= max_bps:
        return None
    return min(current_bps + bump_bps, max_bps)
