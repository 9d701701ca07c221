"""Find backends by URI / URL scheme through entry points.

Two entry-point groups make the storage layer pluggable:

* ``vintner.artifact_stores`` — name = the artifact-store URI scheme (``file``, ``s3``,
  ``supabase``, or a plugin's own), value = an :class:`~vintner.ports.artifacts.ArtifactStore`
  subclass with ``from_uri(uri, options)``.
* ``vintner.repositories`` — name = the database URL scheme without the driver
  (``postgresql+psycopg://`` → ``postgresql``), value = a class with ``from_url(url, options)``.

The built-in backends are registered in vintner's own ``pyproject.toml`` through the same
groups, so they are found exactly like a third-party plugin (MLflow's artifact-repository
registry works the same way). Nothing is imported until a scheme is actually selected, so a
missing optional dependency (boto3, supabase) only matters to the installs that use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from vintner.errors import ConfigError
from vintner.ports.artifacts import ArtifactStore

ARTIFACT_STORE_GROUP = "vintner.artifact_stores"
REPOSITORY_GROUP = "vintner.repositories"

# RFC 3986 scheme: a letter, then letters, digits, "+", "-", ".".
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def _entry_points(group: str) -> dict[str, EntryPoint]:
    # Read on every call (cheap): a plugin installed after import is still found, and tests
    # that pip-install a plugin mid-session see it without reloading this module.
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)  # first on sys.path wins, like imports do
    return found


def known_artifact_store_schemes() -> list[str]:
    """Sorted URI schemes of every installed artifact store (built-ins included)."""
    return sorted(_entry_points(ARTIFACT_STORE_GROUP))


def known_repository_schemes() -> list[str]:
    """Sorted database URL schemes of every installed repository backend."""
    return sorted(_entry_points(REPOSITORY_GROUP))


def uri_scheme(uri: str) -> str:
    """``s3://bucket/x`` → ``s3``. Lower-cased; raises ConfigError without a scheme."""
    match = _SCHEME.match(uri or "")
    if not match:
        # The value is not echoed: a malformed database URL may still hold a password.
        raise ConfigError("Not a URI with a scheme (expected scheme://...)")
    return match.group(1).lower()


def database_scheme(url: str) -> str:
    """``postgresql+psycopg://…`` → ``postgresql``; ``sqlite:///x.db`` → ``sqlite``."""
    return uri_scheme(url).split("+", 1)[0]


def _load(group: str, scheme: str, what: str) -> Any:
    eps = _entry_points(group)
    ep = eps.get(scheme)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none installed"
        raise ConfigError(f"Unknown {what} scheme {scheme!r}; known schemes: {known}")
    try:
        return ep.load()
    except ImportError as exc:
        # Typically the optional extra is missing (pip install 'vintner[s3]').
        raise ConfigError(
            f"The {what} backend for {scheme!r} ({ep.value}) cannot be imported: {exc}"
        ) from exc


def artifact_store_class(scheme: str) -> type[ArtifactStore]:
    """The store class registered for ``scheme`` (ConfigError if none)."""
    cls = _load(ARTIFACT_STORE_GROUP, scheme.lower(), "artifact store")
    if not (isinstance(cls, type) and issubclass(cls, ArtifactStore)):
        raise ConfigError(f"Artifact store entry point {scheme!r} is not an ArtifactStore")
    return cls


def load_artifact_store(uri: str, options: Mapping[str, str] | None = None) -> ArtifactStore:
    """Build the artifact store for ``uri``.

    Unknown scheme → :class:`ConfigError` listing the known schemes; an option the store does
    not declare in ``options`` → :class:`ConfigError` listing the ones it accepts (rejected here,
    at start-up, rather than silently ignored: a typo in ``endpoint_url`` must not send
    artifacts to AWS).
    """
    options = dict(options or {})
    scheme = uri_scheme(uri)
    cls = artifact_store_class(scheme)
    unknown = sorted(set(options) - set(cls.options))
    if unknown:
        accepted = ", ".join(sorted(cls.options)) or "none"
        raise ConfigError(
            f"Unknown option(s) for the {scheme!r} artifact store: {', '.join(unknown)}; "
            f"accepted: {accepted}"
        )
    store = cls.from_uri(uri, options)
    if not isinstance(store, ArtifactStore):
        raise ConfigError(f"{cls.__name__}.from_uri did not return an ArtifactStore")
    return store


def load_repository(url: str, options: Mapping[str, object] | None = None) -> Any:
    """Build the repository for the database ``url`` via its class's ``from_url(url, options)``.

    The repository interface lives with the domain; this module only dispatches, so it does not
    import it (and the registry stays importable without SQLAlchemy).
    """
    scheme = database_scheme(url)
    cls = _load(REPOSITORY_GROUP, scheme, "repository")
    from_url = getattr(cls, "from_url", None)
    if from_url is None:
        raise ConfigError(f"Repository entry point {scheme!r} has no from_url()")
    return from_url(url, dict(options or {}))

