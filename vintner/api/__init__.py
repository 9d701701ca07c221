"""HTTP layer: one blueprint per resource family. Views parse, call the domain, serialise."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api


def register_blueprints(app: Flask, api: Api) -> None:
    from vintner.api import (
        artifacts,
        health,
        identities,
        jobs,
        log_stream,
        logs,
        queue,
        terraform_state,
        vines,
        vineyards,
        workers,
    )

    # plain Flask blueprints: probes, and Terraform's http backend (LOCK/UNLOCK are no
    # OpenAPI operations)
    app.register_blueprint(health.blp)
    app.register_blueprint(terraform_state.blp)
    # the worker API, then the operator API
    for module in (workers, jobs, logs, log_stream, artifacts, identities, vineyards, vines, queue):
        api.register_blueprint(module.blp)
