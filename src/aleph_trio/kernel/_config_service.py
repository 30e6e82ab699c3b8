"""The running configuration: reload, validate, watch the file, tell the gateway what changed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, final

import attrs
import trio

from ._config import Config
from ._config_file import (
    ConfigError,
    LoadedConfig,
    changed_keys,
    config_from_dict,
    config_warnings,
    load_config,
    restart_warnings,
)
from ._events import EventBus
from ._logs import component_logger

__all__ = ["ConfigService", "ReloadOutcome"]

log = component_logger("config")

POLL_INTERVAL_S = 0.25
DEBOUNCE_S = 0.3


@attrs.frozen
class ReloadOutcome:
    reloaded: bool
    changed_keys: list[str]
    warnings: list[str]


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@final
class ConfigService:
    """Holds the current :class:`LoadedConfig` and swaps it only for a valid one."""

    def __init__(self, loaded: LoadedConfig, bus: EventBus) -> None:
        self.loaded = loaded
        self._bus = bus
        self._appliers: list[Callable[[Config, Config, list[str]], None]] = []
        self._checks: list[Callable[[Config], list[str]]] = []
        self._lock = trio.Lock()

    @property
    def config(self) -> Config:
        return self.loaded.config

    def current(self) -> Config:
        """The configuration in force right now: what services are given to read it."""
        return self.loaded.config

    def add_check(self, check: Callable[[Config], list[str]]) -> None:
        """Another domain's warnings about a config (``check(config)`` → sentences naming
        the key), reported by ``config.validate`` and ``config.reload`` and logged on start."""
        self._checks.append(check)

    def warnings(self, config: Config) -> list[str]:
        """What is probably a mistake in ``config`` though the file is valid."""
        found = config_warnings(config)
        for check in self._checks:
            found += check(config)
        return found

    def on_change(self, apply: Callable[[Config, Config, list[str]], None]) -> None:
        """Call ``apply(old, new, changed_keys)`` whenever a new config is swapped in."""
        self._appliers.append(apply)

    async def reload(self, *, source: Literal["file", "rpc"]) -> ReloadOutcome:
        """Re-read the file and apply it; a broken file raises :class:`ConfigError`."""
        path = self.loaded.path
        if path is None:
            return ReloadOutcome(
                False,
                [],
                ["this gateway was given its configuration directly; there is no file to reload"],
            )
        async with self._lock:
            try:
                new = await trio.to_thread.run_sync(load_config, path)
            except ConfigError as exc:
                log.error("configuration not reloaded, keeping the running one: %s", exc)
                self._bus.publish(
                    "config.reloaded", {"changed_keys": [], "valid": False, "errors": exc.errors}
                )
                raise
            old = self.loaded.config
            keys = changed_keys(old, new.config)
            self.loaded = new
            for apply in self._appliers:
                apply(old, new.config, keys)
            if keys:
                log.info("configuration changed (%s): %s", source, ", ".join(keys))
                self._bus.publish("config.changed", {"changed_keys": keys, "source": source})
            self._bus.publish("config.reloaded", {"changed_keys": keys, "valid": True})
            warnings = self.warnings(new.config)
            for warning in warnings:
                log.warning("configuration: %s", warning)
            return ReloadOutcome(True, keys, restart_warnings(keys) + warnings)

    def validate(self, raw: object) -> dict[str, Any]:
        """``config.validate``: check a document against the model; never applies it."""
        try:
            config = config_from_dict(raw)
        except ConfigError as exc:
            return {"valid": False, "errors": exc.errors, "warnings": []}
        keys = changed_keys(self.config, config)
        return {
            "valid": True,
            "errors": [],
            "warnings": restart_warnings(keys) + self.warnings(config),
        }

    async def serve_watcher(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll the file; apply a saved change once it has been still for ``DEBOUNCE_S``."""
        path = self.loaded.path
        assert path is not None
        seen = _signature(path)
        task_status.started()
        while True:
            await trio.sleep(POLL_INTERVAL_S)
            current = _signature(path)
            if current == seen:
                continue
            while True:  # debounce: wait until the file stops changing
                await trio.sleep(DEBOUNCE_S)
                settled = _signature(path)
                if settled == current:
                    break
                current = settled
            seen = current
            try:
                await self.reload(source="file")
            except ConfigError:
                pass  # logged and announced by reload; the running config stays
