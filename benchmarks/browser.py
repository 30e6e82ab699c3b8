#!/usr/bin/env python
"""Benchmarks of the managed browser (``browser.*``) against raw CDP on the same Chromium.

    python benchmarks/browser.py            # about a minute
    python benchmarks/browser.py --quick    # fewer rounds, to check the harness

Pages are served by this script on 127.0.0.1. The gateway is embedded (``open_gateway`` +
``gateway.serve`` on a loopback port, default configuration) and driven by
``aleph_trio.client`` over a real WebSocket. The baseline is the plainest CDP client: one
trio-websocket connection straight to Chromium's DevTools socket, sending each command and
reading until the reply with its id arrives (events are read and thrown away).

1. ``cold start``: from the first ``browser.navigate`` of a fresh gateway (no browser yet) to
   its answer, for a small page. Baseline: launching Chromium with the same arguments, reading
   ``DevToolsActivePort``, connecting, ``Target.createTarget`` + attach + ``Page.enable`` +
   ``Page.navigate`` until ``Page.loadEventFired``.
2. ``navigate + snapshot`` of a page of 1,000 list items with links: ``browser.navigate`` then
   ``browser.snapshot``, p50 and p99. Baseline: ``Page.navigate`` until the load event, then
   ``Accessibility.getFullAXTree``, on the gateway's own Chromium.
3. ``full-page screenshot`` of a 1920x4000 page (PNG). Baseline: ``Page.getLayoutMetrics`` +
   ``Page.captureScreenshot`` with the content clip.
4. ``evaluate round trip``: ``browser.evaluate {"script": "1 + 1"}`` one after another, against
   ``Runtime.evaluate`` of the same expression (``returnByValue``) sent over the raw socket to
   the same page, in blocks whose order rotates. Both sides use the same client code
   (:class:`RawSocket`: trio-websocket, stdlib ``json``, send and read until the answer), so
   the ratio compares the gateway with Chromium, not two client libraries. Target: the
   gateway's rate at least 0.8x the direct one. For reading the gap, more ways run in the
   same blocks: the service's ``evaluate`` called in-process (the CDP client without
   JSON-RPC), ``echo`` through the gateway (JSON-RPC without the browser), the raw
   ``Runtime.evaluate`` followed by an ``echo`` (what a relay costing nothing but an echo
   would reach, Chromium's answers slowed by the spacing included), and ``browser.evaluate``
   through ``aleph_trio.client``.

The table is printed and written, with every raw figure, to
``benchmarks/results/browser-latest.json`` (the table alone to ``browser-latest.md``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import trio  # noqa: E402
import trio_websocket  # noqa: E402
from _table import format_table, make_row, write_report  # noqa: E402
from run import _percentile, machine_info  # noqa: E402

from aleph_trio import Config, open_client, open_gateway  # noqa: E402
from aleph_trio.browser._launch import browser_arguments, kill_group, read_endpoint  # noqa: E402
from aleph_trio.kernel import BrowserConfig  # noqa: E402

MiB = 1024 * 1024


# -- pages ------------------------------------------------------------------------------------


def page_for(path: str) -> bytes:
    if path.startswith("/big"):
        items = "".join(f'<li><a href="#i{i}">item {i}</a></li>' for i in range(1000))
        return f"<!doctype html><title>Big</title><h1>Many</h1><ul>{items}</ul>".encode()
    if path.startswith("/tall"):
        return (
            b'<!doctype html><title>Tall</title><body style="margin:0"><div style="width:1920px;'
            b'height:4000px;background:linear-gradient(#fff,#36c)">top</div></body>'
        )
    return b"<!doctype html><title>Small</title><p>hello</p>"


async def handle(stream: trio.SocketStream) -> None:
    async with stream:
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(65536)
            if not data:
                return
            head += data
        body = page_for(head.split(b" ", 2)[1].decode())
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )


# -- the raw CDP client (the baseline) -------------------------------------------------------


class RawSocket:
    """Sends a message with an id and reads until the reply with that id; nothing else.

    The one client of every round-trip comparison: it talks CDP to Chromium (:class:`RawCdp`)
    and JSON-RPC to the gateway (:class:`RawRpc`) with the same code, so a ratio compares the
    servers, not two client libraries."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        message["id"] = request_id = next(self.ids)
        await self.ws.send_message(json.dumps(message))
        while True:
            reply: dict[str, Any] = json.loads(await self.ws.get_message())
            if reply.get("id") == request_id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply

    async def wait_event(self, method: str) -> None:
        while json.loads(await self.ws.get_message()).get("method") != method:
            pass


class RawCdp(RawSocket):
    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        result: dict[str, Any] = (await self.request(message))["result"]
        return result

    async def navigate(self, session: str, url: str) -> None:
        await self.send("Page.navigate", {"url": url}, session)
        await self.wait_event("Page.loadEventFired")


class RawRpc(RawSocket):
    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        return (await self.request(message))["result"]


def devtools_of(pid: int) -> tuple[int, str]:
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    profile = next(a for a in args if a.startswith("--user-data-dir=")).split("=", 1)[1]
    port, path = (Path(profile) / "DevToolsActivePort").read_text().split("\n")[:2]
    return int(port), path


# -- benchmarks -------------------------------------------------------------------------------


async def cold_gateway(base: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as data:
            async with open_gateway(Config(), data_dir=data) as gateway, gateway.connect() as c:
                start = time.perf_counter()
                await c.call("browser.navigate", {"url": f"{base}/small"})
                times.append(time.perf_counter() - start)
    return times


async def cold_raw(base: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as profile:
            start = time.perf_counter()
            args = browser_arguments(BrowserConfig(), Path(profile))
            process = await trio.lowlevel.open_process(
                args, start_new_session=True, stdout=-3, stderr=-3
            )
            try:
                port, path = await read_endpoint(Path(profile), process)
                async with trio_websocket.open_websocket(
                    "127.0.0.1", int(port), path, use_ssl=False, max_message_size=256 * MiB
                ) as ws:
                    cdp = RawCdp(ws)
                    target = await cdp.send("Target.createTarget", {"url": "about:blank"})
                    attached = await cdp.send(
                        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
                    )
                    session = attached["sessionId"]
                    await cdp.send("Page.enable", None, session)
                    await cdp.navigate(session, f"{base}/small")
                    times.append(time.perf_counter() - start)
            finally:
                kill_group(process.pid)
                await process.wait()
    return times


async def warm(
    client: Any, cdp: RawCdp, session: str, base: str, rounds: int
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"snap_gw": [], "snap_raw": [], "shot_gw": [], "shot_raw": []}
    for _ in range(rounds):
        start = time.perf_counter()
        await client.call("browser.navigate", {"url": f"{base}/big"})
        snapshot = await client.call("browser.snapshot")
        out["snap_gw"].append(time.perf_counter() - start)
        assert len(snapshot["elements"]) >= 1000
        start = time.perf_counter()
        await cdp.navigate(session, f"{base}/big")
        await cdp.send("Accessibility.getFullAXTree", None, session)
        out["snap_raw"].append(time.perf_counter() - start)
    await client.call("browser.navigate", {"url": f"{base}/tall"})
    await cdp.navigate(session, f"{base}/tall")
    for _ in range(max(3, rounds // 5)):
        start = time.perf_counter()
        shot = await client.call("browser.screenshot", {"full_page": True})
        out["shot_gw"].append(time.perf_counter() - start)
        assert (shot["width"], shot["height"]) == (1920, 4000)
        start = time.perf_counter()
        await cdp.send("Page.bringToFront", None, session)  # as the gateway does
        size = (await cdp.send("Page.getLayoutMetrics", None, session))["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        await cdp.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
            session,
        )
        out["shot_raw"].append(time.perf_counter() - start)
    return out


async def evaluate_rates(
    client: Any, rpc: RawRpc, gateway: Any, cdp: RawCdp, session: str, calls: int, blocks: int
) -> dict[str, list[float]]:
    """Sequential calls per second of each way, in blocks whose order rotates."""
    # Exactly what the gateway sends for browser.evaluate.
    params = {
        "expression": "1 + 1",
        "returnByValue": True,
        "awaitPromise": True,
        "userGesture": True,
    }

    async def direct_then_echo() -> None:
        await cdp.send("Runtime.evaluate", params, session)
        await rpc.call("echo", {"script": "1 + 1"})

    ways = {
        "gateway": lambda: rpc.call("browser.evaluate", {"script": "1 + 1"}),
        "direct": lambda: cdp.send("Runtime.evaluate", params, session),
        "service": lambda: gateway.browser.evaluate("1 + 1"),
        "echo": lambda: rpc.call("echo", {"script": "1 + 1"}),
        "client": lambda: client.call("browser.evaluate", {"script": "1 + 1"}),
        "spaced": lambda: direct_then_echo(),
    }
    rates: dict[str, list[float]] = {name: [] for name in ways}
    names = list(ways)
    for block in range(blocks):
        for name in names[block % len(names) :] + names[: block % len(names)]:
            call = ways[name]
            start = time.perf_counter()
            for _ in range(calls):
                await call()
            rates[name].append(calls / (time.perf_counter() - start))
    return rates


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, handle, 0)
        base = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        print("cold start ...", file=sys.stderr)
        cold_gw = await cold_gateway(base, args.cold)
        cold_baseline = await cold_raw(base, args.cold)
        with tempfile.TemporaryDirectory() as data:
            async with open_gateway(Config(), data_dir=data) as gateway:
                port = await nursery.start(gateway.serve, "127.0.0.1", 0)
                async with open_client(
                    f"ws://127.0.0.1:{port}/", token=gateway.owner_token
                ) as client:
                    await client.call("browser.navigate", {"url": f"{base}/small"})
                    pid = gateway.browser.statistics().pid
                    assert pid is not None
                    devtools_port, path = devtools_of(pid)
                    async with trio_websocket.open_websocket(
                        "127.0.0.1", devtools_port, path, use_ssl=False, max_message_size=256 * MiB
                    ) as ws:
                        cdp = RawCdp(ws)
                        target = await cdp.send("Target.createTarget", {"url": "about:blank"})
                        attached = await cdp.send(
                            "Target.attachToTarget",
                            {"targetId": target["targetId"], "flatten": True},
                        )
                        session = attached["sessionId"]
                        await cdp.send("Page.enable", None, session)
                        print("navigate + snapshot, screenshot ...", file=sys.stderr)
                        warm_figures = await warm(client, cdp, session, base, args.rounds)
                        # The evaluate comparison runs on the gateway's own page.
                        targets = await cdp.send("Target.getTargets")
                        own = next(
                            t
                            for t in targets["targetInfos"]
                            if t["type"] == "page"
                            and t["url"].endswith("/tall")
                            and t["targetId"] != target["targetId"]
                        )
                        own_session = (
                            await cdp.send(
                                "Target.attachToTarget",
                                {"targetId": own["targetId"], "flatten": True},
                            )
                        )["sessionId"]
                        await cdp.send("Page.bringToFront", None, own_session)
                        print("evaluate round trips ...", file=sys.stderr)
                        async with trio_websocket.open_websocket(
                            "127.0.0.1", port, "/", use_ssl=False, max_message_size=256 * MiB
                        ) as gateway_ws:
                            rpc = RawRpc(gateway_ws)
                            await rpc.call("connect", {"token": gateway.owner_token})
                            rates = await evaluate_rates(
                                client, rpc, gateway, cdp, own_session, args.calls, args.blocks
                            )
                nursery.cancel_scope.cancel()

    ms = 1000.0
    gw_rate, direct_rate = statistics.median(rates["gateway"]), statistics.median(rates["direct"])
    ratio = gw_rate / direct_rate
    rows = [
        make_row(
            "1. cold start to first navigate, median",
            "ms",
            statistics.median(cold_gw) * ms,
            statistics.median(cold_baseline) * ms,
        ),
        make_row("   cold start, max", "ms", max(cold_gw) * ms, max(cold_baseline) * ms),
        make_row(
            "2. navigate + snapshot (1000 el.), p50",
            "ms",
            _percentile(warm_figures["snap_gw"], 0.5) * ms,
            _percentile(warm_figures["snap_raw"], 0.5) * ms,
        ),
        make_row(
            "   navigate + snapshot, p99",
            "ms",
            _percentile(warm_figures["snap_gw"], 0.99) * ms,
            _percentile(warm_figures["snap_raw"], 0.99) * ms,
        ),
        make_row(
            "3. full-page screenshot 1920x4000, median",
            "ms",
            statistics.median(warm_figures["shot_gw"]) * ms,
            statistics.median(warm_figures["shot_raw"]) * ms,
        ),
        make_row(
            "4. evaluate round trips", "calls/s", gw_rate, direct_rate, ">= 0.8x", ratio >= 0.8
        ),
        make_row(
            "   evaluate by the service, no RPC",
            "calls/s",
            statistics.median(rates["service"]),
            direct_rate,
        ),
        make_row("   echo through the gateway", "calls/s", statistics.median(rates["echo"]), None),
        make_row(
            "   raw CDP, then echo through the gateway",
            "calls/s",
            statistics.median(rates["spaced"]),
            direct_rate,
        ),
        make_row(
            "   evaluate with aleph_trio.client",
            "calls/s",
            statistics.median(rates["client"]),
            direct_rate,
        ),
    ]
    print(format_table(rows, baseline="raw CDP"))
    return write_report(
        HERE / "results" / "browser-latest.json",
        started=started,
        machine=machine_info(False),
        settings=vars(args),
        rows=rows,
        results={
            "cold_gateway_s": cold_gw,
            "cold_raw_s": cold_baseline,
            **warm_figures,
            "evaluate_rates": rates,
        },
        baseline="raw CDP",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cold", type=int, default=5, help="cold starts of each kind")
    parser.add_argument("--rounds", type=int, default=40, help="navigate + snapshot rounds")
    parser.add_argument("--calls", type=int, default=200, help="evaluate calls per block")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks")
    ns = parser.parse_args()
    if ns.quick:
        ns.cold, ns.rounds, ns.calls, ns.blocks = 2, 10, 50, 2
    os.environ.setdefault("PYTHONHASHSEED", "0")
    trio.run(main, ns)
