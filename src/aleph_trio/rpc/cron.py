"""``cron.create``, ``cron.list``, ``cron.get``, ``cron.delete``, ``cron.trigger``, ``cron.pause``,
``cron.resume``, ``cron.status`` (PROTOCOL §12)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import attrs
from msgspec import Meta

from ..kernel import AgentId
from ..sessions import SessionKey
from ._context import CallContext
from ._registry import Namespace, NoParams
from .agent import Message

if TYPE_CHECKING:
    from ..cron import CronService
    from ..store import CronJob

ns = Namespace()

JobId = Annotated[str, Meta(min_length=1, max_length=128)]
ModelId = Annotated[str, Meta(min_length=1, max_length=256)]


def job_json(cron: CronService, job: CronJob) -> dict[str, Any]:
    out: dict[str, Any] = {
        "job_id": job.job_id,
        "name": job.name,
        "schedule": job.schedule,
        "schedule_description": cron.describe(job.job_id),
        "timezone": job.timezone,
        "agent_id": job.agent_id,
        "prompt": job.prompt,
        "session_key": job.session_key,
        "enabled": job.enabled,
        "misfire_policy": job.misfire_policy,
        "overlap_policy": job.overlap_policy,
        "created_at": job.created_at,
        "next_run_at": job.next_run_at,
        "last_run_at": job.last_run_at,
        "last_status": job.last_status,
    }
    if job.model is not None:
        out["model"] = job.model
    return out


@attrs.frozen
class CreateParams:
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    schedule: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=200,
            description="5-field cron, @hourly/@daily/@weekly/@monthly/@yearly, "
            "every <n><s|m|h|d>, or at <RFC 3339 time>",
        ),
    ]
    agent_id: AgentId
    prompt: Message
    timezone: Annotated[str, Meta(min_length=1, max_length=64, description="IANA name")] = "UTC"
    session_key: SessionKey | None = None
    enabled: bool = True
    misfire_policy: Literal["run_once", "skip"] = "run_once"
    overlap_policy: Literal["skip", "queue"] = "skip"
    model: ModelId | None = None


@ns.method(
    "cron.create",
    CreateParams,
    description="Schedule an agent run: cron expression, macro, interval or one-shot time.",
    owner_only=True,
)
async def create(ctx: CallContext, params: CreateParams) -> dict[str, Any]:
    job = await ctx.gateway.cron.create(**attrs.asdict(params))
    return {"job_id": job.job_id, "next_run_at": job.next_run_at}


@attrs.frozen
class ListFilter:
    enabled: bool | None = None
    agent_id: AgentId | None = None


@attrs.frozen
class ListParams:
    filter: ListFilter | None = None


@ns.method(
    "cron.list",
    ListParams,
    description="Every job, in the order they were created.",
    owner_only=False,
)
async def list_jobs(ctx: CallContext, params: ListParams) -> dict[str, Any]:
    flt = params.filter or ListFilter()
    cron = ctx.gateway.cron
    jobs = cron.jobs(enabled=flt.enabled, agent_id=flt.agent_id)
    return {"jobs": [job_json(cron, job) for job in jobs], "total": len(jobs)}


@attrs.frozen
class JobRef:
    job_id: JobId


@ns.method(
    "cron.get",
    JobRef,
    description="A job and its 20 newest cron runs, newest first.",
    owner_only=False,
)
async def get(ctx: CallContext, params: JobRef) -> dict[str, Any]:
    cron = ctx.gateway.cron
    job, runs = await cron.get(params.job_id)
    return {**job_json(cron, job), "recent_runs": [run.to_json() for run in runs]}


@ns.method(
    "cron.delete",
    JobRef,
    description="Delete a job and its history; a firing in progress is cancelled first.",
    owner_only=True,
)
async def delete(ctx: CallContext, params: JobRef) -> dict[str, Any]:
    await ctx.gateway.cron.delete(params.job_id)
    return {"deleted": True}


@ns.method(
    "cron.trigger",
    JobRef,
    description="Fire a job now (paused ones too); answers once its agent run has started.",
    owner_only=True,
)
async def trigger(ctx: CallContext, params: JobRef) -> dict[str, Any]:
    firing = await ctx.gateway.cron.trigger(params.job_id)
    return {"triggered": True, "run_id": firing.run_id, "cron_run_id": firing.cron_run_id}


@ns.method(
    "cron.pause",
    JobRef,
    description="Stop a job's scheduled firings (a firing in progress goes on).",
    owner_only=True,
)
async def pause(ctx: CallContext, params: JobRef) -> dict[str, Any]:
    await ctx.gateway.cron.pause(params.job_id)
    return {"paused": True}


@ns.method(
    "cron.resume",
    JobRef,
    description="Schedule a paused job again, from now on.",
    owner_only=True,
)
async def resume(ctx: CallContext, params: JobRef) -> dict[str, Any]:
    job = await ctx.gateway.cron.resume(params.job_id)
    return {"resumed": True, "next_run_at": job.next_run_at}


@ns.method(
    "cron.status",
    NoParams,
    description="The scheduler: job counts and what fires next.",
    owner_only=False,
)
async def status(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    stats = ctx.gateway.cron.statistics()
    return attrs.asdict(stats)
