"""Transport safety: certificate pinning (SPKI SHA-256) and plaintext-URL rules.

Pinning works like the vendor's Rust SDK: the config lists base64 SHA-256 hashes of
SubjectPublicKeyInfo structures (typically of LaserSell's intermediate CAs), and a TLS
connection is accepted only when the certificate chain the server presented, after
normal verification against the system trust store, contains a certificate whose SPKI
hashes to one of them. ``pinned_context`` returns an ``ssl.SSLContext`` whose
``sslobject_class`` checks this at the end of the handshake, so it works anywhere an
``ssl=`` context is accepted (aiohttp sessions and websockets, asyncio and uvloop
transports) and no request byte is sent to a server that fails it.

Pin of a certificate file: ``openssl x509 -in ca.pem -pubkey -noout | openssl pkey
-pubin -outform der | openssl dgst -sha256 -binary | base64``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import ssl
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from lasersell_bot.logs import get_logger

SHA256_BYTES: Final = 32
PLAINTEXT_SCHEMES: Final = frozenset({"ws", "http"})


class PinMismatch(ssl.SSLCertVerificationError):
    """No certificate of the presented chain has a pinned SubjectPublicKeyInfo."""


class DerError(ValueError):
    """A certificate that is not the DER X.509 structure we can read."""


# --------------------------------------------------------------------------- pins


def parse_pin(text: str) -> bytes:
    """A pin's 32 bytes from its base64 text; ``ValueError`` when it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    if len(raw) != SHA256_BYTES:
        raise ValueError(f"decodes to {len(raw)} bytes, a SHA-256 hash has 32")
    return raw


def spki_sha256(cert_der: bytes) -> bytes:
    """SHA-256 of the certificate's DER-encoded SubjectPublicKeyInfo."""
    return hashlib.sha256(subject_public_key_info(cert_der)).digest()


def subject_public_key_info(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo element (tag and length included) of an X.509 certificate:
    Certificate -> tbsCertificate -> [version], serial, signature, issuer, validity,
    subject, subjectPublicKeyInfo."""
    _, body, _ = _tlv(cert_der, 0)  # Certificate SEQUENCE
    tag, tbs, _ = _tlv(body, 0)  # tbsCertificate SEQUENCE
    if tag != 0x30:
        raise DerError("tbsCertificate is not a SEQUENCE")
    offset = 0
    if tbs[:1] == b"\xa0":  # [0] EXPLICIT version
        offset = _skip(tbs, offset)
    for _ in range(5):  # serial, signature, issuer, validity, subject
        offset = _skip(tbs, offset)
    tag, _, end = _tlv(tbs, offset)
    if tag != 0x30:
        raise DerError("subjectPublicKeyInfo is not a SEQUENCE")
    return tbs[offset:end]


def _skip(data: bytes, offset: int) -> int:
    return _tlv(data, offset)[2]


def _tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, contents, end offset) of the DER element at ``offset``."""
    if offset + 2 > len(data):
        raise DerError("truncated element")
    tag, first = data[offset], data[offset + 1]
    start = offset + 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise DerError("unsupported length")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    else:
        length = first
    end = start + length
    if end > len(data):
        raise DerError("element runs past the end")
    return tag, data[start:end], end


# --------------------------------------------------------------------------- contexts


def pinned_context(pins: Sequence[str], base: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """A verifying client context (``base``, default the system trust store) that also
    refuses a chain with no pinned SPKI. ``pins``: base64 SHA-256 hashes."""
    wanted = frozenset(parse_pin(pin) for pin in pins)
    context = base or ssl.create_default_context()

    class PinnedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()  # raises SSLWantRead until the handshake is done
            check_chain(self, wanted)

    context.sslobject_class = PinnedSSLObject
    return context


def check_chain(ssl_object: ssl.SSLObject, wanted: frozenset[bytes]) -> None:
    """Raise ``PinMismatch`` unless a certificate of the chain has a pinned SPKI."""
    chain = _chain_der(ssl_object)
    seen: list[str] = []
    for der in chain:
        try:
            digest = spki_sha256(der)
        except DerError:
            continue
        if digest in wanted:
            return
        seen.append(base64.b64encode(digest).decode())
    host = ssl_object.server_hostname or "?"
    get_logger("tls").error("tls_pin_mismatch", host=host, chain_pins=seen)
    raise PinMismatch(
        f"certificate pinning: no certificate in the chain of {host} matches tls.pins "
        f"(the chain's SPKI SHA-256 pins are {', '.join(seen) or 'none'})")


def _chain_der(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The verified chain, leaf first, as DER (Python 3.13 has it public; 3.10-3.12 on
    the private object); the leaf alone if neither is there."""
    getter: Any = getattr(ssl_object, "get_verified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if getter is not None:
        chain: Iterable[Any] = getter() or ()
        return [_der(cert) for cert in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes):
        return cert
    encoding = getattr(ssl, "_ssl")  # noqa: B009  (ENCODING_DER lives on the C module)
    return bytes(cert.public_bytes(encoding.ENCODING_DER))


# --------------------------------------------------------------------------- plaintext


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_remote_plaintext(url: str) -> bool:
    """``ws://`` or ``http://`` to a host that is not loopback."""
    parts = urlsplit(url)
    return parts.scheme in PLAINTEXT_SCHEMES and not is_loopback_host(parts.hostname or "")


# --------------------------------------------------------------------------- sessions


def client_ssl(pins: Sequence[str], base: ssl.SSLContext | None = None) -> ssl.SSLContext | bool:
    """What to pass as aiohttp's ``ssl=``: a pinned context, or default verification."""
    if pins:
        return pinned_context(pins, base)
    return base if base is not None else True


def lasersell_session(pins: Sequence[str], base: ssl.SSLContext | None = None,
                      **kwargs: Any) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` for the LaserSell stream and API: its connections
    (websocket included) are pinned to ``pins`` when any are configured."""
    connector = aiohttp.TCPConnector(ssl=client_ssl(pins, base))
    return aiohttp.ClientSession(connector=connector, **kwargs)
