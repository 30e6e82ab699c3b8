"""The ``identity`` wizard: name → persona → confirm; creates an identity through the identity
service (as ``identity.set`` with a new id does) and makes it the active one."""

from __future__ import annotations

import re
from typing import Annotated, Final, final

import attrs
from msgspec import Meta

from ..identities import IdentityService
from ..kernel import InvalidArgument
from ._service import Flow
from ._session import WizardUI
from ._steps import Step, confirm, note, text

__all__ = ["IdentityFlow", "IdentityInitial"]

#: Identity ids are made from the name: letters, digits, ``_ . -``, at most this long.
ID_LENGTH: Final = 48


@attrs.frozen
class IdentityInitial:
    """Defaults the client may pass as ``initial_data``."""

    name: Annotated[str, Meta(max_length=200)] | None = None
    persona: Annotated[str, Meta(max_length=20_000)] | None = None


def slug(name: str) -> str:
    """An identity id for ``name``: ``"Ship's Log"`` → ``ship-s-log``."""
    text = re.sub(r"[^a-z0-9_.]+", "-", name.lower()).strip("-.")
    return text[:ID_LENGTH].strip("-.") or "identity"


async def _name(value: str) -> str:
    if len(value) > 200:
        raise InvalidArgument.field("$.value", "at most 200 characters")
    return value


@final
class IdentityFlow:
    def __init__(self, identities: IdentityService) -> None:
        self._identities = identities

    def flow(self) -> Flow:
        return Flow(
            "identity",
            "Create an identity (a name and a persona) and make it the active one.",
            self.run,
            IdentityInitial,
            owner_only=True,
        )

    async def run(self, ui: WizardUI, initial: IdentityInitial) -> Step:
        name: str = await ui.ask(
            text("Name", "What is the agent called?", default=initial.name, check=_name)
        )
        persona: str = await ui.ask(
            text(
                "Persona",
                "How should it speak and behave? This goes into every run's system prompt.",
                default=initial.persona,
            )
        )
        if not await ui.ask(
            confirm(f"Create identity {name!r}?", f"It becomes the active identity.\n\n{persona}")
        ):
            return note("No identity was created", "The active identity is unchanged.")
        taken = {identity.id for identity in await self._identities.list_all()}
        base = slug(name)
        identity_id = base
        n = 2
        while identity_id in taken:
            identity_id = f"{base}-{n}"
            n += 1
        await self._identities.set({"id": identity_id, "name": name, "persona": persona})
        return note("Identity created", f"{name!r} ({identity_id}) is now the active identity.")
