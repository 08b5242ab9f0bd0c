"""What an experiment gives to say which routes and requests an edit applies to, checked before
any request: header narrowing (Istio StringMatches), source labels, and a route by name or index.

Each value is checked as Istio and Envoy would (``chaosmesh_py.istio.grammar``): a bad one fails
here, naming the field, rather than after the write. Used by every route-copy action (faults and
routing edits alike, ``chaosmesh_py.faults.injection.parse_targeting``); what the narrowing does
to a route is ``chaosmesh_py.istio.route_copy``'s.
"""

from __future__ import annotations

from collections.abc import Mapping

from chaosmesh_py import checks
from chaosmesh_py.errors import InvalidInput, shown
from chaosmesh_py.istio import grammar

_STRING_MATCH_KINDS = ("exact", "prefix", "regex")


def parse_headers(value: object) -> dict[str, dict[str, str]]:
    """Header narrowing from an experiment: ``{"end-user": "jason"}`` or Istio StringMatch form.

    Each name and condition is checked as Istio and Envoy would (``istio.grammar``): a bad one
    fails here, naming the field, rather than after the write."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(
            "headers", f"must be a mapping, got {shown(value)}", 'e.g. {"end-user": "jason"}'
        )
    parsed = {}
    for name, given in value.items():
        if not isinstance(name, str) or not name:
            raise InvalidInput("headers", f"header name {shown(name)} must be a non-empty string")
        problem = grammar.header_name_problem(name)
        if problem is not None:
            raise problem.at("headers")
        condition = {"exact": given} if isinstance(given, str) else given
        if (
            not isinstance(condition, dict)
            or len(condition) != 1
            or next(iter(condition)) not in _STRING_MATCH_KINDS
            or not isinstance(next(iter(condition.values())), str)
        ):
            raise InvalidInput(
                f"headers.{name}",
                f"{shown(condition)} is not a header match",
                'use a string for an exact match, or one of {"exact"|"prefix"|"regex": "..."}',
            )
        _check_condition(condition, f"headers.{name}")
        parsed[name] = dict(condition)
    return parsed


def _check_condition(condition: Mapping[str, str], field_name: str) -> None:
    ((kind, text),) = condition.items()
    if kind == "regex":
        problem = grammar.regex_problem(text)
    elif kind == "prefix" and text == "":
        problem = grammar.Problem("is empty", "Istio refuses an empty prefix; leave it out")
    else:
        problem = grammar.header_value_problem(text)
    if problem is not None:
        raise problem.at(f"{field_name}.{kind}")


def parse_source_labels(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(
            "source_labels",
            f"must map label names to string values, got {shown(value)}",
            'e.g. {"app": "productpage"}',
        )
    for key, label_value in value.items():
        problem = grammar.label_key_problem(key)
        if problem is not None:
            raise problem.at("source_labels")
        problem = grammar.label_value_problem(label_value)
        if problem is not None:
            raise problem.at(f"source_labels.{key}")
    return dict(value)


def parse_route_choice(route_name: object, route_index: object) -> tuple[str | None, int | None]:
    """At most one of a route name or a route index (counting the routes as written, from 0)."""
    if route_name is not None and route_index is not None:
        raise InvalidInput("route_name/route_index", "give one of them, not both")
    return (
        None if route_name is None else checks.text("route_name", route_name),
        None
        if route_index is None
        else checks.whole("route_index", route_index, 0, fix="0 is the first route"),
    )
