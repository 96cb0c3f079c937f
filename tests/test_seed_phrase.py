"""BIP39 + SLIP-0010 seed phrases, checked against published test vectors.

Vectors (public, each from its source):
- BIP39: BIP-0039's reference vectors (trezor/python-mnemonic ``vectors.json``, passphrase
  "TREZOR"): entropy 00..00 -> "abandon ... about" -> seed c55257c3...7463b04.
- SLIP-0010: satoshilabs/slips ``slip-0010.md``, "Test vector 1 for ed25519", seed
  000102030405060708090a0b0c0d0e0f, chains m and m/0H/1H/2H/2H/1000000000H.
- Solana m/44'/501'/0'/0': okx/js-wallet-sdk ``packages/coin-solana/tests/sol.test.ts``
  (test "getDerivedPrivateKey"; the wallet's path is ``m/44'/501'/${index}'/0'``): the
  phrase "famous grow judge ... taxi" gives the 64-byte secret key 42gxtUbib5...7hYUnAG.
"""

from __future__ import annotations

import pytest
from solders.keypair import Keypair

from lasersell_bot.logs import REDACTOR
from lasersell_bot.seed_phrase import (
    SOLANA_PATH,
    SeedPhraseError,
    check_phrase,
    keypair_from_phrase,
    new_phrase,
    parse_path,
    seed_from_phrase,
    slip10_ed25519,
)

ABANDON_ABOUT = " ".join(["abandon"] * 11 + ["about"])
OKX_PHRASE = "famous grow judge chair narrow auction order repeat hungry endless market taxi"
OKX_SECRET_B58 = ("42gxtUbib5ETVJAX8aMYrLG3XahGnMXvAHXa4TkhWZJ6ev64bzPXsRQzYEmQvriQwHeWjEu8"
                  "JqwpyRYCR7hYUnAG")
SLIP10_SEED = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def test_bip39_seed_matches_the_reference_vector() -> None:
    assert seed_from_phrase(ABANDON_ABOUT, "TREZOR").hex() == (
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c"
        "1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04")


@pytest.mark.parametrize(("path", "private", "chain"), [
    ("m", "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
     "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb"),
    ("m/0'/1'/2'/2'/1000000000'",
     "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
     "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230"),
])
def test_slip10_ed25519_matches_the_spec_vector(path: str, private: str, chain: str) -> None:
    key, code = slip10_ed25519(SLIP10_SEED, path)
    assert (key.hex(), code.hex()) == (private, chain)


def test_solana_path_gives_the_published_wallet_key() -> None:
    keypair = keypair_from_phrase(OKX_PHRASE)
    assert str(keypair) == OKX_SECRET_B58
    assert keypair == Keypair.from_base58_string(OKX_SECRET_B58)


def test_typing_variations_give_the_same_wallet_and_other_paths_do_not() -> None:
    messy = "  " + OKX_PHRASE.upper().replace(" ", "   \n") + "\n"
    assert str(keypair_from_phrase(messy)) == OKX_SECRET_B58
    assert str(keypair_from_phrase(OKX_PHRASE, path="m/44'/501'/1'/0'")) != OKX_SECRET_B58
    assert str(keypair_from_phrase(OKX_PHRASE, passphrase="extra")) != OKX_SECRET_B58


@pytest.mark.parametrize(("phrase", "message"), [
    (" ".join(OKX_PHRASE.split()[:11]), "12, 15, 18, 21 or 24 words, not 11"),
    (OKX_PHRASE.replace("judge", "jduge"), "word 3 is not in the BIP39 English word list"),
    (" ".join(["abandon"] * 12), "the checksum does not match"),
    (OKX_PHRASE.replace("famous grow", "grow famous"), "the checksum does not match"),
])
def test_bad_phrases_are_refused_without_repeating_a_word(phrase: str, message: str) -> None:
    with pytest.raises(SeedPhraseError) as info:
        check_phrase(phrase)
    assert message in str(info.value)
    assert not {"famous", "jduge", "abandon", "grow"} & set(str(info.value).split())


@pytest.mark.parametrize("path", ["44'/501'", "m/44'/501/0'", "m/44'/x'", "m/2147483648'"])
def test_only_hardened_paths_from_m_are_accepted(path: str) -> None:
    with pytest.raises(SeedPhraseError, match="derivation path"):
        parse_path(path)


def test_default_path_is_phantoms() -> None:
    assert SOLANA_PATH == "m/44'/501'/0'/0'"
    assert parse_path(SOLANA_PATH) == [0x8000_0000 | n for n in (44, 501, 0, 0)]


def test_new_phrases_are_valid_fresh_and_restore_the_same_wallet() -> None:
    first, second = new_phrase(), new_phrase(24)
    assert (len(first.split()), len(second.split())) == (12, 24)
    assert check_phrase(first) == first and first != new_phrase()
    assert keypair_from_phrase(first) == keypair_from_phrase(first)


def test_phrases_seeds_and_keys_are_redacted_from_logs() -> None:
    keypair = keypair_from_phrase(OKX_PHRASE)
    line = f"phrase={OKX_PHRASE} seed={seed_from_phrase(OKX_PHRASE).hex()} key={keypair}"
    cleaned = REDACTOR.clean(line)
    assert OKX_PHRASE not in cleaned and str(keypair) not in cleaned
    assert seed_from_phrase(OKX_PHRASE).hex() not in cleaned
