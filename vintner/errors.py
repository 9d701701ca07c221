"""The project's own errors.

Every layer raises these; the HTTP layer maps each class to one status code and the JSON error
shape of worker-api.md (``{"error": ..., "code": ...}``). Backends translate their driver's errors
(IntegrityError, botocore ClientError, storage3 StorageException, ...) into these at their edge,
so nothing above a backend ever sees a driver exception.
"""

from __future__ import annotations


class VintnerError(Exception):
    """Base class. ``message`` is one human sentence, safe to show to a client."""

    status: int = 500

    def __init__(self, message: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class InvalidInput(VintnerError):
    """The request is malformed or breaks a validation rule (400)."""

    status = 400


class Unauthorized(VintnerError):
    """Missing or wrong credentials (401)."""

    status = 401


class NotFound(VintnerError):
    """The thing does not exist, or the caller may not know it exists (404)."""

    status = 404


class Conflict(VintnerError):
    """The request is valid but the current state refuses it (409)."""

    status = 409


class TooLarge(VintnerError):
    """A body, field or artifact exceeds its limit (413)."""

    status = 413


class Unavailable(VintnerError):
    """A backing service (database, artifact store) cannot be reached (503)."""

    status = 503


class ConfigError(VintnerError):
    """An unknown or malformed setting; stops start-up."""


class ArtifactNotFound(NotFound):
    """No object at that key (the store's FileNotFoundError)."""


class InvalidKey(InvalidInput):
    """An artifact key that could escape its namespace (``..``, absolute path, NUL, ...)."""


class StoreUnavailable(Unavailable):
    """The artifact store failed or cannot be reached."""


class DuplicateName(Conflict):
    """A unique name (vineyard name, database name in a vine, ...) is already taken."""
