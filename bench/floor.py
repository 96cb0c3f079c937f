"""The physical floor: bare ed25519 sign (solders) + one HTTP POST on a warm keep-alive
loopback connection to the bench RPC server. No stream, no guard, no event loop.

For each transaction: stamp ``t0 = time.monotonic_ns()``, sign the message bytes, splice
the signature in, base64 it into a ``sendTransaction`` body, ``sendall`` it on a socket
that is already connected, and read the answer. The RPC server stamps its receive time
with the same clock; ``t_recv - t0`` is the floor for "signal in hand -> bytes received".

Prints one JSON line: ``{"t0": {seq: t0_ns}, "cpu_us": [...]}``.

Usage: python -m bench.floor --rpc-port PORT --keypair wallet.json --count 2000
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import time

from solders.keypair import Keypair

from bench.common import message_offset, now_ns, read_keypair_bytes
from bench.txtemplate import build_positions

FIRST_SEQ = 900_000_000
_BODY_PREFIX = b'{"jsonrpc":"2.0","id":1,"method":"sendTransaction","params":["'
_BODY_SUFFIX = b'",{"encoding":"base64","skipPreflight":true,"maxRetries":0}]}'


def read_response(sock: socket.socket, buffer: bytearray) -> None:
    """Read one HTTP response with a Content-Length body (what aiohttp sends)."""
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            length = 0
            for line in bytes(buffer[:head_end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = head_end + 4 + length
            if len(buffer) >= total:
                del buffer[:total]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer.extend(chunk)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rpc-port", type=int, required=True)
    parser.add_argument("--keypair", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--gap-ms", type=float, default=1.0)
    args = parser.parse_args()

    keypair = Keypair.from_bytes(read_keypair_bytes(args.keypair))
    template = build_positions(keypair.pubkey(), 1)[0]
    unsigned = [template.stamp(FIRST_SEQ + i) for i in range(args.count)]
    offset = message_offset(unsigned[0])
    head = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            b"Connection: keep-alive\r\nContent-Length: " % args.rpc_port)

    sock = socket.create_connection(("127.0.0.1", args.rpc_port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    warm = (b'{"jsonrpc":"2.0","id":1,"method":"getHealth"}')
    for _ in range(20):  # warm the connection and both processes' code paths
        sock.sendall(head + b"%d\r\n\r\n" % len(warm) + warm)
        read_response(sock, buffer)

    t0s: dict[int, int] = {}
    cpu_us: list[float] = []
    for index, raw in enumerate(unsigned):
        time.sleep(args.gap_ms / 1000)
        t0 = now_ns()
        signature = keypair.sign_message(raw[offset:])
        signed = raw[:1] + bytes(signature) + raw[65:]
        body = _BODY_PREFIX + base64.b64encode(signed) + _BODY_SUFFIX
        request = head + b"%d\r\n\r\n" % len(body) + body
        cpu_us.append((now_ns() - t0) / 1000)
        sock.sendall(request)
        t0s[FIRST_SEQ + index] = t0
        read_response(sock, buffer)
    sock.close()
    print(json.dumps({"t0": t0s, "cpu_us": cpu_us}))


if __name__ == "__main__":
    main()
