"""Commands die with the gateway: no shell or child outlives it, whatever ends it.

A command runs in a process group of its own (``_exec.py``), killed when the command is over,
times out or is cancelled. Two more layers cover a gateway that dies without doing that:

- **The watcher** (``_watcher.py``), a tiny process started with the first command, holds the
  read end of a pipe; the gateway tells it each group as it starts and ends. When the gateway
  dies, ``kill -9`` included, the kernel closes the pipe and the watcher kills every group still
  running, at once.
- **The record** ``<data dir>/exec-groups`` lists the running groups with a mark each command
  carries in its environment (``ALEPH_TRIO_EXEC``). A gateway starting on the data dir (under
  its lock, so no other gateway owns those commands) kills whatever survived both: processes
  in a listed group that carry the mark, so a reused process id is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final, final

import trio

from ..kernel import component_logger
from ._procfs import group_members

__all__ = ["MARK_VARIABLE", "ProcessGuard"]

log = component_logger("exec")

#: The environment variable that marks a command's processes as this gateway's.
MARK_VARIABLE: Final = "ALEPH_TRIO_EXEC"
RECORD_FILE: Final = "exec-groups"
WATCHER: Final = Path(__file__).with_name("_watcher.py")


def _carries(pid: int, mark: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return mark in environ.split(b"\0")


def kill_survivors(record: dict[int, str]) -> int:
    """Kill processes in the recorded groups that carry their group's mark; returns how many."""
    killed = 0
    for pgid, mark in record.items():
        for pid, _ in group_members(pgid):
            if _carries(pid, f"{MARK_VARIABLE}={mark}".encode()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
    return killed


@final
class ProcessGuard:
    """Keeps the record and the watcher for the commands of one gateway's data dir."""

    def __init__(self, directory: Path) -> None:
        self._record_path = directory / RECORD_FILE
        self._groups: dict[int, str] = {}  #: pgid → mark
        self._watcher: trio.Process | None = None
        self._watcher_failed = False
        self._writing = trio.Lock()

    def new_mark(self) -> str:
        """A mark for the next command's environment (``MARK_VARIABLE=<mark>``)."""
        return uuid.uuid4().hex

    async def recover(self) -> int:
        """At start-up, under the data dir's lock: kill what commands of a previous process
        left running; returns how many processes that was."""
        record = await trio.to_thread.run_sync(self._read_record)
        if not record:
            return 0
        killed = await trio.to_thread.run_sync(kill_survivors, record)
        await trio.to_thread.run_sync(self._write_record, {})
        if killed:
            log.warning("killed %d process(es) left running by the last stop's commands", killed)
        return killed

    @contextlib.asynccontextmanager
    async def watching(self, pgid: int, mark: str) -> AsyncIterator[None]:
        """While the block runs, group ``pgid`` (its processes carry ``mark``) dies with the
        gateway."""
        async with self._writing:
            self._groups[pgid] = mark
            # Recorded first: once the watcher knows the group, the record does too.
            await trio.to_thread.run_sync(self._write_record, dict(self._groups))
            await self._tell(b"+%d\n" % pgid)
        try:
            yield
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                async with self._writing:
                    self._groups.pop(pgid, None)
                    await self._tell(b"-%d\n" % pgid)
                    await trio.to_thread.run_sync(self._write_record, dict(self._groups))

    async def aclose(self) -> None:
        """The gateway is stopping and its commands are over: let the watcher go."""
        watcher, self._watcher = self._watcher, None
        if watcher is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            assert watcher.stdin is not None
            await watcher.stdin.aclose()
            await watcher.wait()

    async def _tell(self, line: bytes) -> None:
        if self._watcher is None and not self._watcher_failed:
            await self._start_watcher()
        watcher = self._watcher
        if watcher is None or watcher.stdin is None:
            return
        try:
            await watcher.stdin.send_all(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning("the command watcher has gone; commands are recorded for the next start")
            self._watcher, self._watcher_failed = None, True

    async def _start_watcher(self) -> None:
        try:
            self._watcher = await trio.lowlevel.open_process(
                [sys.executable, "-I", "-S", str(WATCHER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("cannot start the command watcher (%s); commands are recorded", exc)
            self._watcher_failed = True

    def _read_record(self) -> dict[int, str]:
        try:
            text = self._record_path.read_text("ascii")
        except FileNotFoundError:
            return {}
        record: dict[int, str] = {}
        for line in text.splitlines():
            pgid, _, mark = line.partition(" ")
            if pgid.isdigit() and mark:
                record[int(pgid)] = mark
        return record

    def _write_record(self, groups: dict[int, str]) -> None:
        temp = self._record_path.with_name(RECORD_FILE + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.writelines(f"{pgid} {mark}\n" for pgid, mark in groups.items())
        os.replace(temp, self._record_path)
