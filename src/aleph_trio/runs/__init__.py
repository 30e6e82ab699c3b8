"""Agent runs (PROTOCOL §7): the run manager with its per-session lanes, a run in flight, the
agent loop and the prompt it builds, and the run lifecycle."""

from ._agent_loop import AgentLoop as AgentLoop, RunFailure as RunFailure
from ._agents import (
    DEFAULT_AGENT as DEFAULT_AGENT,
    Agent as Agent,
    agents_of as agents_of,
    resolve_agent as resolve_agent,
)
from ._live_run import LiveRun as LiveRun
from ._manager import RunManager as RunManager, RunStatistics as RunStatistics
from ._prompt import PromptBuilder as PromptBuilder, PromptSection as PromptSection
from ._states import (
    LIVE as LIVE,
    RUNS as RUNS,
    TERMINAL as TERMINAL,
    IllegalTransition as IllegalTransition,
    RunStatus as RunStatus,
)
from ._workspaces import RunWorkspace as RunWorkspace, WorkspaceLookup as WorkspaceLookup
