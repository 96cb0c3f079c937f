"""Coverage-guided fuzzing (atheris / libFuzzer) of the frame decoder, the session and the guard.

    python tools/fuzz_atheris.py -runs=100000          # what ``make fuzz`` runs
    python tools/fuzz_atheris.py -max_total_time=600   # ten minutes

Each input is used twice: as a stream frame (decoded, fed to a ``Session``; an exit or
mirror signal's transaction goes through the guard) and as raw transaction bytes for the
guard, seeded with honest and hostile transactions (every DEX trade form, router-shaped
transactions, lookup tables). The guard runs with effects verification on and off, with
and without the factory's lookup tables. A crash is any exception, a guard verdict of
``guard_error``, or an accepted verdict whose routing fees exceed the allowance. Needs
``pip install atheris`` (wheels for CPython 3.11 on
x86-64 Linux); without it this prints why and exits 0.
"""

from __future__ import annotations

import base64
import binascii
import sys
import tempfile
from pathlib import Path

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the machine
    print("fuzz_atheris: atheris is not installed; skipped (pip install atheris)")
    sys.exit(0)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["lasersell_bot"]):
    from lasersell_bot import protocol
    from lasersell_bot import session as sess
    from lasersell_bot.config import GuardConfig
    from lasersell_bot.guard import Expectation, GuardPolicy, check_transaction

from tests.txfactory import Scenario, honest_variants, hostile_variants

SCENARIO = Scenario()
POLICIES = (GuardPolicy.from_config(GuardConfig()),
            GuardPolicy.from_config(GuardConfig(simulate="never")))
TABLES = {key: addresses for variant in honest_variants(SCENARIO) + hostile_variants(SCENARIO)
          if variant.tables for key, addresses in variant.tables.items()}
EXIT = SCENARIO.exit_expect()
BUY = SCENARIO.buy_expect()
DECODER = protocol.server_decoder()
RESULTS = (*protocol.AnyServerMessage.__args__, protocol.UnknownMessage, protocol.MalformedFrame)


def new_session() -> sess.Session:
    return sess.Session(sess.DesiredConfig(
        wallet_pubkeys=(str(SCENARIO.me),),
        strategy=protocol.Strategy(target_profit_pct=10, stop_loss_pct=5),
        deadline_timeout_sec=1.0, deadline_retry_sec=1.0))


SESSION = new_session()


def guard(raw: bytes, expect: Expectation) -> None:
    for policy in POLICIES:
        for tables in (None, TABLES):
            verdict = check_transaction(raw, policy, expect, tables)
            if verdict.reason == "guard_error":
                raise AssertionError(f"guard_error: {verdict.detail}")
            if verdict.ok and (verdict.fee_lamports > expect.fee_allowance_lamports
                               or verdict.fee_usd1 > expect.fee_allowance_usd1):
                raise AssertionError(f"fees over the allowance accepted: {verdict}")
            if verdict.ok and not policy.verify_effects and verdict.needs_effects:
                raise AssertionError(f"static-only verdict left work to effects: {verdict}")


def test_one_input(data: bytes) -> None:
    message = DECODER.decode(data)
    if not isinstance(message, RESULTS):
        raise AssertionError(f"decode returned {type(message)}")
    if isinstance(message, protocol.MalformedFrame) and not message.error:
        raise AssertionError("malformed frame without a reason")
    SESSION.on_message(message, 1_000)
    SESSION.on_tick(2_000)
    if isinstance(message, protocol.ExitSignalWithTx | protocol.MirrorBuySignal):
        try:
            raw = base64.b64decode(message.unsigned_tx_b64, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        guard(raw, EXIT if isinstance(message, protocol.ExitSignalWithTx) else BUY)
    guard(data, EXIT)
    guard(data, BUY)


def seed_corpus(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    variants = honest_variants(SCENARIO) + hostile_variants(SCENARIO)
    for index, variant in enumerate(variants):
        (directory / f"tx{index}").write_bytes(variant.tx)
    signal = protocol.ExitSignalWithTx(
        session_id=1, position_id=1, wallet_pubkey=str(SCENARIO.me), mint=str(SCENARIO.mint),
        position_tokens=1, profit_units=1, reason="tp", triggered_at_ms=1,
        unsigned_tx_b64=base64.b64encode(variants[0].tx).decode())
    (directory / "exit_frame").write_bytes(protocol.encode(signal))
    (directory / "pnl_frame").write_bytes(protocol.encode(protocol.PnlUpdate(
        position_id=1, profit_units=-1, proceeds_units=2, server_time_ms=3)))


def main() -> None:
    corpus = Path(tempfile.gettempdir()) / "lasersell-atheris-corpus"
    seed_corpus(corpus)
    argv = [*sys.argv, str(corpus)] if not any(a.startswith("/") or Path(a).is_dir()
                                                for a in sys.argv[1:]) else sys.argv
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
