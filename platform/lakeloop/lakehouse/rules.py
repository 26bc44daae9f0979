"""A column's contract as plain-Python checks, with the lakehouse's own messages.

The lakehouse checks every row of a snapshot in Spark (``lakeloop.lakehouse.contracts``); the
serving graph checks every value a request carries here. Both say the same thing in the same words
(these functions make the messages), so a value the lakehouse would quarantine is a value the
endpoint refuses: no skew between training and serving in what counts as valid.

A contract travels to the serving components as JSON (``Column.model_dump()``); this module
needs nothing beyond the standard library, as the serving image has no pydantic.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

INT_LIMIT = 2**53 - 1


def not_valid(name: str, type_: str) -> str:
    return f"{name}: not a valid {type_}"


def not_whole(name: str) -> str:
    return f"{name}: not a whole number"


def null_in_required(name: str) -> str:
    return f"{name}: null in a non-nullable column"


def below_minimum(name: str, minimum: float) -> str:
    return f"{name}: below the minimum {minimum:g}"


def above_maximum(name: str, maximum: float) -> str:
    return f"{name}: above the maximum {maximum:g}"


def not_allowed(name: str, allowed) -> str:
    return f"{name}: not one of the allowed values ({', '.join(str(v) for v in allowed)})"


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An ISO-8601 time as naive UTC (an offset is applied; no offset means UTC)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def typed(spec: dict, value: Any) -> tuple[Any, str | None]:
    """The value as the contract's type, or the reason it is not one. JSON numbers are
    numbers, JSON strings text: a request says what it means."""
    type_ = spec["type"]
    if type_ == "string":
        return (value, None) if isinstance(value, str) else (None, "type")
    if type_ == "boolean":
        return (value, None) if isinstance(value, bool) else (None, "type")
    if type_ in ("int", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "type"
        if not math.isfinite(value):
            return None, "type"
        if type_ == "int":
            if float(value) != math.floor(value) or abs(value) > INT_LIMIT:
                return None, "whole"
            return int(value), None
        return float(value), None
    if type_ == "timestamp":
        parsed = parse_timestamp(value)
        return (parsed, None) if parsed is not None else (None, "type")
    if type_ == "date":
        try:
            return dt.date.fromisoformat(str(value)), None
        except ValueError:
            return None, "type"
    return None, "type"


def check(name: str, spec: dict, value: Any) -> list[str]:
    """Every rule of ``spec`` (a Column as a dict) that ``value`` breaks, in the lakehouse's
    words; an empty list when it keeps them. None is a missing value."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return [] if spec.get("nullable", True) else [null_in_required(name)]
    parsed, problem = typed(spec, value)
    if problem == "whole":
        return [not_whole(name)]
    if problem is not None:
        return [not_valid(name, spec["type"])]
    out = []
    if spec.get("min") is not None and parsed < spec["min"]:
        out.append(below_minimum(name, spec["min"]))
    if spec.get("max") is not None and parsed > spec["max"]:
        out.append(above_maximum(name, spec["max"]))
    allowed = spec.get("allowed")
    if allowed is not None and parsed not in allowed and spec.get("other") is None:
        out.append(not_allowed(name, allowed))
    return out
