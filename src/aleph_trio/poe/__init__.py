"""POE (PROTOCOL §16): goal-directed runs that retry an agent until machine-checkable criteria
hold, and contracts that hold a run's terms until they are signed."""

from ._criteria import CriterionResult as CriterionResult, Evaluator as Evaluator
from ._loop import AgentRuns as AgentRuns
from ._model import read_criteria as read_criteria, read_verdict as read_verdict
from ._service import (
    PoeService as PoeService,
    contract_json as contract_json,
    run_json as run_json,
)
from ._spec import RULE_TYPES as RULE_TYPES, Spec as Spec, parse_spec as parse_spec
from ._states import CONTRACTS as CONTRACTS, LIVE as LIVE, POE_RUNS as POE_RUNS
