"""What the gateway answers over plain HTTP: ``/health``, ``/ready``, ``/metrics``.

The routes are handed what they read as callables by the composition root, so this package
knows nothing of the services behind them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import final

from ._instruments import Instruments
from ._response import METRICS_TYPE, Response
from ._ui import ControlUi

__all__ = ["WS_PATHS", "Routes"]

#: Where the WebSocket is served (PROTOCOL §1); the listener upgrades only these paths.
WS_PATHS = frozenset({"/", "/ws"})


@final
class Routes:
    """Routes one request to its answer and counts it."""

    def __init__(
        self,
        *,
        health: Callable[[], dict[str, object]],
        ready: Callable[[], Awaitable[dict[str, bool]]],
        metrics: Callable[[], str],
        check_token: Callable[[str], bool],
        require_auth: Callable[[], bool],
        instruments: Instruments,
    ) -> None:
        self._health = health
        self._ready = ready
        self._metrics = metrics
        self._check_token = check_token
        self._require_auth = require_auth
        self._instruments = instruments
        self._ui = ControlUi()

    async def answer(
        self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> Response:
        """``headers``: names lower-cased."""
        path = target.split("?", 1)[0]
        if path == "/ui" or path.startswith("/ui/"):
            response = await self._ui.answer(method, path)
            known = "/ui"
        else:
            response = await self._route(method, path, headers)
            known = path if path in _KNOWN_PATHS else "other"
        self._instruments.http_requests.inc((known, str(response.status)))
        return response

    async def _route(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> Response:
        if path in WS_PATHS:
            return Response.text(
                426,
                "Upgrade required: this endpoint speaks WebSocket (JSON-RPC 2.0)\n",
                upgrade="websocket",
                connection="Upgrade",
            )
        if path not in _KNOWN_PATHS:
            return Response.text(404, "Not found\n")
        if method not in ("GET", "HEAD"):
            return Response.text(405, "Method not allowed\n", allow="GET, HEAD")
        if path == "/health":
            return Response.json(200, self._health())
        if path == "/ready":
            checks = await self._ready()
            ready = all(checks.values())
            return Response.json(200 if ready else 503, {"ready": ready, "checks": checks})
        if self._require_auth() and not self._authorized(headers):
            return Response.text(
                401,
                "Unauthorized: send the owner token as 'Authorization: Bearer <token>'\n",
                www_authenticate='Bearer realm="aleph_trio"',
            )
        return Response.text(200, self._metrics(), content_type=METRICS_TYPE)

    def _authorized(self, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    return self._check_token(token.strip())
        return False


_KNOWN_PATHS = frozenset({"/health", "/ready", "/metrics"})
