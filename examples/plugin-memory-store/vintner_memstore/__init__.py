"""Example Vintner artifact-store plugin (``memstore://``)."""

from vintner_memstore.store import MemStore

__all__ = ["MemStore"]
