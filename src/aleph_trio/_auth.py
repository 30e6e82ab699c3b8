"""Authentication (PROTOCOL §4): the owner token, principals, guest seam, failure rate limit."""

from __future__ import annotations

import collections
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Literal, final

import attrs

from ._topics import TopicPattern

__all__ = [
    "TOKEN_ENV",
    "Authenticator",
    "FailureLimiter",
    "Principal",
    "load_or_create_token",
]

TOKEN_ENV = "ALEPH_TRIO_TOKEN"
Role = Literal["owner", "guest"]


@attrs.frozen
class Principal:
    """Who a connection acts as. Owners may call everything; guests what ``permissions`` allow."""

    role: Role
    principal_id: str
    permissions: tuple[str, ...] = ("*",)
    invitation_id: str | None = None

    def may_call(self, method: str, *, owner_only: bool) -> bool:
        if self.role == "owner":
            return True
        if owner_only:
            return False
        return any(_method_pattern(p).matches(method) for p in self.permissions)


OWNER = Principal("owner", "owner")


def _method_pattern(text: str) -> TopicPattern:
    pattern = _PATTERNS.get(text)
    if pattern is None:
        pattern = _PATTERNS[text] = TopicPattern(text)
    return pattern


_PATTERNS: dict[str, TopicPattern] = {}

#: A guest-token resolver: given a presented token, the guest it belongs to, or ``None``.
GuestResolver = Callable[[str], Principal | None]


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


@final
@attrs.define(eq=False)
class FailureLimiter:
    """At most ``limit`` failed ``connect``s per peer address within ``window_s`` seconds."""

    limit: int = 20
    window_s: float = 60.0
    _failures: dict[str, collections.deque[float]] = attrs.Factory(dict)

    def retry_after(self, address: str, now: float) -> float:
        """Seconds until ``address`` may try again (0 when it may try now)."""
        window = self._failures.get(address)
        if window is None:
            return 0.0
        while window and window[0] <= now - self.window_s:
            window.popleft()
        if not window:
            del self._failures[address]
            return 0.0
        if len(window) < self.limit:
            return 0.0
        return window[0] + self.window_s - now

    def record_failure(self, address: str, now: float) -> None:
        window = self._failures.setdefault(address, collections.deque())
        window.append(now)
        while len(window) > self.limit:
            window.popleft()
        if len(self._failures) > 10_000:  # keep memory bounded under an address-spraying attack
            self._prune(now)

    def _prune(self, now: float) -> None:
        for address in list(self._failures):
            self.retry_after(address, now)
