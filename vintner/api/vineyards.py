"""Operator API: vineyards (``/api/vineyards``)."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from vintner.api import serializers
from vintner.api.auth import operator_required
from vintner.api.blueprint import Blueprint
from vintner.api.ids import parse_id
from vintner.api.operator_common import OPERATOR_SECURITY
from vintner.api.operator_schemas import VineyardCreateSchema
from vintner.api.schemas import PageQuerySchema
from vintner.domain import vines
from vintner.domain.model import utcnow
from vintner.ports.repository import Page
from vintner.services import services

blp = Blueprint("vineyards", __name__, url_prefix="/api/vineyards",
                description="Vineyards: named groups of vines (operator).")


@blp.route("", methods=["POST"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(VineyardCreateSchema)
def create_vineyard(body: dict[str, Any]) -> ResponseReturnValue:
    """Create a vineyard; a name already taken is 409."""
    vineyard = vines.create_vineyard(services().repository, name=body["name"],
                                     description=body["description"], now=utcnow())
    return serializers.vineyard(vineyard), 201


@blp.route("", methods=["GET"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(PageQuerySchema, location="query")
def list_vineyards(query: dict[str, Any]) -> ResponseReturnValue:
    """Vineyards."""
    page = Page(limit=query["limit"], offset=query["offset"])
    with services().repository.transaction(readonly=True) as tx:
        items, total = tx.list_vineyards(page)
    return serializers.listing("vineyards", [serializers.vineyard(v) for v in items], total,
                               page.limit, page.offset)


@blp.route("/<vineyard_id>", methods=["GET"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
def get_vineyard(vineyard_id: str) -> ResponseReturnValue:
    """One vineyard."""
    return serializers.vineyard(
        vines.get_vineyard(services().repository, parse_id(vineyard_id, "Vineyard")))
