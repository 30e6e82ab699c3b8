"""``python -m aleph_trio`` as a real subprocess, for tests: start it, read its start-up lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import trio


def env_without_token() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ALEPH_TRIO_TOKEN", None)
    env.pop("ALEPH_TRIO_CONFIG", None)
    return env


class Server:
    def __init__(self, process: trio.Process, lines: list[str], url: str) -> None:
        self.process = process
        self.lines = lines
        self.url = url


async def start_server(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, stderr: Path | None = None
) -> AsyncIterator[Server]:
    """Start a gateway on ``tmp_path/data``; ``stderr`` names a file for its log (else it is
    dropped)."""
    config = tmp_path / "absent.toml"
    cmd = [
        sys.executable,
        "-m",
        "aleph_trio",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--config",
        str(config),
        *args,
    ]
    log: int = subprocess.DEVNULL
    if stderr is not None:
        log = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = await trio.lowlevel.open_process(
            cmd, stdout=subprocess.PIPE, stderr=log, env=env or env_without_token()
        )
    finally:
        if stderr is not None:
            os.close(log)  # the child has its own copy
    assert process.stdout is not None
    lines: list[str] = []
    buffer = b""
    try:
        with trio.fail_after(20):
            while len(lines) < 4:
                chunk = await process.stdout.receive_some(4096)
                assert chunk, f"server exited early: {lines}"
                buffer += chunk
                *done, buffer = buffer.split(b"\n")
                lines += [line.decode() for line in done]
        match = re.search(r"listening on (ws://\S+)", lines[0])
        assert match, lines
        yield Server(process, lines, match.group(1))
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
