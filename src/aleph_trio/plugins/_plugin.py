"""One known plugin: what it is, what it wants, what it has registered while it runs."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from ..kernel import Event, Subscriber

if TYPE_CHECKING:
    from ._api import PluginApi

__all__ = ["Plugin", "Status", "about", "describe", "name_of"]

Status = Literal["enabled", "disabled", "failed"]


@attrs.define(eq=False)
class Plugin:
    """One known plugin and what it has registered while it runs."""

    path: Path
    plugin_id: str
    name: str
    version: str | None
    module: ModuleType | None  #: ``None`` when its import failed at start
    module_name: str | None
    enabled: bool  #: what the owner wants (remembered); ``status`` is what is so
    status: Status = "disabled"
    error: str | None = None
    methods: list[str] = attrs.Factory(list)
    tools: list[str] = attrs.Factory(list)
    listeners: list[tuple[Subscriber, trio.MemorySendChannel[Event]]] = attrs.Factory(list)
    #: Its tasks' service names (``plugin:<plugin_id>:<task>``), kept until the plugin stops.
    tasks: list[str] = attrs.Factory(list)
    dropped_events: int = 0
    api: PluginApi | None = None
    scope: trio.CancelScope | None = None
    nursery: trio.Nursery | None = None
    stopped: trio.Event = attrs.Factory(trio.Event)
    calls: set[trio.CancelScope] = attrs.Factory(set)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.plugin_id,
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "enabled": self.enabled,
            "status": self.status,
        }

    def status_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "plugin_id": self.plugin_id,
            "status": self.status,
            "methods": sorted(self.methods),
            "tools": sorted(self.tools),
            "services": sorted(self.tasks),
            "dropped_events": self.dropped_events,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def about(plugin: Plugin) -> dict[str, Any]:
    return {"plugin_id": plugin.plugin_id, "name": plugin.name}


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def name_of(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
