"""Driver errors → :mod:`vintner.errors`, and the retry helper for transient failures.

Nothing above the backend sees a SQLAlchemy, psycopg or sqlite3 exception: unique violations
become :class:`DuplicateName` (with a message naming what is taken), unreachable databases
:class:`Unavailable`, everything else a generic :class:`VintnerError`.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from vintner.errors import DuplicateName, InvalidInput, Unavailable, VintnerError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

# Constraint (PostgreSQL name, or SQLite "table.columns" from its message) → message.
_DUPLICATE_MESSAGES = {
    "uq_vineyards_name": "A vineyard with this name already exists",
    "vineyards.name": "A vineyard with this name already exists",
    "uq_vine_databases_vine_id_name": "A database with this name already exists in this vine",
    "vine_databases.vine_id, vine_databases.name": (
        "A database with this name already exists in this vine"
    ),
    "uq_vine_caches_vine_id_name": "A cache with this name already exists in this vine",
    "vine_caches.vine_id, vine_caches.name": "A cache with this name already exists in this vine",
    "uq_vine_cluster_vine_id": "This vine already has a cluster",
    "vine_cluster.vine_id": "This vine already has a cluster",
    "uq_vine_network_vine_id": "This vine already has a network",
    "vine_network.vine_id": "This vine already has a network",
}

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a wrapped driver error (None on SQLite)."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None)


def is_retryable(exc: BaseException) -> bool:
    return sqlstate(exc) in RETRYABLE_SQLSTATES


def _unique_key(exc: sa_exc.IntegrityError) -> str | None:
    """Which unique constraint was violated, or None if it was not a unique violation."""
    state = sqlstate(exc)
    if state is not None:
        if state != "23505":
            return None
        diag = getattr(exc.orig, "diag", None)
        return getattr(diag, "constraint_name", None) or ""
    match = _SQLITE_UNIQUE.search(str(exc.orig))
    return match.group(1).strip() if match else None


def _is_connection_error(exc: sa_exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return False
    state = sqlstate(exc)
    # No SQLSTATE: the connection could not even be made (psycopg) or SQLite could not open or
    # lock the file. Class 08 = connection exception, 53 = insufficient resources,
    # 57P0x = server shutting down / cannot connect now.
    return state is None or state.startswith(("08", "53", "57P"))


def translate(exc: sa_exc.SQLAlchemyError) -> Exception:
    """The project error for a SQLAlchemy error (raise it ``from exc``).

    A value our own column types refused before anything reached the driver (a naive datetime,
    a wrong type) is a caller's bug, not a database problem: its ValueError/TypeError is
    returned as it is."""
    if (
        isinstance(exc, sa_exc.StatementError)
        and not isinstance(exc, sa_exc.DBAPIError)
        and isinstance(exc.orig, ValueError | TypeError)
    ):
        return exc.orig
    if isinstance(exc, sa_exc.IntegrityError):
        key = _unique_key(exc)
        if key is not None:
            message = _DUPLICATE_MESSAGES.get(key)
            if message is None:
                message = "A record with this identifier already exists"
            return DuplicateName(message)
        text = str(exc.orig).lower()
        if sqlstate(exc) == "23503" or "foreign key" in text:
            return InvalidInput("The record refers to another record that does not exist")
        return InvalidInput("The record breaks a database constraint")
    if isinstance(exc, sa_exc.DataError):
        # e.g. a NUL character in text or JSON on PostgreSQL, a number out of range
        return InvalidInput("A value cannot be stored by the database (e.g. a NUL character)")
    if isinstance(exc, sa_exc.DBAPIError):
        if _is_connection_error(exc):
            return Unavailable("The database cannot be reached")
        if is_retryable(exc):
            return Unavailable("The database is too busy; try again")
        return VintnerError("Database error")
    return VintnerError("Database error")


def with_retries(fn: Callable[[], T], *, attempts: int = 5, base_delay: float = 0.01) -> T:
    """Run ``fn`` (one whole transaction or one savepoint-wrapped statement), retrying on
    serialization failures and deadlocks with jittered backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except sa_exc.DBAPIError as exc:
            if not is_retryable(exc) or attempt == attempts:
                raise
            log.debug("retrying after %s (attempt %d)", sqlstate(exc), attempt)
            time.sleep(base_delay * (2 ** (attempt - 1)) * (0.5 + random.random()))
    raise AssertionError("unreachable")
