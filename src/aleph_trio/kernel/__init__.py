"""The shared kernel every domain stands on: the config model and its file, the event bus and
topic patterns, the clock, logs, lifecycle tables, params validation, the services registry and
the domain errors. It imports nothing of ours but the JSON-RPC error numbers."""

from ._clock import (
    format_ts as format_ts,
    now_ts as now_ts,
    parse_ts as parse_ts,
    utc_now as utc_now,
)
from ._config import (
    AgentConfig as AgentConfig,
    AgentId as AgentId,
    AuthConfig as AuthConfig,
    BrowserConfig as BrowserConfig,
    Config as Config,
    CronConfig as CronConfig,
    EnvSecret as EnvSecret,
    EventsConfig as EventsConfig,
    ExecConfig as ExecConfig,
    LoggingConfig as LoggingConfig,
    McpConfig as McpConfig,
    McpServerConfig as McpServerConfig,
    PluginsConfig as PluginsConfig,
    ProviderConfig as ProviderConfig,
    RunsConfig as RunsConfig,
    Secret as Secret,
    ServerConfig as ServerConfig,
    SessionsConfig as SessionsConfig,
    SkillsConfig as SkillsConfig,
)
from ._config_file import (
    ConfigError as ConfigError,
    LoadedConfig as LoadedConfig,
    changed_keys as changed_keys,
    config_from_dict as config_from_dict,
    default_config_path as default_config_path,
    load_config as load_config,
    public_dict as public_dict,
    resolve_secret as resolve_secret,
    restart_warnings as restart_warnings,
    secret_env_names as secret_env_names,
)
from ._config_service import ConfigService as ConfigService, ReloadOutcome as ReloadOutcome
from ._data_dir import (
    DataDirLock as DataDirLock,
    DataDirLocked as DataDirLocked,
    private_file as private_file,
    write_private as write_private,
)
from ._errors import (
    Conflict as Conflict,
    ErrorCode as ErrorCode,
    ExternalFailure as ExternalFailure,
    FieldProblem as FieldProblem,
    GatewayError as GatewayError,
    InvalidArgument as InvalidArgument,
    InvalidState as InvalidState,
    LimitReached as LimitReached,
    NotFound as NotFound,
    OperationFailed as OperationFailed,
    TimedOut as TimedOut,
)
from ._events import (
    Event as Event,
    EventBus as EventBus,
    EventBusStatistics as EventBusStatistics,
    EventEncoder as EventEncoder,
    ReplayLost as ReplayLost,
    Subscriber as Subscriber,
)
from ._logs import (
    COMPONENTS as COMPONENTS,
    LEVELS as LEVELS,
    ROOT as ROOT,
    LogRing as LogRing,
    apply_component_level as apply_component_level,
    apply_levels as apply_levels,
    component_logger as component_logger,
    current_levels as current_levels,
    level_name as level_name,
)
from ._services import (
    ONCE as ONCE,
    RestartPolicy as RestartPolicy,
    ServiceRegistry as ServiceRegistry,
    ServiceState as ServiceState,
)
from ._state_tables import (
    IllegalTransition as IllegalTransition,
    TransitionTable as TransitionTable,
)
from ._topics import (
    MAX_PATTERN_LENGTH as MAX_PATTERN_LENGTH,
    TopicPattern as TopicPattern,
    pattern_error as pattern_error,
)
from ._validation import (
    PathSegment as PathSegment,
    ValidationFailed as ValidationFailed,
    convert as convert,
    format_path as format_path,
    json_schema as json_schema,
)
