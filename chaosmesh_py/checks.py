"""Checks of plain argument values that every surface shares, worded once.

An experiment's arguments arrive as JSON: a count may come as ``"10"``, ``1.5`` or ``true``
(a bool is an int to Python, never to a user). Each check names the field, says what it must
be and shows what it got; capability-specific checks (hosts, subsets, durations) stay with
their capability.
"""

from __future__ import annotations

from chaosmesh_py.errors import InvalidInput, shown


def whole(field: str, value: object, low: int, high: int | None = None, fix: str = "") -> int:
    """A whole number from ``low`` (to ``high``, when given)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"from {low}" if high is None else f"from {low} to {high}"
        raise InvalidInput(field, f"must be a whole number {span}, got {shown(value)}", fix)
    return value


def text(field: str, value: object) -> str:
    """A string with something in it besides blanks."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, f"must be a non-empty string, got {shown(value)}")
    return value


def flag(field: str, value: object, fix: str = "") -> bool:
    """true or false, as JSON writes them (not "yes", not 1)."""
    if not isinstance(value, bool):
        raise InvalidInput(field, f"must be true or false, got {shown(value)}", fix)
    return value


def seconds(field: str, value: object) -> float:
    """A number of seconds above 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInput(field, f"must be a number of seconds above 0, got {shown(value)}")
    return float(value)
