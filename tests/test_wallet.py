"""Key loading (every format), permission and keystore errors, raw-bytes signing, proofs."""

from __future__ import annotations

import base64
import errno
import json
import os
from pathlib import Path

import msgspec
import nacl.bindings
import nacl.pwhash.argon2id
import nacl.signing
import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from lasersell_bot.config import WalletConfig
from lasersell_bot.logs import REDACTOR
from lasersell_bot.wallet import (
    CONTAINER_ENV,
    KEYSTORE_AAD,
    PASSPHRASE_ENV,
    PASSPHRASE_FILE_ENV,
    SigningRefused,
    WalletError,
    Wallets,
    b58decode,
    load_keypair,
    registration_proof,
    sign_into_slot,
    write_keystore,
)
from tests.txfactory import (
    MEMO,
    Scenario,
    Variant,
    compute_budget,
    honest_variants,
    hostile_variants,
    pump_sell,
    unsigned,
)

KEYPAIR = Keypair.from_seed(bytes(range(100, 132)))
PASSPHRASE = "correct horse battery staple"
FAST = {"m_kib": 1024, "t": 1}
SCENARIO = Scenario()
HONEST = honest_variants(SCENARIO)


def b58encode(data: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number, out = int.from_bytes(data, "big"), ""
    while number:
        number, rem = divmod(number, 58)
        out = alphabet[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def secret_forms(keypair: Keypair) -> list[str]:
    raw = bytes(keypair)
    return [raw.hex(), keypair.secret().hex(), str(keypair), str(list(raw)).replace(" ", ""),
            b58encode(keypair.secret())]


def assert_no_key_material(message: str, keypair: Keypair = KEYPAIR) -> None:
    for form in [*secret_forms(keypair), PASSPHRASE]:
        assert form not in message


# ---------------------------------------------------------------------------
# Formats


def test_solana_cli_json_loads(tmp_path: Path) -> None:
    path = private_file(tmp_path / "id.json", json.dumps(list(bytes(KEYPAIR))) + "\n")
    assert load_keypair(path, env={}).pubkey() == KEYPAIR.pubkey()


def test_base58_secret_key_loads(tmp_path: Path) -> None:
    path = private_file(tmp_path / "key.txt", f"  {KEYPAIR}\n")
    assert load_keypair(path, env={}).pubkey() == KEYPAIR.pubkey()


def test_base58_seed_loads(tmp_path: Path) -> None:
    path = private_file(tmp_path / "seed.txt", b58encode(KEYPAIR.secret()))
    assert load_keypair(path, env={}).pubkey() == KEYPAIR.pubkey()


def test_keystore_round_trip_with_vendor_defaults(tmp_path: Path) -> None:
    path = tmp_path / "wallet.keystore.json"
    write_keystore(KEYPAIR, path, PASSPHRASE)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_keypair(path, env={PASSPHRASE_ENV: PASSPHRASE}).pubkey() == KEYPAIR.pubkey()


def test_keystore_layout_is_the_vendor_clis(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(KEYPAIR, path, PASSPHRASE, **FAST)
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert doc["pubkey"] == str(KEYPAIR.pubkey())
    assert doc["kdf"] == {"name": "argon2id", "params": {"m_kib": 1024, "t": 1, "p": 1},
                          "salt_b64": doc["kdf"]["salt_b64"]}
    assert set(doc["cipher"]) == {"name", "nonce_b64", "ciphertext_b64"}
    assert doc["cipher"]["name"] == "xchacha20poly1305"
    assert len(base64.b64decode(doc["kdf"]["salt_b64"])) == 16
    assert len(base64.b64decode(doc["cipher"]["nonce_b64"])) == 24
    assert len(base64.b64decode(doc["cipher"]["ciphertext_b64"])) == 64 + 16


def test_keystore_written_independently_decrypts(tmp_path: Path) -> None:
    """A keystore built straight from the spec (not by write_keystore) loads."""
    salt, nonce = b"s" * 16, b"n" * 24
    key = nacl.pwhash.argon2id.kdf(32, PASSPHRASE.encode(), salt, opslimit=2,
                                   memlimit=2048 * 1024)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        bytes(KEYPAIR), b"lasersell-keystore-v1", nonce, key)
    doc = {"version": 1, "pubkey": str(KEYPAIR.pubkey()),
           "kdf": {"name": "argon2id", "params": {"m_kib": 2048, "t": 2, "p": 1},
                   "salt_b64": base64.b64encode(salt).decode()},
           "cipher": {"name": "xchacha20poly1305", "nonce_b64": base64.b64encode(nonce).decode(),
                      "ciphertext_b64": base64.b64encode(ciphertext).decode()}}
    path = private_file(tmp_path / "k.json", json.dumps(doc))
    assert KEYSTORE_AAD == b"lasersell-keystore-v1"
    assert load_keypair(path, env={PASSPHRASE_ENV: PASSPHRASE}).pubkey() == KEYPAIR.pubkey()


def test_passphrase_from_file_and_systemd_credential(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(KEYPAIR, path, PASSPHRASE, **FAST)
    pass_file = private_file(tmp_path / "pass", PASSPHRASE + "\n")
    assert load_keypair(path, env={PASSPHRASE_FILE_ENV: str(pass_file)}).pubkey() \
        == KEYPAIR.pubkey()
    creds = tmp_path / "creds"
    creds.mkdir()
    private_file(creds / "wallet-passphrase", PASSPHRASE, 0o400)
    assert load_keypair(path, env={"CREDENTIALS_DIRECTORY": str(creds)}).pubkey() \
        == KEYPAIR.pubkey()


def test_keystore_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(KEYPAIR, path, PASSPHRASE, **FAST)
    with pytest.raises(WalletError, match="already exists"):
        write_keystore(KEYPAIR, path, PASSPHRASE, **FAST)
    write_keystore(KEYPAIR, path, "other", overwrite=True, **FAST)


# ---------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_group_or_world_access_is_refused_like_ssh(tmp_path: Path, mode: int) -> None:
    path = private_file(tmp_path / "id.json", json.dumps(list(bytes(KEYPAIR))), mode)
    with pytest.raises(WalletError) as info:
        load_keypair(path, env={})
    assert str(info.value) == (f"keypair file {path} has permissions {mode:04o}; "
                               f"run: chmod 600 {path}")


def test_passphrase_file_permissions_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(KEYPAIR, path, PASSPHRASE, **FAST)
    pass_file = private_file(tmp_path / "pass", PASSPHRASE, 0o644)
    with pytest.raises(WalletError, match=r"passphrase file .* has permissions 0644"):
        load_keypair(path, env={PASSPHRASE_FILE_ENV: str(pass_file)})


def test_wrong_passphrase_names_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(KEYPAIR, path, PASSPHRASE, **FAST)
    with pytest.raises(WalletError, match="invalid passphrase or corrupted keystore") as info:
        load_keypair(path, env={PASSPHRASE_ENV: "tr0ub4dor&3"})
    assert_no_key_material(str(info.value))
    assert "tr0ub4dor" not in str(info.value)


def test_missing_passphrase_says_how_to_provide_it(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_keystore(KEYPAIR, path, PASSPHRASE, **FAST)
    with pytest.raises(WalletError, match=PASSPHRASE_ENV):
        load_keypair(path, env={})


def _tamper(path: Path, edit: dict[str, object]) -> None:
    doc = json.loads(path.read_text())
    for dotted, value in edit.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(("edit", "message"), [
    ({"version": 2}, "unsupported version 2"),
    ({"kdf.params.p": 4}, "parallelism p=4"),
    ({"kdf.name": "scrypt"}, "unsupported kdf"),
    ({"kdf.salt_b64": "!!"}, "kdf.salt_b64 is not valid base64"),
    ({"cipher.nonce_b64": base64.b64encode(b"x" * 12).decode()}, "must be 24 bytes"),
    ({"cipher.ciphertext_b64": base64.b64encode(b"x" * 80).decode()}, "invalid passphrase"),
    ({"pubkey": str(Keypair.from_seed(bytes(32)).pubkey())}, "does not match pubkey"),
    ({"kdf.params": {"m_kib": 1024}}, "kdf.params"),
])
def test_bad_keystores_get_clear_errors(tmp_path: Path, edit: dict[str, object],
                                        message: str) -> None:
    path = tmp_path / "k.json"
    write_keystore(KEYPAIR, path, PASSPHRASE, **FAST)
    _tamper(path, edit)
    with pytest.raises(WalletError, match=message) as info:
        load_keypair(path, env={PASSPHRASE_ENV: PASSPHRASE})
    assert_no_key_material(str(info.value))


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2, 3]", "JSON array of 64 bytes"),
    (json.dumps([300] * 64), "JSON array of 64 bytes"),
    ("[1, 2", "not valid JSON"),
    ('{"kind": "x"}', "without 'version'"),
    ("0OIl-not-base58", "not a JSON keypair, keystore or base58 key"),
    (b58encode(bytes(range(1, 41))), "decodes to 40 bytes"),
    (json.dumps(list(bytes(KEYPAIR)[:32] + bytes(32))), "public key does not match"),
])
def test_bad_key_files_get_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = private_file(tmp_path / "bad", text)
    with pytest.raises(WalletError, match=message) as info:
        load_keypair(path, env={})
    assert_no_key_material(str(info.value))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WalletError, match="cannot open keypair file"):
        load_keypair(tmp_path / "nope.json", env={})


def test_secrets_are_registered_with_the_redactor(tmp_path: Path) -> None:
    keypair = Keypair.from_seed(bytes(range(50, 82)))
    path = tmp_path / "k.json"
    write_keystore(keypair, path, "redact me please", **FAST)
    load_keypair(path, env={PASSPHRASE_ENV: "redact me please"})
    seed_file = private_file(tmp_path / "seed", b58encode(keypair.secret()))
    load_keypair(seed_file, env={})
    for form in [*secret_forms(keypair), "redact me please"]:
        assert form not in REDACTOR.clean(f"leak: {form} end")


# ---------------------------------------------------------------------------
# Wallets


def test_wallets_by_pubkey(tmp_path: Path) -> None:
    other = Keypair.from_seed(bytes([9] * 32))
    files = []
    for i, kp in enumerate((KEYPAIR, other)):
        files.append(private_file(tmp_path / f"{i}.json", json.dumps(list(bytes(kp)))))
    wallets = Wallets.load([WalletConfig(keypair_path=str(f)) for f in files], env={})
    assert wallets.pubkeys() == [str(KEYPAIR.pubkey()), str(other.pubkey())]
    assert wallets.for_pubkey(str(other.pubkey())) == other
    assert wallets.for_pubkey(other.pubkey()) == other
    assert wallets.for_pubkey(str(SCENARIO.evil)) is None
    assert len(wallets) == 2 and str(KEYPAIR.pubkey()) in wallets
    with pytest.raises(WalletError, match="configured twice"):
        wallets.add(KEYPAIR)


# ---------------------------------------------------------------------------
# Signing


def solders_sign(raw: bytes, keypair: Keypair) -> bytes:
    tx = VersionedTransaction.from_bytes(raw)
    message = tx.message
    signatures = list(tx.signatures)
    slot = list(message.account_keys).index(keypair.pubkey())
    signatures[slot] = keypair.sign_message(to_bytes_versioned(message))
    return bytes(VersionedTransaction.populate(message, signatures))


@pytest.mark.parametrize("variant", HONEST, ids=lambda v: v.name)
def test_raw_signing_equals_solders_and_verifies(variant: Variant) -> None:
    raw = variant.tx
    signed, signature = sign_into_slot(raw, SCENARIO.wallet)
    assert signed == solders_sign(raw, SCENARIO.wallet)
    tx = VersionedTransaction.from_bytes(signed)
    assert tx.verify_with_results() == [True]
    assert str(tx.signatures[0]) == signature
    assert signed == bytes(VersionedTransaction(tx.message, [SCENARIO.wallet]))


def test_second_slot_is_signed_and_the_first_kept() -> None:
    cosigner = Keypair.from_seed(bytes([3] * 32))
    ixs = [Instruction(MEMO, b"x", [AccountMeta(SCENARIO.me, True, True)]),
           pump_sell(SCENARIO)]
    message = MessageV0.try_compile(cosigner.pubkey(), ixs, [], Hash.new_unique())
    first = cosigner.sign_message(to_bytes_versioned(message))
    raw = bytes(VersionedTransaction.populate(message, [first, Signature.default()]))
    signed, _ = sign_into_slot(raw, SCENARIO.wallet)
    assert signed == solders_sign(raw, SCENARIO.wallet)
    assert VersionedTransaction.from_bytes(signed).verify_with_results() == [True, True]


def test_refuses_when_not_a_required_signer() -> None:
    not_signer = next(v for v in hostile_variants(SCENARIO)
                      if v.name == "wallet_not_required_signer")
    with pytest.raises(SigningRefused) as info:
        sign_into_slot(not_signer.tx, SCENARIO.wallet)
    assert info.value.reason == "not_a_signer"
    with pytest.raises(SigningRefused, match="not_a_signer"):
        sign_into_slot(HONEST[0].tx, SCENARIO.attacker)


def test_refuses_signature_count_mismatch() -> None:
    message = MessageV0.try_compile(SCENARIO.me, [*compute_budget(), pump_sell(SCENARIO)], [],
                                    SCENARIO.blockhash)
    for slots in (0, 2):
        with pytest.raises(SigningRefused) as info:
            sign_into_slot(unsigned(message, slots), SCENARIO.wallet)
        assert info.value.reason == "signature_count_mismatch"


@pytest.mark.parametrize("variant", [HONEST[0], HONEST[1], HONEST[4]], ids=lambda v: v.name)
def test_refuses_truncation_at_every_cut_point(variant: Variant) -> None:
    raw = variant.tx
    for cut in range(len(raw)):
        with pytest.raises(SigningRefused) as info:
            sign_into_slot(raw[:cut], SCENARIO.wallet)
        assert info.value.reason in {"malformed", "signature_count_mismatch"}


@pytest.mark.parametrize(("raw", "message"), [
    (HONEST[0].tx + b"\x00", "trailing"),
    (b"\x80\x00" + HONEST[0].tx[1:], "non-canonical"),
    (b"\x81\x80\x80\x80", "longer than 3 bytes"),
    (HONEST[0].tx[:65] + b"\x81" + HONEST[0].tx[66:], "unsupported message version 1"),
    (b"", "truncated"),
])
def test_refuses_malformed_bytes(raw: bytes, message: str) -> None:
    with pytest.raises(SigningRefused, match=message) as info:
        sign_into_slot(raw, SCENARIO.wallet)
    assert info.value.reason == "malformed"


def test_registration_proof_verifies() -> None:
    proof = registration_proof(KEYPAIR, 1_760_000_000)
    pubkey = str(KEYPAIR.pubkey())
    assert proof == {"wallet_pubkey": pubkey,
                     "message": f"lasersell-register:{pubkey}:1760000000",
                     "signature": proof["signature"]}
    signature = b58decode(proof["signature"])
    assert signature is not None and len(signature) == 64
    verify_key = nacl.signing.VerifyKey(bytes(KEYPAIR.pubkey()))
    verify_key.verify(proof["message"].encode(), signature)
    assert msgspec.json.decode(msgspec.json.encode(proof)) == proof


def test_b58decode_matches_solders() -> None:
    assert b58decode(str(KEYPAIR.pubkey())) == bytes(KEYPAIR.pubkey())
    assert b58decode(str(KEYPAIR)) == bytes(KEYPAIR)
    assert b58decode("1111") == bytes(4)
    assert b58decode("0") is None


def test_in_the_container_the_chmod_hint_points_at_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONTAINER_ENV, "docker")
    path = private_file(tmp_path / "wallet-keypair", json.dumps(list(bytes(KEYPAIR))), 0o644)
    with pytest.raises(WalletError) as info:
        load_keypair(path, env={})
    assert str(info.value) == (
        f"keypair file {path} has permissions 0644; on the host, run chmod 600 and chown "
        f"{os.getuid()} on the file mounted at {path} (the mount is read-only here)")


@pytest.mark.parametrize(("container", "where"), [(True, "on the host, "), (False, "")])
def test_an_unreadable_key_file_names_the_uid_that_must_own_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, container: bool, where: str
) -> None:
    """As in Docker: a root-owned 0600 mount that uid 10001 cannot open."""
    if container:
        monkeypatch.setenv(CONTAINER_ENV, "docker")
    else:
        monkeypatch.delenv(CONTAINER_ENV, raising=False)
    path = tmp_path / "wallet-keypair"

    def denied(name: object, flags: int, *args: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(name))

    monkeypatch.setattr(os, "open", denied)
    monkeypatch.setattr(os, "getuid", lambda: 10001)
    with pytest.raises(WalletError) as info:
        load_keypair(path, env={})
    assert str(info.value) == (
        f"cannot open keypair file {path}: Permission denied; this process runs as uid "
        f"10001: {where}make it the file's owner (chown 10001 FILE) and keep mode 0600")
