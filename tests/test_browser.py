"""``browser.*`` (PROTOCOL §13) against a real Chromium and pages served on 127.0.0.1.

One gateway, and so one browser, serves the whole module (``shared``); each test talks to it over
a real WebSocket.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio

from aleph_trio import AlephError, Client, Config, open_client
from browserhelp import SharedGateway, browser_processes, run_shared_gateway, wait_until

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedGateway]:
    yield from run_shared_gateway(Config(), tmp_path_factory.mktemp("browser") / "data")


@pytest.fixture
async def client(shared: SharedGateway) -> AsyncIterator[Client]:
    async with open_client(shared.url, token=shared.gateway.owner_token) as c:
        yield c


async def failure(client: Client, method: str, params: dict[str, Any]) -> AlephError:
    with pytest.raises(AlephError) as caught:
        await client.call(method, params)
    return caught.value


async def value(client: Client, script: str) -> Any:
    return (await client.call("browser.evaluate", {"script": script}))["value"]


async def wait_for(client: Client, script: str, expected: Any) -> None:
    """Until ``script`` evaluates to ``expected`` (a click's navigation lands in its own time)."""
    with trio.fail_after(15):
        while True:
            try:
                if await value(client, script) == expected:
                    return
            except AlephError:  # the page was between documents
                pass
            await trio.sleep(0.05)


def data_url(body: str, title: str = "t") -> str:
    return f"data:text/html,<title>{title}</title>{body}"


async def test_a_client_fills_a_form_and_sees_the_result(
    client: Client, shared: SharedGateway
) -> None:
    page = await client.call("browser.navigate", {"url": f"{shared.site.base}/form"})
    assert page == {"url": f"{shared.site.base}/form", "title": "Sign up", "status": 200}
    snapshot = await client.call("browser.snapshot")
    assert snapshot["page_title"] == "Sign up"
    by_name = {(e["role"], e["name"]): e for e in snapshot["elements"]}
    name_box = by_name[("textbox", "Your name")]
    assert name_box["value"] == "old"
    assert ("heading", "Sign up") in by_name and ("button", "Send it") in by_name
    assert "checked" not in by_name[("checkbox", "Send news")]
    assert not any("Invisible" in e["name"] for e in snapshot["elements"])

    typed = {"target": {"ref": name_box["ref"]}, "text": "Ada", "clear": True}
    assert await client.call("browser.type", typed) == {"typed": True}
    assert await client.call("browser.click", {"target": {"text": "Send news"}}) == {
        "clicked": True
    }
    await client.call("browser.type", {"target": {"selector": "textarea"}, "text": "hi "})
    await client.call("browser.type", {"target": {"text": "A note"}, "text": "there"})
    after = await client.call("browser.snapshot")
    checkbox = next(e for e in after["elements"] if e["role"] == "checkbox")
    assert (
        checkbox["checked"] is True and checkbox["ref"] == by_name[("checkbox", "Send news")]["ref"]
    )
    await client.call("browser.click", {"target": {"text": "Send it"}})
    await wait_for(client, "document.title", "Result")
    assert await value(client, "document.querySelector('h1').innerText") == "Hello Ada"
    assert await value(client, "document.body.innerText.includes('note: hi there')") is True
    assert await value(client, "document.body.innerText.includes('news: yes')") is True
    assert "/result" in shared.site.hits


async def test_snapshot_refs_are_stable_and_stale_ones_are_not_found(
    client: Client, shared: SharedGateway
) -> None:
    await client.call("browser.navigate", {"url": f"{shared.site.base}/jserror"})
    first = await client.call("browser.snapshot")
    second = await client.call("browser.snapshot")
    assert first == second and first["elements"]
    fine = next(e for e in first["elements"] if e["name"] == "Fine")
    await client.call("browser.click", {"target": {"ref": fine["ref"]}})
    assert await value(client, "document.title") == "clicked"
    await client.call("browser.navigate", {"url": f"{shared.site.base}/final"})
    gone = await failure(client, "browser.click", {"target": {"ref": fine["ref"]}})
    assert gone.code == -32004 and gone.data is not None and gone.data["resource"] == "element"
    unknown = await failure(client, "browser.click", {"target": {"ref": "e99999999"}})
    assert unknown.code == -32004


async def test_clicks_land_on_coordinates(client: Client) -> None:
    body = (
        '<button style="position:absolute;left:100px;top:200px;width:80px;height:40px" '
        "onclick=\"document.title='hit'\">B</button>"
    )
    await client.call("browser.navigate", {"url": data_url(body)})
    await client.call("browser.click", {"target": {"x": 20, "y": 20}})
    assert await value(client, "document.title") == "t"
    await client.call("browser.click", {"target": {"x": 140, "y": 220}})
    assert await value(client, "document.title") == "hit"


async def test_redirects_and_statuses(client: Client, shared: SharedGateway) -> None:
    page = await client.call("browser.navigate", {"url": f"{shared.site.base}/redirect"})
    assert page == {
        "url": f"{shared.site.base}/final?from=redirect",
        "title": "Final",
        "status": 200,
    }
    missing = await client.call("browser.navigate", {"url": f"{shared.site.base}/missing"})
    assert missing["status"] == 404 and missing["title"] == "Not here"
    blank = await client.call("browser.navigate", {"url": "about:blank"})
    assert blank == {"url": "about:blank", "title": "", "status": None}
    data = await client.call("browser.navigate", {"url": data_url("hi", "Inline")})
    assert data["title"] == "Inline"


async def test_wait_until_chooses_the_moment(client: Client, shared: SharedGateway) -> None:
    """A page whose frame never arrives is ready for ``domcontentloaded`` but never loads."""
    url = f"{shared.site.base}/waiting"
    early = {"url": url, "wait_until": "domcontentloaded", "timeout_ms": 10_000}
    assert (await client.call("browser.navigate", early))["title"] == "Waiting"
    late = await failure(client, "browser.navigate", {"url": url, "timeout_ms": 700})
    assert late.code == -32005
    idle = {"url": f"{shared.site.base}/final", "wait_until": "networkidle"}
    assert (await client.call("browser.navigate", idle))["title"] == "Final"


async def test_a_page_that_never_finishes_loading_times_out(
    client: Client, shared: SharedGateway
) -> None:
    url = f"{shared.site.base}/never"
    error = await failure(client, "browser.navigate", {"url": url, "timeout_ms": 800})
    assert error.code == -32005 and "navigation" in error.message
    page = await client.call("browser.navigate", {"url": f"{shared.site.base}/final"})
    assert page["title"] == "Final"  # the hung load was stopped; the page works on


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "chrome://version",
        "ftp://127.0.0.1/",
        "/relative",
    ],
)
async def test_schemes_outside_the_allowed_list_are_invalid(client: Client, url: str) -> None:
    error = await failure(client, "browser.navigate", {"url": url})
    assert error.code == -32602
    assert error.data is not None and error.data["errors"][0]["path"] == "$.url"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://metadata.google.internal/",
        "http://METADATA.GOOGLE.INTERNAL./",
    ],
)
async def test_denied_hosts_are_refused(client: Client, url: str) -> None:
    error = await failure(client, "browser.navigate", {"url": url})
    assert error.code == -32602 and "denied" in error.message


async def test_redirects_and_scripts_cannot_reach_denied_hosts(
    client: Client, shared: SharedGateway
) -> None:
    error = await failure(client, "browser.navigate", {"url": f"{shared.site.base}/to-metadata"})
    assert error.code == -32602 and "169.254.169.254" in error.message
    fetcher = {"url": f"{shared.site.base}/fetch-metadata", "wait_until": "networkidle"}
    await client.call("browser.navigate", fetcher)
    await wait_for(client, "document.title", "refused")


async def test_javascript_errors(client: Client, shared: SharedGateway) -> None:
    page = await client.call("browser.navigate", {"url": f"{shared.site.base}/jserror"})
    assert page["title"] == "Broken script"  # a page whose script throws (and alerts) loads
    assert await value(client, "[window.before, window.after]") == [1, None]
    thrown = await failure(client, "browser.evaluate", {"script": "throw new Error('boom')"})
    assert thrown.code == -32006
    assert thrown.data is not None and thrown.data["exception"].startswith("Error: boom")
    rejected = await failure(
        client, "browser.evaluate", {"script": "Promise.reject(new TypeError('nope'))"}
    )
    assert rejected.code == -32006 and "TypeError: nope" in rejected.data["exception"]  # type: ignore[index]
    syntax = await failure(client, "browser.evaluate", {"script": "1 +"})
    assert syntax.code == -32006 and "SyntaxError" in syntax.data["exception"]  # type: ignore[index]
    await client.call("browser.click", {"target": {"text": "Throw"}})  # a handler that throws
    await client.call("browser.click", {"target": {"selector": "#ok"}})
    assert await value(client, "document.title") == "clicked"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("1 + 1", {"value": 2, "type": "number"}),
        ("'a' + 'b'", {"value": "ab", "type": "string"}),
        ("null", {"value": None, "type": "null"}),
        ("undefined", {"value": None, "type": "undefined"}),
        ("[1, 'x', {a: [true]}]", {"value": [1, "x", {"a": [True]}], "type": "array"}),
        ("({a: 1})", {"value": {"a": 1}, "type": "object"}),
        ("false", {"value": False, "type": "boolean"}),
        ("NaN", {"value": "NaN", "type": "number"}),
        ("2n ** 70n", {"value": "1180591620717411303424n", "type": "bigint"}),
        ("new Promise(r => setTimeout(() => r('late'), 30))", {"value": "late", "type": "string"}),
        ("(function add(a, b) { return a + b; })", {"value": None, "type": "function"}),
    ],
)
async def test_evaluate_values_and_types(
    client: Client, script: str, expected: dict[str, Any]
) -> None:
    assert await client.call("browser.evaluate", {"script": script}) == expected


async def test_a_script_that_runs_too_long_is_stopped(client: Client) -> None:
    await client.call("browser.navigate", {"url": data_url("x")})
    busy = await failure(
        client, "browser.evaluate", {"script": "while (true) {}", "timeout_ms": 500}
    )
    assert busy.code == -32005
    pending = {"script": "new Promise(() => {})", "timeout_ms": 300}
    assert (await failure(client, "browser.evaluate", pending)).code == -32005
    assert await value(client, "6 * 7") == 42  # the page was freed


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_screenshots(client: Client, shared: SharedGateway) -> None:
    await client.call("browser.navigate", {"url": f"{shared.site.base}/tall?w=1920&h=4000"})
    viewport = await client.call("browser.screenshot")
    data = base64.b64decode(viewport["data_base64"])
    inner = await value(client, "[window.innerWidth, window.innerHeight]")
    assert png_size(data) == (viewport["width"], viewport["height"]) == tuple(inner)
    full = await client.call("browser.screenshot", {"full_page": True})
    assert (full["width"], full["height"]) == (1920, 4000)
    assert png_size(base64.b64decode(full["data_base64"])) == (1920, 4000)
    jpeg = await client.call("browser.screenshot", {"format": "jpeg"})
    assert base64.b64decode(jpeg["data_base64"])[:3] == b"\xff\xd8\xff"
    assert (jpeg["width"], jpeg["height"]) == tuple(inner)
    box = '<div id="box" style="margin:30px;width:300px;height:120px;background:red">B</div>'
    await client.call("browser.navigate", {"url": data_url(box)})
    element = await client.call("browser.screenshot", {"target": {"selector": "#box"}})
    assert (element["width"], element["height"]) == (300, 120)
    pixels = base64.b64decode(element["data_base64"])
    assert png_size(pixels) == (300, 120)


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ({}, -32602),
        ({"selector": "p", "text": "x"}, -32602),
        ({"x": 10}, -32602),
        ({"selector": "##"}, -32602),
        ({"ref": "nope"}, -32602),
        ({"selector": "#absent"}, -32004),
        ({"text": "no such words anywhere"}, -32004),
        ({"text": "Invisible words"}, -32004),
    ],
)
async def test_targets_that_name_nothing(
    client: Client, shared: SharedGateway, target: dict[str, Any], code: int
) -> None:
    await client.call("browser.navigate", {"url": f"{shared.site.base}/form"})
    assert (await failure(client, "browser.click", {"target": target})).code == code


async def test_health_lists_the_browser_service(client: Client) -> None:
    health = await client.call("health")
    assert health["services"]["browser"] == "running"


async def test_the_browser_comes_back_after_a_crash(client: Client, shared: SharedGateway) -> None:
    await client.call("browser.navigate", {"url": f"{shared.site.base}/final"})
    before = shared.gateway.browser.statistics()
    assert before.running and before.pid is not None
    assert browser_processes(before.pid)  # the group exists: renderers and helpers

    async def hang(results: list[Any]) -> None:
        try:
            await client.call(
                "browser.evaluate", {"script": "new Promise(() => {})", "timeout_ms": 30_000}
            )
        except AlephError as exc:
            results.append(exc)

    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hang, results)
        await trio.sleep(0.3)
        os.kill(before.pid, signal.SIGKILL)
    assert results[0].code == -32006 and "next call" in results[0].message
    page = await client.call("browser.navigate", {"url": f"{shared.site.base}/final"})
    assert page["title"] == "Final"
    after = shared.gateway.browser.statistics()
    assert after.pid != before.pid and after.restarts == before.restarts + 1
    await wait_until(lambda: not browser_processes(before.pid))  # its helpers are killed too


def test_the_module_used_one_browser(shared: SharedGateway) -> None:
    """Runs last: every test above shared one launch (plus the one the crash test caused)."""
    stats = shared.gateway.browser.statistics()
    assert stats.launches == 1 + stats.restarts
