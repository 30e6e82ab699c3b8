"""Wizards (PROTOCOL §11): guided flows written as coroutines that ask questions, the engine
that runs each as a gateway child task and turns its questions into steps, and the built-in
``setup``, ``cron_job`` and ``identity`` flows."""

from ._cron_job import CronJobFlow as CronJobFlow
from ._flows import builtin_flows as builtin_flows
from ._identity import IdentityFlow as IdentityFlow
from ._service import (
    IDLE_S as IDLE_S,
    KEEP_S as KEEP_S,
    Flow as Flow,
    WizardService as WizardService,
)
from ._session import WizardSession as WizardSession, WizardUI as WizardUI
from ._setup import SetupFlow as SetupFlow
from ._steps import (
    Option as Option,
    Step as Step,
    confirm as confirm,
    multiselect as multiselect,
    note as note,
    password as password,
    select as select,
    text as text,
)
