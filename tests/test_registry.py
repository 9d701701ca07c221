"""The registry finds backends through entry points, built-ins included."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from vintner import registry
from vintner.errors import ConfigError
from vintner.registry import (
    database_scheme,
    known_artifact_store_schemes,
    known_repository_schemes,
    load_artifact_store,
    load_repository,
)


def test_builtin_schemes_are_registered_entry_points() -> None:
    assert {"file", "s3", "supabase"} <= set(known_artifact_store_schemes())
    assert {"sqlite", "postgresql"} <= set(known_repository_schemes())


@pytest.mark.parametrize("scheme", ["file", "s3", "supabase"])
def test_builtin_store_entry_points_resolve(scheme: str) -> None:
    cls = registry.artifact_store_class(scheme)
    assert cls.scheme == scheme


def test_file_store_from_uri(tmp_path: Path) -> None:
    store = load_artifact_store(f"FILE://{tmp_path}", {})
    assert type(store).__name__ == "LocalArtifactStore"


def test_unknown_store_scheme_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_artifact_store("ftp://host/x", {})
    assert "'ftp'" in str(info.value)
    for scheme in ("file", "s3", "supabase"):
        assert scheme in str(info.value)


def test_unknown_store_option_lists_accepted_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown option\(s\).*colour.*accepted: none"):
        load_artifact_store(f"file://{tmp_path}", {"colour": "blue"})


def test_uri_without_scheme() -> None:
    with pytest.raises(ConfigError):
        load_artifact_store("/just/a/path", {})


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("postgresql+psycopg://u:p@h/db", "postgresql"),
        ("postgresql://h/db", "postgresql"),
        ("sqlite:///x.db", "sqlite"),
        ("sqlite+pysqlite:///:memory:", "sqlite"),
    ],
)
def test_database_scheme(url: str, scheme: str) -> None:
    assert database_scheme(url) == scheme


def test_unknown_repository_scheme_hides_password() -> None:
    with pytest.raises(ConfigError) as info:
        load_repository("mysql://root:hunter2@db/x", {})
    assert "sqlite" in str(info.value) and "postgresql" in str(info.value)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_repository("no scheme root:hunter2@", {})
    assert "hunter2" not in str(info.value)


class _FakeRepository:
    @classmethod
    def from_url(cls, url: str, options: dict) -> tuple[str, dict]:
        return url, options


def test_load_repository_calls_from_url(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="fakedb", value=f"{__name__}:_FakeRepository", group="x")
    real = registry._entry_points
    monkeypatch.setattr(
        registry,
        "_entry_points",
        lambda group: {**real(group), "fakedb": ep} if group == registry.REPOSITORY_GROUP
        else real(group),
    )
    assert load_repository("fakedb+driver://h/db", {"echo": True}) == (
        "fakedb+driver://h/db",
        {"echo": True},
    )


def test_broken_plugin_import_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="broken", value="no_such_module_xyz:Store", group="x")
    monkeypatch.setattr(registry, "_entry_points", lambda group: {"broken": ep})
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_artifact_store("broken://x", {})
