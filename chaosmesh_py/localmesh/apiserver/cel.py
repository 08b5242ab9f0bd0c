"""CEL validation rules (`x-kubernetes-validations`) evaluated with celpy.

Each distinct rule text is parsed once per process (`CelRule.compile` is cached: parsing costs
about a millisecond, and the Istio CRDs repeat 36 distinct rules 309 times).

celpy implements standard CEL; the Kubernetes extension functions the Istio rules call are added
here: `url(s)`, `isURL(s)`, `<url>.getScheme()`, `<url>.getHost()`, `<string>.substring(a[, b])`.
`duration()` is replaced by a parser of Go's duration syntax (celpy also accepts a `d` unit and
rejects "0", which Go accepts). Durations keep microsecond precision (Python's timedelta), so
"999999ns" counts as 999us. Not supported: `oldSelf` (transition rules), `messageExpression`,
`fieldPath`, `reason`, and the rest of the Kubernetes libraries (lists, regex, quantity, ...);
the Istio 1.30 CRDs use none of them.

A rule that evaluates to false yields the rule's message; a rule that fails to evaluate (such as
`duration("5")`) is also a field error, as on a real apiserver, never a server error.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict

_NANOS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # Go accepts both micro signs
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> timedelta:
    """Parse Go's `time.ParseDuration` syntax ("1h2m", "0.5ms", "0"), raising ValueError."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return timedelta(0)
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    nanos, position = Decimal(0), 0
    while position < len(body):
        part = _DURATION_PART.match(body, position)
        if part is None or part.group(1) in ("", "."):
            reason = "missing unit in" if re.fullmatch(r"[\d.]+", body) else "invalid"
            raise ValueError(f'time: {reason} duration "{text}"')
        try:
            nanos += Decimal(part.group(1)) * _NANOS_PER_UNIT[part.group(2)]
        except InvalidOperation as error:
            raise ValueError(f'time: invalid duration "{text}"') from error
        position = part.end()
    sign = -1 if text.startswith("-") else 1
    return timedelta(microseconds=sign * int(nanos) // 1000)


_URL = re.compile(r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):(?://(?P<host>[^/?#]*))?|/)\S*$")


def _is_url(value: str) -> bool:
    """Like Go's `url.ParseRequestURI`: an absolute URL or an absolute path."""
    return bool(_URL.match(value))


class _Url(celtypes.StringType):
    """The value returned by `url()`; methods below read its parts."""


def _cel_url(value: Any) -> _Url:
    if not _is_url(str(value)):
        raise ValueError(f"URL parse error during conversion from string: {value}")
    return _Url(value)


def _url_part(value: Any, group: str) -> celtypes.StringType:
    match = _URL.match(str(value))
    part = match.group(group) if match else None
    return celtypes.StringType((part or "").lower() if group == "scheme" else part or "")


def _substring(value: Any, start: Any, end: Any = None) -> celtypes.StringType:
    text, begin = str(value), int(start)
    stop = len(text) if end is None else int(end)
    if not 0 <= begin <= stop <= len(text):
        raise ValueError(f"index out of range: {begin}, {stop}")
    return celtypes.StringType(text[begin:stop])


def _duration(value: Any) -> celtypes.DurationType:
    if isinstance(value, timedelta):
        return celtypes.DurationType(value)
    return celtypes.DurationType(parse_go_duration(str(value)))


KUBERNETES_FUNCTIONS: dict[str, Any] = {
    "duration": _duration,
    "url": _cel_url,
    "isURL": lambda value: celtypes.BoolType(_is_url(str(value))),
    "getScheme": lambda value: _url_part(value, "scheme"),
    "getHost": lambda value: _url_part(value, "host"),
    "substring": _substring,
}

_ENVIRONMENT = celpy.Environment()


@dataclass(frozen=True)
class CelRule:
    """A compiled rule; `check(value)` returns None when it holds, else a reason it does not."""

    text: str
    program: Any  # celpy.Runner

    @staticmethod
    @functools.cache
    def compile(text: str) -> CelRule:
        program = _ENVIRONMENT.program(_ENVIRONMENT.compile(text), functions=KUBERNETES_FUNCTIONS)
        return CelRule(text, program)

    def evaluate(self, value: Any) -> Any:
        return self.program.evaluate({"self": json_to_cel(value)})


def _describe(error: Exception) -> str:
    """celpy wraps the underlying exception as (message, type, args); show the original text."""
    args = error.args
    if isinstance(error, CELEvalError) and len(args) >= 3 and args[2]:
        return str(args[2][0])
    return str(args[0]) if args else type(error).__name__


def evaluate_rules(
    value: Any, schema: JsonDict, path: str, rules: dict[str, CelRule]
) -> list[FieldError]:
    """Evaluate every rule that applies to `value` and its members; return the failures."""
    errors: list[FieldError] = []
    if value is None:
        return errors
    type_name = schema.get("type") or ("object" if isinstance(value, dict) else "string")
    for spec in schema.get("x-kubernetes-validations", ()):
        message = (spec.get("message") or spec["rule"]).strip()
        try:
            result = rules[spec["rule"]].evaluate(value)
        except Exception as error:  # any evaluation failure is the client's error (422), not ours
            detail = f"{_describe(error)} evaluating rule: {message}"
            errors.append(
                FieldError("FieldValueInvalid", path, f'Invalid value: "{type_name}": {detail}')
            )
            continue
        if result is not True and result != celtypes.BoolType(True):
            errors.append(
                FieldError("FieldValueInvalid", path, f'Invalid value: "{type_name}": {message}')
            )
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        for key, member in value.items():
            if key in properties:
                child_path = f"{path}.{key}".lstrip(".")
                errors += evaluate_rules(member, properties[key], child_path, rules)
            elif isinstance(additional, dict):
                errors += evaluate_rules(member, additional, f"{path}[{key}]", rules)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, element in enumerate(value):
            errors += evaluate_rules(element, schema["items"], f"{path}[{index}]", rules)
    return errors
