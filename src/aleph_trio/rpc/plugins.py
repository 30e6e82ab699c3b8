"""``plugins.list``, ``plugins.load``, ``plugins.unload``, ``plugins.enable``, ``plugins.disable``,
``plugins.status`` (PROTOCOL §15). All owner-only: a plugin is code the gateway runs."""

from __future__ import annotations

from typing import Annotated, Any

import attrs
from msgspec import Meta

from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

PluginId = Annotated[str, Meta(min_length=1, max_length=64)]


@attrs.frozen
class LoadParams:
    path: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=4096,
            description="a .py file or a folder with __init__.py, on the gateway's machine",
        ),
    ]


@attrs.frozen
class PluginRef:
    plugin_id: PluginId


@ns.method(
    "plugins.list",
    NoParams,
    description="Every known plugin: id, name, version, path, enabled, status.",
    owner_only=True,
)
async def list_(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {"plugins": [plugin.to_json() for plugin in ctx.gateway.plugins.plugins()]}


@ns.method(
    "plugins.load",
    LoadParams,
    description="Import a plugin afresh and run its setup (the same path again reloads it).",
    owner_only=True,
)
async def load(ctx: CallContext, params: LoadParams) -> dict[str, Any]:
    plugin = await ctx.gateway.plugins.load(params.path)
    return {"loaded": True, "plugin_id": plugin.plugin_id}


@ns.method(
    "plugins.unload",
    PluginRef,
    description="Stop a plugin, withdraw its methods, tools and listeners, and forget it.",
    owner_only=True,
)
async def unload(ctx: CallContext, params: PluginRef) -> dict[str, Any]:
    await ctx.gateway.plugins.unload(params.plugin_id)
    return {"unloaded": True}


@ns.method(
    "plugins.enable",
    PluginRef,
    description="Run a disabled or failed plugin's setup again; remembered across restarts.",
    owner_only=True,
)
async def enable(ctx: CallContext, params: PluginRef) -> dict[str, Any]:
    await ctx.gateway.plugins.enable(params.plugin_id)
    return {"enabled": True}


@ns.method(
    "plugins.disable",
    PluginRef,
    description="Stop a plugin but keep it known; remembered across restarts.",
    owner_only=True,
)
async def disable(ctx: CallContext, params: PluginRef) -> dict[str, Any]:
    await ctx.gateway.plugins.disable(params.plugin_id)
    return {"disabled": True}


@ns.method(
    "plugins.status",
    PluginRef,
    description="A plugin's status, its methods and tools, and its error when it failed.",
    owner_only=True,
)
async def status(ctx: CallContext, params: PluginRef) -> dict[str, Any]:
    return ctx.gateway.plugins.get(params.plugin_id).status_json()
