"""WSGI entry point: ``gunicorn 'app:app'`` and ``flask --app app …``.

The application is built on first access of ``app`` (not at import), so importing this module
has no side effects.
"""

from __future__ import annotations

from typing import Any

from vintner import create_app


def __getattr__(name: str) -> Any:
    if name in ("app", "application"):
        application = create_app()
        globals()["app"] = globals()["application"] = application
        return application
    raise AttributeError(name)
