#!/usr/bin/env python
"""Exec approvals and cancelling a running command, against the gateway as shipped, in one go.

    python benchmarks/exec.py            # both: about 6 s on a quiet machine
    python benchmarks/exec.py --quick    # fewer rounds, to check the harness
    python benchmarks/exec.py --only cancel

The gateway is ``python -m aleph_trio --host 127.0.0.1 --port 0 --data-dir <fresh dir>``:
default configuration, authentication on, a fresh gateway per benchmark. It is pinned to
CPU 0 with ``taskset`` (so are the commands it starts); this process, the client, pins
itself to CPU 1. Every connection authenticates with ``connect`` and goes through the same
minimal client as ``run.py`` (``_wsclient.py``); every time is taken with one clock in this
process.

1. ``approvals``: two asking connections send 50 ``exec.approval.request`` each (pipelined,
   distinct commands, cwd ``/``; the default policy asks), so 100 approvals are pending at once.
   An approver connection, subscribed to ``exec.*``, collects the 100 ids from the
   ``exec.approval_requested`` events and resolves them (``allow-once`` and ``deny`` in turn;
   the answer's decision is checked):
   - one at a time: from sending one ``exec.approval.resolve`` on the approver until the asking
     connection has read the answer to that request; the next resolve follows both answers.
     Baseline: a ``health`` round trip on an asking connection, with the 100 approvals pending.
   - all at once: the 100 resolves in one write; from that write until each answer is read.
     Baseline: 100 ``health`` requests in one write on the approver, until each answer is read.
   20 rounds of each kind, alternating (each round asks for 100 new approvals); one unmeasured
   round of each first. The client's garbage collector is off while measuring.
2. ``cancel``: policy ``mode = "full"``; ``agent.run {"message": "run sleep 1000 & echo $$ >
   FILE; sleep 1000"}`` makes the built-in model call the ``exec`` tool. Once the run's
   ``stream.tool_start`` has been read and the command's process group (the shell, which wrote
   its pid, and both ``sleep``) is in ``/proc``, ``agent.cancel``; from sending it until no
   process of the group is alive (zombies count as gone; the members' ``/proc/PID/stat`` are
   polled in a busy loop), and until its answer is read. Baseline: the same command started by
   this process (``taskset -c 0 /bin/sh -c ...`` in a new session) and killed with
   ``os.killpg(pgid, SIGKILL)``, polled the same way. The two alternate (G B, B G, ...). This
   process makes itself a child subreaper, so the orphaned ``sleep`` are reaped here and their
   CPU time is not counted as other processes'.

A connection handles at most ``server.max_in_flight`` (64) requests at once and stops reading
while that many are unanswered (pongs included: after ``ping_interval_s + ping_timeout_s`` the
gateway closes it with 1011), so 100 pending requests cannot share one connection with the
default configuration; hence two asking connections (``--askers``). The approver's 100 resolves
in one write are also taken 64 at a time.

The table is printed and written, with every raw figure, to
``benchmarks/results/exec-latest.json`` (the table alone to ``exec-latest.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import gc
import itertools
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import say, start_runner  # noqa: E402
from _table import (  # noqa: E402
    code_line,
    format_table,
    machine_line,
    make_row,
    measure_selected,
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
    wait_for_quiet,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

BENCHMARKS = ("approvals", "cancel")
GATEWAY_CPU = 0
CLIENT_CPU = 1
#: Per-connection limit of requests handled at once (``ServerConfig.max_in_flight``).
MAX_IN_FLIGHT = 64
clock = time.perf_counter_ns


# -- reading several connections -----------------------------------------------------------------


class Mux:
    """Reads several connections at once: every message is decoded and stamped when read."""

    def __init__(self, clients: Sequence[WSClient]) -> None:
        self.clients = list(clients)
        self.poller = select.epoll()
        self.by_fd = {c.fileno(): c for c in self.clients}
        for fd in self.by_fd:
            self.poller.register(fd, select.EPOLLIN)

    def read(self, timeout: float) -> list[tuple[WSClient, int, dict[str, Any]]]:
        """What has arrived, waiting at most ``timeout`` s for something (0: do not wait)."""
        out = []
        for c in self.clients:  # left over by WSClient.call
            while c._pending:
                out.append((c, clock(), decode(c._pending.popleft())))
        if out:
            return out
        for fd, _ in self.poller.poll(timeout):
            client = self.by_fd[fd]
            messages = client.poll()
            now = clock()
            out.extend((client, now, decode(m)) for m in messages)
        return out

    def close(self) -> None:
        self.poller.close()


def _event(doc: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    if doc.get("method") == "event":
        return doc["params"]["topic"], doc["params"]["data"]
    return None


def _summary(ns: Sequence[int]) -> dict[str, float]:
    return {
        "p50_ms": _percentile(ns, 0.5) / 1e6,
        "p99_ms": _percentile(ns, 0.99) / 1e6,
        "max_ms": max(ns) / 1e6,
        "count": len(ns),
    }


class GatewayLoad(Load):
    """``run.Load``, counting the commands the gateway ran (its reaped children) as its own."""

    def _ours(self) -> float:
        ours = super()._ours()
        if self.server is not None:
            with open(f"/proc/{self.server.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ours += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        return ours


# -- 1. approvals ------------------------------------------------------------------------------


class Approvals:
    """Asking connections, an approver, and rounds of 100 pending approvals."""

    def __init__(self, server: Server, approvals: int, askers: int) -> None:
        self.askers = [server.connect() for _ in range(askers)]
        self.approver = server.connect()
        self.approver.call(2, "events.subscribe", {"patterns": ["exec.*"]})
        self.mux = Mux([*self.askers, self.approver])
        self.approvals = approvals
        self.ids = itertools.count(100)
        self.rounds = 0

    def close(self) -> None:
        self.mux.close()
        for c in (*self.askers, self.approver):
            c.close()

    def _unexpected(self, client: WSClient, doc: dict[str, Any]) -> None:
        raise AssertionError(f"unexpected message on connection {client.fileno()}: {doc}")

    def ask(self) -> list[tuple[str, WSClient, int]]:
        """Send the requests; return (approval id, asking connection, request id) as announced."""
        self.rounds += 1
        wanted: dict[str, tuple[WSClient, int]] = {}
        frames: dict[WSClient, list[bytes]] = {c: [] for c in self.askers}
        for j in range(self.approvals):
            asker = self.askers[j % len(self.askers)]
            rid = next(self.ids)
            command = f"deploy --round {self.rounds} --item {j}"
            params = {"command": command, "cwd": "/", "agent_id": "main"}
            frames[asker].append(asker.frame(request(rid, "exec.approval.request", params)))
            wanted[command] = (asker, rid)
        for asker, batch in frames.items():
            asker.send_raw(b"".join(batch))
        pending: list[tuple[str, WSClient, int]] = []
        deadline = time.monotonic() + 20
        while len(pending) < self.approvals:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} of {self.approvals} approvals announced")
            for client, _, doc in self.mux.read(1.0):
                event = _event(doc)
                if client is self.approver and event and event[0] == "exec.approval_requested":
                    asker, rid = wanted.pop(event[1]["command"])
                    pending.append((event[1]["id"], asker, rid))
                elif not (client is self.approver and event):
                    self._unexpected(client, doc)
        return pending

    def check_pending(self) -> None:
        listed = self.approver.call(next(self.ids), "exec.approvals.pending")["pending"]
        if len(listed) != self.approvals:
            raise AssertionError(f"exec.approvals.pending lists {len(listed)}")

    def _await(self, answers: dict[tuple[WSClient, int], Any]) -> dict[tuple[WSClient, int], int]:
        """Read until every ``(connection, request id)`` of ``answers`` is answered (with that
        result, unless it is ``None``); when each answer was read."""
        answers = dict(answers)
        read_at: dict[tuple[WSClient, int], int] = {}
        deadline = time.monotonic() + 20
        while answers:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(answers)} answers missing")
            for client, now, doc in self.mux.read(1.0):
                key = (client, doc.get("id"))
                if key in answers:
                    expected = answers.pop(key)
                    if "error" in doc or (expected is not None and doc["result"] != expected):
                        raise AssertionError(f"expected {expected}, got {doc}")
                    read_at[key] = now
                elif not (client is self.approver and _event(doc)):
                    self._unexpected(client, doc)
        return read_at

    def _resolve_frame(self, i: int, approval_id: str) -> tuple[bytes, int, dict[str, Any]]:
        decision = "allow-once" if i % 2 == 0 else "deny"
        rid = next(self.ids)
        params = {"id": approval_id, "decision": decision, "resolved_by": "bench"}
        frame = self.approver.frame(request(rid, "exec.approval.resolve", params))
        answer = {"id": approval_id, "approved": decision == "allow-once", "decision": decision}
        return frame, rid, answer

    def health_one_at_a_time(self, calls: int) -> list[int]:
        out: list[int] = []
        for i in range(calls):
            asker = self.askers[i % len(self.askers)]
            rid = next(self.ids)
            frame = asker.frame(request(rid, "health"))
            t0 = clock()
            asker.send_raw(frame)
            out.append(self._await({(asker, rid): None})[(asker, rid)] - t0)
        return out

    def health_in_one_write(self) -> list[int]:
        rids = [next(self.ids) for _ in range(self.approvals)]
        frames = b"".join(self.approver.frame(request(rid, "health")) for rid in rids)
        t0 = clock()
        self.approver.send_raw(frames)
        read_at = self._await({(self.approver, rid): None for rid in rids})
        return [t - t0 for t in read_at.values()]

    def resolve_one_at_a_time(self, pending: list[tuple[str, WSClient, int]]) -> dict[str, Any]:
        answer_ns: list[int] = []
        reply_ns: list[int] = []
        for i, (approval_id, asker, rid) in enumerate(pending):
            frame, resolve_rid, answer = self._resolve_frame(i, approval_id)
            t0 = clock()
            self.approver.send_raw(frame)
            read_at = self._await(
                {(asker, rid): answer, (self.approver, resolve_rid): {"resolved": True}}
            )
            answer_ns.append(read_at[(asker, rid)] - t0)
            reply_ns.append(read_at[(self.approver, resolve_rid)] - t0)
        return {"answer_ns": answer_ns, "reply_ns": reply_ns}

    def resolve_in_one_write(self, pending: list[tuple[str, WSClient, int]]) -> dict[str, Any]:
        frames = []
        wanted: dict[tuple[WSClient, int], Any] = {}
        for i, (approval_id, asker, rid) in enumerate(pending):
            frame, resolve_rid, answer = self._resolve_frame(i, approval_id)
            frames.append(frame)
            wanted[(asker, rid)] = answer
            wanted[(self.approver, resolve_rid)] = {"resolved": True}
        data = b"".join(frames)
        t0 = clock()
        self.approver.send_raw(data)
        read_at = self._await(wanted)
        return {
            "answer_ns": [t - t0 for k, t in read_at.items() if k[0] is not self.approver],
            "reply_ns": [t - t0 for k, t in read_at.items() if k[0] is self.approver],
        }


def bench_approvals(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    server = bench.gateway()
    with running(server):
        ap = Approvals(server, args.approvals, args.askers)
        try:
            # Unmeasured: one round of each kind.
            pending = ap.ask()
            ap.check_pending()
            ap.health_one_at_a_time(10)
            ap.resolve_one_at_a_time(pending)
            pending = ap.ask()
            ap.health_in_one_write()
            ap.resolve_in_one_write(pending)
            gc.collect()
            before = wait_for_quiet(args.quiet, 5)
            seq: dict[str, list[int]] = {"answer_ns": [], "reply_ns": [], "health_ns": []}
            burst: dict[str, list[int]] = {"answer_ns": [], "reply_ns": [], "health_ns": []}
            burst_last: list[int] = []
            gc.disable()
            try:
                with GatewayLoad(server) as load:
                    for r in range(args.rounds):
                        kinds = ("seq", "burst") if r % 2 == 0 else ("burst", "seq")
                        for kind in kinds:
                            pending = ap.ask()
                            if kind == "seq":
                                seq["health_ns"] += ap.health_one_at_a_time(args.health_calls)
                                got = ap.resolve_one_at_a_time(pending)
                                seq["answer_ns"] += got["answer_ns"]
                                seq["reply_ns"] += got["reply_ns"]
                            else:
                                burst["health_ns"] += ap.health_in_one_write()
                                got = ap.resolve_in_one_write(pending)
                                burst["answer_ns"] += got["answer_ns"]
                                burst["reply_ns"] += got["reply_ns"]
                                burst_last.append(max(got["answer_ns"]))
            finally:
                gc.enable()
        finally:
            ap.close()
    return {
        "gateway": {
            "one_at_a_time": _summary(seq["answer_ns"]),
            "one_at_a_time_resolve_reply": _summary(seq["reply_ns"]),
            "in_one_write": _summary(burst["answer_ns"]),
            "in_one_write_resolve_reply": _summary(burst["reply_ns"]),
            "in_one_write_last_answer_ms": [n / 1e6 for n in burst_last],
        },
        "baseline": {
            "one_at_a_time": {
                **_summary(seq["health_ns"]),
                "what": "health round trip on an asking connection",
            },
            "in_one_write": {
                **_summary(burst["health_ns"]),
                "what": f"{args.approvals} health requests in one write",
            },
        },
        "approvals": args.approvals,
        "askers": args.askers,
        "rounds": args.rounds,
        "background_cores": load.background_cores,
        "background_cores_before": before,
        "exit_code_on_sigterm": server.exit_code,
    }


# -- 2. cancel -----------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, process group) of ``pid``, ``None`` once it has been reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    head, _, tail = raw.rpartition(b")")
    fields = tail.split()
    if not fields:
        return None
    return head.partition(b"(")[2].decode(errors="replace"), fields[0].decode(), int(fields[2])


def group_members(pgid: int) -> dict[int, tuple[str, str]]:
    """Every process of group ``pgid`` that is not a zombie: pid → (comm, state)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _stat(int(name))
        if st is not None and st[2] == pgid and st[1] != "Z":
            out[int(name)] = (st[0], st[1])
    return out


def wait_for_group(pidfile: Path, timeout: float = 10.0) -> tuple[int, list[int]]:
    """The shell's pid (its process group) once both ``sleep`` of the command are sleeping."""
    deadline = time.monotonic() + timeout
    pgid = None
    while True:
        if time.monotonic() > deadline:
            raise AssertionError(f"the command's process group did not appear ({pidfile})")
        if pgid is None:
            with contextlib.suppress(FileNotFoundError):
                text = pidfile.read_text()
                if text.endswith("\n"):
                    pgid = int(text.split()[0])
        if pgid is not None:
            members = group_members(pgid)
            sleeping = [p for p, (comm, state) in members.items() if comm == "sleep"]
            if len(sleeping) == 2 and all(state == "S" for _, state in members.values()):
                return pgid, sorted(members)
        time.sleep(0.0005)


def wait_gone(pgid: int, members: list[int], idle: Callable[[], None], timeout: float) -> int:
    """Poll the members' ``/proc/PID/stat`` until none is alive; the time it was seen."""
    remaining = list(members)
    deadline = clock() + int(timeout * 1e9)
    while True:
        for pid in list(remaining):
            st = _stat(pid)
            if st is None or st[1] == "Z" or st[2] != pgid:
                remaining.remove(pid)
        now = clock()
        if not remaining:
            return now
        if now > deadline:
            raise AssertionError(f"process group {pgid} still alive: {remaining}")
        idle()


def become_subreaper() -> bool:
    """Orphans of the commands (the shell's ``sleep``) become this process's children, so that
    their CPU time is counted as ours once reaped (``run.Load``), not as other processes'."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(36, 1, 0, 0, 0) == 0)  # PR_SET_CHILD_SUBREAPER


def reap(pids: list[int], timeout: float = 5.0) -> None:
    """Reap ``pids`` once they have been handed to this process (see :func:`become_subreaper`)."""
    left = set(pids)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    left.discard(pid)
            except ChildProcessError:  # not (yet) ours, or reaped by someone else
                if not os.path.exists(f"/proc/{pid}"):
                    left.discard(pid)
        if left:
            time.sleep(0.0002)


class Cancels:
    def __init__(self, server: Server, bench: Bench, piddir: Path) -> None:
        self.server = server
        self.bench = bench
        self.piddir = piddir
        self.client = server.connect()
        current = self.client.call(2, "exec.approvals.get")
        self.client.call(3, "exec.approvals.set",
                         {"config": {"mode": "full"}, "base_hash": current["hash"]})  # fmt: skip
        self.mux = Mux([self.client])
        self.ids = itertools.count(100)

    def close(self) -> None:
        self.mux.close()
        self.client.close()

    @staticmethod
    def command(pidfile: Path) -> str:
        return f"sleep 1000 & echo $$ > {pidfile}; sleep 1000"

    def gateway(self, i: int) -> dict[str, int]:
        pidfile = self.piddir / f"g{i}"
        rid = next(self.ids)
        params = {"message": f"run {self.command(pidfile)}", "session_key": f"agent:main:x{i}"}
        t_run = clock()
        self.client.send(request(rid, "agent.run", params))
        run_id, started = None, False
        deadline = time.monotonic() + 10
        while run_id is None or not started:
            if time.monotonic() > deadline:
                raise AssertionError("the run did not start its command")
            for _, _, doc in self.mux.read(1.0):
                event = _event(doc)
                if doc.get("id") == rid:
                    if "error" in doc:
                        raise AssertionError(f"agent.run failed: {doc['error']}")
                    run_id = doc["result"]["run_id"]
                elif event and event[0] == "stream.tool_start":
                    started = True
                elif event and event[0] in ("agent.completed", "agent.error", "agent.cancelled"):
                    raise AssertionError(f"the run ended early: {event}")
        pgid, members = wait_for_group(pidfile)
        t_running = clock()

        cid = next(self.ids)
        frame = self.client.frame(request(cid, "agent.cancel", {"run_id": run_id}))
        stamps: dict[str, int] = {}

        def idle(timeout: float = 0.0) -> None:
            for _, now, doc in self.mux.read(timeout):
                event = _event(doc)
                if doc.get("id") == cid:
                    if doc.get("result") != {"cancelled": True, "run_id": run_id}:
                        raise AssertionError(f"agent.cancel answered {doc}")
                    stamps["reply"] = now
                elif event and event[0] == "agent.cancelled" and event[1]["run_id"] == run_id:
                    stamps["event"] = now
                elif event and event[0] in ("agent.completed", "agent.error"):
                    raise AssertionError(f"the run ended with {event}")

        t0 = clock()
        self.client.send_raw(frame)
        gone = wait_gone(pgid, members, idle, 10.0)
        deadline = time.monotonic() + 10
        while len(stamps) < 2:
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer to agent.cancel ({stamps})")
            idle(1.0)
        left = group_members(pgid)
        if left:
            raise AssertionError(f"process group {pgid} outlived the cancel: {left}")
        reap([p for p in members if p != pgid])  # the gateway reaps the shell
        return {
            "gone_ns": gone - t0,
            "reply_ns": stamps["reply"] - t0,
            "event_ns": stamps["event"] - t0,
            "running_ns": t_running - t_run,
            "members": len(members),
        }

    def baseline(self, i: int) -> dict[str, int]:
        pidfile = self.piddir / f"b{i}"
        pin = ["taskset", "-c", str(GATEWAY_CPU)] if self.bench.pin_prefix else []
        t_run = clock()
        proc = subprocess.Popen(
            [*pin, "/bin/sh", "-c", self.command(pidfile)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        members: list[int] = []
        try:
            pgid, members = wait_for_group(pidfile)
            if pgid != proc.pid:
                raise AssertionError(f"the shell wrote {pgid}, its pid is {proc.pid}")
            t_running = clock()
            t0 = clock()
            os.killpg(pgid, signal.SIGKILL)
            gone = wait_gone(pgid, members, lambda: None, 10.0)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            reap([p for p in members if p != proc.pid])
        return {"gone_ns": gone - t0, "running_ns": t_running - t_run, "members": len(members)}


def bench_cancel(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    server = bench.gateway()
    piddir = bench.workdir / f"pids-{time.monotonic_ns()}"
    piddir.mkdir()
    subreaper = become_subreaper()
    g: list[dict[str, int]] = []
    b: list[dict[str, int]] = []
    with running(server):
        cancels = Cancels(server, bench, piddir)
        try:
            for i in range(args.cancel_warmup):
                cancels.gateway(-1 - i)
                cancels.baseline(-1 - i)
            gc.collect()
            before = wait_for_quiet(args.quiet, 5)
            gc.disable()
            try:
                with GatewayLoad(server) as load:
                    for i in range(args.cancels):
                        if i % 2 == 0:
                            g.append(cancels.gateway(i))
                            b.append(cancels.baseline(i))
                        else:
                            b.append(cancels.baseline(i))
                            g.append(cancels.gateway(i))
            finally:
                gc.enable()
        finally:
            cancels.close()

    def col(rows: list[dict[str, int]], key: str) -> list[int]:
        return [r[key] for r in rows]

    return {
        "gateway": {
            **_summary(col(g, "gone_ns")),
            "reply": _summary(col(g, "reply_ns")),
            "event": _summary(col(g, "event_ns")),
            "running": _summary(col(g, "running_ns")),
            "members": sorted(set(col(g, "members"))),
            "gone_ms": [round(n / 1e6, 3) for n in col(g, "gone_ns")],
            "reply_ms": [round(n / 1e6, 3) for n in col(g, "reply_ns")],
        },
        "baseline": {
            **_summary(col(b, "gone_ns")),
            "running": _summary(col(b, "running_ns")),
            "members": sorted(set(col(b, "members"))),
            "what": "os.killpg(SIGKILL) of the same command started by the client",
        },
        "cancels": args.cancels,
        "client_is_subreaper": subreaper,
        "background_cores": load.background_cores,
        "background_cores_before": before,
        "exit_code_on_sigterm": server.exit_code,
    }


# -- report --------------------------------------------------------------------------------------


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(*args: Any, **kwargs: Any) -> None:
        rows.append(make_row(*args, **kwargs))

    if "approvals" in results:
        r = results["approvals"]
        g, b = r["gateway"], r["baseline"]
        one, base = g["one_at_a_time"], b["one_at_a_time"]
        n = r["approvals"]
        row(f"1. {n} pending, resolve -> answer, p50", "ms", one["p50_ms"], base["p50_ms"],
            other=r["background_cores"])  # fmt: skip
        row("   p99", "ms", one["p99_ms"], base["p99_ms"], "<= 20 ms", one["p99_ms"] <= 20)
        row("   max", "ms", one["max_ms"], base["max_ms"])
        reply = g["one_at_a_time_resolve_reply"]
        row("   resolve's own reply, p99", "ms", reply["p99_ms"], base["p99_ms"])
        burst, base = g["in_one_write"], b["in_one_write"]
        row(f"   {n} resolves in one write -> answers, p50", "ms", burst["p50_ms"],
            base["p50_ms"])  # fmt: skip
        row("   in one write, p99", "ms", burst["p99_ms"], base["p99_ms"], "<= 20 ms",
            burst["p99_ms"] <= 20)  # fmt: skip
        row("   in one write, max", "ms", burst["max_ms"], base["max_ms"])
    if "cancel" in results:
        r = results["cancel"]
        g, b = r["gateway"], r["baseline"]
        row(f"2. cancel in exec -> group gone (x{r['cancels']}), p50", "ms", g["p50_ms"],
            b["p50_ms"], other=r["background_cores"])  # fmt: skip
        row("   p99", "ms", g["p99_ms"], b["p99_ms"], "<= 200 ms", g["p99_ms"] <= 200)
        row("   max", "ms", g["max_ms"], b["max_ms"])
        row("   agent.cancel answered, p50", "ms", g["reply"]["p50_ms"], None)
        row("   agent.cancel answered, p99", "ms", g["reply"]["p99_ms"], None)
        row("   agent.run -> command running, p50", "ms", g["running"]["p50_ms"],
            b["running"]["p50_ms"])  # fmt: skip
    return rows


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Exec approvals and cancelling a running command.")
    p.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this (repeatable)")
    p.add_argument("--approvals", type=int, default=100, help="approvals pending at once")
    p.add_argument("--askers", type=int, default=2, help="connections the requests are spread on")
    p.add_argument("--rounds", type=int, default=20, help="measured rounds of each kind")
    p.add_argument("--health-calls", type=int, default=25, help="health round trips per round")
    p.add_argument("--cancels", type=int, default=50, help="measured cancels")
    p.add_argument("--cancel-warmup", type=int, default=3, help="unmeasured cancels first")
    p.add_argument("--quick", action="store_true", help="fewer rounds, to check the harness")
    p.add_argument("--no-pin", action="store_true", help="do not pin gateway and client to CPUs")
    p.add_argument("--quiet", type=float, default=0.1, help="other CPU (cores) that forces a retry")
    p.add_argument(
        "--retries", type=int, default=1, help="extra attempts for a disturbed benchmark"
    )
    p.add_argument("--budget", type=float, default=45, help="no retries after this many seconds")
    p.add_argument("--output", type=Path, default=HERE / "results" / "exec-latest.json")
    p.add_argument("--time-limit", type=float, default=180, help="abort the run after this long")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.health_calls, args.cancels, args.cancel_warmup = 4, 20, 10, 1
    if -(-args.approvals // args.askers) >= MAX_IN_FLIGHT:
        p.error(
            f"{args.approvals} approvals on {args.askers} connection(s): a connection handles at "
            f"most {MAX_IN_FLIGHT} requests at once (server.max_in_flight); use more --askers"
        )
    return args


def main() -> int:
    args = parse_args()
    pin = start_runner(
        no_pin=args.no_pin,
        server_cpus={GATEWAY_CPU},
        client_cpu=CLIENT_CPU,
        time_limit=args.time_limit,
    )
    started = time.perf_counter()
    wanted = args.only or BENCHMARKS
    runners: dict[str, tuple[str, Callable[[argparse.Namespace, Bench], dict[str, Any]]]] = {
        "approvals": (f"approvals: {args.approvals} pending on {args.askers} connections, "
                      f"{args.rounds} rounds", bench_approvals),
        "cancel": (f"cancel: {args.cancels} runs in exec", bench_cancel),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aleph-exec-bench-") as tmp:
        bench = Bench(Path(tmp), pin)
        results = measure_selected(
            [name for name in BENCHMARKS if name in wanted],
            {
                name: (text, functools.partial(run_bench, args, bench))
                for name, (text, run_bench) in runners.items()
            },
            retries=args.retries,
            quiet=args.quiet,
            in_budget=lambda: time.perf_counter() - started < args.budget,
            say=say,
        )
    signal.setitimer(signal.ITIMER_REAL, 0)

    rows = build_rows(results)
    machine = machine_info(pin)
    machine["pinning"] = {"gateway_cpu": GATEWAY_CPU, "client_cpu": CLIENT_CPU} if pin else None
    report = write_report(
        args.output,
        started=started,
        machine=machine,
        settings=vars(args),
        rows=rows,
        results=results,
    )

    print(machine_line(machine, ["trio", "msgspec"]))
    print(code_line(machine))
    print(f"pinning: gateway CPU {GATEWAY_CPU}, client CPU {CLIENT_CPU}" if pin else "pinning: off")
    print()
    print(format_table(rows))
    print()
    print(
        "baseline: approvals, a health round trip on an asking connection (one at a time) and "
        "as many health requests in one write (in one write); cancel, os.killpg of the same "
        "command started by this process"
    )
    print("other CPU: cores used by other processes while measuring")
    print_outcome(rows, report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
