"""Builds honest and hostile LaserSell-shaped transactions in code, for guard and signing tests.

Every transaction is compiled with solders (and the ``spl`` / ``solders.system_program``
instruction builders, so instruction data layouts are the canonical ones, not ours).
Honest ones mirror what the LaserSell server sends: v0 (or legacy), compute-unit limit
and price, DEX instruction naming the mint, tip transfer to a tip account, zero-filled
signature slots. Each hostile one is tagged with the exact ``reason`` the guard must give
with effects verification on (the default) and, where it differs, ``static_reason`` with
it off (``guard.simulate = "never"``). DEX instructions use each program's published
account layout (``guard/dex.py`` cites the IDLs). Router-shaped variants stand for the real
service: an unknown "LaserSell Router" program wrapping the swap (its id is not
published), or a direct swap plus top-level routing-fee transfers to a fee vault and up to
three referrers; they pass only with effects verification on.

Use ``honest_variants()`` / ``hostile_variants()``; ``Scenario`` holds the keys.
"""

from __future__ import annotations

import dataclasses
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
from solders.message import Message, MessageHeader, MessageV0
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


def pump_buy(s: Scenario, max_sol: int, program: Pubkey = TOKEN,
             mint: Pubkey | None = None) -> Instruction:
    return _dex(PUMP_FUN, _anchor("buy") + struct.pack("<QQ", 10**9, max_sol), s, program,
                mint=mint)


def pump_buy_exact_sol_in(s: Scenario, sol_in: int) -> Instruction:
    data = _anchor("buy_exact_sol_in") + struct.pack("<QQ", sol_in, 1)
    return _dex(PUMP_FUN, data, s, TOKEN_2022)


def _metas(s: Scenario, keys: Sequence[Pubkey], extra: Sequence[Pubkey] = (),
           readonly: Sequence[Pubkey] = ()) -> list[AccountMeta]:
    return [AccountMeta(k, k == s.me, k not in readonly) for k in [*keys, *extra]]


def pump_v2(s: Scenario, name: str, amount: int, limit: int, *, mint: Pubkey | None = None,
            quote: Pubkey = WSOL, program: Pubkey = TOKEN_2022) -> Instruction:
    """pump.fun ``buy_v2`` / ``buy_exact_quote_in_v2`` (27 accounts) or ``sell_v2`` (26)."""
    mint = mint or s.mint
    lbl = [_key(f"pump-v2-{n}-{mint}") for n in range(12)]
    keys = [lbl[0], mint, quote, program, TOKEN, sysp.ID, lbl[1], lbl[2], lbl[3], lbl[4],
            lbl[5], lbl[6], lbl[7], s.me, s.ata(mint, program), s.ata(quote), lbl[8], lbl[9],
            lbl[10], lbl[11], _key(f"uva-{s.me}"), _key(f"uva-ata-{s.me}"),
            _key("pump-fee-config"), _key("pump-fee-program"), sysp.ID, _key("pump-event"),
            PUMP_FUN]
    if name == "sell_v2":
        del keys[19]
    data = _anchor(name) + struct.pack("<QQ", amount, limit)
    return Instruction(PUMP_FUN, data, _metas(s, keys, readonly=[mint, quote, program]))


def pump_swap(s: Scenario, name: str, amount: int, limit: int, *,
              mint: Pubkey | None = None, quote: Pubkey = WSOL,
              extra: Sequence[Pubkey] = ()) -> Instruction:
    """PumpSwap ``buy`` (base_out, max_quote_in), ``buy_exact_quote_in`` or ``sell``."""
    mint = mint or s.mint
    lbl = [_key(f"pswap-{n}-{mint}-{quote}") for n in range(8)]
    keys = [lbl[0], s.me, _key("pswap-global"), mint, quote, s.ata(mint), s.ata(quote), lbl[1],
            lbl[2], _key("pswap-protocol-fee"), lbl[3], TOKEN, TOKEN, sysp.ID,
            spl.ASSOCIATED_TOKEN_PROGRAM_ID, _key("pswap-event"), PUMP_SWAP, lbl[4], lbl[5]]
    data = _anchor(name) + struct.pack("<QQ", amount, limit)
    return Instruction(PUMP_SWAP, data, _metas(s, keys, extra, readonly=[mint, quote, TOKEN]))


def launchlab(s: Scenario, name: str, amount: int, limit: int, *,
              mint: Pubkey | None = None, quote: Pubkey = WSOL) -> Instruction:
    """Raydium LaunchLab ``buy_exact_in`` / ``buy_exact_out`` / ``sell_exact_in`` / ..."""
    mint = mint or s.mint
    lbl = [_key(f"launchlab-{n}-{mint}") for n in range(4)]
    keys = [s.me, _key("launchlab-authority"), _key("launchlab-global"),
            _key("launchlab-platform"), lbl[0], s.ata(mint), s.ata(quote), lbl[1], lbl[2],
            mint, quote, TOKEN, TOKEN, _key("launchlab-event"), LAUNCHLAB]
    data = _anchor(name) + struct.pack("<QQQ", amount, limit, 0)
    return Instruction(LAUNCHLAB, data, _metas(s, keys, readonly=[mint, quote, TOKEN]))


def cpmm_swap(s: Scenario, name: str, amount: int, *, sell: Pubkey, buy: Pubkey,
              source: Pubkey | None = None, extra: Sequence[Pubkey] = ()) -> Instruction:
    """Raydium CPMM ``swap_base_input`` (amount_in, min_out) or ``swap_base_output``
    (max_amount_in, amount_out): input mint at 10, output mint at 11."""
    lbl = [_key(f"cpmm-{n}-{sell}-{buy}") for n in range(4)]
    keys = [s.me, _key("cpmm-authority"), _key("cpmm-config"), lbl[0], source or s.ata(sell),
            s.ata(buy), lbl[1], lbl[2], TOKEN, TOKEN, sell, buy, lbl[3]]
    data = _anchor(name) + struct.pack("<QQ", amount, 1)
    return Instruction(RAYDIUM_CPMM, data, _metas(s, keys, extra, readonly=[sell, buy, TOKEN]))


def meteora_swap(s: Scenario, program: Pubkey, name: str, amount: int, *, buy: bool,
                 mint: Pubkey | None = None, quote: Pubkey = WSOL, mode: int = 0,
                 source: Pubkey | None = None) -> Instruction:
    """Meteora DBC or DAMM v2 ``swap`` (amount_in, min_out) / ``swap2`` (amount_0, amount_1,
    mode): the input token account decides the direction."""
    mint = mint or s.mint
    lbl = [_key(f"{program}-{n}-{mint}") for n in range(4)]
    inp, out = (s.ata(quote), s.ata(mint)) if buy else (s.ata(mint), s.ata(quote))
    inp = source or inp
    if program == DBC:
        keys = [_key("dbc-authority"), _key("dbc-config"), lbl[0], inp, out, lbl[1], lbl[2],
                mint, quote, s.me, TOKEN, TOKEN, DBC, _key("dbc-event"), DBC]
    else:
        keys = [_key("damm-authority"), lbl[0], inp, out, lbl[1], lbl[2], mint, quote, s.me,
                TOKEN, TOKEN, DAMM_V2, _key("damm-event"), DAMM_V2]
    if name == "swap2":
        args = (1, amount, 2) if mode == 2 else (amount, 1, mode)
        data = _anchor(name) + struct.pack("<QQB", *args)
    else:
        data = _anchor(name) + struct.pack("<QQ", amount, 1)
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
                build(s, exit_pumpfun_ixs(s), tables=[dex_lookup_table(s)]), exit_,
                tables=table_map(dex_lookup_table(s))),
        Variant("exit_memo_no_tip", build(s, [*compute_budget(), memo(f"lasersell:{s.mint}"),
                                              meteora_swap(s, DAMM_V2, "swap", SELL_TOKENS,
                                                           buy=False)]), exit_),
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
        *router_variants(s), *dex_variants(s), *table_variants(s),
    ]


def table_map(*alts: AddressLookupTableAccount) -> dict[Pubkey, list[Pubkey]]:
    """What the caller passes the guard: each table's address -> its addresses."""
    return {alt.key: list(alt.addresses) for alt in alts}


# ---------------------------------------------------------------------------
# The real service's shape: the LaserSell Router (unpublished id) and routing fees

ROUTER = _key("lasersell-router")  # stands in for the router's unpublished program id
FEE_VAULT = _key("lasersell-fee-vault")
REFERRERS = tuple(_key(f"lasersell-referrer-{i}") for i in range(3))
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


def router_variants(s: Scenario) -> list[Variant]:
    """Honest with effects verification on; refused on sight without it."""
    exit_, buy = s.exit_expect(), s.buy_expect()
    cb = compute_budget()
    wsol_fee = ROUTING_FEE // 2
    router_alt = AddressLookupTableAccount(_key("router-alt"), [
        FEE_VAULT, *REFERRERS, _key(f"{PUMP_FUN}-global"), _key(f"{PUMP_FUN}-fee"),
        _key(f"{PUMP_FUN}-pool-{s.mint}"), _key(f"{PUMP_FUN}-vault-{s.mint}")])
    router_exit = [*cb, router(s, pump_sell(s)), tip(s)]
    return [
        Variant("router_exit_pumpfun", build(s, router_exit), exit_, None,
                "program_not_allowed"),
        Variant("router_exit_pumpswap_wsol_one_referrer",
                build(s, [*cb, create_ata(s, WSOL), router(s, amm_swap(s, PUMP_SWAP, "sell"), 1),
                          close_account(s, s.me), tip(s, account=JITO_TIP)]),
                exit_, None, "program_not_allowed"),
        Variant("router_exit_with_lookup_table", build(s, router_exit, tables=[router_alt]),
                exit_, None, "program_not_allowed", tables=table_map(router_alt)),
        Variant("router_buy_pumpfun",
                build(s, [*cb, create_ata(s, s.mint, TOKEN_2022),
                          router(s, pump_buy(s, BUY_LAMPORTS, TOKEN_2022)), tip(s)]),
                buy, None, "program_not_allowed"),
        Variant("exit_direct_swap_fee_transfers",
                build(s, [*cb, pump_sell(s), *fee_transfers(s), tip(s)]), exit_, None,
                "foreign_transfer"),
        Variant("buy_direct_swap_fee_transfers",
                build(s, [*cb, create_ata(s, s.mint, TOKEN_2022),
                          pump_buy(s, BUY_LAMPORTS, TOKEN_2022), *fee_transfers(s, referrers=2),
                          tip(s)]), buy, None, "foreign_transfer"),
        Variant("exit_wsol_fee_token_transfer",
                build(s, [*cb, create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
                          token_fee(s, WSOL, wsol_fee), close_account(s, s.me),
                          *fee_transfers(s, ROUTING_FEE - wsol_fee, 0), tip(s)]),
                exit_, None, "token_transfer_foreign"),
        Variant("exit_wsol_fee_into_a_vault_account_we_create",
                build(s, [*cb, create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
                          create_ata(s, WSOL, owner=FEE_VAULT), token_fee(s, WSOL, wsol_fee),
                          close_account(s, s.me), tip(s)]),
                exit_, None, "ata_foreign_owner"),
        Variant("exit_usd1_pair_usd1_fee",
                build(s, [*cb, create_ata(s, USD1), pump_swap(s, "sell", SELL_TOKENS, 1,
                                                              quote=USD1),
                          token_fee(s, USD1, FEE_ALLOWANCE_USD1, checked=True), tip(s)]),
                exit_, None, "token_transfer_foreign"),
    ]


# ---------------------------------------------------------------------------
# Every DEX's trade forms, and the transactions issue 10 found refused or mis-read


def wrap_ixs(s: Scenario, lamports: int) -> list[Instruction]:
    wsol = s.ata(WSOL)
    return [create_ata(s, WSOL), sol_transfer(s.me, wsol, lamports), sync_native(wsol)]


def _buy(s: Scenario, trade: Instruction, wrap: int = BUY_LAMPORTS,
         program: Pubkey = TOKEN) -> bytes:
    pre = wrap_ixs(s, wrap) if wrap else []
    return build(s, [*compute_budget(), create_ata(s, s.mint, program), *pre, trade,
                     *([close_account(s, s.me)] if wrap else []), tip(s)])


def _sell(s: Scenario, trade: Instruction) -> bytes:
    return build(s, [*compute_budget(), create_ata(s, WSOL), trade, close_account(s, s.me),
                     tip(s)])


def dex_variants(s: Scenario) -> list[Variant]:
    exit_, buy = s.exit_expect(), s.buy_expect()
    return [
        Variant("exit_pumpfun_sell_v2", build(s, [*compute_budget(), pump_v2(
            s, "sell_v2", SELL_TOKENS, 1), tip(s)]), exit_),
        Variant("exit_launchlab_sell_exact_in", _sell(s, launchlab(s, "sell_exact_in",
                                                                   SELL_TOKENS, 1)), exit_),
        Variant("exit_cpmm_swap_base_input",
                _sell(s, cpmm_swap(s, "swap_base_input", SELL_TOKENS, sell=s.mint, buy=WSOL)),
                exit_),
        Variant("exit_dbc_swap", _sell(s, meteora_swap(s, DBC, "swap", SELL_TOKENS, buy=False)),
                exit_),
        Variant("exit_damm_v2_swap2", _sell(s, meteora_swap(s, DAMM_V2, "swap2", SELL_TOKENS,
                                                            buy=False)), exit_),
        Variant("exit_usd1_output_for_sol_pair", build(s, [
            *compute_budget(), pump_sell(s), *wrap_ixs(s, BUY_LAMPORTS), create_ata(s, USD1),
            cpmm_swap(s, "swap_base_input", BUY_LAMPORTS, sell=WSOL, buy=USD1),
            close_account(s, s.me), tip(s)]), exit_, None, "trade_unverifiable"),
        Variant("buy_pumpfun_v2", _buy(s, pump_v2(s, "buy_v2", 10**9, BUY_LAMPORTS), 0,
                                       TOKEN_2022), buy),
        Variant("buy_pumpfun_exact_quote_in_v2", _buy(s, pump_v2(
            s, "buy_exact_quote_in_v2", BUY_LAMPORTS, 1), 0, TOKEN_2022), buy),
        Variant("buy_pumpswap_exact_quote_in",
                _buy(s, pump_swap(s, "buy_exact_quote_in", BUY_LAMPORTS, 1)), buy),
        Variant("buy_launchlab_exact_out",
                _buy(s, launchlab(s, "buy_exact_out", 10**9, BUY_LAMPORTS)), buy),
        Variant("buy_cpmm_swap_base_output", _buy(s, cpmm_swap(
            s, "swap_base_output", BUY_LAMPORTS, sell=WSOL, buy=s.mint)), buy),
        Variant("buy_dbc_swap2_exact_out",
                _buy(s, meteora_swap(s, DBC, "swap2", BUY_LAMPORTS, buy=True, mode=2)), buy),
        Variant("buy_damm_v2_swap", _buy(s, meteora_swap(s, DAMM_V2, "swap", BUY_LAMPORTS,
                                                         buy=True)), buy),
        Variant("buy_usd1_pair_paid_in_usd1",
                _buy(s, pump_swap(s, "buy", 10**9, 20_000_000, quote=USD1), 0), buy, None,
                "buy_input_unverifiable"),
    ]


def table_variants(s: Scenario) -> list[Variant]:
    """Lookup tables that hold the keys the guard needs (passed as ``tables``)."""
    alt = AddressLookupTableAccount(_key("alt-needed"), [s.mint, TOKEN_2022, JITO_TIP])
    ixs = [*compute_budget(), create_ata(s, s.mint, TOKEN_2022), pump_sell(s, TOKEN_2022),
           tip(s, account=JITO_TIP)]
    return [Variant("exit_mint_token_program_tip_in_lookup_table",
                    build(s, ixs, tables=[alt]), s.exit_expect(), tables=table_map(alt))]


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


# Reasons with effects verification on, where they differ from the static-only ones:
# SOL to a stranger is a routing fee (refused above the allowance, else left to the
# effects stage), and an unknown program is left to the effects stage.
EFFECTS_REASONS: dict[str, str | None] = {
    "drain_sol_transfer": "fee_too_large",
    "drain_sol_transfer_with_seed": "fee_too_large",
    "drain_sol_to_lookup_table_dest": "fee_too_large",
    "tip_to_non_tip_account": None,
    "program_not_allowlisted": None,
    "buy_wrap_into_foreign_wsol": "fee_too_large",
    "buy_wrap_into_token2022_wsol_derivation": "fee_too_large",
    "ata_for_foreign_owner": None,  # its rent counts as a fee, within the allowance
    "buy_to_wrong_wallet": "fee_too_large",
}


def _tagged(variants: list[Variant]) -> list[Variant]:
    return [dataclasses.replace(v, reason=EFFECTS_REASONS[v.name], static_reason=v.reason)
            if v.name in EFFECTS_REASONS else v for v in variants]


def hostile_variants(s: Scenario | None = None) -> list[Variant]:
    s = s or Scenario()
    tables = {**_drains(s), **_system_attacks(s), **_tip_and_fee_attacks(s), **_shape_attacks(s)}
    made = [Variant(name, make(), s.exit_expect(), reason)
            for name, (make, reason) in tables.items()]
    return _tagged(made + _wrong_target_attacks(s) + issue10_attacks(s) + fee_attacks(s))


# ---------------------------------------------------------------------------
# Issue 10: the static holes, one class at a time


def seed_account(s: Scenario, seed: str, owner: Pubkey, lamports: int,
                 space: int = 165) -> tuple[Pubkey, Instruction]:
    account = Pubkey.create_with_seed(s.me, seed, owner)
    return account, sysp.create_account_with_seed(sysp.CreateAccountWithSeedParams(
        from_pubkey=s.me, to_pubkey=account, base=s.me, seed=seed, lamports=lamports,
        space=space, owner=owner))


def _token_ix(program: Pubkey, data: bytes, *accounts: tuple[Pubkey, bool, bool]) -> Instruction:
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


def _funded_attacks(s: Scenario) -> list[Variant]:
    exit_, buy = s.exit_expect(), s.buy_expect()
    plain = [*compute_budget(), pump_sell(s)]
    rent512 = rent_exempt_lamports(512)
    six = [seed_account(s, f"rent{i}", TOKEN_2022, rent512, 512)[1] for i in range(3)]
    parked, park = seed_account(s, "park", TOKEN, rent_exempt_lamports(165) + BUY_LAMPORTS)
    alt_account = Pubkey.create_with_seed(s.me, "alt", TOKEN)
    alt = AddressLookupTableAccount(_key("alt-funded"), [alt_account])
    mint_acct, fund_mint = seed_account(s, "mint", TOKEN_2022, rent_exempt_lamports(234), 234)
    close_authority = _token_ix(TOKEN_2022, bytes([25, 1]) + bytes(s.evil),
                                (mint_acct, False, True))
    init_mint = _token_ix(TOKEN_2022, bytes([20, 6]) + bytes(s.me) + bytes([0]),
                          (mint_acct, False, True))
    return [
        Variant("rent_parked_in_uninitialised_token2022_accounts",
                build(s, [*plain, *six, tip(s)]), exit_, "funded_account_not_ours"),
        Variant("buy_budget_parked_in_uninitialised_account",
                build(s, [*compute_budget(), park, create_ata(s, s.mint),
                          pump_swap(s, "buy", 10**9, BUY_LAMPORTS, extra=[parked]), tip(s)]),
                buy, "funded_account_not_ours"),
        Variant("funded_account_from_lookup_table",
                build(s, [*plain, seed_account(s, "alt", TOKEN, rent_exempt_lamports(165))[1],
                          spl.initialize_account3(sm.InitializeAccount3Params(
                              program_id=TOKEN, account=alt_account, mint=WSOL, owner=s.me))],
                      tables=[alt]), exit_, "funded_account_lookup_table",
                tables=table_map(alt)),
        Variant("funded_account_turned_into_mint_with_foreign_close_authority",
                build(s, [*plain, fund_mint, close_authority, init_mint]), exit_,
                "funded_account_not_ours"),
        Variant("account_created_under_memo",
                build(s, [*plain, seed_account(s, "memo", MEMO, rent_exempt_lamports(0), 0)[1]]),
                exit_, "create_account_foreign_owner"),
        Variant("account_created_under_a_dex",
                build(s, [*plain, seed_account(s, "dex", PUMP_SWAP, rent_exempt_lamports(64),
                                               64)[1]]), exit_, "create_account_foreign_owner"),
    ]


def _buy_attacks(s: Scenario) -> list[Variant]:
    exit_, buy = s.exit_expect(), s.buy_expect()
    other = _key("other-coin")
    ten = 10 * BUY_LAMPORTS

    def exit_plus(trade: Instruction) -> bytes:
        return build(s, [*compute_budget(), pump_sell(s), trade, tip(s)])

    def exit_plus_v2(name: str, amount: int, limit: int) -> Variant:
        """pump.fun v2 takes 27 accounts: the server would load them from a table."""
        trade = pump_v2(s, name, amount, limit, mint=other)
        alt = AddressLookupTableAccount(_key("v2-alt"), list(dict.fromkeys(
            m.pubkey for m in trade.accounts if m.pubkey not in (s.me, PUMP_FUN))))
        return Variant(f"exit_with_{name}_of_another_coin",
                       build(s, [*compute_budget(), pump_sell(s), trade, tip(s)], tables=[alt]),
                       exit_, "exit_contains_buy", tables=table_map(alt))

    return [
        exit_plus_v2("buy_v2", 10**9, ten),
        exit_plus_v2("buy_exact_quote_in_v2", ten, 1),
        Variant("exit_with_pumpswap_buy", exit_plus(pump_swap(s, "buy", 10**9, ten)), exit_,
                "exit_contains_buy"),
        Variant("exit_with_launchlab_buy", exit_plus(launchlab(s, "buy_exact_in", ten, 1,
                                                               mint=other)),
                exit_, "exit_contains_buy"),
        Variant("exit_with_cpmm_buy_of_another_coin", exit_plus(cpmm_swap(
            s, "swap_base_input", ten, sell=WSOL, buy=other)), exit_, "exit_contains_buy"),
        Variant("exit_with_dbc_buy", exit_plus(meteora_swap(s, DBC, "swap", ten, buy=True,
                                                            mint=other)),
                exit_, "exit_contains_buy"),
        Variant("exit_with_damm_v2_swap2_buy", exit_plus(meteora_swap(
            s, DAMM_V2, "swap2", ten, buy=True, mint=other, mode=2)), exit_,
            "exit_contains_buy"),
        Variant("buy_v2_more_than_agreed",
                _buy(s, pump_v2(s, "buy_v2", 10**9, ten), 0, TOKEN_2022), buy,
                "buy_amount_mismatch"),
        Variant("buy_exact_quote_in_v2_more_than_agreed",
                _buy(s, pump_v2(s, "buy_exact_quote_in_v2", ten, 1), 0, TOKEN_2022), buy,
                "buy_amount_mismatch"),
        Variant("buy_cpmm_drains_existing_wsol",
                _buy(s, cpmm_swap(s, "swap_base_output", ten, sell=WSOL, buy=s.mint)), buy,
                "buy_amount_mismatch"),
        Variant("buy_dbc_swap2_exact_out_more_than_agreed",
                _buy(s, meteora_swap(s, DBC, "swap2", ten, buy=True, mode=2)), buy,
                "buy_amount_mismatch"),
        Variant("buy_launchlab_more_than_agreed",
                _buy(s, launchlab(s, "buy_exact_in", ten, 1)), buy, "buy_amount_mismatch"),
        Variant("exit_creates_a_pool_with_our_position",
                exit_plus(Instruction(PUMP_SWAP, _anchor("create_pool") + struct.pack(
                    "<HQQ", 0, SELL_TOKENS, 1) + bytes(s.evil) + bytes(2),
                    pump_swap(s, "sell", 1, 1).accounts)), exit_, "dex_instruction_unknown"),
        Variant("exit_deposits_into_a_pool",
                exit_plus(Instruction(PUMP_SWAP, _anchor("deposit") + struct.pack(
                    "<QQQ", 1, SELL_TOKENS, 10**9), pump_swap(s, "sell", 1, 1).accounts)),
                exit_, "dex_instruction_unknown"),
        Variant("exit_with_cpmm_deposit",
                exit_plus(Instruction(RAYDIUM_CPMM, _anchor("deposit") + bytes(24), cpmm_swap(
                    s, "swap_base_input", 1, sell=s.mint, buy=WSOL).accounts)),
                exit_, "dex_instruction_unknown"),
    ]


def _wrong_coin_attacks(s: Scenario) -> list[Variant]:
    other = _key("other-coin")
    return [
        Variant("buy_of_another_mint_signal_mint_only_in_ata_create",
                build(s, [*compute_budget(), create_ata(s, s.mint),
                          pump_buy(s, BUY_LAMPORTS, mint=other), tip(s)]), s.buy_expect(),
                "wrong_mint_traded"),
        Variant("buy_v2_of_another_mint", _buy(s, pump_v2(s, "buy_v2", 10**9, BUY_LAMPORTS,
                                                          mint=other), 0, TOKEN_2022),
                s.buy_expect(), "wrong_mint_traded"),
        Variant("exit_sells_a_different_position",
                build(s, [*compute_budget(), create_ata(s, s.mint), pump_sell(s, mint=other),
                          tip(s)]), s.exit_expect(), "wrong_mint_traded"),
        Variant("exit_sells_a_different_position_on_damm_v2",
                build(s, [*compute_budget(), create_ata(s, s.mint), meteora_swap(
                    s, DAMM_V2, "swap", SELL_TOKENS, buy=False, mint=other), tip(s)]),
                s.exit_expect(), "wrong_mint_traded"),
    ]


def _authority_attacks(s: Scenario) -> list[Variant]:
    reasons = {"mint_to": "token_mint_to", "mint_to_checked": "token_mint_to",
               "freeze_account": "token_freeze", "thaw_account": "token_freeze"}
    return [Variant(f"{name}_with_our_authority", _exit_plus(s, ix), s.exit_expect(),
                    reasons[name]) for name, ix in authority_ixs(s).items()]


def _landing_attacks(s: Scenario) -> list[Variant]:
    exit_ = s.exit_expect()
    honest = v0(s.me, exit_pumpfun_ixs(s), s.blockhash)
    keys = list(honest.account_keys)

    def patched(header: MessageHeader | None = None, keys: list[Pubkey] = keys) -> bytes:
        h = header or honest.header
        return unsigned(MessageV0(h, keys, honest.recent_blockhash, list(honest.instructions),
                                  []))

    alt = dex_lookup_table(s)
    with_me = AddressLookupTableAccount(alt.key, [s.me, *alt.addresses[1:]])
    n = len(keys)
    return [
        Variant("duplicate_static_key", patched(keys=[*keys[:-1], keys[1]]), exit_,
                "duplicate_account_key"),
        Variant("wallet_loaded_again_through_lookup_table",
                build(s, exit_pumpfun_ixs(s), tables=[alt]), exit_, "duplicate_account_key",
                tables=table_map(with_me)),
        Variant("fee_payer_read_only", patched(MessageHeader(1, 1, 0)), exit_,
                "invalid_header"),
        Variant("more_read_only_keys_than_keys", patched(MessageHeader(1, 0, n)), exit_,
                "invalid_header"),
        Variant("two_compute_unit_limits", build(s, [set_compute_unit_limit(CU_LIMIT),
                                                     *exit_pumpfun_ixs(s)]), exit_,
                "compute_budget_duplicate"),
        Variant("two_compute_unit_prices", build(s, [*exit_pumpfun_ixs(s),
                                                     set_compute_unit_price(1)]), exit_,
                "compute_budget_duplicate"),
        Variant("more_instructions_than_the_runtime_allows",
                build(s, [*exit_pumpfun_ixs(s), *[memo("") for _ in range(61)]]), exit_,
                "too_many_instructions"),
        Variant("fee_payer_as_program",
                with_raw_instruction(honest, CompiledInstruction(0, b"", bytes([1]))),
                exit_, "invalid_account_index"),
        Variant("account_index_past_the_keys",
                with_raw_instruction(honest, CompiledInstruction(n - 1, b"", bytes([200]))),
                exit_, "invalid_account_index"),
        Variant("lookup_table_not_fetched",
                build(s, exit_pumpfun_ixs(s), tables=[alt]), exit_, "lookup_table_unavailable",
                tables={}),
        Variant("lookup_table_shorter_than_its_index",
                build(s, exit_pumpfun_ixs(s), tables=[alt]), exit_, "lookup_table_unavailable",
                tables={alt.key: list(alt.addresses[:1])}),
    ]


def issue10_attacks(s: Scenario) -> list[Variant]:
    buy_t22_wsol = build(s, [*compute_budget(), create_ata(s, s.mint),
                             sol_transfer(s.me, s.ata(WSOL, TOKEN_2022), BUY_LAMPORTS),
                             amm_swap(s, PUMP_SWAP, "buy"), tip(s)])
    return [*_funded_attacks(s), *_buy_attacks(s), *_wrong_coin_attacks(s),
            *_authority_attacks(s), *_landing_attacks(s),
            Variant("buy_wrap_into_token2022_wsol_derivation", buy_t22_wsol, s.buy_expect(),
                    "foreign_transfer")]


def fee_attacks(s: Scenario) -> list[Variant]:
    """Routing fees above the allowance, and a fee in a mint that is not a quote asset."""
    exit_ = s.exit_expect()
    cb = compute_budget()
    over = FEE_ALLOWANCE + 1
    return [
        Variant("sol_fee_over_allowance", build(s, [*cb, pump_sell(s), *fee_transfers(s, over),
                                                    tip(s)]), exit_, "fee_too_large",
                "foreign_transfer"),
        Variant("wsol_fee_over_allowance",
                build(s, [*cb, create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
                          token_fee(s, WSOL, over), close_account(s, s.me), tip(s)]),
                exit_, "fee_too_large", "token_transfer_foreign"),
        Variant("usd1_fee_over_allowance",
                build(s, [*cb, pump_swap(s, "sell", SELL_TOKENS, 1, quote=USD1),
                          token_fee(s, USD1, FEE_ALLOWANCE_USD1 + 1), tip(s)]),
                exit_, "fee_too_large", "token_transfer_foreign"),
        Variant("fee_paid_in_the_position_token",
                build(s, [*cb, pump_sell(s), token_fee(s, s.mint, 1), tip(s)]), exit_,
                "token_transfer_foreign"),
        Variant("fee_sol_and_wsol_together_over_allowance",
                build(s, [*cb, create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
                          token_fee(s, WSOL, FEE_ALLOWANCE), close_account(s, s.me),
                          sol_transfer(s.me, FEE_VAULT, 1), tip(s)]), exit_, "fee_too_large",
                "token_transfer_foreign"),
    ]
