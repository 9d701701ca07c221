"""The interfaces backends implement: the plugin contract."""

from vintner.ports.artifacts import ArtifactReader, ArtifactStore, StoredArtifact, validate_key
from vintner.ports.repository import ANY, JobFilter, Page, Repository, Transaction

__all__ = [
    "ANY",
    "ArtifactReader",
    "ArtifactStore",
    "JobFilter",
    "Page",
    "Repository",
    "StoredArtifact",
    "Transaction",
    "validate_key",
]
