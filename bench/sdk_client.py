"""Baseline: the vendor's Python SDK (lasersell-sdk 1.1.0) used as its README shows.

Runs in its own virtualenv (bench/.venv-sdk). Follows the README's "Wallet
registration" and "Stream + auto-sell flow" sections: ``prove_ownership`` and
``ExitApiClient.register_wallet``, ``StreamSession.connect`` with ``StreamConfigure``,
then ``session.recv()`` in a loop and, for every ``exit_signal_with_tx``,
``sign_unsigned_tx`` followed by ``await send_transaction(target, signed_tx)``.

Only URLs are changed, each the documented way: ``ExitApiClient.with_base_url``,
``StreamClient.with_endpoint`` and ``SendTargetRpc(url=...)``. Nothing else of the
SDK is patched. (``SendTargetHeliusSender`` has no URL parameter, so the RPC target
is used, as the daemon under test does.)

Usage: bench/.venv-sdk/bin/python -m bench.sdk_client --stream-url ... --api-url ...
       --rpc-url ... --keypair wallet.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from lasersell_sdk.exit_api import ExitApiClient, prove_ownership
from lasersell_sdk.stream.client import (
    StreamClient,
    StreamConfigure,
    strategy_config_from_optional,
)
from lasersell_sdk.stream.session import StreamSession
from lasersell_sdk.tx import SendTargetRpc, send_transaction, sign_unsigned_tx
from solders.keypair import Keypair

from bench.common import read_keypair_bytes


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stream-url", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--keypair", required=True)
    parser.add_argument("--api-key", default="bench-api-key")
    args = parser.parse_args()

    signer = Keypair.from_bytes(read_keypair_bytes(args.keypair))
    api = ExitApiClient.with_api_key(args.api_key).with_base_url(args.api_url)
    await api.register_wallet(prove_ownership(signer))

    client = StreamClient(args.api_key).with_endpoint(args.stream_url)
    session = await StreamSession.connect(
        client,
        StreamConfigure(
            wallet_pubkeys=[str(signer.pubkey())],
            strategy=strategy_config_from_optional(target_profit_pct=50.0, stop_loss_pct=20.0),
            send_mode="rpc",
        ),
    )
    target = SendTargetRpc(url=args.rpc_url)
    failures = 0
    while True:
        event = await session.recv()
        if event is None:
            break
        if (event.type == "exit_signal_with_tx"
                and event.message.get("type") == "exit_signal_with_tx"):
            signed_tx = sign_unsigned_tx(event.message["unsigned_tx_b64"], signer)
            try:
                await send_transaction(target, signed_tx)
            except Exception as exc:  # the README example has none; count, keep going
                failures += 1
                print(f"send failed: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
