"""What the guard allows and expects: program ids, tip accounts, the policy built from
config, the expectation a signal sets, and the verdict every check returns."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from solders.pubkey import Pubkey

from lasersell_bot.config import GuardConfig

SYSTEM_PROGRAM = "11111111111111111111111111111111"
COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111"
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
ATA_PROGRAM = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
MEMO_PROGRAM = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
PUMP_FUN_PROGRAM = "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P"
PUMP_SWAP_PROGRAM = "pAMMBay6oceH9fJKBRHGP5D4bD4sWpmSwMn52FMfXEA"
RAYDIUM_LAUNCHPAD_PROGRAM = "LanMV9sAd7wArD4vJFi2qDdfnVhFxYSUg6eADduJ3uj"
RAYDIUM_CPMM_PROGRAM = "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"
METEORA_DBC_PROGRAM = "dbcij3LWUppWqq96dh6gJWwBifmcGfLSB5D4DuSMaqN"
METEORA_DAMM_V2_PROGRAM = "cpamdpZCGKUy5JxQXB4dcpGPiikHawvSWAd6mEn1sGG"
WSOL_MINT = "So11111111111111111111111111111111111111112"
USD1_MINT = "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuB"

ALLOWED_PROGRAMS: tuple[str, ...] = (
    SYSTEM_PROGRAM, COMPUTE_BUDGET_PROGRAM, TOKEN_PROGRAM, TOKEN_2022_PROGRAM, ATA_PROGRAM,
    MEMO_PROGRAM, PUMP_FUN_PROGRAM, PUMP_SWAP_PROGRAM, RAYDIUM_LAUNCHPAD_PROGRAM,
    RAYDIUM_CPMM_PROGRAM, METEORA_DBC_PROGRAM, METEORA_DAMM_V2_PROGRAM,
)

# Jito's 8 mainnet tip accounts (Jito docs, "MEV payment and distribution: on-chain
# addresses"; also returned by the block engine's getTipAccounts).
JITO_TIP_ACCOUNTS: tuple[str, ...] = (
    "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5",
    "HFqU5x63VTqvQss8hp11i4wVV8bD44PvwucfZ2bU7gRe",
    "Cw8CFyM9FkoMi7K7Crf6HNQqf4uEMzpKw6QNghXLvLkY",
    "ADaUMid9yfUytqMBgopwjb2DTLSokTSzL1zt6iGPaS49",
    "DfXygSm4jCyNCybVYYK6DwvWqjKee8pbDmJGcLWNDXjh",
    "ADuUkR4vqLUMWXxW9gh6D6L8pMSawimctcNZ5pGwDcEt",
    "DttWaMuVvTiduZRnguLF7jNxTgiMBZ1hyAumKUiL2KRL",
    "3AVi9Tg9Uo68tJfuvoKvqKNWKkC5wPdSSdeBnizKZ6jT",
)

# Astralane's published tipping addresses (Astralane docs, "Low latency: endpoints and
# configs": the 8 original ones and the 9 listed as recently added).
ASTRALANE_TIP_ACCOUNTS: tuple[str, ...] = (
    "astrazznxsGUhWShqgNtAdfrzP2G83DzcWVJDxwV9bF",
    "astra4uejePWneqNaJKuFFA8oonqCE1sqF6b45kDMZm",
    "astra9xWY93QyfG6yM8zwsKsRodscjQ2uU2HKNL5prk",
    "astraRVUuTHjpwEVvNBeQEgwYx9w9CFyfxjYoobCZhL",
    "astraEJ2fEj8Xmy6KLG7B3VfbKfsHXhHrNdCQx7iGJK",
    "astraubkDw81n4LuutzSQ8uzHCv4BhPVhfvTcYv8SKC",
    "astraZW5GLFefxNPAatceHhYjfA1ciq9gvfEg2S47xk",
    "astrawVNP4xDBKT7rAdxrLYiTSTdqtUr63fSMduivXK",
    "AstrA1ejL4UeXC2SBP4cpeEmtcFPZVLxx3XGKXyCW6to",
    "AsTra79FET4aCKWspPqeSFvjJNyp96SvAnrmyAxqg5b7",
    "AstrABAu8CBTyuPXpV4eSCJ5fePEPnxN8NqBaPKQ9fHR",
    "AsTRADtvb6tTmrsqULQ9Wji9PigDMjhfEMza6zkynEvV",
    "AsTRAEoyMofR3vUPpf9k68Gsfb6ymTZttEtsAbv8Bk4d",
    "AStrAJv2RN2hKCHxwUMtqmSxgdcNZbihCwc1mCSnG83W",
    "Astran35aiQUF57XZsmkWMtNCtXGLzs8upfiqXxth2bz",
    "AStRAnpi6kFrKypragExgeRoJ1QnKH7pbSjLAKQVWUum",
    "ASTRaoF93eYt73TYvwtsv6fMWHWbGmMUZfVZPo3CRU9C",
)

MAX_COMPUTE_UNIT_LIMIT = 1_400_000
DEFAULT_UNITS_PER_INSTRUCTION = 200_000
MICRO_LAMPORTS_PER_LAMPORT = 1_000_000
# Rent-exempt minimum = (128 + space) * 3480 lamports/byte-year * 2 years.
_RENT_BYTES_OVERHEAD = 128
_RENT_LAMPORTS_PER_BYTE = 6960
# Largest account we fund without counting it as spend: a token account with room for
# extensions (165 bytes base). rent(512) = 4_454_400 lamports.
MAX_FUNDED_SPACE = 512

Kind = Literal["exit", "mirror_buy"]


# ---------------------------------------------------------------------------
# Verdict, policy, expectation


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of ``check_transaction``: ``ok`` or refused with a machine ``reason``.

    An accepted verdict also says what the static stage could not judge and left to the
    effects stage (``unknown_programs``, ``fee_lamports`` / ``fee_usd1`` sent to strangers,
    ``effects_only``: other things it let through only because effects verification is on,
    e.g. ``quote_conversion`` in an exit, ``stable_coin_buy``), and what it counted that the
    effects stage allows for (``tips_lamports``, ``priority_fee_lamports``, ``signatures``).
    """

    ok: bool
    reason: str = ""
    detail: str = ""
    instruction: int | None = None
    unknown_programs: tuple[str, ...] = ()
    fee_lamports: int = 0
    fee_usd1: int = 0
    tips_lamports: int = 0
    priority_fee_lamports: int = 0
    signatures: int = 1
    effects_only: tuple[str, ...] = ()

    @property
    def needs_effects(self) -> bool:
        """True when only the effects stage can vouch for what was accepted."""
        return bool(self.unknown_programs or self.fee_lamports or self.fee_usd1
                    or self.effects_only)


ACCEPTED = Verdict(ok=True)


def refuse(reason: str, detail: str, instruction: int | None = None) -> Verdict:
    where = f"instruction {instruction}: " if instruction is not None else ""
    return Verdict(ok=False, reason=reason, detail=where + detail, instruction=instruction)


def _pubkeys(values: tuple[str, ...] | list[str]) -> frozenset[Pubkey]:
    return frozenset(Pubkey.from_string(v) for v in values)


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """What the guard allows. Build it once with ``from_config``; it is immutable."""

    programs: frozenset[Pubkey]
    tip_accounts: frozenset[Pubkey]
    max_tip_lamports: int
    max_priority_fee: int
    max_priority_fee_lamports: int
    max_tx_bytes: int
    verify_effects: bool = False

    @classmethod
    def from_config(cls, cfg: GuardConfig) -> GuardPolicy:
        """Allowlist = built-in programs + ``extra_programs``; tips = configured + Jito + Astralane.

        There is no config key for the total priority fee yet, so it is derived from the
        per-CU cap at the runtime's maximum compute-unit limit (no stricter than that cap).
        """
        tips = [*cfg.tip_accounts, *JITO_TIP_ACCOUNTS, *ASTRALANE_TIP_ACCOUNTS,
                *cfg.extra_tip_accounts]
        return cls(
            programs=_pubkeys([*ALLOWED_PROGRAMS, *cfg.extra_programs]),
            tip_accounts=_pubkeys(tips),
            max_tip_lamports=cfg.max_tip_lamports,
            max_priority_fee=cfg.max_priority_fee,
            max_priority_fee_lamports=priority_fee_lamports(
                cfg.max_priority_fee, MAX_COMPUTE_UNIT_LIMIT),
            max_tx_bytes=cfg.max_tx_bytes,
            verify_effects=cfg.simulate != "never",
        )


@dataclass(frozen=True, slots=True)
class Expectation:
    """What we expect this transaction to be: for whom, what kind, which mint, how much.

    ``fee_allowance_lamports`` / ``fee_allowance_usd1`` bound the routing fee: with
    effects verification on (``GuardPolicy.verify_effects``) the static stage lets SOL
    (and WSOL) or USD1 go to accounts that are not ours up to these totals and leaves the
    rest to the effects stage; 0 = none (static-only behaviour).
    """

    wallet: Pubkey
    kind: Kind
    mint: Pubkey
    max_spend_lamports: int = 0
    fee_allowance_lamports: int = 0
    fee_allowance_usd1: int = 0

    @classmethod
    def exit(cls, wallet: str | Pubkey, mint: str | Pubkey, *, fee_allowance_lamports: int = 0,
             fee_allowance_usd1: int = 0) -> Expectation:
        return cls(wallet=_as_pubkey(wallet), kind="exit", mint=_as_pubkey(mint),
                   fee_allowance_lamports=fee_allowance_lamports,
                   fee_allowance_usd1=fee_allowance_usd1)

    @classmethod
    def mirror_buy(cls, wallet: str | Pubkey, mint: str | Pubkey,
                   max_spend_lamports: int, *, fee_allowance_lamports: int = 0) -> Expectation:
        """``max_spend_lamports`` = agreed amount + tolerance for tip and priority fee."""
        return cls(wallet=_as_pubkey(wallet), kind="mirror_buy", mint=_as_pubkey(mint),
                   max_spend_lamports=max_spend_lamports,
                   fee_allowance_lamports=fee_allowance_lamports)


def _as_pubkey(value: str | Pubkey) -> Pubkey:
    return value if isinstance(value, Pubkey) else Pubkey.from_string(value)


def priority_fee_lamports(micro_lamports_per_cu: int, compute_units: int) -> int:
    """Priority fee the runtime charges: ceil(price * units / 1e6)."""
    return -(-micro_lamports_per_cu * compute_units // MICRO_LAMPORTS_PER_LAMPORT)


def rent_exempt_lamports(space: int) -> int:
    """Current rent-exempt minimum for an account of ``space`` data bytes."""
    return (_RENT_BYTES_OVERHEAD + space) * _RENT_LAMPORTS_PER_BYTE


@lru_cache(maxsize=4096)
def associated_token_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey) -> Pubkey:
    """The ATA the ATA program derives for ``owner`` and ``mint`` under ``token_program``."""
    seeds = [bytes(owner), bytes(token_program), bytes(mint)]
    return Pubkey.find_program_address(seeds, ATA_ID)[0]


SYSTEM_ID = Pubkey.from_string(SYSTEM_PROGRAM)
COMPUTE_ID = Pubkey.from_string(COMPUTE_BUDGET_PROGRAM)
TOKEN_ID = Pubkey.from_string(TOKEN_PROGRAM)
TOKEN_2022_ID = Pubkey.from_string(TOKEN_2022_PROGRAM)
TOKEN_PROGRAM_IDS = frozenset({TOKEN_ID, TOKEN_2022_ID})
ATA_ID = Pubkey.from_string(ATA_PROGRAM)
PUMP_FUN_ID = Pubkey.from_string(PUMP_FUN_PROGRAM)
DEX_PROGRAM_IDS = frozenset(Pubkey.from_string(p) for p in (
    PUMP_FUN_PROGRAM, PUMP_SWAP_PROGRAM, RAYDIUM_LAUNCHPAD_PROGRAM, RAYDIUM_CPMM_PROGRAM,
    METEORA_DBC_PROGRAM, METEORA_DAMM_V2_PROGRAM))
WSOL_ID = Pubkey.from_string(WSOL_MINT)
USD1_ID = Pubkey.from_string(USD1_MINT)
ZERO_HASH = bytes(32)
