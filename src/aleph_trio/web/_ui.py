"""The Control UI's files under ``/ui/``: a page, a script and a style sheet from the package,
read once, served with a Content-Security-Policy that lets them talk only to this gateway."""

from __future__ import annotations

from importlib import resources
from typing import Final, final

import trio

from ._response import COMMON_HEADERS, Response

__all__ = ["ControlUi"]

#: Only this gateway's own files and WebSocket; no inline script, no framing, no forms posted.
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
FILES: Final = {
    "/ui/": ("index.html", "text/html; charset=utf-8"),
    "/ui/index.html": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/app.css": ("app.css", "text/css; charset=utf-8"),
}


@final
class ControlUi:
    def __init__(self) -> None:
        self._files: dict[str, bytes] | None = None

    async def answer(self, method: str, path: str) -> Response:
        if path == "/ui":
            return Response(308, (("location", "/ui/"), *COMMON_HEADERS), b"")
        if method not in ("GET", "HEAD"):
            return Response.text(405, "Method not allowed\n", allow="GET, HEAD")
        found = FILES.get(path)
        if found is None:
            return Response.text(404, "Not found\n")
        if self._files is None:
            self._files = await trio.to_thread.run_sync(_read_files)
        name, content_type = found
        headers = (
            ("content-type", content_type),
            ("content-security-policy", CSP),
            ("referrer-policy", "no-referrer"),
            *COMMON_HEADERS,
        )
        return Response(200, headers, self._files[name])


def _read_files() -> dict[str, bytes]:
    folder = resources.files("aleph_trio.web") / "ui"
    return {name: (folder / name).read_bytes() for name, _ in set(FILES.values())}
