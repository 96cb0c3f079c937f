"""``lasersell-bot status|sell|close|pause-buys|resume-buys``: the control API from a shell.

The address comes from the config's ``http.listen`` (a wildcard bind is reached on
loopback) or ``--url``; the token from ``LASERSELL_API_TOKEN``, the systemd
credential, or ``http.api_token_file``.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from lasersell_bot.control import auth, render
from lasersell_bot.ops import parse_listen

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_BAD_INPUT: Final = 2
TIMEOUT_SEC: Final = 10.0
_WILDCARDS: Final = {"0.0.0.0": "127.0.0.1", "::": "::1"}
# Where the systemd unit (StateDirectory=lasersell-bot) keeps the daemon's token.
UNIT_TOKEN_FILE: Final = Path("/var/lib/lasersell-bot/api-token")


class ClientError(Exception):
    """A request that did not succeed; ``code`` is the process exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


def base_url(listen: str) -> str:
    address = parse_listen(listen)
    if address is None:
        raise ClientError('http.listen is "off": the daemon serves no API', EXIT_BAD_INPUT)
    host, port = address
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class ApiClient:
    url: str
    token: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url.rstrip("/") + "/api/v1" + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SEC) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ClientError(_error_text(exc), EXIT_BAD_INPUT if exc.code in (400, 413)
                              else EXIT_REFUSED) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach the daemon at {self.url}: {reason} (is it "
                              "running, and is http.listen right?)") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        return f"{exc.code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code}"


def make_client(config_path: str, url: str | None) -> ApiClient:
    from lasersell_bot.config import ConfigError, load_config

    try:
        cfg = load_config(config_path, require_wallets=False, require_secrets=False)
    except ConfigError as exc:
        raise ClientError(str(exc), EXIT_BAD_INPUT) from None
    try:
        token = auth.read_token(token_file(Path(cfg.http.api_token_file)))
    except auth.TokenError as exc:
        raise ClientError(str(exc), EXIT_BAD_INPUT) from None
    return ApiClient(url or base_url(cfg.http.listen), token)


def token_file(configured: Path, unit_file: Path = UNIT_TOKEN_FILE) -> Path:
    """The configured token file; when it does not exist, the systemd unit's (the CLI
    runs without the unit's $STATE_DIRECTORY, so a default path points elsewhere)."""
    if not configured.exists() and unit_file.exists():
        return unit_file
    return configured


# --------------------------------------------------------------------------- commands


def status(client: ApiClient, as_json: bool, out: TextIO) -> int:
    state = client.call("GET", "/state")
    out.write((json.dumps(state, indent=2) if as_json else render.status_text(state)) + "\n")
    return EXIT_OK


def sell(client: ApiClient, target: str, slippage_bps: int | None, yes: bool, out: TextIO,
         confirm: Callable[[str], bool]) -> int:
    state = client.call("GET", "/state")
    chosen = _targets(state, target)
    if not chosen:
        raise ClientError(f"no open position matches {target!r}")
    summary = "; ".join(f"#{p['id']} {p.get('symbol') or render.short(p['mint'])} "
                        f"{render.pct(p['profit_pct'])}" for p in chosen)
    if not yes and not confirm(f"Sell {summary}? [y/N] "):
        out.write("cancelled\n")
        return EXIT_REFUSED
    body = {} if slippage_bps is None else {"slippage_bps": slippage_bps}
    failed = 0
    for position in chosen:
        try:
            client.call("POST", f"/positions/{position['id']}/sell", body)
            out.write(f"sell of #{position['id']} requested\n")
        except ClientError as exc:
            failed += 1
            out.write(f"sell of #{position['id']} refused: {exc}\n")
    return EXIT_REFUSED if failed else EXIT_OK


def _targets(state: dict[str, Any], target: str) -> list[dict[str, Any]]:
    positions: list[dict[str, Any]] = state["positions"]
    if target == "all":
        return positions
    if target.isdigit():
        return [p for p in positions if p["id"] == int(target)]
    return [p for p in positions if p["mint"] == target]


def simple(client: ApiClient, method: str, path: str, done: str, out: TextIO) -> int:
    client.call(method, path, {})
    out.write(done + "\n")
    return EXIT_OK


def ask(prompt: str) -> bool:
    if not sys.stdin.isatty():
        raise ClientError("not a terminal: add --yes to sell without a prompt", EXIT_BAD_INPUT)
    return input(prompt).strip().lower() in ("y", "yes")
