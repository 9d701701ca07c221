"""The per-application bundle of configured backends, reachable from any request."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from vintner.config import Settings
from vintner.domain.liveness import Timings
from vintner.ports.artifacts import ArtifactStore
from vintner.ports.repository import Repository

EXTENSION_KEY = "vintner"


@dataclass
class Services:
    settings: Settings
    repository: Repository
    artifacts: ArtifactStore
    admin_token: str

    @property
    def timings(self) -> Timings:
        return self.settings.timings

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self


def services() -> Services:
    """The services of the current Flask application."""
    return current_app.extensions[EXTENSION_KEY]
