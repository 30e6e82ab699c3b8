#!/usr/bin/env python
"""Benchmarks of the persistence layer, against a plain synchronous sqlite3 loop on the same data.

    python benchmarks/store.py            # all three: about 25 s on a quiet machine
    python benchmarks/store.py --quick    # small data sets, to check the harness
    python benchmarks/store.py --only search

The gateway runs in a separate process (this script with ``--serve DIR``: ``open_gateway`` +
``gateway.serve``, default configuration, authentication on) pinned to CPU 0 with ``taskset``;
this process is the client and pins itself to CPU 1. Every RPC goes over a real WebSocket
(loopback TCP) through the same minimal client as ``run.py`` (``_wsclient.py``). The baseline is
a loop of the same SQL statements on stdlib ``sqlite3`` connections in this process (so on one CPU
too), against the same schema, run in the same invocation.

1. ``append``: 16 tasks in the gateway append 10,000 messages to one session with
   ``store.append_message`` while 10 connections call ``session.history {limit: 100}`` on that
   session, each sending its next call as soon as the previous one is answered. Append rate, and
   every history call's latency while the appends run.
2. ``history``: ``session.history {limit: 100}`` on a session of 100,000 messages; 500 calls, one
   at a time.
3. ``search``: ``memory.search`` over 100,000 memory items; 500 queries of 1-3 words, one at a time.

The data is generated from a fixed seed (Zipf-distributed words: function words, then a domain
vocabulary, then a long tail of made-up names), so every run stores and asks for the same text.
Data sets 2 and 3 are written straight into the gateway's schema with ``executemany`` before the
gateway starts. The table is printed and written, with every raw figure, to
``benchmarks/results/store.json`` (the table alone to ``store.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import random
import re
import resource
import select
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import trio  # noqa: E402
from _common import monotonic_ns, raise_nofile_limit, say, start_runner  # noqa: E402
from _table import (  # noqa: E402
    code_line,
    format_table,
    machine_line,
    make_row,
    print_outcome,
    write_report,
)
from _wsclient import WSClient, decode, request  # noqa: E402
from run import (  # noqa: E402
    Bench,
    Load,
    Server,
    _percentile,
    machine_info,
    running,
)

from aleph_trio import Config, open_gateway  # noqa: E402
from aleph_trio.store import fts_query, open_sqlite_store  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from aleph_trio import Gateway

BENCHMARKS = ("append", "history", "search")
SERVER_CPU = 0
CLIENT_CPU = 1
APPEND_SESSION = "agent:bench:append"
BIG_SESSION = "agent:bench:long"
BASELINE_SESSION = "agent:bench:baseline"

# -- deterministic text ----------------------------------------------------------------------

#: The most frequent English words, most frequent first: the head of the Zipf distribution.
FUNCTION_WORDS = """
the of and to a in is it you that was for on are with as i his they be at one have this from or
had by not word but what some we can out other were all there when up use your how said an each
she which do their time if will way about many then them write would like so these her long make
thing see him two has look more day could go come did number sound no most people my over know
than call first who may down side been now find any new work part take get place made live where
after back little only round man year came show every good me give our under just
""".split()
#: What an assistant's memory and a chat are about: the words after the function words.
DOMAIN_WORDS = """
user prefers dark mode meeting tuesday project deadline server deploy database backup password
reset email invoice customer report weekly monthly budget travel flight hotel booking python
script error log config file folder api key token model prompt reply summary note reminder
calendar schedule phone address birthday gift recipe dinner lunch coffee shopping list grocery
doctor appointment insurance tax bank account payment transfer subscription renewal github issue
pull request review branch merge release version bug fix test build pipeline docker container
kubernetes cluster node cpu disk network latency timeout retry queue cache index search query
result page document draft contract client vendor team manager friday monday weekend morning
evening office remote home family kids school homework garden weather rain trip paris london
berlin tokyo spanish french language course book movie music playlist podcast article blog
newsletter slack channel message thread inbox archive password laptop monitor keyboard printer
router wifi vpn firewall certificate domain dns migration schema table column import export csv
spreadsheet chart slides presentation agenda minutes action owner priority estimate sprint
backlog ticket support refund shipping order delivery package warehouse stock price quote
discount license trial plan upgrade downgrade cancel invoice receipt expense mileage salary
vacation holiday leave sick interview candidate offer onboarding training mentor goal feedback
""".split()
#: Words per memory item and per chat message (inclusive ranges).
MEMORY_WORDS = (12, 60)
MESSAGE_WORDS = (4, 80)


class Corpus:
    """A Zipf (s = 1) vocabulary of about 20,000 words and a seeded stream of text from it."""

    def __init__(self, seed: int = 7, tail: int = 20_000) -> None:
        rng = random.Random(seed)
        head = list(dict.fromkeys(FUNCTION_WORDS))
        domain = [w for w in dict.fromkeys(DOMAIN_WORDS) if w not in head]
        rng.shuffle(domain)
        consonants, vowels, names = "bcdfghjklmnprstvwz", "aeiou", set[str]()
        while len(names) < tail:
            word = "".join(
                rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4))
            )
            names.add(word + (rng.choice(consonants) if rng.random() < 0.5 else ""))
        names.difference_update(head, domain)
        tail_words = sorted(names)
        rng.shuffle(tail_words)
        self.words = head + domain + tail_words
        self.stopwords = frozenset(head)
        self.cum_weights = list(
            itertools.accumulate(1 / rank for rank in range(1, len(self.words) + 1))
        )

    def texts(self, seed: int, count: int, words: tuple[int, int]) -> list[str]:
        """``count`` texts of ``words`` words each (a sentence break about every 12 words)."""
        rng = random.Random(seed)
        lengths = [rng.randint(*words) for _ in range(count)]
        stream = rng.choices(self.words, cum_weights=self.cum_weights, k=sum(lengths))
        out, pos = [], 0
        for n in lengths:
            chunk = stream[pos : pos + n]
            pos += n
            sentences = [" ".join(chunk[i : i + 12]) for i in range(0, n, 12)]
            out.append(". ".join(s[:1].upper() + s[1:] for s in sentences) + ".")
        return out

    def queries(self, items: Sequence[str], seed: int, count: int) -> list[str]:
        """1-3 distinct non-function words of a random stored item, as someone searching would."""
        rng = random.Random(seed)
        out: list[str] = []
        while len(out) < count:
            item = items[rng.randrange(len(items))]
            words = [
                w
                for w in dict.fromkeys(re.findall(r"\w+", item.lower()))
                if w not in self.stopwords
            ]
            if words:
                out.append(" ".join(rng.sample(words, min(len(words), rng.randint(1, 3)))))
        return out


def message_rows(corpus: Corpus, session_key: str, count: int, seed: int) -> list[tuple[Any, ...]]:
    """(session_key, role, content, created_at, tokens) of a conversation, one row per message."""
    rows = []
    for i, text in enumerate(corpus.texts(seed, count, MESSAGE_WORDS)):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + i)) + ".000Z"
        rows.append(
            (session_key, "user" if i % 2 == 0 else "assistant", text, stamp, (len(text) + 3) // 4)
        )
    return rows


# -- the gateway process (``--serve DIR``) ----------------------------------------------------


class _GCPauses:
    """Garbage-collector pauses in the gateway process (``gc.callbacks``), per command."""

    def __init__(self) -> None:
        self.pauses: list[int] = []
        self._start = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        elif info["generation"] == 2 or time.perf_counter_ns() - self._start > 1_000_000:
            self.pauses.append(time.perf_counter_ns() - self._start)

    def take(self) -> list[int]:
        out, self.pauses = self.pauses, []
        return out


async def _append_many(
    gateway: Gateway, cmd: dict[str, Any], rows: list[tuple[Any, ...]], gc_pauses: _GCPauses
) -> dict[str, Any]:
    """``len(rows)`` appends to one session by ``concurrency`` tasks: ``store.append_message``."""
    store = gateway.store
    key, count, concurrency = cmd["session_key"], len(rows), cmd["concurrency"]
    agent = key.split(":")[1]
    latencies: list[int] = []
    cursor = iter(range(count))

    async def appender() -> None:
        for i in cursor:
            _, role, content, _, tokens = rows[i]
            t = time.perf_counter_ns()
            await store.append_message(key, agent, role, content, tokens=tokens)
            latencies.append(time.perf_counter_ns() - t)

    transactions = getattr(store, "transactions", None)
    gc_pauses.take()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = monotonic_ns()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(appender)
    t1 = monotonic_ns()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    after = getattr(store, "transactions", None)
    pauses = gc_pauses.take()
    return {
        "t0_ns": t0,
        "t1_ns": t1,
        "appended": len(latencies),
        "transactions": after - transactions
        if after is not None and transactions is not None
        else None,
        "cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "append_p50_ms": _percentile(latencies, 0.5) / 1e6,
        "append_p99_ms": _percentile(latencies, 0.99) / 1e6,
        "append_max_ms": max(latencies) / 1e6,
        "gc_full_or_long_pauses": len(pauses),
        "gc_pause_max_ms": max(pauses, default=0) / 1e6,
    }


async def _commands(gateway: Gateway) -> None:
    """One JSON command a line on stdin, one JSON answer a line on stdout.

    ``prepare`` generates a session's messages (so that the text is not made while measuring),
    ``append`` appends them.
    """
    corpus = Corpus()
    prepared: dict[str, list[tuple[Any, ...]]] = {}
    gc_pauses = _GCPauses()
    stream = trio.lowlevel.FdStream(os.dup(0))
    buffered = b""
    async with stream:
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                cmd = json.loads(line)
                key = cmd["session_key"]
                answer: dict[str, Any]
                if cmd["cmd"] == "prepare":
                    prepared[key] = message_rows(corpus, key, cmd["count"], cmd["seed"])
                    answer = {"prepared": len(prepared[key])}
                elif cmd["cmd"] == "append":
                    answer = await _append_many(gateway, cmd, prepared.pop(key), gc_pauses)
                else:
                    answer = {"error": f"unknown command {cmd['cmd']!r}"}
                sys.stdout.write(json.dumps(answer) + "\n")
                sys.stdout.flush()


async def _serve(data_dir: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_gateway(Config(), data_dir=data_dir) as gateway:
            async with trio.open_nursery() as nursery:
                bound = await nursery.start(gateway.serve, "127.0.0.1", 0)
                nursery.start_soon(_commands, gateway)
                sys.stdout.write(f"ready ws://127.0.0.1:{bound}\ntoken {gateway.owner_token}\n")
                sys.stdout.flush()
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()


# -- helpers of the runner --------------------------------------------------------------------


def _latency_summary(ns: Sequence[int], prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}p50_ms": _percentile(ns, 0.5) / 1e6,
        f"{prefix}p99_ms": _percentile(ns, 0.99) / 1e6,
        f"{prefix}max_ms": max(ns) / 1e6,
        f"{prefix}calls": len(ns),
    }


def create_schema(path: Path) -> None:
    """A database file with the gateway's schema, made by the store itself (then closed)."""

    async def make() -> None:
        async with open_sqlite_store(path):
            pass

    path.parent.mkdir(parents=True, exist_ok=True)
    trio.run(make)


def writer_connection(path: Path) -> sqlite3.Connection:
    """A stdlib connection set up as the store's writer (WAL, synchronous=NORMAL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def reader_connection(path: Path) -> sqlite3.Connection:
    """A stdlib connection set up as one of the store's readers."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.row_factory = sqlite3.Row
    return conn


def populate_messages(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """One session holding ``rows``, as ``append_message`` would have left it."""
    key = rows[0][0]
    first, last = rows[0], rows[-1]
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO sessions (session_key, agent_id, title, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (key, key.split(":")[1], first[2][:80], first[3], last[3]),
    )
    conn.executemany(
        "INSERT INTO messages (session_key, role, content, created_at, tokens) "
        "VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute(
        "UPDATE sessions SET message_count = ?, token_count = ?, "
        "activity = (SELECT max(id) FROM messages WHERE session_key = ?) WHERE session_key = ?",
        (len(rows), sum(r[4] for r in rows), key, key),
    )
    conn.execute("COMMIT")


def populate_memory(conn: sqlite3.Connection, items: list[str]) -> None:
    """Memory items as ``store_memory`` would have stored them (the trigger fills the index)."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO memory (id, content, source, created_at, metadata) "
        "VALUES (?, ?, 'bench', ?, '{}')",
        ((f"mem_{i:016x}", text, "2025-01-01T00:00:00.000Z") for i, text in enumerate(items)),
    )
    conn.execute("COMMIT")


# The baseline: the store's statements, in a plain loop on stdlib connections ---------------------


def sync_append(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    """What ``append_message`` commits, as its own transaction."""
    key, role, content, stamp, tokens = row
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO sessions (session_key, agent_id, created_at, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (session_key) DO NOTHING",
        (key, key.split(":")[1], stamp, stamp),
    )
    message_id = conn.execute(
        "INSERT INTO messages (session_key, role, content, created_at, tokens, run_id, "
        "tool_calls, tool_call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key, role, content, stamp, tokens, None, None, None),
    ).lastrowid
    conn.execute(
        "UPDATE sessions SET message_count = message_count + 1, "
        "token_count = token_count + ?, activity = ?, updated_at = ?, "
        "title = coalesce(title, ?) WHERE session_key = ?",
        (tokens, message_id, stamp, content[:80] if role == "user" else None, key),
    )
    conn.execute("COMMIT")


def sync_history(conn: sqlite3.Connection, key: str, limit: int) -> list[dict[str, Any]]:
    """What ``session.history`` reads: the session row, then the newest ``limit`` messages."""
    session = conn.execute("SELECT * FROM sessions WHERE session_key = ?", (key,)).fetchone()
    assert session is not None
    rows = conn.execute(
        "SELECT * FROM messages WHERE session_key = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (key, 2**63 - 1, limit),
    ).fetchall()
    return [dict(r) for r in reversed(rows)]


SEARCH_SQL = (
    "SELECT memory.*, bm25(memory_fts) AS rank FROM memory_fts "
    "JOIN memory ON memory.rowid = memory_fts.rowid WHERE memory_fts MATCH ? ORDER BY rank LIMIT ?"
)


def sync_search(conn: sqlite3.Connection, query: str, limit: int) -> list[dict[str, Any]]:
    """What ``memory.search`` runs: the same MATCH text, join, BM25 order and limit."""
    match = fts_query(query)
    assert match is not None
    rows = conn.execute(SEARCH_SQL, (match, limit)).fetchall()
    return [{**dict(r), "metadata": json.loads(r["metadata"]), "score": -r["rank"]} for r in rows]


# -- the gateway process, seen from the runner ---------------------------------------------------


class GatewayProcess:
    """``store.py --serve DIR`` pinned to the server CPU; its commands and connections."""

    def __init__(self, server: Server) -> None:
        proc = server.proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        self.server = server
        self.stdin_fd, self.stdout_fd = proc.stdin.fileno(), proc.stdout.fileno()

    def send(self, cmd: dict[str, Any]) -> None:
        os.write(self.stdin_fd, json.dumps(cmd).encode() + b"\n")

    def answered(self) -> bool:
        """Has the gateway written (the start of) an answer?"""
        return bool(select.select([self.stdout_fd], [], [], 0)[0])

    def answer(self, timeout: float = 120.0) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.read_line(timeout))
        return answer

    def command(self, cmd: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        self.send(cmd)
        return self.answer(timeout)

    def read_line(self, timeout: float) -> bytes:
        fd, data = self.stdout_fd, b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise RuntimeError(
                    f"the gateway did not answer within {timeout}s: {self.server.log_tail()}"
                )
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"the gateway exited: {self.server.log_tail()}")
            data += chunk
        return data


class Callers:
    """``n`` authenticated connections, each sending its next call as soon as it is answered.

    ``run`` drives them with epoll from this one thread and records (sent, answered) in
    CLOCK_MONOTONIC ns for every call; each answer is decoded and checked by ``check``.
    """

    def __init__(
        self,
        server: Server,
        n: int,
        method: str,
        params: Callable[[int], dict[str, Any]],
        check: Callable[[int, dict[str, Any]], None],
    ) -> None:
        self.clients = [server.connect() for _ in range(n)]
        self.method, self.params, self.check, self.request = method, params, check, request
        self.epoll = select.epoll()
        self.by_fd = {c.fileno(): c for c in self.clients}
        for client in self.clients:
            client.sock.setblocking(False)
            self.epoll.register(client.fileno(), select.EPOLLIN)
        self.next_call = 0

    def _send(self, client: WSClient, sent: dict[int, tuple[int, int]]) -> None:
        i = self.next_call
        self.next_call += 1
        frame = client.frame(self.request(i + 10, self.method, self.params(i)))
        sent[client.fileno()] = (i, monotonic_ns())
        client.send_raw(frame)

    def run(
        self, keep_going: Callable[[], bool], extra_fd: int | None = None
    ) -> list[tuple[int, int]]:
        """Calls until ``keep_going()`` is false (checked as answers arrive), then drain.

        ``extra_fd`` (the gateway's stdout) is watched too: when it becomes readable,
        ``keep_going`` is expected to turn false.
        """
        done: list[tuple[int, int]] = []
        sent: dict[int, tuple[int, int]] = {}
        if extra_fd is not None:
            self.epoll.register(extra_fd, select.EPOLLIN)
        try:
            for client in self.clients:
                self._send(client, sent)
            going = True
            while sent:
                for fd, _ in self.epoll.poll(10.0):
                    if fd == extra_fd:
                        going = keep_going()
                        continue
                    client = self.by_fd[fd]
                    try:
                        messages = client.poll()
                    except BlockingIOError:
                        continue
                    arrived = monotonic_ns()
                    for message in messages:
                        doc = decode(message)
                        if "id" not in doc:
                            continue  # an event
                        i, t0 = sent.pop(fd)
                        if doc["id"] != i + 10 or "result" not in doc:
                            raise AssertionError(
                                f"{self.method}: unexpected answer {str(doc)[:300]}"
                            )
                        self.check(i, doc["result"])
                        done.append((t0, arrived))
                        going = going and keep_going()
                        if going:
                            self._send(client, sent)
        finally:
            if extra_fd is not None:
                self.epoll.unregister(extra_fd)
        return done

    def close(self) -> None:
        self.epoll.close()
        for client in self.clients:
            client.close()


# -- the benchmarks ----------------------------------------------------------------------------


def bench_append(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """16 appenders in the gateway, 10 readers over sockets; then the same appends in a loop."""
    corpus = Corpus()
    limit = 100

    def check(i: int, result: dict[str, Any]) -> None:
        ids = [m["id"] for m in result["messages"]]
        if len(ids) != limit or ids != sorted(ids):
            raise AssertionError(f"history answered {len(ids)} messages, ids {ids[:3]}...")

    # The gateway: a session of `limit` messages first (unmeasured; it also warms the writer).
    out: dict[str, Any] = {
        "appends": args.appends,
        "appenders": args.appenders,
        "readers": args.readers,
    }
    alone_key = APPEND_SESSION + "-alone"
    with ctx.gateway(ctx.fresh_dir()) as gw:
        gw.command({"cmd": "prepare", "session_key": APPEND_SESSION, "count": limit, "seed": 11})
        gw.command({"cmd": "append", "session_key": APPEND_SESSION, "concurrency": 1})
        for key in (APPEND_SESSION, alone_key):
            gw.command({"cmd": "prepare", "session_key": key, "count": args.appends, "seed": 12})
        params = {"session_key": APPEND_SESSION, "limit": limit}
        callers = Callers(gw.server, args.readers, "session.history", lambda i: params, check)
        try:
            # Readers alone, for comparison.
            until = time.perf_counter() + args.reads_alone_s
            alone = callers.run(lambda: time.perf_counter() < until)
            # Readers while the appends run: the gateway answers one line when they are done.
            answer: dict[str, Any] = {}

            def appends_running() -> bool:
                if answer:
                    return False
                if gw.answered():
                    answer.update(gw.answer())
                    return False
                return True

            cmd = {"cmd": "append", "session_key": APPEND_SESSION, "concurrency": args.appenders}
            with Load(gw.server) as load:
                gw.send(cmd)
                during_all = callers.run(appends_running, gw.stdout_fd)
                if not answer:
                    answer.update(gw.answer())
        finally:
            callers.close()
        # The same appends with no reader, to another session: what the reads cost the writer.
        alone_appends = gw.command({**cmd, "session_key": alone_key})
    t0, t1 = answer["t0_ns"], answer["t1_ns"]
    during = [b - a for a, b in during_all if a >= t0 and b <= t1]  # wholly inside the appends
    overlapping = [b - a for a, b in during_all if a < t1 and b > t0]
    elapsed = (t1 - t0) / 1e9
    out["gateway"] = {
        "appends_per_s": answer["appended"] / elapsed,
        "elapsed_s": elapsed,
        "transactions": answer["transactions"],
        "changes_per_transaction": answer["appended"] / answer["transactions"]
        if answer["transactions"]
        else None,
        "server_cpu_s": answer["cpu_s"],
        "append_p50_ms": answer["append_p50_ms"],
        "append_p99_ms": answer["append_p99_ms"],
        "append_max_ms": answer["append_max_ms"],
        "gc_full_or_long_pauses": answer["gc_full_or_long_pauses"],
        "gc_pause_max_ms": answer["gc_pause_max_ms"],
        "appends_alone_per_s": alone_appends["appended"]
        / ((alone_appends["t1_ns"] - alone_appends["t0_ns"]) / 1e9),
        "appends_alone_changes_per_transaction": alone_appends["appended"]
        / alone_appends["transactions"]
        if alone_appends["transactions"]
        else None,
        **_latency_summary(during, "history_"),
        "history_overlapping_max_ms": max(overlapping) / 1e6,
        "history_overlapping_calls": len(overlapping),
        "history_per_s": len(during) / elapsed,
        **_latency_summary([b - a for a, b in alone], "history_alone_"),
        "background_cores": load.background_cores,
    }

    # The baseline: the same messages, one transaction each, and after every `every` appends one
    # history read on a second connection (timed alone; the append rate counts appends only).
    path = ctx.fresh_dir() / "gateway.db"
    create_schema(path)
    writer, reader = writer_connection(path), reader_connection(path)
    try:
        for row in message_rows(corpus, BASELINE_SESSION, limit, 11):
            sync_append(writer, row)
        rows = message_rows(corpus, BASELINE_SESSION, args.appends, 12)
        every = max(1, round(args.appends / max(1, len(during))))
        reads: list[int] = []
        append_ns = 0
        clock = time.perf_counter_ns
        with Load() as load:
            for i, row in enumerate(rows):
                t = clock()
                sync_append(writer, row)
                append_ns += clock() - t
                if i % every == 0:
                    t = clock()
                    got = sync_history(reader, BASELINE_SESSION, limit)
                    reads.append(clock() - t)
                    assert len(got) == limit
    finally:
        writer.close()
        reader.close()
    out["baseline"] = {
        "appends_per_s": len(rows) / (append_ns / 1e9),
        "appends_alone_per_s": len(rows) / (append_ns / 1e9),
        "elapsed_s": append_ns / 1e9,
        "reads_every_n_appends": every,
        **_latency_summary(reads, "history_"),
        "background_cores": load.background_cores,
    }
    return out


def interleaved_calls(
    gw: GatewayProcess,
    method: str,
    params: Sequence[dict[str, Any]],
    check: Callable[[int, dict[str, Any]], None],
    baseline: Callable[[int], None],
    blocks: int,
    warmup: int,
) -> dict[str, Any]:
    """``params`` as one call at a time on one connection, and the same through ``baseline``,
    in alternating blocks (B G, G B, ...). Latencies in ns, client side."""
    client = gw.server.connect()
    clock = time.perf_counter_ns

    def gateway_call(i: int) -> int:
        frame = client.frame(request(i + 10, method, params[i]))
        t = clock()
        client.send_raw(frame)
        doc = decode(client.recv())
        elapsed = clock() - t
        if doc.get("id") != i + 10 or "result" not in doc:
            raise AssertionError(f"{method}: unexpected answer {str(doc)[:300]}")
        check(i, doc["result"])
        return elapsed

    def baseline_call(i: int) -> int:
        t = clock()
        baseline(i)
        return clock() - t

    runners = {"gateway": gateway_call, "baseline": baseline_call}
    times: dict[str, list[int]] = {"gateway": [], "baseline": []}
    n = len(params)
    try:
        for call in runners.values():
            for i in range(min(warmup, n)):
                call(i)
        bounds = [n * b // blocks for b in range(blocks + 1)]
        with Load(gw.server) as load:
            for b in range(blocks):
                order = ("baseline", "gateway") if b % 2 == 0 else ("gateway", "baseline")
                for label in order:
                    for i in range(bounds[b], bounds[b + 1]):
                        times[label].append(runners[label](i))
    finally:
        client.close()
    return {
        label: {**_latency_summary(ns), "background_cores": load.background_cores}
        for label, ns in times.items()
    }


def bench_history(args: argparse.Namespace, ctx: Context, gw: GatewayProcess) -> dict[str, Any]:
    limit = 100
    conn = reader_connection(ctx.shared_db)
    last_id = conn.execute(
        "SELECT activity FROM sessions WHERE session_key = ?", (BIG_SESSION,)
    ).fetchone()[0]

    def check(i: int, result: dict[str, Any]) -> None:
        ids = [m["id"] for m in result["messages"]]
        if len(ids) != limit or ids[-1] != last_id:
            raise AssertionError(f"history answered {len(ids)} messages ending at {ids[-1:]}")

    def baseline(i: int) -> None:
        assert len(sync_history(conn, BIG_SESSION, limit)) == limit

    params = [{"session_key": BIG_SESSION, "limit": limit}] * args.calls
    try:
        out = interleaved_calls(
            gw, "session.history", params, check, baseline, args.blocks, warmup=20
        )
    finally:
        conn.close()
    out["messages_in_session"] = args.history_messages
    return out


def bench_search(args: argparse.Namespace, ctx: Context, gw: GatewayProcess) -> dict[str, Any]:
    limit = 10
    queries = ctx.corpus.queries(ctx.memory_items, seed=21, count=args.calls)
    conn = reader_connection(ctx.shared_db)
    hits: list[int] = []

    def check(i: int, result: dict[str, Any]) -> None:
        hits.append(len(result["results"]))

    def baseline(i: int) -> None:
        sync_search(conn, queries[i], limit)

    try:
        params = [{"query": q, "limit": limit} for q in queries]
        out = interleaved_calls(
            gw, "memory.search", params, check, baseline, args.blocks, warmup=20
        )
        # Queries with a word found in nearly every item: BM25 has to score them all.
        broad_queries = [("the", "meeting and the notes")[i % 2] for i in range(args.broad_calls)]

        def broad_baseline(i: int) -> None:
            sync_search(conn, broad_queries[i], limit)

        broad_params = [{"query": q, "limit": limit} for q in broad_queries]
        broad = interleaved_calls(
            gw, "memory.search", broad_params, lambda i, r: None, broad_baseline, 2, warmup=2
        )
        matches = conn.execute(
            "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH ?", ('"the"',)
        ).fetchone()[0]
    finally:
        conn.close()
    out["items"] = args.memory_items
    out["queries_without_hits"] = sum(1 for h in hits if h == 0)
    out["words_per_query"] = statistics.fmean(len(q.split()) for q in queries)
    out["broad"] = broad
    out["items_matching_the"] = matches
    return out


# -- driver ------------------------------------------------------------------------------------


class Context:
    """What one run shares: the scratch directory, pinning, the corpus, the shared data set."""

    def __init__(self, args: argparse.Namespace, workdir: Path, pin: bool) -> None:

        self.args = args
        self.workdir = workdir
        self.bench = Bench(workdir, pin)
        self.corpus = Corpus()
        self.memory_items: list[str] = []
        self.shared_db = workdir / "shared" / "gateway.db"
        self._dirs = 0

    def fresh_dir(self) -> Path:
        self._dirs += 1
        path = self.workdir / f"data-{self._dirs}"
        path.mkdir()
        return path

    @contextlib.contextmanager
    def gateway(self, data_dir: Path) -> Iterator[GatewayProcess]:
        """``store.py --serve DATA_DIR``, started and stopped around the block."""
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", str(data_dir)]
        with running(Server("gateway-store", cmd, self.bench)) as server:
            yield GatewayProcess(server)

    def build_shared(self, say: Callable[[str], None]) -> dict[str, float]:
        """The 100,000-message session and the 100,000 memory items, in one database."""
        args, took = self.args, {}
        t = time.perf_counter()
        create_schema(self.shared_db)
        conn = writer_connection(self.shared_db)
        try:
            if "history" in args.wanted:
                say(f"writing a session of {args.history_messages:,} messages")
                populate_messages(
                    conn, message_rows(self.corpus, BIG_SESSION, args.history_messages, 31)
                )
                took["messages_s"] = time.perf_counter() - t
            if "search" in args.wanted:
                say(f"writing {args.memory_items:,} memory items")
                t = time.perf_counter()
                self.memory_items = self.corpus.texts(41, args.memory_items, MEMORY_WORDS)
                populate_memory(conn, self.memory_items)
                took["memory_s"] = time.perf_counter() - t
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        took["db_mib"] = self.shared_db.stat().st_size / 2**20
        os.sync()  # no write-back of the fresh file while measuring
        return took


#: (benchmark, row label, unit, path to the figure, higher is better, absolute target)
ROWS: list[tuple[str, str, str, str, bool, float | None]] = [
    ("append", "1. append {appends:,} msgs, {appenders} tasks, {readers} readers", "msg/s",
     "appends_per_s", True, 5000),
    ("append", "   append rate, no readers", "msg/s", "appends_alone_per_s", True, None),
    ("append", "   history during appends, p50", "ms", "history_p50_ms", False, None),
    ("append", "   history during appends, p99", "ms", "history_p99_ms", False, 50),
    ("append", "   history during appends, max", "ms", "history_max_ms", False, None),
    ("append", "   history, readers alone, p99", "ms", "history_alone_p99_ms", False, None),
    ("history", "2. session.history 100 of {messages_in_session:,}, p50", "ms", "p50_ms",
     False, None),
    ("history", "   session.history, p99", "ms", "p99_ms", False, 20),
    ("history", "   session.history, max", "ms", "max_ms", False, None),
    ("search", "3. memory.search in {items:,} items, p50", "ms", "p50_ms", False, None),
    ("search", "   memory.search, p99", "ms", "p99_ms", False, 50),
    ("search", "   memory.search, max", "ms", "max_ms", False, None),
    ("search", "   query with a word in most items, p50", "ms", "broad.{}.p50_ms", False, None),
]  # fmt: skip


def _figure(result: dict[str, Any], path: str, label: str) -> float | None:
    """``path`` in ``result[label]`` (``broad.{}.x``: ``result["broad"][label]["x"]``)."""
    if path.startswith("broad."):
        figure = result["broad"][label][path.split(".")[2]]
    else:
        figure = result[label].get(path)
    return None if figure is None else float(figure)


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, label, unit, path, higher_is_better, limit in ROWS:
        if key not in results:
            continue
        result = results[key]
        gateway = _figure(result, path, "gateway")
        baseline = _figure(result, path, "baseline")
        ok, target = None, "info"
        if limit is not None and gateway is not None:
            ok = gateway >= limit if higher_is_better else gateway <= limit
            target = f"{'>=' if higher_is_better else '<='} {limit:,g} {unit}"
        other = result["gateway"].get("background_cores") if label[0] != " " else None
        rows.append(make_row(label.format(**result), unit, gateway, baseline, target, ok, other))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Persistence benchmarks against a plain sqlite3 loop.")
    p.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this (repeatable)")
    p.add_argument("--appends", type=int, default=10_000, help="messages appended in benchmark 1")
    p.add_argument("--appenders", type=int, default=16, help="concurrent appending tasks")
    p.add_argument("--readers", type=int, default=10, help="connections calling session.history")
    p.add_argument("--reads-alone-s", type=float, default=1.0, help="readers alone first, seconds")
    p.add_argument("--history-messages", type=int, default=100_000, help="messages in benchmark 2")
    p.add_argument("--memory-items", type=int, default=100_000, help="memory items in benchmark 3")
    p.add_argument("--calls", type=int, default=500, help="measured calls in benchmarks 2 and 3")
    p.add_argument("--broad-calls", type=int, default=20, help="searches for a very common word")
    p.add_argument("--blocks", type=int, default=4, help="alternating blocks in benchmarks 2 and 3")
    p.add_argument("--quick", action="store_true", help="small data sets, to check the harness")
    p.add_argument("--no-pin", action="store_true", help="do not pin gateway and client to CPUs")
    p.add_argument("--output", type=Path, default=HERE / "results" / "store.json")
    p.add_argument("--time-limit", type=float, default=300, help="abort the run after this long")
    p.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)  # the gateway process
    args = p.parse_args(argv)
    if args.quick:
        args.appends, args.history_messages, args.memory_items = 2000, 10_000, 10_000
        args.calls, args.broad_calls, args.reads_alone_s = 100, 4, 0.3
    args.wanted = args.only or BENCHMARKS
    return args


def main() -> int:
    args = parse_args()
    if args.serve:
        raise_nofile_limit()
        trio.run(_serve, args.serve)
        return 0

    pin = start_runner(
        no_pin=args.no_pin,
        server_cpus={SERVER_CPU},
        client_cpu=CLIENT_CPU,
        time_limit=args.time_limit,
    )
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aleph-store-bench-") as tmp:
        ctx = Context(args, Path(tmp), pin)
        if "append" in args.wanted:
            say(
                f"append: {args.appends:,} messages, {args.appenders} appenders, "
                f"{args.readers} readers"
            )
            results["append"] = bench_append(args, ctx)
        if {"history", "search"} & set(args.wanted):
            results["data"] = ctx.build_shared(say)
            with ctx.gateway(ctx.shared_db.parent) as gw:
                if "history" in args.wanted:
                    say(f"session.history: {args.calls} calls")
                    results["history"] = bench_history(args, ctx, gw)
                if "search" in args.wanted:
                    say(f"memory.search: {args.calls} queries")
                    results["search"] = bench_search(args, ctx, gw)
    signal.setitimer(signal.ITIMER_REAL, 0)

    rows = build_rows(results)
    machine = machine_info(pin)
    machine["sqlite"] = sqlite3.sqlite_version
    report = write_report(
        args.output,
        started=started,
        machine=machine,
        settings=vars(args),
        rows=rows,
        results=results,
        baseline="sqlite3 loop",
    )

    print(machine_line(machine, ["trio"], extra=f"SQLite {machine['sqlite']}"))
    print(code_line(machine))
    print(
        f"pinning: gateway CPU {SERVER_CPU}, client and sqlite3 loop CPU {CLIENT_CPU}"
        if pin
        else "pinning: off"
    )
    print()
    print(format_table(rows, baseline="sqlite3 loop"))
    print()
    print("baseline: the same SQL in a plain loop on stdlib sqlite3 (one transaction per append)")
    print("other CPU: cores used by other processes while the gateway was measured")
    print_outcome(rows, report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
