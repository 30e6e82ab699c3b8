"""What the plugin manager remembers across restarts: ``<data dir>/plugins.json``.

It holds the paths loaded with ``plugins.load`` (loaded again at start) and the paths disabled
with ``plugins.disable`` (known at start, their ``setup`` not run). Paths are kept rather than
ids: an id is only known once the module is imported. The file is written atomically (temp
file, fsync, rename; mode 0600), so a crash leaves the old state or the new one.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from ..kernel import component_logger, write_private

__all__ = ["PluginState", "read_state", "write_state"]

FILE_NAME = "plugins.json"

log = component_logger("plugins")


@attrs.define
class PluginState:
    loaded: list[str] = attrs.Factory(list)
    disabled: list[str] = attrs.Factory(list)


def read_state(directory: Path) -> PluginState:
    """The remembered state; empty when there is none or it cannot be read (logged)."""
    path = directory / FILE_NAME
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return PluginState()
    except (OSError, ValueError) as exc:
        log.error("%s cannot be read (%s); starting with no remembered plugin state", path, exc)
        return PluginState()
    if isinstance(doc, dict):
        loaded, disabled = doc.get("loaded", []), doc.get("disabled", [])
    if not (isinstance(doc, dict) and _strings(loaded) and _strings(disabled)):
        log.error("%s is not a plugin state file; ignoring it", path)
        return PluginState()
    return PluginState(list(loaded), list(disabled))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def write_state(directory: Path, state: PluginState) -> None:
    path = directory / FILE_NAME
    write_private(path, json.dumps(attrs.asdict(state), indent=2).encode() + b"\n")
