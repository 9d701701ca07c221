"""The plugin passes vintner's own artifact-store contract suite."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pytest
from vintner_memstore import MemStore

from vintner.registry import load_artifact_store
from vintner.testing.artifact_contract import ArtifactStoreContract


class TestMemStoreContract(ArtifactStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[MemStore]:
        namespace = f"test-{uuid.uuid4().hex}"
        # Built through vintner's registry: proves the entry point is installed and resolves.
        store = load_artifact_store(f"memstore://{namespace}", {"chunk_size": "65536"})
        assert isinstance(store, MemStore)
        yield store
        MemStore.forget(namespace)


def test_same_namespace_shares_objects() -> None:
    a = MemStore("shared-test")
    b = MemStore("shared-test")
    a.put("k", io.BytesIO(b"x"))
    assert b.get_bytes("k") == b"x"
    MemStore.forget("shared-test")
