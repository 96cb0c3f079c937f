"""BIP39 seed phrases to Solana keypairs, the way Phantom and ``solana-keygen recover`` do.

A 12- to 24-word English phrase (checksum verified) becomes a 64-byte seed by BIP39's
PBKDF2-HMAC-SHA512 (2048 rounds, salt ``"mnemonic" + passphrase``); SLIP-0010 derives
the ed25519 key at ``m/44'/501'/0'/0'`` (every step hardened, as ed25519 requires) and
its 32 bytes are the keypair's seed. The word list, the checksum and the PBKDF2 step
come from Trezor's reference implementation (the ``mnemonic`` package); the SLIP-0010
derivation is the dozen lines below.

Every phrase, seed and derived key is registered with the log redactor as soon as it
exists, and no error message repeats any word of a phrase.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Final

from mnemonic import Mnemonic
from solders.keypair import Keypair

from lasersell_bot.logs import register_secret

SOLANA_PATH: Final = "m/44'/501'/0'/0'"
WORD_COUNTS: Final = (12, 15, 18, 21, 24)
NEW_PHRASE_WORDS: Final = 12  # what Phantom and `solana-keygen new` create
_HARDENED: Final = 0x8000_0000
_ED25519_KEY: Final = b"ed25519 seed"
_ENGLISH: Final = Mnemonic("english")


class SeedPhraseError(ValueError):
    """Not a valid phrase or path; the message never contains a word of the phrase."""


def normalize(phrase: str) -> str:
    """NFKD, lower case, single spaces: how BIP39 compares and hashes phrases."""
    return " ".join(unicodedata.normalize("NFKD", phrase).lower().split())


def check_phrase(phrase: str) -> str:
    """The normalized phrase, or ``SeedPhraseError`` naming what is wrong (not the word)."""
    register_secret(phrase)
    words = normalize(phrase).split()
    register_secret(" ".join(words))
    if len(words) not in WORD_COUNTS:
        raise SeedPhraseError(f"a seed phrase has 12, 15, 18, 21 or 24 words, not {len(words)}")
    unknown = [i for i, word in enumerate(words, 1) if word not in _WORDS]
    if unknown:
        raise SeedPhraseError(f"word {unknown[0]} is not in the BIP39 English word list")
    if not _ENGLISH.check(" ".join(words)):
        raise SeedPhraseError("the checksum does not match: a word is wrong or out of order")
    return " ".join(words)


def seed_from_phrase(phrase: str, passphrase: str = "") -> bytes:
    """BIP39: the 64-byte seed of a valid phrase and optional passphrase."""
    words = check_phrase(phrase)
    if passphrase:
        register_secret(passphrase)
    seed = bytes(_ENGLISH.to_seed(words, passphrase))
    register_secret(seed)
    return seed


def parse_path(path: str) -> list[int]:
    """``m/44'/501'/0'/0'`` as child indexes; ed25519 has hardened children only."""
    parts = path.split("/")
    if parts[0] != "m":
        raise SeedPhraseError(f"derivation path {path!r} must start with m/")
    indexes = []
    for part in parts[1:]:
        number = part[:-1] if part.endswith(("'", "h", "H")) else None
        if number is None or not number.isdigit() or int(number) >= _HARDENED:
            raise SeedPhraseError(f"derivation path {path!r}: {part!r} is not a hardened "
                                  "index such as 44' (ed25519 derives hardened keys only)")
        indexes.append(int(number) | _HARDENED)
    return indexes


def slip10_ed25519(seed: bytes, path: str) -> tuple[bytes, bytes]:
    """SLIP-0010 for ed25519: ``(private key, chain code)`` at ``path``."""
    digest = hmac.new(_ED25519_KEY, seed, hashlib.sha512).digest()
    key, chain = digest[:32], digest[32:]
    for index in parse_path(path):
        data = b"\x00" + key + index.to_bytes(4, "big")
        digest = hmac.new(chain, data, hashlib.sha512).digest()
        key, chain = digest[:32], digest[32:]
    register_secret(key)
    return key, chain


def keypair_from_phrase(phrase: str, passphrase: str = "", path: str = SOLANA_PATH) -> Keypair:
    """The Solana keypair that Phantom (and ``solana-keygen recover`` with this path)
    restore from ``phrase``."""
    key, _ = slip10_ed25519(seed_from_phrase(phrase, passphrase), path)
    keypair = Keypair.from_seed(key)
    register_secret(bytes(keypair))
    register_secret(str(keypair))
    return keypair


def new_phrase(words: int = NEW_PHRASE_WORDS) -> str:
    """A fresh phrase from the OS's randomness (128 bits for 12 words, 256 for 24)."""
    if words not in WORD_COUNTS:
        raise SeedPhraseError(f"a seed phrase has 12, 15, 18, 21 or 24 words, not {words}")
    phrase = str(_ENGLISH.generate(strength=words * 32 // 3))
    register_secret(phrase)
    return phrase


_WORDS: Final = frozenset(_ENGLISH.wordlist)
