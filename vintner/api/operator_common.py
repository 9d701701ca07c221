"""Shared bits of the operator blueprints."""

from __future__ import annotations

#: OpenAPI security requirement of every operator endpoint
OPERATOR_SECURITY = [{"operator": []}]
