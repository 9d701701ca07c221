"""The reference Tendril agent: a pure HTTP client of Vintner's worker API.

Nothing in this package imports the server (``vintner.api``, ``vintner.domain``,
``backends`` ...): the agent only knows the wire contract in the worker API spec.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _agent_version() -> str:
    try:
        return version("vintner")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"


__version__ = _agent_version()

__all__ = ["__version__"]
