"""``browser.navigate``, ``browser.click``, ``browser.type``, ``browser.screenshot``,
``browser.evaluate``, ``browser.snapshot`` (PROTOCOL §13)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import attrs
from msgspec import Meta

from ..browser import Target, WaitUntil
from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

TimeoutMs = Annotated[int, Meta(ge=100, le=600_000, description="deadline of the call")]


@attrs.frozen
class NavigateParams:
    url: Annotated[str, Meta(min_length=1, max_length=65_536)]
    wait_until: WaitUntil = "load"
    timeout_ms: TimeoutMs = 30_000


@ns.method(
    "browser.navigate",
    NavigateParams,
    description="Load a URL in the managed browser; the final URL, its title and HTTP status.",
    owner_only=False,
)
async def navigate(ctx: CallContext, params: NavigateParams) -> dict[str, Any]:
    return await ctx.gateway.browser.navigate(
        params.url, wait_until=params.wait_until, timeout_ms=params.timeout_ms
    )


@attrs.frozen
class ClickParams:
    target: Target


@ns.method(
    "browser.click",
    ClickParams,
    description="Click an element (selector, snapshot ref, visible text) or a point.",
    owner_only=False,
)
async def click(ctx: CallContext, params: ClickParams) -> dict[str, Any]:
    await ctx.gateway.browser.click(params.target)
    return {"clicked": True}


@attrs.frozen
class TypeParams:
    target: Target
    text: Annotated[str, Meta(max_length=1_000_000)]
    clear: bool = False


@ns.method(
    "browser.type",
    TypeParams,
    description="Type text into an element; clear replaces what it holds.",
    owner_only=False,
)
async def type_(ctx: CallContext, params: TypeParams) -> dict[str, Any]:
    await ctx.gateway.browser.type(params.target, params.text, clear=params.clear)
    return {"typed": True}


@attrs.frozen
class ScreenshotParams:
    target: Target | None = None
    full_page: bool = False
    format: Literal["png", "jpeg"] = "png"


@ns.method(
    "browser.screenshot",
    ScreenshotParams,
    description="A screenshot of the viewport, the full page or one element, base64-encoded.",
    owner_only=False,
)
async def screenshot(ctx: CallContext, params: ScreenshotParams) -> dict[str, Any]:
    return await ctx.gateway.browser.screenshot(
        params.target, full_page=params.full_page, format=params.format
    )


@attrs.frozen
class EvaluateParams:
    script: Annotated[str, Meta(min_length=1, max_length=1_000_000)]
    timeout_ms: TimeoutMs | None = None


@ns.method(
    "browser.evaluate",
    EvaluateParams,
    description="Evaluate a JavaScript expression in the page (a promise is awaited).",
    owner_only=False,
)
async def evaluate(ctx: CallContext, params: EvaluateParams) -> dict[str, Any]:
    return await ctx.gateway.browser.evaluate(params.script, timeout_ms=params.timeout_ms)


@ns.method(
    "browser.snapshot",
    NoParams,
    description="The page's accessibility tree as elements with refs for click and type.",
    owner_only=False,
)
async def snapshot(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return await ctx.gateway.browser.snapshot()
