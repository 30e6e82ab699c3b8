"""Exec approvals (PROTOCOL §10): the policy file, pending requests and their resolution.

Every command the gateway runs for anyone passes :meth:`Approvals.submit`: the policy decides
at once (``policy-allow`` / ``policy-deny``) or the request waits for a human
(``exec.approval_requested`` to owner connections) until ``exec.approval.resolve`` answers, its
time runs out (``timeout``, a denial) or its waiter goes away (``cancelled``). Pending requests
are stored, so after a restart they show as expired and never as approved.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from pathlib import Path
from typing import Any, Final, final

import attrs
import trio

from ..kernel import (
    Conflict,
    EventBus,
    FieldProblem,
    InvalidArgument,
    InvalidState,
    NotFound,
    OperationFailed,
    ValidationFailed,
    component_logger,
    format_ts,
    now_ts,
    parse_ts,
    utc_now,
)
from ..store import ApprovalRecord, Store, StoreError
from ._policy import (
    Policy,
    PolicyFile,
    file_stamp,
    parse_policy,
    read_policy_file,
    write_policy_file,
)
from ._states import DECISION_STATUS, check_transition

__all__ = ["Approvals", "Decision", "Ticket"]

log = component_logger("exec")

#: How long a finished approval stays answerable with ``invalid_state`` (not ``-32004``) from
#: memory; older ones are looked up in the store.
RECENT_KEPT: Final = 1000


@attrs.frozen
class Decision:
    id: str
    decision: str
    approved: bool

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "approved": self.approved, "decision": self.decision}


@attrs.define(eq=False)
class _Pending:
    record: ApprovalRecord
    decided: trio.Event = attrs.Factory(trio.Event)
    decision: Decision | None = None


def _waited(record: ApprovalRecord) -> str:
    """How long a request waited for an answer, as a person reads it (``"120 s"``)."""
    try:
        seconds = (parse_ts(record.expires_at) - parse_ts(record.requested_at)).total_seconds()
    except ValueError:
        return "its time limit"
    return f"{seconds:g} s"


@final
@attrs.define(eq=False)
class Ticket:
    """An answer now (``decision``), or a pending request to :meth:`wait` for."""

    approvals: Approvals
    id: str
    decision: Decision | None
    _pending: _Pending | None = None
    timeout_s: float = 0.0

    @property
    def pending(self) -> bool:
        return self.decision is None

    async def wait(self) -> Decision:
        """The decision, once there is one; the time limit expires the request as a denial.

        If the waiter is cancelled the request is withdrawn (recorded, and announced)."""
        if self.decision is not None:
            return self.decision
        pending = self._pending
        assert pending is not None
        try:
            with trio.move_on_after(self.timeout_s):
                await pending.decided.wait()
            if pending.decision is None:
                await self.approvals.settle(pending, "timeout", "timeout")
        except BaseException:
            await self.withdraw()
            raise
        assert pending.decision is not None
        self.decision = pending.decision
        return pending.decision

    async def withdraw(self) -> None:
        """Whoever asked stopped waiting: a request still pending is cancelled (and announced)."""
        pending = self._pending
        if pending is not None and pending.decision is None:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.approvals.settle(pending, "cancelled", "requester gone")


@final
class Approvals:
    """Pending exec requests and the policy file ``exec-approvals.toml`` in ``directory``."""

    def __init__(self, store: Store, bus: EventBus, directory: Path) -> None:
        self._store = store
        self._bus = bus
        self._directory = directory
        self._file: PolicyFile | None = None
        self._writing = trio.Lock()
        self._pending: dict[str, _Pending] = {}
        self._recent: dict[str, str] = {}  # id → final status, newest last
        self._settled = trio.lowlevel.ParkingLot()  #: woken whenever a request is settled

    # -- the policy --------------------------------------------------------------------------

    async def policy(self) -> PolicyFile:
        """The policy in force, re-read when the file changed on disk."""
        stamp = await trio.to_thread.run_sync(file_stamp, self._directory)
        current = self._file
        if current is None or stamp != current.stamp:
            current = await trio.to_thread.run_sync(read_policy_file, self._directory)
            if not current.valid and (self._file is None or self._file.valid):
                log.error(
                    "exec-approvals.toml is invalid, every command is denied until it is fixed: %s",
                    "; ".join(f"{e['path'] or 'file'}: {e['message']}" for e in current.errors),
                )
            self._file = current
        return current

    async def set_policy(self, config: object, base_hash: str) -> PolicyFile:
        """Replace the policy if ``base_hash`` is the hash of the one in force."""
        try:
            policy = parse_policy(config)
        except ValidationFailed as exc:
            problems = [FieldProblem(e["path"], e["message"]) for e in exc.errors(root="$.config")]
            raise InvalidArgument(
                f"{problems[0].path}: {problems[0].message}", problems=problems
            ) from None
        async with self._writing:
            current = await self.policy()
            if base_hash != current.hash:
                raise Conflict(
                    "base_hash is not the hash of the policy in force "
                    "(it changed meanwhile); read it again with exec.approvals.get",
                    current_hash=current.hash,
                )
            return await self._write(policy)

    async def _write(self, policy: Policy) -> PolicyFile:
        try:
            written = await trio.to_thread.run_sync(write_policy_file, self._directory, policy)
        except OSError as exc:
            raise OperationFailed(f"cannot write exec-approvals.toml: {exc}") from None
        self._file = written
        return written

    # -- requests ----------------------------------------------------------------------------

    async def submit(
        self,
        command: str,
        cwd: str,
        agent_id: str,
        *,
        run_id: str | None = None,
        timeout_ms: int | None = None,
    ) -> Ticket:
        """Ask to run ``command``: decided by the policy now, or pending for a human."""
        approval_id = "apr_" + uuid.uuid4().hex[:20]
        verdict = (await self.policy()).policy.verdict(command, agent_id)
        if verdict.action != "ask":
            decision = "policy-allow" if verdict.action == "allow" else "policy-deny"
            log.info("exec %s for %s: %s (%s)", decision, agent_id, command, verdict.reason)
            return Ticket(
                self, approval_id, Decision(approval_id, decision, decision == "policy-allow")
            )
        timeout_ms = timeout_ms or verdict.ask_timeout_ms
        now = utc_now()
        record = ApprovalRecord(
            id=approval_id,
            command=command,
            cwd=cwd,
            agent_id=agent_id,
            status="pending",
            requested_at=format_ts(now),
            expires_at=format_ts(now + _dt.timedelta(milliseconds=timeout_ms)),
            run_id=run_id,
        )
        pending = _Pending(record)
        self._pending[approval_id] = pending
        ticket = Ticket(self, approval_id, None, pending, timeout_ms / 1000)
        try:
            await self._store.save_approval(record)
        except BaseException:
            await ticket.withdraw()
            raise
        data = record.to_json()
        del data["requested_at"]
        self._bus.publish("exec.approval_requested", data, run_id=run_id)
        return ticket

    async def wait_idle(self) -> None:
        """Wait until no request is pending."""
        while self._pending:
            await self._settled.park()

    def pending(self) -> list[ApprovalRecord]:
        return sorted((p.record for p in self._pending.values()), key=lambda r: r.requested_at)

    async def resolve(self, approval_id: str, decision: str, resolved_by: str) -> None:
        """A human's answer; the first one wins."""
        pending = self._pending.get(approval_id)
        if pending is None or pending.decision is not None:
            status = self._recent.get(approval_id)
            if status is None and pending is None:
                record = await self._store.get_approval(approval_id)
                if record is None:
                    raise NotFound("approval", approval_id)
                status = record.status
            raise InvalidState(f"approval {approval_id} is already {status or 'resolved'}")
        await self.settle(pending, decision, resolved_by)
        if decision == "allow-always":
            async with self._writing:
                current = await self.policy()
                if current.valid:
                    await self._write(current.policy.allowing(pending.record.command))
                else:
                    log.warning("allow-always not remembered: exec-approvals.toml is invalid")

    async def settle(self, pending: _Pending, decision: str, resolved_by: str) -> None:
        """Give a pending request its final state: in memory at once (so the first answer
        wins), then stored; then the waiter is woken and the event published."""
        if pending.decision is not None:
            return
        status = check_transition(pending.record.status, DECISION_STATUS[decision])
        approved = status == "approved"
        pending.decision = Decision(pending.record.id, decision, approved)
        record = attrs.evolve(
            pending.record,
            status=status,
            decision=decision,
            resolved_by=resolved_by,
            resolved_at=now_ts(),
        )
        pending.record = record
        self._pending.pop(record.id, None)
        self._settled.unpark_all()
        self._recent[record.id] = status
        while len(self._recent) > RECENT_KEPT:
            del self._recent[next(iter(self._recent))]
        try:
            await self._store.save_approval(record)
        except StoreError as exc:
            log.error("approval %s: could not store its decision: %s", record.id, exc)
        finally:
            pending.decided.set()
        if decision == "timeout":
            log.info(
                "exec request %s expired: nobody answered within %s; not run: %s",
                record.id,
                _waited(pending.record),
                record.command,
            )
        else:
            log.info("exec %s by %s: %s", decision, resolved_by, record.command)
        self._bus.publish(
            "exec.approval_resolved",
            {
                "id": record.id,
                "decision": decision,
                "approved": approved,
                "resolved_by": resolved_by,
            },
            run_id=record.run_id,
        )

    async def expire_left_over(self) -> None:
        """After a restart: requests that were pending are expired, never approved."""
        expired = await self._store.expire_pending_approvals(now_ts())
        if expired:
            log.warning("%d exec approval(s) pending at the last stop expired", len(expired))
