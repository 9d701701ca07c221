"""Operator API: vines with their components as one document (``/api/vines``)."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from vintner.api import serializers
from vintner.api.auth import operator_required
from vintner.api.blueprint import Blueprint
from vintner.api.ids import parse_id
from vintner.api.operator_common import OPERATOR_SECURITY
from vintner.api.operator_schemas import VineCreateSchema, VineListQuerySchema, VinePatchSchema
from vintner.domain import vines
from vintner.domain.model import utcnow
from vintner.ports.repository import Page
from vintner.services import services

blp = Blueprint("vines", __name__, url_prefix="/api/vines",
                description="Vines: infrastructure documents with their components (operator).")


@blp.route("", methods=["POST"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(VineCreateSchema)
def create_vine(body: dict[str, Any]) -> ResponseReturnValue:
    """Create a DRAFT vine from a document (components included)."""
    vine = vines.create_vine(services().repository, body, utcnow())
    return serializers.vine(vine), 201


@blp.route("", methods=["GET"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(VineListQuerySchema, location="query")
def list_vines(query: dict[str, Any]) -> ResponseReturnValue:
    """Vines, optionally of one vineyard (``?vineyard_id=``)."""
    page = Page(limit=query["limit"], offset=query["offset"])
    with services().repository.transaction(readonly=True) as tx:
        items, total = tx.list_vines(page, vineyard_id=query["vineyard_id"])
    return serializers.listing("vines", [serializers.vine(v) for v in items], total,
                               page.limit, page.offset)


@blp.route("/<vine_id>", methods=["GET"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
def get_vine(vine_id: str) -> ResponseReturnValue:
    """The vine document: configuration, status, and the columns finalize filled."""
    return serializers.vine(vines.get_vine(services().repository, parse_id(vine_id, "Vine")))


@blp.route("/<vine_id>", methods=["PATCH"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(VinePatchSchema)
def patch_vine(body: dict[str, Any], vine_id: str) -> ResponseReturnValue:
    """Change the given fields. Components are matched by name; a list sent replaces the list.
    Jobs already enqueued keep their snapshot."""
    vine = vines.update_vine(services().repository, parse_id(vine_id, "Vine"), body, utcnow())
    return serializers.vine(vine)
