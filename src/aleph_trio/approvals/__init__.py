"""Exec approvals (PROTOCOL §10): the policy file, pending requests and their lifecycle, and
running an approved command with its output capped."""

from ._exec import (
    ExecResult as ExecResult,
    child_environment as child_environment,
    run_command as run_command,
)
from ._guard import MARK_VARIABLE as MARK_VARIABLE, ProcessGuard as ProcessGuard
from ._policy import (
    AgentPolicy as AgentPolicy,
    Policy as Policy,
    PolicyFile as PolicyFile,
    Verdict as Verdict,
    escape_glob as escape_glob,
    policy_hash as policy_hash,
    read_policy_file as read_policy_file,
    write_policy_file as write_policy_file,
)
from ._requests import Approvals as Approvals, Decision as Decision, Ticket as Ticket
from ._states import (
    APPROVALS as APPROVALS,
    DECISION_STATUS as DECISION_STATUS,
    HUMAN_DECISIONS as HUMAN_DECISIONS,
    ApprovalStatus as ApprovalStatus,
)
