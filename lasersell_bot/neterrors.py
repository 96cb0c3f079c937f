"""Transport failures described in the words a user would search for (check, RPC pool)."""

from __future__ import annotations

import errno
import socket
from typing import Final

import aiohttp


def describe_connection_error(exc: BaseException) -> str:
    """What went wrong on the way to a server, in the words a user would search for."""
    cause = getattr(exc, "os_error", None) or exc
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(cause, socket.gaierror):
        return "DNS failed (host name not found)"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS failed (certificate or protocol)"
    if isinstance(exc, aiohttp.ServerDisconnectedError) or isinstance(cause, ConnectionResetError):
        return "the server closed the connection"
    if isinstance(cause, OSError) and cause.errno in _UNREACHABLE:
        return _UNREACHABLE[cause.errno]
    return f"connection error: {type(exc).__name__}"


_UNREACHABLE: Final = {errno.EHOSTUNREACH: "host unreachable",
                       errno.ENETUNREACH: "network unreachable"}
