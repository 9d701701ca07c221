"""``vintner sweep [--loop]``: liveness and recovery, once or forever (for cron-minded installs;
the server also sweeps on its own)."""

from __future__ import annotations

import time

import click

from vintner.cli.context import services
from vintner.domain.recovery import SweepReport
from vintner.errors import VintnerError
from vintner.sweeper import sweep_once


def _summary(report: SweepReport) -> str:
    return (f"{len(report.workers_marked_offline)} worker(s) marked offline, "
            f"{len(report.requeued)} job(s) requeued, {len(report.failed)} failed, "
            f"{len(report.cancelled)} cancelled")


@click.command("sweep")
@click.option("--loop", is_flag=True, help="Sweep every sweep_interval_s until interrupted.")
@click.option("--interval", type=click.FloatRange(min=0.01),
              help="Seconds between sweeps with --loop (default: the sweep_interval_s setting).")
def sweep_command(loop: bool, interval: float | None) -> None:
    """Mark silent workers OFFLINE and recover (requeue or fail) the jobs they held."""
    svc = services()
    if not loop:
        click.echo(f"Sweep: {_summary(sweep_once(svc))}")
        return
    every = interval or svc.settings.sweep_interval_s
    click.echo(f"Sweeping every {every:g} s (Ctrl-C to stop).")
    try:
        while True:
            try:
                report = sweep_once(svc)
                if report.total() or report.workers_marked_offline:
                    click.echo(f"Sweep: {_summary(report)}")
            except VintnerError as exc:  # a database hiccup must not end the loop
                click.echo(f"Sweep failed: {exc.message}; retrying in {every:g} s", err=True)
            time.sleep(every)
    except KeyboardInterrupt:
        click.echo("Stopped.")
