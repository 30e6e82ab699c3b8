"""Unpacking what a skill is installed from into a staging folder, refusing anything unsafe.

Blocking functions (they run in a worker thread). Whatever the source, the result holds only
regular files and folders: an archive member or a file that is a link (symbolic or hard), a
device, a FIFO, or whose name is absolute or climbs out with ``..``, is refused, and so is a
source with more than ``max_files`` entries or ``max_bytes`` bytes. For archives the sizes the
archive *declares* are checked before anything is written, and the bytes actually written are
counted as they are, so an archive that lies about its sizes stops at the limit too.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

import attrs

__all__ = [
    "ARCHIVE_SUFFIXES",
    "Limits",
    "UnsafeSource",
    "check_tree",
    "copy_tree",
    "extract_archive",
    "skill_root",
]

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
SKILL_FILE = "SKILL.md"
#: Folders never taken from a source: version-control metadata is not part of a skill.
SKIPPED = frozenset({".git"})
_CHUNK = 64 * 1024


class UnsafeSource(ValueError):
    """The source cannot be installed; the message says why, for a person."""


@attrs.frozen
class Limits:
    max_files: int
    max_bytes: int


@attrs.define
class _Budget:
    limits: Limits
    files: int = 0
    bytes: int = 0

    def entry(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise UnsafeSource(f"it holds more than {self.limits.max_files} files and folders")

    def spend(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_bytes:
            raise UnsafeSource(f"it holds more than {self.limits.max_bytes} bytes")


def _member_parts(name: str) -> tuple[str, ...]:
    """The path segments of an archive member, or :class:`UnsafeSource` if it would escape."""
    if "\x00" in name or "\\" in name:
        raise UnsafeSource(f"member {name!r} has a NUL or a backslash in its name")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeSource(f"member {name!r} has an absolute path")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        raise UnsafeSource(f"member {name!r} points outside the skill folder")
    return parts


def _file_mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


def _copy_counted(src: IO[bytes], target: Path, budget: _Budget, mode: int) -> None:
    with open(target, "xb") as out:  # "x": a name given twice is refused, nothing followed
        while chunk := src.read(_CHUNK):
            budget.spend(len(chunk))
            out.write(chunk)
    target.chmod(_file_mode(mode))


def _target(dest: Path, parts: tuple[str, ...]) -> Path:
    target = dest.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > budget.limits.max_files:
            raise UnsafeSource(f"it holds more than {budget.limits.max_files} files and folders")
        declared = sum(info.file_size for info in infos)
        if declared > budget.limits.max_bytes:
            raise UnsafeSource(
                f"it declares {declared} bytes, more than the limit of {budget.limits.max_bytes}"
            )
        for info in infos:
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if stat.S_ISLNK(mode):
                raise UnsafeSource(f"member {info.filename!r} is a link")
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeSource(f"member {info.filename!r} is not a regular file or folder")
            parts = _member_parts(info.filename)
            budget.entry()
            if not parts:
                continue
            if info.is_dir():
                _target(dest, parts).mkdir(exist_ok=True)
                continue
            with zf.open(info) as src:
                _copy_counted(src, _target(dest, parts), budget, mode)


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:  # read lazily: a flood of members stops at the limit
            budget.entry()
            if member.issym() or member.islnk():
                raise UnsafeSource(f"member {member.name!r} is a link")
            if not (member.isfile() or member.isdir()):
                raise UnsafeSource(f"member {member.name!r} is not a regular file or folder")
            parts = _member_parts(member.name)
            if not parts:
                continue
            if member.isdir():
                _target(dest, parts).mkdir(exist_ok=True)
                continue
            if budget.bytes + member.size > budget.limits.max_bytes:
                raise UnsafeSource(f"it holds more than {budget.limits.max_bytes} bytes")
            src = tf.extractfile(member)
            if src is None:  # pragma: no cover - isfile() members always have data
                raise UnsafeSource(f"member {member.name!r} has no data")
            with src:
                _copy_counted(src, _target(dest, parts), budget, member.mode)


def extract_archive(archive: Path, dest: Path, limits: Limits) -> None:
    """Unpack a ``.zip``, ``.tar.gz`` or ``.tgz`` into ``dest`` (an empty folder)."""
    budget = _Budget(limits)
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, dest, budget)
        else:
            _extract_tar(archive, dest, budget)
    except UnsafeSource:
        raise
    except FileExistsError as exc:
        raise UnsafeSource(f"it holds {Path(exc.filename or '?').name!r} twice") from None
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        zlib.error,
        EOFError,
        RuntimeError,  # an encrypted zip member
        NotImplementedError,  # a zip compression method we do not have
        OSError,
    ) as exc:
        raise UnsafeSource(f"it is not a readable archive ({exc})") from None


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry below ``root`` (``.git`` left out), without following links."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED)
        for name in [*dirnames, *sorted(filenames)]:
            path = Path(dirpath, name)
            yield path, path.lstat()


def _check_entry(path: Path, root: Path, info: os.stat_result) -> None:
    relative = path.relative_to(root)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeSource(f"{str(relative)!r} is a link")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise UnsafeSource(f"{str(relative)!r} is not a regular file or folder")
    if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
        raise UnsafeSource(f"{str(relative)!r} is a hard link")


def copy_tree(src: Path, dest: Path, limits: Limits) -> None:
    """Copy the folder ``src`` into ``dest`` (an empty folder), checking every entry first."""
    budget = _Budget(limits)
    entries = []
    for path, info in _walk(src):
        _check_entry(path, src, info)
        budget.entry()
        if stat.S_ISREG(info.st_mode):
            budget.spend(info.st_size)
        entries.append((path, info))
    copied = _Budget(limits)  # the files may grow while they are copied
    for path, info in entries:
        target = dest / path.relative_to(src)
        if stat.S_ISDIR(info.st_mode):
            target.mkdir(exist_ok=True)
            continue
        with open(path, "rb") as file:
            _copy_counted(file, target, copied, info.st_mode)


def check_tree(root: Path, limits: Limits) -> None:
    """Check a tree made by another program (a ``git clone``) and drop its ``.git``."""
    budget = _Budget(limits)
    for path, info in _walk(root):
        _check_entry(path, root, info)
        budget.entry()
        if stat.S_ISREG(info.st_mode):
            budget.spend(info.st_size)
    shutil.rmtree(root / ".git", ignore_errors=True)


def skill_root(tree: Path) -> Path:
    """The folder holding ``SKILL.md``: the top of ``tree``, or its one sub-folder (archives
    are often made of the folder itself)."""
    if (tree / SKILL_FILE).is_file():
        return tree
    children = [child for child in tree.iterdir() if child.name not in SKIPPED]
    if len(children) == 1 and children[0].is_dir() and (children[0] / SKILL_FILE).is_file():
        return children[0]
    raise UnsafeSource(f"it has no {SKILL_FILE} at its top (or in its one folder)")
