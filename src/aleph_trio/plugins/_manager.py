"""The plugin manager: loads plugins, runs each in its own cancel scope, withdraws what they
registered when they stop, and remembers which are loaded and which disabled.

A plugin is ``enabled`` (its ``setup`` ran and it is running), ``disabled`` (known, nothing of it
runs) or ``failed`` (its ``setup``, a task, a listener, a method or a tool raised; nothing of it
runs, ``error`` says why). A failed plugin's methods and tools are withdrawn, so a call answers
``Method not found`` and the model is told the tool is unknown; ``plugins.enable`` runs its
``setup`` again. The gateway keeps serving whatever a plugin does, short of blocking the loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, final

import trio

from ..kernel import (
    Config,
    Conflict,
    EventBus,
    InvalidArgument,
    NotFound,
    OperationFailed,
    ServiceRegistry,
    component_logger,
)
from ..tools import ToolBox
from ._api import MethodTable, PluginApi
from ._loading import Imported, candidates, fallback_id, forget, import_plugin
from ._plugin import Plugin, about, describe
from ._registrar import Registrar
from ._state import PluginState, read_state, write_state

__all__ = ["SETUP_TIMEOUT_S", "PluginManager"]

log = component_logger("plugins")

#: A ``setup`` still running after this long fails the plugin (the gateway's start waits on it).
SETUP_TIMEOUT_S = 30.0


@final
class PluginManager:
    """Every plugin the gateway knows, by id. :meth:`serve` runs as the ``plugins`` service."""

    def __init__(
        self,
        *,
        bus: EventBus,
        tools: ToolBox,
        methods: MethodTable,
        services: ServiceRegistry,
        config: Callable[[], Config],
        data_dir: Path,
        event_data: Callable[[bytes], Mapping[str, Any]],
    ) -> None:
        self._bus = bus
        self._registrar = Registrar(
            bus=bus,
            tools=tools,
            methods=methods,
            services=services,
            event_data=event_data,
            fail=self._fail,
        )
        self.config = config
        self._data_dir = data_dir
        self._plugins: dict[str, Plugin] = {}
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None

    # ---- queries

    def plugins(self) -> list[Plugin]:
        return sorted(self._plugins.values(), key=lambda p: p.plugin_id)

    def get(self, plugin_id: str) -> Plugin:
        plugin = self._plugins.get(plugin_id)
        if plugin is None:
            raise NotFound("plugin", plugin_id)
        return plugin

    # ---- the service

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the configured, collected and remembered plugins, then host them until
        cancelled; each stops (and withdraws what it registered) as the gateway closes."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                state = await trio.to_thread.run_sync(read_state, self._data_dir)
                disabled = set(state.disabled)
                async with self._lock:
                    for path in await trio.to_thread.run_sync(self._startup_paths, state):
                        await self._load_at_start(path, enabled=str(path) not in disabled)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for plugin in self._plugins.values():
                self._registrar.withdraw(plugin)
                self._registrar.forget_tasks(plugin)
                if plugin.module_name is not None:
                    forget(plugin.module_name)
            # nothing of them runs now; the next start loads them afresh
            self._plugins.clear()

    def _startup_paths(self, state: PluginState) -> list[Path]:
        found = []
        for text in self.config().plugins.paths:
            try:
                found.append(_resolve(text))
            except InvalidArgument as exc:
                log.error("plugins.paths: %s", exc.message)
        found += candidates(self._data_dir / "plugins")
        found += [Path(p) for p in state.loaded]
        return list(dict.fromkeys(found))

    async def _load_at_start(self, path: Path, *, enabled: bool) -> None:
        try:
            imported = await trio.to_thread.run_sync(import_plugin, path)
        except InvalidArgument as exc:
            plugin_id = fallback_id(path)
            if plugin_id in self._plugins:
                log.error("plugin at %s not loaded: %s", path, exc.message)
                return
            plugin = Plugin(path, plugin_id, plugin_id, None, None, None, enabled)
            self._plugins[plugin_id] = plugin
            self._record_failure(plugin, exc.problems[0].message if exc.problems else exc.message)
            return
        try:
            plugin = self._admit(imported, path, enabled=enabled)
        except InvalidArgument as exc:
            forget(imported.module_name)
            log.error("plugin at %s not loaded: %s", path, exc.message)
            return
        if enabled:
            try:
                await self._start(plugin)
            except OperationFailed:
                return  # recorded and logged by _start
            self._bus.publish("plugins.loaded", about(plugin))

    # ---- plugins.* operations

    async def load(self, path_text: str) -> Plugin:
        """Import the plugin at ``path_text`` afresh and run its ``setup``. Loading the path of a
        loaded plugin again replaces it (a reload); the path is loaded again at each start."""
        path = _resolve(path_text)
        async with self._lock:
            self._require_serving()
            imported = await trio.to_thread.run_sync(import_plugin, path)
            # the same path again is a reload, even if the file now names another id
            old = next((p for p in self._plugins.values() if p.path == path), None)
            try:
                self._check_free(imported.plugin_id, replacing=old)
            except InvalidArgument:
                forget(imported.module_name)
                raise
            if old is not None:
                await self._stop(old)
                self._drop(old)
            plugin = self._admit(imported, path, enabled=True)
            await self._remember(path, loaded=True, disabled=False)
            await self._start(plugin)
            self._bus.publish("plugins.loaded", about(plugin))
            return plugin

    async def unload(self, plugin_id: str) -> None:
        """Stop the plugin (its tasks cancelled, everything it registered withdrawn) and forget
        it; it is not loaded again at the next start unless the config or the plugins folder
        names it."""
        async with self._lock:
            plugin = self.get(plugin_id)
            await self._stop(plugin)
            self._drop(plugin)
            await self._remember(plugin.path, loaded=False, disabled=False)
            self._bus.publish("plugins.unloaded", about(plugin))

    async def enable(self, plugin_id: str) -> Plugin:
        """Run the plugin's ``setup`` again (a plugin whose import failed is imported afresh)."""
        async with self._lock:
            self._require_serving()
            plugin = self.get(plugin_id)
            if plugin.status == "enabled":
                return plugin
            await self._stop(plugin)
            plugin.enabled = True
            await self._remember(plugin.path, disabled=False)
            if plugin.module is None:
                imported = await trio.to_thread.run_sync(import_plugin, plugin.path)
                try:
                    self._check_free(imported.plugin_id, replacing=plugin)
                except InvalidArgument:
                    forget(imported.module_name)
                    raise
                self._drop(plugin)
                plugin = self._admit(imported, plugin.path, enabled=True)
            await self._start(plugin)
            self._bus.publish("plugins.loaded", about(plugin))
            return plugin

    async def disable(self, plugin_id: str) -> None:
        """Stop the plugin but keep it known, disabled (also across restarts)."""
        async with self._lock:
            plugin = self.get(plugin_id)
            plugin.enabled = False
            await self._remember(plugin.path, disabled=True)
            was = plugin.status
            await self._stop(plugin)
            plugin.status, plugin.error = "disabled", None
            if was == "enabled":
                self._bus.publish("plugins.unloaded", about(plugin))

    # ---- lifecycle

    def _require_serving(self) -> None:
        if self._nursery is None:
            raise OperationFailed("plugins are not being served (the gateway is stopping)")

    def _check_free(self, plugin_id: str, *, replacing: Plugin | None = None) -> None:
        """:class:`Conflict` unless ``plugin_id`` is free (or held by ``replacing``)."""
        held = self._plugins.get(plugin_id)
        if held is not None and held is not replacing:
            raise Conflict.field("path", f"plugin id {plugin_id!r} is taken by {held.path}")
        if held is None and self._registrar.namespace_taken(plugin_id):
            raise Conflict.field("path", f"plugin id {plugin_id!r} is a built-in namespace")

    def _admit(self, imported: Imported, path: Path, *, enabled: bool) -> Plugin:
        """Record a freshly imported plugin, once its id is known to be free."""
        plugin_id = imported.plugin_id
        self._check_free(plugin_id)
        plugin = Plugin(
            path,
            plugin_id,
            imported.name,
            imported.version,
            imported.module,
            imported.module_name,
            enabled,
        )
        self._plugins[plugin_id] = plugin
        return plugin

    def _drop(self, plugin: Plugin) -> None:
        self._plugins.pop(plugin.plugin_id, None)
        if plugin.module_name is not None:
            forget(plugin.module_name)

    async def _start(self, plugin: Plugin) -> None:
        """Run ``setup`` in a new cancel scope of the plugin's; :class:`OperationFailed` (the
        plugin recorded as failed) when it raises."""
        assert self._nursery is not None
        await self._nursery.start(self._run, plugin)
        if plugin.status == "failed":
            raise OperationFailed(
                f"plugin {plugin.plugin_id} failed: {plugin.error}", plugin_id=plugin.plugin_id
            )

    async def _run(self, plugin: Plugin, *, task_status: trio.TaskStatus[None]) -> None:
        plugin.stopped = stopped = trio.Event()
        plugin.status, plugin.error, plugin.dropped_events = "enabled", None, 0
        reported = False
        try:
            with trio.CancelScope() as scope:
                plugin.scope = scope
                async with trio.open_nursery() as nursery:
                    plugin.nursery = nursery
                    logger = component_logger(f"plugins.{plugin.plugin_id}")
                    plugin.api = api = PluginApi(self._registrar, plugin, logger, self.config)
                    with trio.move_on_after(SETUP_TIMEOUT_S) as timer:
                        try:
                            assert plugin.module is not None
                            outcome = plugin.module.setup(api)
                            if inspect.isawaitable(outcome):
                                await outcome
                        except Exception as exc:
                            self._fail(plugin, f"setup raised {describe(exc)}")
                    if timer.cancelled_caught:
                        self._fail(plugin, f"setup did not finish within {SETUP_TIMEOUT_S:g} s")
                    reported = True
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            plugin.api = plugin.scope = plugin.nursery = None
            self._registrar.withdraw(plugin)
            stopped.set()
            if not reported:
                task_status.started()

    async def _stop(self, plugin: Plugin) -> None:
        """Cancel the plugin's scope and its calls in flight; returns once all of it ended, its
        registrations withdrawn and its task services removed from the registry."""
        for call in list(plugin.calls):
            call.cancel()
        if plugin.scope is not None:
            plugin.scope.cancel()
            await plugin.stopped.wait()
        self._registrar.withdraw(plugin)
        self._registrar.forget_tasks(plugin)
        if plugin.status == "enabled":
            plugin.status = "disabled"

    def _fail(self, plugin: Plugin, error: str) -> None:
        """The plugin raised: withdraw it and cancel its scope; the first error is kept."""
        if plugin.status == "failed":
            return
        self._registrar.withdraw(plugin)
        if plugin.scope is not None:
            plugin.scope.cancel()
        self._record_failure(plugin, error)

    def _record_failure(self, plugin: Plugin, error: str) -> None:
        plugin.status, plugin.error = "failed", error
        log.error("plugin %s failed: %s", plugin.plugin_id, error)
        self._bus.publish("plugins.failed", {**about(plugin), "error": error})

    async def _remember(
        self, path: Path, *, loaded: bool | None = None, disabled: bool | None = None
    ) -> None:
        def update() -> None:
            state = read_state(self._data_dir)
            for bucket, wanted in ((state.loaded, loaded), (state.disabled, disabled)):
                if wanted is None:
                    continue
                if str(path) in bucket:
                    bucket.remove(str(path))
                if wanted:
                    bucket.append(str(path))
            write_state(self._data_dir, state)

        await trio.to_thread.run_sync(update)


def _resolve(text: str) -> Path:
    """``text`` as an absolute path (relative ones from the gateway's working directory)."""
    try:
        return Path(text).expanduser().resolve()
    except (ValueError, OSError, RuntimeError) as exc:  # a NUL byte, a symlink loop, no $HOME
        raise InvalidArgument.field("path", f"{text!r} is not a usable path: {exc}") from None
