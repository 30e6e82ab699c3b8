"""The ``read_skill`` tool: a skill's instructions, or one file of its folder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import attrs
from msgspec import Meta

from ..tools import ToolContext

__all__ = ["READ_SKILL", "ReadSkillParams", "ReadSkillTool"]

READ_SKILL = "read_skill"


@attrs.frozen
class ReadSkillParams:
    name: Annotated[str, Meta(min_length=1, max_length=64, description="the skill's name")]
    file: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=1024,
                description="a file inside the skill's folder, relative to it",
            ),
        ]
        | None
    ) = None


@attrs.frozen
class ReadSkillTool:
    read: Callable[[str, str | None], Awaitable[str]]

    async def __call__(self, ctx: ToolContext, params: ReadSkillParams) -> str:
        return await self.read(params.name, params.file)
