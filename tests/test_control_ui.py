"""The Control UI end to end in a real headless Chromium: log in, chat with a streamed answer,
approve an exec request, see a cron job.

The gateway drives the browser through its own ``browser.*`` methods, pointed at its own
``/ui/``: the page's WebSocket comes back to the same gateway as a client like any other. One
gateway (and so one Chromium) serves the module. A failing test leaves a screenshot of the
page in its temporary directory and names it in the failure.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from aleph_trio import AlephError, Client, Config, open_client
from browserhelp import SharedGateway, run_shared_gateway

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedGateway]:
    yield from run_shared_gateway(Config(), tmp_path_factory.mktemp("ui") / "data")


@pytest.fixture
async def driver(shared: SharedGateway) -> AsyncIterator[Client]:
    """The test's own connection: it drives the browser and plays the other clients."""
    async with open_client(shared.url, token=shared.gateway.owner_token) as client:
        yield client


class Page:
    """The UI in the browser, through ``browser.*``."""

    def __init__(self, client: Client, base: str, artifacts: Path) -> None:
        self.client = client
        self.base = base
        self.artifacts = artifacts

    async def value(self, script: str) -> Any:
        return (await self.client.call("browser.evaluate", {"script": script}))["value"]

    async def click(self, selector: str) -> None:
        await self.client.call("browser.click", {"target": {"selector": selector}})

    async def type(self, selector: str, text: str) -> None:
        await self.client.call(
            "browser.type", {"target": {"selector": selector}, "text": text, "clear": True}
        )

    async def text(self, element_id: str) -> str:
        found = await self.value(f"document.getElementById({element_id!r})?.innerText ?? ''")
        assert isinstance(found, str)
        return found

    async def wait_text(self, element_id: str, wanted: str, timeout: float = 20) -> str:
        """Until the element's visible text holds ``wanted``; a screenshot if it never does."""
        seen = ""
        with trio.move_on_after(timeout):
            while wanted not in seen:
                try:
                    seen = await self.text(element_id)
                except AlephError:  # between documents
                    pass
                if wanted not in seen:
                    await trio.sleep(0.05)
            return seen
        shot = await self.screenshot("failure")
        raise AssertionError(f"#{element_id} never showed {wanted!r}: {seen!r} (see {shot})")

    async def screenshot(self, name: str) -> Path:
        result = await self.client.call("browser.screenshot", {"format": "png"})
        path = self.artifacts / f"{name}.png"
        path.write_bytes(base64.b64decode(result["data_base64"]))
        return path

    async def log_in(self, token: str) -> None:
        """Open the UI and log in; a page that kept the token for this tab (an earlier test's)
        logs itself in again on load, which the wait covers."""
        await self.client.call("browser.navigate", {"url": self.base + "/ui/"})
        if await self.value("sessionStorage.getItem('aleph-token') === null"):
            await self.type("#token", token)
            await self.click("#login-form button")
        await self.wait_text("status", "connected as owner")


@pytest.fixture
async def page(driver: Client, shared: SharedGateway, tmp_path: Path) -> Page:
    base = shared.url.replace("ws://", "http://").rstrip("/")
    return Page(driver, base, tmp_path)


async def test_a_wrong_token_is_refused_on_the_page(page: Page) -> None:
    await page.client.call("browser.navigate", {"url": page.base + "/ui/"})
    await page.value("sessionStorage.clear()")
    await page.type("#token", "not-the-token")
    await page.click("#login-form button")
    assert "Authentication failed" in await page.wait_text("login-error", "failed")
    assert await page.value("document.getElementById('app').hidden") is True


async def test_log_in_and_chat_with_a_streamed_answer(page: Page, shared: SharedGateway) -> None:
    await page.log_in(shared.gateway.owner_token)
    await page.type("#chat-session", "agent:main:ui-chat")
    await page.type("#chat-input", "count to 12")
    await page.click("#chat-form button[type=submit]")
    log = await page.wait_text("chat-log", "1 2 3 4 5 6 7 8 9 10 11 12")
    assert "count to 12" in log  # the user's message, then the streamed answer
    # The run went through the API like any other client's: it is in the session's history.
    history = await page.client.call("session.history", {"session_key": "agent:main:ui-chat"})
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    await page.click("nav button[data-tab=runs]")
    assert "completed" in await page.wait_text("runs-body", "completed")


async def test_approve_an_exec_request_from_the_page(page: Page, shared: SharedGateway) -> None:
    await page.log_in(shared.gateway.owner_token)
    await page.type("#chat-session", "agent:main:ui-exec")
    await page.type("#chat-input", "run echo approved-from-the-ui")
    await page.click("#chat-form button[type=submit]")
    await page.click("nav button[data-tab=approvals]")
    await page.wait_text("approvals-list", "echo approved-from-the-ui")
    assert await page.text("approval-count") == "1"
    await page.click("[data-approval] button")  # "Allow once"
    await page.click("nav button[data-tab=chat]")
    await page.wait_text("chat-log", "← exec")
    assert "approved-from-the-ui" in await page.text("chat-log")
    assert (await page.client.call("exec.approvals.pending"))["pending"] == []


async def test_cron_jobs_are_listed_and_created(page: Page, shared: SharedGateway) -> None:
    await page.client.call(
        "cron.create",
        {"name": "nightly-report", "schedule": "@daily", "agent_id": "main", "prompt": "hi"},
    )
    await page.log_in(shared.gateway.owner_token)
    await page.click("nav button[data-tab=cron]")
    assert "@daily" in await page.wait_text("cron-body", "nightly-report")
    await page.type("#cron-name", "from-the-page")
    await page.type("#cron-schedule", "every 2h")
    await page.type("#cron-prompt", "say hello")
    await page.click("#cron-form button[type=submit]")
    await page.wait_text("cron-body", "from-the-page")
    jobs = (await page.client.call("cron.list"))["jobs"]
    assert {job["name"] for job in jobs} >= {"nightly-report", "from-the-page"}
    await page.type("#cron-name", "from-the-page")  # taken: the page shows the gateway's error
    await page.type("#cron-schedule", "every 2h")
    await page.type("#cron-prompt", "again")
    await page.click("#cron-form button[type=submit]")
    await page.wait_text("cron-error", "from-the-page")
