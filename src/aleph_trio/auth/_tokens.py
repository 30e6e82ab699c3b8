"""The owner token (PROTOCOL §4): where it is kept, and checking a presented token."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import final

import attrs

from ..kernel import Config, resolve_secret
from ._principals import OWNER, GuestResolver, Principal

__all__ = ["TOKEN_ENV", "Authenticator", "load_or_create_token", "owner_token"]

#: The environment variable that may hold the owner token.
TOKEN_ENV = "ALEPH_TRIO_TOKEN"


def load_or_create_token(data_dir: Path) -> tuple[str, Path]:
    """Read ``<data_dir>/token``, creating it (mode 0600) with a fresh random token if missing."""
    path = data_dir / "token"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        token = path.read_text("utf-8").strip()
        if token:
            return token, path
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    return token, path


def owner_token(config: Config, data_dir: Path) -> tuple[str, str]:
    """The owner token and where it comes from: ``auth.token`` in the config, else
    ``$ALEPH_TRIO_TOKEN``, else ``<data_dir>/token`` (created when missing)."""
    token = resolve_secret(config.auth.token)
    if token:
        return token, "the config file (auth.token)"
    env = os.environ.get(TOKEN_ENV)
    if env:
        return env, f"the environment variable {TOKEN_ENV}"
    token, path = load_or_create_token(data_dir)
    return token, str(path)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@final
@attrs.define(eq=False)
class Authenticator:
    """Checks presented tokens: the owner's first (constant time), then each guest resolver."""

    _owner_digest: bytes
    guest_resolvers: list[GuestResolver] = attrs.Factory(list)

    @classmethod
    def for_token(cls, owner_token: str) -> Authenticator:
        return cls(_digest(owner_token))

    def set_owner_token(self, owner_token: str) -> None:
        self._owner_digest = _digest(owner_token)

    def authenticate(self, token: str) -> Principal | None:
        if hmac.compare_digest(_digest(token), self._owner_digest):
            return OWNER
        for resolve in self.guest_resolvers:
            principal = resolve(token)
            if principal is not None:
                return principal
        return None
