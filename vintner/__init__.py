"""Vintner: a self-hostable control plane (Trellis) for Terraform-running agents (Tendrils).

``create_app`` is imported lazily so that ``vintner.agent`` (a pure HTTP client) does not pull in
Flask, SQLAlchemy or any backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application (see :func:`vintner.factory.create_app`)."""
    from vintner.factory import create_app as _create_app

    return _create_app(test_config)
