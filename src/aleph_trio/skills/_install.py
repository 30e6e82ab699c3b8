"""``skills.install``: from a folder, an archive or a git URL, atomically.

Everything happens in a staging folder beside the installed skills (so on the same file
system): the source is copied, unpacked or cloned there and checked (``_sources.py``), its
``SKILL.md`` is read, and only then is the skill's folder moved into place with one
``rename``. A failure, or a cancelled call, removes the staging folder, so an installed skill
is either there whole or not at all. Replacing a skill (``replace``) moves the old folder into
the staging folder first and back if the new one cannot be put in its place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Literal, final
from urllib.parse import urlsplit, urlunsplit

import trio

from ..kernel import (
    Conflict,
    InvalidArgument,
    OperationFailed,
    SkillsConfig,
    TimedOut,
    component_logger,
    now_ts,
)
from ._catalog import INSTALL_RECORD, read_doc
from ._skill_md import SkillFormatError
from ._sources import (
    ARCHIVE_SUFFIXES,
    Limits,
    UnsafeSource,
    check_tree,
    copy_tree,
    extract_archive,
    skill_root,
)

__all__ = ["Installer", "public_source"]

log = component_logger("gateway")

SourceKind = Literal["git", "folder", "archive"]
GIT_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
#: ``git@host:owner/repo.git``, the scp-like form git understands.
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._\-]+@[A-Za-z0-9.\-]+:[^/\\].*$")
STAGING_PREFIX = ".staging-"


def public_source(source: str) -> str:
    """``source`` as it may be shown and recorded: a URL loses its user and password."""
    if not source.startswith(GIT_SCHEMES):
        return source
    parts = urlsplit(source)
    if "@" not in parts.netloc:
        return source
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _source_kind(source: str) -> SourceKind:
    if source.startswith(GIT_SCHEMES) or _SCP_LIKE.match(source):
        return "git"
    return "archive" if source.lower().endswith(ARCHIVE_SUFFIXES) else "folder"


def _bad_source(message: str) -> InvalidArgument:
    return InvalidArgument.field("$.source", message)


@final
class Installer:
    """Installs skills into ``directory``, one at a time."""

    def __init__(self, directory: Path, settings: Callable[[], SkillsConfig]) -> None:
        self._directory = directory
        self._settings = settings
        self._lock = trio.Lock()

    def clean_leftovers(self) -> None:
        """Remove staging folders a stopped process left (blocking; at start)."""
        if not self._directory.is_dir():
            return  # made by the first install
        for child in self._directory.iterdir():
            if child.name.startswith(STAGING_PREFIX):
                log.info("skills: removing the unfinished install %s", child.name)
                shutil.rmtree(child, ignore_errors=True)

    async def install(self, name: str, source: str, *, replace: bool) -> Path:
        """Install the skill ``name`` from ``source``; returns its folder."""
        kind = _source_kind(source)
        settings = self._settings()
        limits = Limits(settings.max_files, settings.max_bytes)
        async with self._lock:
            target = self._directory / name
            if not replace and await trio.to_thread.run_sync(os.path.lexists, target):
                raise Conflict.field(
                    "$.name",
                    f"a skill named {name!r} is installed; pass replace: true to replace it",
                )
            staging = self._directory / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
            await trio.to_thread.run_sync(_make_staging, staging)
            try:
                tree = staging / "tree"
                if kind == "git":
                    await self._clone(source, tree, settings.git_timeout_s)
                root = await trio.to_thread.run_sync(_prepare, kind, source, tree, name, limits)
                await trio.to_thread.run_sync(_put_in_place, root, target, staging)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(shutil.rmtree, staging, True)
        log.info("skills: installed %s from %s", name, public_source(source))
        return target

    async def _clone(self, url: str, tree: Path, timeout_s: float) -> None:
        shown = public_source(url)
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",  # never wait for a password on a terminal
            "GIT_LFS_SKIP_SMUDGE": "1",
            "GCM_INTERACTIVE": "never",
            # ssh asks about unknown hosts on the terminal, not stdin: fail instead
            "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
        }
        command = ["git", "clone", "--depth", "1", "--quiet", "--no-tags", "--", url, str(tree)]
        with trio.move_on_after(timeout_s) as waited:
            try:
                done = await trio.run_process(
                    command,
                    stdin=subprocess.DEVNULL,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    env=env,
                    start_new_session=True,  # its own process group: helpers die with it
                    deliver_cancel=_kill_group,
                )
            except FileNotFoundError:
                raise OperationFailed("git is not installed on the gateway's machine") from None
        if waited.cancelled_caught:
            raise TimedOut(f"git clone of {shown} did not finish within {timeout_s:g} s")
        if done.returncode != 0:
            lines = done.stderr.decode("utf-8", "replace").replace(url, shown).splitlines()
            why = next((line for line in reversed(lines) if line.strip()), "no message")
            raise _bad_source(f"git clone of {shown} failed: {why.strip()}")


async def _kill_group(process: trio.Process) -> None:
    """A clone given up on needs no grace: kill git and the helpers it started at once."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _make_staging(staging: Path) -> None:
    staging.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging.mkdir(mode=0o700)


def _prepare(kind: SourceKind, source: str, tree: Path, name: str, limits: Limits) -> Path:
    """Fill ``tree`` from ``source``, check it and its ``SKILL.md``; returns the skill's
    folder inside it, with the install record written."""
    shown = public_source(source)
    try:
        if kind == "git":
            check_tree(tree, limits)
        else:
            path = Path(source).expanduser()
            if not path.is_absolute():
                raise _bad_source(f"{source!r} is not an absolute path, an archive or a git URL")
            if kind == "archive":
                if not path.is_file():
                    raise _bad_source(f"there is no archive at {source!r}")
                tree.mkdir()
                extract_archive(path, tree, limits)
            else:
                if not path.is_dir():
                    raise _bad_source(
                        f"{source!r} is not a folder, a .zip/.tar.gz/.tgz archive or a git URL"
                    )
                tree.mkdir()
                copy_tree(path, tree, limits)
        root = skill_root(tree)
        doc = read_doc(root)
    except UnsafeSource as exc:
        raise _bad_source(f"{shown} cannot be installed: {exc}") from None
    except SkillFormatError as exc:
        raise _bad_source(f"the SKILL.md of {shown} is not valid: {exc}") from None
    if doc.name != name:
        raise InvalidArgument.field(
            "$.name", f"the SKILL.md of {shown} names the skill {doc.name!r}, not {name!r}"
        )
    record = {"source": shown, "installed_at": now_ts()}
    (root / INSTALL_RECORD).write_text(json.dumps(record), "utf-8")
    root.chmod(0o755)
    return root


def _put_in_place(root: Path, target: Path, staging: Path) -> None:
    """Move ``root`` to ``target`` with one rename; an old ``target`` goes into ``staging``
    (removed with it), and comes back if the new one cannot take its place."""
    old = staging / "replaced"
    had_old = os.path.lexists(target)
    try:
        if had_old:
            os.rename(target, old)
        try:
            os.rename(root, target)
        except OSError:
            if had_old:
                os.rename(old, target)
            raise
    except OSError as exc:
        raise OperationFailed(f"the skill could not be put in place: {exc}") from None
