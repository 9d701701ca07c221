"""Exceptions the agent's parts use to tell each other what happened."""

from __future__ import annotations


class AgentError(Exception):
    """Base class for the agent's own errors."""


class ApiError(AgentError):
    """The server answered with an error status; ``message`` is its ``error`` field."""

    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path} -> {status}: {message}".strip())
        self.status = status
        self.message = message


class AuthError(ApiError):
    """401: the worker id/token is unknown or revoked. The agent cannot go on."""


class JobLost(ApiError):
    """409 on a write: the job is no longer ours (recovered, failed, cancelled). Drop it."""


class NotFound(ApiError):
    """404, e.g. a plan artifact that does not exist."""


class TransientError(AgentError):
    """Network errors / timeouts / 5xx that persisted past the retry deadline."""


class JobFailed(AgentError):
    """The job cannot succeed; the message is what the operator sees as error_message."""


class JobCancelled(AgentError):
    """The job stopped because a cancel was requested (or the agent is shutting down)."""
