"""The skills an agent is offered: installed ones, ones in the configured folders, and loaded
markdown skills; their system-prompt section and the ``read_skill`` tool.

Names are one namespace for agents. When two skills share a name, a loaded markdown skill
comes first (it was asked for by name), then an installed one, then one found in
``skills.paths`` (in the order of that list); ``skills.list`` shows the others with
``enabled: false``.

The prompt section and the ``read_skill`` tool come from one snapshot, taken at start and
again after every install, markdown load, reload or unload, on ``skills.list`` (which rereads
the folders, so a skill put there by hand appears) and, after a change of ``skills.paths``,
on the next model call. The section is text built once per snapshot, so a model call costs
no disk read. With no skill at all, neither the section nor the tool is offered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, final

import attrs
import trio

from ..kernel import SkillsConfig
from ..tools import AnyTool, Tool, ToolBox, ToolFailed
from ._catalog import FoundSkill, OutsideSkill, list_files, read_doc, read_inside, scan
from ._install import Installer
from ._markdown import MarkdownSkill, MarkdownSkills
from ._skill_md import SkillFormatError
from ._tool import READ_SKILL, ReadSkillParams, ReadSkillTool

__all__ = ["SkillsService"]

INTRO = (
    "Skills hold instructions for particular kinds of task. When a task matches a skill's "
    f"description, read the skill first with the {READ_SKILL} tool and follow it. "
    "Available skills:"
)


@attrs.frozen
class _Offered:
    name: str
    description: str
    found: FoundSkill | None = None
    markdown: MarkdownSkill | None = None


@final
class SkillsService:
    def __init__(
        self, data_dir: Path, tools: ToolBox, settings: Callable[[], SkillsConfig]
    ) -> None:
        self.directory = data_dir / "skills"
        self.markdown = MarkdownSkills(data_dir / "markdown_skills.json")
        self._installer = Installer(self.directory, settings)
        self._settings = settings
        self._tools = tools
        self._tool: AnyTool = Tool(
            READ_SKILL,
            "Read a skill's instructions by its name (listed in the system prompt), or with "
            "`file` one of the files of its folder that the instructions mention.",
            ReadSkillParams,
            ReadSkillTool(self.read),
        )
        self._found: list[FoundSkill] = []
        self._offered: dict[str, _Offered] = {}
        self._section: str | None = None
        self._stale = True
        #: One scan at a time, so an older scan never replaces a newer one.
        self._scanning = trio.Lock()

    async def start(self) -> None:
        """Clean up after an install a stopped process left unfinished, restore the loaded
        markdown skills and take the first snapshot."""
        await trio.to_thread.run_sync(self._installer.clean_leftovers)
        await self.markdown.restore()
        await self.refresh()

    def settings_changed(self, old: SkillsConfig, new: SkillsConfig) -> None:
        """``skills.paths`` changed: the next model call rescans. The tool set of that call is
        chosen before its prompt is built, so ``read_skill`` is offered now already; if the
        rescan finds nothing it is taken away again for the calls after."""
        if old.paths != new.paths:
            self._stale = True
            if new.paths:
                self._offer_tool(True)

    async def refresh(self) -> None:
        """Read the skill folders again."""
        async with self._scanning:
            self._stale = False
            paths = self._settings().paths
            self._found = await trio.to_thread.run_sync(self._scan, paths)
            self._changed()

    def _scan(self, paths: tuple[str, ...]) -> list[FoundSkill]:
        found = scan(self.directory, "installed")
        for path in paths:
            found += scan(Path(path).expanduser(), "folder")
        return found

    def _changed(self) -> None:
        offered: dict[str, _Offered] = {}
        for skill in self.markdown.all():
            offered.setdefault(skill.name, _Offered(skill.name, skill.description, markdown=skill))
        for found in self._found:
            offered.setdefault(found.name, _Offered(found.name, found.description, found=found))
        self._offered = offered
        self._section = None
        self._offer_tool(bool(offered))

    def _offer_tool(self, offer: bool) -> None:
        present = self._tools.get(READ_SKILL) is self._tool
        if offer and self._tools.get(READ_SKILL) is None:
            self._tools.add(self._tool)
        elif not offer and present:
            self._tools.remove(READ_SKILL)

    # skills.*

    async def list_skills(self) -> list[dict[str, Any]]:
        await self.refresh()
        return [
            {
                "name": found.name,
                "description": found.description,
                "source": found.source,
                "path": str(found.path),
                "enabled": (offer := self._offered.get(found.name)) is not None
                and offer.found is found,
            }
            for found in self._found
        ]

    async def install(self, name: str, source: str, *, replace: bool = False) -> Path:
        try:
            return await self._installer.install(name, source, replace=replace)
        finally:
            with trio.CancelScope(shield=True):
                await self.refresh()

    # markdown_skills.*

    async def load_markdown(self, path: str) -> MarkdownSkill:
        skill = await self.markdown.load(path)
        self._changed()
        return skill

    async def reload_markdown(self, name: str) -> MarkdownSkill:
        skill = await self.markdown.reload(name)
        self._changed()
        return skill

    async def unload_markdown(self, name: str) -> None:
        await self.markdown.unload(name)
        self._changed()

    # what agents see

    async def prompt_section(self) -> str | None:
        """The system-prompt text naming every skill, or ``None`` when there is none."""
        if self._stale:
            await self.refresh()
        if self._section is None:
            lines = [
                f"- {o.name}: {o.description}" for o in sorted(self._offered.values(), key=_by_name)
            ]
            self._section = "\n".join([INTRO, *lines]) if lines else ""
        return self._section or None

    async def read(self, name: str, file: str | None) -> str:
        offer = self._offered.get(name)
        if offer is None:
            names = ", ".join(sorted(self._offered)) or "none"
            raise ToolFailed(f"there is no skill named {name!r}; the skills are: {names}")
        folder = _folder_of(offer)
        if file is not None:
            if folder is None:
                raise ToolFailed(f"the skill {name!r} is a single file; read it without `file`")
            try:
                return await trio.to_thread.run_sync(read_inside, folder, file)
            except OutsideSkill as exc:
                raise ToolFailed(str(exc)) from None
        if offer.markdown is not None:
            body = offer.markdown.body
        else:
            assert folder is not None
            try:
                body = (await trio.to_thread.run_sync(read_doc, folder)).body
            except SkillFormatError as exc:
                raise ToolFailed(f"the skill {name!r} cannot be read now: {exc}") from None
        files = await trio.to_thread.run_sync(list_files, folder) if folder else []
        text = f"# Skill: {name}\n\n{body}"
        if files:
            text += f"\n\nFiles in this skill (read one with {READ_SKILL} and `file`):\n"
            text += "\n".join(f"- {f}" for f in files)
        return text


def _folder_of(offer: _Offered) -> Path | None:
    if offer.markdown is not None:
        return offer.markdown.folder
    return offer.found.path if offer.found is not None else None


def _by_name(offer: _Offered) -> str:
    return offer.name
