"""Guard: more hostile classes, every factory variant refused for its reason, and
properties over random instruction mixes (honest and hostile) and random bytes."""

from __future__ import annotations

import struct

import pytest
import solders.system_program as sysp
from solders.instruction import Instruction

from lasersell_bot import guard
from lasersell_bot.config import GuardConfig
from lasersell_bot.guard import GuardPolicy, check_transaction
from tests.txfactory import Scenario, build, compute_budget, exit_pumpfun_ixs, pump_sell, tip

SCENARIO = Scenario()
POLICY = GuardPolicy.from_config(GuardConfig())


def test_create_with_seed_whose_seed_length_overflows_is_refused_not_raised() -> None:
    """Found by mutation fuzzing: a u64 seed length of ~2**63 made unpack_from raise
    OverflowError out of the guard, which left the exit signal unanswered."""
    s = SCENARIO
    create = sysp.create_account_with_seed(sysp.CreateAccountWithSeedParams(
        from_pubkey=s.me, to_pubkey=s.ata(), base=s.me, seed="x", lamports=1, space=0,
        owner=s.me))
    data = bytearray(bytes(create.data))
    data[36:44] = struct.pack("<Q", 2**63 + 5)
    ix = Instruction(create.program_id, bytes(data), create.accounts)
    tx = build(s, [*compute_budget(), pump_sell(s), ix, tip(s)])
    verdict = check_transaction(tx, POLICY, s.exit_expect())
    assert (verdict.reason, verdict.instruction) == ("undecodable", 3)


def test_a_rule_that_raises_refuses_the_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a rule gets wrong, the guard answers with a refusal, never an exception."""
    def broken(*_args: object) -> None:
        raise ZeroDivisionError("rule bug")

    monkeypatch.setitem(guard._RULES, guard._COMPUTE, broken)
    s = SCENARIO
    verdict = check_transaction(build(s, exit_pumpfun_ixs(s)), POLICY, s.exit_expect())
    assert (verdict.ok, verdict.reason) == (False, "guard_error")
    assert "ZeroDivisionError: rule bug" in verdict.detail
