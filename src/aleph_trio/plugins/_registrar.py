"""What a running plugin registers through its :class:`PluginApi`, and how each piece is
guarded: methods and tools run in their caller's task under a cancel scope the plugin keeps,
listeners and tasks in the plugin's own nursery; anything raising there fails the plugin.

Each task is a service of its own in the gateway's registry, ``plugin:<plugin_id>:<task>``,
supervised in the plugin's nursery: ``services.stop``/``start`` cancel and rerun just that task,
and the plugin manager forgets the services when the plugin stops."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, final

import trio

from ..kernel import (
    Event,
    EventBus,
    GatewayError,
    OperationFailed,
    ServiceRegistry,
    TopicPattern,
    component_logger,
)
from ..tools import Tool, ToolBox, ToolContext, ToolFailed
from ._api import TASK_NAME, MethodSpec, MethodTable, PluginEvent
from ._plugin import Plugin, describe, name_of

__all__ = ["LISTENER_QUEUE", "Registrar"]

log = component_logger("plugins")

#: Events waiting for one listener; beyond this, its events are dropped and counted.
LISTENER_QUEUE = 1000


@final
class Registrar:
    """Adds a plugin's methods, tools, listeners and tasks, and withdraws them again."""

    def __init__(
        self,
        *,
        bus: EventBus,
        tools: ToolBox,
        methods: MethodTable,
        services: ServiceRegistry,
        event_data: Callable[[bytes], Mapping[str, Any]],
        fail: Callable[[Plugin, str], None],
    ) -> None:
        self._bus = bus
        self._tools = tools
        self._methods = methods
        self._services = services
        self._event_data = event_data
        #: Marks a plugin failed (withdrawing it and cancelling its scope).
        self._fail = fail

    def namespace_taken(self, namespace: str) -> bool:
        return self._methods.namespace_taken(namespace)

    def withdraw(self, plugin: Plugin) -> None:
        """Remove everything the plugin registered (idempotent)."""
        for name in plugin.methods:
            self._methods.remove(name)
        for name in plugin.tools:
            self._tools.remove(name)
        for sub, send in plugin.listeners:
            self._bus.unsubscribe(sub)
            send.close()
        plugin.methods, plugin.tools, plugin.listeners = [], [], []

    def add_method(
        self,
        plugin: Plugin,
        name: str,
        fn: Callable[[Any], Awaitable[object]],
        params: type | None,
        *,
        description: str,
        owner_only: bool,
    ) -> None:
        full = f"{plugin.plugin_id}.{name}"

        async def call(decoded: Any) -> object:
            return await self._guarded_call(plugin, f"method {full}", fn, decoded)

        self._methods.add(MethodSpec(full, description, params, owner_only, call))
        plugin.methods.append(full)

    def add_tool(
        self,
        plugin: Plugin,
        name: str,
        fn: Callable[[ToolContext, Any], Awaitable[str]],
        params: type,
        *,
        description: str,
    ) -> None:
        async def run(ctx: ToolContext, decoded: Any) -> str:
            try:
                output = await self._guarded_call(plugin, f"tool {name}", fn, ctx, decoded)
            except OperationFailed as exc:
                raise ToolFailed(exc.message) from None
            if not isinstance(output, str):
                self._fail(plugin, f"tool {name} returned {type(output).__name__}, not str")
                raise ToolFailed(f"plugin {plugin.plugin_id} failed: {plugin.error}")
            return output

        self._tools.add(Tool(name, description, params, run))
        plugin.tools.append(name)

    async def _guarded_call(
        self, plugin: Plugin, what: str, fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> Any:
        """``fn(*args)`` for a caller outside the plugin's scope (a request, a run): cancelled
        when the plugin stops; a domain error or ``ToolFailed`` passes, anything else fails the
        plugin."""
        with trio.CancelScope() as scope:
            plugin.calls.add(scope)
            try:
                return await fn(*args)
            except (GatewayError, ToolFailed):
                raise
            except Exception as exc:
                self._fail(plugin, f"{what} raised {describe(exc)}")
                raise OperationFailed(
                    f"plugin {plugin.plugin_id} failed: {plugin.error}", plugin_id=plugin.plugin_id
                ) from None
            finally:
                plugin.calls.discard(scope)
        raise OperationFailed(
            f"plugin {plugin.plugin_id} stopped during the call", plugin_id=plugin.plugin_id
        )

    def add_listener(
        self, plugin: Plugin, patterns: list[TopicPattern], fn: Callable[[PluginEvent], Any]
    ) -> None:
        assert plugin.nursery is not None
        send, receive = trio.open_memory_channel[Event](LISTENER_QUEUE)

        def deliver(event: Event) -> bool:
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                plugin.dropped_events += 1
                if plugin.dropped_events == 1:
                    log.warning("plugin %s: a listener is too slow; dropping events", plugin.name)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass
            return True  # never the bus's slow consumer: the plugin's own queue overflows

        sub = self._bus.subscribe(deliver, on_overflow=lambda: None, patterns=patterns)
        plugin.listeners.append((sub, send))
        plugin.nursery.start_soon(self._listen, plugin, receive, fn)

    async def _listen(
        self,
        plugin: Plugin,
        receive: trio.MemoryReceiveChannel[Event],
        fn: Callable[[PluginEvent], Any],
    ) -> None:
        async with receive:
            async for event in receive:
                data = dict(self._event_data(event.encoded))
                item = PluginEvent(event.topic, event.seq, event.ts, data, event.run_id)
                try:
                    outcome = fn(item)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception as exc:
                    self._fail(plugin, f"listener {name_of(fn)} raised {describe(exc)}")
                    return

    def start_task(
        self,
        plugin: Plugin,
        fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        name: str | None,
    ) -> str:
        nursery = plugin.nursery
        assert nursery is not None
        service = self._task_service(plugin, fn, name)

        async def serve(*, task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            try:
                await fn(*args)
            except Exception as exc:
                self._fail(plugin, f"task {name_of(fn)} raised {describe(exc)}")
                raise

        def blocked() -> str | None:
            if plugin.nursery is nursery and plugin.status == "enabled":
                return None
            return f"plugin {plugin.plugin_id} is {plugin.status} (plugins.enable runs it again)"

        self._services.start_soon(nursery, service, serve, finite=True, blocked=blocked)
        plugin.tasks.append(service)
        return service

    def _task_service(
        self, plugin: Plugin, fn: Callable[..., Awaitable[object]], name: str | None
    ) -> str:
        """The service name for a new task: ``plugin:<plugin_id>:<name>``, free in this run."""
        prefix = f"plugin:{plugin.plugin_id}:"
        taken = {task for task in plugin.tasks if task in self._services.states}
        plugin.tasks = [task for task in plugin.tasks if task in taken]  # finished ones left
        if name is not None:
            if prefix + name in taken:
                raise ValueError(f"plugin {plugin.plugin_id} has a task named {name!r} already")
            return prefix + name
        base = getattr(fn, "__name__", "")
        base = base[:56] if TASK_NAME.fullmatch(base) else "task"
        candidate, n = base, 1
        while prefix + candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        return prefix + candidate

    def forget_tasks(self, plugin: Plugin) -> None:
        """Remove the plugin's task services, once its nursery has ended (idempotent)."""
        for service in plugin.tasks:
            self._services.forget(service)
        plugin.tasks = []

    def publish(self, plugin: Plugin, name: str, data: dict[str, Any]) -> None:
        self._bus.publish(f"{plugin.plugin_id}.{name}", data)
