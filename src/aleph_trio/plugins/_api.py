"""What a plugin's ``setup(api)`` is handed, and the shapes it registers.

The plugin API names its own method spec (:class:`MethodSpec`) instead of ``rpc.Method``: this
package sits below ``rpc/``, and the composition root adapts each spec into a registry method
(through :class:`MethodTable`), so a plugin method is decoded, role-checked and answered by the
same dispatcher as a built-in one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, final

import attrs

from ..kernel import Config, TopicPattern
from ..tools import ToolContext

if TYPE_CHECKING:
    from ._plugin import Plugin
    from ._registrar import Registrar

__all__ = ["TASK_NAME", "MethodSpec", "MethodTable", "PluginApi", "PluginEvent"]

P = TypeVar("P")
F = TypeVar("F", bound=Callable[..., Any])

_METHOD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}(\.[A-Za-z][A-Za-z0-9_]{0,63}){0,3}$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@attrs.frozen
class MethodSpec:
    """An RPC method a plugin offers, before the composition root makes it a registry method."""

    name: str  #: full name, ``<plugin_id>.<name>``
    description: str
    params: type | None  #: ``None``: any object is accepted and passed on as a dict
    owner_only: bool
    call: Callable[[Any], Awaitable[object]]  #: decoded params → JSON-ready result


class MethodTable(Protocol):
    """Where plugin methods go: the RPC registry, as the composition root adapts it."""

    def add(self, spec: MethodSpec) -> None:
        """Register ``spec``; ``ValueError`` when its name is taken."""
        ...

    def remove(self, name: str) -> None: ...

    def namespace_taken(self, namespace: str) -> bool:
        """Whether methods named ``<namespace>.…`` exist already."""
        ...


@attrs.frozen
class PluginEvent:
    """One bus event as a listener receives it."""

    topic: str
    seq: int
    ts: str
    data: dict[str, Any]
    run_id: str | None


@final
class PluginApi:
    """Handed to ``setup(api)``; valid until the plugin is disabled, unloaded or failed.

    Everything registered through it is withdrawn when the plugin stops, and everything it
    starts runs in the plugin's own cancel scope.
    """

    def __init__(
        self,
        registrar: Registrar,
        plugin: Plugin,
        log: logging.Logger,
        config: Callable[[], Config],
    ) -> None:
        self._registrar = registrar
        self._plugin = plugin
        self._config = config
        #: The plugin's logger: component ``plugins.<plugin_id>`` (``logs.set_level`` applies).
        self.log = log

    @property
    def plugin_id(self) -> str:
        return self._plugin.plugin_id

    def _check(self) -> None:
        if self._plugin.api is not self:
            raise RuntimeError(f"plugin {self.plugin_id}: this api belongs to a stopped run")

    def config(self) -> Config:
        """The gateway's configuration in force now (read-only)."""
        return self._config()

    def method(
        self,
        name: str,
        params: type[P] | None,
        *,
        description: str,
        owner_only: bool,
    ) -> Callable[[Callable[[P], Awaitable[object]]], Callable[[P], Awaitable[object]]]:
        """Decorate ``async def handler(params)`` to answer ``<plugin_id>.<name>``.

        ``params`` is an attrs class (decoded strictly, listed as JSON Schema by
        ``commands.list``) or ``None`` for a plain dict. Raise a ``kernel`` domain error
        (``InvalidArgument``, ``NotFound`` …) for a clear JSON-RPC error; any other exception
        marks the plugin failed.
        """
        if not _METHOD_NAME.fullmatch(name):
            raise ValueError(f"method name {name!r} is not letters, digits, _ and dots")
        if params is not None and not attrs.has(params):
            raise TypeError(f"params of {name!r} must be an attrs class or None")

        def register(fn: Callable[[P], Awaitable[object]]) -> Callable[[P], Awaitable[object]]:
            self._check()
            self._registrar.add_method(
                self._plugin, name, fn, params, description=description, owner_only=owner_only
            )
            return fn

        return register

    def tool(
        self, name: str, params: type[P], *, description: str
    ) -> Callable[
        [Callable[[ToolContext, P], Awaitable[str]]], Callable[[ToolContext, P], Awaitable[str]]
    ]:
        """Decorate ``async def run(ctx, params) -> str`` as an agent tool called ``name``.

        Raise ``ToolFailed`` for an error result the model sees; any other exception marks the
        plugin failed (the model is told the tool failed).
        """
        if not _TOOL_NAME.fullmatch(name):
            raise ValueError(f"tool name {name!r} must be 1 to 64 letters, digits, _ or -")
        if not attrs.has(params):
            raise TypeError(f"params of tool {name!r} must be an attrs class")

        def register(
            fn: Callable[[ToolContext, P], Awaitable[str]],
        ) -> Callable[[ToolContext, P], Awaitable[str]]:
            self._check()
            self._registrar.add_tool(self._plugin, name, fn, params, description=description)
            return fn

        return register

    def on(self, *patterns: str) -> Callable[[F], F]:
        """Decorate ``async def listener(event: PluginEvent)`` to receive events of ``patterns``.

        Events reach it through a bounded queue of its own, so a slow listener never holds up
        the bus; when the queue is full, events for this listener are dropped and counted.
        """
        if not patterns:
            raise ValueError("on() needs at least one topic pattern")
        compiled = [TopicPattern(p) for p in patterns]

        def register(fn: F) -> F:
            self._check()
            self._registrar.add_listener(self._plugin, compiled, fn)
            return fn

        return register

    def start_task(
        self, fn: Callable[..., Awaitable[object]], *args: object, name: str | None = None
    ) -> str:
        """Run ``await fn(*args)`` in the plugin's cancel scope as the service
        ``plugin:<plugin_id>:<name>``, and return that service name.

        ``name`` (letters, digits, ``_``, ``-`` and ``.``, up to 64) defaults to
        ``fn.__name__``; a default name taken by another task of this plugin gets ``-2``,
        ``-3`` … appended, an explicit one is ``ValueError``. ``services.stop`` cancels just
        this task and ``services.start`` runs it again; returning ends it (the service is
        removed); raising fails it and the plugin.
        """
        if name is not None and not TASK_NAME.fullmatch(name):
            raise ValueError(f"task name {name!r} must be 1 to 64 letters, digits, _, - or .")
        self._check()
        return self._registrar.start_task(self._plugin, fn, args, name)

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Publish the event ``<plugin_id>.<name>`` on the gateway's bus."""
        self._check()
        self._registrar.publish(self._plugin, name, data)
