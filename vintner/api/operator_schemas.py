"""Request schemas of the operator API (cloud identities, vineyards, vines, the job queue).

Unknown fields are ignored, as everywhere in the API: a client may send back the document it
got from ``GET /api/vines/{id}`` (with ids, status and the columns finalize filled) as a PATCH.
Types are strict: a JSON string is not an integer, ``true`` is not a number.

The vine document schemas are shared with ``vintner vines create FILE`` so the CLI and the API
accept exactly the same documents.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from vintner.api.fields import JsonObjectField, StrictInt, Text
from vintner.api.schemas import BaseSchema, PageQuerySchema
from vintner.domain.model import EnvironmentStage, JobStatus, JobType, Provider

NAME_MAX = 100
SHORT_MAX = 255


def one_of(values: list[str]) -> validate.OneOf:
    """An enum check whose message names the allowed values."""
    return validate.OneOf(values, error="Must be one of: {choices}.")


class StrictNumber(fields.Float):
    """A finite JSON number (integer or float), not a string and not a boolean."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("Not a valid number.")
        if not math.isfinite(value):
            raise ValidationError("Must be a finite number.")
        return float(value)  # as the database returns it, so responses and snapshots agree


class StrictBool(fields.Boolean):
    """A JSON boolean (``true``/``false``), not ``"yes"`` or ``1``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value


class StrictList(fields.List):
    """A JSON array (marshmallow's List also accepts tuples and sets from Python callers)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        return super()._deserialize(value, attr, data, **kwargs)


class ObjectNested(fields.Nested):
    """A nested schema whose input must be a JSON object (the error names the field itself,
    not ``<field>._schema``)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError("Not a valid JSON object.")
        return super()._deserialize(value, attr, data, **kwargs)


def _cidr(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValidationError("Not a valid CIDR block (e.g. 10.0.0.0/16).") from None


# -- cloud identities, vineyards -------------------------------------------------------------


class CloudIdentityCreateSchema(BaseSchema):
    provider = Text(required=True, validate=one_of([p.value for p in Provider]))
    name = Text(required=True, min_length=1, max_length=NAME_MAX)
    #: checked per provider by the domain (vintner.domain.identities)
    credentials = JsonObjectField(required=True)


class VineyardCreateSchema(BaseSchema):
    name = Text(required=True, min_length=1, max_length=NAME_MAX)
    description = Text(allow_none=True, load_default=None, max_length=2000)


# -- the vine document -----------------------------------------------------------------------


class TerraformSchema(BaseSchema):
    module = Text(required=True, min_length=1, max_length=SHORT_MAX)
    variables = JsonObjectField(load_default=dict)


class ClusterSchema(BaseSchema):
    cluster_version = Text(allow_none=True, max_length=32)
    instance_types = StrictList(Text(min_length=1, max_length=64), allow_none=True,
                                validate=validate.Length(max=20))
    node_min_size = StrictInt(allow_none=True, validate=validate.Range(min=0, max=10000))
    node_max_size = StrictInt(allow_none=True, validate=validate.Range(min=0, max=10000))
    node_desired_size = StrictInt(allow_none=True, validate=validate.Range(min=0, max=10000))

    @validates_schema
    def _sizes_in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        low, high = data.get("node_min_size"), data.get("node_max_size")
        desired = data.get("node_desired_size")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must not be greater than node_max_size.", "node_min_size")
        if desired is not None:
            if low is not None and desired < low:
                raise ValidationError("Must not be less than node_min_size.",
                                      "node_desired_size")
            if high is not None and desired > high:
                raise ValidationError("Must not be greater than node_max_size.",
                                      "node_desired_size")


class DatabaseSchema(BaseSchema):
    name = Text(required=True, min_length=1, max_length=NAME_MAX)
    engine = Text(allow_none=True, max_length=64)
    engine_version = Text(allow_none=True, max_length=32)
    min_capacity = StrictNumber(allow_none=True, validate=validate.Range(min=0))
    max_capacity = StrictNumber(allow_none=True, validate=validate.Range(min=0))

    @validates_schema
    def _capacity_in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        low, high = data.get("min_capacity"), data.get("max_capacity")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must not be greater than max_capacity.", "min_capacity")


class CacheSchema(BaseSchema):
    name = Text(required=True, min_length=1, max_length=NAME_MAX)
    engine = Text(allow_none=True, validate=one_of(["redis", "valkey"]))
    node_type = Text(allow_none=True, max_length=64)
    num_cache_nodes = StrictInt(allow_none=True, validate=validate.Range(min=1, max=1000))


class NetworkSchema(BaseSchema):
    provision_network = StrictBool()
    network_id = Text(allow_none=True, max_length=SHORT_MAX)
    cidr_block = Text(allow_none=True, max_length=64, validate=_cidr)


class VineFieldsSchema(BaseSchema):
    """The fields a vine document may carry; absent fields are absent from the result."""

    cloud_identity_id = fields.UUID(allow_none=True)
    environment_stage = Text(validate=one_of([s.value for s in EnvironmentStage]))
    region = Text(min_length=1, max_length=64)
    terraform_version = Text(allow_none=True, max_length=32)
    terraform = ObjectNested(TerraformSchema)
    cluster = ObjectNested(ClusterSchema)
    databases = StrictList(ObjectNested(DatabaseSchema), validate=validate.Length(max=50))
    caches = StrictList(ObjectNested(CacheSchema), validate=validate.Length(max=50))
    network = ObjectNested(NetworkSchema, allow_none=True)


class VineCreateSchema(VineFieldsSchema):
    vineyard_id = fields.UUID(required=True)
    project_name = Text(required=True, min_length=1, max_length=NAME_MAX)


class VinePatchSchema(VineFieldsSchema):
    """PATCH: every field optional; components are matched by name (a listed database keeps its
    id, status and outputs), and a list given replaces the list."""

    vineyard_id = fields.UUID()  # may be sent back unchanged; moving a vine is refused
    project_name = Text(min_length=1, max_length=NAME_MAX)


class VineListQuerySchema(PageQuerySchema):
    vineyard_id = fields.UUID(load_default=None)


# -- the job queue -----------------------------------------------------------------------------


class EnqueueJobSchema(BaseSchema):
    job_type = Text(required=True, validate=one_of([t.value for t in JobType]))
    vine_id = fields.UUID(allow_none=True, load_default=None)
    cloud_identity_id = fields.UUID(allow_none=True, load_default=None)
    assigned_worker_id = fields.UUID(allow_none=True, load_default=None)
    plan_job_id = fields.UUID(allow_none=True, load_default=None)
    config_snapshot = JsonObjectField(allow_none=True, load_default=None)


class JobListQuerySchema(PageQuerySchema):
    status = Text(load_default=None, validate=one_of([s.value for s in JobStatus]))
    job_type = Text(load_default=None, validate=one_of([t.value for t in JobType]))
    vine_id = fields.UUID(load_default=None)
    vineyard_id = fields.UUID(load_default=None)
    worker_id = fields.UUID(load_default=None)
