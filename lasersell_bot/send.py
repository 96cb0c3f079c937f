"""Submission I/O: targets, warm pooled sessions, fan-out send, confirmation RPC, ``land``.

Thin by design. Every decision about *when* to poll, re-broadcast or give up
lives in ``landing.py``; this module only moves bytes:

- ``Target``: one submission endpoint (``rpc``, ``helius_sender``, ``astralane``)
  with its request body pre-built around the base64 transaction, and a
  ``display`` name that never contains a secret.
- ``Submitter``: one keep-alive ``aiohttp.ClientSession`` per target, warmed at
  start and pinged periodically; ``submit`` fans the same signed bytes out to
  every target and returns at the first acceptance. The other sends finish in
  the background, tracked and awaited by ``close``. ``send_now`` writes a first
  submission synchronously on a pre-connected ``fastpath.FastPool`` connection
  (no task hop, no aiohttp request building); ``submit(first=...)`` then takes
  its answer as the first attempt and retries through aiohttp as usual.
- ``Confirmer``: JSON-RPC reads on the RPC target's session.
- ``land``: submit, then drive ``LandingPolicy`` until the transaction has
  landed, failed, provably expired, or the hard bound passed.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import msgspec

from lasersell_bot.config import RpcConfig, SendConfig, SendTarget
from lasersell_bot.fastpath import FastPathError, FastPool, Reply
from lasersell_bot.landing import (
    CheckBlockhash,
    Done,
    LandingParams,
    LandingPolicy,
    Outcome,
    Poll,
    Rebroadcast,
    SignatureStatus,
    Wait,
)
from lasersell_bot.logs import REDACTOR, get_logger, register_secret
from lasersell_bot.metrics import Metrics
from lasersell_bot.rpcpool import (
    Probe,
    Provider,
    RpcError,
    RpcPool,
)

__all__ = ["STATUS_PROBE", "Confirmer", "RpcError", "RpcPool", "Submitter", "Target", "land",
           "make_target", "providers_of", "rpc_pool", "rpc_targets"]


def _log() -> Any:
    """The component logger, looked up per call so ``configure_logging`` applies."""
    return get_logger("send")


_SEND_PREFIX = b'{"jsonrpc":"2.0","id":1,"method":"sendTransaction","params":["'
_SEND_CONFIG = b'",{"encoding":"base64","skipPreflight":true,"maxRetries":0'
_RPC_EXTRA = b',"preflightCommitment":"processed"'
_SEND_END = b"}]}"
_GET_HEALTH = b'{"jsonrpc":"2.0","id":1,"method":"getHealth"}'
_JSON_HEADERS = {"Content-Type": "application/json"}
_MIN_SECRET_PART = 16
_BROKEN = "fast connection error: "
# Pre-connected connections per send target for the first submission (``send_now``); two
# so that a second signal right behind the first still finds one idle.
FAST_CONNECTIONS = 2

# --- targets ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One submission endpoint and the constant parts of its request."""

    name: str  # a SendTarget; extra RPC endpoints (rpc.send_to_all) are rpc_2, rpc_3, ...
    url: str = field(repr=False)
    display: str
    headers: Mapping[str, str] = field(repr=False)
    body_suffix: bytes = field(repr=False)
    ping_url: str | None = field(default=None, repr=False)

    def body(self, tx_b64: bytes) -> bytes:
        """The full ``sendTransaction`` request for an already base64-encoded transaction."""
        return _SEND_PREFIX + tx_b64 + self.body_suffix


def make_target(name: str, url: str, api_key: str = "") -> Target:
    """Build a target; registers every secret found in ``url``/``api_key`` for redaction."""
    _register_url_secrets(url)
    headers = dict(_JSON_HEADERS)
    if api_key:
        register_secret(api_key)
        if name == "astralane":
            headers["x-api-key"] = api_key
    extra = _RPC_EXTRA if name.startswith("rpc") else b""
    return Target(
        name=name,
        url=url,
        display=display_name(name, url),
        headers=headers,
        body_suffix=_SEND_CONFIG + extra + _SEND_END,
        ping_url=_origin(url) + "/ping" if name == "helius_sender" else None,
    )


def targets_from_config(send: SendConfig, rpc: RpcConfig) -> list[Target]:
    """The configured send targets (``send.targets``, else ``[send.mode]``), de-duplicated."""
    names = list(dict.fromkeys(send.targets or [send.mode]))
    urls: dict[SendTarget, str] = {
        "rpc": rpc.endpoints[0],
        "helius_sender": send.helius_sender_url,
        "astralane": send.astralane_url,
    }
    targets = [make_target(name, urls[name],
                           send.astralane_api_key if name == "astralane" else "")
               for name in names]
    if "rpc" in names and rpc.send_to_all:
        targets += rpc_targets(rpc)[1:]
    return targets


def rpc_targets(rpc: RpcConfig) -> list[Target]:
    """One target per RPC endpoint (``rpc.urls``, else ``rpc.url``): ``rpc``, ``rpc_2``, ..."""
    return [make_target("rpc" if index == 0 else f"rpc_{index + 1}", url)
            for index, url in enumerate(rpc.endpoints)]


def display_name(name: str, url: str) -> str:
    """``name(host[:port])``: no scheme, credentials, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{name}({host}:{parts.port})" if parts.port else f"{name}({host})"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _register_url_secrets(url: str) -> None:
    parts = urlsplit(url)
    for secret in (parts.username, parts.password):
        if secret:
            register_secret(secret)
    for _, value in parse_qsl(parts.query):
        register_secret(value)
    for segment in parts.path.split("/"):
        if len(segment) >= _MIN_SECRET_PART:
            register_secret(segment)


# --- JSON-RPC replies ---------------------------------------------------------


class _RpcErrorBody(msgspec.Struct):
    code: int = 0
    message: str = ""
    data: Any = None


class _RpcReply(msgspec.Struct):
    result: Any = None
    error: _RpcErrorBody | None = None


_decode_reply = msgspec.json.Decoder(_RpcReply).decode
_encode = msgspec.json.Encoder().encode

Verdict = Literal["accepted", "rejected", "transient"]
_TRANSIENT_RPC_CODES = frozenset({-32005, -32603, 429})
_ALREADY_PROCESSED = ("alreadyprocessed", "already been processed")
_RATE_LIMITED = ("rate limit", "too many requests")


@dataclass(frozen=True, slots=True)
class _Attempt:
    verdict: Verdict
    error: str = ""
    retry_after: float | None = None


def _judge(status: int, retry_after: str | None, payload: bytes) -> _Attempt:
    """Classify one HTTP exchange with a send target."""
    if status == 429:
        return _Attempt("transient", "http 429", _parse_retry_after(retry_after))
    if status >= 500:
        return _Attempt("transient", f"http {status}")
    if status >= 300:
        return _Attempt("rejected", f"http {status}")
    try:
        reply = _decode_reply(payload)
    except msgspec.DecodeError:
        return _Attempt("rejected", "malformed response")
    if isinstance(reply.result, str) and reply.result:
        return _Attempt("accepted")
    if reply.error is not None:
        return _judge_rpc_error(reply.error)
    return _Attempt("rejected", "empty result")


def _judge_rpc_error(error: _RpcErrorBody) -> _Attempt:
    text = f"{error.message} {error.data}".lower() if error.data else error.message.lower()
    if any(marker in text for marker in _ALREADY_PROCESSED):
        return _Attempt("accepted")
    described = f"rpc {error.code}: {REDACTOR.clean(error.message)[:200]}"
    if error.code in _TRANSIENT_RPC_CODES or any(m in text for m in _RATE_LIMITED):
        return _Attempt("transient", described)
    return _Attempt("rejected", described)


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return seconds if seconds >= 0 else None


# --- submitter ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetResult:
    """How one target handled one submission."""

    target: str
    ok: bool
    error: str
    attempts: int


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """``ok`` once any target accepted; ``errors`` by target name for those that failed."""

    ok: bool
    target: str | None
    elapsed: float
    errors: Mapping[str, str] = field(default_factory=dict)


class Submitter:
    """Owns one warm session per target (plus the RPC) and fans submissions out."""

    def __init__(
        self,
        targets: Sequence[Target],
        rpc: Target,
        *,
        request_timeout: float = 3.0,
        keepalive_interval: float = 30.0,
        retry_after_cap: float = 2.0,
        metrics: Metrics | None = None,
        fast_connections: int = 0,
        more_rpcs: Sequence[Target] = (),
    ) -> None:
        if not targets:
            raise ValueError("at least one send target is required")
        self.targets = tuple(targets)
        self.rpc = next((t for t in self.targets if t.name == "rpc"), rpc)
        # Every RPC provider, the preferred first: each has a session for reads.
        self.rpcs = (self.rpc, *more_rpcs)
        self.request_timeout = request_timeout
        self.keepalive_interval = keepalive_interval
        self.retry_after_cap = retry_after_cap
        self.metrics = metrics
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keep_warm: asyncio.Task[None] | None = None
        self.fast_connections = fast_connections
        self._fast: dict[str, FastPool] = {}

    @classmethod
    def from_config(cls, send: SendConfig, rpc: RpcConfig,
                    metrics: Metrics | None = None) -> Submitter:
        providers = rpc_targets(rpc)
        return cls(
            targets_from_config(send, rpc),
            providers[0],
            more_rpcs=providers[1:],
            request_timeout=send.request_timeout_ms / 1000,
            keepalive_interval=send.keepalive_interval_sec,
            metrics=metrics,
            fast_connections=FAST_CONNECTIONS,
        )

    @property
    def endpoints(self) -> tuple[Target, ...]:
        """Every endpoint with a session: the send targets, and the RPC providers not
        among them."""
        names = {t.name for t in self.targets}
        return (*self.targets, *(t for t in self.rpcs if t.name not in names))

    @property
    def in_flight(self) -> int:
        """Target sends still running (including those left behind by a returned submit)."""
        return len(self._tasks)

    def session(self, name: str) -> aiohttp.ClientSession:
        try:
            return self._sessions[name]
        except KeyError:
            raise RuntimeError(f"no open session for {name!r}: call start() first") from None

    async def start(self, warm: bool = True) -> None:
        """Open the sessions, optionally warm them, and start the keep-warm task."""
        if self._sessions:
            raise RuntimeError("Submitter already started")
        for target in self.endpoints:
            self._sessions[target.name] = self._new_session(target)
        if self.fast_connections > 0:
            for target in self.targets:
                try:
                    self._fast[target.name] = FastPool(target.url, target.headers,
                                                       self.fast_connections,
                                                       self.request_timeout)
                except ValueError:
                    continue  # not a plain http(s) URL: aiohttp only
        if warm:
            await self.warm()
            await asyncio.gather(*(pool.fill() for pool in self._fast.values()))
        self._keep_warm = asyncio.get_running_loop().create_task(self._keep_warm_loop())

    def _new_session(self, target: Target) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit_per_host=8,
            keepalive_timeout=max(75.0, 2 * self.keepalive_interval + 5),
            ttl_dns_cache=300,
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers=dict(target.headers),
            timeout=aiohttp.ClientTimeout(total=self.request_timeout),
        )

    async def warm(self) -> dict[str, bool]:
        """Open (or refresh) one connection per endpoint; True where the endpoint answered."""
        endpoints = self.endpoints
        answers = await asyncio.gather(*(self._ping(t) for t in endpoints))
        return {t.name: ok for t, ok in zip(endpoints, answers, strict=True)}

    async def _ping(self, target: Target) -> bool:
        session = self.session(target.name)
        try:
            if target.ping_url is not None:
                request = session.get(target.ping_url)
            else:
                request = session.post(target.url, data=_GET_HEALTH)
            async with request as response:
                await response.read()
                return response.status < 500
        except (TimeoutError, aiohttp.ClientError) as exc:
            _log().debug("warm_failed", target=target.display, error=type(exc).__name__)
            return False

    async def _keep_warm_loop(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_interval)
            await self.warm()
            await asyncio.gather(*(pool.ping(_GET_HEALTH, self.request_timeout)
                                   for pool in self._fast.values()))

    def send_now(self, signed_tx: bytes) -> dict[str, asyncio.Future[Reply]]:
        """Write the first submission of ``signed_tx`` now, in the caller's turn, on every
        target that has an idle pre-connected connection. Returns the pending answers by
        target name (pass them to ``submit(first=...)``); never raises."""
        if not self._fast:
            return {}
        encoded = base64.b64encode(signed_tx)
        sent: dict[str, asyncio.Future[Reply]] = {}
        for target in self.targets:
            pool = self._fast.get(target.name)
            if pool is None:
                continue
            try:
                answer = pool.send(target.body(encoded))
            except Exception:  # a bug here must not cost the send: aiohttp path takes over
                _log().exception("fast_send_failed", target=target.display)
                continue
            if answer is not None:
                sent[target.name] = answer
        return sent

    async def submit(self, signed_tx: bytes, signature: str,
                     deadline: float | None = None,
                     first: Mapping[str, asyncio.Future[Reply]] | None = None) -> SubmitOutcome:
        """Send to every target at once; return at the first acceptance.

        Transient failures are retried per target until ``deadline`` (a
        ``time.monotonic()`` value; default one request timeout from now).
        ``first``: answers of a ``send_now`` of the same bytes; those targets take
        that answer as their first attempt instead of sending again.
        """
        started = time.monotonic()
        until = started + self.request_timeout if deadline is None else deadline
        encoded = base64.b64encode(signed_tx)
        first = first or {}
        names = {self._spawn(self._deliver(t, t.body(encoded), until, signature,
                                           first.get(t.name))): t.name
                 for t in self.targets}
        pending = set(names)
        errors: dict[str, str] = {}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                result = _result_of(task, names[task])
                if result.ok:
                    return SubmitOutcome(True, result.target, time.monotonic() - started, errors)
                errors[result.target] = result.error
        return SubmitOutcome(False, None, time.monotonic() - started, errors)

    def _spawn(self, coro: Coroutine[Any, Any, TargetResult]) -> asyncio.Task[TargetResult]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(self, target: Target, body: bytes, deadline: float,
                       signature: str,
                       first: asyncio.Future[Reply] | None = None) -> TargetResult:
        attempts = 0
        try:
            while True:
                attempts += 1
                if first is not None:
                    attempt = await self._fast_attempt(first, deadline)
                    first = None
                    if attempt.error.startswith(_BROKEN):
                        # A stale keep-alive connection, most likely: resend at once.
                        _log().debug("fast_send_retry", target=target.display,
                                     error=attempt.error, signature=signature)
                        continue
                else:
                    attempt = await self._attempt(target, body)
                delay = self._retry_delay(attempt, attempts)
                if delay is None or time.monotonic() + delay >= deadline:
                    break
                _log().debug("submit_retry", target=target.display, error=attempt.error,
                             delay=round(delay, 3), signature=signature)
                await asyncio.sleep(delay)
        except Exception as exc:  # a bug, not a network failure: report it, never hide it
            _log().exception("submit_internal_error", target=target.display, signature=signature)
            attempt = _Attempt("rejected", f"internal error: {type(exc).__name__}")
        return self._finish(target, attempt, attempts, signature)

    def _retry_delay(self, attempt: _Attempt, attempts: int) -> float | None:
        if attempt.verdict != "transient":
            return None
        if attempt.retry_after is not None:
            return min(attempt.retry_after, self.retry_after_cap)
        return float(min(0.05 * 2 ** (attempts - 1), 0.5))

    async def _fast_attempt(self, answer: asyncio.Future[Reply], deadline: float) -> _Attempt:
        timeout = max(0.0, min(self.request_timeout, deadline - time.monotonic()))
        try:
            reply = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            return _Attempt("transient", "timeout", retry_after=0.0)
        except FastPathError as exc:
            return _Attempt("transient", f"{_BROKEN}{exc}")
        return _judge(reply.status, reply.headers.get("retry-after"), reply.body)

    async def _attempt(self, target: Target, body: bytes) -> _Attempt:
        try:
            async with self.session(target.name).post(target.url, data=body) as response:
                payload = await response.read()
                return _judge(response.status, response.headers.get("Retry-After"), payload)
        except TimeoutError:
            return _Attempt("transient", "timeout")
        except aiohttp.ClientError as exc:
            return _Attempt("transient", f"connection error: {type(exc).__name__}")

    def _finish(self, target: Target, attempt: _Attempt, attempts: int,
                signature: str) -> TargetResult:
        ok = attempt.verdict == "accepted"
        outcome = "accepted" if ok else ("rejected" if attempt.verdict == "rejected" else "failed")
        if self.metrics is not None:
            self.metrics.submissions.inc(target.name, outcome)
        if not ok:
            _log().warning("submit_failed", target=target.display, error=attempt.error,
                           attempts=attempts, signature=signature)
        return TargetResult(target.name, ok, attempt.error, attempts)

    async def close(self, grace: float = 1.0) -> None:
        """Stop keep-warm, let in-flight sends finish for up to ``grace`` s, close sessions."""
        if self._keep_warm is not None:
            self._keep_warm.cancel()
            await asyncio.gather(self._keep_warm, return_exceptions=True)
            self._keep_warm = None
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        for pool in self._fast.values():
            await pool.close()
        self._fast.clear()

    async def __aenter__(self) -> Submitter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _result_of(task: asyncio.Task[TargetResult], name: str) -> TargetResult:
    if task.cancelled():
        return TargetResult(name, False, "cancelled", 0)
    return task.result()


# --- confirmation RPC ---------------------------------------------------------


class Confirmer:
    """JSON-RPC reads through an ``RpcPool``: the healthiest provider answers, a slow one
    is hedged, a failing one is skipped. Without a pool, the submitter's RPC session is
    the one provider."""

    def __init__(self, submitter: Submitter, pool: RpcPool | None = None) -> None:
        self._submitter = submitter
        self.target = submitter.rpc
        self.pool = pool or RpcPool(providers_of(submitter),
                                    timeout=submitter.request_timeout, hedge_after=0.0)

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call; the ``result``, or ``RpcError``."""
        return await self.pool.call(method, params)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one JSON-RPC batch (one round trip, one provider, so they see
        the same state); their results in order. ``BatchUnsupported`` when the provider
        does not answer batches; ``RpcError`` when a call fails."""
        results: list[Any] = await self.pool.call_batch(calls)
        return results

    async def signature_statuses(self, signatures: Sequence[str]) -> list[SignatureStatus | None]:
        """Asked of up to ``rpc.status_fanout`` providers at once; for each signature the
        most advanced answer counts, so one lagging provider cannot hold it back."""
        answers = await self.pool.call_many(
            "getSignatureStatuses", [list(signatures), {"searchTransactionHistory": True}],
            lambda result: _parse_statuses(result, len(signatures)))
        return [max((answer[i] for answer in answers), key=_status_rank)
                for i in range(len(signatures))]

    async def signature_status(self, signature: str) -> SignatureStatus | None:
        return (await self.signature_statuses([signature]))[0]

    async def is_blockhash_valid(self, blockhash: str) -> bool:
        return await self.pool.call("isBlockhashValid", [blockhash, {"commitment": "processed"}],
                                    _parse_valid)

    async def latest_blockhash(self) -> tuple[str, int]:
        """(blockhash, lastValidBlockHeight) at processed commitment."""
        return await self.pool.call("getLatestBlockhash", [{"commitment": "processed"}],
                                    _parse_latest)

    async def block_height(self) -> int:
        return await self.pool.call("getBlockHeight", [{"commitment": "processed"}], _parse_int)

    async def health(self) -> bool:
        try:
            return bool(await self.call("getHealth") == "ok")
        except RpcError:
            return False


def providers_of(submitter: Submitter) -> list[Provider]:
    """The submitter's RPC providers (preferred first), reading on its warm sessions."""
    def session_of(name: str) -> Callable[[], aiohttp.ClientSession]:
        return lambda: submitter.session(name)

    return [Provider(t.url, t.display, session_of(t.name)) for t in submitter.rpcs]


def rpc_pool(submitter: Submitter, rpc: RpcConfig, metrics: Metrics | None = None) -> RpcPool:
    """The daemon's pool over every configured RPC provider, with ``[rpc]``'s settings."""
    return RpcPool(providers_of(submitter), timeout=rpc.timeout_ms / 1000,
                   hedge_after=rpc.hedge_after_ms / 1000, probe_interval=rpc.probe_interval_sec,
                   status_fanout=rpc.status_fanout, metrics=metrics, probe=STATUS_PROBE)


def _parse_one_status(result: Any) -> list[SignatureStatus | None]:
    return _parse_statuses(result, 1)


# The probe of a provider that is down: the status of a well-formed signature nobody
# made (64 zero bytes, base58), which must come back as [null] in the right shape.
STATUS_PROBE = Probe("getSignatureStatuses", [["1" * 64], {"searchTransactionHistory": False}],
                     _parse_one_status)


def _parse_statuses(result: Any, count: int) -> list[SignatureStatus | None]:
    """``getSignatureStatuses``' result, strictly: a ``value`` list of ``count`` entries,
    each null or an object with an integer slot (else the provider's reply is unusable)."""
    value = result["value"]
    if not isinstance(value, list) or len(value) != count:
        raise ValueError("value is not a list of one entry per signature")
    statuses: list[SignatureStatus | None] = []
    for entry in value:
        if entry is None:
            statuses.append(None)
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("slot"), int):
            raise TypeError("status entry without an integer slot")
        level = entry.get("confirmationStatus")
        if level is not None and not isinstance(level, str):
            raise TypeError("confirmationStatus is not a string")
        statuses.append(SignatureStatus.from_json(entry))
    return statuses


_LEVELS = {"processed": 1, "confirmed": 2, "finalized": 3}


def _status_rank(status: SignatureStatus | None) -> int:
    return 0 if status is None else _LEVELS.get(status.confirmation_status, 1)


def _parse_valid(result: Any) -> bool:
    value = result["value"]
    if not isinstance(value, bool):
        raise TypeError("isBlockhashValid value is not a boolean")
    return value


def _parse_latest(result: Any) -> tuple[str, int]:
    value = result["value"]
    blockhash, height = value["blockhash"], value["lastValidBlockHeight"]
    if not isinstance(blockhash, str) or not isinstance(height, int):
        raise TypeError("getLatestBlockhash value has wrong types")
    return blockhash, height


def _parse_int(result: Any) -> int:
    if not isinstance(result, int) or isinstance(result, bool):
        raise TypeError("not an integer")
    return result


# --- land -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LandResult:
    """What became of one signed transaction."""

    signature: str
    outcome: Outcome
    first_target: str | None
    submit_latency: float | None
    elapsed: float
    rebroadcasts: int
    rpc_errors: int
    submit_errors: Mapping[str, str]

    @property
    def kind(self) -> str:
        return self.outcome.kind


OnSubmitted = Callable[[str, float], object]
_T = TypeVar("_T")


async def land(
    signed_tx: bytes,
    signature: str,
    blockhash: str,
    submitter: Submitter,
    confirmer: Confirmer,
    policy_params: LandingParams,
    clock: Callable[[], float] = time.monotonic,
    on_submitted: OnSubmitted | None = None,
    first: Mapping[str, asyncio.Future[Reply]] | None = None,
) -> LandResult:
    """Submit ``signed_tx`` and follow it to an outcome (see ``landing.LandingPolicy``).

    The same bytes are re-broadcast on the policy's cadence. ``on_submitted(target,
    seconds)`` is called once, right after the first target accepts them. ``first``: the
    answers of a ``Submitter.send_now`` of these bytes, used as the first submission.
    """
    lander = _Lander(signed_tx, signature, blockhash, submitter, confirmer,
                     LandingPolicy(policy_params, clock()), clock, on_submitted, first)
    return await lander.run()


class _Lander:
    """The I/O loop for one ``land`` call."""

    def __init__(self, signed_tx: bytes, signature: str, blockhash: str, submitter: Submitter,
                 confirmer: Confirmer, policy: LandingPolicy, clock: Callable[[], float],
                 on_submitted: OnSubmitted | None,
                 first: Mapping[str, asyncio.Future[Reply]] | None = None) -> None:
        self.signed_tx, self.signature, self.blockhash = signed_tx, signature, blockhash
        self.submitter, self.confirmer, self.policy = submitter, confirmer, policy
        self.clock, self.on_submitted = clock, on_submitted
        self.first_target: str | None = None
        self.submit_latency: float | None = None
        self.submit_errors: Mapping[str, str] = {}
        self.inflight: set[asyncio.Task[SubmitOutcome]] = set()
        self.first = first

    async def run(self) -> LandResult:
        try:
            first, self.first = self.first, None
            self._record(await self._submit(first))
            while True:
                self._collect_rebroadcasts()
                action = self.policy.next_action(self.clock())
                if isinstance(action, Done):
                    return self._result(action.outcome)
                await self._perform(action)
        finally:
            for task in self.inflight:
                task.cancel()
            await asyncio.gather(*self.inflight, return_exceptions=True)

    def _submit(self, first: Mapping[str, asyncio.Future[Reply]] | None = None
                ) -> Coroutine[Any, Any, SubmitOutcome]:
        deadline = time.monotonic() + self.policy.params.rebroadcast_interval
        return self.submitter.submit(self.signed_tx, self.signature, deadline, first)

    async def _perform(self, action: Poll | Rebroadcast | CheckBlockhash | Wait) -> None:
        if isinstance(action, Wait):
            await asyncio.sleep(max(0.0, action.until - self.clock()))
        elif isinstance(action, Rebroadcast):
            self.inflight.add(asyncio.get_running_loop().create_task(self._submit()))
        elif isinstance(action, Poll):
            await self._ask(self.confirmer.signature_status(self.signature),
                            self.policy.on_status)
        else:
            await self._ask(self.confirmer.is_blockhash_valid(self.blockhash),
                            self.policy.on_blockhash_valid)

    async def _ask(self, read: Awaitable[_T], feed: Callable[[_T, float], None]) -> None:
        """Await one RPC read and feed its answer (or its failure) to the policy."""
        try:
            answer = await read
        except RpcError as exc:
            _log().debug("rpc_read_failed", signature=self.signature, error=str(exc))
            self.policy.on_rpc_error(self.clock())
        else:
            feed(answer, self.clock())

    def _collect_rebroadcasts(self) -> None:
        for task in [t for t in self.inflight if t.done()]:
            self.inflight.discard(task)
            if not task.cancelled():
                self._record(task.result())

    def _record(self, outcome: SubmitOutcome) -> None:
        self.policy.on_submit_result(outcome.ok, self.clock())
        if not outcome.ok:
            self.submit_errors = outcome.errors
            return
        if self.first_target is None and outcome.target is not None:
            self.first_target = outcome.target
            self.submit_latency = self.clock() - self.policy.started
            self._notify(outcome.target, self.submit_latency)

    def _notify(self, target: str, latency: float) -> None:
        if self.on_submitted is None:
            return
        try:
            self.on_submitted(target, latency)
        except Exception:
            _log().exception("on_submitted_failed", signature=self.signature)

    def _result(self, outcome: Outcome) -> LandResult:
        _log().info("land_outcome", signature=self.signature, outcome=outcome.kind,
                 target=self.first_target, rebroadcasts=self.policy.rebroadcasts,
                 rpc_errors=self.policy.rpc_errors)
        return LandResult(
            signature=self.signature,
            outcome=outcome,
            first_target=self.first_target,
            submit_latency=self.submit_latency,
            elapsed=self.clock() - self.policy.started,
            rebroadcasts=self.policy.rebroadcasts,
            rpc_errors=self.policy.rpc_errors,
            submit_errors=self.submit_errors,
        )

