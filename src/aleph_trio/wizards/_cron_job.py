"""The ``cron_job`` wizard: name → schedule (checked live, described in words) → agent → prompt
→ confirm; creates the job through the cron service, as ``cron.create`` does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final, final

import attrs
from msgspec import Meta

from ..cron import CronService, Schedule, ScheduleError, parse_schedule
from ..kernel import AgentId, Config, InvalidArgument
from ..runs import DEFAULT_AGENT, agents_of
from ._service import Flow
from ._session import WizardUI
from ._steps import Option, Step, confirm, note, select, text

__all__ = ["CronJobFlow", "CronJobInitial"]

#: How much of the prompt the confirmation repeats.
PROMPT_SHOWN: Final = 300
Short = Annotated[str, Meta(max_length=200)]


@attrs.frozen
class CronJobInitial:
    """Defaults the client may pass as ``initial_data``."""

    name: Short | None = None
    schedule: Short | None = None
    agent_id: AgentId | None = None
    prompt: Annotated[str, Meta(max_length=20_000)] | None = None
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"


@final
class CronJobFlow:
    def __init__(self, cron: CronService, settings: Callable[[], Config]) -> None:
        self._cron = cron
        self._settings = settings

    def flow(self) -> Flow:
        return Flow(
            "cron_job",
            "Schedule an agent run: name, schedule, agent, prompt.",
            self.run,
            CronJobInitial,
            owner_only=True,
            validate=self.validate,
        )

    def validate(self, initial: CronJobInitial) -> None:
        try:
            parse_schedule("@daily", initial.timezone)
        except ScheduleError as exc:
            raise InvalidArgument.field("$.initial_data.timezone", exc.message) from None

    async def run(self, ui: WizardUI, initial: CronJobInitial) -> Step:
        cron = self._cron
        name: str = await ui.ask(
            text("Name", "What should the job be called?", default=initial.name, check=self._free)
        )
        zone = initial.timezone

        async def parse(value: str) -> Schedule:
            try:
                return parse_schedule(value, zone, now=cron.clock.now())
            except ScheduleError as exc:
                raise InvalidArgument.field("$.value", exc.message) from None

        schedule: Schedule = await ui.ask(
            text(
                "Schedule",
                "When should it run? A 5-field cron expression (30 2 * * *), @hourly, @daily, "
                f"@weekly, @monthly, every 15m, or at 2030-01-01T09:00:00Z (time zone {zone}).",
                default=initial.schedule,
                check=parse,
            )
        )
        described = schedule.describe()
        agents = agents_of(self._settings())
        agent_id: str = await ui.ask(
            select(
                "Agent",
                [Option(a.id, a.name, a.description or None) for a in agents],
                f"Runs: {described}. Which agent should run it?",
                default=initial.agent_id
                if any(a.id == initial.agent_id for a in agents)
                else DEFAULT_AGENT,
            )
        )
        prompt: str = await ui.ask(
            text("Prompt", "What should the agent be asked each time?", default=initial.prompt)
        )
        shown = prompt if len(prompt) <= PROMPT_SHOWN else prompt[:PROMPT_SHOWN] + "…"
        summary = f"Job {name!r}: {described}, agent {agent_id}, prompt: {shown}"
        if not await ui.ask(confirm("Create this job?", summary)):
            return note("No job was created", "Nothing was scheduled.")
        job = await cron.create(
            name=name, schedule=schedule.text, agent_id=agent_id, prompt=prompt, timezone=zone
        )
        return note(
            "Job created",
            f"{name!r} ({job.job_id}) runs {described[:1].lower()}{described[1:]}; "
            f"next run at {job.next_run_at}.",
        )

    async def _free(self, name: str) -> str:
        if any(job.name == name for job in self._cron.jobs()):
            raise InvalidArgument.field("$.value", f"a job named {name!r} exists already")
        return name
