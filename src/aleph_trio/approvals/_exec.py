"""Running an approved shell command (PROTOCOL §10): its own process group, capped output,
a timeout, and nothing left behind.

The command runs as ``/bin/sh -c <command>`` in a new session, so it and everything it starts
(``sleep 1000 &`` included) share one process group. When the shell exits, when the timeout
fires, or when the caller is cancelled, the whole group is killed; the pipes then close and the
readers finish. Output beyond the cap is read and dropped, so a command printing gigabytes costs
no memory. Given a :class:`~._guard.ProcessGuard`, the group also dies with the gateway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs
import trio

from ._guard import MARK_VARIABLE, ProcessGuard
from ._procfs import group_members

__all__ = ["ExecResult", "child_environment", "run_command"]

SHELL: Final = "/bin/sh"
#: Time a killed process group gets to be reaped before we stop waiting for it.
REAP_TIMEOUT_S: Final = 5.0
READ_CHUNK: Final = 65536


@attrs.frozen
class ExecResult:
    exit_code: int | None  #: ``None`` when the command was killed
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool
    duration_ms: int

    def describe(self) -> str:
        """The result as the model (and ``stream.tool_end``) sees it."""
        if self.timed_out:
            head = "timed out: the command was killed"
        else:
            head = f"exit code: {self.exit_code}"
        parts = [head]
        if self.stdout:
            parts.append(f"stdout:\n{self.stdout}")
        if self.stderr:
            parts.append(f"stderr:\n{self.stderr}")
        return "\n".join(parts)


def child_environment(hidden: set[str]) -> dict[str, str]:
    """The gateway's environment without its secrets (``hidden`` and every ``ALEPH_TRIO_*``)."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in hidden and not name.startswith("ALEPH_TRIO_")
    }


@attrs.define
class _Budget:
    """Bytes of output still to keep, shared by stdout and stderr."""

    remaining: int


@attrs.define
class _Capture:
    budget: _Budget
    data: bytearray = attrs.Factory(bytearray)
    dropped: int = 0

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes]"
        return text


async def _drain(stream: trio.abc.ReceiveStream, capture: _Capture) -> None:
    budget = capture.budget
    while chunk := await stream.receive_some(READ_CHUNK):
        keep = min(len(chunk), budget.remaining)
        if keep:
            capture.data += chunk[:keep]
            budget.remaining -= keep
        capture.dropped += len(chunk) - keep


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def _running_in_group(pgid: int) -> bool:
    """Whether a process of group ``pgid`` has not finished dying (zombies count as gone)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False  # nothing left, not even a zombie
    return any(state not in (b"Z", b"X") for _, state in group_members(pgid))


async def _wait_group_gone(pgid: int) -> None:
    """A killed process runs on until the kernel schedules its exit; on a busy machine that
    takes a moment. Wait for it, so the caller's "cancelled" means "gone"."""
    delay = 0.001
    while await trio.to_thread.run_sync(_running_in_group, pgid):
        await trio.sleep(delay)
        delay = min(delay * 2, 0.05)


async def run_command(
    command: str,
    *,
    cwd: Path,
    timeout_s: float,
    max_output_bytes: int,
    env: Mapping[str, str],
    guard: ProcessGuard | None = None,
) -> ExecResult:
    """Run ``command`` with the shell; cancelling the caller kills the whole process group.

    ``max_output_bytes`` caps stdout and stderr together, first come first kept. Raises
    ``OSError`` if the shell cannot be started.
    """
    started = trio.current_time()
    environment = dict(env)
    mark = guard.new_mark() if guard is not None else None
    if mark is not None:
        environment[MARK_VARIABLE] = mark
    process = await trio.lowlevel.open_process(
        [SHELL, "-c", command],
        cwd=str(cwd),
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    pgid = process.pid  # leader of its own session and group
    assert process.stdout is not None
    assert process.stderr is not None
    budget = _Budget(max_output_bytes)
    out, err = _Capture(budget), _Capture(budget)
    timed_out = False
    try:
        async with contextlib.AsyncExitStack() as watched:
            if guard is not None and mark is not None:
                await watched.enter_async_context(guard.watching(pgid, mark))
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_drain, process.stdout, out)
                    nursery.start_soon(_drain, process.stderr, err)
                    with trio.move_on_after(timeout_s) as timer:
                        await process.wait()
                    timed_out = timer.cancelled_caught
                    # The shell is done (or out of time): whatever it left running goes with
                    # it, which also closes the pipes so the readers finish.
                    _kill_group(pgid)
            finally:
                _kill_group(pgid)  # before the guard lets go of the group
    finally:
        _kill_group(pgid)
        with trio.CancelScope(shield=True), trio.move_on_after(REAP_TIMEOUT_S):
            await process.wait()
            await process.stdout.aclose()
            await process.stderr.aclose()
            await _wait_group_gone(pgid)
    return ExecResult(
        exit_code=None if timed_out else process.returncode,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        truncated=bool(out.dropped or err.dropped),
        duration_ms=round((trio.current_time() - started) * 1000),
    )
