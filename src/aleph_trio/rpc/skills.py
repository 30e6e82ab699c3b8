"""``skills.list``, ``skills.install`` and ``markdown_skills.load|reload|list|unload``
(PROTOCOL §15)."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ..skills import NAME_PATTERN
from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

SkillName = Annotated[
    str,
    Meta(
        pattern=NAME_PATTERN,
        description="1-64 letters, digits and _ . - (starting with a letter or digit)",
    ),
]
LoadedName = Annotated[str, Meta(min_length=1, max_length=64)]
Path = Annotated[str, Meta(min_length=1, max_length=4096)]


@attrs.frozen
class InstallParams:
    name: SkillName
    source: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=4096,
            description="an absolute path to a folder or a .zip/.tar.gz/.tgz archive, "
            "or a git URL (https://, ssh://, git://, file://, user@host:path)",
        ),
    ]
    replace: Annotated[
        bool, Meta(description="replace an installed skill of that name (else: a conflict)")
    ] = False


@attrs.frozen
class LoadParams:
    path: Annotated[Path, Meta(description="an absolute path to a .md file or a skill folder")]


@attrs.frozen
class NameParams:
    name: LoadedName


@ns.method(
    "skills.list",
    NoParams,
    description="The installed skills and those in the configured folders.",
    owner_only=False,
)
async def list_(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {"skills": await ctx.gateway.skills.list_skills()}


@ns.method(
    "skills.install",
    InstallParams,
    description="Install a skill from a folder, an archive or a git URL.",
    owner_only=True,
)
async def install(ctx: CallContext, params: InstallParams) -> dict[str, Any]:
    path = await ctx.gateway.skills.install(params.name, params.source, replace=params.replace)
    return {"installed": True, "name": params.name, "path": str(path)}


@ns.method(
    "markdown_skills.load",
    LoadParams,
    description="Load a markdown skill (a .md file or a folder with SKILL.md) where it lies.",
    owner_only=True,
)
async def load(ctx: CallContext, params: LoadParams) -> dict[str, Any]:
    skill = await ctx.gateway.skills.load_markdown(params.path)
    return {"loaded": True, "name": skill.name}


@ns.method(
    "markdown_skills.reload",
    NameParams,
    description="Read a loaded markdown skill again from its file.",
    owner_only=False,
)
async def reload(ctx: CallContext, params: NameParams) -> dict[str, Any]:
    await ctx.gateway.skills.reload_markdown(params.name)
    return {"reloaded": True}


@ns.method(
    "markdown_skills.list",
    NoParams,
    description="The loaded markdown skills.",
    owner_only=False,
)
async def list_markdown(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {"skills": [skill.to_json() for skill in ctx.gateway.skills.markdown.all()]}


@ns.method(
    "markdown_skills.unload",
    NameParams,
    description="Stop offering a loaded markdown skill.",
    owner_only=True,
)
async def unload(ctx: CallContext, params: NameParams) -> dict[str, Any]:
    await ctx.gateway.skills.unload_markdown(params.name)
    return {"unloaded": True}
