"""The application factory: settings → backends (through the registry) → blueprints."""

from __future__ import annotations

import logging
from typing import Any

import flask_smorest
from flask import Flask, request

from vintner import __version__
from vintner.api import errors, register_blueprints
from vintner.config import Settings, development_admin_token, load_settings
from vintner.errors import ConfigError
from vintner.registry import load_artifact_store, load_repository
from vintner.services import Services

#: JSON bodies are small; the artifact and state routes stream and set their own limits.
MAX_JSON_BODY = 8 * 1024 * 1024
STREAMING_BLUEPRINTS = frozenset({"artifacts", "terraform_state"})


def build_services(settings: Settings) -> Services:
    """Backends for ``settings``, selected by URL scheme through the registry."""
    admin_token = settings.admin_token
    if admin_token is None:
        admin_token, _ = development_admin_token(settings)
    repository = load_repository(settings.database_url, {})
    if settings.auto_migrate:
        repository.migrate()
    artifacts = load_artifact_store(settings.artifact_store, settings.store_options())
    return Services(settings=settings, repository=repository, artifacts=artifacts,
                    admin_token=admin_token)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    settings = load_settings(test_config)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # alembic announces each of its autogenerate plugins at INFO on every start-up
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    app = Flask("vintner", instance_path=settings.instance_path)
    # "//api//workers" is a 404 JSON, not a redirect with an HTML body
    app.url_map.merge_slashes = False
    app.config.update(
        API_TITLE="Vintner",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        MAX_CONTENT_LENGTH=None,
        VINTNER_SETTINGS=settings,
    )
    services = build_services(settings)
    services.init_app(app)

    api = flask_smorest.Api(app)
    api.spec.components.security_scheme(
        "worker_id", {"type": "apiKey", "in": "header", "name": "X-Worker-ID"})
    api.spec.components.security_scheme(
        "worker_token", {"type": "apiKey", "in": "header", "name": "X-Worker-Token"})
    api.spec.components.security_scheme("operator", {"type": "http", "scheme": "bearer"})
    register_blueprints(app, api)
    # `flask --app app vintner …` (imported here, only when an app is built)
    from vintner.cli import cli as vintner_cli

    app.cli.add_command(vintner_cli)
    errors.register(app)  # after Api(): replaces flask-smorest's error shape with ours

    @app.before_request
    def limit_json_bodies() -> None:
        if request.blueprint not in STREAMING_BLUEPRINTS:
            request.max_content_length = MAX_JSON_BODY

    if settings.sweep_enabled:
        from vintner.sweeper import start_sweeper

        start_sweeper(app, services)
    return app


def create_app_or_exit(test_config: dict[str, Any] | None = None) -> Flask:
    """For command-line entry points: a configuration error is a message, not a traceback."""
    try:
        return create_app(test_config)
    except ConfigError as exc:
        raise SystemExit(f"vintner: configuration error: {exc}") from None
