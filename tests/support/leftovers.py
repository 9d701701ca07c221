"""Backend debris a rejected or interrupted upload must not leave behind, per built-in store.

Used by the contract suite's ``leftovers`` hooks (tests/contract) and by the HTTP-level store
tests (tests/api/test_artifact_stores_http.py), so both check the same thing.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.storage_server import StorageServer
from vintner.ports.artifacts import ArtifactStore


def local_leftovers(store: ArtifactStore) -> list[str]:
    """Temp files (``.tmp-*``) anywhere below the file store's root."""
    root: Path = store.root  # type: ignore[attr-defined]
    return sorted(str(p) for p in root.rglob(".tmp-*")) if root.exists() else []


def s3_leftovers(store: ArtifactStore) -> list[str]:
    """Incomplete multipart uploads in the S3 store's bucket."""
    client = store._client  # type: ignore[attr-defined]
    uploads = client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])  # type: ignore[attr-defined]
    return sorted(u["Key"] for u in uploads)


def supabase_leftovers(server: StorageServer, store: ArtifactStore) -> list[str]:
    """Part objects below the Supabase store's prefix that no manifest references."""
    prefix = store.prefix + "/"  # type: ignore[attr-defined]
    names = [n for n in server.names() if n.startswith(prefix)]
    parts = {n for n in names if "/.vintner-parts/" in n}
    referenced: set[str] = set()
    for manifest_name in set(names) - parts:
        key = manifest_name[len(prefix) :]
        manifest = json.loads(store._files.download(manifest_name))  # type: ignore[attr-defined]
        referenced.update(store._part_paths(key, manifest))  # type: ignore[attr-defined]
    return sorted(parts - referenced)
