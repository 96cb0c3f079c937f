"""Keypairs (Solana CLI JSON, base58 text, LaserSell encrypted keystore) and signing.

Owns loading the user's keys, refusing key files other users could read, registering
every secret form with the log redactor, signing a server-built transaction into our
signature slot (and nowhere else), and the wallet-registration proof.

Keystore format: the LaserSell CLI's ``KeystoreV1`` (vendor Rust CLI, ``src/wallet``)::

    {"version": 1, "pubkey": "<base58>",
     "kdf": {"name": "argon2id", "params": {"m_kib": 65536, "t": 3, "p": 1},
             "salt_b64": "<16 bytes, standard base64>"},
     "cipher": {"name": "xchacha20poly1305", "nonce_b64": "<24 bytes>",
                "ciphertext_b64": "<64-byte keypair + 16-byte tag>"}}

The key is Argon2id (v1.3, 32-byte output) of the passphrase; the AEAD's associated
data is ``b"lasersell-keystore-v1"``; the plaintext is the 64-byte Solana keypair.
libsodium (PyNaCl) only computes Argon2id with parallelism 1 and 16-byte salts, which
is what the vendor CLI writes; other parameters are refused with a clear error.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgspec
import nacl.bindings
import nacl.exceptions
import nacl.pwhash.argon2id
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from lasersell_bot.config import WalletConfig
from lasersell_bot.guard import MalformedTransaction, TxLayout, read_layout
from lasersell_bot.logs import register_secret

CONTAINER_ENV = "LASERSELL_CONTAINER"
PASSPHRASE_ENV = "LASERSELL_WALLET_PASSPHRASE"
PASSPHRASE_FILE_ENV = "LASERSELL_WALLET_PASSPHRASE_FILE"
CREDENTIAL_NAME = "wallet-passphrase"
KEYSTORE_VERSION = 1
KEYSTORE_AAD = b"lasersell-keystore-v1"
ARGON2_M_KIB = 65_536
ARGON2_T = 3
ARGON2_P = 1
SALT_LEN = 16
NONCE_LEN = 24
KEY_LEN = 32
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {ch: i for i, ch in enumerate(_B58_ALPHABET)}


class WalletError(Exception):
    """A key could not be loaded or used. Messages never contain key material."""


class PassphraseNeeded(WalletError):
    """An encrypted keystore, and no passphrase in the environment or credentials."""


class SigningRefused(WalletError):
    """We will not sign these bytes; ``reason`` is a machine code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# ---------------------------------------------------------------------------
# Keystore schema (field names are the vendor CLI's)


class Argon2Params(msgspec.Struct):
    m_kib: int
    t: int
    p: int


class KdfSpec(msgspec.Struct):
    name: str
    params: Argon2Params
    salt_b64: str


class CipherSpec(msgspec.Struct):
    name: str
    nonce_b64: str
    ciphertext_b64: str


class KeystoreV1(msgspec.Struct):
    version: int
    pubkey: str
    kdf: KdfSpec
    cipher: CipherSpec


# ---------------------------------------------------------------------------
# Loading


def load_keypair(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Keypair:
    """Load a keypair file of any supported format; ``env`` defaults to ``os.environ``."""
    file = Path(path)
    raw = _read_private_file(file, "keypair")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise WalletError(f"keypair file {file} is not text") from None
    if text.startswith("{"):
        keypair = _load_keystore(file, raw, env if env is not None else os.environ)
    elif text.startswith("["):
        keypair = _keypair_from_json_array(file, text)
    else:
        keypair = _keypair_from_base58(file, text)
    _register_keypair(keypair)
    return keypair


def _read_private_file(path: Path, what: str) -> bytes:
    """Read a file that must not be readable or writable by group or others (like ssh)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        hint = unreadable_hint(os.getuid(), in_container()) if exc.errno == errno.EACCES else ""
        raise WalletError(f"cannot open {what} file {path}: {exc.strerror}{hint}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & 0o077:
            raise WalletError(f"{what} file {path} has permissions {mode & 0o777:04o}; "
                              f"{chmod_hint(path, os.getuid(), in_container())}")
        return handle.read()


def in_container() -> bool:
    """True in our Docker image (it sets LASERSELL_CONTAINER), where a key file is a
    read-only mount whose owner and mode can only be fixed on the host."""
    return bool(os.environ.get(CONTAINER_ENV))


def chmod_hint(path: Path, uid: int, container: bool) -> str:
    if not container:
        return f"run: chmod 600 {path}"
    return (f"on the host, run chmod 600 and chown {uid} on the file mounted at {path} "
            "(the mount is read-only here)")


def unreadable_hint(uid: int, container: bool) -> str:
    where = "on the host, " if container else ""
    return (f"; this process runs as uid {uid}: {where}make it the file's owner "
            f"(chown {uid} FILE) and keep mode 0600")


def _keypair_from_json_array(path: Path, text: str) -> Keypair:
    try:
        values = json.loads(text)
    except ValueError:
        raise WalletError(f"keypair file {path} is not valid JSON") from None
    valid = (isinstance(values, list) and len(values) == 64
             and all(isinstance(v, int) and 0 <= v <= 255 for v in values))
    if not valid:
        raise WalletError(f"keypair file {path} must hold a JSON array of 64 bytes")
    secret = bytes(values)
    register_secret(secret)
    return _keypair_from_bytes(path, secret)


def _keypair_from_base58(path: Path, text: str) -> Keypair:
    register_secret(text)
    secret = b58decode(text)
    if secret is None:
        raise WalletError(f"keypair file {path} is not a JSON keypair, keystore or base58 key")
    register_secret(secret)
    if len(secret) == 32:
        return Keypair.from_seed(secret)
    if len(secret) == 64:
        return _keypair_from_bytes(path, secret)
    raise WalletError(f"keypair file {path}: base58 key decodes to {len(secret)} bytes, "
                      "expected 64 (secret key) or 32 (seed)")


def _keypair_from_bytes(path: Path, secret: bytes) -> Keypair:
    try:
        return Keypair.from_bytes(secret)
    except ValueError:
        raise WalletError(f"keypair file {path}: public key does not match secret key") from None


def _register_keypair(keypair: Keypair) -> None:
    register_secret(bytes(keypair))
    register_secret(keypair.secret())
    register_secret(str(keypair))


def b58decode(text: str) -> bytes | None:
    """Base58 (Bitcoin alphabet) to bytes; None if a character is outside the alphabet."""
    number = 0
    for ch in text:
        digit = _B58_INDEX.get(ch)
        if digit is None:
            return None
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return bytes(zeros) + number.to_bytes((number.bit_length() + 7) // 8, "big")


# ---------------------------------------------------------------------------
# Keystore


def resolve_passphrase(env: Mapping[str, str]) -> str | None:
    """Passphrase from the env var, a file named by env, or a systemd credential."""
    if PASSPHRASE_ENV in env:
        return env[PASSPHRASE_ENV]
    if env.get(PASSPHRASE_FILE_ENV):
        raw = _read_private_file(Path(env[PASSPHRASE_FILE_ENV]), "passphrase")
        return _strip_newline(raw.decode("utf-8", errors="strict"))
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        # systemd keeps the credentials directory private to the unit.
        candidate = Path(credentials) / CREDENTIAL_NAME
        if candidate.is_file():
            return _strip_newline(candidate.read_text("utf-8"))
    return None


def _strip_newline(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def _load_keystore(path: Path, raw: bytes, env: Mapping[str, str]) -> Keypair:
    store = _parse_keystore(path, raw)
    passphrase = resolve_passphrase(env)
    if passphrase is None:
        raise PassphraseNeeded(f"keystore {path} is encrypted: set {PASSPHRASE_ENV}, "
                          f"{PASSPHRASE_FILE_ENV} or the systemd credential {CREDENTIAL_NAME}")
    register_secret(passphrase)
    secret = _decrypt_keystore(path, store, passphrase)
    register_secret(secret)
    keypair = _keypair_from_bytes(path, secret)
    if str(keypair.pubkey()) != store.pubkey:
        raise WalletError(f"keystore {path}: decrypted key does not match pubkey {store.pubkey}")
    return keypair


def _parse_keystore(path: Path, raw: bytes) -> KeystoreV1:
    try:
        head = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise WalletError(f"keystore {path} is not valid JSON") from None
    if not isinstance(head, dict) or "version" not in head:
        raise WalletError(f"keypair file {path} is a JSON object without 'version'")
    if head["version"] != KEYSTORE_VERSION:
        raise WalletError(f"keystore {path}: unsupported version {head['version']!r}")
    try:
        store = msgspec.json.decode(raw, type=KeystoreV1)
    except msgspec.ValidationError as exc:
        raise WalletError(f"keystore {path}: {exc}") from None
    if store.kdf.name != "argon2id" or store.cipher.name != "xchacha20poly1305":
        raise WalletError(f"keystore {path}: unsupported kdf {store.kdf.name!r} or cipher "
                          f"{store.cipher.name!r}")
    if store.kdf.params.p != ARGON2_P:
        raise WalletError(f"keystore {path}: argon2 parallelism p={store.kdf.params.p} is not "
                          "supported (only p=1, as the LaserSell CLI writes)")
    return store


def _b64(path: Path, name: str, value: str, length: int | None) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise WalletError(f"keystore {path}: {name} is not valid base64") from None
    if length is not None and len(data) != length:
        raise WalletError(f"keystore {path}: {name} must be {length} bytes, not {len(data)}")
    return data


def _derive_key(passphrase: str, salt: bytes, m_kib: int, t: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(KEY_LEN, passphrase.encode("utf-8"), salt,
                                    opslimit=t, memlimit=m_kib * 1024)


def _decrypt_keystore(path: Path, store: KeystoreV1, passphrase: str) -> bytes:
    salt = _b64(path, "kdf.salt_b64", store.kdf.salt_b64, SALT_LEN)
    nonce = _b64(path, "cipher.nonce_b64", store.cipher.nonce_b64, NONCE_LEN)
    ciphertext = _b64(path, "cipher.ciphertext_b64", store.cipher.ciphertext_b64, None)
    params = store.kdf.params
    try:
        key = _derive_key(passphrase, salt, params.m_kib, params.t)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise WalletError(f"keystore {path}: argon2 parameters m_kib={params.m_kib} "
                          f"t={params.t} are out of range") from None
    try:
        secret = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, KEYSTORE_AAD, nonce, key)
    except nacl.exceptions.CryptoError:
        raise WalletError(f"keystore {path}: invalid passphrase or corrupted keystore") from None
    if len(secret) != 64:
        raise WalletError(f"keystore {path}: decrypted key is {len(secret)} bytes, not 64")
    return bytes(secret)


def write_keystore(keypair: Keypair, path: str | os.PathLike[str], passphrase: str, *,
                   m_kib: int = ARGON2_M_KIB, t: int = ARGON2_T,
                   overwrite: bool = False) -> None:
    """Encrypt ``keypair`` into a vendor-compatible keystore at ``path`` (mode 0600)."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise WalletError(f"{target} already exists")
    salt, nonce = os.urandom(SALT_LEN), os.urandom(NONCE_LEN)
    key = _derive_key(passphrase, salt, m_kib, t)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        bytes(keypair), KEYSTORE_AAD, nonce, key)
    store = KeystoreV1(
        version=KEYSTORE_VERSION,
        pubkey=str(keypair.pubkey()),
        kdf=KdfSpec("argon2id", Argon2Params(m_kib, t, ARGON2_P), _b64s(salt)),
        cipher=CipherSpec("xchacha20poly1305", _b64s(nonce), _b64s(ciphertext)),
    )
    _write_private(target, json.dumps(msgspec.to_builtins(store), indent=2).encode())


def _b64s(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _write_private(target: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``target`` with mode 0600."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# Several wallets


class Wallets:
    """The keypairs this daemon may sign with, by base58 pubkey."""

    def __init__(self, keypairs: Iterable[Keypair] = ()) -> None:
        self._by_pubkey: dict[str, Keypair] = {}
        for keypair in keypairs:
            self.add(keypair)

    @classmethod
    def load(cls, configs: Sequence[WalletConfig],
             env: Mapping[str, str] | None = None) -> Wallets:
        return cls(load_keypair(os.path.expanduser(c.keypair_path), env) for c in configs)

    def add(self, keypair: Keypair) -> None:
        pubkey = str(keypair.pubkey())
        if pubkey in self._by_pubkey:
            raise WalletError(f"wallet {pubkey} is configured twice")
        self._by_pubkey[pubkey] = keypair

    def for_pubkey(self, pubkey: str | Pubkey) -> Keypair | None:
        return self._by_pubkey.get(str(pubkey))

    def pubkeys(self) -> list[str]:
        return list(self._by_pubkey)

    def __len__(self) -> int:
        return len(self._by_pubkey)

    def __contains__(self, pubkey: object) -> bool:
        return str(pubkey) in self._by_pubkey


# ---------------------------------------------------------------------------
# Signing

# Measured with timeit (best of 30 x 2000 calls, 2-core dev VM under load, Python 3.11,
# solders 0.29), one signer, honest 561-byte v0 exit / 707-byte v0 buy from txfactory:
#   sign_into_slot (raw walk + sign + splice):                 59.6 us / 73.5 us
#   solders path (from_bytes + sign + populate + bytes):       56.4 us / 77.0 us
# ed25519 signing alone is ~48-53 us of either and the raw walk 4-6 us, so the raw path
# is not faster; it is kept because it signs exactly the bytes received (no re-encode),
# validates the whole layout itself, and never needs solders to accept the bytes.
# The signature itself comes from libsodium (PyNaCl's crypto_sign, ~23 us) rather than
# solders' ``Keypair.sign_message`` (~49 us): ed25519 is deterministic, so both produce
# the same 64 bytes (tests/test_wallet.py::test_raw_signing_equals_solders_and_verifies).
# Note: ``Keypair.pubkey()`` costs ~30 us (re-derived each call), hence ``_key_bytes``.


def sign_into_slot(unsigned_tx: bytes, keypair: Keypair) -> tuple[bytes, str]:
    """Sign the message of ``unsigned_tx`` and write the signature into our slot only.

    Returns ``(signed_tx, signature_b58)``. Raises ``SigningRefused`` when the bytes are
    malformed, the signature count is not ``num_required_signatures``, or our key is not
    one of the required signers.
    """
    try:
        layout = read_layout(unsigned_tx)
    except MalformedTransaction as exc:
        raise SigningRefused("malformed", str(exc)) from None
    if layout.num_signatures != layout.num_required_signatures:
        raise SigningRefused("signature_count_mismatch",
                             f"{layout.num_signatures} slots for "
                             f"{layout.num_required_signatures} required signers")
    pubkey, secret = _key_bytes(keypair)
    slot = _signer_slot(unsigned_tx, layout, pubkey)
    if slot is None:
        raise SigningRefused("not_a_signer",
                             f"{keypair.pubkey()} is not among the required signers")
    message = unsigned_tx[layout.message_offset:]
    signature = nacl.bindings.crypto_sign(message, secret)[:64]
    start = layout.signatures_offset + 64 * slot
    signed = b"".join((unsigned_tx[:start], signature, unsigned_tx[start + 64:]))
    return signed, str(Signature.from_bytes(signature))


def _key_bytes(keypair: Keypair) -> tuple[bytes, bytes]:
    """(public key, 64-byte libsodium secret key), cached: solders re-derives the pubkey
    (~30 us) per call.

    Keyed by object identity; the entry keeps the keypair alive so the id stays unique.
    """
    entry = _KEY_CACHE.get(id(keypair))
    if entry is not None and entry[0] is keypair:
        return entry[1], entry[2]
    if len(_KEY_CACHE) >= _KEY_CACHE_SIZE:
        _KEY_CACHE.clear()
    pubkey = bytes(keypair.pubkey())
    secret = bytes(keypair)  # seed || public key: libsodium's ed25519 secret key layout
    _KEY_CACHE[id(keypair)] = (keypair, pubkey, secret)
    return pubkey, secret


_KEY_CACHE: dict[int, tuple[Keypair, bytes, bytes]] = {}
_KEY_CACHE_SIZE = 512  # above the Advanced tier's 200 wallets: no re-derivation per signal


def _signer_slot(raw: bytes, layout: TxLayout, pubkey: bytes) -> int | None:
    signers = min(layout.num_required_signatures, layout.num_static_keys)
    for index in range(signers):
        offset = layout.static_keys_offset + 32 * index
        if raw[offset:offset + 32] == pubkey:
            return index
    return None


def registration_proof(keypair: Keypair, now_s: int) -> dict[str, str]:
    """Body for ``POST /v1/wallets/register``: proof that we hold this wallet's key."""
    pubkey = str(keypair.pubkey())
    message = f"lasersell-register:{pubkey}:{int(now_s)}"
    signature = keypair.sign_message(message.encode("utf-8"))
    return {"wallet_pubkey": pubkey, "message": message, "signature": str(signature)}
