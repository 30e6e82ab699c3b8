"""Prompt assembly over a real SQLite store: the newest messages that fit the model's window,
with the history repairs holding at the window's edge."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aleph_trio import Config
from aleph_trio.kernel import AgentConfig
from aleph_trio.providers import ChatMessage, ModelInfo, ToolCall
from aleph_trio.runs import PromptBuilder, resolve_agent
from aleph_trio.store import Role, SQLiteStore, open_sqlite_store

KEY = "agent:main:long"
MAIN = resolve_agent(Config(), "main")
MISSING = "(no result: the run ended before this tool finished)"


def model(budget: int, output: int = 1000) -> ModelInfo:
    """A model whose history budget (its window less its output) is ``budget`` tokens."""
    return ModelInfo(
        id="test/m", provider="test", name="m", context_window=budget + output,
        max_output_tokens=output,
    )  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with open_sqlite_store(tmp_path / "gateway.db") as opened:
        yield opened


async def add(store: SQLiteStore, role: Role, content: str, tokens: int, **extra: Any) -> None:
    await store.append_message(KEY, "main", role, content, tokens=tokens, **extra)


def call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "name": "memory_search", "arguments": {"query": call_id}}


async def test_a_100000_message_session_gives_exactly_the_newest_messages_that_fit(
    tmp_path: Path,
) -> None:
    """Many short messages: far more of them fit than any fixed number of messages would give,
    and exactly those whose tokens add up to the budget, newest first, are in the prompt."""
    db = tmp_path / "gateway.db"
    async with open_sqlite_store(db):
        pass  # the schema
    rng = random.Random(7)
    tokens = [rng.randint(1, 30) for _ in range(100_000)]
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO sessions (session_key, agent_id, message_count, token_count, "
            "created_at, updated_at) VALUES (?, 'main', ?, ?, 't', 't')",
            (KEY, len(tokens), sum(tokens)),
        )
        conn.executemany(
            "INSERT INTO messages (session_key, role, content, created_at, tokens) "
            "VALUES (?, ?, ?, 't', ?)",
            ((KEY, "user" if i % 2 else "assistant", f"m{i}", t) for i, t in enumerate(tokens)),
        )
    conn.close()
    budget = 40_000
    fit, used = 0, 0
    while used + tokens[-1 - fit] <= budget:
        used += tokens[-1 - fit]
        fit += 1
    assert fit > 2000  # about 2,600: more than the 1,000 messages a fixed window used to read
    async with open_sqlite_store(db) as store:
        prompt = await PromptBuilder(store).build(MAIN, KEY, model(budget))
    assert [(m.role, m.content) for m in prompt] == [
        ("user" if i % 2 else "assistant", f"m{i}") for i in range(100_000 - fit, 100_000)
    ]


async def test_the_budget_counts_the_system_prompt_and_what_the_caller_reserves(
    store: SQLiteStore,
) -> None:
    for i in range(10):
        await add(store, "user", f"m{i}", 10)
    agent = resolve_agent(Config(agents={"main": AgentConfig(system_prompt="x" * 40)}), "main")
    builder = PromptBuilder(store)
    prompt = await builder.build(agent, KEY, model(60), reserved_tokens=20)
    # 60 - 20 reserved - 10 for the system prompt: the newest three messages.
    assert [m.content for m in prompt] == ["x" * 40, "m7", "m8", "m9"]
    assert prompt[0].role == "system"


async def test_the_newest_message_goes_even_when_it_alone_is_too_long(
    store: SQLiteStore,
) -> None:
    await add(store, "user", "small", 1)
    await add(store, "user", "huge", 5000)
    prompt = await PromptBuilder(store).build(MAIN, KEY, model(100))
    assert [m.content for m in prompt] == ["huge"]
    assert await PromptBuilder(store).build(MAIN, "agent:main:empty", model(100)) == ()


async def test_results_whose_call_fell_out_of_the_window_are_dropped(
    store: SQLiteStore,
) -> None:
    await add(store, "user", "old question", 5)
    await add(store, "assistant", "", 50, tool_calls=[call("c1"), call("c2")])
    await add(store, "tool", "result 1", 10, tool_call_id="c1")
    await add(store, "tool", "result 2", 10, tool_call_id="c2")
    await add(store, "user", "next", 5)
    await add(store, "assistant", "ok", 5)
    # 30 tokens: both results fit, their call (50) does not.
    prompt = await PromptBuilder(store).build(MAIN, KEY, model(30))
    assert prompt == (ChatMessage("user", "next"), ChatMessage("assistant", "ok"))
    # 25 tokens: the edge falls between the two results of one call.
    prompt = await PromptBuilder(store).build(MAIN, KEY, model(25))
    assert prompt == (ChatMessage("user", "next"), ChatMessage("assistant", "ok"))
    # 80 tokens: the call is in, with both its results.
    prompt = await PromptBuilder(store).build(MAIN, KEY, model(80))
    calls = (ToolCall("c1", "memory_search", '{"query": "c1"}'),
             ToolCall("c2", "memory_search", '{"query": "c2"}'))  # fmt: skip
    assert prompt == (
        ChatMessage("assistant", "", tool_calls=calls),
        ChatMessage("tool", "result 1", tool_call_id="c1"),
        ChatMessage("tool", "result 2", tool_call_id="c2"),
        ChatMessage("user", "next"),
        ChatMessage("assistant", "ok"),
    )


async def test_a_call_at_the_edge_without_a_stored_result_gets_an_explicit_one(
    store: SQLiteStore,
) -> None:
    await add(store, "user", "older", 100)
    await add(store, "assistant", "let me look", 10, tool_calls=[call("c3"), call("c4")])
    await add(store, "tool", "found", 5, tool_call_id="c4")  # c3's result was never stored
    await add(store, "user", "later", 5)
    await add(store, "assistant", "fine", 5)
    prompt = await PromptBuilder(store).build(MAIN, KEY, model(25))
    assert [(m.role, m.content, m.tool_call_id) for m in prompt] == [
        ("assistant", "let me look", None),
        ("tool", "found", "c4"),
        ("tool", MISSING, "c3"),
        ("user", "later", None),
        ("assistant", "fine", None),
    ]
    assert [c.id for c in prompt[0].tool_calls] == ["c3", "c4"]
