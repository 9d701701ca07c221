"""Worker and operator authentication for the HTTP layer.

Workers send ``X-Worker-ID`` and ``X-Worker-Token``; operators send
``Authorization: Bearer <operator token>``. A worker token never works as an operator token and
vice versa. The authenticated caller is kept in ``flask.g``: ``g.worker`` (a Worker) or
``g.operator`` (True).
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from vintner.domain import workers
from vintner.domain.model import Worker
from vintner.errors import Unauthorized
from vintner.services import services

F = TypeVar("F", bound=Callable[..., Any])

OPERATOR_REQUIRED = "Operator token required"
INVALID_OPERATOR = "Invalid operator token"


def _authenticate_operator() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized(OPERATOR_REQUIRED)
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(INVALID_OPERATOR)
    expected = services().admin_token
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized(INVALID_OPERATOR)
    g.operator = True
    g.worker = None


def _authenticate_worker() -> None:
    g.worker = workers.authenticate(
        services().repository,
        request.headers.get("X-Worker-ID", "").strip(),
        request.headers.get("X-Worker-Token", "").strip(),
    )
    g.operator = False


def operator_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _authenticate_operator()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def worker_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _authenticate_worker()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def worker_or_operator(view: F) -> F:
    """An ``Authorization`` header means an operator; otherwise the worker headers apply."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.headers.get("Authorization"):
            _authenticate_operator()
        else:
            _authenticate_worker()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def current_worker() -> Worker | None:
    """The authenticated worker, or None for an operator."""
    return g.get("worker")
