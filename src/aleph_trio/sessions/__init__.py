"""Sessions and their messages (PROTOCOL §8), and compaction of a session's history."""

from ._compaction import (
    SUMMARY_PREFIX as SUMMARY_PREFIX,
    CompactionFailed as CompactionFailed,
    CompactionResult as CompactionResult,
    Compactor as Compactor,
    parse_summary as parse_summary,
)
from ._service import (
    DEFAULT_SESSION as DEFAULT_SESSION,
    SessionKey as SessionKey,
    SessionService as SessionService,
    agent_of as agent_of,
    estimate_tokens as estimate_tokens,
)
