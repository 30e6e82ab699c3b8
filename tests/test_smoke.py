from aleph_trio import Client


async def test_health_in_process(client: Client) -> None:
    result = await client.call("health")
    assert result["status"] == "ok"
    assert result["connections"] == 1


async def test_health_over_socket(socket_client: Client) -> None:
    result = await socket_client.call("health")
    assert result["status"] == "ok"
