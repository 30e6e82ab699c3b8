"""A real process in a pseudo-terminal, driven as a person at a keyboard would.

The process gets the slave side of a pty as stdin and stdout (and stderr unless a pipe is asked
for), so it sees a terminal: ``isatty()`` is true and what is typed is echoed. The test reads
the master side and waits for expected text, never for time.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

CLIENT = [sys.executable, "-m", "aleph_trio"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without a token or config the developer may have set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALEPH_TRIO_")}
    env.update(extra)
    return env


class Terminal:
    def __init__(self, process: trio.Process, master: trio.lowlevel.FdStream) -> None:
        self.process = process
        self._master = master
        self.output = ""  # everything shown so far, "\r\n" read as "\n"
        self._seen = 0  # how far expect() has consumed
        self._closed = False

    async def _read_more(self) -> bool:
        try:
            chunk = await self._master.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            chunk = b""  # Linux answers EIO once the last writer of the slave side is gone
        if not chunk:
            self._closed = True
            return False
        self.output += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        return True

    async def expect(self, text: str) -> str:
        """Wait until ``text`` appears after what was already expected; returns the output up
        to and including it. Bound it with the test's ``fail_after``."""
        while (found := self.output.find(text, self._seen)) < 0:
            if self._closed or not await self._read_more():
                raise AssertionError(f"{text!r} never appeared; the output was:\n{self.output}")
        before = self.output[self._seen : found + len(text)]
        self._seen = found + len(text)
        return before

    async def expect_each(self, *texts: str) -> None:
        """Wait until every one of ``texts`` appeared, in any order."""
        start = self._seen
        ends = []
        for text in texts:
            self._seen = start
            await self.expect(text)
            ends.append(self._seen)
        self._seen = max(ends)

    async def type(self, text: str) -> None:
        await self._master.send_all(text.encode())

    async def wait(self) -> int:
        """Read the rest of the output, then the exit code."""
        while not self._closed:
            await self._read_more()
        return await self.process.wait()

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)


@asynccontextmanager
async def open_terminal(
    args: Sequence[str], *, env: dict[str, str] | None = None, stderr: int | None = None
) -> AsyncIterator[Terminal]:
    """Run ``args`` in a new pseudo-terminal; ``stderr=subprocess.PIPE`` keeps stderr apart."""
    master, slave = os.openpty()
    try:
        process = await trio.lowlevel.open_process(
            list(args),
            stdin=slave,
            stdout=slave,
            stderr=slave if stderr is None else stderr,
            env=clean_env() if env is None else env,
        )
    finally:
        os.close(slave)
    terminal = Terminal(process, trio.lowlevel.FdStream(master))
    try:
        yield terminal
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            await terminal._master.aclose()
            if process.stderr is not None:
                await process.stderr.aclose()


class Pipe:
    """What a process writes to a pipe, waited for like :meth:`Terminal.expect`."""

    def __init__(self, stream: trio.abc.ReceiveStream | None) -> None:
        assert stream is not None
        self._stream = stream
        self.text = ""
        self._seen = 0

    async def expect(self, text: str) -> str:
        while (found := self.text.find(text, self._seen)) < 0:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise AssertionError(f"{text!r} never came; got:\n{self.text}")
            self.text += chunk.decode()
        before = self.text[self._seen : found + len(text)]
        self._seen = found + len(text)
        return before

    async def rest(self) -> str:
        """Everything, once the process closed the pipe."""
        while chunk := await self._stream.receive_some(65536):
            self.text += chunk.decode()
        return self.text


__all__ = ["CLIENT", "Pipe", "Terminal", "clean_env", "open_terminal"]
