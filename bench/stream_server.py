"""Lean LaserSell stream server for the benchmark (own process, aiohttp on uvloop).

Speaks just enough of the protocol for a client to trade: ``hello_ok`` on open,
``position_opened`` for every position after ``configure``, ``pong`` for ``ping``,
``POST /v1/wallets/register`` answered ok. Everything it writes to the client is a
pre-framed websocket TEXT frame put straight on the transport, so the server adds
no queue of its own. ``time.monotonic_ns()`` is stamped immediately before the
``transport.write`` of each ``exit_signal_with_tx`` frame.

Control API (used by ``bench.run``): ``GET /bench/state``, ``POST /bench/reset``,
``POST /bench/phase`` (send a signal schedule, optionally under a paced or unpaced
flood of pnl_update / liquidity_snapshot / trade_tick; answers when done).

With ``--wallets-file`` (the tier phase: e.g. 200 wallets x 100 positions) every
position is announced, the signals rotate over one real transaction template per
wallet, and the floods are per position, as a ``pnl_flush_ms`` flush sends them:
``pnl`` (one ``pnl_update`` per position per cycle) or ``pnl_liquidity`` (a
``pnl_update`` and a ``liquidity_snapshot`` per position per cycle).

Usage: python -m bench.stream_server --wallet PUBKEY
       python -m bench.stream_server --wallets-file wallets.json --positions-per-wallet 100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import hashlib
import json
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from aiohttp import WSMsgType, web

from bench.common import POSITIONS, announce, now_ns
from bench.txtemplate import TOKEN_PROGRAM, PositionTx, build_positions, message_digest

FLOOD_HIGH_WATER = 64 * 1024
FLOOD_TICK_S = 0.001  # uvloop timers have 1 ms resolution: shorter sleeps spin
UNPACED_CHUNK = 256
FLOOD_VARIANTS = 4096
_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def ws_frame(payload: bytes) -> bytes:
    """One final unmasked TEXT frame (server to client)."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def wall_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


@dataclass
class Session:
    session_id: int
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    configured_at_ns: int | None = None
    received: dict[str, int] = field(default_factory=dict)


class FloodBuffer:
    """Pre-framed low-priority frames as one cycle buffer, sliced by frame index."""

    def __init__(self, frames: list[bytes]) -> None:
        self.count = len(frames)
        self.data = b"".join(frames)
        self.offsets = [0]
        for frame in frames:
            self.offsets.append(self.offsets[-1] + len(frame))
        self.view = memoryview(self.data)
        self.next = 0

    def take(self, n: int) -> bytes:
        parts = []
        while n > 0:
            start = self.next
            end = min(self.count, start + n)
            parts.append(self.view[self.offsets[start]:self.offsets[end]])
            n -= end - start
            self.next = end % self.count
        return b"".join(parts)


def flood_frames(positions: list[PositionTx]) -> list[bytes]:
    """pnl_update / liquidity_snapshot / trade_tick, integers where the vendor SDK wants
    integers (it rejects float prices), so both clients parse every frame."""
    rng = random.Random(7)
    frames = []
    server_ms = wall_ms()
    for i in range(FLOOD_VARIANTS // 3):
        pid = positions[i % len(positions)].position_id
        proceeds = 100_000_000 + rng.randrange(-20_000_000, 60_000_000)
        price = rng.randrange(1_000, 50_000)
        frames.append({"type": "pnl_update", "position_id": pid,
                       "profit_units": proceeds - 100_000_000, "proceeds_units": proceeds,
                       "server_time_ms": server_ms + i, "token_price_quote": price})
        frames.append({"type": "liquidity_snapshot", "position_id": pid, "bands": [
            {"slippage_bps": bps, "max_tokens": 1_000_000_000 * bps // 500,
             "coverage_pct": min(100.0, bps / 5)} for bps in (100, 250, 500, 1000)],
            "liquidity_trend": rng.choice(["growing", "stable", "draining"]),
            "server_time_ms": server_ms + i})
        amount = rng.randrange(1_000_000, 50_000_000)
        frames.append({"type": "trade_tick", "position_id": pid, "time_ms": server_ms + i,
                       "side": rng.choice(["buy", "sell"]), "token_amount": amount,
                       "quote_amount": amount * price // 1_000_000, "price_quote": price,
                       "maker": positions[(i + 1) % len(positions)].mint,
                       "tx_signature": base64.b32encode(rng.randbytes(55)).decode()[:88]})
    return [ws_frame(_json.encode(f)) for f in frames]


@dataclass(frozen=True)
class Announced:
    """A position as ``position_opened`` announces it."""

    position_id: int
    wallet: str
    mint: str
    token_account: str


def _fake_pubkey(label: bytes) -> str:
    from solders.pubkey import Pubkey

    return str(Pubkey(hashlib.sha256(label).digest()))


def tier_positions(wallets: list[str], per_wallet: int) -> tuple[
        list[tuple[str, PositionTx]], list[Announced]]:
    """One real transaction template per wallet (its first position carries the
    signals) and every position announced (ids 1..wallets x per_wallet)."""
    from solders.pubkey import Pubkey

    signal_positions: list[tuple[str, PositionTx]] = []
    announced: list[Announced] = []
    for w, wallet in enumerate(wallets):
        first = w * per_wallet + 1
        template = dataclasses.replace(build_positions(Pubkey.from_string(wallet), 1)[0],
                                       position_id=first)
        signal_positions.append((wallet, template))
        announced.append(Announced(first, wallet, template.mint, template.token_account))
        for k in range(1, per_wallet):
            pid = first + k
            announced.append(Announced(pid, wallet, _fake_pubkey(b"mint%d" % pid),
                                       _fake_pubkey(b"ata%d" % pid)))
    return signal_positions, announced


def per_position_frames(announced: list[Announced], with_liquidity: bool) -> list[bytes]:
    """Two flush cycles over every position (values differ between cycles)."""
    frames = []
    server_ms = wall_ms()
    for cycle in range(2):
        for pos in announced:
            proceeds = 100_000_000 + (pos.position_id * 7919 + cycle * 104_729) % 60_000_000
            frames.append(_json.encode({
                "type": "pnl_update", "position_id": pos.position_id,
                "profit_units": proceeds - 100_000_000, "proceeds_units": proceeds,
                "server_time_ms": server_ms + cycle * 100,
                "token_price_quote": 1_000 + pos.position_id % 50_000}))
            if with_liquidity:
                frames.append(_json.encode({
                    "type": "liquidity_snapshot", "position_id": pos.position_id, "bands": [
                        {"slippage_bps": bps, "max_tokens": 1_000_000_000 * bps // 500,
                         "coverage_pct": min(100.0, bps / 5)} for bps in (100, 250, 500)],
                    "liquidity_trend": ("growing", "stable", "draining")[
                        (pos.position_id + cycle) % 3],
                    "server_time_ms": server_ms + cycle * 100}))
    return [ws_frame(f) for f in frames]


class BenchStream:
    def __init__(self, wallets: list[str], per_wallet: int = POSITIONS) -> None:
        from solders.pubkey import Pubkey

        self.wallets = wallets
        if len(wallets) == 1:  # the 100-position phases: every position carries signals
            templates = build_positions(Pubkey.from_string(wallets[0]), per_wallet)
            self.signal_positions = [(wallets[0], tx) for tx in templates]
            self.announced = [Announced(tx.position_id, wallets[0], tx.mint, tx.token_account)
                              for tx in templates]
            self.floods = {"mixed": FloodBuffer(flood_frames(templates))}
        else:
            self.signal_positions, self.announced = tier_positions(wallets, per_wallet)
            self.floods = {
                "pnl": FloodBuffer(per_position_frames(self.announced, False)),
                "pnl_liquidity": FloodBuffer(per_position_frames(self.announced, True))}
        self.session: Session | None = None
        self.session_ids = 0
        self.next_seq = 1
        self.connected = asyncio.Event()

    # ------------------------------------------------------------------ protocol

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20, autoping=True)
        await ws.prepare(request)
        self.session_ids += 1
        assert request.transport is not None
        session = Session(self.session_ids, ws, request.transport)  # type: ignore[arg-type]
        self.session = session
        self.write(session, _json.encode({
            "type": "hello_ok", "session_id": session.session_id, "server_time_ms": wall_ms(),
            "limits": {"hi_capacity": 256, "pnl_flush_ms": 100,
                       "max_positions_per_session": max(1000, len(self.announced)),
                       "max_wallets_per_session": max(10, len(self.wallets))}}))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self.on_text(session, msg.data)
        finally:
            if self.session is session:
                self.session = None
        return ws

    def on_text(self, session: Session, data: str) -> None:
        received = now_ns()
        message = _decode(data)
        kind = str(message.get("type"))
        session.received[kind] = session.received.get(kind, 0) + 1
        if kind == "configure":
            if session.configured_at_ns is None:
                session.configured_at_ns = received
            self.open_positions(session)
        elif kind == "ping":
            self.write(session, _json.encode({"type": "pong", "server_time_ms": wall_ms()}))

    def open_positions(self, session: Session) -> None:
        frames = []
        for pos in self.announced:
            frames.append(ws_frame(_json.encode({
                "type": "position_opened", "position_id": pos.position_id,
                "wallet_pubkey": pos.wallet, "mint": pos.mint,
                "token_account": pos.token_account, "tokens": 1_000_000_000,
                "entry_quote_units": 100_000_000, "slot": 1,
                "token_program": str(TOKEN_PROGRAM),
                "market_context": {"market_type": "pump_fun", "pumpfun": {}}})))
        session.transport.write(b"".join(frames))
        self.connected.set()

    @staticmethod
    def write(session: Session, payload: bytes) -> None:
        session.transport.write(ws_frame(payload))

    async def register(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"status": "ok", "wallet_pubkey": body.get("wallet_pubkey")})

    # ------------------------------------------------------------------ control

    async def state(self, _request: web.Request) -> web.Response:
        session = self.session
        return web.json_response({
            "connected": session is not None,
            "session_id": session.session_id if session else None,
            "configured_at_ns": session.configured_at_ns if session else None,
            "received": session.received if session else {},
        })

    async def phase(self, request: web.Request) -> web.Response:
        spec = await request.json()
        session = self.session
        if session is None or session.configured_at_ns is None:
            return web.json_response({"error": "no configured client"}, status=409)
        result = await self.run_phase(session, spec)
        return web.json_response(result)

    async def run_phase(self, session: Session, spec: dict[str, Any]) -> dict[str, Any]:
        signals = int(spec.get("signals", 0))
        gap_ms = spec.get("gap_ms", [2.0, 6.0])
        rng = random.Random(spec.get("seed", 1))
        flood_rate = float(spec.get("flood_rate", 0))
        flood_frames_total = spec.get("flood_frames")
        unpaced = bool(spec.get("unpaced"))
        flood = self.floods[spec.get("flood_kind") or next(iter(self.floods))]
        stop_flood = asyncio.Event()
        flood_stats: dict[str, Any] = {}
        flood_task = None
        if flood_rate > 0 or flood_frames_total or unpaced:
            flood_task = asyncio.create_task(self.flood_loop(
                session, flood, flood_rate, flood_frames_total, stop_flood, flood_stats))
        await asyncio.sleep(float(spec.get("warmup_s", 0.2 if flood_task else 0.0)))
        sent = await self.send_signals(session, signals, gap_ms, rng)
        if flood_task is not None:
            if flood_frames_total and signals == 0:
                await flood_task
            stop_flood.set()
            await flood_task
        return {"sent": sent, "flood": flood_stats}

    async def send_signals(self, session: Session, count: int, gap_ms: list[float],
                           rng: random.Random) -> list[list[Any]]:
        loop = asyncio.get_running_loop()
        sent: list[list[Any]] = []
        due = loop.time()
        for index in range(count):
            due += rng.uniform(gap_ms[0], gap_ms[1]) / 1000
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            wallet, pos = self.signal_positions[index % len(self.signal_positions)]
            seq = self.next_seq
            self.next_seq += 1
            raw = pos.stamp(seq)
            frame = ws_frame(_json.encode({
                "type": "exit_signal_with_tx", "session_id": session.session_id,
                "position_id": pos.position_id, "wallet_pubkey": wallet, "mint": pos.mint,
                "token_account": pos.token_account, "token_program": str(TOKEN_PROGRAM),
                "position_tokens": 1_000_000_000, "profit_units": 50_000_000,
                "reason": "target_profit", "triggered_at_ms": wall_ms(),
                "market_context": {"market_type": "pump_fun", "pumpfun": {}},
                "unsigned_tx_b64": base64.b64encode(raw).decode()}))
            if session.transport.is_closing():
                break
            written_ns = now_ns()
            session.transport.write(frame)
            sent.append([seq, written_ns, message_digest(raw)])
        return sent

    async def flood_loop(self, session: Session, flood: FloodBuffer, rate: float,
                         total: int | None, stop: asyncio.Event,
                         stats: dict[str, Any]) -> None:
        """Paced (``rate`` frames/s) or, with rate 0, as fast as the client reads.
        Frames due while the client is behind (write buffer above high water) are
        skipped, not queued: the server never builds a backlog of its own."""
        transport = session.transport
        written = skipped = 0
        started = now_ns()
        limit = total if total else float("inf")
        while not stop.is_set() and written < limit and not transport.is_closing():
            if rate <= 0:
                if transport.get_write_buffer_size() > FLOOD_HIGH_WATER:
                    await asyncio.sleep(FLOOD_TICK_S)
                    continue
                n = int(min(UNPACED_CHUNK, limit - written))
                transport.write(flood.take(n))
                written += n
                await asyncio.sleep(0)
                continue
            await asyncio.sleep(FLOOD_TICK_S)
            due = int(rate * (now_ns() - started) / 1e9) - written - skipped
            due = int(min(due, limit - written))
            if due <= 0:
                continue
            if transport.get_write_buffer_size() > FLOOD_HIGH_WATER:
                skipped += due
                continue
            transport.write(flood.take(due))
            written += due
        elapsed = (now_ns() - started) / 1e9
        stats.update(written=written, skipped=skipped, seconds=elapsed,
                     rate=written / elapsed if elapsed > 0 else 0.0, offered=rate)

    async def reset(self, _request: web.Request) -> web.Response:
        session = self.session
        if session is not None:
            await session.ws.close()
        self.session = None
        return web.json_response({"ok": True})


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wallet")
    parser.add_argument("--wallets-file", help="JSON list of wallet pubkeys (tier phase)")
    parser.add_argument("--positions-per-wallet", type=int, default=POSITIONS)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    wallets = [args.wallet] if args.wallet else json.loads(Path(args.wallets_file).read_text())
    server = BenchStream(wallets, args.positions_per_wallet)
    app = web.Application()
    app.router.add_get("/v1/ws", server.ws_handler)
    app.router.add_post("/v1/wallets/register", server.register)
    app.router.add_get("/bench/state", server.state)
    app.router.add_post("/bench/phase", server.phase)
    app.router.add_post("/bench/reset", server.reset)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    announce(port=port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    uvloop.run(main())
