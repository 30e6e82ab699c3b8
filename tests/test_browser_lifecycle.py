"""The browser never outlives the gateway: not after a clean stop, not after ``kill -9``; and
what the browser may reach (``browser.allowed_schemes``, ``browser.denied_hosts``)."""

from __future__ import annotations

import shutil
import signal
from functools import partial
from pathlib import Path

import pytest

from aleph_trio import AlephError, Config, open_client, open_gateway
from aleph_trio.browser._safety import HostPolicy, check_scheme
from aleph_trio.kernel import BrowserConfig, InvalidArgument
from browserhelp import browser_processes, carrying, mark_of, wait_until
from gatewayproc import start_server

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")


@needs_chromium
async def test_closing_the_gateway_leaves_no_browser_process(data_dir: Path) -> None:
    async with open_gateway(Config(), data_dir=data_dir) as gateway, gateway.connect() as client:
        assert gateway.browser.statistics().pid is None  # started on first use only
        await client.call("browser.navigate", {"url": "data:text/html,<title>x</title>"})
        pid = gateway.browser.statistics().pid
        assert pid is not None
        mark = mark_of(pid)
        assert len(browser_processes(pid)) > 1 and pid in carrying(mark)
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        profile = Path(next(a for a in args if a.startswith("--user-data-dir=")).split("=", 1)[1])
        assert (profile / "DevToolsActivePort").exists()
    assert browser_processes(pid) == []
    assert carrying(mark) == []  # the crash handler, in a session of its own, is gone too
    assert not profile.exists()  # the fresh profile went with it


@needs_chromium
async def test_a_missing_executable_is_a_tool_error(data_dir: Path) -> None:
    config = Config(browser=BrowserConfig(executable=str(data_dir / "no-such-chromium")))
    async with open_gateway(config, data_dir=data_dir) as gateway, gateway.connect() as client:
        with pytest.raises(AlephError) as caught:
            await client.call("browser.navigate", {"url": "about:blank"})
        assert caught.value.code == -32006 and "could not be started" in caught.value.message


def chromium_children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            exe = (entry / "exe").readlink()
        except OSError:
            continue
        if int(fields[1]) == pid and "chrom" in str(exe):
            found.append(int(entry.name))
    return found


@needs_chromium
async def test_kill_9_of_the_gateway_takes_its_browser(tmp_path: Path) -> None:
    async for server in start_server(tmp_path, "--no-auth"):
        async with open_client(server.url) as client:
            await client.call("browser.navigate", {"url": "about:blank"})
        (browser,) = chromium_children(server.process.pid)
        mark = mark_of(browser)
        assert carrying(mark)
        server.process.send_signal(signal.SIGKILL)
        await wait_until(partial(gone, mark))  # the watcher killed the group


def gone(mark: bytes) -> bool:
    return not carrying(mark)


@pytest.mark.parametrize(
    ("host", "denied"),
    [
        ("169.254.169.254", True),
        ("169.254.0.1", True),
        ("2852039166", True),
        ("0xa9fea9fe", True),
        ("0251.0376.0251.0376", True),
        ("169.254.43518", True),
        ("[::ffff:169.254.169.254]", True),
        ("::ffff:a9fe:a9fe", True),
        ("[fe80::1]", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
        ("metadata.google.internal", True),
        ("Metadata.Google.Internal.", True),
        ("metadata.goog", True),
        ("127.0.0.1", False),
        ("localhost", False),
        ("169.255.0.1", False),
        ("example.com", False),
        ("notmetadata.google.internal", False),
    ],
)
def test_the_default_denied_hosts(host: str, denied: bool) -> None:
    assert HostPolicy(BrowserConfig().denied_hosts).denies(host) is denied


def test_denied_domains_cover_their_subdomains() -> None:
    policy = HostPolicy([".corp.example", "10.0.0.0/8", "db.local"])
    assert policy.denies("corp.example") and policy.denies("a.b.corp.example")
    assert not policy.denies("corp.example.com") and not policy.denies("xcorp.example")
    assert policy.denies("10.1.2.3") and policy.denies("167837953")  # 10.1.2.1 as one number
    assert policy.denies("db.local") and not policy.denies("x.db.local")
    assert not HostPolicy([])


async def test_names_are_refused_by_what_they_resolve_to() -> None:
    policy = HostPolicy(["127.0.0.0/8"])
    with pytest.raises(InvalidArgument, match="resolves to a denied address"):
        await policy.check_url("http://localhost:1/")
    await HostPolicy(["10.0.0.0/8"]).check_url("http://localhost:1/")


def test_schemes() -> None:
    allowed = BrowserConfig().allowed_schemes
    assert check_scheme("HTTPS://x", allowed) == "https"
    assert check_scheme("data:text/plain,a", allowed) == "data"
    for url in ("file:///etc/passwd", "javascript:1", "view-source:http://x", "x"):
        with pytest.raises(InvalidArgument):
            check_scheme(url, allowed)


async def test_configured_schemes_apply(data_dir: Path) -> None:
    """Refusals happen before any browser is started: no Chromium needed."""
    config = Config(browser=BrowserConfig(allowed_schemes=("https",), denied_hosts=()))
    async with open_gateway(config, data_dir=data_dir) as gateway, gateway.connect() as client:
        for url in ("http://127.0.0.1/", "data:text/html,x"):
            with pytest.raises(AlephError) as caught:
                await client.call("browser.navigate", {"url": url})
            assert caught.value.code == -32602
        assert gateway.browser.statistics().launches == 0
