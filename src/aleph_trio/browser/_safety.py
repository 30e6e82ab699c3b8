"""Where the browser may go: allowed URL schemes and denied hosts (``[browser]``).

A denied entry is an IP network (``169.254.0.0/16``, ``fe80::/10``; a bare address is a
network of one) or a host name (``metadata.google.internal``; a leading dot, ``.internal``,
covers the domain and every subdomain). A host is checked as the browser would read it: IPv4
in any of the forms Chromium accepts (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``), IPv6 in
brackets, IPv4-mapped IPv6, names without their trailing dot and case-insensitively. Before
a navigation, a host name is also resolved and refused if any of its addresses is denied.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Final, final
from urllib.parse import urlsplit

import trio

from ..kernel import InvalidArgument

__all__ = ["HostPolicy", "check_scheme", "url_host"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Name resolution before a navigation gives up after this long (the browser resolves again).
RESOLVE_TIMEOUT_S: Final = 2.0


def check_scheme(url: str, allowed: Iterable[str]) -> str:
    """The URL's scheme if it is allowed, else :class:`InvalidArgument` on ``$.url``."""
    scheme = urlsplit(url.strip()).scheme.lower()
    allowed = [s.lower() for s in allowed]
    if not scheme:
        raise InvalidArgument.field("$.url", "must be an absolute URL with a scheme")
    if scheme not in allowed:
        raise InvalidArgument.field(
            "$.url", f"scheme {scheme!r} is not allowed (browser.allowed_schemes: {allowed})"
        )
    return scheme


def url_host(url: str) -> str | None:
    """The host part of a URL (lower case, no brackets or trailing dot), or None."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.rstrip(".").lower() if host else None


def parse_address(host: str) -> IPAddress | None:
    """``host`` as an IP address, in every spelling Chromium accepts, or None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:  # 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@final
class HostPolicy:
    """The denied hosts of one ``browser.denied_hosts`` setting."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self._networks: list[IPNetwork] = []
        self._names: set[str] = set()
        self._domains: list[str] = []
        for entry in self.entries:
            text = entry.strip().lower().rstrip(".")
            try:
                self._networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if text.startswith("."):
                self._domains.append(text)
            elif text:
                self._names.add(text)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def denies_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self._networks)

    def denies(self, host: str) -> bool:
        """Whether ``host`` (a name or an address, as in a URL) is denied, without resolving."""
        host = host.strip("[]").rstrip(".").lower()
        address = parse_address(host)
        if address is not None:
            return self.denies_address(address)
        if host in self._names:
            return True
        return any(host.endswith(domain) or host == domain[1:] for domain in self._domains)

    def check_host(self, url: str) -> None:
        """Refuse (``$.url``) a URL whose host is denied as written (no name resolution)."""
        host = url_host(url)
        if host is not None and self.denies(host):
            raise InvalidArgument.field("$.url", f"host {host!r} is denied (browser.denied_hosts)")

    async def check_url(self, url: str) -> None:
        """Refuse (``$.url``) a URL whose host is denied, by name or by what it resolves to."""
        self.check_host(url)
        host = url_host(url)
        if host is None or parse_address(host) is not None or not self._networks:
            return
        for address in await _resolve(host):
            if self.denies_address(address):
                raise InvalidArgument.field(
                    "$.url", f"host {host!r} resolves to a denied address ({address})"
                )


async def _resolve(host: str) -> list[IPAddress]:
    with trio.move_on_after(RESOLVE_TIMEOUT_S):
        try:
            infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return []  # the browser will fail to resolve it as well
        found = []
        for info in infos:
            address = parse_address(str(info[4][0]).split("%", 1)[0])
            if address is not None:
                found.append(address)
        return found
    return []
