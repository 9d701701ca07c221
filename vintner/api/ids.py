"""Path ids: any text routes to the view, which answers 404 "<thing> not found" for a non-UUID
(after authentication, so an unauthenticated caller always gets 401 first)."""

from __future__ import annotations

import uuid

from vintner.errors import NotFound


def parse_id(raw: str, thing: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{thing} not found") from None
