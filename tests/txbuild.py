"""Instruction builders and transaction assembly for guard and signing tests.

Every transaction is compiled with solders (and the ``spl`` / ``solders.system_program``
instruction builders, so instruction data layouts are the canonical ones, not ours). DEX
instructions use each program's published account layout (``guard/dex.py`` cites the
IDLs). ``Scenario`` holds the keys; ``Variant`` is one transaction with what the guard must
answer. The variants themselves are in ``txfactory`` (honest and classic hostile ones) and
``txattacks`` (issue 10's classes and routing-fee abuse).
"""


from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
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

from lasersell_bot.config import HELIUS_TIP_ACCOUNTS
from lasersell_bot.guard import (
    ASTRALANE_TIP_ACCOUNTS,
    JITO_TIP_ACCOUNTS,
    MEMO_PROGRAM,
    METEORA_DAMM_V2_PROGRAM,
    METEORA_DBC_PROGRAM,
    PUMP_FUN_PROGRAM,
    PUMP_SWAP_PROGRAM,
    RAYDIUM_CPMM_PROGRAM,
    RAYDIUM_LAUNCHPAD_PROGRAM,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    USD1_MINT,
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
DBC = Pubkey.from_string(METEORA_DBC_PROGRAM)
LAUNCHLAB = Pubkey.from_string(RAYDIUM_LAUNCHPAD_PROGRAM)
USD1 = Pubkey.from_string(USD1_MINT)
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
FEE_ALLOWANCE = 10_000_000  # the free tier's 0.01 SOL minimum routing fee
FEE_ALLOWANCE_USD1 = 2_000_000  # 2 USD1 (6 decimals)
ROUTING_FEE = 10_000_000
SAME = "<same>"


def key_for(label: str) -> Pubkey:
    return Pubkey(hashlib.sha256(label.encode()).digest())


def anchor(name: str) -> bytes:
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8]


@dataclass(frozen=True)
class Scenario:
    """The cast: our wallet, the position's mint, an attacker, a recent blockhash."""

    wallet: Keypair = field(default_factory=lambda: Keypair.from_seed(bytes(range(32))))
    mint: Pubkey = field(default_factory=lambda: key_for("mint"))
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
        return Expectation.exit(self.me, self.mint, fee_allowance_lamports=FEE_ALLOWANCE,
                                fee_allowance_usd1=FEE_ALLOWANCE_USD1)

    def buy_expect(self, lamports: int = BUY_LAMPORTS) -> Expectation:
        return Expectation.mirror_buy(self.me, self.mint, lamports + BUY_TOLERANCE,
                                      fee_allowance_lamports=FEE_ALLOWANCE)


@dataclass(frozen=True)
class Variant:
    """One transaction, what we expect of it, and the refusal reason (None = honest)."""

    name: str
    tx: bytes
    expect: Expectation
    reason: str | None = None  # with effects verification on (the default policy)
    static_reason: str | None = SAME  # with it off; SAME = as ``reason``
    tables: dict[Pubkey, list[Pubkey]] | None = None  # lookup tables to pass the guard

    def reason_for(self, verify_effects: bool) -> str | None:
        if verify_effects or self.static_reason == SAME:
            return self.reason
        return self.static_reason


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


def dex_ix(program: Pubkey, data: bytes, s: Scenario, mint_program: Pubkey,
         extra: Sequence[Pubkey] = (), signer: bool = True,
         mint: Pubkey | None = None) -> Instruction:
    mint = mint or s.mint
    metas = [AccountMeta(key_for(f"{program}-global"), False, False),
             AccountMeta(key_for(f"{program}-fee"), False, True),
             AccountMeta(mint, False, False),
             AccountMeta(key_for(f"{program}-pool-{mint}"), False, True),
             AccountMeta(key_for(f"{program}-vault-{mint}"), False, True),
             AccountMeta(s.ata(mint, mint_program), False, True),
             AccountMeta(s.me, signer, True),
             AccountMeta(Pubkey.default(), False, False),
             AccountMeta(mint_program, False, False)]
    metas += [AccountMeta(k, False, True) for k in extra]
    return Instruction(program, data, metas)


def pump_sell(s: Scenario, program: Pubkey = TOKEN, signer: bool = True,
              mint: Pubkey | None = None) -> Instruction:
    data = anchor("sell") + struct.pack("<QQ", SELL_TOKENS, 1)
    return dex_ix(PUMP_FUN, data, s, program, signer=signer, mint=mint)


def pump_buy(s: Scenario, max_sol: int, program: Pubkey = TOKEN,
             mint: Pubkey | None = None) -> Instruction:
    return dex_ix(PUMP_FUN, anchor("buy") + struct.pack("<QQ", 10**9, max_sol), s, program,
                mint=mint)


def pump_buy_exact_sol_in(s: Scenario, sol_in: int) -> Instruction:
    data = anchor("buy_exact_sol_in") + struct.pack("<QQ", sol_in, 1)
    return dex_ix(PUMP_FUN, data, s, TOKEN_2022)


def _metas(s: Scenario, keys: Sequence[Pubkey], extra: Sequence[Pubkey] = (),
           readonly: Sequence[Pubkey] = ()) -> list[AccountMeta]:
    return [AccountMeta(k, k == s.me, k not in readonly) for k in [*keys, *extra]]


def pump_v2(s: Scenario, name: str, amount: int, limit: int, *, mint: Pubkey | None = None,
            quote: Pubkey = WSOL, program: Pubkey = TOKEN_2022) -> Instruction:
    """pump.fun ``buy_v2`` / ``buy_exact_quote_in_v2`` (27 accounts) or ``sell_v2`` (26)."""
    mint = mint or s.mint
    lbl = [key_for(f"pump-v2-{n}-{mint}") for n in range(12)]
    keys = [lbl[0], mint, quote, program, TOKEN, sysp.ID, lbl[1], lbl[2], lbl[3], lbl[4],
            lbl[5], lbl[6], lbl[7], s.me, s.ata(mint, program), s.ata(quote), lbl[8], lbl[9],
            lbl[10], lbl[11], key_for(f"uva-{s.me}"), key_for(f"uva-ata-{s.me}"),
            key_for("pump-fee-config"), key_for("pump-fee-program"), sysp.ID, key_for("pump-event"),
            PUMP_FUN]
    if name == "sell_v2":
        del keys[19]
    data = anchor(name) + struct.pack("<QQ", amount, limit)
    return Instruction(PUMP_FUN, data, _metas(s, keys, readonly=[mint, quote, program]))


def pump_swap(s: Scenario, name: str, amount: int, limit: int, *,
              mint: Pubkey | None = None, quote: Pubkey = WSOL,
              extra: Sequence[Pubkey] = ()) -> Instruction:
    """PumpSwap ``buy`` (base_out, max_quote_in), ``buy_exact_quote_in`` or ``sell``."""
    mint = mint or s.mint
    lbl = [key_for(f"pswap-{n}-{mint}-{quote}") for n in range(8)]
    keys = [lbl[0], s.me, key_for("pswap-global"), mint, quote, s.ata(mint), s.ata(quote), lbl[1],
            lbl[2], key_for("pswap-protocol-fee"), lbl[3], TOKEN, TOKEN, sysp.ID,
            spl.ASSOCIATED_TOKEN_PROGRAM_ID, key_for("pswap-event"), PUMP_SWAP, lbl[4], lbl[5]]
    data = anchor(name) + struct.pack("<QQ", amount, limit)
    return Instruction(PUMP_SWAP, data, _metas(s, keys, extra, readonly=[mint, quote, TOKEN]))


def launchlab(s: Scenario, name: str, amount: int, limit: int, *,
              mint: Pubkey | None = None, quote: Pubkey = WSOL) -> Instruction:
    """Raydium LaunchLab ``buy_exact_in`` / ``buy_exact_out`` / ``sell_exact_in`` / ..."""
    mint = mint or s.mint
    lbl = [key_for(f"launchlab-{n}-{mint}") for n in range(4)]
    keys = [s.me, key_for("launchlab-authority"), key_for("launchlab-global"),
            key_for("launchlab-platform"), lbl[0], s.ata(mint), s.ata(quote), lbl[1], lbl[2],
            mint, quote, TOKEN, TOKEN, key_for("launchlab-event"), LAUNCHLAB]
    data = anchor(name) + struct.pack("<QQQ", amount, limit, 0)
    return Instruction(LAUNCHLAB, data, _metas(s, keys, readonly=[mint, quote, TOKEN]))


def cpmm_swap(s: Scenario, name: str, amount: int, *, sell: Pubkey, buy: Pubkey,
              source: Pubkey | None = None, extra: Sequence[Pubkey] = ()) -> Instruction:
    """Raydium CPMM ``swap_base_input`` (amount_in, min_out) or ``swap_base_output``
    (max_amount_in, amount_out): input mint at 10, output mint at 11."""
    lbl = [key_for(f"cpmm-{n}-{sell}-{buy}") for n in range(4)]
    keys = [s.me, key_for("cpmm-authority"), key_for("cpmm-config"), lbl[0], source or s.ata(sell),
            s.ata(buy), lbl[1], lbl[2], TOKEN, TOKEN, sell, buy, lbl[3]]
    data = anchor(name) + struct.pack("<QQ", amount, 1)
    return Instruction(RAYDIUM_CPMM, data, _metas(s, keys, extra, readonly=[sell, buy, TOKEN]))


def meteora_swap(s: Scenario, program: Pubkey, name: str, amount: int, *, buy: bool,
                 mint: Pubkey | None = None, quote: Pubkey = WSOL, mode: int = 0,
                 source: Pubkey | None = None) -> Instruction:
    """Meteora DBC or DAMM v2 ``swap`` (amount_in, min_out) / ``swap2`` (amount_0, amount_1,
    mode): the input token account decides the direction."""
    mint = mint or s.mint
    lbl = [key_for(f"{program}-{n}-{mint}") for n in range(4)]
    inp, out = (s.ata(quote), s.ata(mint)) if buy else (s.ata(mint), s.ata(quote))
    inp = source or inp
    if program == DBC:
        keys = [key_for("dbc-authority"), key_for("dbc-config"), lbl[0], inp, out, lbl[1], lbl[2],
                mint, quote, s.me, TOKEN, TOKEN, DBC, key_for("dbc-event"), DBC]
    else:
        keys = [key_for("damm-authority"), lbl[0], inp, out, lbl[1], lbl[2], mint, quote, s.me,
                TOKEN, TOKEN, DAMM_V2, key_for("damm-event"), DAMM_V2]
    if name == "swap2":
        args = (1, amount, 2) if mode == 2 else (amount, 1, mode)
        data = anchor(name) + struct.pack("<QQB", *args)
    else:
        data = anchor(name) + struct.pack("<QQ", amount, 1)
    return Instruction(program, data, _metas(s, keys, readonly=[mint, quote, TOKEN, program]))


def amm_swap(s: Scenario, program: Pubkey, name: str, extra: Sequence[Pubkey] = (),
             ) -> Instruction:
    """A PumpSwap trade of the position against WSOL: ``buy`` spends up to BUY_LAMPORTS."""
    assert program == PUMP_SWAP, "use cpmm_swap / meteora_swap / launchlab for other DEXs"
    if name == "sell":
        return pump_swap(s, "sell", SELL_TOKENS, 1, extra=extra)
    return pump_swap(s, name, 10**9, BUY_LAMPORTS, extra=extra)


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
            cpmm_swap(s, "swap_base_input", lamports, sell=WSOL, buy=s.mint, source=temp),
            close_account(s, s.me, account=temp), tip(s, account=ASTRALANE_TIP)]


def dex_lookup_table(s: Scenario, extra: Sequence[Pubkey] = ()) -> AddressLookupTableAccount:
    entries = [key_for(f"{PUMP_FUN}-global"), key_for(f"{PUMP_FUN}-fee"),
               key_for(f"{PUMP_FUN}-pool-{s.mint}"), key_for(f"{PUMP_FUN}-vault-{s.mint}"), *extra]
    return AddressLookupTableAccount(key_for("alt"), entries)


def table_map(*alts: AddressLookupTableAccount) -> dict[Pubkey, list[Pubkey]]:
    """What the caller passes the guard: each table's address -> its addresses."""
    return {alt.key: list(alt.addresses) for alt in alts}


# ---------------------------------------------------------------------------
# The real service's shape: the LaserSell Router (unpublished id) and routing fees

ROUTER = key_for("lasersell-router")  # stands in for the router's unpublished program id
FEE_VAULT = key_for("lasersell-fee-vault")
REFERRERS = tuple(key_for(f"lasersell-referrer-{i}") for i in range(3))
REFERRAL_SHARES = (30, 3, 2)  # percent of the fee to up to three referrers (vendor docs)


def router(s: Scenario, inner: Instruction, referrers: int = 3) -> Instruction:
    """The router CPIs into the DEX and moves the fee: our wallet signs, the fee vault and
    referrers are writable, then the DEX program and the DEX instruction's accounts."""
    metas = [AccountMeta(s.me, True, True), AccountMeta(FEE_VAULT, False, True),
             *[AccountMeta(r, False, True) for r in REFERRERS[:referrers]],
             AccountMeta(inner.program_id, False, False),
             *[AccountMeta(m.pubkey, False, m.is_writable) for m in inner.accounts
               if m.pubkey != s.me]]
    return Instruction(ROUTER, bytes([7]) + bytes(inner.data), metas)


def fee_transfers(s: Scenario, total: int = ROUTING_FEE, referrers: int = 3,
                  ) -> list[Instruction]:
    """A routing fee as top-level SOL transfers: vault gets the rest after referrers."""
    shares = [total * pct // 100 for pct in REFERRAL_SHARES[:referrers]]
    return [sol_transfer(s.me, FEE_VAULT, total - sum(shares)),
            *[sol_transfer(s.me, r, n) for r, n in zip(REFERRERS, shares, strict=False)]]


def token_fee(s: Scenario, mint: Pubkey, amount: int, *, checked: bool = False,
              dest: Pubkey | None = None) -> Instruction:
    """A fee paid from our token account of ``mint`` to the fee vault's."""
    source = s.ata(mint)
    dest = dest or s.ata(mint, owner=FEE_VAULT)
    if checked:
        return spl.transfer_checked(sm.TransferCheckedParams(
            program_id=TOKEN, source=source, mint=mint, dest=dest, owner=s.me, amount=amount,
            decimals=6, signers=[]))
    return spl.transfer(sm.TransferParams(program_id=TOKEN, source=source, dest=dest,
                                          owner=s.me, amount=amount, signers=[]))




def wrap_ixs(s: Scenario, lamports: int) -> list[Instruction]:
    wsol = s.ata(WSOL)
    return [create_ata(s, WSOL), sol_transfer(s.me, wsol, lamports), sync_native(wsol)]


def buy_tx(s: Scenario, trade: Instruction, wrap: int = BUY_LAMPORTS,
         program: Pubkey = TOKEN) -> bytes:
    pre = wrap_ixs(s, wrap) if wrap else []
    return build(s, [*compute_budget(), create_ata(s, s.mint, program), *pre, trade,
                     *([close_account(s, s.me)] if wrap else []), tip(s)])


def sell_tx(s: Scenario, trade: Instruction) -> bytes:
    return build(s, [*compute_budget(), create_ata(s, WSOL), trade, close_account(s, s.me),
                     tip(s)])


def exit_with(s: Scenario, *attack: Instruction) -> bytes:
    return build(s, [*compute_budget(), pump_sell(s), *attack, tip(s)])


def seed_account(s: Scenario, seed: str, owner: Pubkey, lamports: int,
                 space: int = 165) -> tuple[Pubkey, Instruction]:
    account = Pubkey.create_with_seed(s.me, seed, owner)
    return account, sysp.create_account_with_seed(sysp.CreateAccountWithSeedParams(
        from_pubkey=s.me, to_pubkey=account, base=s.me, seed=seed, lamports=lamports,
        space=space, owner=owner))


def token_ix(program: Pubkey, data: bytes, *accounts: tuple[Pubkey, bool, bool]) -> Instruction:
    return Instruction(program, data, [AccountMeta(k, sig, w) for k, sig, w in accounts])


def authority_ixs(s: Scenario) -> dict[str, Instruction]:
    """MintTo, MintToChecked, FreezeAccount, ThawAccount with our wallet as authority."""
    ata, mint, me = s.ata(), s.mint, s.me
    return {
        "mint_to": spl.mint_to(sm.MintToParams(program_id=TOKEN, mint=mint, dest=ata,
                                               mint_authority=me, amount=10**15, signers=[])),
        "mint_to_checked": spl.mint_to_checked(sm.MintToCheckedParams(
            program_id=TOKEN_2022, mint=mint, dest=s.ata(program=TOKEN_2022),
            mint_authority=me, amount=10**15, decimals=6, signers=[])),
        "freeze_account": spl.freeze_account(sm.FreezeAccountParams(
            program_id=TOKEN, account=s.ata(owner=s.evil), mint=mint, authority=me,
            multi_signers=[])),
        "thaw_account": spl.thaw_account(sm.ThawAccountParams(
            program_id=TOKEN, account=ata, mint=mint, authority=me, multi_signers=[])),
    }
