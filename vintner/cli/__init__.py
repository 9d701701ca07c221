"""The ``vintner`` command line (console script ``vintner = vintner.cli:main``).

:data:`cli` is a plain click group, so it also runs under Flask's CLI:
``flask --app app vintner …`` (the app factory registers it on ``app.cli``); there the commands
use the services of the app Flask loaded. Run directly, they build the services from the
configuration (:mod:`vintner.cli.context`). Commands call the domain services through the
configured repository, not the HTTP API.
"""

from __future__ import annotations

from typing import Any

import click

from vintner import __version__
from vintner.agent.cli import agent_command
from vintner.cli.context import translate_errors
from vintner.cli.db import db_group
from vintner.cli.identities import identities_group
from vintner.cli.jobs import jobs_group
from vintner.cli.serve import serve_command
from vintner.cli.storage import storage_group
from vintner.cli.sweep import sweep_command
from vintner.cli.vines import vines_group
from vintner.cli.vineyards import vineyards_group
from vintner.cli.workers import workers_group


class VintnerGroup(click.Group):
    """Turns the project's errors into one-line messages and exit codes (no tracebacks):
    configuration errors exit 2, domain errors (not found, conflict, invalid input) exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        return translate_errors(lambda: super(VintnerGroup, self).invoke(ctx))


@click.group("vintner", cls=VintnerGroup)
@click.version_option(__version__, prog_name="vintner")
def cli() -> None:
    """Vintner: a control plane for Terraform-running agents."""


for command in (serve_command, db_group, workers_group, identities_group, vineyards_group,
                vines_group, jobs_group, sweep_command, agent_command, storage_group):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="vintner")
