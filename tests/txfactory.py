"""Builds honest and hostile LaserSell-shaped transactions in code, for guard and signing tests.

Every transaction is compiled with solders (and the ``spl`` / ``solders.system_program``
instruction builders, so instruction data layouts are the canonical ones, not ours).
Honest ones mirror what the LaserSell server sends: v0 (or legacy), compute-unit limit
and price, DEX instruction naming the mint, tip transfer to a tip account, zero-filled
signature slots. Each hostile one is tagged with the exact ``reason`` the guard must give.

Use ``honest_variants()`` / ``hostile_variants()``; ``Scenario`` holds the keys.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import solders.system_program as sysp
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, CompiledInstruction, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token import instructions as spl
from spl.token import models as sm
from spl.token.models import AuthorityType

from lasersell_bot.config import HELIUS_TIP_ACCOUNTS
from lasersell_bot.guard import (
    ASTRALANE_TIP_ACCOUNTS,
    JITO_TIP_ACCOUNTS,
    MEMO_PROGRAM,
    METEORA_DAMM_V2_PROGRAM,
    PUMP_FUN_PROGRAM,
    PUMP_SWAP_PROGRAM,
    RAYDIUM_CPMM_PROGRAM,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    WSOL_MINT,
    Expectation,
    rent_exempt_lamports,
)

TOKEN = Pubkey.from_string(TOKEN_PROGRAM)
TOKEN_2022 = Pubkey.from_string(TOKEN_2022_PROGRAM)
WSOL = Pubkey.from_string(WSOL_MINT)
MEMO = Pubkey.from_string(MEMO_PROGRAM)
PUMP_FUN = Pubkey.from_string(PUMP_FUN_PROGRAM)
PUMP_SWAP = Pubkey.from_string(PUMP_SWAP_PROGRAM)
RAYDIUM_CPMM = Pubkey.from_string(RAYDIUM_CPMM_PROGRAM)
DAMM_V2 = Pubkey.from_string(METEORA_DAMM_V2_PROGRAM)
HELIUS_TIP = Pubkey.from_string(HELIUS_TIP_ACCOUNTS[0])
JITO_TIP = Pubkey.from_string(JITO_TIP_ACCOUNTS[3])
ASTRALANE_TIP = Pubkey.from_string(ASTRALANE_TIP_ACCOUNTS[0])
RECENT_BLOCKHASHES_SYSVAR = Pubkey.from_string("SysvarRecentB1ockHashes11111111111111111111")

TIP_LAMPORTS = 1_000_000
CU_LIMIT = 150_000
CU_PRICE = 200_000
BUY_LAMPORTS = 100_000_000
BUY_TOLERANCE = 5_000_000 + 2_100_000
SELL_TOKENS = 1_234_567_890
MAX_TIP = 5_000_000  # GuardConfig default
MAX_PRIORITY_FEE = 5_000_000  # GuardConfig default, micro-lamports per CU


def _key(label: str) -> Pubkey:
    return Pubkey(hashlib.sha256(label.encode()).digest())


def _anchor(name: str) -> bytes:
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8]


@dataclass(frozen=True)
class Scenario:
    """The cast: our wallet, the position's mint, an attacker, a recent blockhash."""

    wallet: Keypair = field(default_factory=lambda: Keypair.from_seed(bytes(range(32))))
    mint: Pubkey = field(default_factory=lambda: _key("mint"))
    attacker: Keypair = field(default_factory=lambda: Keypair.from_seed(bytes([7] * 32)))
    blockhash: Hash = field(default_factory=lambda: Hash(hashlib.sha256(b"bh").digest()))

    @property
    def me(self) -> Pubkey:
        return self.wallet.pubkey()

    @property
    def evil(self) -> Pubkey:
        return self.attacker.pubkey()

    def ata(self, mint: Pubkey | None = None, program: Pubkey = TOKEN,
            owner: Pubkey | None = None) -> Pubkey:
        return spl.get_associated_token_address(owner or self.me, mint or self.mint, program)

    def exit_expect(self) -> Expectation:
        return Expectation.exit(self.me, self.mint)

    def buy_expect(self, lamports: int = BUY_LAMPORTS) -> Expectation:
        return Expectation.mirror_buy(self.me, self.mint, lamports + BUY_TOLERANCE)


@dataclass(frozen=True)
class Variant:
    """One transaction, what we expect of it, and the refusal reason (None = honest)."""

    name: str
    tx: bytes
    expect: Expectation
    reason: str | None = None


# ---------------------------------------------------------------------------
# Instruction builders


def compute_budget(limit: int = CU_LIMIT, price: int = CU_PRICE) -> list[Instruction]:
    return [set_compute_unit_limit(limit), set_compute_unit_price(price)]


def sol_transfer(src: Pubkey, dst: Pubkey, lamports: int) -> Instruction:
    return sysp.transfer(sysp.TransferParams(from_pubkey=src, to_pubkey=dst, lamports=lamports))


def tip(s: Scenario, lamports: int = TIP_LAMPORTS, account: Pubkey = HELIUS_TIP) -> Instruction:
    return sol_transfer(s.me, account, lamports)


def memo(text: str, signers: Sequence[Pubkey] = ()) -> Instruction:
    return Instruction(MEMO, text.encode(), [AccountMeta(k, True, False) for k in signers])


def _dex(program: Pubkey, data: bytes, s: Scenario, mint_program: Pubkey,
         extra: Sequence[Pubkey] = (), signer: bool = True,
         mint: Pubkey | None = None) -> Instruction:
    mint = mint or s.mint
    metas = [AccountMeta(_key(f"{program}-global"), False, False),
             AccountMeta(_key(f"{program}-fee"), False, True),
             AccountMeta(mint, False, False),
             AccountMeta(_key(f"{program}-pool-{mint}"), False, True),
             AccountMeta(_key(f"{program}-vault-{mint}"), False, True),
             AccountMeta(s.ata(mint, mint_program), False, True),
             AccountMeta(s.me, signer, True),
             AccountMeta(Pubkey.default(), False, False),
             AccountMeta(mint_program, False, False)]
    metas += [AccountMeta(k, False, True) for k in extra]
    return Instruction(program, data, metas)


def pump_sell(s: Scenario, program: Pubkey = TOKEN, signer: bool = True,
              mint: Pubkey | None = None) -> Instruction:
    data = _anchor("sell") + struct.pack("<QQ", SELL_TOKENS, 1)
    return _dex(PUMP_FUN, data, s, program, signer=signer, mint=mint)


def pump_buy(s: Scenario, max_sol: int, program: Pubkey = TOKEN) -> Instruction:
    return _dex(PUMP_FUN, _anchor("buy") + struct.pack("<QQ", 10**9, max_sol), s, program)


def pump_buy_exact_sol_in(s: Scenario, sol_in: int) -> Instruction:
    data = _anchor("buy_exact_sol_in") + struct.pack("<QQ", sol_in, 1)
    return _dex(PUMP_FUN, data, s, TOKEN_2022)


def amm_swap(s: Scenario, program: Pubkey, name: str, extra: Sequence[Pubkey] = (),
             ) -> Instruction:
    data = _anchor(name) + struct.pack("<QQ", SELL_TOKENS, 1)
    return _dex(program, data, s, TOKEN, extra=[s.ata(WSOL), *extra])


def create_ata(s: Scenario, mint: Pubkey, program: Pubkey = TOKEN,
               owner: Pubkey | None = None) -> Instruction:
    return spl.create_idempotent_associated_token_account(s.me, owner or s.me, mint, program)


def token_transfer(s: Scenario, dest: Pubkey, program: Pubkey = TOKEN,
                   owner: Pubkey | None = None, signers: Sequence[Pubkey] = ()) -> Instruction:
    return spl.transfer(sm.TransferParams(
        program_id=program, source=s.ata(program=program), dest=dest, owner=owner or s.me,
        amount=SELL_TOKENS, signers=list(signers)))


def token_transfer_checked(s: Scenario, dest: Pubkey, program: Pubkey = TOKEN) -> Instruction:
    return spl.transfer_checked(sm.TransferCheckedParams(
        program_id=program, source=s.ata(program=program), mint=s.mint, dest=dest,
        owner=s.me, amount=SELL_TOKENS, decimals=6, signers=[]))


def close_account(s: Scenario, dest: Pubkey, program: Pubkey = TOKEN,
                  account: Pubkey | None = None) -> Instruction:
    return spl.close_account(sm.CloseAccountParams(
        program_id=program, account=account or s.ata(WSOL, program), dest=dest, owner=s.me,
        signers=[]))


def sync_native(account: Pubkey) -> Instruction:
    return spl.sync_native(sm.SyncNativeParams(program_id=TOKEN, account=account))


# ---------------------------------------------------------------------------
# Transaction assembly (signature slots zero-filled, as the server sends them)


def unsigned(message: Message | MessageV0, slots: int | None = None) -> bytes:
    count = message.header.num_required_signatures if slots is None else slots
    return bytes(VersionedTransaction.populate(message, [Signature.default()] * count))


def v0(payer: Pubkey, ixs: Sequence[Instruction], blockhash: Hash,
       tables: Sequence[AddressLookupTableAccount] = ()) -> MessageV0:
    return MessageV0.try_compile(payer, list(ixs), list(tables), blockhash)


def legacy(payer: Pubkey, ixs: Sequence[Instruction], blockhash: Hash) -> Message:
    return Message.new_with_blockhash(list(ixs), payer, blockhash)


def build(s: Scenario, ixs: Sequence[Instruction], *, payer: Pubkey | None = None,
          blockhash: Hash | None = None,
          tables: Sequence[AddressLookupTableAccount] = ()) -> bytes:
    return unsigned(v0(payer or s.me, ixs, blockhash or s.blockhash, tables))


def with_raw_instruction(message: MessageV0, ix: CompiledInstruction) -> bytes:
    """Append a compiled instruction as-is (e.g. with indexes no compiler would emit)."""
    patched = MessageV0(message.header, list(message.account_keys), message.recent_blockhash,
                        [*message.instructions, ix], list(message.address_table_lookups))
    return unsigned(patched)


# ---------------------------------------------------------------------------
# Honest transactions


def exit_pumpfun_ixs(s: Scenario, program: Pubkey = TOKEN) -> list[Instruction]:
    return [*compute_budget(), pump_sell(s, program), tip(s)]


def exit_pumpswap_ixs(s: Scenario) -> list[Instruction]:
    return [*compute_budget(), create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
            close_account(s, s.me), tip(s, account=JITO_TIP)]


def buy_wsol_ixs(s: Scenario, lamports: int = BUY_LAMPORTS,
                 wsol_owner: Pubkey | None = None) -> list[Instruction]:
    owner = wsol_owner or s.me
    wsol_ata = s.ata(WSOL, owner=owner)
    return [*compute_budget(), create_ata(s, s.mint, owner=owner),
            create_ata(s, WSOL, owner=owner), sol_transfer(s.me, wsol_ata, lamports),
            sync_native(wsol_ata), amm_swap(s, PUMP_SWAP, "buy"), close_account(s, s.me),
            tip(s)]


def buy_seed_account_ixs(s: Scenario, lamports: int = BUY_LAMPORTS) -> list[Instruction]:
    temp = Pubkey.create_with_seed(s.me, "wsol-temp", TOKEN)
    create = sysp.create_account_with_seed(sysp.CreateAccountWithSeedParams(
        from_pubkey=s.me, to_pubkey=temp, base=s.me, seed="wsol-temp",
        lamports=rent_exempt_lamports(165) + lamports, space=165, owner=TOKEN))
    init = spl.initialize_account3(sm.InitializeAccount3Params(
        program_id=TOKEN, account=temp, mint=WSOL, owner=s.me))
    return [*compute_budget(), create, init, create_ata(s, s.mint),
            amm_swap(s, RAYDIUM_CPMM, "swap_base_input", extra=[temp]),
            close_account(s, s.me, account=temp), tip(s, account=ASTRALANE_TIP)]


def dex_lookup_table(s: Scenario, extra: Sequence[Pubkey] = ()) -> AddressLookupTableAccount:
    entries = [_key(f"{PUMP_FUN}-global"), _key(f"{PUMP_FUN}-fee"),
               _key(f"{PUMP_FUN}-pool-{s.mint}"), _key(f"{PUMP_FUN}-vault-{s.mint}"), *extra]
    return AddressLookupTableAccount(_key("alt"), entries)


def honest_variants(s: Scenario | None = None) -> list[Variant]:
    s = s or Scenario()
    exit_ = s.exit_expect()
    return [
        Variant("exit_pumpfun_v0", build(s, exit_pumpfun_ixs(s)), exit_),
        Variant("exit_pumpfun_legacy", unsigned(legacy(s.me, exit_pumpfun_ixs(s), s.blockhash)),
                exit_),
        Variant("exit_token2022_mint", build(s, exit_pumpfun_ixs(s, TOKEN_2022)), exit_),
        Variant("exit_pumpswap_wsol_close", build(s, exit_pumpswap_ixs(s)), exit_),
        Variant("exit_with_lookup_table",
                build(s, exit_pumpfun_ixs(s), tables=[dex_lookup_table(s)]), exit_),
        Variant("exit_memo_no_tip", build(s, [*compute_budget(), memo(f"lasersell:{s.mint}"),
                                              _dex(DAMM_V2, _anchor("swap"), s, TOKEN)]), exit_),
        Variant("exit_partial_ladder_astralane_tip",
                build(s, [*compute_budget(), pump_sell(s), tip(s, 2_000_000, ASTRALANE_TIP)]),
                exit_),
        Variant("buy_pumpfun", build(s, [*compute_budget(), create_ata(s, s.mint, TOKEN_2022),
                                         pump_buy(s, BUY_LAMPORTS, TOKEN_2022), tip(s)]),
                s.buy_expect()),
        Variant("buy_pumpfun_exact_sol_in",
                build(s, [*compute_budget(), create_ata(s, s.mint, TOKEN_2022),
                          pump_buy_exact_sol_in(s, BUY_LAMPORTS), tip(s)]), s.buy_expect()),
        Variant("buy_pumpswap_wsol_wrap", build(s, buy_wsol_ixs(s)), s.buy_expect()),
        Variant("buy_pumpswap_legacy", unsigned(legacy(s.me, buy_wsol_ixs(s), s.blockhash)),
                s.buy_expect()),
        Variant("buy_cpmm_seed_account", build(s, buy_seed_account_ixs(s)), s.buy_expect()),
    ]


# ---------------------------------------------------------------------------
# Hostile transactions: each is an honest exit (or buy) plus one attack


def _exit_plus(s: Scenario, *attack: Instruction) -> bytes:
    return build(s, [*compute_budget(), pump_sell(s), *attack, tip(s)])


def _drains(s: Scenario) -> dict[str, tuple[Callable[[], bytes], str]]:
    evil, me = s.evil, s.me
    evil_ata = s.ata(owner=evil)
    evil_ata22 = s.ata(program=TOKEN_2022, owner=evil)
    seed_from = Pubkey.create_with_seed(me, "vault", sysp.ID)
    return {
        "drain_sol_transfer": (lambda: _exit_plus(s, sol_transfer(me, evil, 10**9)),
                               "foreign_transfer"),
        "drain_sol_transfer_with_seed": (lambda: _exit_plus(s, sysp.transfer_with_seed(
            sysp.TransferWithSeedParams(from_pubkey=seed_from, from_base=me, from_seed="vault",
                                        from_owner=sysp.ID, lamports=10**9, to_pubkey=evil))),
            "foreign_transfer"),
        "drain_tokens_transfer": (lambda: _exit_plus(s, token_transfer(s, evil_ata)),
                                  "token_transfer_foreign"),
        "drain_tokens_transfer_checked": (
            lambda: _exit_plus(s, token_transfer_checked(s, evil_ata)), "token_transfer_foreign"),
        "drain_tokens_transfer_token2022": (
            lambda: _exit_plus(s, token_transfer(s, evil_ata22, TOKEN_2022)),
            "token_transfer_foreign"),
        "drain_tokens_transfer_checked_token2022": (
            lambda: _exit_plus(s, token_transfer_checked(s, evil_ata22, TOKEN_2022)),
            "token_transfer_foreign"),
        "drain_tokens_via_multisig_signer": (
            lambda: _exit_plus(s, token_transfer(s, evil_ata, owner=_key("msig"), signers=[me])),
            "token_transfer_foreign"),
        "drain_tokens_to_lookup_table_dest": (
            lambda: build(s, [*compute_budget(), pump_sell(s), token_transfer(s, evil_ata), tip(s)],
                          tables=[dex_lookup_table(s, [evil_ata])]), "token_transfer_foreign"),
        "drain_sol_to_lookup_table_dest": (
            lambda: build(s, [*compute_budget(), pump_sell(s), sol_transfer(me, evil, 10**9)],
                          tables=[dex_lookup_table(s, [evil])]), "foreign_transfer"),
        "approve_delegate": (lambda: _exit_plus(s, spl.approve(sm.ApproveParams(
            program_id=TOKEN, source=s.ata(), delegate=evil, owner=me, amount=2**64 - 1,
            signers=[]))), "token_approve"),
        "approve_checked_token2022": (lambda: _exit_plus(s, spl.approve_checked(
            sm.ApproveCheckedParams(program_id=TOKEN_2022, source=s.ata(program=TOKEN_2022),
                                     mint=s.mint, delegate=evil, owner=me, amount=2**64 - 1,
                                     decimals=6, signers=[]))), "token_approve"),
        "set_authority_owner": (lambda: _exit_plus(s, spl.set_authority(sm.SetAuthorityParams(
            program_id=TOKEN, account=s.ata(), authority=AuthorityType.ACCOUNT_OWNER,
            current_authority=me, new_authority=evil, signers=[]))), "set_authority"),
        "set_authority_close_token2022": (lambda: _exit_plus(s, spl.set_authority(
            sm.SetAuthorityParams(program_id=TOKEN_2022, account=s.ata(program=TOKEN_2022),
                                   authority=AuthorityType.CLOSE_ACCOUNT, current_authority=me,
                                   new_authority=evil, signers=[]))), "set_authority"),
        "close_to_foreign": (lambda: _exit_plus(s, close_account(s, evil)), "close_to_foreign"),
        "close_to_foreign_token2022": (
            lambda: _exit_plus(s, close_account(s, evil, TOKEN_2022)), "close_to_foreign"),
        "burn": (lambda: _exit_plus(s, spl.burn(sm.BurnParams(
            program_id=TOKEN, account=s.ata(), mint=s.mint, owner=me, amount=SELL_TOKENS,
            signers=[]))), "token_burn"),
        "burn_checked_token2022": (lambda: _exit_plus(s, spl.burn_checked(sm.BurnCheckedParams(
            program_id=TOKEN_2022, mint=s.mint, account=s.ata(program=TOKEN_2022), owner=me,
            amount=SELL_TOKENS, decimals=6, signers=[]))), "token_burn"),
    }


def _system_attacks(s: Scenario) -> dict[str, tuple[Callable[[], bytes], str]]:
    evil, me = s.evil, s.me
    nonce = _key("nonce")
    return {
        "system_assign": (lambda: _exit_plus(s, sysp.assign(sysp.AssignParams(
            pubkey=me, owner=_key("evil-program")))), "system_assign"),
        "system_allocate": (lambda: _exit_plus(s, sysp.allocate(sysp.AllocateParams(
            pubkey=me, space=10_000_000))), "system_allocate"),
        "nonce_advance": (lambda: build(s, [sysp.advance_nonce_account(
            sysp.AdvanceNonceAccountParams(nonce_pubkey=nonce, authorized_pubkey=me)),
            *exit_pumpfun_ixs(s)]), "nonce_advance"),
        "nonce_authorize": (lambda: _exit_plus(s, sysp.authorize_nonce_account(
            sysp.AuthorizeNonceAccountParams(nonce_pubkey=nonce, authorized_pubkey=me,
                                             new_authority=evil))), "nonce_authorize"),
        "nonce_withdraw": (lambda: _exit_plus(s, sysp.withdraw_nonce_account(
            sysp.WithdrawNonceAccountParams(nonce_pubkey=nonce, authorized_pubkey=me,
                                            to_pubkey=evil, lamports=10**9))), "nonce_withdraw"),
        "create_account_overfunded": (lambda: _exit_plus(s, sysp.create_account_with_seed(
            sysp.CreateAccountWithSeedParams(
                from_pubkey=me, to_pubkey=Pubkey.create_with_seed(me, "x", _key("evil-program")),
                base=me, seed="x", lamports=10**9, space=0, owner=_key("evil-program")))),
            "create_account_overfunded"),
        "exit_contains_buy": (lambda: _exit_plus(s, pump_buy(s, 10**9)), "exit_contains_buy"),
        "ata_for_foreign_owner": (lambda: _exit_plus(s, create_ata(s, s.mint, owner=evil)),
                                  "ata_foreign_owner"),
    }


def _tip_and_fee_attacks(s: Scenario) -> dict[str, tuple[Callable[[], bytes], str]]:
    return {
        "tip_too_large": (lambda: build(s, [*compute_budget(), pump_sell(s),
                                            tip(s, MAX_TIP + 1)]), "tip_too_large"),
        "tip_split_over_cap": (lambda: build(s, [*compute_budget(), pump_sell(s), *[
            tip(s, 1_000_000, Pubkey.from_string(a)) for a in HELIUS_TIP_ACCOUNTS[:6]]]),
            "tip_too_large"),
        "tip_to_non_tip_account": (lambda: build(s, [*compute_budget(), pump_sell(s),
                                                     tip(s, TIP_LAMPORTS, _key("not-a-tip"))]),
                                   "foreign_transfer"),
        "priority_fee_too_high": (lambda: build(s, [*compute_budget(price=MAX_PRIORITY_FEE + 1),
                                                    pump_sell(s), tip(s)]),
                                  "priority_fee_too_high"),
        "compute_budget_unknown": (lambda: build(s, [Instruction(
            set_compute_unit_limit(1).program_id, bytes([0]) + bytes(8), []),
            *exit_pumpfun_ixs(s)]), "compute_budget_unknown"),
    }


def _shape_attacks(s: Scenario) -> dict[str, tuple[Callable[[], bytes], str]]:
    me, evil = s.me, s.evil
    return {
        "foreign_fee_payer": (lambda: build(s, exit_pumpfun_ixs(s), payer=evil),
                              "fee_payer_mismatch"),
        "extra_signer": (lambda: _exit_plus(s, memo("co-sign", [evil])), "extra_signer"),
        "wallet_not_required_signer": (lambda: build(
            s, [*compute_budget(), pump_sell(s, signer=False)], payer=evil), "wallet_not_signer"),
        "program_not_allowlisted": (lambda: _exit_plus(s, Instruction(
            _key("evil-program"), b"drain", [AccountMeta(me, True, True)])),
            "program_not_allowed"),
        "program_via_lookup_table": (lambda: with_raw_instruction(
            v0(me, exit_pumpfun_ixs(s), s.blockhash, [dex_lookup_table(s)]),
            CompiledInstruction(len(v0(me, exit_pumpfun_ixs(s), s.blockhash,
                                       [dex_lookup_table(s)]).account_keys), b"x", bytes([0]))),
            "lookup_table_program"),
        "zero_blockhash": (lambda: build(s, exit_pumpfun_ixs(s), blockhash=Hash.default()),
                           "missing_blockhash"),
        "oversize_tx": (lambda: _exit_plus(s, memo("x" * 1200)), "tx_too_large"),
        "signature_count_mismatch": (lambda: unsigned(v0(me, exit_pumpfun_ixs(s), s.blockhash),
                                                      slots=2), "undecodable"),
        "garbage_bytes": (lambda: b"\x01" + bytes(64) + b"\x80\x01\x00\x00", "undecodable"),
    }


def _wrong_target_attacks(s: Scenario) -> list[Variant]:
    other = Scenario(mint=_key("other-mint"))
    exit_ = s.exit_expect()
    return [
        Variant("wrong_mint", build(other, exit_pumpfun_ixs(other)), exit_, "mint_not_touched"),
        Variant("wrong_wallet", build(s, exit_pumpfun_ixs(s)),
                Expectation.exit(_key("someone-else"), s.mint), "wallet_not_signer"),
        Variant("buy_more_than_agreed_wsol", build(s, buy_wsol_ixs(s, 10 * BUY_LAMPORTS)),
                s.buy_expect(), "buy_amount_mismatch"),
        Variant("buy_more_than_agreed_pumpfun",
                build(s, [*compute_budget(), pump_buy(s, 10 * BUY_LAMPORTS), tip(s)]),
                s.buy_expect(), "buy_amount_mismatch"),
        Variant("buy_more_than_agreed_seed_account",
                build(s, buy_seed_account_ixs(s, 10 * BUY_LAMPORTS)), s.buy_expect(),
                "buy_amount_mismatch"),
        Variant("buy_to_wrong_wallet", build(s, buy_wsol_ixs(s, wsol_owner=s.evil)),
                s.buy_expect(), "ata_foreign_owner"),
        Variant("buy_wrap_into_foreign_wsol",
                build(s, [*compute_budget(), sol_transfer(s.me, s.ata(WSOL, owner=s.evil),
                                                          BUY_LAMPORTS),
                          amm_swap(s, PUMP_SWAP, "buy"), tip(s)]),
                s.buy_expect(), "foreign_transfer"),
    ]


def hostile_variants(s: Scenario | None = None) -> list[Variant]:
    s = s or Scenario()
    tables = {**_drains(s), **_system_attacks(s), **_tip_and_fee_attacks(s), **_shape_attacks(s)}
    made = [Variant(name, make(), s.exit_expect(), reason)
            for name, (make, reason) in tables.items()]
    return made + _wrong_target_attacks(s)
