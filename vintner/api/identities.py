"""Operator API: cloud identities (``/api/cloud-identities``)."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from vintner.api import serializers
from vintner.api.auth import operator_required
from vintner.api.blueprint import Blueprint
from vintner.api.ids import parse_id
from vintner.api.operator_common import OPERATOR_SECURITY
from vintner.api.operator_schemas import CloudIdentityCreateSchema
from vintner.api.schemas import PageQuerySchema
from vintner.domain import identities
from vintner.domain.model import Provider, utcnow
from vintner.ports.repository import Page
from vintner.services import services

blp = Blueprint("cloud_identities", __name__, url_prefix="/api/cloud-identities",
                description="Cloud identities workers assume to run Terraform (operator).")


@blp.route("", methods=["POST"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(CloudIdentityCreateSchema)
def create_identity(body: dict[str, Any]) -> ResponseReturnValue:
    """Create a cloud identity; for AWS the server generates ``external_id`` and derives
    ``account_id`` from the role ARN."""
    identity = identities.create(
        services().repository, provider=Provider(body["provider"]), name=body["name"],
        credentials=body["credentials"], now=utcnow(),
    )
    return serializers.cloud_identity(identity), 201


@blp.route("", methods=["GET"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(PageQuerySchema, location="query")
def list_identities(query: dict[str, Any]) -> ResponseReturnValue:
    """Cloud identities, oldest first."""
    page = Page(limit=query["limit"], offset=query["offset"])
    with services().repository.transaction(readonly=True) as tx:
        items, total = tx.list_cloud_identities(page)
    return serializers.listing("cloud_identities", [serializers.cloud_identity(i) for i in items],
                               total, page.limit, page.offset)


@blp.route("/<identity_id>", methods=["GET"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
def get_identity(identity_id: str) -> ResponseReturnValue:
    """One cloud identity."""
    identity = identities.get(services().repository, parse_id(identity_id, "Cloud identity"))
    return serializers.cloud_identity(identity)
