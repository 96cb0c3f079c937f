"""Structured logging: JSON lines for journald/docker, console on a TTY, redaction.

Every log call names an ``event``. Secrets (API keys, tokens, passphrases, key
bytes) are registered with ``register_secret`` when loaded and are replaced by
``[REDACTED]`` in every rendered line, tracebacks included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import msgspec
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3,
                    "critical": 2, "exception": 3}
_URL_SECRET = re.compile(r"(?i)((?:api[-_]?key|token|secret|auth)=)[^&\s\"']+")
_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+)?[^\s\"',}]+")
_MIN_SECRET_LEN = 6
# Key material (base58 and hex keys, long alphanumeric tokens) is looked up as whole
# alphanumeric words in a set; byte arrays as runs of comma-separated numbers. The cost
# of a line does not depend on how many wallets are loaded.
_KEY_WORD_MIN = 32
_KEY_WORD = re.compile(rf"[0-9A-Za-z]{{{_KEY_WORD_MIN},}}+")
_KEY_WORD_FULL = re.compile(rf"[0-9A-Za-z]{{{_KEY_WORD_MIN},}}\Z")
_ARRAY_MIN = 16
_NUMBER_RUN = re.compile(
    rf"(?<![0-9])[0-9]{{1,3}}(?:\s*,\s*[0-9]{{1,3}}){{{_ARRAY_MIN - 1},}}(?![0-9])")
_REDACTED = "[REDACTED]"


class Redactor:
    """Replaces every registered secret, plus URL query secrets and auth headers.

    Three lookups, none of which grows with the number of wallets:

    - key words: a secret of 32+ letters and digits (base58 or hex keys, long API keys)
      is found as an alphanumeric word of the line by set membership, or as the start
      or end of a longer word (``0x`` + hex), one lookup per registered length;
    - byte arrays: a secret given as bytes (16+) is found in any run of comma-separated
      numbers (``[1,2,...]``, ``1, 2, ...``, any spacing), by set membership over the
      run's windows of each registered length;
    - other secrets (passphrases, short or punctuated API keys, URL parts) are few and
      do not come per wallet: one alternation, compiled on the first line after a change.
    """

    def __init__(self) -> None:
        self._key_words: set[str] = set()
        self._key_lengths: set[int] = set()
        self._arrays: set[bytes] = set()
        self._array_lengths: set[int] = set()
        self._others: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False

    def add(self, secret: str) -> None:
        if len(secret) < _MIN_SECRET_LEN:
            return
        if _KEY_WORD_FULL.match(secret):
            self._key_words.add(secret)
            self._key_lengths.add(len(secret))
        elif secret not in self._others:
            self._others.add(secret)
            self._dirty = True

    def add_bytes(self, secret: bytes) -> None:
        """A binary secret: its hex form and every written form as a list of numbers."""
        self.add(secret.hex())
        if len(secret) >= _ARRAY_MIN:
            self._arrays.add(secret)
            self._array_lengths.add(len(secret))
            return
        self.add(str(list(secret)).replace(" ", ""))
        self.add(", ".join(str(b) for b in secret))

    def clean(self, text: str) -> str:
        if self._key_words:
            for secret in self._key_words_in(_KEY_WORD.findall(text)):
                text = text.replace(secret, _REDACTED)
        if self._arrays and text.count(",") >= _ARRAY_MIN - 1:
            text = _NUMBER_RUN.sub(self._clean_array, text)
        pattern = self._other_pattern()
        if pattern is not None:
            text = pattern.sub(_REDACTED, text)
        # Cheap tests first: most lines hold neither a query string nor a header.
        if "=" in text:
            text = _URL_SECRET.sub(r"\1" + _REDACTED, text)
        if "authorization" in text.lower():
            text = _AUTH_HEADER.sub(r"\1" + _REDACTED, text)
        return text

    def _key_words_in(self, words: list[str]) -> set[str]:
        """Registered key words among ``words``, also at the start or end of a longer
        word (a ``0x`` prefix, a seed's hex inside the keypair's): two set lookups per
        registered length (key words come in a few lengths: 43-44, 64, 87-88, 128)."""
        keys = self._key_words
        found = keys.intersection(words)
        for word in words:
            if word in found:
                continue
            size = len(word)
            for length in self._key_lengths:
                if length < size:
                    if word[:length] in keys:
                        found.add(word[:length])
                    if word[-length:] in keys:
                        found.add(word[-length:])
        return found

    def _clean_array(self, match: re.Match[str]) -> str:
        run = match.group()
        numbers = [int(n) for n in run.replace(" ", "").split(",")]
        if any(n > 255 for n in numbers):
            return run
        data = bytes(numbers)
        for length in self._array_lengths:
            for start in range(len(data) - length + 1):
                if data[start:start + length] in self._arrays:
                    return _REDACTED
        return run

    def _other_pattern(self) -> re.Pattern[str] | None:
        if self._dirty:
            self._dirty = False
            ordered = sorted(self._others, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        return self._pattern


REDACTOR = Redactor()


def register_secret(secret: str | bytes) -> None:
    """Never let ``secret`` (or its text forms) reach a log line."""
    if isinstance(secret, bytes):
        REDACTOR.add_bytes(secret)
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
        structlog.processors.JSONRenderer(serializer=_json_line)
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


_JSON = msgspec.json.Encoder(enc_hook=repr)


def _json_line(event_dict: Any, **_: Any) -> str:
    """One JSON object (msgspec: ~5x the standard library's speed); values JSON cannot
    hold are written as their ``repr``, like structlog's own fallback."""
    try:
        return _JSON.encode(event_dict).decode()
    except (TypeError, msgspec.EncodeError):  # e.g. keys that are not strings
        return json.dumps(event_dict, default=repr)


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def get_logger(component: str) -> Any:
    """A logger bound to ``component``; call it as ``log.info("event_name", k=v)``."""
    # A lazy proxy: it follows configure_logging() even when created at import time.
    return structlog.get_logger(component=component)
