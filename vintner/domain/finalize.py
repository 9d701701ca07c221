"""finalizeDeployment() (domain.md): Terraform outputs of a successful DEPLOY → vine components.

Outputs live in ``execution_metadata["outputs"]``; each output is a plain value or the
``terraform output -json`` shape ``{"value": ..., "type": ..., "sensitive": ...}``.

The function is all-or-nothing: it first computes every change, and only when every output it
needs is present and well-typed does it write them into the vine. Otherwise it raises
:class:`FinalizeError` naming the output, and the caller marks the vine FAILED (the job stays
SUCCESS: the apply did happen).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from vintner.domain.model import ComponentStatus, JsonObject, Vine, VineStatus


class FinalizeError(Exception):
    """Outputs cannot be applied; the message names the missing or malformed output."""


_MISSING = object()

# output name without prefix → column of vine_databases
DATABASE_OUTPUTS = {
    "cluster_endpoint": "endpoint",
    "cluster_reader_endpoint": "reader_endpoint",
    "cluster_identifier": "cluster_identifier",
    "cluster_arn": "cluster_arn",
    "master_credentials_secret_arn": "master_credentials_secret_arn",
    "extra_credentials_secret_arn": "extra_credentials_secret_arn",
    "credentials_kms_key_arn": "credentials_kms_key_arn",
}
DATABASE_REQUIRED = "cluster_endpoint"
CACHE_OUTPUTS = {
    "primary_endpoint_address": "endpoint",
    "reader_endpoint_address": "reader_endpoint",
}
CACHE_REQUIRED = "primary_endpoint_address"
CLUSTER_FIELDS = ("cluster_name", "cluster_endpoint", "argocd_url", "argocd_admin_password")
CLUSTER_ALIASES = {"cluster_name": "eks_cluster_name", "cluster_endpoint": "eks_cluster_endpoint"}


def unwrap(value: Any) -> Any:
    """``{"value": v, "type": ..., "sensitive": ...}`` → ``v``; a plain value as it is."""
    if isinstance(value, Mapping) and "value" in value and set(value) <= {
        "value", "type", "sensitive",
    }:
        return value["value"]
    return value


def _text(name: str, value: Any) -> str | None:
    """A column value from an output: strings as they are, numbers as text, null as missing."""
    value = unwrap(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FinalizeError(
            f"Terraform output {name} has the wrong type: expected a string, "
            f"got {type(value).__name__}"
        )
    return str(value)


def _row_changes(
    rows_label: str,
    row_names: list[str],
    outputs: Mapping[str, Any],
    prefix: str,
    mapping: Mapping[str, str],
    required: str,
) -> dict[str, dict[str, str | None]]:
    """Per row name, the columns to set. Multi-row map output first, else single-value outputs."""
    if not row_names:
        return {}
    per_row = outputs.get(rows_label, _MISSING)
    if per_row is not _MISSING and unwrap(per_row) is not None:
        per_row = unwrap(per_row)
        if not isinstance(per_row, Mapping):
            raise FinalizeError(
                f"Terraform output {rows_label} has the wrong type: expected an object keyed by "
                f"{rows_label[:-1]} name"
            )
        changes: dict[str, dict[str, str | None]] = {}
        for row in row_names:
            entry = per_row.get(row)
            if not isinstance(entry, Mapping):
                raise FinalizeError(f"Terraform output {rows_label}.{row} is missing")
            entry = {key: unwrap(val) for key, val in entry.items()}
            # accept the prefixed output names and the column names as well
            cols: dict[str, str | None] = {}
            for out_name, column in mapping.items():
                for candidate in (out_name, prefix + out_name, column):
                    if candidate in entry:
                        cols[column] = _text(f"{rows_label}.{row}.{candidate}", entry[candidate])
                        break
            if cols.get(mapping[required]) is None:
                raise FinalizeError(f"Terraform output {rows_label}.{row}.{required} is missing")
            changes[row] = cols
        return changes
    if len(row_names) > 1:
        raise FinalizeError(
            f"Terraform output {rows_label} is missing (needed for a vine with "
            f"{len(row_names)} {rows_label})"
        )
    cols = {}
    for out_name, column in mapping.items():
        if prefix + out_name in outputs:
            cols[column] = _text(prefix + out_name, outputs[prefix + out_name])
    if cols.get(mapping[required]) is None:
        raise FinalizeError(f"Terraform output {prefix}{required} is missing")
    return {row_names[0]: cols}


def _cluster_changes(metadata: JsonObject, outputs: Mapping[str, Any]) -> dict[str, str | None]:
    cols: dict[str, str | None] = {}
    for column in CLUSTER_FIELDS:
        for source, name in (
            (metadata, column),
            (outputs, column),
            (outputs, CLUSTER_ALIASES.get(column, "")),
        ):
            if name and name in source and unwrap(source[name]) is not None:
                cols[column] = _text(name, source[name])
                break
    if "eks_cluster_arn" in outputs and unwrap(outputs["eks_cluster_arn"]) is not None:
        cols["cluster_arn"] = _text("eks_cluster_arn", outputs["eks_cluster_arn"])
    return cols


def finalize_deployment(vine: Vine, execution_metadata: JsonObject, now: datetime) -> None:
    """Apply a DEPLOY's outputs to ``vine`` in place, then mark it ACTIVE.

    Raises :class:`FinalizeError` (and changes nothing) when the outputs cannot be applied.
    """
    metadata = execution_metadata or {}
    outputs = metadata.get("outputs") or {}
    if not isinstance(outputs, Mapping):
        raise FinalizeError("execution_metadata.outputs must be an object")

    cluster_cols = _cluster_changes(metadata, outputs)
    db_changes = _row_changes(
        "databases", [d.name for d in vine.databases], outputs, "rds_", DATABASE_OUTPUTS,
        DATABASE_REQUIRED,
    )
    cache_changes = _row_changes(
        "caches", [c.name for c in vine.caches], outputs, "redis_", CACHE_OUTPUTS, CACHE_REQUIRED
    )

    # every check passed: write
    def apply(row: Any, cols: Mapping[str, Any], set_status: Callable[[Any], None]) -> None:
        for column, value in cols.items():
            setattr(row, column, value)
        set_status(row)
        row.updated_at = now

    def activate(row: Any) -> None:
        row.status = ComponentStatus.ACTIVE
        row.status_message = None

    if vine.cluster is not None:
        apply(vine.cluster, cluster_cols, activate)
    for db in vine.databases:
        apply(db, db_changes[db.name], activate)
    for cache in vine.caches:
        apply(cache, cache_changes[cache.name], activate)
    vine.status = VineStatus.ACTIVE
    vine.status_message = None
    vine.updated_at = now
