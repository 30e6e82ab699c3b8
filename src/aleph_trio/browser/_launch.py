"""Starting and stopping Chromium: its arguments, its DevTools endpoint, its process group.

Chromium runs in a process group of its own (``start_new_session``); its renderers and
helpers stay in that group, so killing the group stops them. Only the crash handler
(``chrome_crashpad_handler``) starts sessions of its own; it exits with the browser, and
:func:`kill_marked` finds it by the mark every process of the browser carries in its
environment. The group is handed to the gateway's
:class:`~aleph_trio.approvals.ProcessGuard`, which kills it even if the gateway is killed.
(``--disable-crashpad-for-testing`` would keep the handler from starting, but then this
Chromium loads no page.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Final

import trio

from ..approvals import MARK_VARIABLE
from ..kernel import BrowserConfig, ExternalFailure

__all__ = [
    "DEFAULT_EXECUTABLE",
    "browser_arguments",
    "kill_group",
    "kill_marked",
    "launch",
    "marked_processes",
    "read_endpoint",
]

DEFAULT_EXECUTABLE: Final = "chromium"
#: Quiet, offline, loopback only: no first-run UI, no background requests to Google's services.
_FLAGS: Final = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,800",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def browser_arguments(config: BrowserConfig, profile: Path) -> list[str]:
    """The command line for one browser with its fresh ``profile`` directory."""
    executable = config.executable or shutil.which(DEFAULT_EXECUTABLE)
    if executable is None:
        raise ExternalFailure(
            "no browser: install Debian's chromium or set browser.executable", reason="no_browser"
        )
    args = [executable, *_FLAGS, f"--user-data-dir={profile}"]
    if config.headless:
        args.insert(1, "--headless")
    if os.geteuid() == 0:  # Chromium refuses to run as root with its sandbox
        args.insert(1, "--no-sandbox")
    args.append("about:blank")
    return args


async def launch(config: BrowserConfig, mark: str) -> tuple[trio.Process, Path]:
    """Start a browser in a new process group with a fresh profile; returns it and the profile.

    Its processes carry ``mark`` in their environment (see ``ProcessGuard``).
    """
    profile = Path(await trio.to_thread.run_sync(tempfile.mkdtemp, None, "aleph-browser-"))
    try:
        args = browser_arguments(config, profile)
        env = {**os.environ, MARK_VARIABLE: mark}
        process = await trio.lowlevel.open_process(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    except OSError as exc:
        await remove_profile(profile)
        raise ExternalFailure(f"the browser could not be started: {exc}") from None
    except BaseException:
        await remove_profile(profile)
        raise
    return process, profile


async def read_endpoint(profile: Path, process: trio.Process) -> tuple[int, str]:
    """The browser's DevTools port and WebSocket path, from ``DevToolsActivePort`` once
    Chromium wrote it (line 1 the port, line 2 the path); fails if the browser exits first."""
    port_file = profile / "DevToolsActivePort"
    delay = 0.01
    while True:
        try:
            text = await trio.Path(port_file).read_text("ascii")
        except FileNotFoundError:
            text = ""
        lines = text.split("\n")
        if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].startswith("/"):
            return int(lines[0]), lines[1].strip()
        if process.poll() is not None:
            raise ExternalFailure(
                f"the browser exited during start-up (exit status {process.returncode})"
            )
        await trio.sleep(delay)
        delay = min(delay * 2, 0.1)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def marked_processes(mark: str) -> list[int]:
    """Live processes (not zombies) whose environment carries ``MARK_VARIABLE=mark``."""
    wanted = f"{MARK_VARIABLE}={mark}".encode()
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                environ = Path(f"/proc/{entry.name}/environ").read_bytes()
            except OSError:
                continue  # gone, or not ours to read
            if wanted in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


def kill_marked(mark: str) -> None:
    """Kill whatever of one browser left its process group (its crash handler)."""
    for pid in marked_processes(mark):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


async def remove_profile(profile: Path) -> None:
    await trio.to_thread.run_sync(lambda: shutil.rmtree(profile, ignore_errors=True))
