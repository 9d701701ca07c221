"""HTTP layer: one blueprint per resource family. Views parse, call the domain, serialise."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api


def register_blueprints(app: Flask, api: Api) -> None:
    from vintner.api import artifacts, health, jobs, logs, workers

    app.register_blueprint(health.blp)
    for module in (workers, jobs, logs, artifacts):
        api.register_blueprint(module.blp)
    # the operator API
    from vintner.api import identities, queue, vines, vineyards

    for module in (identities, vineyards, vines, queue):
        api.register_blueprint(module.blp)
