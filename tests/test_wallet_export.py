"""``lasersell-bot wallet export``: the key on stdout only, and only once confirmed."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from solders.keypair import Keypair

from lasersell_bot import wallet_export
from lasersell_bot.wallet import PASSPHRASE_ENV, write_keystore

REPO = Path(__file__).resolve().parent.parent
KEYPAIR = Keypair.from_seed(bytes(range(7, 39)))
FAST = {"m_kib": 8, "t": 1}


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "wallet.json"
    path.write_text(json.dumps(list(bytes(KEYPAIR))))
    path.chmod(0o600)
    return path


def run_export(path: Path, *flags: str, stdin: str = "",
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lasersell_bot", "wallet", "export", "--keypair", str(path),
         *flags], cwd=REPO, input=stdin, capture_output=True, text=True, timeout=60,
        check=False, env=env)


def test_with_yes_the_key_goes_to_stdout_only(tmp_path: Path) -> None:
    path = key_file(tmp_path)
    base58 = run_export(path, "--yes")
    as_json = run_export(path, "--yes", "--format", "json")
    assert (base58.returncode, base58.stdout, base58.stderr) == (0, f"{KEYPAIR}\n", "")
    assert json.loads(as_json.stdout) == list(bytes(KEYPAIR)) and as_json.stderr == ""
    assert Keypair.from_base58_string(base58.stdout.strip()) == KEYPAIR


def test_without_a_terminal_or_yes_nothing_is_printed(tmp_path: Path) -> None:
    result = run_export(key_file(tmp_path), stdin="export\n")
    assert (result.returncode, result.stdout) == (2, "")
    assert "the confirmation needs a terminal on stdin; pass --yes" in result.stderr
    assert str(KEYPAIR) not in result.stderr


@pytest.mark.parametrize(("typed", "code"), [("export\n", 0), ("yes\n", 1), ("", 1)])
def test_on_a_terminal_the_typed_word_confirms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed: str, code: int
) -> None:
    monkeypatch.setattr(wallet_export, "stdin_is_tty", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    out, err = io.StringIO(), io.StringIO()
    assert wallet_export.run_export(str(key_file(tmp_path)), "base58", assume_yes=False,
                                    out=out, err=err) == code
    assert out.getvalue() == (f"{KEYPAIR}\n" if code == 0 else "")
    assert f"private key of wallet {KEYPAIR.pubkey()}" in err.getvalue()
    assert str(KEYPAIR) not in err.getvalue()


def test_a_keystore_passphrase_is_asked_hidden_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keystore.json"
    write_keystore(KEYPAIR, path, "hunter2 horse", **FAST)
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(wallet_export, "stdin_is_tty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr(wallet_export.getpass, "getpass",
                        lambda prompt="": asked.append(prompt) or "hunter2 horse")
    out, err = io.StringIO(), io.StringIO()
    assert wallet_export.run_export(str(path), "base58", assume_yes=True,
                                    out=out, err=err) == 0
    assert out.getvalue() == f"{KEYPAIR}\n" and asked == ["Keystore passphrase (input hidden): "]


def test_a_keystore_without_a_passphrase_or_terminal_says_how(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    write_keystore(KEYPAIR, path, "hunter2 horse", **FAST)
    result = run_export(path, "--yes", env={"PATH": "/usr/bin:/bin"})
    assert (result.returncode, result.stdout) == (2, "")
    assert f"keystore {path} is encrypted: set {PASSPHRASE_ENV}" in result.stderr
