"""The control API's bearer token: where it comes from and how a request proves it.

The token is a systemd credential (``lasersell-api-token``) when one is given, else
the file ``http.api_token_file``, created with mode 0600 at first start. A request
proves it with ``Authorization: Bearer <token>``, or (the dashboard, whose
EventSource cannot set headers) with the ``lasersell_token`` cookie that
``GET /?token=...`` sets. A cookie alone never authorises a change: POST and PUT
also need the ``X-Lasersell-Request`` header, which a cross-site form cannot send.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

from lasersell_bot.logs import register_secret

CREDENTIAL_NAME: Final = "lasersell-api-token"
COOKIE_NAME: Final = "lasersell_token"
REQUEST_HEADER: Final = "X-Lasersell-Request"
TOKEN_BYTES: Final = 32
MIN_TOKEN_CHARS: Final = 16

Verdict = Literal["ok", "missing", "wrong", "needs_header"]


class TokenError(Exception):
    """The token cannot be read or made; the message names the file."""


def load_or_create_token(path: str | Path, env: Mapping[str, str] | None = None) -> str:
    """The API token: the systemd credential if present, else the file (created if missing)."""
    environment = os.environ if env is None else env
    token = _from_credential(environment) or _from_file(Path(path))
    register_secret(token)
    return token


def read_token(path: str | Path, env: Mapping[str, str] | None = None) -> str:
    """The token for a client: ``LASERSELL_API_TOKEN``, the credential, or the file."""
    environment = os.environ if env is None else env
    token = environment.get("LASERSELL_API_TOKEN", "").strip() or _from_credential(environment)
    if token:
        return token
    try:
        return _check_token(Path(path), Path(path).read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        raise TokenError(f"http.api_token_file: {path} not found (the daemon creates it at "
                         "its first start; or set LASERSELL_API_TOKEN)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"http.api_token_file: cannot read {path}: {exc}") from None


def _from_credential(env: Mapping[str, str]) -> str:
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return ""
    path = Path(directory) / CREDENTIAL_NAME
    try:
        return _check_token(path, path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"systemd credential {path}: {exc}") from None


def _from_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_private(path)
    except OSError as exc:
        raise TokenError(f"http.api_token_file: cannot create {path}: {exc.strerror}") from None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token


def _read_private(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"http.api_token_file: cannot read {path}: {exc}") from None
    if mode & 0o077:
        raise TokenError(f"http.api_token_file: {path} is readable by other users "
                         f"(mode {mode & 0o777:o}); run chmod 600 {path}")
    return _check_token(path, text)


def _check_token(path: Path, token: str) -> str:
    if len(token) < MIN_TOKEN_CHARS or any(ch.isspace() for ch in token):
        raise TokenError(f"http.api_token_file: {path} must hold one token of at least "
                         f"{MIN_TOKEN_CHARS} characters without spaces")
    return token


def same_token(given: str, token: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(given.encode(), token.encode())


def check_request(
    token: str, *, authorization: str | None, cookie: str | None, method: str,
    request_header: str | None,
) -> Verdict:
    """Pure rule: may this request go on? ``needs_header``: a cookie-only change."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and given:
        return "ok" if same_token(given.strip(), token) else "wrong"
    if not cookie:
        return "missing" if not authorization else "wrong"
    if not same_token(cookie, token):
        return "wrong"
    if method not in ("GET", "HEAD") and not request_header:
        return "needs_header"
    return "ok"
