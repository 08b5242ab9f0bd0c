"""Label and field selectors of list requests (`?labelSelector=app=reviews,tier in (a,b)`).

Label selectors take the equality (`=`, `==`, `!=`) and set-based (`in`, `notin`, `key`, `!key`)
forms; field selectors take `metadata.name` and `metadata.namespace` with `=`, `==`, `!=`, the
fields every resource supports. A malformed selector raises ValueError (the caller answers 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_SET = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)\s*$")
_EQUALITY = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<not>!?)\s*(?P<key>[^\s!=(),]+)\s*$")


def _split(text: str) -> list[str]:
    """Split on the commas that separate requirements, not those inside `in (a,b)`."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    if match := _SET.match(text):
        key, values = match["key"], {v.strip() for v in match["values"].split(",")}
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY.match(text):
        key, value = match["key"], match["value"]
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.match(text):
        key, negated = match["key"], bool(match["not"])
        return lambda labels: (key in labels) != negated
    raise ValueError(f"unable to parse requirement: {text.strip()!r}")


def label_selector(text: str) -> Predicate:
    """A predicate on objects: true when the object's labels satisfy every requirement."""
    requirements = [_requirement(part) for part in _split(text)]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def field_selector(text: str) -> Predicate:
    """A predicate on objects for `metadata.name` / `metadata.namespace` requirements."""
    checks: list[Predicate] = []
    for part in _split(text):
        match = _EQUALITY.match(part)
        if not match or match["key"] not in ("metadata.name", "metadata.namespace"):
            raise ValueError(f'field label not supported: "{part.strip()}"')
        field, value, wanted = match["key"].split(".")[1], match["value"], match["op"] != "!="

        def check(
            obj: Mapping[str, Any], field: str = field, value: str = value, wanted: bool = wanted
        ) -> bool:
            return bool(obj.get("metadata", {}).get(field, "") == value) == wanted

        checks.append(check)
    return lambda obj: all(check(obj) for check in checks)


def required_name(text: str | None) -> str | None:
    """The name a field selector requires exactly (``metadata.name=x``), if it does: what
    kube-apiserver authorizes a list or watch against, as a request for that one object."""
    for part in _split(text or ""):
        match = _EQUALITY.match(part)
        if match and match["key"] == "metadata.name" and match["op"] != "!=":
            return str(match["value"])
    return None
