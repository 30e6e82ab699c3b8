"""The proxy settings of the environment as httpx mounts.

httpx sets up proxies from ``HTTP(S)_PROXY`` only when it builds its own transport; pass
:func:`env_proxy_mounts` as ``mounts=`` to keep that behaviour next to a transport of our own.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.request

import httpx

__all__ = ["env_proxy_mounts"]


def env_proxy_mounts(
    *, verify: ssl.SSLContext | bool = True
) -> dict[str, httpx.AsyncBaseTransport | None]:
    """The proxy mounts httpx builds from ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and
    ``NO_PROXY`` (and their lowercase forms) when it makes its own transport.

    httpx stops reading those variables once it is given a ``transport``, so a client keeps
    them with ``httpx.AsyncClient(transport=LeanTransport(...), mounts=env_proxy_mounts())``
    (what ``open_http_client`` builds): proxied URLs go through httpx's proxy transports, the
    rest (``None`` mounts, the ``NO_PROXY`` hosts among them) through the given transport."""
    found = urllib.request.getproxies()
    targets: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        proxy = found.get(scheme)
        if proxy:
            targets[f"{scheme}://"] = proxy if "://" in proxy else f"http://{proxy}"
    for host in (h.strip() for h in found.get("no", "").split(",")):
        if host == "*":
            return {}
        if not host:
            continue
        if "://" in host:
            targets[host] = None
        elif _is_ip(host, ipaddress.IPv4Address):
            targets[f"all://{host}"] = None
        elif _is_ip(host, ipaddress.IPv6Address):
            targets[f"all://[{host}]"] = None
        elif host.lower() == "localhost":
            targets[f"all://{host}"] = None
        else:  # a domain: itself and its subdomains
            targets[f"all://*{host}"] = None
    return {
        pattern: None if url is None else httpx.AsyncHTTPTransport(proxy=url, verify=verify)
        for pattern, url in targets.items()
    }


def _is_ip(host: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(host.split("/")[0])
    except ValueError:
        return False
    return True
