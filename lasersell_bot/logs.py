"""Structured logging: JSON lines for journald/docker, console on a TTY, redaction.

Every log call names an ``event``. Secrets (API keys, tokens, passphrases, key
bytes) are registered with ``register_secret`` when loaded and are replaced by
``[REDACTED]`` in every rendered line, tracebacks included.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3,
                    "critical": 2, "exception": 3}
_URL_SECRET = re.compile(r"(?i)((?:api[-_]?key|token|secret|auth)=)[^&\s\"']+")
_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+)?[^\s\"',}]+")
_MIN_SECRET_LEN = 6


class Redactor:
    """Replaces every registered secret, plus URL query secrets and auth headers."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str) -> None:
        if len(secret) >= _MIN_SECRET_LEN and secret not in self._secrets:
            self._secrets.add(secret)
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def clean(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub("[REDACTED]", text)
        text = _URL_SECRET.sub(r"\1[REDACTED]", text)
        return _AUTH_HEADER.sub(r"\1[REDACTED]", text)


REDACTOR = Redactor()


def register_secret(secret: str | bytes) -> None:
    """Never let ``secret`` (or its text forms) reach a log line."""
    if isinstance(secret, bytes):
        REDACTOR.add(secret.hex())
        REDACTOR.add(str(list(secret)).replace(" ", ""))
        REDACTOR.add(", ".join(str(b) for b in secret))
        return
    REDACTOR.add(secret)


class _RedactingRenderer:
    def __init__(self, inner: Any, syslog_prefix: bool) -> None:
        self._inner = inner
        self._prefix = syslog_prefix

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        rendered = self._inner(logger, name, event_dict)
        text = rendered.decode() if isinstance(rendered, bytes) else str(rendered)
        text = REDACTOR.clean(text)
        if self._prefix:
            return f"<{_SYSLOG_PRIORITY.get(name, 6)}>{text}"
        return text


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    syslog_prefix: bool = True,
    stream: TextIO | None = None,
    cache: bool = False,
) -> None:
    """Set up structlog for the process. ``fmt`` is json, console or auto.

    ``cache=True`` (the daemon) freezes loggers on first use for speed; tests
    leave it off so they can reconfigure.
    """
    out = stream or sys.stdout
    as_json = fmt == "json" or (fmt == "auto" and not _isatty(out))
    inner: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=_isatty(out))
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _RedactingRenderer(inner, syslog_prefix and as_json),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        # Without an explicit stream, each logger resolves sys.stdout when created.
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=cache,
    )


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def get_logger(component: str) -> Any:
    """A logger bound to ``component``; call it as ``log.info("event_name", k=v)``."""
    # A lazy proxy: it follows configure_logging() even when created at import time.
    return structlog.get_logger(component=component)
