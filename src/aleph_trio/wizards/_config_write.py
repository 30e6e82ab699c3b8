"""Changing the config file the way a person would: read it, change some tables, check the
result against the config model, and replace the file in one rename (mode 0600, since it may
hold an API key). Every other table and key is kept; comments are not (TOML is rewritten)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from ..kernel import ConfigError, OperationFailed, config_from_dict, write_private

__all__ = ["update_config_file"]

Document = dict[str, Any]


def _read(path: Path) -> Document:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise OperationFailed(f"cannot read the config file {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OperationFailed(f"the config file {path} is not valid TOML: {exc}") from None


def update_config_file(path: Path, change: Callable[[Document], None]) -> None:
    """Apply ``change`` to the file's document and write it back atomically.

    Blocking: call it in a thread. A document the config model refuses is never written
    (:class:`OperationFailed` naming the first problem); neither is anything on a failed write.
    """
    doc = _read(path)
    change(doc)
    try:
        config_from_dict(doc)
    except ConfigError as exc:
        raise OperationFailed(f"the new configuration would be invalid: {exc}") from None
    data = tomli_w.dumps(doc).encode("utf-8")
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_private(path, data)
    except OSError as exc:
        raise OperationFailed(f"cannot write the config file {path}: {exc.strerror}") from None
