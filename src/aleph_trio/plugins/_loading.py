"""Finding and importing plugins: a ``.py`` file or a folder with ``__init__.py``.

Each import is fresh: the entry module is compiled from its source every time (no bytecode
cache, so an edit made within the same second is still seen) under a module name of its own,
``_aleph_plugin_<n>``. The module and its submodules stay in ``sys.modules`` while the plugin is
loaded (attrs classes resolve their annotations through it) and are removed on unload, so
loading the same file twice gives two independent modules and nothing is left behind.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import re
import sys
from pathlib import Path
from types import ModuleType

import attrs

from ..kernel import InvalidArgument

__all__ = ["ID_PATTERN", "Imported", "candidates", "fallback_id", "forget", "import_plugin"]

#: A plugin id is the namespace of its methods (``<plugin_id>.<name>``).
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_PREFIX = "_aleph_plugin_"
_numbers = itertools.count(1)


@attrs.frozen
class Imported:
    """A freshly imported plugin module and what it says about itself."""

    module: ModuleType
    module_name: str
    plugin_id: str
    name: str
    version: str | None


class _FreshLoader(importlib.machinery.SourceFileLoader):
    """Compiles the entry module from its source each time, never from ``__pycache__``."""

    def get_code(self, fullname: str) -> object:  # type: ignore[override]
        source = self.get_data(self.path)
        return compile(source, self.path, "exec", dont_inherit=True)


def entry_file(path: Path) -> Path:
    """The file a plugin's code starts in; :class:`InvalidArgument` when ``path`` is no plugin."""
    try:
        return _entry_file(path)
    except OSError as exc:  # a name too long, a folder we may not read ...
        raise InvalidArgument.field("path", f"{path} cannot be read: {exc.strerror}") from None


def _entry_file(path: Path) -> Path:
    if path.is_file():
        if path.suffix != ".py":
            raise InvalidArgument.field("path", f"{path} is not a .py file or a package folder")
        return path
    if path.is_dir():
        init = path / "__init__.py"
        if not init.is_file():
            raise InvalidArgument.field("path", f"{path} is a folder without __init__.py")
        return init
    raise InvalidArgument.field("path", f"{path} does not exist")


def fallback_id(path: Path) -> str:
    """The id of a plugin that does not name itself: its file (or folder) name."""
    return path.stem if path.is_file() else path.name


def candidates(folder: Path) -> list[Path]:
    """The plugins in ``folder``: its ``.py`` files and its folders with ``__init__.py``."""
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if (entry.is_file() and entry.suffix == ".py") or (entry / "__init__.py").is_file():
            found.append(entry)
    return found


def import_plugin(path: Path) -> Imported:
    """Import the plugin at ``path`` afresh; :class:`InvalidArgument` when it is not a plugin.

    Blocking (it reads files and runs the module's top level): call it from a worker thread.
    """
    entry = entry_file(path)
    module_name = f"{_PREFIX}{next(_numbers)}"
    loader = _FreshLoader(module_name, str(entry))
    spec = importlib.util.spec_from_file_location(
        module_name,
        entry,
        loader=loader,
        submodule_search_locations=[str(path)] if entry != path else None,
    )
    assert spec is not None  # a file location with a loader always gives a spec
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    importlib.invalidate_caches()
    try:
        loader.exec_module(module)
        return _describe(module, module_name, path)
    except InvalidArgument:
        forget(module_name)
        raise
    except Exception as exc:
        forget(module_name)
        raise InvalidArgument.field(
            "path", f"{path} could not be imported: {type(exc).__name__}: {exc}"
        ) from None


def _describe(module: ModuleType, module_name: str, path: Path) -> Imported:
    if not callable(getattr(module, "setup", None)):
        raise InvalidArgument.field("path", f"{path} has no setup(api) function")
    plugin_id = getattr(module, "PLUGIN_ID", None) or fallback_id(path)
    if not isinstance(plugin_id, str) or not ID_PATTERN.fullmatch(plugin_id):
        raise InvalidArgument.field(
            "path",
            f"{path}: plugin id {plugin_id!r} must be 1 to 64 lowercase letters, digits or _, "
            "starting with a letter (set PLUGIN_ID)",
        )
    name = getattr(module, "PLUGIN_NAME", None) or plugin_id
    version = getattr(module, "__version__", None)
    return Imported(
        module,
        module_name,
        plugin_id,
        str(name),
        None if version is None else str(version),
    )


def forget(module_name: str) -> None:
    """Remove a plugin's module and its submodules from ``sys.modules``."""
    prefix = module_name + "."
    for name in [n for n in sys.modules if n == module_name or n.startswith(prefix)]:
        del sys.modules[name]
