"""Finding skills on disk, and reading a skill's text or one of its files for an agent.

Blocking functions (they run in a worker thread).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import attrs

from ..kernel import component_logger
from ._skill_md import SkillDoc, SkillFormatError, parse_skill_md
from ._sources import SKILL_FILE

__all__ = [
    "INSTALL_RECORD",
    "MAX_READ_BYTES",
    "FoundSkill",
    "OutsideSkill",
    "list_files",
    "read_doc",
    "read_inside",
    "scan",
]

log = component_logger("gateway")

#: Written into an installed skill's folder: where it came from and when.
INSTALL_RECORD = ".install.json"
#: The most of a skill file that is read (``SKILL.md`` or a file an agent asks for).
MAX_READ_BYTES = 256 * 1024

Kind = Literal["installed", "folder", "markdown"]


@attrs.frozen
class FoundSkill:
    name: str
    description: str
    source: str
    #: The skill's folder (a single-file markdown skill: the file).
    path: Path
    kind: Kind


def read_doc(path: Path) -> SkillDoc:
    """The skill in ``path``: a folder holding ``SKILL.md``, or a single ``.md`` file."""
    file = path / SKILL_FILE if path.is_dir() else path
    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_READ_BYTES + 1)
    except FileNotFoundError:
        raise SkillFormatError(f"there is no {SKILL_FILE} in {str(path)!r}") from None
    except OSError as exc:
        raise SkillFormatError(f"{str(file)!r} cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_READ_BYTES:
        raise SkillFormatError(f"{str(file)!r} is larger than {MAX_READ_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SkillFormatError(f"{str(file)!r} is not UTF-8 text") from None
    return parse_skill_md(text)


def _source_of(folder: Path) -> str:
    try:
        record = json.loads((folder / INSTALL_RECORD).read_text("utf-8"))
        return str(record["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return "local"  # put there by hand


def scan(directory: Path, kind: Kind) -> list[FoundSkill]:
    """The skills in ``directory`` (one folder each); folders that are not skills are logged
    and skipped, as are hidden ones (staging, leftovers)."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("skills: cannot list %s: %s", directory, exc.strerror)
        return []
    found = []
    for name in names:
        folder = directory / name
        if name.startswith(".") or not folder.is_dir():
            continue
        if kind == "installed" and folder.is_symlink():
            continue  # installing never makes links: not ours
        try:
            doc = read_doc(folder)
        except SkillFormatError as exc:
            log.warning("skills: skipping %s: %s", folder, exc)
            continue
        if doc.name != name:
            log.warning("skills: skipping %s: its SKILL.md names it %r", folder, doc.name)
            continue
        source = _source_of(folder) if kind == "installed" else str(directory)
        found.append(FoundSkill(doc.name, doc.description, source, folder, kind))
    return found


def list_files(folder: Path, limit: int = 100) -> list[str]:
    """Files of a skill folder an agent may read, relative, ``SKILL.md`` and hidden ones left
    out."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            relative = Path(dirpath, name).relative_to(folder).as_posix()
            if name.startswith(".") or relative == SKILL_FILE:
                continue
            out.append(relative)
            if len(out) >= limit:
                return out
    return out


class OutsideSkill(ValueError):
    """The file asked for is not one of the skill's files; the message says why."""


def read_inside(folder: Path, relative: str) -> str:
    """The text of ``relative`` inside the skill ``folder``; never a file outside it."""
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts or not parts:
        raise OutsideSkill(f"{relative!r} is not a path inside the skill")
    root = folder.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target == root:
        raise OutsideSkill(f"{relative!r} is not a path inside the skill")
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        raise OutsideSkill(f"{relative!r} is a hidden file")
    try:
        with open(target, "rb") as f:
            raw = f.read(MAX_READ_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise OutsideSkill(f"the skill has no file {relative!r}") from None
    except OSError as exc:
        raise OutsideSkill(f"{relative!r} cannot be read ({exc.strerror})") from None
    text = raw[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    if len(raw) > MAX_READ_BYTES:
        text += f"\n[… cut at {MAX_READ_BYTES} bytes]"
    return text
