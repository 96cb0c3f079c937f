"""The landing policy with a fake clock, and on-chain error classification."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from lasersell_bot.config import SendConfig
from lasersell_bot.landing import (
    METEORA_DAMM_V2,
    METEORA_DBC,
    PUMP_FUN,
    PUMP_SWAP,
    RAYDIUM_CPMM,
    RAYDIUM_LAUNCHPAD,
    CheckBlockhash,
    Done,
    Expired,
    Failed,
    Landed,
    LandingParams,
    LandingPolicy,
    Outcome,
    Poll,
    Rebroadcast,
    SignatureStatus,
    Unknown,
    Wait,
    classify_error,
    next_slippage,
)

PARAMS = LandingParams(poll_interval=0.2, rebroadcast_interval=2.0, confirm_timeout=90.0,
                       blockhash_check_interval=2.0, expiry_grace=4.0)
COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"


@dataclass
class World:
    """Scripted chain/RPC answers as functions of fake time; records what was asked."""

    status_at: Callable[[float], SignatureStatus | None] = lambda t: None
    valid_at: Callable[[float], bool] = lambda t: True
    rpc_up: Callable[[float], bool] = lambda t: True
    rtt: float = 0.01
    polls: list[float] = field(default_factory=list)
    checks: list[float] = field(default_factory=list)
    rebroadcasts: list[float] = field(default_factory=list)


def drive(world: World, params: LandingParams = PARAMS, start: float = 1000.0,
          first_accepted: bool = True) -> tuple[Outcome, float, LandingPolicy]:
    """Run the policy to completion against ``world``; return (outcome, end time, policy)."""
    now = start
    policy = LandingPolicy(params, now)
    policy.on_submit_result(first_accepted, now)
    for _ in range(100_000):
        action = policy.next_action(now)
        if isinstance(action, Done):
            return action.outcome, now, policy
        now = _perform(policy, world, action, now)
    raise AssertionError("policy never finished")


def _perform(policy: LandingPolicy, world: World, action: object, now: float) -> float:
    if isinstance(action, Wait):
        assert action.until > now, "Wait must move time forward"
        return action.until
    if isinstance(action, Rebroadcast):
        world.rebroadcasts.append(now)
        policy.on_submit_result(True, now)
        return now
    now += world.rtt
    if not world.rpc_up(now):
        policy.on_rpc_error(now)
    elif isinstance(action, Poll):
        world.polls.append(now)
        policy.on_status(world.status_at(now), now)
    elif isinstance(action, CheckBlockhash):
        world.checks.append(now)
        policy.on_blockhash_valid(world.valid_at(now), now)
    else:
        raise AssertionError(f"unexpected action {action!r}")
    return now


def confirmed(slot: int, err: object = None, level: str = "confirmed") -> SignatureStatus:
    return SignatureStatus(slot=slot, confirmation_status=level, err=err)


def test_lands_when_confirmed() -> None:
    world = World(status_at=lambda t: confirmed(77) if t >= 1001.0 else None)
    outcome, end, _ = drive(world)
    assert outcome == Landed(slot=77)
    assert 1001.0 <= end <= 1001.5


def test_processed_is_not_landed_until_confirmed() -> None:
    def status(t: float) -> SignatureStatus | None:
        if t < 1001.0:
            return None
        return confirmed(5, level="processed" if t < 1003.0 else "finalized")

    outcome, end, _ = drive(World(status_at=status))
    assert outcome == Landed(slot=5)
    assert end >= 1003.0


def test_fails_on_chain_with_err_json() -> None:
    err = {"InstructionError": [2, {"Custom": 6003}]}
    outcome, _, _ = drive(World(status_at=lambda t: confirmed(9, err=err) if t > 1000.5 else None))
    assert outcome == Failed(err=err, slot=9)


def test_processed_failure_waits_for_confirmation() -> None:
    err = {"InstructionError": [0, {"Custom": 1}]}

    def status(t: float) -> SignatureStatus:
        if t < 1002.0:
            return confirmed(4, err=err, level="processed")
        return confirmed(6)  # the processed failure forked away; it landed elsewhere

    outcome, _, _ = drive(World(status_at=status))
    assert outcome == Landed(slot=6)


def test_expires_only_after_blockhash_invalid_over_grace() -> None:
    world = World(valid_at=lambda t: t < 1060.0)
    outcome, end, _ = drive(world)
    assert outcome == Expired()
    first_false = min(t for t in world.checks if t >= 1060.0)
    assert end >= first_false + PARAMS.expiry_grace
    assert world.polls[-1] >= first_false + PARAMS.expiry_grace, "a poll after the proof"


def test_never_expires_while_blockhash_valid() -> None:
    world = World(valid_at=lambda t: True)
    outcome, end, _ = drive(world)
    assert outcome == Unknown(reason="timeout")
    assert end == pytest.approx(1000.0 + PARAMS.confirm_timeout, abs=0.5)


def test_single_invalid_answer_is_not_proof() -> None:
    """A lagging node may briefly not know a fresh blockhash: one false is noise."""
    world = World(valid_at=lambda t: not 1010.0 <= t < 1011.0)
    outcome, _, _ = drive(world)
    assert isinstance(outcome, Unknown)


def test_expiry_requires_signature_unseen() -> None:
    world = World(valid_at=lambda t: t < 1030.0,
                  status_at=lambda t: confirmed(3, level="processed") if t > 1020.0 else None)
    outcome, _, _ = drive(world)
    assert outcome == Unknown(reason="seen_not_confirmed")


def test_unknown_when_rpc_never_answers() -> None:
    world = World(valid_at=lambda t: False, rpc_up=lambda t: False)
    outcome, end, policy = drive(world)
    assert outcome == Unknown(reason="rpc_unreachable")
    assert end == pytest.approx(1000.0 + PARAMS.confirm_timeout, abs=0.5)
    assert policy.rpc_errors > 100


def test_rpc_outage_during_expiry_gives_unknown_not_expired() -> None:
    world = World(valid_at=lambda t: t < 1060.0, rpc_up=lambda t: t < 1061.0)
    outcome, _, _ = drive(world)
    assert isinstance(outcome, Unknown)


def test_rebroadcast_cadence_and_stops_once_seen() -> None:
    world = World(status_at=lambda t: confirmed(1, level="processed") if t >= 1009.0 else None)
    _, _, policy = drive(world, PARAMS.__class__(confirm_timeout=20.0))
    gaps = [b - a for a, b in zip(world.rebroadcasts, world.rebroadcasts[1:], strict=False)]
    assert world.rebroadcasts[0] == pytest.approx(1002.0, abs=0.05)
    assert all(gap == pytest.approx(2.0, abs=0.05) for gap in gaps)
    assert max(world.rebroadcasts) < 1009.0
    assert policy.rebroadcasts == len(world.rebroadcasts) == 4


def test_poll_cadence() -> None:
    world = World(status_at=lambda t: confirmed(2) if t >= 1003.0 else None)
    drive(world)
    gaps = [b - a for a, b in zip(world.polls, world.polls[1:], strict=False)]
    assert gaps and all(0.15 <= gap <= 0.25 for gap in gaps)


def test_slow_rpc_does_not_starve_rebroadcast_or_checks() -> None:
    world = World(rtt=0.5, valid_at=lambda t: t < 1030.0)
    outcome, _, _ = drive(world)
    assert world.rebroadcasts and world.checks
    assert outcome == Expired()


def test_params_from_config() -> None:
    params = LandingParams.from_config(SendConfig(confirm_poll_ms=150, rebroadcast_interval_ms=900,
                                                  confirm_timeout_sec=45.0))
    assert (params.poll_interval, params.rebroadcast_interval, params.confirm_timeout) == (
        0.15, 0.9, 45.0)


def test_status_from_json_shapes() -> None:
    modern = SignatureStatus.from_json({"slot": 12, "confirmations": 3, "err": None,
                                        "status": {"Ok": None}, "confirmationStatus": "confirmed"})
    legacy_rooted = SignatureStatus.from_json({"slot": 12, "confirmations": None, "err": None})
    assert modern.settled and legacy_rooted.settled
    assert not SignatureStatus.from_json({"slot": 1, "confirmations": 0, "err": None,
                                          "confirmationStatus": "processed"}).settled


# --- classification -----------------------------------------------------------

def _ix_err(index: int, code: int) -> dict[str, object]:
    return {"InstructionError": [index, {"Custom": code}]}


@pytest.mark.parametrize(("program", "code"), [
    (PUMP_FUN, 6002), (PUMP_FUN, 6003), (PUMP_FUN, 6042),
    (PUMP_SWAP, 6004), (PUMP_SWAP, 6040),
    (RAYDIUM_LAUNCHPAD, 6004), (RAYDIUM_CPMM, 6005),
    (METEORA_DBC, 6002), (METEORA_DAMM_V2, 6002),
])
def test_slippage_codes_per_program(program: str, code: int) -> None:
    programs = [COMPUTE_BUDGET, COMPUTE_BUDGET, program]
    assert classify_error(_ix_err(2, code), programs) == "slippage"


@pytest.mark.parametrize(("program", "code"), [
    (PUMP_FUN, 6004),        # MintDoesNotMatchBondingCurve
    (PUMP_SWAP, 6002),       # zeroQuoteAmount
    (RAYDIUM_CPMM, 6004),    # IncorrectLpMint
    (METEORA_DAMM_V2, 6003), # PoolDisabled
])
def test_same_number_other_program_is_not_slippage(program: str, code: int) -> None:
    assert classify_error(_ix_err(0, code), [program]) == "other"


def test_program_resolved_from_instruction_index() -> None:
    programs = [COMPUTE_BUDGET, PUMP_FUN]
    assert classify_error(_ix_err(1, 6003), programs) == "slippage"
    assert classify_error(_ix_err(0, 6003), programs) == "other"  # compute budget, not a DEX


def test_unknown_program_falls_back_to_any_dex_code() -> None:
    assert classify_error(_ix_err(3, 6005)) == "slippage"
    assert classify_error(_ix_err(3, 6001)) == "other"


def test_non_custom_errors_are_other() -> None:
    assert classify_error({"InstructionError": [1, "InvalidAccountData"]}) == "other"
    assert classify_error("InsufficientFundsForFee") == "other"
    assert classify_error(None) == "other"
    assert classify_error({"InstructionError": [0, {"Custom": 1}]}) == "other"  # SPL token


def test_error_strings_and_logs() -> None:
    assert classify_error("Error processing Instruction 3: custom program error: 0x1773") == (
        "slippage")
    logs = ["Program log: AnchorError occurred. Error Code: ExceededSlippage. Error Number: "
            "6004. Error Message: Exceeded slippage tolerance."]
    assert classify_error(_ix_err(0, 9999), ["x"], logs) == "slippage"
    assert classify_error(_ix_err(0, 9999), ["x"], ["Program log: Instruction: Sell"]) == "other"


def test_next_slippage() -> None:
    assert next_slippage(1000, 500, 5000) == 1500
    assert next_slippage(4800, 500, 5000) == 5000
    assert next_slippage(5000, 500, 5000) is None
    assert next_slippage(1000, 0, 5000) is None
