"""Where the terminal client finds the gateway and its owner token.

The defaults are the server's own: the platform's user data dir (the server's
``default_data_dir()``) and the default port of ``[server]``. They are computed here, with the
same logic, rather than imported, so the client never loads server code; a test keeps the two
equal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["DEFAULT_PORT", "DEFAULT_URL", "TOKEN_ENV", "Token", "default_data_dir", "find_token"]

DEFAULT_PORT = 18790
DEFAULT_URL = f"ws://127.0.0.1:{DEFAULT_PORT}/"
TOKEN_ENV = "ALEPH_TRIO_TOKEN"
TOKEN_FILE = "token"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("aleph_trio", appauthor=False))


@dataclass(frozen=True)
class Token:
    """The token to present (``None``: connect without one) and where it came from."""

    value: str | None
    source: str


def find_token(
    explicit: str | None, data_dir: Path | None, environ: Mapping[str, str] = os.environ
) -> Token:
    """``--token``, else ``$ALEPH_TRIO_TOKEN``, else ``<data dir>/token``, else none."""
    if explicit:
        return Token(explicit, "--token")
    if environ.get(TOKEN_ENV):
        return Token(environ[TOKEN_ENV], f"${TOKEN_ENV}")
    path = (data_dir or default_data_dir()) / TOKEN_FILE
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError:
        value = ""
    if value:
        return Token(value, str(path))
    return Token(None, f"no --token, no ${TOKEN_ENV} and no token in {path}")
