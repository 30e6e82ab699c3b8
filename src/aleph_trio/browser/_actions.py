"""What a client or an agent does on the page (PROTOCOL §13): find a target, click, type, take a
screenshot, evaluate a script, read the accessibility tree.

Clicks and keystrokes are real input events (``Input.dispatchMouseEvent`` at the element's
centre, ``Input.insertText``), so the page sees what a person would cause, hit-testing
included. Snapshot refs are ``e<backendDOMNodeId>``: Chromium keeps that id for as long as the
node lives, so the same element has the same ref in every snapshot of the page.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Final, Literal

import attrs
import trio
from msgspec import Meta

from ..kernel import ExternalFailure, InvalidArgument, NotFound
from ._cdp import CdpError
from ._images import image_size
from ._page import Page

__all__ = ["Target", "click", "evaluate", "screenshot", "snapshot", "type_text"]

_GROUP: Final = "aleph-actions"
#: At most this many elements in a snapshot (``truncated: true`` beyond).
MAX_SNAPSHOT_ELEMENTS: Final = 5000
#: How long a screenshot waits for its frame before it asks again on the page's new document.
CAPTURE_PATIENCE_S: Final = 5.0

_FIND_TEXT: Final = """(text) => {
  const norm = (s) => (s || '').replace(/\\s+/g, ' ').trim().toLowerCase();
  const want = norm(text);
  const label = (el) => {
    const field = el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement;
    if (field && ['submit', 'button', 'reset'].includes(el.type)) return el.value;
    if (field) return el.placeholder || el.getAttribute('aria-label');
    return el.getAttribute('aria-label') || el.innerText;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect(), st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden';
  };
  let exact = null, partial = null;
  for (const el of document.body ? document.body.querySelectorAll('*') : []) {
    if (!(el instanceof HTMLElement)) continue;
    const t = norm(label(el));
    if (!t.includes(want) || !visible(el)) continue;
    if (t === want) { if (exact === null || exact.contains(el)) exact = el; }
    else if (partial === null || partial.contains(el)) partial = el;
  }
  const found = exact || partial;
  return found instanceof HTMLLabelElement && found.control ? found.control : found;
}"""
_CENTER: Final = """function () {
  const el = this.nodeType === 3 ? this.parentElement : this;
  el.scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'});
  const r = el.getBoundingClientRect();
  return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height];
}"""
_BOX: Final = """function () {
  const el = this.nodeType === 3 ? this.parentElement : this;
  el.scrollIntoView({block: 'nearest', inline: 'nearest', behavior: 'instant'});
  const r = el.getBoundingClientRect();
  return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
}"""
_FOCUS: Final = """function (clear) {
  const el = this.nodeType === 3 ? this.parentElement : this;
  el.scrollIntoView({block: 'center', behavior: 'instant'});
  el.focus();
  if (document.activeElement !== el && !el.isContentEditable) return false;
  const editable = typeof el.value === 'string' && typeof el.setSelectionRange === 'function';
  if (clear) {
    if (typeof el.select === 'function') el.select();
    else { const r = document.createRange(); r.selectNodeContents(el);
           const s = getSelection(); s.removeAllRanges(); s.addRange(r); }
  } else if (editable) {
    try { el.setSelectionRange(el.value.length, el.value.length); } catch (e) {}
  }
  return true;
}"""
_SKIP_ROLES: Final = frozenset(
    {
        "none",
        "generic",
        "presentation",
        "InlineTextBox",
        "LineBreak",
        "ignored",
        "RootWebArea",
        "ListMarker",
    }
)
_INTERACTIVE: Final = frozenset(
    {
        "button", "link", "textbox", "searchbox", "checkbox", "radio", "combobox", "listbox",
        "option", "slider", "spinbutton", "switch", "tab", "menuitem", "menuitemcheckbox",
        "menuitemradio", "treeitem",
    }
)  # fmt: skip
_FLAGS: Final = ("checked", "disabled", "expanded", "focused", "level", "required", "selected")


@attrs.frozen
class Target:
    """An ``ActionTarget``: exactly one of a CSS selector, a snapshot ref, visible text, or a
    point ``x``/``y`` in CSS pixels of the viewport."""

    selector: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    ref: Annotated[str, Meta(pattern="^e[0-9]{1,12}$")] | None = None
    text: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    x: Annotated[float, Meta(ge=0, le=100_000)] | None = None
    y: Annotated[float, Meta(ge=0, le=100_000)] | None = None

    def describe(self) -> str:
        if self.selector is not None:
            return f"selector {self.selector!r}"
        if self.ref is not None:
            return f"ref {self.ref!r}"
        return f"text {self.text!r}"


async def _element(page: Page, target: Target) -> str:
    """The remote object id of the element ``target`` names (not a point)."""
    if target.selector is not None:
        found = await page.send(
            "Runtime.evaluate",
            {
                "expression": f"document.querySelector({json.dumps(target.selector)})",
                "objectGroup": _GROUP,
            },
        )
        if "exceptionDetails" in found:
            raise InvalidArgument.field("$.target.selector", "is not a valid CSS selector")
        obj = found["result"]
    elif target.ref is not None:
        if target.ref not in page.refs or not target.ref[1:].isdigit():
            raise NotFound("element", f"ref {target.ref} (not in the last snapshot)")
        try:
            resolved = await page.send(
                "DOM.resolveNode", {"backendNodeId": int(target.ref[1:]), "objectGroup": _GROUP}
            )
        except CdpError:
            raise NotFound("element", f"ref {target.ref} (no longer on the page)") from None
        obj = resolved["object"]
    else:
        function = await page.send(
            "Runtime.evaluate", {"expression": _FIND_TEXT, "objectGroup": _GROUP}
        )
        found = await page.send(
            "Runtime.callFunctionOn",
            {
                "functionDeclaration": "function (t) { return this(t); }",
                "objectId": function["result"]["objectId"],
                "arguments": [{"value": target.text}],
                "objectGroup": _GROUP,
            },
        )
        obj = found["result"]
    if obj.get("subtype") == "null" or "objectId" not in obj:
        raise NotFound("element", target.describe())
    object_id: str = obj["objectId"]
    return object_id


async def _call(page: Page, object_id: str, function: str, *args: Any) -> Any:
    result = await page.send(
        "Runtime.callFunctionOn",
        {
            "functionDeclaration": function,
            "objectId": object_id,
            "arguments": [{"value": a} for a in args],
            "returnByValue": True,
        },
    )
    if "exceptionDetails" in result:
        raise ExternalFailure(f"the element could not be used: {_exception_text(result)}")
    return result["result"].get("value")


async def _release(page: Page) -> None:
    try:
        await page.send("Runtime.releaseObjectGroup", {"objectGroup": _GROUP})
    except CdpError:
        pass


async def _point(page: Page, target: Target) -> tuple[float, float]:
    if target.x is not None and target.y is not None:
        return target.x, target.y
    object_id = await _element(page, target)
    x, y, width, height = await _call(page, object_id, _CENTER)
    if width <= 0 or height <= 0:
        raise NotFound("element", f"{target.describe()} (not visible)")
    return x, y


async def _mouse_click(page: Page, x: float, y: float) -> None:
    base = {"x": x, "y": y, "button": "left", "clickCount": 1}
    await page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
    await page.send("Input.dispatchMouseEvent", {"type": "mousePressed", **base})
    await page.send("Input.dispatchMouseEvent", {"type": "mouseReleased", **base})
    # One round trip through the renderer: a navigation the click starts (a link, a submit
    # button) has begun by the time it answers, so the next call waits for it (Page.settle).
    await page.send("Runtime.evaluate", {"expression": "0"})


async def click(page: Page, target: Target) -> None:
    try:
        x, y = await _point(page, target)
        await _mouse_click(page, x, y)
    finally:
        await _release(page)


async def type_text(page: Page, target: Target, text: str, *, clear: bool) -> None:
    try:
        if target.x is not None and target.y is not None:
            await _mouse_click(page, target.x, target.y)
            if clear:
                await page.send(
                    "Runtime.evaluate", {"expression": "document.execCommand('selectAll')"}
                )
        else:
            object_id = await _element(page, target)
            if not await _call(page, object_id, _FOCUS, clear):
                raise InvalidArgument.field("$.target", f"{target.describe()} cannot take text")
        if clear:
            for kind in ("keyDown", "keyUp"):
                await page.send(
                    "Input.dispatchKeyEvent",
                    {"type": kind, "key": "Delete", "code": "Delete", "windowsVirtualKeyCode": 46},
                )
        if text:
            await page.send("Input.insertText", {"text": text})
    finally:
        await _release(page)


async def screenshot(
    page: Page, target: Target | None, *, full_page: bool, format: Literal["png", "jpeg"]
) -> dict[str, Any]:
    params: dict[str, Any] = {"format": format}
    if format == "jpeg":
        params["quality"] = 85
    try:
        if target is not None:
            if target.x is not None or target.y is not None:
                raise InvalidArgument.field("$.target", "a screenshot target must be an element")
            x, y, width, height = await _call(page, await _element(page, target), _BOX)
            if width <= 0 or height <= 0:
                raise NotFound("element", f"{target.describe()} (not visible)")
            params["clip"] = {"x": x, "y": y, "width": width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        elif full_page:
            metrics = await page.send("Page.getLayoutMetrics")
            size = metrics["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        # A tab in the background never paints, and its capture never ends: the page is ours,
        # but the DevTools socket is Chromium's and another client may have opened a tab.
        await page.send("Page.bringToFront")
        shot = None
        with trio.move_on_after(CAPTURE_PATIENCE_S):
            shot = await page.send("Page.captureScreenshot", params)
        if shot is None:
            # A capture asked for just as a navigation the page started itself (a click on a
            # submit button) begins can wait for a frame of the old document that never comes.
            # Once the new document is there, once more (the call's own deadline still holds).
            await page.settle()
            await page.send("Page.bringToFront")
            shot = await page.send("Page.captureScreenshot", params)
    finally:
        await _release(page)
    data: str = shot["data"]
    width, height = image_size(base64.b64decode(data[:65536]))
    return {"data_base64": data, "width": width, "height": height}


def _exception_text(result: dict[str, Any]) -> str:
    details = result["exceptionDetails"]
    exception = details.get("exception") or {}
    if "description" in exception:
        return str(exception["description"])
    if "value" in exception:
        return (
            json.dumps(exception["value"])
            if not isinstance(exception["value"], str)
            else exception["value"]
        )
    return str(details.get("text", "exception"))


async def evaluate(page: Page, script: str) -> dict[str, Any]:
    """``script``'s value (a promise awaited) and its type as ``typeof`` says, ``null`` and
    ``array`` apart; a throw is :class:`ExternalFailure` with ``exception``."""
    try:
        result = await page.send(
            "Runtime.evaluate",
            {
                "expression": script,
                "returnByValue": True,
                "awaitPromise": True,
                "userGesture": True,
            },
        )
    except CdpError as exc:  # a value that cannot travel as JSON (a cycle, a DOM tree)
        raise ExternalFailure(
            f"the script's value cannot be returned: {exc.message}", exception=exc.message
        ) from None
    if "exceptionDetails" in result:
        text = _exception_text(result)
        raise ExternalFailure(
            f"the script threw: {text.splitlines()[0] if text else text}", exception=text
        )
    obj = result["result"]
    kind, subtype = obj.get("type", "undefined"), obj.get("subtype")
    if kind == "object" and subtype in ("null", "array"):
        kind = subtype
    if "unserializableValue" in obj:  # NaN, Infinity, -0, 12n
        value = obj["unserializableValue"]
    elif kind in ("function", "symbol"):  # no JSON value
        value = None
    elif "value" in obj:
        value = obj["value"]
    else:
        value = None
    if kind == "object" and value is None:  # by value, Chromium leaves the subtype out
        kind = "null"
    elif kind == "object" and isinstance(value, list):
        kind = "array"
    return {"value": value, "type": kind}


async def snapshot(page: Page) -> dict[str, Any]:
    """The accessibility tree as a flat list of named or interactive elements, with refs."""
    tree = await page.send("Accessibility.getFullAXTree")
    nodes: list[dict[str, Any]] = tree.get("nodes", [])
    names = {n["nodeId"]: _ax(n, "name") for n in nodes}
    parent = {child: n["nodeId"] for n in nodes for child in n.get("childIds", ())}
    title = ""
    elements: list[dict[str, Any]] = []
    truncated = False
    for node in nodes:
        role = _ax(node, "role")
        if role == "RootWebArea" and not title:
            title = _ax(node, "name")
        backend = node.get("backendDOMNodeId")
        if node.get("ignored") or role in _SKIP_ROLES or backend is None:
            continue
        name = _ax(node, "name").strip()
        value = (node.get("value") or {}).get("value")
        if not (name.strip() or value not in (None, "") or role in _INTERACTIVE):
            continue
        parent_name = names.get(parent.get(node["nodeId"], ""), "")
        if role == "StaticText" and parent_name.strip() == name:
            continue  # the text of a link or button, already its name
        if len(elements) >= MAX_SNAPSHOT_ELEMENTS:
            truncated = True
            break
        element: dict[str, Any] = {"ref": f"e{backend}", "role": role, "name": name}
        if value not in (None, ""):
            element["value"] = value
        for prop in node.get("properties", ()):
            flag = prop.get("value", {}).get("value")
            if prop.get("name") in _FLAGS and flag not in (None, False, "false"):
                element[prop["name"]] = True if flag == "true" else flag
        elements.append(element)
    page.refs = {e["ref"] for e in elements}
    result: dict[str, Any] = {"elements": elements, "page_title": title}
    if truncated:
        result["truncated"] = True
    return result


def _ax(node: dict[str, Any], key: str) -> str:
    value = (node.get(key) or {}).get("value", "")
    return value if isinstance(value, str) else str(value)
