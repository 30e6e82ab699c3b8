"""What a method handler may see: the gateway's services and the calling connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from .._gateway import Gateway
    from ..auth import Principal
    from ..kernel import Event, Subscriber

__all__ = ["CallContext", "Peer"]


class Peer(Protocol):
    """The calling connection, as far as handlers are concerned."""

    @property
    def connection_id(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def principal(self) -> Principal | None: ...

    @property
    def client_id(self) -> str | None: ...

    @property
    def subscriber(self) -> Subscriber: ...

    def authenticate(self, principal: Principal, client_id: str | None) -> None: ...

    @property
    def auth_failures(self) -> int:
        """Failed ``connect``s on this connection so far."""
        ...

    def note_auth_failure(self) -> int:
        """Count a failed ``connect``; returns the count so far (the peer closes at the limit)."""
        ...

    async def send_event(self, event: Event) -> None:
        """Queue an event frame, waiting for room (replay)."""
        ...


@attrs.frozen
class CallContext:
    gateway: Gateway
    peer: Peer
