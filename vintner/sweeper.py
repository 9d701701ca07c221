"""The background sweep: liveness and recovery in every server process.

Several processes may sweep at once; every recovery is a compare-and-set, so each job gets
exactly one outcome whoever sweeps it.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from vintner.domain import recovery
from vintner.domain.model import utcnow
from vintner.services import Services

log = logging.getLogger(__name__)


def sweep_once(services: Services) -> recovery.SweepReport:
    report = recovery.sweep(services.repository, services.timings, utcnow())
    if report.total() or report.workers_marked_offline:
        log.info("sweep: %d workers offline, requeued %d, failed %d, cancelled %d",
                 len(report.workers_marked_offline), len(report.requeued), len(report.failed),
                 len(report.cancelled))
    return report


def _loop(services: Services, stop: threading.Event) -> None:
    interval = services.settings.sweep_interval_s
    while not stop.wait(interval):
        try:
            sweep_once(services)
        except Exception:  # keep sweeping: a database hiccup must not end liveness checks
            log.exception("sweep failed; retrying in %s s", interval)


def start_sweeper(app: Flask, services: Services) -> threading.Event:
    """Start the daemon sweep thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(services, stop), name="vintner-sweeper",
                              daemon=True)
    thread.start()
    app.extensions["vintner_sweeper_stop"] = stop
    return stop
