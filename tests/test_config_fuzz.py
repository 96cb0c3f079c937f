"""Config fuzz: whole random TOML documents (schema keys and garbage, unicode, huge numbers,
nested garbage, duplicate tables, broken syntax) give a Config or a ConfigError that names
the key or the file: never another exception.

``tests/test_config.py`` covers one wrong value per key; this file covers documents.
``LASERSELL_FUZZ_SCALE`` multiplies the case counts (``make fuzz``).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import msgspec
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lasersell_bot.config import Config, ConfigError, load_config

SCALE = max(1, int(os.environ.get("LASERSELL_FUZZ_SCALE", "1")))
CASES: Counter[str] = Counter()
EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "example.toml"
PUBKEY = "BLvHFrtvCWMvBJj5JiGfxvNRv4hk11sQUHWFrh2rvvbC"


def examples(default: int) -> int:
    return default * SCALE


@pytest.fixture(scope="module", autouse=True)
def _report_cases() -> Iterator[None]:
    yield
    print(f"\nfuzz cases (tests/test_config_fuzz.py): {dict(CASES)} total={sum(CASES.values())}")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-fuzz")


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is not None and get_origin(annotation) is not list:
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0]
    return annotation


def _sections() -> dict[str, list[str]]:
    """Each Config table and the keys of its rows (list tables: the element's keys)."""
    tables: dict[str, list[str]] = {}
    for field in msgspec.structs.fields(Config):
        kind = _unwrap(field.type)
        element = get_args(kind)[0] if get_origin(kind) is list else kind
        tables[field.name] = [f.name for f in msgspec.structs.fields(element)]
    return tables


SECTIONS = _sections()
SECTION_NAMES = frozenset(SECTIONS)


def load(scratch: Path, text: str | bytes) -> Config | ConfigError:
    path = scratch / "fuzz.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    try:
        return load_config(path, env={}, require_wallets=False, require_secrets=False)
    except ConfigError as exc:
        assert_names_key_or_file(str(exc), path)
        return exc


def assert_names_key_or_file(message: str, path: Path) -> None:
    """``<file>...: ...`` for unreadable TOML, else ``<dotted key>: ...`` of a real table."""
    if message.startswith(str(path)):
        assert "invalid TOML" in message or "UTF-8" in message, message
        return
    if ": unknown key (" in message:  # names the stray key itself, wherever it is
        assert message.split(": unknown key (")[0], message
        return
    head = message.split(": ", 1)[0]
    assert head and " " not in head, message
    root = head.split(".")[0].split("[")[0]
    assert root in SECTION_NAMES or root == "config", message


# --------------------------------------------------------------------------- strategies

keys = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(
    sorted({k for ks in SECTIONS.values() for k in ks})))
scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**200), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(["rpc", "helius_sender", "ws://127.0.0.1:1/v1/ws",
                                           "https://x.example", PUBKEY, "off", "", "json"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    keys, inner, max_size=3), max_leaves=8)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Known tables with known or unknown keys, random values, plus stray top-level keys."""
    doc: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=5, unique=True)):
        row = {draw(st.sampled_from(SECTIONS[section]) | keys): draw(values)
               for _ in range(draw(st.integers(0, 4)))}
        is_list = section in ("wallets", "watch_wallets")
        doc[section] = [row] if is_list and draw(st.booleans()) else row
    if draw(st.integers(0, 5)) == 0:
        doc[draw(keys)] = draw(values)
    return doc


def mutate_text(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        at = rng.randrange(len(chars) + 1)
        if roll < 0.3:
            chars[at:at] = list(rng.choice(["[", "]", "=", '"', "'", "\n", "{", "}", ",", ".",
                                            "[[stream]]\n", "[stream]\n", "\x00", "\ud800",
                                            "1e999", "9" * 40, "é", "#"]))
        elif roll < 0.6 and chars:
            del chars[min(at, len(chars) - 1)]
        elif roll < 0.8:
            chars = chars[:at]
        elif chars:
            chars[min(at, len(chars) - 1)] = chr(rng.randrange(32, 0x2FFF))
    return "".join(chars)


# --------------------------------------------------------------------------- properties


@settings(max_examples=examples(200), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(documents())
def test_random_documents_give_config_or_named_config_error(scratch: Path,
                                                            doc: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # e.g. NaN-free writer limits: not a TOML document
        return
    CASES["documents"] += 1
    load(scratch, text)


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_random_text_is_toml_or_a_named_syntax_error(scratch: Path, text: str) -> None:
    CASES["random_text"] += 1
    load(scratch, text)


def test_mutated_example_configs_never_raise_anything_else(scratch: Path) -> None:
    rng = random.Random(5)
    base = EXAMPLE.read_text()
    outcomes: Counter[str] = Counter()
    for _ in range(examples(600)):
        result = load(scratch, mutate_text(base, rng))
        outcomes[type(result).__name__] += 1
    CASES["mutated_example"] += sum(outcomes.values())
    assert outcomes["ConfigError"] > 0


@pytest.mark.parametrize(("text", "starts"), [
    ("a = " + "[" * 5000 + "]" * 5000, "FILE"),
    ("a = " + "{b = " * 3000 + "1" + "}" * 3000, "FILE"),
    ("[stream]\nurl = 'ws://localhost/'\n[stream]\napi_key = 'x'\n", "FILE"),
    ("[strategy]\nstop_loss_pct = 1\nstop_loss_pct = 2\n", "FILE"),
    ("[[stream]]\nurl = 'x'\n", "stream: must be a table"),
    ("[send]\ntip_lamports = " + "9" * 40 + "\n", "send.tip_lamports: must be <="),
    ("[strategy]\nstop_loss_pct = nan\n", "strategy.stop_loss_pct:"),
    ("[strategy]\ntrailing_stop_pct = inf\n", "strategy.trailing_stop_pct:"),
    ("[strategy]\nstop_loss_pct = 1979-05-27T07:32:00Z\n", "strategy.stop_loss_pct: must be"),
    ("[strategy]\nstop_loss_pct = 5\n[strategy.take_profit_levels.x]\ny = 1\n",
     "strategy.take_profit_levels: must be a list"),
    ('[stream]\n"ключ" = 1\n', "stream.ключ: unknown key"),
    ("[" + ".".join(["deep"] * 2000) + "]\n", "deep: unknown key"),
    ("[guard]\ntip_accounts = ['" + PUBKEY + "', 1]\n", "guard.tip_accounts[1]: must be"),
    ("[[watch_wallets]]\npubkey = {a = 1}\n", "watch_wallets[0].pubkey: must be a string"),
    ('[strategy]\nstop_loss_pct = 5\n[stream]\nurl = "ws://a\\u0000"\n', "stream.url:"),
    ("[strategy]\nstop_loss_pct = 5\n[stream]\nurl = 'ws://a b/v1'\n", "stream.url:"),
    ("[strategy]\nstop_loss_pct = 5\n[stream]\nurl = 'ws://127.0.0.1:99999/v1/ws'\n",
     "stream.url:"),
    ("[strategy]\nstop_loss_pct = 5\n[rpc]\nurl = 'http://127.0.0.1:70000'\n", "rpc.url:"),
])
def test_hostile_documents_name_the_key_or_the_file(scratch: Path, text: str,
                                                     starts: str) -> None:
    result = load(scratch, text)
    CASES["hand_written"] += 1
    assert isinstance(result, ConfigError)
    expected = str(scratch / "fuzz.toml") if starts == "FILE" else starts
    assert str(result).startswith(expected), str(result)


def test_non_utf8_and_binary_files_are_config_errors(scratch: Path) -> None:
    for raw in (b"\xff\xfe[stream]\n", b"\x00" * 100, random.Random(3).randbytes(4096),
                "[stream]\nurl = '\ud800'\n".encode("utf-8", "surrogatepass")):
        result = load(scratch, raw)
        assert isinstance(result, ConfigError)
        CASES["binary"] += 1


def test_limit_plaintext_remote_urls_need_the_override(scratch: Path) -> None:
    """SECURITY.md: ws:// and http:// to a remote host are refused unless
    tls.allow_plaintext is set (Helius' regional senders are plain HTTP); then only the
    guard stands between a plaintext MITM and the key."""
    text = ("[strategy]\nstop_loss_pct = 5\n[stream]\nurl = 'ws://stream.example.com/v1/ws'\n"
            "api_key = 'k'\n[rpc]\nurl = 'http://rpc.example.com'\n")
    refused = load(scratch, text)
    assert isinstance(refused, ConfigError)
    assert str(refused).startswith("stream.url: plaintext ws:// to a host that is not loopback")
    result = load(scratch, text + "[tls]\nallow_plaintext = true\n")
    assert isinstance(result, Config) and result.stream.url.startswith("ws://")
