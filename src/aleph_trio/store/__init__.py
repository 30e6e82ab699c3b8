"""Persistence. Services use the :class:`Store` interface; SQL lives only in this package."""

from ._interface import (
    Store as Store,
    StoreError as StoreError,
)
from ._records import (
    ApprovalRecord as ApprovalRecord,
    CronJob as CronJob,
    CronRun as CronRun,
    Identity as Identity,
    MemoryHit as MemoryHit,
    MemoryItem as MemoryItem,
    Message as Message,
    Role as Role,
    Run as Run,
    Session as Session,
    SessionFilter as SessionFilter,
    Workspace as Workspace,
)
from ._sql_memory import fts_query as fts_query
from ._sqlite import SQLiteStore as SQLiteStore, open_sqlite_store as open_sqlite_store
