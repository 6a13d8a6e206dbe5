"""Where a webhook may go: public addresses only in production (no SSRF into the platform's network)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from flask import current_app


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
