"""Markdown skills (PROTOCOL §15): a ``.md`` file with front matter, or a folder holding
``SKILL.md``, loaded where it lies.

Loading reads the text once; agents get that text until ``markdown_skills.reload`` reads it
again. The list of loaded skills (name, path, when) is kept in ``<data dir>/markdown_skills.json``
(written whole, atomically) and loaded again at start; one that can no longer be read then is
left out with a warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import final

import attrs
import trio

from ..kernel import (
    Conflict,
    InvalidArgument,
    NotFound,
    OperationFailed,
    component_logger,
    now_ts,
    write_private,
)
from ._catalog import read_doc
from ._skill_md import SkillFormatError
from ._sources import SKILL_FILE

__all__ = ["MarkdownSkill", "MarkdownSkills"]

log = component_logger("gateway")


@attrs.frozen
class MarkdownSkill:
    name: str
    description: str
    #: The ``.md`` file, or the folder holding ``SKILL.md``.
    path: Path
    body: str
    loaded_at: str
    #: The skill's folder, whose other files an agent may read; ``None`` for a single file.
    folder: Path | None

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "description": self.description,
            "path": str(self.path),
            "loaded_at": self.loaded_at,
        }


def _read(path: Path) -> MarkdownSkill:
    """Blocking: the skill at ``path`` as it is now."""
    if path.is_dir():
        if not (path / SKILL_FILE).is_file():
            raise SkillFormatError(f"the folder {str(path)!r} has no {SKILL_FILE}")
    elif not path.exists():
        raise SkillFormatError(f"there is nothing at {str(path)!r}")
    elif path.suffix.lower() != ".md":
        raise SkillFormatError(f"{str(path)!r} is neither a .md file nor a folder")
    doc = read_doc(path)
    folder = path if path.is_dir() else None
    return MarkdownSkill(doc.name, doc.description, path, doc.body, now_ts(), folder)


@final
class MarkdownSkills:
    def __init__(self, state_file: Path) -> None:
        self._state_file = state_file
        self._skills: dict[str, MarkdownSkill] = {}
        #: Changes and the file written after them, one at a time.
        self._lock = trio.Lock()

    def all(self) -> list[MarkdownSkill]:
        return sorted(self._skills.values(), key=lambda skill: skill.name)

    def get(self, name: str) -> MarkdownSkill | None:
        return self._skills.get(name)

    async def restore(self) -> None:
        """Load again the skills loaded when the gateway last stopped."""
        entries = await trio.to_thread.run_sync(self._read_state)
        for entry in entries:
            try:
                skill = await trio.to_thread.run_sync(_read, Path(entry["path"]))
            except (SkillFormatError, KeyError, TypeError) as exc:
                log.warning("markdown skills: %r left out: %s", entry, exc)
                continue
            if skill.name in self._skills:
                log.warning("markdown skills: %s left out: the name %r is taken", entry, skill.name)
                continue
            self._skills[skill.name] = skill

    async def load(self, path_text: str) -> MarkdownSkill:
        path = await trio.to_thread.run_sync(lambda: Path(path_text).expanduser())
        if not path.is_absolute():
            raise InvalidArgument.field("$.path", "give an absolute path")
        try:
            skill = await trio.to_thread.run_sync(_read, path)
        except SkillFormatError as exc:
            raise InvalidArgument.field("$.path", f"not a markdown skill: {exc}") from None
        async with self._lock:
            held = self._skills.get(skill.name)
            if held is not None and held.path != path:
                raise Conflict.field(
                    "$.path",
                    f"a markdown skill named {skill.name!r} is loaded from {str(held.path)!r}; "
                    "unload it first",
                )
            await self._commit({**self._skills, skill.name: skill})
        return skill

    async def reload(self, name: str) -> MarkdownSkill:
        async with self._lock:
            held = self._skills.get(name)
            if held is None:
                raise NotFound("markdown_skill", name)
            try:
                skill = await trio.to_thread.run_sync(_read, held.path)
            except SkillFormatError as exc:
                raise InvalidArgument.field(
                    "$.name", f"{name!r} could not be read again ({exc}); it stays as it was"
                ) from None
            if skill.name != name:
                raise InvalidArgument.field(
                    "$.name",
                    f"{str(held.path)!r} now names the skill {skill.name!r}; unload {name!r} "
                    "and load it again",
                )
            await self._commit({**self._skills, name: skill})
        return skill

    async def unload(self, name: str) -> None:
        async with self._lock:
            if name not in self._skills:
                raise NotFound("markdown_skill", name)
            await self._commit({k: v for k, v in self._skills.items() if k != name})

    def _read_state(self) -> list[dict[str, str]]:
        try:
            data = json.loads(self._state_file.read_text("utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning(
                "markdown skills: %s is unreadable (%s); none restored", self._state_file, exc
            )
            return []
        skills = data.get("skills") if isinstance(data, dict) else None
        return [entry for entry in skills or [] if isinstance(entry, dict)]

    async def _commit(self, skills: dict[str, MarkdownSkill]) -> None:
        """Write ``skills`` to the file, then make them the loaded ones."""
        entries = [
            {"name": s.name, "path": str(s.path), "loaded_at": s.loaded_at}
            for s in sorted(skills.values(), key=lambda skill: skill.name)
        ]
        text = json.dumps({"skills": entries}, indent=1)
        with trio.CancelScope(shield=True):  # memory and file must not part ways
            try:
                await trio.to_thread.run_sync(_write_atomically, self._state_file, text)
            except OSError as exc:
                raise OperationFailed(f"{self._state_file} could not be written: {exc}") from None
            self._skills = skills


def _write_atomically(path: Path, text: str) -> None:
    write_private(path, text.encode("utf-8"))  # 0600 like every file in the data dir
