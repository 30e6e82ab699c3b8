"""Who a connection acts as (PROTOCOL §4): the owner, or a guest limited to method globs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import attrs

from ..kernel import TopicPattern

__all__ = ["OWNER", "GuestResolver", "Principal", "Role"]

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
