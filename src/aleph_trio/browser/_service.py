"""The ``browser`` service (PROTOCOL §13): one managed Chromium with one page, for clients
(``browser.*``) and agents (the ``browser_*`` tools).

The browser starts on first use, inside the service's nursery. Each browser is one task that
owns the process, its DevTools socket (a :class:`CdpConnection`), the page and the profile
directory; whatever ends that task (the gateway stopping, the process dying, the socket
closing) kills the process group and removes the profile. A call that was using a browser
that died fails with :class:`ExternalFailure`; the next call starts a new one. Calls take
turns on the page, and every call has a deadline (``timeout_ms``, else
``browser.timeout_ms``) covering its wait for the page and a start-up.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, final

import attrs
import trio

from ..approvals import ProcessGuard
from ..kernel import BrowserConfig, ExternalFailure, InvalidArgument, TimedOut, component_logger
from . import _actions
from ._actions import Target
from ._cdp import MAX_MESSAGE_SIZE, CdpClosed, CdpConnection, CdpError
from ._launch import kill_group, kill_marked, launch, read_endpoint, remove_profile
from ._page import Page, WaitUntil, open_page
from ._safety import HostPolicy, check_scheme
from ._wire import WireRefused, open_wire

__all__ = ["BrowserService", "BrowserStatistics"]

log = component_logger("browser")

T = TypeVar("T")
#: How long the clean-up after a timed-out call (stop loading, stop a script) may take.
RECOVER_S = 2.0


@attrs.frozen
class BrowserStatistics:
    running: bool
    pid: int | None
    launches: int
    restarts: int
    dropped_events: int


@attrs.define(eq=False)
class _Browser:
    process: trio.Process
    connection: CdpConnection
    page: Page
    scope: trio.CancelScope
    done: trio.Event

    @property
    def alive(self) -> bool:
        return not (self.connection.closed.is_set() or self.page.gone or self.done.is_set())

    async def stop(self) -> None:
        self.scope.cancel()
        await self.done.wait()


@final
class BrowserService:
    """Launches, restarts and stops the browser; runs the page actions under deadlines."""

    def __init__(self, config: Callable[[], BrowserConfig], guard: ProcessGuard) -> None:
        self._config = config
        self._guard = guard
        self._nursery: trio.Nursery | None = None
        self._browser: _Browser | None = None
        self._starting = trio.Lock()
        self._turn = trio.Lock()
        self._policy_cache: HostPolicy = HostPolicy(())
        self._launches = 0
        self._restarts = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled (the gateway stopping), then stop the browser if it runs."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery, self._browser = None, None

    def statistics(self) -> BrowserStatistics:
        browser = self._browser
        running = browser is not None and browser.alive
        return BrowserStatistics(
            running=running,
            pid=browser.process.pid if browser is not None and running else None,
            launches=self._launches,
            restarts=self._restarts,
            dropped_events=browser.connection.dropped_events if browser is not None else 0,
        )

    def _policy(self) -> HostPolicy:
        denied = self._config().denied_hosts
        if self._policy_cache.entries != denied:
            self._policy_cache = HostPolicy(denied)
        return self._policy_cache

    async def _ensure(self) -> _Browser:
        browser = self._browser
        if browser is not None and browser.alive:
            return browser
        async with self._starting:
            browser = self._browser
            if browser is not None and browser.alive:
                return browser
            if browser is not None:
                self._restarts += 1
                log.warning("the browser went away; starting a new one")
                await browser.stop()
            if self._nursery is None:
                raise ExternalFailure("the browser service is not running")
            try:
                started: _Browser = await self._nursery.start(self._run_browser, self._config())
            except RuntimeError:  # the task ended before it had a browser to report
                raise ExternalFailure("the browser exited during start-up") from None
            except BaseExceptionGroup as group:
                failures, rest = group.split(ExternalFailure)
                if failures is None or rest is not None:
                    raise
                raise _first(failures) from None
            self._browser = started
            self._launches += 1
            return started

    async def _run_browser(
        self, config: BrowserConfig, *, task_status: trio.TaskStatus[_Browser]
    ) -> None:
        mark = self._guard.new_mark()
        process, profile = await launch(config, mark)
        done = trio.Event()
        started = False
        streams: list[trio.SocketStream] = []

        def report(browser: _Browser) -> None:
            nonlocal started
            started = True
            task_status.started(browser)

        try:
            async with self._guard.watching(process.pid, mark):
                try:
                    await self._drive(process, profile, streams, done, report)
                finally:
                    # Killed while the watcher still knows the group: no moment in which a
                    # gateway killed with -9 would leave it running.
                    with trio.CancelScope(shield=True):
                        kill_group(process.pid)
                        with trio.move_on_after(5):
                            await process.wait()
        except* Exception:
            if not started:
                raise
            log.exception("the browser's connection failed; the next call starts a new browser")
        finally:
            with trio.CancelScope(shield=True):
                for stream in streams:
                    await stream.aclose()
                kill_group(process.pid)  # again: cancelled before the watcher knew the group
                with trio.move_on_after(5):
                    await process.wait()
                await trio.to_thread.run_sync(kill_marked, mark)
                await remove_profile(profile)
                done.set()
                log.info("browser stopped (pid %d)", process.pid)

    async def _drive(
        self,
        process: trio.Process,
        profile: Path,
        streams: list[trio.SocketStream],
        done: trio.Event,
        report: Callable[[_Browser], None],
    ) -> None:
        """Connect to the started browser, open the page, report it, and run until the
        process exits or the socket closes."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_end_with, process, nursery.cancel_scope)
            port, path = await read_endpoint(profile, process)
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                streams.append(stream)  # closed when the browser's task ends, whatever ends it
                wire = await open_wire(stream, "127.0.0.1", path, max_message_size=MAX_MESSAGE_SIZE)
            except (OSError, trio.BrokenResourceError, WireRefused) as exc:
                raise ExternalFailure(f"cannot reach the browser's DevTools: {exc}") from None
            connection = CdpConnection(wire)
            nursery.start_soon(connection.serve)
            try:
                page = await open_page(connection, nursery, self._policy)
            except (CdpError, CdpClosed) as exc:
                raise ExternalFailure(f"the browser did not open its page: {exc}") from None
            log.info("browser started (pid %d)", process.pid)
            report(_Browser(process, connection, page, nursery.cancel_scope, done))
            await connection.closed.wait()
            nursery.cancel_scope.cancel()

    # -- calls -----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _take_turn(self) -> AsyncIterator[None]:
        """The page's turn. Free, it is taken without a trip through the scheduler (the call
        checkpoints anyway when it talks to the browser); otherwise in the lock's FIFO order."""
        try:
            self._turn.acquire_nowait()  # refuses while others queue: no overtaking
        except trio.WouldBlock:
            await self._turn.acquire()
        try:
            yield
        finally:
            self._turn.release()

    async def _use(
        self,
        what: str,
        action: Callable[[Page], Awaitable[T]],
        *,
        timeout_ms: int | None = None,
        recover: Callable[[Page], Awaitable[object]] | None = None,
        settle: bool = True,
    ) -> T:
        timeout_s = (timeout_ms or self._config().timeout_ms) / 1000
        page: Page | None = None
        with trio.move_on_after(timeout_s):
            async with self._take_turn():
                browser = await self._ensure()
                page = browser.page
                try:
                    if settle:
                        await page.settle()
                    try:
                        return await action(page)
                    except CdpError as exc:
                        if not _between_documents(exc):
                            raise
                    # The page moved on under the action (a navigation it started itself
                    # committed meanwhile): once more, on the new document.
                    await page.settle()
                    return await action(page)
                except CdpClosed:
                    raise ExternalFailure(
                        f"the browser stopped during {what}; the next call starts it again"
                    ) from None
                except CdpError as exc:
                    raise ExternalFailure(f"{what} failed: {exc.message}") from None
        if page is not None and recover is not None and not page.gone:
            with trio.move_on_after(RECOVER_S) as cleanup:
                cleanup.shield = True
                try:
                    await recover(page)
                except (CdpError, CdpClosed):
                    pass
        raise TimedOut(
            f"{what} did not finish within {timeout_s:g} s", timeout_ms=int(timeout_s * 1000)
        )

    async def navigate(
        self, url: str, *, wait_until: WaitUntil = "load", timeout_ms: int | None = None
    ) -> dict[str, Any]:
        check_scheme(url, self._config().allowed_schemes)
        self._policy().check_host(url)

        async def go(page: Page) -> dict[str, Any]:
            await self._policy().check_url(url)  # what the name resolves to
            return await page.navigate(url, wait_until)

        return await self._use(
            "navigation",
            go,
            timeout_ms=timeout_ms,
            recover=lambda page: page.send("Page.stopLoading"),
            settle=False,  # a new navigation replaces whatever the page was loading
        )

    async def click(self, target: Target) -> None:
        _check_target(target)
        await self._use("click", lambda page: _actions.click(page, target))

    async def type(self, target: Target, text: str, *, clear: bool = False) -> None:
        _check_target(target)
        await self._use("typing", lambda page: _actions.type_text(page, target, text, clear=clear))

    async def screenshot(
        self,
        target: Target | None = None,
        *,
        full_page: bool = False,
        format: Literal["png", "jpeg"] = "png",
    ) -> dict[str, Any]:
        if target is not None:
            _check_target(target)
        return await self._use(
            "screenshot",
            lambda page: _actions.screenshot(page, target, full_page=full_page, format=format),
        )

    async def evaluate(self, script: str, *, timeout_ms: int | None = None) -> dict[str, Any]:
        return await self._use(
            "evaluation",
            lambda page: _actions.evaluate(page, script),
            timeout_ms=timeout_ms,
            recover=lambda page: page.send("Runtime.terminateExecution"),
        )

    async def snapshot(self) -> dict[str, Any]:
        return await self._use("snapshot", _actions.snapshot)


#: What Chromium answers when a command meets a document that is being replaced.
_BETWEEN_DOCUMENTS = (
    "Not attached to an active page",
    "Execution context was destroyed",
    "Cannot find context with specified id",
    "Inspected target navigated or closed",
)


def _between_documents(error: CdpError) -> bool:
    return any(text in error.message for text in _BETWEEN_DOCUMENTS)


def _check_target(target: Target) -> None:
    point = (target.x is not None, target.y is not None)
    if point[0] != point[1]:
        raise InvalidArgument.field("$.target", "a point needs both x and y")
    given = [target.selector is not None, target.ref is not None, target.text is not None, point[0]]
    if sum(given) != 1:
        raise InvalidArgument.field(
            "$.target", "give exactly one of selector, ref, text, or x and y"
        )


async def _end_with(process: trio.Process, scope: trio.CancelScope) -> None:
    """When the browser process exits, everything that belongs to it ends."""
    await process.wait()
    scope.cancel()


def _first(group: BaseExceptionGroup[ExternalFailure]) -> ExternalFailure:
    error = group.exceptions[0]
    return error if isinstance(error, ExternalFailure) else _first(error)
