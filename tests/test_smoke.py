import pytest
import trio
import trio.testing

from aleph_trio import Client


async def test_health_in_process(client: Client) -> None:
    result = await client.call("health")
    assert result["status"] == "ok"
    assert result["connections"] == 1


async def test_health_over_socket(socket_client: Client) -> None:
    result = await socket_client.call("health")
    assert result["status"] == "ok"


async def test_a_hanging_test_fails_by_name(autojump_clock: trio.testing.MockClock) -> None:
    """Every async test runs under a deadline (conftest): waiting for what never comes is a
    TooSlowError at once, not a hang that takes the next test with it."""
    from conftest import _with_deadline

    async def hang() -> None:
        await trio.Event().wait()

    with pytest.raises(trio.TooSlowError):
        await _with_deadline(hang, virtual_s=60)()
    assert trio.current_time() == pytest.approx(60)
