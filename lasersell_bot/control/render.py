"""Plain-text views of ``GET /api/v1/state`` for the terminal (``status``) and Telegram."""

from __future__ import annotations

from typing import Any, Final

LAMPORTS_PER_SOL: Final = 1_000_000_000


def sol(lamports: int | None, sign: bool = False) -> str:
    if lamports is None:
        return "-"
    return f"{lamports / LAMPORTS_PER_SOL:{'+' if sign else ''}.4f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def short(text: str | None, keep: int = 4) -> str:
    if not text:
        return "-"
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-keep:]}"


def headline(state: dict[str, Any]) -> str:
    """One line: health, session, positions, in flight, mirror, realised PnL."""
    session, executor, mirror = state["session"], state["executor"], state["mirror"]
    health = state["health"]["status"]
    link = f"session {session['session_id']}" if session["connected"] else "stream DOWN"
    rtt = session.get("rtt_ms")
    rtt_text = f" rtt {rtt:.0f}ms" if isinstance(rtt, int | float) else ""
    mirror_text = ("paused" if mirror["paused"] else "on") if mirror["enabled"] else "off"
    return (f"{health.upper()} | {link}{rtt_text} | {len(state['positions'])} positions | "
            f"{executor['in_flight']} in flight | mirror {mirror_text} | realised "
            f"{sol(state['realized']['total_lamports'], sign=True)} SOL")


def position_lines(state: dict[str, Any]) -> list[str]:
    """One line per position: id, token, tokens, PnL, status."""
    lines = []
    for p in state["positions"]:
        token = p.get("symbol") or short(p["mint"])
        lines.append(f"#{p['id']} {token} pnl {sol(p['profit_units'], sign=True)} SOL "
                     f"({pct(p['profit_pct'])}) {p['status']}")
    return lines or ["no open positions"]


def status_text(state: dict[str, Any], width: int = 100) -> str:
    """``lasersell-bot status``: a headline, a positions table, health reasons, landing."""
    lines = [headline(state), ""]
    header = f"{'ID':>6}  {'TOKEN':<12} {'WALLET':<10} {'TOKENS':>14} {'PNL SOL':>10} " \
             f"{'PNL %':>8}  STATUS"
    lines.append(header)
    for p in state["positions"]:
        token = (p.get("symbol") or short(p["mint"]))[:12]
        lines.append(f"{p['id']:>6}  {token:<12} {short(p['wallet']):<10} {p['tokens']:>14} "
                     f"{sol(p['profit_units'], sign=True):>10} {pct(p['profit_pct']):>8}  "
                     f"{p['status']}")
    if not state["positions"]:
        lines.append("(no open positions)")
    executor = state["executor"]
    wire = executor["signal_to_wire_ms"]
    landing = executor.get("landing") or {}
    land = landing.get("time_to_land_ms") or {}
    lines += ["", f"in flight: {executor['in_flight']}  signal-to-wire p50/p99: "
              f"{_ms(wire.get('p50'))}/{_ms(wire.get('p99'))}  time-to-land p50: "
              f"{_ms(land.get('p50'))}  landing rate: {_rate(landing.get('landing_rate'))}"]
    for wallet in state["wallets"]:
        lines.append(f"wallet {short(wallet['pubkey'])}: {sol(wallet['sol_lamports'])} SOL")
    reasons = state["health"].get("reasons") or []
    if reasons:
        lines.append("health: " + "; ".join(reasons))
    return "\n".join(line[:width] if len(line) > width else line for line in lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
