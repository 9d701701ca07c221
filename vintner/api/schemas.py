"""Request schemas of the worker API (unknown fields are ignored: forward compatibility)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from vintner.api.fields import JsonObjectField, QueryInt, StrictInt, Text


class BaseSchema(Schema):
    class Meta:
        unknown = EXCLUDE


class RegisterWorkerSchema(BaseSchema):
    name = Text(required=True, min_length=1, max_length=100)
    mode = Text(required=True, validate=validate.OneOf(["self-hosted", "cloud-hosted"]))
    cloud_identity_id = fields.UUID(allow_none=True, load_default=None)
    metadata = JsonObjectField(load_default=dict)


class HeartbeatSchema(BaseSchema):
    version = Text(max_length=64, allow_none=True, load_default=None)
    status = Text(validate=validate.OneOf(["ONLINE", "DRAINING"]), allow_none=True,
                  load_default=None)
    # left out of the result when absent: only a heartbeat that reports it releases claims
    current_job_id = fields.UUID(allow_none=True)


class JobStatusSchema(BaseSchema):
    # the value itself is checked by the state machine (400 names the allowed statuses)
    status = fields.Raw(required=True)
    error_message = Text(allow_none=True, load_default=None)
    execution_metadata = JsonObjectField(allow_none=True, load_default=None)


class LogChunkSchema(BaseSchema):
    log_chunk = Text(required=True, min_length=1)
    stream_type = Text(load_default="STDOUT",
                       validate=validate.OneOf(["STDOUT", "STDERR", "SYSTEM"]))
    seq = StrictInt(allow_none=True, load_default=None, validate=validate.Range(min=0,
                    max=2**62))


class LogQuerySchema(BaseSchema):
    after = QueryInt(minimum=0, load_default=0)
    limit = QueryInt(minimum=1, maximum=5000, load_default=1000)


class LogStreamQuerySchema(BaseSchema):
    after = QueryInt(minimum=0, load_default=0)


class PageQuerySchema(BaseSchema):
    limit = QueryInt(minimum=1, maximum=100, load_default=20)
    offset = QueryInt(minimum=0, load_default=0)
