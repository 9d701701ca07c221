"""Job handlers, one module per job type."""

from __future__ import annotations

from collections.abc import Callable

from vintner.agent.jobs.base import JobContext, JobOutcome
from vintner.agent.jobs.connection_test import run_connection_test
from vintner.agent.jobs.deploy import run_deploy
from vintner.agent.jobs.destroy import run_destroy
from vintner.agent.jobs.plan import run_plan

Handler = Callable[[JobContext], JobOutcome]

HANDLERS: dict[str, Handler] = {
    "PLAN": run_plan,
    "DEPLOY": run_deploy,
    "DESTROY": run_destroy,
    "CONNECTION_TEST": run_connection_test,
}

__all__ = ["HANDLERS", "Handler", "JobContext", "JobOutcome"]
