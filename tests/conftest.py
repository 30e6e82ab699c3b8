"""Shared fixtures: a gateway per test, in-process and socket clients, and a deadline for every
test.

Rules for every test here: bind only to 127.0.0.1 on port 0, put a deadline on anything that does
I/O, and use ``autojump_clock`` for anything that waits on a timer. Every async test also runs
under :data:`REAL_DEADLINE_S` (or :data:`VIRTUAL_DEADLINE_S` on a virtual clock), so a test that
waits for something that never comes fails by name, at once, instead of hanging into the next.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, settings

from aleph_trio import Client, Config, Gateway, open_client, open_gateway

settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=60,
    deadline=None,
    derandomize=True,  # what CI runs is what a developer runs; "fuzz" explores
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


#: git, started by skills.install, may reach only local repositories from the tests (fuzzed
#: params can look like ``user@host:path`` or ``https://...``); a test serving git on loopback
#: allows ``git`` too.
os.environ["GIT_ALLOW_PROTOCOL"] = "file"

#: Longest an async test may take on the real clock (pytest-timeout's 120 s is the backstop).
REAL_DEADLINE_S = 90.0
#: On a virtual clock a hang jumps straight to the deadline, so it can be generous: some cron
#: tests live through months of virtual time.
VIRTUAL_DEADLINE_S = 400 * 86400.0


def _with_deadline(
    test: Callable[..., Awaitable[Any]],
    *,
    real_s: float = REAL_DEADLINE_S,
    virtual_s: float = VIRTUAL_DEADLINE_S,
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        virtual = isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
        with trio.fail_after(virtual_s if virtual else real_s):
            return await test(*args, **kwargs)

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.obj = _with_deadline(item.obj)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def config() -> Config:
    return Config()


@pytest.fixture
async def gateway(config: Config, data_dir: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(config, data_dir=data_dir) as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[Client]:
    """An owner client over the in-process transport."""
    async with gateway.connect() as c:
        yield c


@pytest.fixture
async def port(gateway: Gateway, nursery: trio.Nursery) -> int:
    """The gateway serving real sockets on 127.0.0.1, on a free port."""
    bound: int = await nursery.start(gateway.serve, "127.0.0.1", 0)
    return bound


@pytest.fixture
def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/"


@pytest.fixture
async def socket_client(url: str, gateway: Gateway) -> AsyncIterator[Client]:
    """An owner client over a real WebSocket."""
    async with open_client(url, token=gateway.owner_token) as c:
        yield c


@pytest.fixture
async def open_raw(gateway: Gateway, nursery: trio.Nursery):  # type: ignore[no-untyped-def]
    """Factory for raw WebSocket clients over in-memory streams (virtual-clock friendly).

    ``await open_raw()`` returns a :class:`tests.rawws.RawWebSocket` already upgraded;
    ``lockstep=True`` gives a pipe with no buffer at all (for back-pressure tests).
    """
    from rawws import RawWebSocket

    opened: list[trio.abc.Stream] = []

    async def factory(
        *, lockstep: bool = False, path: str = "/", upgrade: bool = True
    ) -> RawWebSocket:
        pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
        client_stream, server_stream = pair()
        nursery.start_soon(gateway.serve_stream, server_stream)
        opened.append(client_stream)
        raw = RawWebSocket(client_stream)
        if upgrade:
            assert await raw.handshake(path) == 101
        return raw

    yield factory
    for stream in opened:
        await stream.aclose()


@pytest.fixture
def patient_clock(monkeypatch: pytest.MonkeyPatch) -> trio.testing.MockClock:
    """A virtual clock that jumps only after 50 ms of real idleness with no worker thread busy.

    ``autojump_clock`` jumps the moment every task is blocked, which includes tasks waiting on a
    worker thread (file reads, SQLite) or on the kernel (socketpairs): timeouts would fire before
    the work finished. This one waits 50 ms for the kernel and, because a slow SQLite write on a
    loaded machine can take longer than any fixed threshold, does not jump at all while
    ``trio.to_thread.run_sync`` has a thread out.
    """
    threshold = 0.05
    clock = trio.testing.MockClock(autojump_threshold=threshold)
    run_sync = trio.to_thread.run_sync
    busy = 0

    async def run_sync_holding_the_clock(*args: Any, **kwargs: Any) -> Any:
        nonlocal busy
        busy += 1
        clock.autojump_threshold = math.inf
        try:
            return await run_sync(*args, **kwargs)
        finally:
            busy -= 1
            if not busy:
                clock.autojump_threshold = threshold

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync_holding_the_clock)
    return clock
