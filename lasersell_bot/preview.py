"""``lasersell-bot check --preview-sell``: see what the guard makes of a real sell.

The only way to see a real LaserSell transaction before a real exit fires is to ask the
API to build one (``POST {api_url}/v1/sell``). This asks for a sell of a mint the wallet
holds (the first one the RPC lists, or ``--mint``), never signs it, runs the static
rules and the effects verification on it, and says what it would do and why.

The API's sell carries no valuation (no entry or profit), so the preview cannot check
the proceeds against a promise as the daemon does for an exit signal: it checks every
other rule, requires that the sell cost no more than its fees, and prints the deltas
(what you would receive, and what goes to accounts that are not yours) for you to judge.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from solders.pubkey import Pubkey

from lasersell_bot.config import Config
from lasersell_bot.guard import Expectation, Verdict
from lasersell_bot.guard.effects import Promise
from lasersell_bot.guard.policy import TOKEN_2022_PROGRAM, TOKEN_PROGRAM, WSOL_ID
from lasersell_bot.metrics import Metrics
from lasersell_bot.send import Confirmer, RpcError, Submitter
from lasersell_bot.simulate import Simulator
from lasersell_bot.terms import costs_lamports
from lasersell_bot.vet import Refused, Vetted, Vetter

UNBOUNDED: Final = 2**63 - 1
PREVIEW_SLIPPAGE_BPS: Final = 500

HINTS: Final = {
    "program_not_allowed": "effects verification is off (guard.simulate = \"never\"): the "
                           "router program is refused on sight. Use the default "
                           "guard.simulate = \"always\".",
    "foreign_transfer": "effects verification is off (guard.simulate = \"never\"): fee "
                        "transfers are refused on sight. Use guard.simulate = \"always\".",
    "unverifiable": "the RPC could not simulate the sell: check that rpc.url answers "
                    "simulateTransaction (with the accounts option) and getMultipleAccounts.",
    "effects_foreign_state_changed": "a program's record naming your wallet would change; "
                                     "if that program is the LaserSell Router keeping its "
                                     "own record of your trades, add its id to "
                                     "guard.extra_programs to trust it.",
    "simulation_failed": "the sell would fail on chain as built; the API may be out of "
                         "date for this mint, try again or another mint.",
}


class PreviewFailed(Exception):
    """The preview could not be made or the sell would be refused; message says why."""


@dataclass(frozen=True)
class Holding:
    mint: str
    amount: int


async def find_holding(rpc: Confirmer, wallet: str, mint: str | None) -> Holding:
    """The wallet's balance of ``mint``, or its first non-empty token account."""
    for program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM):
        filter_ = {"mint": mint} if mint is not None else {"programId": program}
        try:
            result = await rpc.call("getTokenAccountsByOwner",
                                    [wallet, filter_, {"encoding": "jsonParsed"}])
        except RpcError as exc:
            raise PreviewFailed(f"cannot list the wallet's tokens: {exc}") from None
        for entry in result.get("value", []) if isinstance(result, dict) else []:
            holding = _holding(entry)
            if holding is not None and holding.amount > 0:
                return holding
        if mint is not None:
            break
    what = f"no {mint} tokens" if mint is not None else "no tokens"
    raise PreviewFailed(f"wallet {wallet} holds {what}; pass --mint for a mint it holds")


def _holding(entry: Any) -> Holding | None:
    try:
        info = entry["account"]["data"]["parsed"]["info"]
        return Holding(str(info["mint"]), int(info["tokenAmount"]["amount"]))
    except (KeyError, TypeError, ValueError):
        return None


async def request_sell(cfg: Config, wallet: str, holding: Holding) -> tuple[bytes, str]:
    """Ask the API to build the sell; (unsigned transaction, route description)."""
    body = {"mint": holding.mint, "user_pubkey": wallet, "amount_tokens": holding.amount,
            "output": "SOL", "slippage_bps": PREVIEW_SLIPPAGE_BPS}
    url = cfg.stream.api_url.rstrip("/") + "/v1/sell"
    headers = {"x-api-key": cfg.stream.api_key, "content-type": "application/json"}
    async with aiohttp.ClientSession() as http:
        try:
            async with http.post(url, json=body, headers=headers) as response:
                status = response.status
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise PreviewFailed(f"POST /v1/sell: {type(exc).__name__}") from None
    return _sell_reply(status, payload)


def _sell_reply(status: int, payload: Any) -> tuple[bytes, str]:
    if not isinstance(payload, dict):
        raise PreviewFailed(f"POST /v1/sell: http {status}, the reply is not a JSON object")
    tx_b64 = payload.get("tx") or payload.get("unsigned_tx_b64")
    if status != 200 or payload.get("status", "ok") != "ok" or not isinstance(tx_b64, str):
        why = payload.get("reason") or payload.get("message") or payload.get("error") or ""
        raise PreviewFailed(f"POST /v1/sell: http {status} {why}".rstrip())
    try:
        tx = base64.b64decode(tx_b64, validate=True)
    except (binascii.Error, ValueError):
        raise PreviewFailed("POST /v1/sell: tx is not base64") from None
    route = payload.get("route")
    route = route if isinstance(route, dict) else {}
    shown = " ".join(f"{k}={v}" for k, v in route.items() if k in ("market_type", "pool_id"))
    return tx, shown or "route not given"


def preview_promise(wallet: str, holding: Holding, cfg: Config) -> Any:
    """No valuation: the sell may not sell more than asked, drain anything, or cost more
    than its fees; its proceeds are shown, not judged."""
    def promise(static: Verdict) -> Promise:
        budget = costs_lamports(static, cfg.send.tip_lamports) + \
            cfg.guard.fee_allowance_min_lamports
        return Promise(Pubkey.from_string(wallet), "exit", Pubkey.from_string(holding.mint),
                       WSOL_ID, max_sell_tokens=holding.amount, min_quote_gain=-budget,
                       fee_budget=budget)
    return promise


async def preview_sell(cfg: Config, wallet: str, mint: str | None,
                       submitter: Submitter) -> list[str]:
    """Lines describing the verdict; PreviewFailed (with a hint) when it would be refused."""
    confirmer = Confirmer(submitter)
    holding = await find_holding(confirmer, wallet, mint)
    tx, route = await request_sell(cfg, wallet, holding)
    vetter = Vetter(cfg.guard, Simulator(confirmer, cfg.guard.simulation_timeout_ms / 1000),
                    Metrics())
    expect = Expectation.exit(wallet, holding.mint, fee_allowance_lamports=UNBOUNDED)
    try:
        vetted = await vetter.vet(tx, expect, preview_promise(wallet, holding, cfg))
    except Refused as refusal:
        hint = HINTS.get(refusal.reason, "see the README's guard refusal reasons")
        raise PreviewFailed(f"would be REFUSED ({refusal.path}): {refusal.reason}: "
                            f"{refusal.detail} -- {hint}") from None
    return describe(vetted, holding, route)


def describe(vetted: Vetted, holding: Holding, route: str) -> list[str]:
    lines = [f"sell of {holding.amount} {holding.mint} ({route}) would be signed"]
    unknown = vetted.static.unknown_programs
    if unknown:
        lines.append("programs that are not built in (judged by their effects): "
                     + ", ".join(unknown))
    if vetted.static.fee_lamports:
        lines.append(f"top-level transfers to accounts not yours: "
                     f"{vetted.static.fee_lamports} lamports")
    deltas = vetted.effects.deltas if vetted.effects is not None else None
    if deltas is not None:
        lines.append(f"you would receive {deltas.sol} lamports for {-deltas.mint} tokens "
                     f"(simulated in {vetted.simulation_ms or 0:.1f} ms)")
    else:
        lines.append("not simulated (guard.simulate); the static rules alone passed it")
    return lines


def hint_lines(lines: Sequence[str]) -> str:
    return "\n".join("     " + line for line in lines)
