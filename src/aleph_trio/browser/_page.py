"""The one page the browser service drives: what it has loaded, and navigation.

:meth:`Page.watch` is the page's event task. It keeps the state navigation waits for (the main
frame's lifecycle events and document responses, by loader), answers dialogs so a script's
``alert()`` never blocks the page, and checks every request the page makes against the host
policy (``Fetch.requestPaused``), so a redirect or a script cannot reach a denied host either.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, Literal, final

import trio

from ..kernel import ExternalFailure, InvalidArgument
from ._cdp import CdpClosed, CdpConnection, CdpError, CdpEvent, CdpSession
from ._safety import HostPolicy, url_host

__all__ = ["Page", "WaitUntil", "open_page"]

WaitUntil = Literal["load", "domcontentloaded", "networkidle"]
_LIFECYCLE: Final = {
    "load": "load",
    "domcontentloaded": "DOMContentLoaded",
    "networkidle": "networkIdle",
}
#: Lifecycle events after which a document can be read and acted on.
_PARSED: Final = frozenset({"DOMContentLoaded", "load"})
#: Loaders whose state is kept (a page that redirects by script goes through several).
_KEEP_LOADERS: Final = 16
_EVENTS: Final = frozenset(
    {
        "Page.lifecycleEvent",
        "Page.frameNavigated",
        "Page.frameStartedNavigating",
        "Page.frameStoppedLoading",
        "Network.loadingFailed",
        "Page.javascriptDialogOpening",
        "Network.responseReceived",
        "Fetch.requestPaused",
        "Inspector.targetCrashed",
        "Inspector.detached",
    }
)


@final
class Page:
    """A browser tab attached over a flattened session. Create it with :func:`open_page`."""

    def __init__(self, session: CdpSession, target_id: str, policy: Callable[[], HostPolicy]):
        self.session = session
        self.target_id = target_id
        self._policy = policy
        self.main_frame = ""
        self._lifecycle: OrderedDict[str, set[str]] = OrderedDict()
        self._documents: dict[str, int] = {}
        self._changed = trio.Event()
        #: Set when the tab's renderer crashed or the browser went away: the page is unusable.
        self.gone = False
        #: Hosts refused since the last navigation began.
        self.blocked: list[str] = []
        #: The refs of the last snapshot (``browser.snapshot``), which click and type accept.
        self.refs: set[str] = set()
        #: The main frame has started a navigation (a link, a form, a script) not yet committed.
        self._navigating: str | None = None

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.session.send(method, params)

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.session.listen(_EVENTS) as events:
                task_status.started()
                async with trio.open_nursery() as nursery:
                    async for event in events:
                        self._handle(event, nursery)
                    nursery.cancel_scope.cancel()
        finally:
            self.gone = True
            self._notify()

    def _handle(self, event: CdpEvent, nursery: trio.Nursery) -> None:
        params = event.params
        match event.method:
            case "Page.lifecycleEvent" if params.get("frameId") == self.main_frame:
                loader = params.get("loaderId", "")
                if params.get("name") == "init":
                    self._lifecycle[loader] = set()
                self._lifecycle.setdefault(loader, set()).add(params.get("name", ""))
                self._lifecycle.move_to_end(loader)
                while len(self._lifecycle) > _KEEP_LOADERS:
                    old, _ = self._lifecycle.popitem(last=False)
                    self._documents.pop(old, None)
            case "Page.frameNavigated" if not params.get("frame", {}).get("parentId"):
                self.main_frame = params["frame"]["id"]
                self._navigating = None
            case "Page.frameStartedNavigating" if params.get("frameId") == self.main_frame:
                if params.get("navigationType") not in ("sameDocument", "historySameDocument"):
                    self._navigating = params.get("loaderId") or "?"
            case "Page.frameStoppedLoading" if params.get("frameId") == self.main_frame:
                self._navigating = None
            case "Network.loadingFailed" if params.get("requestId") == self._navigating:
                self._navigating = None
            case "Network.responseReceived" if (
                params.get("type") == "Document" and params.get("frameId") == self.main_frame
            ):
                self._documents[params.get("loaderId", "")] = int(params["response"]["status"])
            case "Fetch.requestPaused":
                nursery.start_soon(self._vet_request, params)
            case "Page.javascriptDialogOpening":
                nursery.start_soon(
                    self._quiet_send, "Page.handleJavaScriptDialog", {"accept": True}
                )
            case "Inspector.targetCrashed" | "Inspector.detached":
                self.gone = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _vet_request(self, params: dict[str, Any]) -> None:
        url = params.get("request", {}).get("url", "")
        host = (
            url_host(url)
            if url.split(":", 1)[0].lower() in ("http", "https", "ws", "wss")
            else None
        )
        if host is not None and self._policy().denies(host):
            self.blocked.append(host)
            await self._quiet_send(
                "Fetch.failRequest",
                {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
            )
        else:
            await self._quiet_send("Fetch.continueRequest", {"requestId": params["requestId"]})

    async def _quiet_send(self, method: str, params: dict[str, Any]) -> None:
        try:
            await self.send(method, params)
        except (CdpError, CdpClosed):
            pass  # the request or dialog went away meanwhile; the page goes on

    async def _wait_for(self, ready: Callable[[], bool]) -> None:
        while not ready():
            if self.gone:
                raise ExternalFailure("the browser page crashed or closed")
            await self._changed.wait()

    async def settle(self) -> None:
        """Wait until a navigation the page started by itself (a click on a link or a submit
        button) has committed and its document is parsed, so the next action acts on it."""
        await self._wait_for(lambda: self._navigating is None)
        loader = next(reversed(self._lifecycle), None)
        if loader is not None and "commit" in self._lifecycle[loader]:
            await self._wait_for(
                lambda: bool(self._lifecycle.get(loader, {"DOMContentLoaded"}) & _PARSED)
            )

    async def navigate(self, url: str, wait_until: WaitUntil) -> dict[str, Any]:
        """Go to ``url`` and wait for ``wait_until``; the final URL, title and HTTP status."""
        self.blocked.clear()
        self.refs.clear()
        result = await self.send("Page.navigate", {"url": url})
        loader = result.get("loaderId")
        error = result.get("errorText")
        if self.blocked:
            raise InvalidArgument.field(
                "$.url",
                f"the page led to a denied host: {self.blocked[0]!r} (browser.denied_hosts)",
            )
        if error and not (
            error == "net::ERR_HTTP_RESPONSE_CODE_FAILURE" and loader in self._documents
        ):
            raise ExternalFailure(f"navigation to {url} failed: {error}", error=error)
        if loader and not error:
            name = _LIFECYCLE[wait_until]
            await self._wait_for(lambda: name in self._lifecycle.get(loader, ()))
        href, title = await self.value("[location.href, document.title]")
        status = self._documents.get(loader) if loader else None
        return {"url": href, "title": title, "status": status}

    async def value(self, expression: str) -> Any:
        """The value of a trusted expression of ours."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise ExternalFailure(
                f"the page could not be read: {result['exceptionDetails'].get('text')}"
            )
        return result["result"].get("value")


async def open_page(
    connection: CdpConnection, nursery: trio.Nursery, policy: Callable[[], HostPolicy]
) -> Page:
    """Create a tab, attach to it, start its event task and switch on what the page needs."""
    created = await connection.send("Target.createTarget", {"url": "about:blank"})
    session = await connection.attach(created["targetId"])
    page = Page(session, created["targetId"], policy)
    await nursery.start(page.watch)
    tree = await page.send("Page.getFrameTree")
    page.main_frame = tree["frameTree"]["frame"]["id"]
    await page.send("Page.enable")
    await page.send("Page.setLifecycleEventsEnabled", {"enabled": True})
    await page.send("Network.enable")
    await page.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})
    return page
