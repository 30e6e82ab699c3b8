"""A gateway with its browser and a page server, shared by the tests of one module.

Starting Chromium takes about a second, so a module starts one gateway for all its tests. pytest-
trio gives each test its own Trio run, so the shared gateway runs in a Trio run of its own in a
thread, serving a real WebSocket on 127.0.0.1; each test connects to it with a real client.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

from aleph_trio import Config, Gateway, open_gateway
from pageserver import PageServer, serve_pages


@attrs.define
class SharedGateway:
    gateway: Gateway
    url: str
    site: PageServer


def browser_processes(pid: int) -> list[int]:
    """Live (not zombie) processes of the browser whose process group is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid and fields[0] != b"Z":
            found.append(int(entry))
    return found


def carrying(mark: bytes) -> list[int]:
    """Live (not zombie) processes whose environment holds ``mark`` (see :func:`mark_of`)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in environ.split(b"\0") and state != b"Z":
            found.append(int(entry))
    return found


async def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        # Other processes' states can only be polled: /proc sends no notifications.
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.02)


def mark_of(pid: int) -> bytes:
    """The ``ALEPH_TRIO_EXEC=<mark>`` entry of a process's environment."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(entry for entry in environ if entry.startswith(b"ALEPH_TRIO_EXEC="))


def run_shared_gateway(config: Config, data_dir: Path) -> Iterator[SharedGateway]:
    """Run a gateway and a page server in a thread until the generator is closed."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = trio.Event()
        box["stop"] = stop
        box["token"] = trio.lowlevel.current_trio_token()
        async with open_gateway(config, data_dir=data_dir) as gateway:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(gateway.serve, "127.0.0.1", 0)
                site = await nursery.start(serve_pages)
                box["shared"] = SharedGateway(gateway, f"ws://127.0.0.1:{port}/", site)
                ready.set()
                await stop.wait()
                nursery.cancel_scope.cancel()

    def thread() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported by the fixture
            box["error"] = exc
        finally:
            ready.set()

    worker = threading.Thread(target=thread, name="shared-gateway", daemon=True)
    worker.start()
    ready.wait(60)
    if "shared" not in box:
        raise RuntimeError(f"the shared gateway did not start: {box.get('error')!r}")
    try:
        yield box["shared"]
    finally:
        box["token"].run_sync_soon(box["stop"].set)
        worker.join(30)
        assert not worker.is_alive(), "the shared gateway did not stop"
        if "error" in box:
            raise box["error"]
