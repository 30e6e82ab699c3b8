"""One gateway per data dir, private files, and start-up failures as one line and exit code 2.

Real processes throughout: the lock is the operating system's, and so is ``kill -9``.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from aleph_trio import Config, open_gateway
from aleph_trio.kernel import DataDirLocked
from gatewayproc import env_without_token, start_server


def run_gateway(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A gateway process expected to refuse to start (it would otherwise run until killed)."""
    return subprocess.run(
        [sys.executable, "-m", "aleph_trio", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--config", str(tmp_path / "absent.toml"), *args],
        capture_output=True, text=True, timeout=60, env=env_without_token(),
    )  # fmt: skip


async def test_a_second_gateway_on_the_data_dir_exits_2_naming_the_first(tmp_path: Path) -> None:
    async for first in start_server(tmp_path):
        second = await trio.to_thread.run_sync(run_gateway, tmp_path)
        assert second.returncode == 2
        assert second.stdout == ""
        lines = second.stderr.strip().splitlines()
        assert lines == [
            f"aleph_trio: the data dir {tmp_path / 'data'} is in use by another gateway "
            f"(pid {first.process.pid})"
        ]


async def test_the_lock_goes_with_a_killed_gateway(tmp_path: Path) -> None:
    """``kill -9`` leaves no stale lock: the next gateway starts, recovers, and serves."""
    async for first in start_server(tmp_path):
        first.process.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await first.process.wait()
    async for again in start_server(tmp_path):
        assert "listening on ws://127.0.0.1:" in again.lines[0]


async def test_embedded_gateways_share_the_rule(tmp_path: Path) -> None:
    async with open_gateway(Config(), data_dir=tmp_path):
        with pytest.raises(DataDirLocked) as locked:
            async with open_gateway(Config(), data_dir=tmp_path):
                pass
        assert locked.value.directory == tmp_path
        assert locked.value.pid == os.getpid()
    async with open_gateway(Config(), data_dir=tmp_path) as gateway:  # released on close
        assert gateway.data_dir == tmp_path


async def test_every_file_in_the_data_dir_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "gateway.db").touch(mode=0o644)  # left by an older version
    (directory / "gateway.db").chmod(0o644)
    async with open_gateway(Config(), data_dir=directory) as gateway:
        async with gateway.connect() as client:
            await client.call("memory.store", {"content": "the sky is blue"})
        names = {p.name for p in directory.iterdir()}
        assert {"gateway.db", "gateway.db-wal", "gateway.db-shm", "gateway.lock", "token"} <= names
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}
    assert set(modes.values()) == {0o600}, modes


async def test_a_new_data_dir_is_private(tmp_path: Path) -> None:
    async with open_gateway(Config(), data_dir=tmp_path / "new"):
        assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_gateway(tmp_path, "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"aleph_trio: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_a_newer_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / "gateway.db") as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (999)")
    result = run_gateway(tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("aleph_trio: cannot open the database: the database schema is version")
    assert "newer than this gateway understands" in line


def test_a_bad_config_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nport = 'x'\n")
    result = run_gateway(tmp_path, "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith("aleph_trio: invalid configuration:")
    assert "Traceback" not in result.stderr
