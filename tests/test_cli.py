"""``python -m aleph_trio`` as a real subprocess: start-up output, auth token, refusal, signals."""

from __future__ import annotations

import re
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from aleph_trio import open_client
from aleph_trio.__main__ import is_loopback, main
from gatewayproc import Server, env_without_token, start_server
from rawws import RawWebSocket


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async for s in start_server(tmp_path):
        yield s


async def test_prints_url_and_where_the_token_is(server: Server, tmp_path: Path) -> None:
    token_file = tmp_path / "data" / "token"
    assert server.url.startswith("ws://127.0.0.1:")
    assert server.lines[1] == f"owner token: in {token_file}"
    ui = server.url.replace("ws://", "http://").rstrip("/") + "/ui/"
    assert server.lines[3] == f"Control UI: {ui} (health: /health, metrics: /metrics)"
    token = token_file.read_text().strip()
    assert token not in "\n".join(server.lines)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with trio.fail_after(10):
        async with open_client(server.url, token=token) as client:
            assert (await client.call("health"))["status"] == "ok"


async def test_sigterm_closes_clients_1001_and_exits_0(server: Server, tmp_path: Path) -> None:
    token = (tmp_path / "data" / "token").read_text().strip()
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    with trio.fail_after(15):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            raw = RawWebSocket(stream)
            assert await raw.handshake() == 101
            assert (await raw.call("connect", {"token": token}))["result"]["authenticated"]
            server.process.send_signal(signal.SIGTERM)
            assert (await raw.wait_closed()).code == 1001
        assert await server.process.wait() == 0


async def test_sigint_exits_0(server: Server) -> None:
    server.process.send_signal(signal.SIGINT)
    with trio.fail_after(15):
        assert await server.process.wait() == 0


async def test_env_token_is_used_and_no_token_file_is_made(tmp_path: Path) -> None:
    env = env_without_token()
    env["ALEPH_TRIO_TOKEN"] = "from-the-environment"
    async for server in start_server(tmp_path, env=env):
        assert server.lines[1] == "owner token: in the environment variable ALEPH_TRIO_TOKEN"
        with trio.fail_after(10):
            async with open_client(server.url, token="from-the-environment") as client:
                assert (await client.call("health"))["status"] == "ok"
        assert not (tmp_path / "data" / "token").exists()


def test_print_token_prints_the_env_token_and_exits(tmp_path: Path) -> None:
    env = env_without_token()
    env["ALEPH_TRIO_TOKEN"] = "from-the-environment"
    result = subprocess.run(
        [sys.executable, "-m", "aleph_trio", "--data-dir", str(tmp_path / "d"), "--print-token",
         "--config", str(tmp_path / "none.toml")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "from-the-environment\n", "")
    assert not (tmp_path / "d" / "token").exists()


async def test_print_token_beside_a_running_gateway(server: Server, tmp_path: Path) -> None:
    """It creates nothing and takes neither the data dir's lock nor a port."""
    config = str(tmp_path / "absent.toml")
    data_dir = tmp_path / "data"
    result = await trio.to_thread.run_sync(
        lambda: run_cli("--print-token", "--config", config, tmp_path=tmp_path, data_dir=data_dir)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (tmp_path / "data" / "token").read_text()


def test_print_token_creates_the_token_when_missing(tmp_path: Path) -> None:
    result = run_cli("--print-token", "--config", str(tmp_path / "none.toml"), tmp_path=tmp_path)
    token_file = tmp_path / "d" / "token"
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.strip() == token_file.read_text().strip() and len(result.stdout) > 40
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert not (tmp_path / "d" / "gateway.db").exists()  # no gateway was started


def run_cli(
    *args: str, tmp_path: Path, data_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    data_dir = data_dir or tmp_path / "d"
    return subprocess.run(
        [sys.executable, "-m", "aleph_trio", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_without_token(),
    )


def test_refuses_public_bind_without_auth(tmp_path: Path) -> None:
    result = run_cli(
        "--host", "0.0.0.0", "--no-auth", "--config", str(tmp_path / "none.toml"), tmp_path=tmp_path
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert result.stdout == ""


def test_invalid_config_exits_2_naming_the_path(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nport = 'x'\n[agents.main]\nmodel = 3\n")
    result = run_cli("--config", str(config), tmp_path=tmp_path)
    assert result.returncode == 2
    assert "server.port" in result.stderr and "agents.main.model" in result.stderr


def test_main_is_callable_for_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--host",
            "10.1.2.3",
            "--no-auth",
            "--config",
            str(tmp_path / "x.toml"),
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "refusing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("127.8.9.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


async def logged_session(tmp_path: Path, *args: str) -> str:
    """Start a gateway with ``args``, connect and call ``health``, stop it; its log."""
    tmp_path.mkdir(exist_ok=True)
    log = tmp_path / "gateway.log"
    async for server in start_server(tmp_path, *args, stderr=log):
        token = (tmp_path / "data" / "token").read_text().strip()
        with trio.fail_after(20):
            async with open_client(server.url, token=token) as client:
                await client.call("health")
            server.process.send_signal(signal.SIGTERM)
            assert await server.process.wait() == 0
    return log.read_text()


async def test_log_level_debug_shows_what_an_operator_looks_for(tmp_path: Path) -> None:
    text = await logged_session(tmp_path, "--log-level", "debug")
    assert re.search(r"aleph_trio\.server: conn_\w+ opened from 127\.0\.0\.1", text), text
    assert re.search(r"aleph_trio\.auth: conn_\w+ \(127\.0\.0\.1\) authenticated as owner", text)
    assert re.search(r"aleph_trio\.rpc: conn_\w+ health: ok in \d+\.\d\d ms", text)
    assert re.search(r"aleph_trio\.server: closing conn_\w+ \(127\.0\.0\.1\)", text)
    assert "DEBUG   httpx" not in text and "DEBUG   trio" not in text  # only our loggers


async def test_info_hides_debug_and_components_pick_one(tmp_path: Path) -> None:
    text = await logged_session(tmp_path / "info")
    assert " DEBUG " not in text
    config = tmp_path / "rpc.toml"
    config.write_text('[logging]\nlevel = "info"\ncomponents = { rpc = "debug" }\n')
    text = await logged_session(tmp_path / "rpc", "--config", str(config))
    assert re.search(r"aleph_trio\.rpc: conn_\w+ health: ok", text), text
    assert "opened from" not in text  # the server component stays at info
