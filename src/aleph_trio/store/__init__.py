"""Persistence. Services use the :class:`Store` interface; SQL lives only in this package."""

from ._interface import (
    UNFINISHED as UNFINISHED,
    UNFINISHED_CRON as UNFINISHED_CRON,
    Store as Store,
    StoreError as StoreError,
)
from ._records import (
    ApprovalRecord as ApprovalRecord,
    CronJob as CronJob,
    CronRun as CronRun,
    MemoryHit as MemoryHit,
    MemoryItem as MemoryItem,
    Message as Message,
    Run as Run,
    Session as Session,
    SessionFilter as SessionFilter,
)
from ._sql_memory import fts_query as fts_query
from ._sqlite import SQLiteStore as SQLiteStore, open_sqlite_store as open_sqlite_store
