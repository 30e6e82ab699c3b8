"""Lines typed at the terminal (or piped in), read without a thread so Ctrl-C can stop a read.

The descriptor is waited on with Trio and read with ``os.read`` once it is readable; it is not
switched to non-blocking mode, which would leak into the shell that shares the terminal.
Descriptors the event loop cannot wait on (a regular file) are always ready, so they are read
directly.
"""

from __future__ import annotations

import os

import trio

__all__ = ["LineReader"]

CHUNK = 65536


class LineReader:
    """``readline()`` over a file descriptor: a line without its newline, ``None`` at the end."""

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False
        self._pollable = True
        self._unread: list[str] = []
        #: Whether a person types here (a terminal), rather than a pipe or a file.
        self.interactive = os.isatty(fd)

    async def readline(self) -> str | None:
        if self._unread:
            return self._unread.pop()
        while b"\n" not in self._buffer and not self._eof:
            await self._wait_readable()
            chunk = os.read(self._fd, CHUNK)
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True
        if not self._buffer:
            return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def unread(self, line: str) -> None:
        """Give back a line read by a prompt that was then withdrawn; the next read returns it."""
        self._unread.append(line)

    async def _wait_readable(self) -> None:
        if self._pollable:
            try:
                await trio.lowlevel.wait_readable(self._fd)
                return
            except OSError:  # epoll refuses regular files (EPERM): they are always readable
                self._pollable = False
        await trio.lowlevel.checkpoint()
