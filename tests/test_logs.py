"""The log redactor: every written form of a secret is replaced, whatever surrounds it,
and the lookups for key material are sets (their cost does not grow with the wallets)."""

from __future__ import annotations

import json

import pytest
from solders.keypair import Keypair

from lasersell_bot.logs import Redactor
from lasersell_bot.sim.encoding import b58encode
from tests.test_secrets_in_logs import find_leaks, keypair_forms

PASSPHRASE = "correct horse SECRET battery staple"
API_KEY = "lsk_live_APIKEY_5e1f9c27d3"
TELEGRAM = "7012345678:AAE_TELEGRAM_secret_token_x1"


def loaded(keypairs: list[Keypair]) -> Redactor:
    """A redactor fed the way wallet.py feeds it: bytes, seed, base58 text."""
    redactor = Redactor()
    for keypair in keypairs:
        redactor.add_bytes(bytes(keypair))
        redactor.add_bytes(keypair.secret())
        redactor.add(str(keypair))
        redactor.add(b58encode(keypair.secret()))
    for secret in (PASSPHRASE, API_KEY, TELEGRAM):
        redactor.add(secret)
    return redactor


CONTEXTS = ("{s}", "x {s} y", '{{"error": "bad key {s}"}}', "key={s};", "'{s}'",
            "[{s}]", "({s})", "/path/{s}/x", "{s}\n", "Keypair({s})", "value:{s},")


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_key_form_is_redacted_in_any_context(context: str) -> None:
    keypairs = [Keypair() for _ in range(3)]
    redactor = loaded(keypairs)
    for keypair in keypairs:
        forms = keypair_forms(keypair)
        for form in forms:
            line = redactor.clean(context.format(s=form))
            assert find_leaks([line], forms) == [], line
            assert "[REDACTED]" in line


@pytest.mark.parametrize("secret", [PASSPHRASE, API_KEY, TELEGRAM])
@pytest.mark.parametrize("context", [*CONTEXTS, "prefix{s}suffix", "https://h/bot{s}/send"])
def test_other_secrets_are_redacted_anywhere(secret: str, context: str) -> None:
    line = loaded([]).clean(context.format(s=secret))
    assert secret not in line
    assert "[REDACTED]" in line


def test_byte_arrays_with_any_spacing_and_inside_longer_arrays() -> None:
    keypair = Keypair()
    redactor = loaded([keypair])
    full, seed = list(bytes(keypair)), list(keypair.secret())
    for numbers in (full, seed, [7, *seed, 9], [1, 2, *full]):
        for sep in (",", ", ", " , ", ",\n"):
            text = "[" + sep.join(str(n) for n in numbers) + "]"
            assert redactor.clean(f"k={text}") == "k=[[REDACTED]]"


def test_unrelated_numbers_and_public_keys_are_kept() -> None:
    keypair = Keypair()
    redactor = loaded([keypair])
    other = Keypair()
    numbers = json.dumps(list(bytes(other)))
    public = str(keypair.pubkey())
    line = json.dumps({"wallet": public, "bytes": numbers, "big": [300] * 40,
                       "signature": str(keypair.sign_message(b"m"))})
    assert redactor.clean(line) == line


def test_key_words_glued_to_other_letters_or_digits() -> None:
    keypair = Keypair()
    redactor = loaded([keypair])
    for form in (bytes(keypair).hex(), keypair.secret().hex(), str(keypair)):
        for glued in (f"0x{form}", f"{form}h", f"key{form}", f"{form}00"):
            assert form not in redactor.clean(f"k={glued}"), glued
    seed_only = Redactor()
    seed_only.add_bytes(keypair.secret())  # the keypair's hex starts with the seed's
    assert keypair.secret().hex() not in seed_only.clean(bytes(keypair).hex())


def test_url_query_and_authorization_header_values() -> None:
    redactor = Redactor()
    assert redactor.clean("GET /rpc?api-key=abc123&x=1") == "GET /rpc?api-key=[REDACTED]&x=1"
    assert redactor.clean('{"Authorization": "Bearer tok3n"}') == (
        '{"Authorization": "[REDACTED]"}')


def test_key_material_is_looked_up_in_sets_not_one_pattern() -> None:
    redactor = loaded([Keypair() for _ in range(200)])
    # Only the three non-key secrets go through the alternation, whatever the wallets.
    assert len(redactor._others) == 3
    assert len(redactor._key_words) == 200 * 4  # base58 and hex of key and seed


def test_json_lines_fall_back_to_repr_like_structlog() -> None:
    import json as std_json

    from solders.pubkey import Pubkey

    from lasersell_bot.logs import _json_line

    line = _json_line({"event": "x", "key": Pubkey.default(), "error": ValueError("bad"),
                       "n": 1, "nested": {"a": [1, 2]}})
    assert std_json.loads(line) == {"event": "x", "key": repr(Pubkey.default()),
                                    "error": "ValueError('bad')", "n": 1,
                                    "nested": {"a": [1, 2]}}
    assert std_json.loads(_json_line({1: "int key", "event": "y"})) == {
        "1": "int key", "event": "y"}
