"""Builds the control surface of a daemon from its config: the plane, the HTTP routes
(with their token) and the Telegram command loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from lasersell_bot.control import auth
from lasersell_bot.control.api import ControlApi, api_allowed
from lasersell_bot.control.plane import ControlPlane
from lasersell_bot.control.telegram import TelegramCommands
from lasersell_bot.logs import get_logger
from lasersell_bot.notify import NotifyKind
from lasersell_bot.ops import parse_listen

if TYPE_CHECKING:
    from lasersell_bot.daemon import Daemon
    from lasersell_bot.flows import Notify

log = get_logger("control")


class TeeNotifier:
    """Passes notifications on, and shows them to the control plane too."""

    def __init__(self, inner: Notify, plane: ControlPlane) -> None:
        self._inner, self._plane = inner, plane

    def notify(self, kind: NotifyKind, text: str) -> bool:
        self._plane.on_notice(kind, text)
        return self._inner.notify(kind, text)


class ControlService:
    """The control plane, its API routes and, when configured, Telegram commands."""

    def __init__(self, daemon: Daemon) -> None:
        self.cfg = daemon.cfg
        self.plane = ControlPlane(daemon)
        self.token = ""
        self.disabled = ""
        self.telegram = (TelegramCommands(self.cfg.notify, self.plane)
                         if self.cfg.notify.telegram_commands else None)

    def prepare(self) -> None:
        """Read or create the token. Without one the API stays off (503) and the daemon
        trades on: a dashboard problem must not stop exits."""
        self.plane.adapter.restore_mirror_pause()
        try:
            self.token = auth.load_or_create_token(self.cfg.http.api_token_file)
        except auth.TokenError as exc:
            self.disabled = str(exc)
            log.error("control_api_disabled", error=self.disabled)

    def mount(self, app: web.Application) -> None:
        if self.token:
            ControlApi(self.plane, self.token).mount(app)
            return
        reason = self.disabled or "no API token"

        async def unavailable(_request: web.Request) -> web.Response:
            return web.json_response({"error": {
                "code": "api_disabled", "message": f"control API off: {reason}",
                "field": "http.api_token_file"}}, status=503)

        app.router.add_route("*", "/api/{tail:.*}", unavailable)
        app.router.add_get("/", unavailable)

    def tee(self, notifier: Notify) -> TeeNotifier:
        return TeeNotifier(notifier, self.plane)

    def on_low(self, message: Any) -> None:
        self.plane.on_low(message)

    def on_action(self, action: Any) -> None:
        self.plane.on_action(action)

    async def run(self) -> None:
        extra = [self.telegram.run] if self.telegram is not None else []
        await self.plane.run(extra)

    def close(self) -> None:
        self.plane.bus.close_all()


def control_plane(daemon: Daemon) -> ControlService | None:
    """The control service for ``daemon``, or None when ``http`` turns it off."""
    http = daemon.cfg.http
    address = parse_listen(http.listen)
    if not http.api or address is None:
        return None
    host = address[0]
    if not api_allowed(host, http.expose_api):
        log.warning("control_api_not_exposed", host=host,
                    detail="http.listen is not a loopback address; the control API and "
                           "dashboard stay off unless http.expose_api = true")
        return None
    if host != "localhost" and not api_allowed(host, False):
        log.warning("control_api_exposed", host=host,
                    detail="the control API and dashboard answer on a non-loopback "
                           "address; anyone with the token can sell")
    return ControlService(daemon)
