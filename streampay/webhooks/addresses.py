"""Where a webhook may go: public addresses only in production (no SSRF into the platform's network)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class AddressRefused(Exception):
    """The URL is not one we deliver to."""


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, resolve: bool = True) -> None:
    """Refuse a non-HTTP URL, and (unless allowed by WEBHOOK_ALLOW_PRIVATE_URLS) any host that resolves
    to a loopback, private, link-local or otherwise non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("An http:// or https:// URL with a host.")
    if parts.username or parts.password:
        raise AddressRefused("No credentials in the URL; verify our signature instead.")
    if current_app.config["WEBHOOK_ALLOW_PRIVATE_URLS"] or not resolve:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise AddressRefused(f"The host {parts.hostname} does not resolve.") from exc
    for info in infos:
        if not _public(info[4][0]):
            raise AddressRefused(f"The host {parts.hostname} resolves to a non-public address.")


class _PublicPeer:
    """A connection that checks where its socket actually went before a byte is sent: a DNS answer that changed
    since check_url (rebinding) cannot steer a delivery into the platform's network."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        if not _public(sock.getpeername()[0]):
            sock.close()
            raise AddressRefused(f"The host {self.host} connected to a non-public address.")
        return sock


class _HTTPConnection(_PublicPeer, HTTPConnection):
    pass


class _HTTPSConnection(_PublicPeer, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _PublicOnly(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def session() -> requests.Session:
    """A session for one delivery: direct (no proxy from the environment), and, unless WEBHOOK_ALLOW_PRIVATE_URLS,
    connected to public addresses only."""
    s = requests.Session()
    s.trust_env = False
    if not current_app.config["WEBHOOK_ALLOW_PRIVATE_URLS"]:
        s.mount("http://", _PublicOnly())
        s.mount("https://", _PublicOnly())
    return s
