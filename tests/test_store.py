"""The SQLite store itself: migrations, recovery, faults, cancellation, compaction support."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
import trio

from aleph_trio import AlephError, Config, Gateway, open_gateway
from aleph_trio.store import Run, SQLiteStore, StoreError, open_sqlite_store
from aleph_trio.store._schema import MIGRATIONS

KEY = "agent:main:main"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


async def test_fresh_database_is_migrated_in_wal_mode(db: Path) -> None:
    async with open_sqlite_store(db):
        pass
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_newer_schema_refuses_to_start(db: Path) -> None:
    async with open_sqlite_store(db):
        pass
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this gateway understands"):
        async with open_sqlite_store(db):
            pass


async def test_unfinished_runs_fail_on_restart(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    async with open_sqlite_store(data_dir / "gateway.db") as store:
        for status in ("queued", "running", "waiting_input", "waiting_approval", "completed"):
            await store.save_run(
                Run(
                    f"run_{status}", KEY, "main", "builtin/echo", status, "2026-01-01T00:00:00.000Z"
                )
            )
    async with open_gateway(Config(), data_dir=data_dir) as gateway:
        for status in ("queued", "running", "waiting_input", "waiting_approval"):
            run = await gateway.store.get_run(f"run_{status}")
            assert run is not None
            assert run.status == "failed"
            assert run.error == "interrupted by gateway restart"
            assert run.finished_at is not None
        done = await gateway.store.get_run("run_completed")
        assert done is not None and done.status == "completed" and done.error is None


async def test_replace_range_is_atomic_and_keeps_order(db: Path) -> None:
    async with open_sqlite_store(db) as store:
        ids = [
            (await store.append_message(KEY, "main", "user", f"m{i}", tokens=10))[0].id
            for i in range(6)
        ]
        before, after = await store.replace_range(
            KEY, upto_id=ids[3], summary="summary of m0-m3", summary_tokens=7
        )
        assert (before, after) == (60, 27)
        _, history = await store.session_history(KEY, limit=100)
        assert [(m.role, m.content) for m in history] == [
            ("system", "summary of m0-m3"),
            ("user", "m4"),
            ("user", "m5"),
        ]
        assert history[0].id == ids[0]
        session = await store.get_session(KEY)
        assert session is not None and session.message_count == 3 and session.token_count == 27


async def test_claim_key(db: Path) -> None:
    async with open_sqlite_store(db) as store:
        assert await store.claim_key("k1", "fp-a", "run_1", ttl_s=3600) is None
        assert await store.claim_key("k1", "fp-b", "run_2", ttl_s=3600) == ("fp-a", "run_1")
        assert await store.claim_key("k2", "fp", "run_3", ttl_s=-1) is None
        assert await store.claim_key("k2", "fp", "run_4", ttl_s=3600) is None  # the first expired


async def test_failed_change_is_rolled_back_alone(db: Path) -> None:
    async with open_sqlite_store(db) as store:

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO memory (id, content, source, created_at, metadata) VALUES ('x', 'half', 's', 't', '{}')"
            )
            conn.execute("INSERT INTO no_such_table VALUES (1)")

        async def keep() -> None:
            await store.append_message(KEY, "main", "user", "kept", tokens=1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep)  # queued with the broken change: likely the same transaction
            with pytest.raises(StoreError):
                await store._write(broken)
        _, kept = await store.session_history(KEY, limit=10)
        assert [m.content for m in kept] == ["kept"]
        assert await store.search_memory("half", limit=5) == []


async def test_full_disk_is_an_internal_error_and_serving_goes_on(gateway: Gateway) -> None:
    store = gateway.store
    assert isinstance(store, SQLiteStore)
    async with gateway.connect() as client:
        await client.call("memory.store", {"content": "small"})
        pages = store._writer.execute("PRAGMA page_count").fetchone()[0]
        store._writer.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(AlephError, match="storage is full") as info:
            await client.call("memory.store", {"content": "x" * 200_000})
        assert info.value.code == -32603
        assert (await client.call("health"))["status"] == "ok"
        hits = (await client.call("memory.search", {"query": "small"}))["results"]
        assert [h["content"] for h in hits] == ["small"]
        store._writer.execute("PRAGMA max_page_count = 1073741823")
        await client.call("memory.store", {"content": "room again"})


async def test_locked_database_is_an_internal_error(gateway: Gateway, data_dir: Path) -> None:
    store = gateway.store
    assert isinstance(store, SQLiteStore)
    store._writer.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(data_dir / "gateway.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        async with gateway.connect() as client:
            with pytest.raises(AlephError, match="locked") as info:
                await client.call("memory.store", {"content": "blocked"})
            assert info.value.code == -32603
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with gateway.connect() as client:
        assert (await client.call("memory.store", {"content": "fine now"}))["id"]


async def test_cancelled_read_is_interrupted(db: Path) -> None:
    async with open_sqlite_store(db) as store:
        slow = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        )
        start = time.monotonic()
        with trio.move_on_after(0.2):
            await store._read(lambda conn: conn.execute(slow).fetchone())
        assert time.monotonic() - start < 2
        # The connection went back to the pool idle and usable.
        for _ in range(8):
            assert await store.session_history(KEY, limit=1) == (None, [])


async def test_interrupted_snapshot_read_leaves_no_stale_snapshot(db: Path) -> None:
    """A read cancelled inside its transaction must not leave the reader on an old snapshot."""
    async with open_sqlite_store(db) as store:
        await store.append_message(KEY, "main", "user", "first", tokens=1)
        slow = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        )

        def snapshot_then_spin(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM messages").fetchone()
            conn.execute(slow).fetchone()

        for _ in range(2):  # both reader connections
            with trio.move_on_after(0.1):
                await store._read(snapshot_then_spin)
        await store.append_message(KEY, "main", "user", "second", tokens=1)
        for _ in range(4):
            session, messages = await store.session_history(KEY, limit=10)
            assert [m.content for m in messages] == ["first", "second"]
            assert session is not None and session.message_count == 2


async def test_one_transaction_rolls_back_only_the_failing_change(db: Path) -> None:
    """Group commit in isolation: two changes in one batch, the first fails, the second lands."""
    from aleph_trio.store._sqlite import _run_batch, _WriteOp

    async with open_sqlite_store(db):
        pass
    conn = sqlite3.connect(db, isolation_level=None)

    def broken(c: sqlite3.Connection) -> None:
        c.execute(
            "INSERT INTO memory (id, content, source, created_at, metadata) VALUES ('a', 'half', 's', 't', '{}')"
        )
        c.execute("INSERT INTO no_such_table VALUES (1)")

    def good(c: sqlite3.Connection) -> str:
        c.execute(
            "INSERT INTO memory (id, content, source, created_at, metadata) VALUES ('b', 'whole', 's', 't', '{}')"
        )
        return "done"

    batch = [_WriteOp(broken), _WriteOp(good)]
    _run_batch(batch, conn)
    with pytest.raises(sqlite3.OperationalError):
        batch[0].result.unwrap()  # type: ignore[union-attr]
    assert batch[1].result.unwrap() == "done"  # type: ignore[union-attr]
    assert not conn.in_transaction
    assert [r[0] for r in conn.execute("SELECT id FROM memory")] == ["b"]
    conn.close()


async def test_a_read_cancelled_before_its_thread_started_neither_hangs_nor_runs(
    db: Path,
) -> None:
    """Cancelled at the thread hand-off (its first checkpoint), a read must not wait for a
    thread that will never run it; the next read on that connection still works."""
    async with open_sqlite_store(db) as store:
        with trio.fail_after(5):
            for _ in range(20):  # every reader connection, several times
                with trio.CancelScope() as scope:
                    scope.cancel()
                    await store.get_session("agent:main:main")
                assert scope.cancelled_caught
            assert await store.get_session("agent:main:main") is None


async def test_per_run_queries_are_answered_from_indexes(db: Path) -> None:
    """What every model call and every claimed run asks never scans a whole session or table:
    the prompt's token sums come from a covering index, its messages and the expired
    idempotency keys through an index."""
    from aleph_trio.store._sql_sessions import MESSAGE_COLUMNS, NEWEST_FIRST

    async with open_sqlite_store(db):
        pass
    conn = sqlite3.connect(db)

    def plan(sql: str, *args: object) -> str:
        return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))

    assert "USING COVERING INDEX messages_by_session_tokens" in plan(NEWEST_FIRST, KEY, 10, 256)
    assert "USING COVERING INDEX messages_by_session_tokens" in plan(
        f"SELECT count(*), sum(tokens), min(id) FROM ({NEWEST_FIRST})", KEY, 10, 256
    )
    assert "USING INDEX messages_by_session_tokens" in plan(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = ? AND id >= ? ORDER BY id",
        KEY,
        5,
    )
    assert "USING INDEX idempotency_by_expiry" in plan(
        "DELETE FROM idempotency WHERE expires_at <= ?", 1.0
    )
    conn.close()
