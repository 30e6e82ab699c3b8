"""The active identity: reading, changing, switching, resetting, and its system-prompt text.

The shipped default (:data:`DEFAULT_IDENTITY`) lives in code and is stored only once it has been
changed; ``identity.clear`` forgets those changes and makes it active again. Every change
publishes ``identity.changed`` with the identity now active.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

import attrs
import trio

from ..kernel import EventBus, InvalidArgument
from ..store import Identity, Store

__all__ = ["DEFAULT_IDENTITY", "FIELDS", "IdentityService", "persona_prompt"]

DEFAULT_IDENTITY = Identity(
    id="default",
    name="Aleph",
    description="An AI agent working through the aleph_trio gateway.",
    persona="Be precise, candid and brief, and say so when you are unsure.",
)

#: The fields ``identity.set`` accepts, in the order it reports them.
FIELDS = ("id", "name", "description", "persona", "language", "tone")
#: Fields that may be emptied: ``""`` removes them.
OPTIONAL = frozenset({"language", "tone"})


def persona_prompt(identity: Identity) -> str:
    """The system-prompt section an identity contributes."""
    lines = [f"You are {identity.name}.", identity.description, identity.persona]
    if identity.language:
        lines.append(f"Answer in {identity.language}.")
    if identity.tone:
        lines.append(f"Tone: {identity.tone}.")
    return "\n".join(line for line in lines if line.strip())


@final
class IdentityService:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus
        #: Changes read, merge and write; one at a time so none is lost.
        self._lock = trio.Lock()
        #: The active identity once read. Only this service changes identities, and one gateway
        #: holds a data dir, so every model call's prompt is built without a store read.
        self._active: Identity | None = None

    async def active(self) -> Identity:
        if self._active is None:
            identity_id = await self._store.active_identity_id() or DEFAULT_IDENTITY.id
            self._active = await self._load(identity_id) or DEFAULT_IDENTITY
        return self._active

    async def list_all(self) -> list[Identity]:
        """The shipped default (as changed, if it was) and every other stored identity."""
        stored = await self._store.list_identities()
        if not any(identity.id == DEFAULT_IDENTITY.id for identity in stored):
            stored.insert(0, DEFAULT_IDENTITY)
        return sorted(stored, key=lambda identity: identity.id != DEFAULT_IDENTITY.id)

    async def set(self, fields: Mapping[str, str | None]) -> list[str]:
        """Change the active identity's fields; returns the names of the fields given.

        ``None`` means "not given". With ``id``, that identity becomes active first (a new id
        creates it, and then ``name`` and ``persona`` are required). ``""`` removes ``language``
        or ``tone``; the other fields may not be empty.
        """
        given = {name: value for name, value in fields.items() if value is not None}
        unknown = sorted(set(given) - set(FIELDS))
        if unknown:
            raise InvalidArgument.field(f"$.fields.{unknown[0]}", "unknown field")
        if not given:
            raise InvalidArgument.field("$.fields", "give at least one field to change")
        for name, value in given.items():
            if name not in OPTIONAL and not value.strip():
                raise InvalidArgument.field(f"$.fields.{name}", "may not be empty")
        async with self._lock:
            current = await self.active()
            target = given.get("id", current.id)
            base = current if target == current.id else await self._load(target)
            if base is None:
                missing = [name for name in ("name", "persona") if name not in given]
                if missing:
                    raise InvalidArgument.field(
                        f"$.fields.{missing[0]}", f"required to create identity {target!r}"
                    )
                base = Identity(id=target, name="", description="", persona="")
            merged = {**attrs.asdict(base), **given}
            updated = Identity(
                id=target,
                name=merged["name"],
                description=merged["description"],
                persona=merged["persona"],
                language=merged["language"] or None,
                tone=merged["tone"] or None,
            )
            self._active = None  # cut short after the write, the next read asks the store
            await self._store.save_identity(updated, activate=True)
            self._active = updated
        self._bus.publish("identity.changed", {"identity": updated.to_json()})
        return [name for name in FIELDS if name in given]

    async def clear(self) -> None:
        """Make the shipped default active again, as shipped; other identities are kept."""
        async with self._lock:
            self._active = None
            await self._store.reset_identity(DEFAULT_IDENTITY.id)
            self._active = DEFAULT_IDENTITY
        self._bus.publish("identity.changed", {"identity": DEFAULT_IDENTITY.to_json()})

    async def prompt_section(self) -> str:
        """The active identity as system-prompt text."""
        return persona_prompt(await self.active())

    async def _load(self, identity_id: str) -> Identity | None:
        stored = await self._store.get_identity(identity_id)
        if stored is None and identity_id == DEFAULT_IDENTITY.id:
            return DEFAULT_IDENTITY
        return stored
