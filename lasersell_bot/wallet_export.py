"""``lasersell-bot wallet export``: print a key file's private key, after a confirmation.

The key goes to stdout and nowhere else: the warning, the prompts and every error go
to stderr, nothing is logged, and the confirmation is a typed word read from a
terminal (``--yes`` skips it for scripts). An encrypted LaserSell keystore takes its
passphrase from the usual places (``LASERSELL_WALLET_PASSPHRASE``, its file variable,
the ``wallet-passphrase`` credential) or, on a terminal, from a hidden prompt.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Final, TextIO

from solders.keypair import Keypair

from lasersell_bot.wallet import PASSPHRASE_ENV, PassphraseNeeded, WalletError, load_keypair

EXIT_OK: Final = 0
EXIT_NOT_CONFIRMED: Final = 1
EXIT_BAD_INPUT: Final = 2
CONFIRM_WORD: Final = "export"


class ExportRefused(Exception):
    """The export cannot go ahead; the message says why."""


def stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def load_for_export(path: str) -> Keypair:
    """The keypair in ``path``; a keystore's passphrase is asked for on a terminal."""
    path = os.path.expanduser(path)
    try:
        return load_keypair(path)
    except PassphraseNeeded:
        if not stdin_is_tty():
            raise
    passphrase = getpass.getpass("Keystore passphrase (input hidden): ")
    return load_keypair(path, {**os.environ, PASSPHRASE_ENV: passphrase})


def confirm(pubkey: str, err: TextIO) -> bool:
    """Warn on stderr and read the typed confirmation word from the terminal."""
    if not stdin_is_tty():
        raise ExportRefused("the confirmation needs a terminal on stdin; pass --yes to skip "
                            "it in a script")
    print(f"This prints the private key of wallet {pubkey} to stdout. Anyone who sees it "
          "controls the wallet and its funds: do not paste it into chats, issues or logs.",
          file=err)
    print(f'Type "{CONFIRM_WORD}" to print it: ', end="", file=err, flush=True)
    return sys.stdin.readline().strip() == CONFIRM_WORD


def secret_text(keypair: Keypair, fmt: str) -> str:
    """base58 of the 64-byte secret key (what Phantom imports), or the Solana CLI array."""
    if fmt == "json":
        return json.dumps(list(bytes(keypair)), separators=(",", ":"))
    return str(keypair)


def run_export(path: str, fmt: str, *, assume_yes: bool, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        keypair = load_for_export(path)
        pubkey = str(keypair.pubkey())
        if not assume_yes and not confirm(pubkey, err):
            print("lasersell-bot wallet export: not confirmed; nothing was printed", file=err)
            return EXIT_NOT_CONFIRMED
    except (WalletError, ExportRefused) as exc:
        print(f"lasersell-bot wallet export: {exc}", file=err)
        return EXIT_BAD_INPUT
    except EOFError:
        print("lasersell-bot wallet export: input ended; nothing was printed", file=err)
        return EXIT_NOT_CONFIRMED
    print(secret_text(keypair, fmt), file=out, flush=True)
    return EXIT_OK
