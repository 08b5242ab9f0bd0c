"""The game-day file's JSON Schema (``gameday.schema.json``, draft 2020-12, shipped with the
package): the one description of the file's structure, and its errors as a user reads them, the
field named as the file spells it (``blackouts[1].hours.from``) with the fix the schema carries
beside each rule (``x-fix``, an annotation validators ignore).

A URL or header value the schema refuses is named, never echoed: it may hold a credential.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any, cast

from chaosmesh_py.errors import InvalidInput, shown

__all__ = ["check_document", "field_path", "schema"]


@cache
def schema() -> dict[str, Any]:
    """The game-day file's JSON Schema (draft 2020-12), as published with the package."""
    text = files("chaosmesh_py.gameday").joinpath("gameday.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def check_document(document: Mapping[str, Any]) -> None:
    """Raise ``InvalidInput`` for the first way ``document`` departs from the schema (saying how
    many more there are), after what JSON cannot hold and YAML can."""
    _check_keys_and_numbers(document)
    _check_structure(document)


def _check_keys_and_numbers(document: Any) -> None:
    """What JSON cannot hold and YAML can: keys that are not strings (``5:``, ``true:``,
    ``null:``), and numbers that are not finite (``1e999``). The schema's checks assume JSON."""
    stack: list[tuple[Any, list[Any]]] = [(document, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInput(
                        field_path([*path, json.dumps(key)]),
                        f"the key {json.dumps(key)} is not a string",
                        "quote it in YAML, e.g. '5': or 'true':",
                    )
                stack.append((item, [*path, key]))
        elif isinstance(value, list):
            stack.extend((item, [*path, index]) for index, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(
                field_path(path), f"{value} is not a finite number", "write a number"
            )


def _check_structure(document: Mapping[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    errors = sorted(
        validator.iter_errors(document), key=lambda error: _sort_key(error.absolute_path)
    )
    if not errors:
        return
    first = _explained(errors[0])
    more = len(errors) - 1
    problem = first.problem + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
    raise InvalidInput(first.field, problem, first.fix)


def _sort_key(path: Iterable[Any]) -> tuple[tuple[int, str], ...]:
    return tuple((0, f"{step:09d}") if isinstance(step, int) else (1, str(step)) for step in path)


def field_path(path: Iterable[Any]) -> str:
    """``blackouts[1].hours.from`` from the steps ``blackouts, 1, hours, from``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text.removeprefix(".") or "gameday"


def _explained(error: Any) -> InvalidInput:
    """One jsonschema error as the field it is about, the problem and the fix."""
    path = list(error.absolute_path)
    node: Mapping[str, Any] = error.schema
    fix = str(node.get("x-fix", ""))
    kind = error.validator
    if _may_hold_a_secret(path) and kind not in ("additionalProperties", "required"):
        # A URL or header written out may hold a credential: name the field, never the value.
        return InvalidInput(field_path(path), f"is not {_expected(kind, node)}", fix)
    if kind == "additionalProperties":
        known = sorted(node.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        key = unknown[0]
        guess = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {guess[0]}? " if guess else ""
        return InvalidInput(
            field_path([*path, key]), "unknown key", f"{hint}known keys: {', '.join(known)}"
        )
    if kind == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        described = node.get("properties", {}).get(missing, {})
        return InvalidInput(field_path([*path, missing]), "is required", _fix_of(described))
    if kind == "type":
        wanted = error.validator_value
        return InvalidInput(
            field_path(path),
            f"must be {_article(wanted)}, got {_json_kind(error.instance)} {shown(error.instance)}",
            fix,
        )
    if kind in ("anyOf", "oneOf"):
        return InvalidInput(field_path(path), _mixed_problem(kind, node), fix)
    if kind == "minItems" and error.validator_value == 1:
        return InvalidInput(field_path(path), "must not be empty", fix)
    if kind == "uniqueItems":
        return InvalidInput(field_path(path), "lists an item twice", fix)
    if kind == "maxLength":
        return InvalidInput(
            field_path(path),
            f"{shown(error.instance)} is {len(error.instance)} characters, "
            f"at most {node['maxLength']} fit",
            fix,
        )
    if kind == "minLength":
        return InvalidInput(field_path(path), "must not be empty", fix)
    return InvalidInput(
        field_path(path), f"{shown(error.instance)} {_said(kind, error.validator_value)}", fix
    )


def _may_hold_a_secret(path: Sequence[Any]) -> bool:
    return any(step in _SECRET_FIELDS for step in path)


_SECRET_FIELDS = ("url", "headers", "prometheus")


def _expected(kind: str, node: Mapping[str, Any]) -> str:
    if kind == "type":
        return _article(node["type"])
    return "in the expected form"


def _fix_of(node: Mapping[str, Any]) -> str:
    if "x-fix" in node:
        return str(node["x-fix"])
    if "$ref" in node:
        return str(_definition(node["$ref"]).get("x-fix", ""))
    return ""


def _definition(reference: str) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], schema()["$defs"][reference.rsplit("/", 1)[-1]])


def _mixed_problem(kind: str, node: Mapping[str, Any]) -> str:
    choices = [", ".join(option.get("required", [])) for option in node[kind]]
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
    return f"needs {'at least' if kind == 'anyOf' else 'exactly'} one of {listed}"


def _said(kind: str, value: Any) -> str:
    return {
        "pattern": "is not in the expected form",
        "enum": f"is not one of {', '.join(map(str, value))}"
        if isinstance(value, list)
        else "is not allowed",
        "minimum": f"is below {value}",
        "minItems": f"has fewer than {value} items",
    }.get(kind, f"fails {kind}")


def _article(kind: object) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "number": "a number"}
    names |= {"integer": "an integer", "boolean": "true or false"}
    if isinstance(kind, list):
        return " or ".join(names.get(str(item), str(item)) for item in kind)
    return names.get(str(kind), str(kind))


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "a number"
