"""Python plugins (PROTOCOL §15): written to temp dirs, loaded over real connections, their
methods, tools, listeners and tasks used for real, and taken down again."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from aleph_trio import Client, Config, Gateway, open_client, open_gateway
from aleph_trio.auth import Principal
from aleph_trio.kernel import AgentConfig, PluginsConfig, ProviderConfig
from aleph_trio.plugins import LISTENER_QUEUE, SETUP_TIMEOUT_S
from aleph_trio.protocol import AlephError
from llmserver import LLMServer, Reply, serve_llm, sse
from runhelp import run_events, start, wait_event

DONE = {"choices": [{"index": 0, "delta": {"content": "done"}, "finish_reason": "stop"}]}

HEADER = """\
from __future__ import annotations
from typing import Any
import attrs
import trio
import trio.testing
from aleph_trio.plugins import InvalidArgument, PluginApi, PluginEvent, ToolContext, ToolFailed
"""

#: A plugin whose task says when it starts and stops, with a method answering ``{"v": VERSION}``.
BASIC = """
VERSION = 1

@attrs.frozen
class Empty:
    pass

def setup(api: PluginApi) -> None:
    @api.method("version", Empty, description="The version of this file.", owner_only=False)
    async def version(params: Empty) -> dict[str, Any]:
        return {"v": VERSION}

    async def task() -> None:
        api.publish("started", {})
        try:
            await trio.sleep_forever()
        finally:
            api.publish("stopped", {})

    api.start_task(task)
"""


def write(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + textwrap.dedent(body))
    return path


async def error_of(client: Client, method: str, params: dict[str, Any] | None = None) -> AlephError:
    with pytest.raises(AlephError) as err:
        await client.call(method, params)
    return err.value


async def wait_all(client: Client, *topics: str) -> dict[str, dict[str, Any]]:
    """The data of the next event of each of ``topics``, in whatever order they come."""
    got: dict[str, dict[str, Any]] = {}
    with trio.fail_after(10):
        while len(got) < len(topics):
            event = await client.next_event()
            if event.topic in topics:
                got.setdefault(event.topic, event.data)
    return got


def plugin_modules() -> list[str]:
    return [name for name in sys.modules if name.startswith("_aleph_plugin_")]


async def test_lifecycle_over_a_socket(
    socket_client: Client, gateway: Gateway, tmp_path: Path
) -> None:
    client = socket_client
    path = write(tmp_path, "basic.py", BASIC)
    await client.subscribe(["basic.*", "plugins.*"])
    assert await client.call("plugins.load", {"path": str(path)}) == {
        "loaded": True,
        "plugin_id": "basic",
    }
    seen = await wait_all(client, "plugins.loaded", "basic.started")
    assert seen["plugins.loaded"] == {"plugin_id": "basic", "name": "basic"}
    assert await client.call("basic.version") == {"v": 1}
    (entry,) = (await client.call("plugins.list"))["plugins"]
    assert entry == {
        "id": "basic",
        "name": "basic",
        "version": None,
        "path": str(path),
        "enabled": True,
        "status": "enabled",
    }
    status = await client.call("plugins.status", {"plugin_id": "basic"})
    assert status["status"] == "enabled" and status["methods"] == ["basic.version"]
    assert "error" not in status
    commands = {c["method"]: c for c in (await client.call("commands.list"))["commands"]}
    assert commands["basic.version"]["owner_only"] is False
    assert commands["basic.version"]["description"] == "The version of this file."
    assert all(c["owner_only"] for name, c in commands.items() if name.startswith("plugins."))
    # params are decoded strictly, like a built-in method's
    assert (await error_of(client, "basic.version", {"x": 1})).code == -32602

    assert await client.call("plugins.unload", {"plugin_id": "basic"}) == {"unloaded": True}
    seen = await wait_all(client, "basic.stopped", "plugins.unloaded")  # its task was cancelled
    assert seen["plugins.unloaded"] == {"plugin_id": "basic", "name": "basic"}
    err = await error_of(client, "basic.version")
    assert err.code == -32601 and err.message == "Method not found: basic.version"
    assert (await client.call("plugins.list"))["plugins"] == []
    assert "basic.version" not in {
        c["method"] for c in (await client.call("commands.list"))["commands"]
    }
    assert plugin_modules() == []
    assert (await error_of(client, "plugins.status", {"plugin_id": "basic"})).code == -32004


async def test_reload_picks_up_an_edit_and_imports_afresh(client: Client, tmp_path: Path) -> None:
    path = write(tmp_path, "basic.py", BASIC)
    await client.call("plugins.load", {"path": str(path)})
    assert await client.call("basic.version") == {"v": 1}
    write(tmp_path, "basic.py", BASIC.replace("VERSION = 1", "VERSION = 2"))
    # loading the same path again replaces the plugin
    await client.call("plugins.load", {"path": str(path)})
    assert await client.call("basic.version") == {"v": 2}
    assert len(plugin_modules()) == 1  # the old module left sys.modules
    write(tmp_path, "basic.py", BASIC.replace("VERSION = 1", "VERSION = 3"))
    await client.call("plugins.unload", {"plugin_id": "basic"})
    await client.call("plugins.load", {"path": str(path)})
    assert await client.call("basic.version") == {"v": 3}
    assert len(plugin_modules()) == 1
    # the file now names another id: loading its path again still replaces the old plugin
    write(tmp_path, "basic.py", 'PLUGIN_ID = "renamed"\n' + BASIC)
    assert (await client.call("plugins.load", {"path": str(path)}))["plugin_id"] == "renamed"
    assert [p["id"] for p in (await client.call("plugins.list"))["plugins"]] == ["renamed"]
    assert (await error_of(client, "basic.version")).code == -32601
    assert await client.call("renamed.version") == {"v": 1}
    assert len(plugin_modules()) == 1


async def test_setup_that_raises_leaves_a_failed_plugin_and_a_serving_gateway(
    client: Client, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "broken.py",
        """
        def setup(api: PluginApi) -> None:
            @api.method("early", None, description="registered before the failure", owner_only=False)
            async def early(params: dict[str, Any]) -> str:
                return "early"
            raise RuntimeError("no database")
        """,
    )
    await client.subscribe(["plugins.*"])
    err = await error_of(client, "plugins.load", {"path": str(path)})
    assert err.code == -32603 and "setup raised RuntimeError: no database" in err.message
    assert err.data == {"plugin_id": "broken"}
    failed = await wait_event(client, "plugins.failed")
    assert failed.data["plugin_id"] == "broken" and "no database" in failed.data["error"]
    status = await client.call("plugins.status", {"plugin_id": "broken"})
    assert status["status"] == "failed" and status["methods"] == []
    assert status["error"] == "setup raised RuntimeError: no database"
    assert (await error_of(client, "broken.early")).code == -32601
    assert (await client.call("health"))["status"] == "ok"


RUNTIME = """
@attrs.frozen
class Empty:
    pass

def setup(api: PluginApi) -> None:
    @api.method("ok", Empty, description="answers", owner_only=False)
    async def ok(params: Empty) -> str:
        return "fine"

    @api.method("crash", Empty, description="raises a bug", owner_only=False)
    async def crash(params: Empty) -> str:
        raise KeyError("oops")

    @api.method("refuse", Empty, description="raises a domain error", owner_only=False)
    async def refuse(params: Empty) -> str:
        raise InvalidArgument.field("x", "not today")

    @api.on("test.poke")
    async def poked(event: PluginEvent) -> None:
        if event.data.get("fail"):
            raise ValueError("poked too hard")
        api.publish("poked", {"seq": event.seq, "data": event.data})

    async def ticking() -> None:
        try:
            await trio.sleep_forever()
        finally:
            api.publish("stopped", {})

    api.start_task(ticking)
"""


async def test_a_method_that_raises_fails_the_plugin_and_enable_brings_it_back(
    client: Client, gateway: Gateway, tmp_path: Path
) -> None:
    await client.call("plugins.load", {"path": str(write(tmp_path, "rt.py", RUNTIME))})
    # a domain error is the plugin's clear answer, not a failure
    err = await error_of(client, "rt.refuse")
    assert err.code == -32602 and err.message == "Invalid params: x: not today"
    assert (await client.call("plugins.status", {"plugin_id": "rt"}))["status"] == "enabled"
    await client.subscribe(["rt.*", "plugins.*"])
    err = await error_of(client, "rt.crash")
    assert err.code == -32603 and "method rt.crash raised KeyError" in err.message
    await wait_event(client, "rt.stopped")  # its task was cancelled with it
    status = await client.call("plugins.status", {"plugin_id": "rt"})
    assert status["status"] == "failed" and "KeyError: 'oops'" in status["error"]
    assert (await error_of(client, "rt.ok")).code == -32601  # a failed plugin answers nothing
    assert await client.call("plugins.enable", {"plugin_id": "rt"}) == {"enabled": True}
    assert await client.call("rt.ok") == "fine"
    assert (await client.call("plugins.status", {"plugin_id": "rt"}))["status"] == "enabled"


async def test_a_listener_gets_events_and_one_that_raises_fails_the_plugin(
    client: Client, gateway: Gateway, tmp_path: Path
) -> None:
    await client.call("plugins.load", {"path": str(write(tmp_path, "rt.py", RUNTIME))})
    await client.subscribe(["rt.*", "plugins.*"])
    event = gateway.bus.publish("test.poke", {"n": 7})
    poked = await wait_event(client, "rt.poked")
    assert poked.data == {"seq": event.seq, "data": {"n": 7}}
    gateway.bus.publish("test.other", {"n": 8})  # not its pattern
    gateway.bus.publish("test.poke", {"fail": True})
    failed = await wait_event(client, "plugins.failed")
    assert failed.data["error"].startswith("listener setup.<locals>.poked raised ValueError")
    await wait_event(client, "rt.stopped")
    assert (await client.call("plugins.status", {"plugin_id": "rt"}))["status"] == "failed"
    assert (await error_of(client, "rt.ok")).code == -32601


async def test_a_task_that_raises_fails_the_plugin(client: Client, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasky.py",
        """
        def setup(api: PluginApi) -> None:
            async def worker(limit: int) -> None:
                await trio.sleep(0)
                raise RuntimeError(f"gave up after {limit}")
            api.start_task(worker, 3)
        """,
    )
    await client.subscribe(["plugins.*"])
    await client.call("plugins.load", {"path": str(path)})
    failed = await wait_event(client, "plugins.failed")
    assert failed.data["error"] == (
        "task setup.<locals>.worker raised RuntimeError: gave up after 3"
    )
    assert (await client.call("health"))["status"] == "ok"


#: Two tasks: ``ticker`` says each time it starts and stops; ``pump`` (named) just runs.
TASKS = """
STARTS = []

@attrs.frozen
class Empty:
    pass

def setup(api: PluginApi) -> None:
    @api.method("ok", Empty, description="answers", owner_only=False)
    async def ok(params: Empty) -> str:
        return "fine"

    async def ticker() -> None:
        STARTS.append(1)
        api.publish("started", {"n": len(STARTS)})
        try:
            await trio.sleep_forever()
        finally:
            api.publish("stopped", {"n": len(STARTS)})

    async def pump() -> None:
        await trio.sleep_forever()

    assert api.start_task(ticker) == "plugin:tk:ticker"
    assert api.start_task(pump, name="pump") == "plugin:tk:pump"
"""


def services_of(listing: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in listing["services"] if s["name"].startswith(prefix)}


async def test_each_task_is_a_service_stopped_and_started_alone(
    socket_client: Client, tmp_path: Path
) -> None:
    client = socket_client
    await client.subscribe(["tk.*", "services.*"])
    await client.call("plugins.load", {"path": str(write(tmp_path, "tk.py", TASKS))})
    assert (await wait_event(client, "tk.started")).data == {"n": 1}
    tasks = services_of(await client.call("services.list"), "plugin:tk:")
    assert sorted(tasks) == ["plugin:tk:pump", "plugin:tk:ticker"]
    ticker = tasks["plugin:tk:ticker"]
    assert ticker["status"] == "running" and ticker["restarts"] == 0
    assert ticker["started_at"] is not None and "error" not in ticker
    status = await client.call("plugins.status", {"plugin_id": "tk"})
    assert status["services"] == ["plugin:tk:pump", "plugin:tk:ticker"]

    # stopping one task cancels just that task: the plugin and its other task go on
    assert await client.call("services.stop", {"name": "plugin:tk:ticker"}) == {"stopped": True}
    assert (await wait_event(client, "tk.stopped")).data == {"n": 1}
    assert (await client.call("services.status", {"name": "plugin:tk:ticker"}))[
        "status"
    ] == "stopped"
    assert (await client.call("services.status", {"name": "plugin:tk:pump"}))["status"] == "running"
    assert (await client.call("plugins.status", {"plugin_id": "tk"}))["status"] == "enabled"
    assert await client.call("tk.ok") == "fine"

    # starting it runs the task again
    assert await client.call("services.start", {"name": "plugin:tk:ticker"}) == {"started": True}
    assert (await wait_event(client, "tk.started")).data == {"n": 2}
    again = await client.call("services.status", {"name": "plugin:tk:ticker"})
    assert again["status"] == "running"

    # unloading cancels the tasks and removes their services
    await client.call("plugins.unload", {"plugin_id": "tk"})
    assert (await wait_event(client, "tk.stopped")).data == {"n": 2}
    assert services_of(await client.call("services.list"), "plugin:") == {}
    err = await error_of(client, "services.status", {"name": "plugin:tk:ticker"})
    assert err.code == -32004 and "plugin:tk:ticker" in err.message
    assert "plugins" in services_of(await client.call("services.list"), "plugins")


async def test_task_services_go_with_disable_and_come_back_with_enable(
    client: Client, tmp_path: Path
) -> None:
    await client.subscribe(["tk.*"])
    await client.call("plugins.load", {"path": str(write(tmp_path, "tk.py", TASKS))})
    await wait_event(client, "tk.started")
    await client.call("plugins.disable", {"plugin_id": "tk"})
    await wait_event(client, "tk.stopped")
    assert services_of(await client.call("services.list"), "plugin:") == {}
    await client.call("plugins.enable", {"plugin_id": "tk"})
    await wait_event(client, "tk.started")
    listing = services_of(await client.call("services.list"), "plugin:")
    assert sorted(listing) == ["plugin:tk:pump", "plugin:tk:ticker"]
    # stopping the whole ``plugins`` service takes the task services with it
    await client.call("services.stop", {"name": "plugins"})
    assert services_of(await client.call("services.list"), "plugin:") == {}
    assert await client.call("plugins.list") == {"plugins": []}  # none of them runs
    await client.call("services.start", {"name": "plugins"})
    await wait_event(client, "tk.started")
    assert "plugin:tk:ticker" in services_of(await client.call("services.list"), "plugin:")


async def test_task_names_finished_tasks_and_a_taken_name(
    client: Client, gateway: Gateway, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "names.py",
        """
        @attrs.frozen
        class Empty:
            pass

        def setup(api: PluginApi) -> None:
            async def worker(gate: trio.Event) -> None:
                await gate.wait()

            first, second = trio.Event(), trio.Event()
            names = [api.start_task(worker, first), api.start_task(worker, second)]
            names.append(api.start_task(lambda: trio.sleep_forever()))
            api.publish("named", {"names": names})

            @api.on("test.release")
            async def release(event: PluginEvent) -> None:
                first.set()

            @api.method("again", Empty, description="a taken name", owner_only=False)
            async def again(params: Empty) -> str:
                return api.start_task(worker, second, name="worker-2")
        """,
    )
    await client.subscribe(["names.*", "services.*"])
    await client.call("plugins.load", {"path": str(path)})
    named = await wait_event(client, "names.named")
    assert named.data["names"] == [
        "plugin:names:worker",
        "plugin:names:worker-2",
        "plugin:names:task",
    ]
    listing = services_of(await client.call("services.list"), "plugin:names:")
    assert sorted(listing) == sorted(named.data["names"])
    # a task that returns has finished: its service stops and leaves the registry
    gateway.bus.publish("test.release", {})
    stopped = await wait_event(client, "services.stopped")
    assert stopped.data == {"name": "plugin:names:worker"}
    listing = services_of(await client.call("services.list"), "plugin:names:")
    assert sorted(listing) == ["plugin:names:task", "plugin:names:worker-2"]
    assert (await client.call("plugins.status", {"plugin_id": "names"}))["status"] == "enabled"
    # an explicit name another task of the plugin holds is the plugin's bug
    err = await error_of(client, "names.again")
    assert err.code == -32603 and "has a task named 'worker-2' already" in err.message


async def test_a_task_that_raises_fails_its_service_and_the_plugin(
    client: Client, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "tasky.py",
        """
        def setup(api: PluginApi) -> None:
            async def worker(limit: int) -> None:
                await trio.sleep(0)
                raise RuntimeError(f"gave up after {limit}")

            async def idle() -> None:
                await trio.sleep_forever()

            api.start_task(idle)
            api.start_task(worker, 3)
        """,
    )
    await client.subscribe(["plugins.*", "services.*"])
    await client.call("plugins.load", {"path": str(path)})
    seen: dict[str, dict[str, Any]] = {}
    with trio.fail_after(10):
        while len(seen) < 3:  # the task's service failed, the other one stopped with the plugin
            event = await client.next_event()
            if event.topic in ("services.failed", "services.stopped", "plugins.failed"):
                seen[event.topic] = event.data
    assert seen["services.failed"] == {
        "name": "plugin:tasky:worker",
        "error": "RuntimeError: gave up after 3",
    }
    assert seen["services.stopped"] == {"name": "plugin:tasky:idle"}
    assert seen["plugins.failed"]["plugin_id"] == "tasky"
    status = await client.call("plugins.status", {"plugin_id": "tasky"})
    assert status["status"] == "failed"
    assert status["error"] == "task setup.<locals>.worker raised RuntimeError: gave up after 3"
    tasks = services_of(await client.call("services.list"), "plugin:tasky:")
    assert tasks["plugin:tasky:worker"]["status"] == "failed"
    assert tasks["plugin:tasky:worker"]["error"] == "RuntimeError: gave up after 3"
    assert tasks["plugin:tasky:idle"]["status"] == "stopped"  # cancelled with its plugin
    # a failed plugin's task cannot be started on its own: plugins.enable runs it again
    err = await error_of(client, "services.start", {"name": "plugin:tasky:idle"})
    assert err.code == -32602 and "plugins.enable" in err.message
    assert err.data is not None and err.data["reason"] == "invalid_state"
    assert (await client.call("health"))["status"] == "ok"
    await client.call("plugins.unload", {"plugin_id": "tasky"})
    assert services_of(await client.call("services.list"), "plugin:") == {}


async def test_a_slow_listener_never_holds_up_the_bus(
    client: Client, gateway: Gateway, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "slow.py",
        """
        def setup(api: PluginApi) -> None:
            @api.on("test.*")
            async def stuck(event: PluginEvent) -> None:
                await trio.sleep_forever()
        """,
    )
    await client.call("plugins.load", {"path": str(path)})
    for n in range(LISTENER_QUEUE + 50):
        gateway.bus.publish("test.flood", {"n": n})  # synchronous: it would block here
    status = await client.call("plugins.status", {"plugin_id": "slow"})
    assert status["status"] == "enabled"
    assert LISTENER_QUEUE + 50 - status["dropped_events"] in (LISTENER_QUEUE, LISTENER_QUEUE + 1)


async def test_disable_stops_it_and_is_remembered_across_restarts(
    config: Config, data_dir: Path, tmp_path: Path
) -> None:
    path = write(tmp_path, "basic.py", BASIC)
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        await client.subscribe(["basic.*"])
        await client.call("plugins.load", {"path": str(path)})
        await wait_event(client, "basic.started")
        assert await client.call("plugins.disable", {"plugin_id": "basic"}) == {"disabled": True}
        await wait_event(client, "basic.stopped")
        assert (await error_of(client, "basic.version")).code == -32601
        (entry,) = (await client.call("plugins.list"))["plugins"]
        assert entry["enabled"] is False and entry["status"] == "disabled"
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        (entry,) = (await client.call("plugins.list"))["plugins"]
        assert entry["id"] == "basic" and entry["status"] == "disabled"
        assert (await error_of(client, "basic.version")).code == -32601
        assert await client.call("plugins.enable", {"plugin_id": "basic"}) == {"enabled": True}
        assert await client.call("basic.version") == {"v": 1}
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        assert await client.call("basic.version") == {"v": 1}  # loaded and enabled at start
        await client.call("plugins.unload", {"plugin_id": "basic"})
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        assert (await client.call("plugins.list"))["plugins"] == []


async def test_plugins_from_the_config_and_the_data_dir_load_at_start(
    data_dir: Path, tmp_path: Path
) -> None:
    configured = write(tmp_path / "elsewhere", "basic.py", BASIC)
    write(
        data_dir / "plugins",
        "pkg/__init__.py",
        """
        from .helper import ANSWER
        PLUGIN_NAME = "Packaged"
        __version__ = "2.1"

        def setup(api: PluginApi) -> None:
            @api.method("answer", None, description="from a submodule", owner_only=True)
            async def answer(params: dict[str, Any]) -> dict[str, Any]:
                return {"answer": ANSWER, "echo": params}
        """,
    )
    (data_dir / "plugins" / "pkg" / "helper.py").write_text("ANSWER = 42\n")
    write(data_dir / "plugins", "bad.py", "def broken(:\n")
    config = Config(plugins=PluginsConfig(paths=(str(configured),)))
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        plugins = {p["id"]: p for p in (await client.call("plugins.list"))["plugins"]}
        assert plugins["pkg"]["name"] == "Packaged" and plugins["pkg"]["version"] == "2.1"
        assert plugins["basic"]["status"] == "enabled"
        assert plugins["bad"]["status"] == "failed"
        status = await client.call("plugins.status", {"plugin_id": "bad"})
        assert status["error"].startswith(f"{data_dir / 'plugins' / 'bad.py'} could not be")
        assert "imported: SyntaxError" in status["error"]
        assert await client.call("pkg.answer", {"q": 1}) == {"answer": 42, "echo": {"q": 1}}
        assert await client.call("basic.version") == {"v": 1}
        # fixed on disk, enable imports it afresh
        write(data_dir / "plugins", "bad.py", BASIC)
        assert await client.call("plugins.enable", {"plugin_id": "bad"}) == {"enabled": True}
        assert await client.call("bad.version") == {"v": 1}
    assert plugin_modules() == []


async def test_paths_that_are_not_plugins_and_unknown_ids(client: Client, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "folder").mkdir()
    write(tmp_path, "nosetup.py", "X = 1\n")
    write(tmp_path, "Bad-Name.py", BASIC)
    cases = {
        str(tmp_path / "missing.py"): "does not exist",
        str(tmp_path / "notes.txt"): "is not a .py file",
        str(tmp_path / "folder"): "without __init__.py",
        str(tmp_path / "nosetup.py"): "has no setup(api) function",
        str(tmp_path / "Bad-Name.py"): "plugin id 'Bad-Name' must be",
        "bad\x00path.py": "is not a usable path",
        str(tmp_path / ("x" * 300)): "File name too long",
    }
    for path, words in cases.items():
        err = await error_of(client, "plugins.load", {"path": path})
        assert err.code == -32602 and words in err.message, (path, err.message)
    assert (await client.call("plugins.list"))["plugins"] == []
    assert plugin_modules() == []
    for method in ("plugins.unload", "plugins.enable", "plugins.disable", "plugins.status"):
        err = await error_of(client, method, {"plugin_id": "nope"})
        assert err.code == -32004 and err.data == {"resource": "plugin", "id": "nope"}


async def test_plugin_ids_may_not_clash(client: Client, tmp_path: Path) -> None:
    await client.call("plugins.load", {"path": str(write(tmp_path / "a", "basic.py", BASIC))})
    err = await error_of(
        client, "plugins.load", {"path": str(write(tmp_path / "b", "basic.py", BASIC))}
    )
    assert err.code == -32602 and err.data is not None and err.data["reason"] == "conflict"
    err = await error_of(client, "plugins.load", {"path": str(write(tmp_path, "cron.py", BASIC))})
    assert err.code == -32602 and "built-in namespace" in err.message
    assert await client.call("basic.version") == {"v": 1}
    assert len(plugin_modules()) == 1


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugins" / "greeter.py"


def tool_call_script(llm: LLMServer, tool: str, arguments: str) -> None:
    """The model asks for one call of ``tool``, then answers "done"."""
    call = {"index": 0, "id": "c1", "type": "function"}
    call["function"] = {"name": tool, "arguments": arguments}
    delta = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    llm.script += [Reply(parts=sse(delta)), Reply(parts=sse(DONE))]


def scripted_config(llm: LLMServer) -> Config:
    return Config(
        providers={"up": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",))},
        agents={"main": AgentConfig(model="up/m")},
    )


async def test_the_example_plugin_end_to_end(data_dir: Path, nursery: trio.Nursery) -> None:
    """examples/plugins/greeter.py loaded over a WebSocket: its method, its tool in an agent run
    (the model is a scripted HTTP server on loopback), its listener and its task."""
    async with serve_llm() as llm, open_gateway(scripted_config(llm), data_dir=data_dir) as gw:
        port = await nursery.start(gw.serve, "127.0.0.1", 0)
        async with open_client(f"ws://127.0.0.1:{port}/", token=gw.owner_token) as client:
            await client.subscribe(["greeter.*"])
            loaded = await client.call("plugins.load", {"path": str(EXAMPLE)})
            assert loaded == {"loaded": True, "plugin_id": "greeter"}
            await wait_event(client, "greeter.started")
            (entry,) = (await client.call("plugins.list"))["plugins"]
            assert (entry["name"], entry["version"]) == ("Greeter", "1.0.0")
            assert await client.call("greeter.greet", {"name": "Ada"}) == {
                "greeting": "Hello, Ada!"
            }
            commands = {c["method"]: c for c in (await client.call("commands.list"))["commands"]}
            schema = commands["greeter.greet"]["params"]
            assert schema["properties"]["name"]["maxLength"] == 100
            assert commands["greeter.stats"]["owner_only"] is True
            status = await client.call("plugins.status", {"plugin_id": "greeter"})
            assert status["tools"] == ["greet_person"]
            assert status["services"] == ["plugin:greeter:heartbeat"]
            heartbeat = await client.call("services.status", {"name": "plugin:greeter:heartbeat"})
            assert heartbeat["status"] == "running"

            tool_call_script(llm, "greet_person", '{"name": "Grace"}')
            run_id = await start(client, "greet Grace")
            events = await run_events(client, run_id)
            end = next(e.data for e in events if e.topic == "stream.tool_end")
            assert end["is_error"] is False
            assert end["output"] == f"Hello, Grace! (greeted during run {run_id})"
            offered = [t["function"]["name"] for t in llm.requests[0].body["tools"]]
            assert "greet_person" in offered
            with trio.fail_after(10):  # the listener counts completed runs, after the fact
                while (stats := await client.call("greeter.stats"))["runs_completed"] < 1:
                    await trio.lowlevel.checkpoint()
            assert stats["greeted"] == ["Ada", "Grace"] and stats["agents"] == ["main"]

            assert await client.call("plugins.unload", {"plugin_id": "greeter"}) == {
                "unloaded": True
            }
            assert (await wait_event(client, "greeter.stopped")).data == {"ticks": 0}
            assert "greet_person" not in gw.tools.names()
            assert (await error_of(client, "greeter.greet", {"name": "x"})).code == -32601
            # a run after the unload: the model is no longer offered the tool
            llm.script += [Reply(parts=sse(DONE))]
            await run_events(client, await start(client, "greet again"))
            offered = [t["function"]["name"] for t in llm.requests[-1].body.get("tools", [])]
            assert "greet_person" not in offered


async def test_a_tool_that_raises_fails_its_plugin_and_the_run_goes_on(
    data_dir: Path, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "tooly.py",
        """
        @attrs.frozen
        class Args:
            text: str

        def setup(api: PluginApi) -> None:
            @api.tool("shout", Args, description="Shout the text back.")
            async def shout(ctx: ToolContext, params: Args) -> str:
                if params.text == "refuse":
                    raise ToolFailed("will not shout that")
                raise ZeroDivisionError("bug")
        """,
    )
    async with serve_llm() as llm, open_gateway(scripted_config(llm), data_dir=data_dir) as gw:
        async with gw.connect() as client:
            await client.call("plugins.load", {"path": str(path)})
            tool_call_script(llm, "shout", '{"text": "refuse"}')
            events = await run_events(client, await start(client, "go"))
            end = next(e.data for e in events if e.topic == "stream.tool_end")
            assert end["is_error"] is True and end["output"] == "will not shout that"
            assert (await client.call("plugins.status", {"plugin_id": "tooly"}))["status"] == (
                "enabled"
            )
            tool_call_script(llm, "shout", '{"text": "hi"}')
            events = await run_events(client, await start(client, "go"))
            end = next(e.data for e in events if e.topic == "stream.tool_end")
            assert end["is_error"] is True
            assert end["output"] == "plugin tooly failed: tool shout raised ZeroDivisionError: bug"
            assert events[-1].topic == "agent.completed"
            status = await client.call("plugins.status", {"plugin_id": "tooly"})
            assert status["status"] == "failed" and status["tools"] == []
            assert "shout" not in gw.tools.names()


async def test_async_setup_and_a_setup_that_never_finishes(
    client: Client, tmp_path: Path, patient_clock: trio.testing.MockClock
) -> None:
    slow = write(
        tmp_path,
        "slow_start.py",
        """
        async def setup(api: PluginApi) -> None:
            await trio.sleep(5)  # an async setup may wait for what it needs

            @api.method("ready", None, description="ready", owner_only=False)
            async def ready(params: dict[str, Any]) -> bool:
                return True
        """,
    )
    stuck = write(
        tmp_path,
        "stuck.py",
        """
        async def setup(api: PluginApi) -> None:
            await trio.sleep_forever()
        """,
    )
    await client.call("plugins.load", {"path": str(slow)})
    assert await client.call("slow_start.ready") is True
    err = await error_of(client, "plugins.load", {"path": str(stuck)})
    assert err.code == -32603
    assert err.message.endswith(f"setup did not finish within {SETUP_TIMEOUT_S:g} s")
    assert (await client.call("plugins.status", {"plugin_id": "stuck"}))["status"] == "failed"


async def test_roles_apply_to_plugin_methods(gateway: Gateway, tmp_path: Path) -> None:
    """A guest granted ``plugins.*`` and the plugin's namespace: plugins.* stay owner-only, and
    a plugin method's own ``owner_only`` is enforced by the dispatcher."""
    guest = Principal("guest", "guest-1", ("plugins.*", "roles.*"), invitation_id="inv_1")
    gateway.auth.guest_resolvers.append(lambda token: guest if token == "guest-token" else None)
    path = write(
        tmp_path,
        "roles.py",
        """
        def setup(api: PluginApi) -> None:
            @api.method("open", None, description="anyone granted", owner_only=False)
            async def open_(params: dict[str, Any]) -> str:
                return "open"

            @api.method("secret", None, description="owners only", owner_only=True)
            async def secret(params: dict[str, Any]) -> str:
                return "secret"
        """,
    )
    async with gateway.connect() as owner, gateway.connect(token="guest-token") as visitor:
        await owner.call("plugins.load", {"path": str(path)})
        assert await visitor.call("roles.open") == "open"
        assert (await error_of(visitor, "roles.secret")).code == -32002
        assert await owner.call("roles.secret") == "secret"
        for method in ("plugins.list", "plugins.load", "plugins.unload"):
            assert (await error_of(visitor, method, {"plugin_id": "roles"})).code == -32002
