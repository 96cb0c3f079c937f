"""Transport safety: certificate pinning (a local TLS server with a throwaway CA) and the
refusal of plaintext URLs to hosts that are not loopback."""

from __future__ import annotations

import base64
import hashlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from lasersell_bot.config import ConfigError, load_config, plaintext_urls
from lasersell_bot.stream import RegistrationError, register_wallets
from lasersell_bot.tls import (
    PinMismatch,
    is_remote_plaintext,
    lasersell_session,
    parse_pin,
    pinned_context,
    spki_sha256,
    subject_public_key_info,
)


class Pki:
    """A throwaway CA and a leaf for 127.0.0.1 / localhost, made with the openssl CLI."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca_key, self.ca = tmp / "ca.key", tmp / "ca.pem"
        self.key, self.leaf = tmp / "leaf.key", tmp / "leaf.pem"
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                      "-subj", "/CN=Throwaway Test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                      "-keyout", str(self.ca_key), "-out", str(self.ca))
        csr = tmp / "leaf.csr"
        self._openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                      "-keyout", str(self.key), "-out", str(csr))
        ext = tmp / "leaf.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        self._openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey",
                      str(self.ca_key), "-CAcreateserial", "-days", "1", "-extfile", str(ext),
                      "-out", str(self.leaf))

    def _openssl(self, *args: str) -> bytes:
        return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout

    def pin_by_openssl(self, cert: Path) -> str:
        """The documented shell recipe for a pin, run step by step."""
        pubkey = self._openssl("x509", "-in", str(cert), "-pubkey", "-noout")
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey,
                             check=True, capture_output=True).stdout
        return base64.b64encode(hashlib.sha256(der).digest()).decode()

    def der(self, cert: Path) -> bytes:
        return ssl.PEM_cert_to_DER_cert(cert.read_text())

    def trusting(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return Pki(tmp_path)


class Api:
    """An HTTPS stream/API stand-in: counts requests that got through the handshake."""

    def __init__(self) -> None:
        self.requests = 0
        self.url = ""

    async def register(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response({"status": "ok"})

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.requests += 1
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str("hello")
        await socket.close()
        return socket


@pytest.fixture
async def api(pki: Pki) -> AsyncIterator[Api]:
    server = Api()
    app = web.Application()
    app.router.add_post("/v1/wallets/register", server.register)
    app.router.add_get("/v1/ws", server.ws)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.leaf, pki.key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    server.url = f"https://localhost:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


PROOF = {"wallet_pubkey": "W", "signature": "S", "timestamp": "1"}


# --------------------------------------------------------------------------- pins


def test_spki_hash_matches_the_openssl_recipe(pki: Pki) -> None:
    for cert in (pki.ca, pki.leaf):
        assert base64.b64encode(spki_sha256(pki.der(cert))).decode() == pki.pin_by_openssl(cert)
    assert subject_public_key_info(pki.der(pki.leaf))[:1] == b"\x30"


def test_parse_pin_names_what_is_wrong() -> None:
    assert len(parse_pin(base64.b64encode(bytes(32)).decode())) == 32
    with pytest.raises(ValueError, match="not valid base64"):
        parse_pin("not base64!")
    with pytest.raises(ValueError, match="decodes to 3 bytes"):
        parse_pin("AAAA")


@pytest.mark.parametrize("which", ["ca", "leaf"])
async def test_a_pinned_certificate_of_the_chain_is_accepted(pki: Pki, api: Api,
                                                             which: str) -> None:
    pin = pki.pin_by_openssl(pki.ca if which == "ca" else pki.leaf)
    async with lasersell_session([pin], pki.trusting()) as http:
        await register_wallets(http, api.url, "key", [PROOF], attempts=1)
        async with http.ws_connect(api.url + "/v1/ws") as ws:
            assert (await ws.receive()).data == "hello"
    assert api.requests == 2


async def test_a_chain_that_matches_no_pin_is_refused_before_any_request(
        pki: Pki, api: Api) -> None:
    wrong = base64.b64encode(hashlib.sha256(b"someone else's key").digest()).decode()
    with capture_logs() as logs:
        async with lasersell_session([wrong], pki.trusting()) as http:
            with pytest.raises(aiohttp.ClientError) as raised:
                async with http.ws_connect(api.url + "/v1/ws"):
                    pass
            with pytest.raises(RegistrationError, match="certificate pinning"):
                await register_wallets(http, api.url, "key", [PROOF], attempts=1)
    assert "certificate pinning: no certificate in the chain of localhost matches tls.pins" \
        in str(raised.value)
    assert api.requests == 0  # not one request reached the server
    mismatch = [e for e in logs if e["event"] == "tls_pin_mismatch"]
    assert mismatch and mismatch[0]["host"] == "localhost"
    assert pki.pin_by_openssl(pki.ca) in mismatch[0]["chain_pins"]


async def test_pinning_does_not_replace_verification(pki: Pki, api: Api) -> None:
    """The pin matches, but the CA is not trusted: still refused."""
    pin = pki.pin_by_openssl(pki.ca)
    async with lasersell_session([pin]) as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.ws_connect(api.url + "/v1/ws"):
                pass
    assert api.requests == 0


def test_pinned_context_raises_pin_mismatch_type() -> None:
    context = pinned_context([base64.b64encode(bytes(32)).decode()])
    assert issubclass(context.sslobject_class, ssl.SSLObject)
    assert issubclass(PinMismatch, ssl.SSLCertVerificationError)


# --------------------------------------------------------------------------- config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text("[strategy]\nstop_loss_pct = 10\n[stream]\napi_key = \"k\"\n" + text)
    return path


@pytest.mark.parametrize(("key", "line"), [
    ("stream.url", 'url = "ws://stream.example.com/v1/ws"'),
    ("stream.api_url", 'api_url = "http://api.example.com"'),
    ("rpc.url", '[rpc]\nurl = "http://rpc.example.com/?api-key=SECRET"'),
    ("rpc.urls[1]", '[rpc]\nurls = ["https://a.example.com", "http://10.0.0.5:8899"]'),
    ("send.helius_sender_url", '[send]\nhelius_sender_url = "http://sender.example.com/fast"'),
    ("notify.webhook_url", '[notify]\nwebhook_url = "http://hooks.example.com/x"'),
])
def test_remote_plaintext_is_refused_unless_allowed(tmp_path: Path, key: str, line: str) -> None:
    path = write(tmp_path, line + "\n")  # stream keys land in the [stream] table
    with pytest.raises(ConfigError) as raised:
        load_config(path, require_wallets=False)
    message = str(raised.value)
    assert message.startswith(f"{key}: plaintext ")
    assert "tls.allow_plaintext = true" in message
    assert "SECRET" not in message
    path.write_text(path.read_text() + "[tls]\nallow_plaintext = true\n")
    cfg = load_config(path, require_wallets=False)
    assert plaintext_urls(cfg) == [key]


def test_loopback_plaintext_needs_no_override(tmp_path: Path) -> None:
    path = write(tmp_path, '[rpc]\nurls = ["http://127.0.0.1:8899", "http://localhost:1"]\n')
    cfg = load_config(path, require_wallets=False)
    assert plaintext_urls(cfg) == []
    assert not is_remote_plaintext("ws://[::1]:8082/v1/ws")
    assert is_remote_plaintext("ws://127.0.0.1.example.com/v1/ws")


def test_bad_pins_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '[tls]\npins = ["AAAA"]\n')
    with pytest.raises(ConfigError, match=r"^tls.pins\[0\]: must be the base64 SHA-256"):
        load_config(path, require_wallets=False)
    good = base64.b64encode(bytes(32)).decode()
    path = tmp_path / "plain.toml"
    path.write_text(f'[strategy]\nstop_loss_pct = 10\n[stream]\nurl = "ws://127.0.0.1:1/v1/ws"\n'
                    f'[tls]\npins = ["{good}"]\n')
    with pytest.raises(ConfigError, match=r"^stream.url: tls.pins is set, so it must use TLS"):
        load_config(path, require_wallets=False)
