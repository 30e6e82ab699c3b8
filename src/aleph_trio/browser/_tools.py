"""The agent tools over the browser service: ``browser_navigate``, ``browser_snapshot``,
``browser_click``, ``browser_type``, ``browser_screenshot`` (PROTOCOL §7, §13).

They answer the model in text: a snapshot as one line per element with its ref, a screenshot
as a short description (its size), never the image data, which would only fill the context.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import attrs
from msgspec import Meta

from ..kernel import GatewayError
from ..tools import AnyTool, Tool, ToolContext, ToolFailed
from ._actions import Target
from ._page import WaitUntil
from ._service import BrowserService

__all__ = ["browser_tools"]

Url = Annotated[str, Meta(min_length=1, max_length=8192)]


@attrs.frozen
class NavigateArgs:
    url: Url
    wait_until: WaitUntil = "load"


@attrs.frozen
class NoArgs:
    pass


@attrs.frozen
class ClickArgs:
    target: Target


@attrs.frozen
class TypeArgs:
    target: Target
    text: Annotated[str, Meta(max_length=100_000)]
    clear: bool = False


@attrs.frozen
class ScreenshotArgs:
    target: Target | None = None
    full_page: bool = False
    format: Literal["png", "jpeg"] = "png"


def _describe(target: Target) -> str:
    if target.x is not None:
        return f"the point ({target.x:g}, {target.y:g})"
    return target.describe()


def snapshot_text(snapshot: dict[str, Any]) -> str:
    """A snapshot as the model reads it: the title, then ``ref role "name" = value`` lines."""
    lines = [f"Page: {snapshot['page_title']!r}"]
    for element in snapshot["elements"]:
        line = f"{element['ref']} {element['role']} {element['name']!r}"
        if "value" in element:
            line += f" = {element['value']!r}"
        flags = [k for k in ("checked", "disabled", "focused") if element.get(k)]
        if flags:
            line += f" [{', '.join(flags)}]"
        lines.append(line)
    if snapshot.get("truncated"):
        lines.append("(more elements were left out)")
    return "\n".join(lines)


def browser_tools(browser: BrowserService) -> list[AnyTool]:
    """The five browser tools, bound to ``browser``."""

    async def navigate(ctx: ToolContext, args: NavigateArgs) -> str:
        page = await _call(browser.navigate(args.url, wait_until=args.wait_until))
        status = f"HTTP {page['status']}" if page["status"] is not None else "no HTTP status"
        return f"Loaded {page['url']} ({status}), title {page['title']!r}."

    async def snapshot(ctx: ToolContext, args: NoArgs) -> str:
        return snapshot_text(await _call(browser.snapshot()))

    async def click(ctx: ToolContext, args: ClickArgs) -> str:
        await _call(browser.click(args.target))
        return f"Clicked {_describe(args.target)}."

    async def type_(ctx: ToolContext, args: TypeArgs) -> str:
        await _call(browser.type(args.target, args.text, clear=args.clear))
        return f"Typed {len(args.text)} characters into {_describe(args.target)}."

    async def screenshot(ctx: ToolContext, args: ScreenshotArgs) -> str:
        shot = await _call(
            browser.screenshot(args.target, full_page=args.full_page, format=args.format)
        )
        size = len(base64.b64decode(shot["data_base64"]))
        what = (
            _describe(args.target)
            if args.target
            else ("the whole page" if args.full_page else "the viewport")
        )
        return (
            f"Took a {shot['width']}x{shot['height']} {args.format.upper()} screenshot of {what} "
            f"({size} bytes); the image is not shown here."
        )

    target = (
        "target: exactly one of {selector: CSS}, {ref: from browser_snapshot}, "
        "{text: visible text}, {x, y: viewport pixels}"
    )
    specs: list[tuple[str, str, type[Any], Any]] = [
        (
            "browser_navigate",
            "Open a URL in the browser; returns the final URL, HTTP status and title.",
            NavigateArgs,
            navigate,
        ),
        (
            "browser_snapshot",
            "Read the page: its elements from the accessibility tree, each with a ref "
            "for browser_click and browser_type.",
            NoArgs,
            snapshot,
        ),
        ("browser_click", f"Click an element. {target}.", ClickArgs, click),
        (
            "browser_type",
            f"Type text into a field (clear: replace what it holds). {target}.",
            TypeArgs,
            type_,
        ),
        (
            "browser_screenshot",
            "Take a screenshot of the viewport, the full page or one element.",
            ScreenshotArgs,
            screenshot,
        ),
    ]
    return [Tool(name, text, params, run, opt_in=True) for name, text, params, run in specs]


async def _call(call: Any) -> Any:
    try:
        return await call
    except GatewayError as exc:
        raise ToolFailed(exc.message) from None
