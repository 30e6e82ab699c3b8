"""The composition root: builds every service with what it uses, serves sockets, and hands out
in-process clients. Only this module, ``rpc/`` and ``server/`` know the :class:`Gateway`.

::

    async with open_gateway(config) as gateway:
        port = await nursery.start(gateway.serve, "127.0.0.1", 0)
        async with gateway.connect() as client:
            await client.call("health")
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import attrs
import httpx
import msgspec
import platformdirs
import trio

from .approvals import Approvals, ProcessGuard
from .auth import Authenticator, FailureLimiter, Principal, owner_token
from .browser import BrowserService, browser_tools
from .cron import CronService, WallClock
from .guests import GuestService, guest_principal_id
from .identities import IdentityService
from .kernel import (
    ROOT,
    Config,
    ConfigService,
    DataDirLock,
    EventBus,
    LoadedConfig,
    LogRing,
    ServiceRegistry,
    apply_levels,
    component_logger,
    default_config_path,
    load_config,
    now_ts,
    resolve_secret,
)
from .mcp import McpServers
from .plugins import MethodSpec, PluginManager
from .poe import Evaluator, PoeService
from .protocol import encode_event
from .providers import ModelCatalog, agent_model_warnings, open_http_client
from .rpc import CallContext, Method, build_registry
from .runs import Agent, AgentLoop, PromptBuilder, RunManager, RunStatistics, agents_of
from .server import serve_listeners, serve_stream
from .sessions import Compactor, SessionService
from .skills import READ_SKILL, SkillsService
from .store import Store, StoreError, open_sqlite_store
from .tools import ToolBox, builtin_tools
from .web import HttpLimits, HttpServer, Instruments, Readings, Routes, metrics_text
from .wizards import WizardService, builtin_flows
from .workspaces import WorkspaceService

if TYPE_CHECKING:
    from .client import Client
    from .rpc import Registry
    from .server import Connection

__all__ = ["Gateway", "GatewayStatistics", "open_gateway", "serve_gateway"]

log = component_logger("gateway")

#: The error recorded on runs that were not finished when the previous process stopped.
INTERRUPTED = "interrupted by gateway restart"
#: Why runs and firings are refused, or cancelled, while the gateway stops.
SHUTTING_DOWN = "gateway shutting down"
#: How long ``/ready`` waits for the store to answer before it says the store is not ready.
READY_STORE_TIMEOUT_S = 2.0
#: Why ``services.stop runs`` is refused.
RUNS_REQUIRED = "every agent run and cron firing lives in it; stop the gateway instead"


@attrs.frozen
class GatewayStatistics:
    uptime_s: float
    connections: int
    seq: int
    subscribers: int
    services: dict[str, str]
    runs: RunStatistics


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("aleph_trio", appauthor=False))


@final
class Gateway:
    """A running gateway. Create it with :func:`open_gateway`."""

    def __init__(
        self,
        *,
        loaded: LoadedConfig,
        data_dir: Path,
        owner_token: str,
        token_source: str,
        log_ring: LogRing,
        store: Store,
        bus: EventBus,
        http: httpx.AsyncClient,
        wall_clock: WallClock | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.token_source = token_source
        self.bus = bus
        self.store = store
        self.http = http
        self.logs = log_ring
        self.settings = settings = ConfigService(loaded, bus)
        settings.add_check(agent_model_warnings)
        current = settings.current
        self.auth = Authenticator.for_token(owner_token)
        self._owner_token = owner_token
        self.failures = FailureLimiter(lambda: current().auth)
        self.registry: Registry = build_registry()
        self.services = ServiceRegistry(bus)
        self.models = ModelCatalog(loaded.config, http)
        self.sessions = SessionService(store, bus)
        self.approvals = Approvals(store, bus, data_dir)
        self.commands = ProcessGuard(data_dir)
        self.tools = ToolBox(
            builtin_tools(
                approvals=self.approvals, guard=self.commands, store=store, config=current
            )
        )
        self.browser = BrowserService(lambda: current().browser, self.commands)
        for tool in browser_tools(self.browser):
            self.tools.add(tool)
        self.identities = IdentityService(store, bus)
        self.guests = GuestService(store, on_gone=self._guest_gone)
        self.auth.guest_resolvers.append(self._resolve_guest)
        self.prompts = PromptBuilder(store)
        self.prompts.add_section(self._identity_section)
        self.skills = SkillsService(data_dir, self.tools, lambda: current().skills)
        self.prompts.add_section(self._skills_section)
        self.workspaces = WorkspaceService(
            store,
            bus,
            data_dir,
            agents=lambda: [agent.id for agent in agents_of(current())],
            models=self.models,
            tools=self.tools.names,
        )
        self.compactor = Compactor(store, bus, self.models, lambda: current().sessions)
        self.runs = RunManager(
            store=store,
            bus=bus,
            sessions=self.sessions,
            models=self.models,
            loop=AgentLoop(self.sessions, self.tools, self.prompts, lambda: current().runs),
            compactor=self.compactor,
            settings=current,
            workspaces=self.workspaces,
        )
        self.cron = CronService(
            store=store,
            bus=bus,
            runs=self.runs,
            models=self.models,
            settings=current,
            clock=wall_clock,
        )
        self.wizards = WizardService(
            bus,
            builtin_flows(
                settings=settings,
                http=http,
                cron=self.cron,
                identities=self.identities,
                config=current,
            ),
        )
        self.mcp = McpServers(
            services=self.services,
            tools=self.tools,
            bus=bus,
            settings=lambda: current().mcp,
            guard=self.commands,
        )
        self.plugins = PluginManager(
            bus=bus,
            tools=self.tools,
            methods=_PluginMethods(self.registry),
            services=self.services,
            config=current,
            data_dir=data_dir,
            event_data=_event_data,
        )
        self.poe = PoeService(
            store=store,
            bus=bus,
            runs=self.runs,
            models=self.models,
            evaluator=Evaluator(
                approvals=self.approvals, guard=self.commands, models=self.models, config=current
            ),
            settings=current,
        )
        self.connections: dict[str, Connection] = {}
        self.instruments = Instruments()
        self.web = HttpServer(
            Routes(
                health=self._liveness,
                ready=self._readiness,
                metrics=self._metrics_text,
                check_token=self._is_owner_token,
                require_auth=lambda: current().auth.require_auth,
                instruments=self.instruments,
            ),
            lambda: HttpLimits(
                request_timeout_s=current().auth.handshake_timeout_s,
                idle_timeout_s=current().server.http_idle_timeout_s,
            ),
        )
        self._accepting: set[trio.CancelScope] = set()
        self._draining = False
        self._started = time.monotonic()
        self.settings.on_change(self._apply_config)

    @property
    def config(self) -> Config:
        """The configuration in force right now."""
        return self.settings.config

    @property
    def owner_token(self) -> str:
        return self._owner_token

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    async def _identity_section(self, agent: Agent, session_key: str) -> str:
        """The active identity's persona, in every run's system prompt."""
        return await self.identities.prompt_section()

    def _resolve_guest(self, token: str) -> Principal | None:
        """The guest an invitation token lets in, with the invitation's method globs."""
        invitation = self.guests.resolve(token)
        if invitation is None:
            return None
        return Principal(
            "guest",
            guest_principal_id(invitation.invitation_id),
            invitation.permissions,
            invitation_id=invitation.invitation_id,
        )

    def _guest_gone(self, invitation_id: str, reason: str) -> None:
        """An invitation was revoked or expired: its guests' connections close (1008)."""
        for connection in list(self.connections.values()):
            principal = connection.principal
            if principal is not None and principal.invitation_id == invitation_id:
                connection.close_soon(1008, reason)

    async def _skills_section(self, agent: Agent, session_key: str) -> str | None:
        """The skills an agent may read, by name and description."""
        return await self.skills.prompt_section() if agent.may_use(READ_SKILL) else None

    def _apply_config(self, old: Config, new: Config, keys: list[str]) -> None:
        apply_levels(new.logging.level, dict(new.logging.components))
        if new.events != old.events:
            self.bus.resize(new.events.replay_buffer, new.events.replay_buffer_bytes)
        self.models.configure(new)
        self.runs.fill()
        self.skills.settings_changed(old.skills, new.skills)
        if new.mcp != old.mcp:
            self.mcp.configure()
        token = resolve_secret(new.auth.token)
        if token and token != self._owner_token:
            self._owner_token = token
            self.auth.set_owner_token(token)

    @contextlib.contextmanager
    def track(self, connection: Connection) -> Iterator[None]:
        self.connections[connection.connection_id] = connection
        try:
            yield
        finally:
            self.connections.pop(connection.connection_id, None)

    async def serve(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen for WebSockets until cancelled; reports the bound port through ``task_status``.

        Cancelling it closes every client with 1001; :meth:`drain` first makes that a stop
        that loses no work.
        """
        server = self.config.server
        host = server.host if host is None else host
        port = server.port if port is None else port
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        log.info("listening on ws://%s:%d", host, bound)
        async with trio.open_nursery() as connections:
            with trio.CancelScope() as accepting:
                self._accepting.add(accepting)
                try:
                    async with trio.open_nursery() as acceptors:
                        await acceptors.start(serve_listeners, self, listeners, connections)
                        task_status.started(bound)
                finally:
                    self._accepting.discard(accepting)
                    for listener in listeners:  # refuse new connections instead of queueing them
                        with trio.CancelScope(shield=True):
                            await listener.aclose()
            # Accepting has stopped (a drain): the connections go on until cancelled.
            await trio.sleep_forever()

    async def drain(self, grace_s: float | None = None, *, hurry: trio.Event | None = None) -> None:
        """Stop without dropping work, before the gateway is closed.

        New connections are no longer accepted, and new runs, cron firings and POE runs are
        refused with a clear error. Runs, firings, POE runs and exec approvals in flight get
        ``grace_s`` (default ``server.shutdown_grace_s``) to end, while clients stay connected to
        watch them and to answer approvals; ``hurry`` being set cuts the wait short. Whatever
        is left is then cancelled and recorded as such. Cancelling :meth:`serve` afterwards
        closes the clients with 1001.
        """
        grace = self.config.server.shutdown_grace_s if grace_s is None else grace_s
        self._draining = True
        for scope in self._accepting:
            scope.cancel()
        self.runs.close_admission(SHUTTING_DOWN)
        self.cron.stop_firing(SHUTTING_DOWN)
        self.poe.close_admission(SHUTTING_DOWN)
        log.info("stopping: waiting up to %g s for runs, cron firings and approvals", grace)
        with trio.move_on_after(grace) as waited:
            async with trio.open_nursery() as nursery:
                if hurry is not None:
                    nursery.start_soon(_cancel_when_set, hurry, nursery.cancel_scope)
                await self._wait_idle()
                nursery.cancel_scope.cancel()
        if waited.cancelled_caught or (hurry is not None and hurry.is_set()):
            log.warning("stopping now: cancelling what is still running")
        await self.poe.cancel_all(SHUTTING_DOWN)  # first: each cancels its own agent run
        await self.runs.cancel_all(SHUTTING_DOWN)
        await self.cron.cancel_firings(SHUTTING_DOWN)

    def _busy(self) -> bool:
        cron = self.cron.statistics()
        live = self.runs.statistics().live + cron.active_runs + cron.queued_runs
        live += self.poe.live_count()
        return bool(live or self.approvals.pending())

    async def _wait_idle(self) -> None:
        while self._busy():
            await self.runs.wait_idle()
            await self.cron.wait_idle()
            await self.approvals.wait_idle()
            await self.poe.wait_idle()

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one already-accepted byte stream (a socket, a pipe) as a WebSocket connection."""
        await serve_stream(self, stream)

    @contextlib.asynccontextmanager
    async def connect(
        self, *, token: str | None = None, client_id: str | None = None, authenticate: bool = True
    ) -> AsyncIterator[Client]:
        """An in-process client, through the same connection code as a socket.

        By default it authenticates as the owner (``token`` overrides which token it presents).
        """
        from .client import open_stream_client

        a, b = trio.socket.socketpair()
        client_stream, server_stream = trio.SocketStream(a), trio.SocketStream(b)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.serve_stream, server_stream)
            async with open_stream_client(client_stream) as client:
                if authenticate:
                    await client.authenticate(
                        self._owner_token if token is None else token, client_id
                    )
                yield client
            nursery.cancel_scope.deadline = trio.current_time() + 5

    # -- what the HTTP routes show -----------------------------------------------------------

    def _liveness(self) -> dict[str, object]:
        return {"status": "ok", "uptime_s": round(self.uptime_s, 3)}

    async def _readiness(self) -> dict[str, bool]:
        """``/ready``: the store answers a read, the scheduler runs, connections are accepted."""
        store_ok = False
        with trio.move_on_after(READY_STORE_TIMEOUT_S):
            try:
                await self.store.get_session("agent:main:main")
                store_ok = True
            except StoreError:
                pass
        return {
            "store": store_ok,
            "scheduler": self.services.statuses().get("cron") == "running",
            "accepting": not self._draining,
        }

    def _is_owner_token(self, token: str) -> bool:
        principal = self.auth.authenticate(token)
        return principal is not None and principal.role == "owner"

    def _metrics_text(self) -> str:
        bus = self.bus.statistics()
        runs = self.runs.statistics()
        cron = self.cron.statistics()
        roles: dict[str, int] = {"owner": 0, "guest": 0, "unauthenticated": 0}
        queued = 0
        for connection in self.connections.values():
            stats = connection.statistics()
            role = stats.role or "unauthenticated"
            roles[role] = roles.get(role, 0) + 1
            queued += stats.queued_frames
        readings = Readings(
            uptime_s=self.uptime_s,
            connections=roles,
            send_queue_frames=queued,
            events_published=bus.seq,
            subscribers=bus.subscribers,
            replay_buffer_events=bus.buffered,
            runs_live={"running": runs.running, "queued": runs.queued},
            runs_finished=runs.finished,
            cron_active=cron.active_runs,
            cron_queued=cron.queued_runs,
            approvals_pending=len(self.approvals.pending()),
            services=self.services.statuses(),
            service_restarts={state.name: state.restarts for state in self.services.list()},
        )
        return metrics_text(readings, self.instruments)

    def statistics(self) -> GatewayStatistics:
        bus = self.bus.statistics()
        return GatewayStatistics(
            uptime_s=self.uptime_s,
            connections=len(self.connections),
            seq=bus.seq,
            subscribers=bus.subscribers,
            services=self.services.statuses(),
            runs=self.runs.statistics(),
        )


@contextlib.asynccontextmanager
async def open_gateway(
    config: Config | LoadedConfig | None = None,
    *,
    config_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    watch_config: bool = True,
    wall_clock: WallClock | None = None,
) -> AsyncIterator[Gateway]:
    """Open a gateway: load config, lock the data dir (one gateway per data dir: a second one
    raises :class:`~aleph_trio.kernel.DataDirLocked`), prepare the token, open the store, start
    services.

    ``config`` may be a :class:`Config` (used as is, nothing to reload), or ``None`` to read
    ``config_path`` (default: ``$ALEPH_TRIO_CONFIG`` or the user config dir), which is then
    watched for changes. ``wall_clock`` is where the cron scheduler reads the time of day
    (default: the system clock).
    """
    if isinstance(config, LoadedConfig):
        loaded = config
    elif isinstance(config, Config):
        loaded = LoadedConfig(config, "embedded", now_ts(), None)
    else:
        loaded = await trio.to_thread.run_sync(load_config, default_config_path(config_path))
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    await trio.to_thread.run_sync(lambda: directory.mkdir(mode=0o700, parents=True, exist_ok=True))
    lock = await trio.to_thread.run_sync(DataDirLock.acquire, directory)
    try:
        async with _open_locked(loaded, directory, wall_clock, watch_config=watch_config) as gw:
            yield gw
    finally:
        lock.release()


@contextlib.asynccontextmanager
async def _open_locked(
    loaded: LoadedConfig, directory: Path, wall_clock: WallClock | None, *, watch_config: bool
) -> AsyncIterator[Gateway]:
    """The rest of :func:`open_gateway`, under the data dir's lock: whatever a previous
    process left unfinished is recovered only by the one gateway that owns the data dir."""
    token, token_source = await trio.to_thread.run_sync(owner_token, loaded.config, directory)

    ring = LogRing()
    root_logger = logging.getLogger(ROOT)
    root_logger.addHandler(ring)
    apply_levels(loaded.config.logging.level, dict(loaded.config.logging.components))
    events = loaded.config.events
    bus = EventBus(
        encode=encode_event,
        replay_buffer=events.replay_buffer,
        replay_buffer_bytes=events.replay_buffer_bytes,
    )
    try:
        async with (
            open_sqlite_store(directory / "gateway.db") as store,
            open_http_client() as http,
            trio.open_nursery() as nursery,
        ):
            gateway = Gateway(
                loaded=loaded,
                data_dir=directory,
                owner_token=token,
                token_source=token_source,
                log_ring=ring,
                store=store,
                bus=bus,
                http=http,
                wall_clock=wall_clock,
            )
            interrupted = await gateway.runs.fail_interrupted(INTERRUPTED)
            if interrupted:
                log.warning("%d run(s) were cut short by the last stop; marked failed", interrupted)
            _follow_logs(gateway, ring)
            for warning in gateway.settings.warnings(gateway.config):
                log.warning("configuration: %s", warning)
            await gateway.commands.recover()
            await gateway.approvals.expire_left_over()
            await gateway.skills.start()
            await gateway.services.start(
                nursery, "runs", gateway.runs.serve, required=RUNS_REQUIRED
            )
            await gateway.services.start(nursery, "cron", gateway.cron.serve)
            await gateway.guests.load()
            # Not a service one could stop: expiry must always close the guests' connections.
            await nursery.start(gateway.guests.serve)
            await gateway.services.start(nursery, "wizards", gateway.wizards.serve)
            await gateway.services.start(nursery, "plugins", gateway.plugins.serve)
            await gateway.services.start(nursery, "poe", gateway.poe.serve)
            await gateway.services.start(nursery, "browser", gateway.browser.serve)
            if watch_config and loaded.path is not None:
                await gateway.services.start(
                    nursery, "config_watcher", gateway.settings.serve_watcher
                )
            await gateway.mcp.open(nursery)
            try:
                yield gateway
            finally:
                nursery.cancel_scope.cancel()
        await gateway.commands.aclose()
    finally:
        ring.listener = None
        root_logger.removeHandler(ring)


@final
class _PluginMethods:
    """The RPC registry as the plugin manager sees it: plugin method specs become registry
    methods, so the dispatcher checks roles, decodes params and maps errors for them too."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def add(self, spec: MethodSpec) -> None:
        async def handler(ctx: CallContext, params: Any) -> object:
            return await spec.call(params)

        method = Method(spec.name, spec.description, spec.params, handler, spec.owner_only)
        self._registry.add(method)

    def remove(self, name: str) -> None:
        self._registry.remove(name)

    def namespace_taken(self, namespace: str) -> bool:
        return any(m.name.startswith(namespace + ".") for m in self._registry)


def _event_data(frame: bytes) -> dict[str, Any]:
    """The ``data`` of an event frame (what ``protocol.encode_event`` made of it)."""
    data: dict[str, Any] = msgspec.json.decode(frame)["params"]["data"]
    return data


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _follow_logs(gateway: Gateway, ring: LogRing) -> None:
    token = trio.lowlevel.current_trio_token()

    def publish(entry: dict[str, object]) -> None:
        if any(sub.follow_logs for sub in gateway.bus.subscribers()):
            gateway.bus.publish("logs.entry", entry)

    def wanted() -> bool:
        try:
            return any(sub.follow_logs for sub in gateway.bus.subscribers())
        except RuntimeError:  # changed meanwhile (a record from another thread): ask the loop
            return True

    ring.schedule = token.run_sync_soon
    ring.wanted = wanted
    ring.listener = publish


async def serve_gateway(
    config: Config | LoadedConfig | None = None,
    host: str | None = None,
    port: int | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open a gateway and serve it until cancelled.

    ``port = await nursery.start(serve_gateway, config)``
    """
    async with open_gateway(config, data_dir=data_dir) as gateway:
        await gateway.serve(host, port, task_status=task_status)
