"""marshmallow fields with the project's input rules (no NUL characters, strict types)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields


def _storable(value: str) -> bool:
    """False for a string with a lone surrogate (``"\\ud800"`` in JSON): no database and no
    UTF-8 encoder can store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


UNSTORABLE = "Must not contain unpaired surrogate characters"


class Text(fields.String):
    """A string without NUL characters (PostgreSQL cannot store them) and with a length cap."""

    def __init__(self, *, max_length: int | None = None, min_length: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        if "\x00" in value:
            raise ValidationError("Must not contain NUL characters.")
        if not _storable(value):
            raise ValidationError(f"{UNSTORABLE}.")
        if len(value) < self.min_length:
            raise ValidationError(
                "Must not be empty." if self.min_length == 1
                else f"Must be at least {self.min_length} characters."
            )
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(f"Must be at most {self.max_length} characters.")
        return value


class StrictInt(fields.Integer):
    """An integer that is really a JSON integer (not a string, float or boolean)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Not a valid integer.")
        return value


#: the largest integer a query parameter may carry (a database BIGINT holds it)
QUERY_INT_CAP = 2**62


class QueryInt(fields.Integer):
    """An integer query parameter with bounds (never above :data:`QUERY_INT_CAP`)."""

    def __init__(self, *, minimum: int, maximum: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        number = super()._deserialize(value, attr, data, **kwargs)
        if number > QUERY_INT_CAP and self.maximum is None:
            raise ValidationError(f"Must be at most {QUERY_INT_CAP}.")
        if number < self.minimum or (self.maximum is not None and number > self.maximum):
            bound = f"between {self.minimum} and {self.maximum}" if self.maximum is not None \
                else f"at least {self.minimum}"
            raise ValidationError(f"Must be {bound}.")
        return number


def no_nul_anywhere(value: Any, path: str = "") -> None:
    """Reject NUL characters in any key or string nested in a JSON value."""
    if isinstance(value, str):
        where = f" at {path}" if path else ""
        if "\x00" in value:
            raise ValidationError(f"Must not contain NUL characters{where}.")
        if not _storable(value):
            raise ValidationError(f"{UNSTORABLE}{where}.")
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul_anywhere(key, path)
            no_nul_anywhere(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            no_nul_anywhere(item, f"{path}[{index}]")


class JsonObjectField(fields.Dict):
    """A JSON object (dict) whose nested strings hold no NUL characters."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict:
        if not isinstance(value, dict):
            raise ValidationError("Not a valid JSON object.")
        no_nul_anywhere(value)
        return dict(value)
