"""The configuration model (PROTOCOL §9.1): frozen attrs classes, one per TOML table.

These classes are the single source of truth: loading validates against them
(:mod:`aleph_trio._validation`), ``config.schema`` is generated from them, and ``config.get``
serialises them. Field constraints live in ``Annotated[..., Meta(...)]``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import attrs
from msgspec import Meta

__all__ = [
    "AgentConfig",
    "AgentId",
    "AuthConfig",
    "BrowserConfig",
    "Config",
    "CronConfig",
    "EnvSecret",
    "EventsConfig",
    "ExecConfig",
    "LoggingConfig",
    "McpConfig",
    "McpServerConfig",
    "PluginsConfig",
    "ProviderConfig",
    "RunsConfig",
    "Secret",
    "ServerConfig",
    "SessionsConfig",
    "SkillsConfig",
]

Level = Literal["debug", "info", "warning", "error", "critical"]
Port = Annotated[int, Meta(ge=0, le=65535)]
Seconds = Annotated[float, Meta(gt=0, le=86_400)]
Count = Annotated[int, Meta(ge=1)]
MiB = 1024 * 1024
#: An agent id is one segment of a session key (``agent:<agent_id>:<name>``, PROTOCOL §8).
AgentId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.@+\-]+(?!\n)$",
        description="1-64 letters, digits and _ . @ + -",
    ),
]


@attrs.frozen
class EnvSecret:
    """A secret read from an environment variable: ``api_key = {env = "OPENAI_API_KEY"}``."""

    # ``(?!\n)`` keeps Python's ``$`` from accepting a trailing newline; ECMA regexes agree.
    env: Annotated[str, Meta(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(?!\n)$")]


#: A secret is given inline or as ``{env = "NAME"}``; ``config.get`` always shows ``"***"``.
Secret = str | EnvSecret

SECRET = {"secret": True}


@attrs.frozen
class ServerConfig:
    """The WebSocket listener and per-connection limits."""

    host: str = "127.0.0.1"
    port: Port = 18790
    allowed_origins: tuple[str, ...] = ()
    #: The largest message either way: a bigger incoming one closes the connection (1009); a
    #: response that would be bigger is answered with ``-32603`` instead.
    max_message_bytes: Annotated[int, Meta(ge=1024, le=256 * 1024 * 1024)] = 4 * 1024 * 1024
    #: Requests (batch elements included) one connection runs at once; past it reading pauses.
    max_in_flight: Annotated[int, Meta(ge=1, le=10_000)] = 64
    #: Elements one batch may hold; a longer batch is refused whole (``-32600``).
    max_batch: Annotated[int, Meta(ge=1, le=10_000)] = 100
    send_queue: Annotated[int, Meta(ge=1, le=1_000_000)] = 1024
    #: Bytes of frames queued per connection; a frame is always let into an empty queue.
    send_queue_bytes: Annotated[int, Meta(ge=64 * 1024, le=64 * 1024 * MiB)] = 16 * MiB
    ping_interval_s: Seconds = 20.0
    ping_timeout_s: Seconds = 20.0
    shutdown_grace_s: Annotated[float, Meta(ge=0, le=3600)] = 5.0
    #: An idle keep-alive HTTP connection (``/health``, ``/metrics``) is closed after this.
    http_idle_timeout_s: Seconds = 30.0


@attrs.frozen
class AuthConfig:
    """Who may connect (PROTOCOL §4)."""

    require_auth: bool = True
    token: Secret | None = attrs.field(default=None, metadata=SECRET)
    handshake_timeout_s: Seconds = 10.0
    #: Failed ``connect``s from one address within a minute answered at once; past them each
    #: failure is answered after a delay (0.25 s, doubling). A correct token never waits.
    failures_per_minute: Annotated[int, Meta(ge=1, le=10_000)] = 20
    #: The longest that delay gets.
    failure_delay_max_s: Annotated[float, Meta(ge=0, le=60)] = 5.0


@attrs.frozen
class EventsConfig:
    """The event bus (PROTOCOL §6)."""

    replay_buffer: Annotated[int, Meta(ge=1, le=10_000_000)] = 10_000
    #: Bytes of encoded events the replay ring keeps (the oldest leave first).
    replay_buffer_bytes: Annotated[int, Meta(ge=64 * 1024, le=1024 * 1024 * MiB)] = 64 * MiB


@attrs.frozen
class RunsConfig:
    """Agent runs (PROTOCOL §7)."""

    max_concurrent: Count = 8
    max_iterations: Count = 25
    timeout_s: Annotated[float, Meta(gt=0)] = 900.0
    #: Prompt plus completion tokens one run may use over all its model calls.
    token_budget: Count = 1_000_000
    #: How often a model call that failed before its first output (429, 5xx, refused) is retried.
    provider_retries: Annotated[int, Meta(ge=0, le=10)] = 2
    #: Bytes (UTF-8) of answer text one run may stream over all its model calls.
    max_text_bytes: Annotated[int, Meta(ge=1024, le=1024 * MiB)] = 16 * MiB


@attrs.frozen
class SessionsConfig:
    """Chat sessions (PROTOCOL §8)."""

    compact_at_tokens: Count = 100_000
    compact_keep: Annotated[int, Meta(ge=0)] = 4


@attrs.frozen
class ProviderConfig:
    """An LLM provider: ``[providers.<name>]``."""

    kind: Literal["openai", "anthropic", "ollama", "builtin"]
    base_url: str | None = None
    api_key: Secret | None = attrs.field(default=None, metadata=SECRET)
    models: tuple[str, ...] = ()


@attrs.frozen
class AgentConfig:
    """An agent: ``[agents.<id>]``."""

    name: str | None = None
    description: str = ""
    model: str | None = None
    tools: tuple[str, ...] | None = None
    system_prompt: str = ""
    thinking: Literal["off", "minimal", "low", "medium", "high", "xhigh"] = "off"


@attrs.frozen
class ExecConfig:
    """Commands the ``exec`` tool runs once approved (PROTOCOL §10)."""

    timeout_s: Annotated[float, Meta(gt=0, le=86_400)] = 120.0
    max_output_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 64 * 1024


@attrs.frozen
class CronConfig:
    """The scheduler (PROTOCOL §12)."""

    catch_up_grace_s: Annotated[float, Meta(ge=0)] = 3600.0
    max_concurrent: Count = 4


@attrs.frozen
class BrowserConfig:
    """The managed Chromium (PROTOCOL §13)."""

    executable: str | None = None
    headless: bool = True
    allowed_schemes: tuple[str, ...] = ("http", "https", "about", "data")
    #: Hosts the browser may not load anything from: names (``"metadata.google.internal"``, or
    #: ``".internal"`` for a domain and its subdomains) and IP networks (``"169.254.0.0/16"``).
    denied_hosts: tuple[str, ...] = (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "metadata.google.internal",
        "metadata.goog",
    )
    #: The deadline of a browser call that names none (``timeout_ms``), start-up included.
    timeout_ms: Annotated[int, Meta(ge=100, le=600_000)] = 30_000


@attrs.frozen
class McpServerConfig:
    """An MCP server started over stdio: ``[mcp.servers.<name>]``."""

    command: Annotated[str, Meta(min_length=1)]
    args: tuple[str, ...] = ()
    env: dict[str, Secret] = attrs.field(factory=dict, metadata=SECRET)
    require_approval: bool | tuple[str, ...] = True


@attrs.frozen
class McpConfig:
    servers: dict[str, McpServerConfig] = attrs.Factory(dict)


@attrs.frozen
class SkillsConfig:
    """Skills (PROTOCOL §15): folders to find more in, and what one install may hold."""

    #: Folders holding one skill folder each, offered besides the installed ones.
    paths: tuple[Annotated[str, Meta(min_length=1)], ...] = ()
    max_files: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    max_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * MiB)] = 50 * MiB
    git_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 120.0


@attrs.frozen
class PluginsConfig:
    """Python plugins loaded at start (PROTOCOL §15), besides those in ``<data dir>/plugins``."""

    paths: tuple[Annotated[str, Meta(min_length=1)], ...] = ()


@attrs.frozen
class LoggingConfig:
    """Log levels: a default and per-component overrides (``components = { cron = "debug" }``)."""

    level: Level = "info"
    components: dict[str, Level] = attrs.Factory(dict)


@attrs.frozen
class Config:
    """The whole configuration file."""

    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    events: EventsConfig = EventsConfig()
    runs: RunsConfig = RunsConfig()
    sessions: SessionsConfig = SessionsConfig()
    providers: dict[str, ProviderConfig] = attrs.Factory(dict)
    agents: dict[AgentId, AgentConfig] = attrs.Factory(dict)
    exec: ExecConfig = ExecConfig()
    cron: CronConfig = CronConfig()
    browser: BrowserConfig = BrowserConfig()
    mcp: McpConfig = McpConfig()
    logging: LoggingConfig = LoggingConfig()
    skills: SkillsConfig = SkillsConfig()
    plugins: PluginsConfig = PluginsConfig()
