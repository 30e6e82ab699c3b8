"""Plain HTTP on the WebSocket's port: /health, /ready, /metrics, limits and deadlines."""

from __future__ import annotations

import json
import re

import attrs
import h11
import pytest
import trio
import trio.testing

from aleph_trio import Config, Gateway, open_gateway
from aleph_trio.client import open_client
from aleph_trio.kernel import AuthConfig, ServerConfig
from aleph_trio.protocol import AlephError
from aleph_trio.web import Counter, Histogram, counter_family, histogram_family, render

METRIC_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
    r"(-?[0-9.]+(e[-+]?[0-9]+)?|[+-]Inf|NaN)$"
)


@attrs.frozen
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


async def exchange(stream: trio.abc.Stream, *requests: bytes) -> list[Answer]:
    """Send ``requests`` back to back on one connection (pipelined) and read the answers."""
    await stream.send_all(b"".join(requests))
    conn = h11.Connection(h11.CLIENT)
    answers: list[Answer] = []
    for raw in requests:
        method = raw.split(b" ", 1)[0]
        conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        head: h11.Response | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                if not data and head is None:
                    return answers
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return answers
        assert head is not None
        headers = {k.decode().lower(): v.decode() for k, v in head.headers}
        answers.append(Answer(head.status_code, headers, body))
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            break
        conn.start_next_cycle()
    return answers


def get(path: str, *, method: str = "GET", headers: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()


async def one(port: int, request: bytes) -> Answer:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        answers = await exchange(stream, request)
    assert len(answers) == 1
    return answers[0]


async def test_health_over_keep_alive_on_the_websocket_port(port: int, gateway: Gateway) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        answers = await exchange(stream, get("/health"), get("/health"), get("/ready"))
        # The same socket, three answers: keep-alive and pipelining both hold.
        assert [a.status for a in answers] == [200, 200, 200]
        health = answers[0].json()
        assert isinstance(health, dict)
        assert health["status"] == "ok" and health["uptime_s"] >= 0
        assert answers[0].headers["content-type"] == "application/json"
        assert answers[0].headers["x-content-type-options"] == "nosniff"
        assert answers[2].json() == {
            "ready": True,
            "checks": {"store": True, "scheduler": True, "accepting": True},
        }
        more = await exchange(stream, get("/health", method="HEAD"))
        assert more[0].status == 200 and more[0].body == b""
        assert int(more[0].headers["content-length"]) > 0
    # The WebSocket is still on the same port.
    async with open_client(f"ws://127.0.0.1:{port}/", token=gateway.owner_token) as client:
        assert await client.call("echo", {"a": 1}) == {"a": 1}


async def test_not_ready_once_draining(gateway: Gateway, nursery: trio.Nursery) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(gateway.serve_stream, server_stream)
    before = await exchange(client_stream, get("/ready"))
    await gateway.drain(0)
    after = await exchange(client_stream, get("/ready"))
    assert before[0].status == 200
    assert after[0].status == 503
    assert after[0].json() == {
        "ready": False,
        "checks": {"store": True, "scheduler": True, "accepting": False},
    }


async def test_metrics_need_the_owner_token(port: int, gateway: Gateway) -> None:
    missing = await one(port, get("/metrics"))
    wrong = await one(port, get("/metrics", headers="Authorization: Bearer nope\r\n"))
    assert missing.status == wrong.status == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert b"aleph_" not in missing.body + wrong.body
    good = await one(
        port, get("/metrics", headers=f"Authorization: Bearer {gateway.owner_token}\r\n")
    )
    assert good.status == 200
    assert good.headers["content-type"].startswith("text/plain; version=0.0.4")


async def test_metrics_count_requests_codes_and_latency(port: int, gateway: Gateway) -> None:
    async with open_client(f"ws://127.0.0.1:{port}/", token=gateway.owner_token) as client:
        for _ in range(3):
            await client.call("echo", {"n": 1})
        with pytest.raises(AlephError):
            await client.call("no.such.method")
        with pytest.raises(AlephError):
            await client.call("session.history", {"session_key": "bad key"})
        page = await one(
            port, get("/metrics", headers=f"Authorization: Bearer {gateway.owner_token}\r\n")
        )
        text = page.body.decode()
        for line in text.splitlines():
            assert line.startswith("# ") or METRIC_LINE.match(line), line
        assert 'aleph_rpc_requests_total{method="echo",code="0"} 3' in text
        assert 'aleph_rpc_requests_total{method="unknown",code="-32601"} 1' in text
        assert 'aleph_rpc_requests_total{method="session.history",code="-32602"} 1' in text
        assert 'aleph_rpc_request_duration_seconds_count{method="echo"} 3' in text
        assert 'aleph_rpc_request_duration_seconds_bucket{method="echo",le="+Inf"} 3' in text
        assert 'aleph_connections{role="owner"} 1' in text
        assert 'aleph_service_up{service="cron"} 1' in text
        assert "# TYPE aleph_rpc_request_duration_seconds histogram" in text
        assert "aleph_events_published_total" in text


async def test_metrics_count_runs_by_status(port: int, gateway: Gateway) -> None:
    async with open_client(f"ws://127.0.0.1:{port}/", token=gateway.owner_token) as client:
        await client.call("agent.run", {"message": "hello"})  # its caller gets its events
        while (await client.next_event(timeout=10)).topic != "agent.completed":
            pass
    page = await one(
        port, get("/metrics", headers=f"Authorization: Bearer {gateway.owner_token}\r\n")
    )
    text = page.body.decode()
    assert 'aleph_runs_finished_total{status="completed"} 1' in text
    assert 'aleph_runs{status="running"} 0' in text


def test_histogram_buckets_are_cumulative_and_labels_escaped() -> None:
    histogram = Histogram("lat", "Latency", "method", buckets=(0.1, 1.0))
    for value in (0.05, 0.5, 0.5, 3.0):
        histogram.observe('say "hi"\n', value)
    counter = Counter("calls", "Calls\nmade", ("method",))
    counter.inc(("a",), 2)
    text = render([histogram_family(histogram), counter_family(counter)])
    assert text.splitlines() == [
        "# HELP lat Latency",
        "# TYPE lat histogram",
        'lat_bucket{method="say \\"hi\\"\\n",le="0.1"} 1',
        'lat_bucket{method="say \\"hi\\"\\n",le="1"} 3',
        'lat_bucket{method="say \\"hi\\"\\n",le="+Inf"} 4',
        'lat_sum{method="say \\"hi\\"\\n"} 4.05',
        'lat_count{method="say \\"hi\\"\\n"} 4',
        "# HELP calls Calls\\nmade",
        "# TYPE calls counter",
        'calls_total{method="a"} 2',
    ]


@pytest.mark.parametrize("require_auth", [False])
async def test_metrics_open_without_auth(data_dir: object, require_auth: bool) -> None:
    config = Config(auth=AuthConfig(require_auth=require_auth))
    async with open_gateway(config, data_dir=str(data_dir)) as gateway, trio.open_nursery() as n:
        port = await n.start(gateway.serve, "127.0.0.1", 0)
        assert (await one(port, get("/metrics"))).status == 200
        n.cancel_scope.cancel()


async def test_wrong_method_path_and_plain_get_on_the_websocket_path(port: int) -> None:
    post = await one(port, get("/health", method="POST", headers="Content-Length: 0\r\n"))
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
    assert (await one(port, get("/nowhere"))).status == 404
    plain = await one(port, get("/"))
    assert plain.status == 426 and plain.headers["upgrade"] == "websocket"


async def test_bad_requests_are_refused_and_closed(port: int) -> None:
    huge = get("/health", headers="X-Big: " + "a" * 20000 + "\r\n")
    assert (await one(port, huge)).status == 431
    body = b"x" * (70 * 1024)
    post = get("/health", method="POST", headers=f"Content-Length: {len(body)}\r\n") + body
    assert (await one(port, post)).status == 413
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"NONSENSE\r\n\r\n")
        reply = b""
        while chunk := await stream.receive_some(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400")


async def test_slow_and_idle_clients_are_cut_off(
    patient_clock: trio.testing.MockClock, data_dir: object
) -> None:
    config = Config(
        auth=AuthConfig(handshake_timeout_s=5), server=ServerConfig(http_idle_timeout_s=30)
    )
    async with open_gateway(config, data_dir=str(data_dir)) as gateway, trio.open_nursery() as n:
        # A head that never finishes: closed when the request deadline passes.
        slow, server_side = trio.testing.memory_stream_pair()
        n.start_soon(gateway.serve_stream, server_side)
        await slow.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = trio.current_time()
        assert await slow.receive_some(100) == b""
        assert 5 <= trio.current_time() - started < 6
        # A keep-alive connection that goes quiet: closed after the idle timeout.
        idle, server_side = trio.testing.memory_stream_pair()
        n.start_soon(gateway.serve_stream, server_side)
        assert (await exchange(idle, get("/health")))[0].status == 200
        started = trio.current_time()
        assert await idle.receive_some(100) == b""
        assert 30 <= trio.current_time() - started < 31


async def test_an_upgrade_trickling_in_byte_by_byte_still_connects(
    gateway: Gateway, nursery: trio.Nursery
) -> None:
    from rawws import RawWebSocket

    client_stream, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(gateway.serve_stream, server_stream)

    class Trickle(trio.abc.Stream):
        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            for i in range(len(data)):
                await client_stream.send_all(bytes(data[i : i + 1]))

        async def wait_send_all_might_not_block(self) -> None:
            await client_stream.wait_send_all_might_not_block()

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            return bytes(await client_stream.receive_some(max_bytes))

        async def aclose(self) -> None:
            await client_stream.aclose()

    raw = RawWebSocket(Trickle())
    assert await raw.handshake("/") == 101
    reply = await raw.call("connect", {"token": gateway.owner_token})
    assert reply["result"]["authenticated"] is True


async def test_control_ui_files_with_their_policy(port: int) -> None:
    redirect = await one(port, get("/ui"))
    assert redirect.status == 308 and redirect.headers["location"] == "/ui/"
    page = await one(port, get("/ui/"))
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert b'<script src="app.js"' in page.body
    script = await one(port, get("/ui/app.js"))
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"events.subscribe" in script.body and b"since_seq" in script.body
    assert (await one(port, get("/ui/app.css"))).status == 200
    assert (await one(port, get("/ui/../token"))).status == 404
    assert (await one(port, get("/ui/secret.py"))).status == 404


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("127.0.0.1:{port}", "http://127.0.0.1:{port}", 101),  # the UI's own origin
        ("localhost:{port}", "http://localhost:{port}", 101),
        ("[::1]:{port}", "http://[::1]:{port}", 101),
        ("127.0.0.1:{port}", "http://127.0.0.1:9", 403),  # another port is another origin
        ("evil.example:{port}", "http://evil.example:{port}", 403),  # DNS rebinding
        ("127.0.0.1:{port}", "http://evil.example", 403),
    ],
)
async def test_the_gateways_own_origin_is_allowed_on_loopback_only(
    port: int, host: str, origin: str, status: int
) -> None:
    import wsproto
    from wsproto.events import AcceptConnection, RejectConnection, Request

    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    request = Request(
        host=host.format(port=port),
        target="/ws",
        extra_headers=[(b"origin", origin.format(port=port).encode())],
    )
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(ws.send(request))
        with trio.fail_after(10):
            while True:
                ws.receive_data(await stream.receive_some(65536))
                events = list(ws.events())
                if events:
                    break
    first = events[0]
    got = 101 if isinstance(first, AcceptConnection) else None
    if isinstance(first, RejectConnection):
        got = first.status_code
    assert got == status
