"""Pre-connected HTTP/1.1 keep-alive connections that write a request in the caller's turn.

The first submission of a freshly signed transaction is the one moment where every
microsecond counts. Going through ``aiohttp.ClientSession.post`` costs a task hop
and ~150 us of request building before the first byte leaves, and any ready task
(a low-priority batch, the journal) can run in between. A ``FastPool`` keeps a few
connections to one endpoint open and idle; ``send`` writes the complete request with
one ``transport.write`` synchronously and returns a future for the response.

It is a fast path only: when no connection is idle (or one breaks) the caller uses
its regular aiohttp session. The response parser handles what JSON-RPC endpoints
send: a status line, headers, and a body framed by ``Content-Length``, chunked
transfer encoding, or the end of the connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

_MAX_HEADER_BYTES: Final = 64 * 1024
_MAX_BODY_BYTES: Final = 4 * 1024 * 1024


class FastPathError(ConnectionError):
    """The connection broke or the server sent something we cannot parse."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to write a POST to ``url``: everything but the body, pre-encoded."""

    host: str
    port: int
    tls: bool
    server_hostname: str | None
    head: bytes  # request line and headers, up to "Content-Length: "

    @classmethod
    def from_url(cls, url: str, headers: Mapping[str, str]) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}"]
        lines += [f"{name}: {value}" for name, value in headers.items()
                  if name.lower() not in ("host", "content-length", "connection")]
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            lines.append("Authorization: Basic "
                         + base64.b64encode(user_pass.encode()).decode())
        lines += ["Connection: keep-alive", "Content-Length: "]
        return cls(parts.hostname, port, tls, parts.hostname if tls else None,
                   "\r\n".join(lines).encode("latin-1"))

    def request(self, body: bytes) -> bytes:
        return b"".join((self.head, str(len(body)).encode(), b"\r\n\r\n", body))


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self, on_lost: Callable[[], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self.buffer = bytearray()
        self.closed = False
        self._on_lost = on_lost

    @property
    def idle(self) -> bool:
        return not self.closed and self.transport is not None and self.waiter is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None and self.waiter is None
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        waiter.add_done_callback(self._answered)
        self.waiter = waiter
        self.buffer.clear()
        self.transport.write(request)
        return waiter

    def _answered(self, waiter: asyncio.Future[Reply]) -> None:
        """A caller that gave up (timeout, cancel) leaves a reply in flight: drop the
        connection rather than read that reply as the answer to the next request."""
        if waiter.cancelled() and self.waiter is waiter:
            self.waiter = None
            self.abort()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None:
            self.abort()  # bytes nobody asked for: this connection is out of step
            return
        try:
            parsed = _parse(self.buffer, eof=False)
        except FastPathError as exc:
            self._fail(exc)
            self.abort()
            return
        if parsed is None:
            return
        reply, used, keep_alive = parsed
        if used != len(self.buffer):
            keep_alive = False
        waiter, self.waiter = self.waiter, None
        self.buffer.clear()
        if not waiter.done():
            waiter.set_result(reply)
        if not keep_alive:
            self.abort()

    def eof_received(self) -> bool | None:
        if self.waiter is not None:
            try:
                parsed = _parse(self.buffer, eof=True)
            except FastPathError as exc:
                self._fail(exc)
                return None
            if parsed is not None:
                waiter, self.waiter = self.waiter, None
                if not waiter.done():
                    waiter.set_result(parsed[0])
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(FastPathError(f"connection lost: {exc or 'closed by peer'}"))
        self._on_lost()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()



def _parse(buffer: bytearray, eof: bool) -> tuple[Reply, int, bool] | None:
    """(reply, bytes used, keep-alive) once ``buffer`` holds a whole response, else None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buffer) > _MAX_HEADER_BYTES or eof:
            raise FastPathError("no complete response head")
        return None
    lines = bytes(buffer[:head_end]).decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
        raise FastPathError(f"bad status line {lines[0][:60]!r}")
    try:
        status = int(status_line[1])
    except ValueError:
        raise FastPathError(f"bad status line {lines[0][:60]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep_alive = (headers.get("connection", "").lower() != "close"
                  and status_line[0] == "HTTP/1.1")
    start = head_end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunked = _dechunk(buffer, start)
        if chunked is None:
            if eof:
                raise FastPathError("connection closed inside a chunked body")
            return None
        body, used = chunked
        return Reply(status, headers, body), used, keep_alive
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise FastPathError("bad Content-Length") from None
        if length > _MAX_BODY_BYTES:
            raise FastPathError("response body too large")
        if len(buffer) - start < length:
            if eof:
                raise FastPathError("connection closed inside the body")
            return None
        return Reply(status, headers, bytes(buffer[start:start + length])), start + length, \
            keep_alive
    if status in (204, 304) or 100 <= status < 200:
        return Reply(status, headers, b""), start, keep_alive
    if not eof:  # body runs to the end of the connection
        if len(buffer) - start > _MAX_BODY_BYTES:
            raise FastPathError("response body too large")
        return None
    return Reply(status, headers, bytes(buffer[start:])), len(buffer), False


def _dechunk(buffer: bytearray, pos: int) -> tuple[bytes, int] | None:
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = bytes(buffer[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise FastPathError("bad chunk size") from None
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None
            return bytes(body), trailer_end + 4
        if len(buffer) < pos + size + 2:
            return None
        body += buffer[pos:pos + size]
        if len(body) > _MAX_BODY_BYTES:
            raise FastPathError("response body too large")
        pos += size + 2


class FastPool:
    """Up to ``size`` idle keep-alive connections to one endpoint."""

    def __init__(self, url: str, headers: Mapping[str, str], size: int = 2,
                 connect_timeout: float = 3.0, ssl_context: ssl.SSLContext | None = None,
                 ) -> None:
        self.endpoint = Endpoint.from_url(url, headers)
        self.size = size
        self.connect_timeout = connect_timeout
        self._connections: list[_Connection] = []
        # Certificates are always verified; ``ssl_context`` only lets tests trust a CA.
        self._ssl = (ssl_context or ssl.create_default_context()) if self.endpoint.tls else None
        self._refill: asyncio.Task[None] | None = None
        self._closing = False

    def send(self, body: bytes) -> asyncio.Future[Reply] | None:
        """Write a POST of ``body`` now on an idle connection; None when there is none."""
        for connection in self._connections:
            if connection.idle:
                return connection.send(self.endpoint.request(body))
        return None

    async def fill(self) -> int:
        """Open connections until ``size`` are open; returns how many are open."""
        self._connections = [c for c in self._connections if not c.closed]
        loop = asyncio.get_running_loop()
        while len(self._connections) < self.size and not self._closing:
            connection = _Connection(self._lost)
            try:
                await asyncio.wait_for(loop.create_connection(
                    lambda c=connection: c, self.endpoint.host, self.endpoint.port,
                    ssl=self._ssl, server_hostname=self.endpoint.server_hostname),
                    self.connect_timeout)
            except (OSError, TimeoutError, ssl.SSLError):
                break
            self._connections.append(connection)
        return len(self._connections)

    async def ping(self, body: bytes, timeout: float) -> None:
        """Send ``body`` on every idle connection (keeps them warm; drops dead ones)."""
        for connection in [c for c in self._connections if c.idle]:
            try:
                reply = await asyncio.wait_for(connection.send(self.endpoint.request(body)),
                                               timeout)
                if reply.status >= 500:
                    connection.abort()
            except (FastPathError, TimeoutError):
                connection.abort()
        await self.fill()

    def _lost(self) -> None:
        if self._closing or (self._refill is not None and not self._refill.done()):
            return
        with contextlib.suppress(RuntimeError):  # no running loop: closing down
            self._refill = asyncio.get_running_loop().create_task(self._refill_later())

    async def _refill_later(self) -> None:
        await asyncio.sleep(0.05)
        await self.fill()

    async def close(self) -> None:
        self._closing = True
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill
        for connection in self._connections:
            connection.abort()
        self._connections.clear()
