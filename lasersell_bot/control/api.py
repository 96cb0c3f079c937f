"""The control API (``/api/v1/...``) and the dashboard (``/``) on the daemon's HTTP server.

Every route here needs the bearer token (see ``auth``); ``/healthz`` and
``/metrics`` are served by ``ops.HealthServer`` as before, without it. Errors are
JSON ``{"error": {"code", "message", "field"?}}``; an unknown position is 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from lasersell_bot.control import auth
from lasersell_bot.control.actions import ControlError, check_slippage
from lasersell_bot.control.events import sse_frame, sse_raw
from lasersell_bot.control.plane import STATE_HISTORY_POINTS, ControlPlane
from lasersell_bot.control.views import trade_view
from lasersell_bot.logs import get_logger

API: Final = "/api/v1"
KEEPALIVE_SEC: Final = 15.0
WRITE_TIMEOUT_SEC: Final = 10.0  # a client that stops reading is let go
MAX_BODY_BYTES: Final = 64 * 1024
STATIC_FILES: Final = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "chart.js": "text/javascript",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = get_logger("control")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_allowed(host: str, expose: bool) -> bool:
    """Pure rule: the API goes on a non-loopback address only when ``expose`` says so."""
    return is_loopback(host) or expose


def error_response(error: ControlError) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return web.json_response(error.body(), status=error.status, headers=headers)


class ControlApi:
    """The routes; ``mount`` adds them to the HTTP server's application."""

    def __init__(self, plane: ControlPlane, token: str) -> None:
        self.plane = plane
        self.token = token

    def mount(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)
        router = app.router
        router.add_get("/", self._index)
        router.add_post("/login", self._login)
        router.add_get("/static/{name}", self._static)
        router.add_get(API + "/state", self._state)
        router.add_get(API + "/trades", self._trades)
        router.add_get(API + "/events", self._events)
        router.add_post(API + "/positions/{id}/sell", self._sell)
        router.add_post(API + "/positions/{id}/close", self._close)
        router.add_put(API + "/positions/{id}/strategy", self._position_strategy)
        router.add_put(API + "/strategy", self._strategy)
        router.add_post(API + "/mirror/pause", self._pause)
        router.add_post(API + "/mirror/resume", self._resume)
        router.add_route("*", API + "/{tail:.*}", self._not_found)

    # ----------------------------------------------------------------- auth

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in ("/healthz", "/metrics"):
            return await handler(request)
        is_api = path == API or path.startswith(API + "/")
        try:
            if is_api or not _is_login(request):
                self._authorise(request)
            return await handler(request)
        except ControlError as error:
            if not is_api and error.status == 401:
                return _login_page(error.message)
            return error_response(error)

    def _authorise(self, request: web.Request) -> None:
        verdict = auth.check_request(
            self.token, authorization=request.headers.get("Authorization"),
            cookie=request.cookies.get(auth.COOKIE_NAME), method=request.method,
            request_header=request.headers.get(auth.REQUEST_HEADER))
        if verdict == "missing":
            raise ControlError(401, "unauthorized", "a bearer token is required "
                               "(Authorization: Bearer <token from http.api_token_file>)")
        if verdict == "wrong":
            raise ControlError(401, "unauthorized", "the token is not valid")
        if verdict == "needs_header":
            raise ControlError(403, "forbidden", f"changes need the {auth.REQUEST_HEADER} "
                               "header or a bearer token")
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD") and origin \
                and (origin == "null" or urlsplit(origin).netloc != request.host):
            raise ControlError(403, "forbidden", "cross-origin request refused")

    # ----------------------------------------------------------------- dashboard

    async def _index(self, request: web.Request) -> web.StreamResponse:
        given = request.query.get("token")
        if given is not None:
            return self._sign_in(given)
        return web.Response(text=_asset("index.html"), content_type="text/html",
                            headers=_NO_STORE)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise ControlError(413, "body_too_large", "the body is too large", "body")
        form = await request.post()
        given = form.get("token")
        return self._sign_in(given if isinstance(given, str) else "")

    def _sign_in(self, given: str) -> web.StreamResponse:
        """A valid token becomes an HttpOnly same-site cookie; back to ``/``."""
        if not auth.same_token(given.strip(), self.token):
            return _login_page("the token is not valid")
        response = web.Response(status=303, headers={"Location": "/", **_NO_STORE})
        response.set_cookie(auth.COOKIE_NAME, self.token, httponly=True, samesite="Strict",
                            path="/")
        return response

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise ControlError(404, "not_found", f"no static file {name}")
        return web.Response(text=_asset(name), content_type=STATIC_FILES[name],
                            headers=_NO_STORE)

    # ----------------------------------------------------------------- reads

    async def _state(self, request: web.Request) -> web.Response:
        history = _int_query(request, "history", STATE_HISTORY_POINTS)
        return web.Response(body=self.plane.state_bytes(history or 0),
                            content_type="application/json")

    async def _trades(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 50)
        before = _int_query(request, "before", None)
        trades = await asyncio.to_thread(self.plane.journal.trades, limit or 50, before)
        rows = [trade_view(t) for t in trades]
        next_before = rows[-1]["signal_id"] if rows and len(rows) == (limit or 50) else None
        return _json({"trades": rows, "next_before": next_before})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        subscription = self.plane.bus.subscribe()
        try:
            await _write(response, sse_raw(0, "state", self.plane.state_bytes()))
            while True:
                try:
                    event = await asyncio.wait_for(subscription.next(), KEEPALIVE_SEC)
                except TimeoutError:
                    await _write(response, b": keepalive\n\n")
                    continue
                if event is None:
                    break
                await _write(response, sse_frame(*event))
        except (ConnectionResetError, TimeoutError):
            return response  # gone, or not reading
        finally:
            self.plane.bus.unsubscribe(subscription)
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            await asyncio.wait_for(response.write_eof(), WRITE_TIMEOUT_SEC)
        return response

    # ----------------------------------------------------------------- actions

    async def _sell(self, request: web.Request) -> web.Response:
        position_id = _position_id(request)
        body = await _body(request, required=False)
        slippage = body.get("slippage_bps")
        if slippage is not None:
            check_slippage(slippage, self.plane.daemon.cfg.send.slippage_max_bps)
        return _json(self.plane.actions.sell(position_id, slippage, _source(request)), 202)

    async def _close(self, request: web.Request) -> web.Response:
        return _json(self.plane.actions.close(_position_id(request), _source(request)), 202)

    async def _position_strategy(self, request: web.Request) -> web.Response:
        position_id = _position_id(request)
        body = await _body(request, required=True)
        return _json(self.plane.actions.set_position_strategy(position_id, body))

    async def _strategy(self, request: web.Request) -> web.Response:
        return _json(self.plane.actions.set_strategy(await _body(request, required=True)))

    async def _pause(self, request: web.Request) -> web.Response:
        return _json(self.plane.actions.pause_mirror(_source(request)))

    async def _resume(self, request: web.Request) -> web.Response:
        return _json(self.plane.actions.resume_mirror(_source(request)))

    async def _not_found(self, request: web.Request) -> web.Response:
        raise ControlError(404, "not_found", f"no route {request.method} {request.path}")


_NO_STORE: Final = {"Cache-Control": "no-store"}


def _is_login(request: web.Request) -> bool:
    """The two ways in without a cookie: ``GET /?token=`` and ``POST /login``."""
    if request.path == "/" and request.method == "GET":
        return "token" in request.query
    return request.path == "/login" and request.method == "POST"


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status,
                        content_type="application/json")


async def _write(response: web.StreamResponse, data: bytes) -> None:
    await asyncio.wait_for(response.write(data), WRITE_TIMEOUT_SEC)


def _source(request: web.Request) -> str:
    return "dashboard" if request.cookies.get(auth.COOKIE_NAME) else "api"


def _position_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 20:
        raise ControlError(400, "invalid_field", f"id: must be a position id (got {text!r})",
                           "id")
    return int(text)


def _int_query(request: web.Request, name: str, default: int | None) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 12:
        raise ControlError(400, "invalid_field", f"{name}: must be a non-negative integer "
                           f"(got {text[:20]!r})", name)
    return int(text)


async def _body(request: web.Request, *, required: bool) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ControlError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes",
                           "body")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ControlError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes",
                           "body")
    if not raw.strip():
        if required:
            raise ControlError(400, "invalid_body", "a JSON object is required", "body")
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ControlError(400, "invalid_body", f"the body is not JSON: {exc}", "body") from None
    if not isinstance(value, dict):
        raise ControlError(400, "invalid_body", "the body must be a JSON object", "body")
    return value


def _asset(name: str) -> str:
    return resources.files("lasersell_bot.dashboard").joinpath(name).read_text("utf-8")


def _login_page(message: str) -> web.Response:
    text = _asset("login.html").replace("{{message}}", _escape_html(message))
    return web.Response(text=text, status=401, content_type="text/html", headers=_NO_STORE)


def _escape_html(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
