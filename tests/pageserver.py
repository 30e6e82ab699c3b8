"""A small HTTP/1.1 server on 127.0.0.1 serving the pages the browser tests drive.

Every answer closes its connection. ``/never`` sends its headers and the start of a page and
then nothing more until the server stops: a page that never finishes loading.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from functools import partial
from urllib.parse import parse_qs, urlsplit

import attrs
import trio

Handler = Callable[[dict[str, list[str]]], "Answer"]


@attrs.frozen
class Answer:
    status: int = 200
    body: str = ""
    headers: dict[str, str] = attrs.Factory(dict)
    #: Send the headers and this much of the body, then hang until the server stops.
    hang: bool = False


FORM = """<!doctype html><html><head><title>Sign up</title></head><body>
<h1>Sign up</h1>
<form action="/result" method="get">
  <label for="name">Your name</label> <input id="name" name="name" value="old">
  <label><input type="checkbox" name="news" value="yes"> Send news</label>
  <textarea name="note" placeholder="A note"></textarea>
  <button type="submit">Send it</button>
</form>
<p id="hidden" style="display:none">Invisible words</p>
</body></html>"""

JS_ERROR = """<!doctype html><html><head><title>Broken script</title>
<script>window.before = 1; undefinedFunction(); window.after = 1;</script></head>
<body><p>Still here</p><script>alert("hello");</script>
<button onclick="throw new Error('click failed')">Throw</button>
<button id="ok" onclick="document.title = 'clicked'">Fine</button></body></html>"""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
        f"<body>{body}</body></html>"
    )


def big(query: dict[str, list[str]]) -> Answer:
    n = int(query.get("n", ["1000"])[0])
    items = "".join(f'<li><a href="#i{i}">item {i}</a></li>' for i in range(n))
    return Answer(body=page(f"{n} elements", f"<h1>Many</h1><ul>{items}</ul>"))


def tall(query: dict[str, list[str]]) -> Answer:
    width = int(query.get("w", ["1920"])[0])
    height = int(query.get("h", ["4000"])[0])
    style = (
        "margin:0;padding:0;"
        f"width:{width}px;height:{height}px;background:linear-gradient(#fff,#36c)"
    )
    return Answer(
        body=f"<!doctype html><html><head><title>Tall</title></head>"
        f'<body style="margin:0"><div style="{style}">top</div></body></html>'
    )


def result(query: dict[str, list[str]]) -> Answer:
    name = query.get("name", [""])[0]
    news = query.get("news", ["no"])[0]
    note = query.get("note", [""])[0]
    body = f"<h1>Hello {html.escape(name)}</h1><p>news: {news}</p><p>note: {html.escape(note)}</p>"
    return Answer(body=page("Result", body))


ROUTES: dict[str, Handler] = {
    "/form": lambda q: Answer(body=FORM),
    "/result": result,
    "/redirect": lambda q: Answer(302, headers={"Location": "/final?from=redirect"}),
    "/final": lambda q: Answer(body=page("Final", "<p>arrived</p>")),
    "/missing": lambda q: Answer(404, page("Not here", "<p>nothing</p>")),
    "/never": lambda q: Answer(body="<html><head><title>Forever</title></head><body>loading"),
    "/jserror": lambda q: Answer(body=JS_ERROR),
    "/waiting": lambda q: Answer(body=page("Waiting", '<p>text</p><iframe src="/never"></iframe>')),
    "/big": big,
    "/tall": tall,
    "/to-metadata": lambda q: Answer(302, headers={"Location": "http://169.254.169.254/latest"}),
    "/fetch-metadata": lambda q: Answer(
        body=page(
            "Fetcher",
            "<script>fetch('http://169.254.169.254/latest').then(() => document.title = 'got',"
            " () => document.title = 'refused')</script>",
        )
    ),
}


@attrs.define
class PageServer:
    port: int = 0
    hits: list[str] = attrs.Factory(list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    head += data
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                parts = urlsplit(target)
                self.hits.append(parts.path)
                route = ROUTES.get(parts.path)
                answer = route(parse_qs(parts.query)) if route else Answer(404, "no such page")
                await self._answer(stream, answer, hang=parts.path == "/never")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _answer(self, stream: trio.SocketStream, answer: Answer, *, hang: bool) -> None:
        body = answer.body.encode()
        length = len(body) + (1_000_000 if hang else 0)
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Length": str(length),
            "Connection": "close",
            "Cache-Control": "no-store",
            **answer.headers,
        }
        lines = [f"HTTP/1.1 {answer.status} X"] + [f"{k}: {v}" for k, v in headers.items()]
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        if hang:
            await trio.sleep_forever()


async def serve_pages(
    *, task_status: trio.TaskStatus[PageServer] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve :data:`ROUTES` on 127.0.0.1 until cancelled."""
    server = PageServer()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server.port = listeners[0].socket.getsockname()[1]
    serve: Callable[..., Awaitable[None]] = partial(trio.serve_listeners, server.handle, listeners)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve)
        task_status.started(server)
