"""fastpath.py: the pre-connected first send, and Submitter's use of it."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lasersell_bot.fastpath import Endpoint, FastPathError, FastPool, _parse
from lasersell_bot.send import Submitter, make_target

# --------------------------------------------------------------------------- parser


def test_parse_content_length_keep_alive() -> None:
    raw = bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhel")
    assert _parse(raw, eof=False) is None
    raw += b"lo"
    reply, used, keep_alive = _parse(raw, eof=False)  # type: ignore[misc]
    assert (reply.status, reply.body, reply.headers["x-a"], used, keep_alive) == (
        200, b"hello", "b", len(raw), True)


def test_parse_chunked_and_connection_close() -> None:
    raw = bytearray(b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\n"
                    b"Connection: close\r\nRetry-After: 1\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n")
    assert _parse(raw, eof=False) is None
    raw += b"0\r\n\r\n"
    reply, used, keep_alive = _parse(raw, eof=False)  # type: ignore[misc]
    assert (reply.status, reply.body, used, keep_alive) == (429, b"abcde", len(raw), False)


def test_parse_body_to_end_of_connection_and_errors() -> None:
    raw = bytearray(b"HTTP/1.0 200 OK\r\n\r\n{}")
    assert _parse(raw, eof=False) is None
    reply, _, keep_alive = _parse(raw, eof=True)  # type: ignore[misc]
    assert (reply.body, keep_alive) == (b"{}", False)
    with pytest.raises(FastPathError):
        _parse(bytearray(b"SSH-2.0-x\r\n\r\n"), eof=False)
    with pytest.raises(FastPathError):
        _parse(bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"), eof=True)


def test_endpoint_request_bytes() -> None:
    endpoint = Endpoint.from_url("https://u:p%40ss@rpc.example:8443/v1/x?api-key=k",
                                 {"Content-Type": "application/json", "x-api-key": "s"})
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("rpc.example", 8443, True)
    request = endpoint.request(b"{}").decode()
    assert request.startswith("POST /v1/x?api-key=k HTTP/1.1\r\nHost: rpc.example:8443\r\n")
    assert "x-api-key: s\r\n" in request and "Authorization: Basic dTpwQHNz\r\n" in request
    assert request.endswith("Content-Length: 2\r\n\r\n{}")
    with pytest.raises(ValueError):
        Endpoint.from_url("ws://x/", {})


# --------------------------------------------------------------------------- live


class Rpc:
    """A JSON-RPC endpoint on loopback that records requests and peer ports."""

    def __init__(self) -> None:
        self.sends: list[str] = []
        self.peers: set[int] = set()
        self.close_next = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add(peer[1])
        if body["method"] == "sendTransaction":
            self.sends.append(body["params"][0])
            if self.close_next > 0:
                self.close_next -= 1
                assert request.transport is not None
                request.transport.close()  # a stale keep-alive connection, as seen by a client
                return web.Response()
            result: Any = "sig"
        else:
            result = "ok"
        return web.json_response({"jsonrpc": "2.0", "id": 1, "result": result})


@pytest.fixture
async def rpc() -> AsyncIterator[Rpc]:
    server = Rpc()
    app = web.Application()
    app.router.add_post("/", server.handle)
    server.runner = web.AppRunner(app, access_log=None)
    await server.runner.setup()
    site = web.TCPSite(server.runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}/"
    yield server
    await server.runner.cleanup()


async def test_pool_reuses_its_connections(rpc: Rpc) -> None:
    pool = FastPool(rpc.url, {"Content-Type": "application/json"}, size=2)
    assert await pool.fill() == 2
    for n in range(6):
        answer = pool.send(json.dumps({"method": "sendTransaction", "params": [f"t{n}"]})
                           .encode())
        assert answer is not None
        reply = await answer
        assert reply.status == 200 and json.loads(reply.body)["result"] == "sig"
    assert len(rpc.peers) <= 2 and rpc.sends == [f"t{n}" for n in range(6)]
    first, second = pool.send(b'{"method":"getHealth"}'), pool.send(b'{"method":"getHealth"}')
    assert first is not None and second is not None
    assert pool.send(b"{}") is None, "both busy: the caller must use its regular session"
    await asyncio.gather(first, second)
    await pool.close()


async def test_submitter_first_send_then_fallback_on_a_stale_connection(rpc: Rpc) -> None:
    target = make_target("rpc", rpc.url)
    async with Submitter([target], target, fast_connections=2) as sub:
        first = sub.send_now(b"\x01" + b"\x00" * 64)
        assert set(first) == {"rpc"}
        outcome = await sub.submit(b"\x01" + b"\x00" * 64, "sig", first=first)
        assert outcome.ok and len(rpc.sends) == 1, "the first send is not repeated"

        rpc.close_next = 1  # the server drops the fast connection mid-request
        first = sub.send_now(b"\x02" * 65)
        outcome = await sub.submit(b"\x02" * 65, "sig", first=first)
        assert outcome.ok and len(rpc.sends) == 3, "resent at once through aiohttp"
        await asyncio.sleep(0.2)  # the pool reconnects in the background
        assert sub.send_now(b"\x03" * 65), "a fresh connection is ready again"


async def test_submitter_without_fast_connections_sends_nothing_early(rpc: Rpc) -> None:
    target = make_target("rpc", rpc.url)
    async with Submitter([target], target) as sub:
        assert sub.send_now(b"\x01" * 65) == {}
        assert rpc.sends == []


# --------------------------------------------------------------------------- TLS


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


async def _https_rpc(cert: tuple[Path, Path]) -> tuple[Rpc, web.AppRunner]:
    server = Rpc()
    app = web.Application()
    app.router.add_post("/", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert[1], cert[0])
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    server.url = f"https://localhost:{runner.addresses[0][1]}/"
    return server, runner


async def test_fast_path_refuses_an_untrusted_certificate(certificate: tuple[Path, Path]) -> None:
    server, runner = await _https_rpc(certificate)
    try:
        pool = FastPool(server.url, {"Content-Type": "application/json"}, size=1)
        assert await pool.fill() == 0  # verification failed: no fast connection
        assert pool.send(b'{"method":"sendTransaction","params":["t"]}') is None
        await pool.close()
    finally:
        await runner.cleanup()
    assert server.sends == []  # not one request byte reached the impostor


async def test_fast_path_speaks_tls_to_a_trusted_endpoint(certificate: tuple[Path, Path]) -> None:
    server, runner = await _https_rpc(certificate)
    trusted = ssl.create_default_context(cafile=str(certificate[1]))
    try:
        pool = FastPool(server.url, {"Content-Type": "application/json"}, size=1,
                        ssl_context=trusted)
        assert await pool.fill() == 1
        answer = pool.send(b'{"method":"sendTransaction","params":["over-tls"]}')
        assert answer is not None
        reply = await answer
        assert reply.status == 200 and json.loads(reply.body)["result"] == "sig"
        await pool.close()
    finally:
        await runner.cleanup()
    assert server.sends == ["over-tls"]
