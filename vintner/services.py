"""The per-application bundle of configured backends, reachable from any request."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import Flask, current_app

from vintner.config import Settings
from vintner.domain.liveness import Timings
from vintner.ports.artifacts import ArtifactStore
from vintner.ports.notifier import Notifier
from vintner.ports.repository import Repository

EXTENSION_KEY = "vintner"


@dataclass
class Services:
    settings: Settings
    repository: Repository
    artifacts: ArtifactStore
    admin_token: str
    _notifier: Notifier | None = field(default=None, init=False, repr=False)
    _notifier_lock: threading.Lock = field(default_factory=threading.Lock, init=False,
                                           repr=False)

    @property
    def timings(self) -> Timings:
        return self.settings.timings

    @property
    def notifier(self) -> Notifier:
        """The repository's notifier, built once, on first use (so that only processes that
        publish or wait open its connections and threads — and after gunicorn's fork, not
        before it)."""
        if self._notifier is None:
            with self._notifier_lock:
                if self._notifier is None:
                    self._notifier = self.repository.create_notifier()
        return self._notifier

    def close(self) -> None:
        """Stop the notifier (if one was built) and release the repository's connections."""
        with self._notifier_lock:
            notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.close()
        self.repository.close()

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self


def services() -> Services:
    """The services of the current Flask application."""
    return current_app.extensions[EXTENSION_KEY]
