"""The policy behaviour matrix (``security.probes.policy_matrix``): what it asks, what it
expects per cell, and how an answer is told apart. Pure: no request, no API call.

A matrix is sources x destinations x requests x token states; each combination is a *cell*,
and each cell gets one real request (``chaosmesh_py.security.matrix_traffic`` sends them). The
experiment declares the expected outcome compactly: a default, then rules matching any of the
dimensions, a later rule winning over an earlier one::

    "expect": {"default": "allowed",
               "rules": [{"source": "outside", "outcome": "reset"},
                         {"destination": "ratings", "source": ["productpage-v1"], "outcome": "403"},
                         {"token": ["expired", "bad-signature"], "outcome": "401"}]}

Outcomes (``OUTCOMES``): ``allowed`` (the application answered: any status but 401 / 403 that
no Envoy produced itself), ``401``, ``403``, ``reset`` (the connection closed before an answer,
or the source's sidecar could not complete its connection to the destination: Envoy's 503
"upstream connect error or disconnect/reset before headers"), or any other HTTP status
(``503`` for "no healthy upstream"); an expected status such as ``200`` or ``404`` matches that
status exactly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.errors import ChaosMeshError, InvalidInput
from chaosmesh_py.security.tokens import NO_TOKEN, SIGNED_STATES, STATES

OUTSIDE = "outside"  # a client without a sidecar: plain text to the pod's address
ALLOWED = "allowed"
RESET = "reset"
OUTCOMES = (ALLOWED, "401", "403", RESET)
# What a cell got when no request could be sent at all (the source's own sidecar unreachable):
# never an expected outcome, so such a cell always differs.
NOT_SENT = "not-sent"
MAX_CELLS = 2000
MAX_CONCURRENCY = 32
MAX_TIMEOUT_S = 60.0
RULE_KEYS = ("source", "destination", "method", "path", "token")
_METHOD = re.compile(r"[A-Z]{3,10}")
_PATH = re.compile(r"/[!-~]*")
# RFC 9110's token, and a field value of visible ASCII, blanks and tabs (what http.client
# sends as is).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t -~]*")


class MatrixDiffers(ChaosMeshError):
    """Cells answered otherwise than the experiment expected: the probe fails, so the verdict
    fails the run (Chaos Toolkit does not judge a method probe's answer)."""


class NothingSent(ChaosMeshError):
    """No cell's request could be sent: a matrix that tested nothing never passes."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Cell:
    source: str
    destination: str
    request: Request
    token: str

    def facts(self) -> dict[str, str]:
        """The cell's dimensions as an expectation rule matches them."""
        return {
            "source": self.source,
            "destination": self.destination,
            "method": self.request.method,
            "path": self.request.path,
            "token": self.token,
        }


@dataclass(frozen=True)
class Rule:
    matches: Mapping[str, frozenset[str]]
    outcome: str

    def applies(self, cell: Cell) -> bool:
        facts = cell.facts()
        return all(facts[key] in values for key, values in self.matches.items())


@dataclass(frozen=True)
class Expectation:
    default: str | None
    rules: tuple[Rule, ...]

    def of(self, cell: Cell) -> str | None:
        """The outcome expected of ``cell``: the last rule that applies, else the default."""
        for rule in reversed(self.rules):
            if rule.applies(cell):
                return rule.outcome
        return self.default


@dataclass(frozen=True)
class Answer:
    """What one cell's request met: its outcome, the HTTP status (None: no answer) and why
    (Envoy's body for 401 / 403, what the socket saw for a reset)."""

    outcome: str
    status: int | None
    reason: str

    def meets(self, expected: str) -> bool:
        return expected == self.outcome or (
            expected.isdigit() and self.status is not None and int(expected) == self.status
        )


@dataclass(frozen=True)
class Signing:
    """Where signed tokens' key and claims come from. ``issuer`` None: the local mesh's own
    issuer (its key file, its issuer name) unless a key is given."""

    issuer: str | None
    audiences: tuple[str, ...] | None
    subject: str
    claims: Mapping[str, Any]
    key_file: str | None
    key_secret: str | None


@dataclass(frozen=True)
class Matrix:
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    requests: tuple[Request, ...]
    tokens: tuple[str, ...]
    expectation: Expectation
    signing: Signing
    token_header: str
    concurrency: int
    timeout_s: float
    fail_on_difference: bool

    def cells(self) -> list[Cell]:
        return [
            Cell(source, destination, request, token)
            for source in self.sources
            for destination in self.destinations
            for request in self.requests
            for token in self.tokens
        ]

    @property
    def signs(self) -> bool:
        return any(token in SIGNED_STATES for token in self.tokens)


def parse(arguments: Mapping[str, Any]) -> Matrix:
    """The probe's arguments (bound, defaults applied) as a Matrix; InvalidInput naming the
    field for anything wrong. Sends nothing; the names of sources and destinations are checked
    against the mesh when the probe runs."""
    sources = _names("sources", arguments.get("sources"))
    destinations = _names("destinations", arguments.get("destinations"))
    if OUTSIDE in destinations:
        raise InvalidInput(
            "destinations", f"{OUTSIDE!r} is a source only", "name services or workloads"
        )
    requests = _requests(arguments.get("requests"))
    tokens = _tokens(arguments.get("tokens"))
    dimensions = {
        "source": sources,
        "destination": destinations,
        "method": tuple(r.method for r in requests),
        "path": tuple(r.path for r in requests),
        "token": tokens,
    }
    matrix = Matrix(
        sources=sources,
        destinations=destinations,
        requests=requests,
        tokens=tokens,
        expectation=_expectation(arguments.get("expect"), dimensions),
        signing=_signing(arguments, tokens),
        token_header=_header_name(arguments.get("token_header", "Authorization")),
        concurrency=checks.whole(
            "concurrency", arguments.get("concurrency", 4), 1, MAX_CONCURRENCY
        ),
        timeout_s=_timeout(arguments.get("timeout_s", 5.0)),
        fail_on_difference=checks.flag(
            "fail_on_difference", arguments.get("fail_on_difference", True)
        ),
    )
    cells = len(sources) * len(destinations) * len(requests) * len(tokens)
    if cells > MAX_CELLS:
        raise InvalidInput(
            "sources/destinations/requests/tokens",
            f"make {cells} cells, more than {MAX_CELLS}",
            "split the matrix over several probes",
        )
    for cell in matrix.cells():
        if matrix.expectation.of(cell) is None:
            raise InvalidInput(
                "expect",
                f"says nothing of the cell {describe(cell)}",
                'give a "default" outcome, or a rule that covers it',
            )
    return matrix


def describe(cell: Cell) -> str:
    """One line naming a cell, as the probe's messages and results show it."""
    return (
        f"{cell.source} -> {cell.destination} {cell.request.method} {cell.request.path} "
        f"token={cell.token}"
    )


def compared(
    matrix: Matrix, answers: Sequence[tuple[Cell, Answer]], seconds: float
) -> dict[str, Any]:
    """The probe's result: every cell counted, every differing one listed with why."""
    differs = []
    observed = []
    for cell, answer in answers:
        expected = matrix.expectation.of(cell)
        assert expected is not None  # parse refused a matrix with an uncovered cell
        row = {
            **cell.facts(),
            "got": answer.outcome,
            "status": answer.status,
            "reason": answer.reason,
        }
        observed.append(row)
        if not answer.meets(expected):
            differs.append({**row, "expected": expected})
    return {
        "cells": len(answers),
        "matched": len(answers) - len(differs),
        "differs": differs,
        "outcomes": dict(sorted(Counter(answer.outcome for _, answer in answers).items())),
        "observed": observed,
        "seconds": round(seconds, 3),
        "cells_per_s": round(len(answers) / seconds, 1) if seconds > 0 else None,
    }


def judged(matrix: Matrix, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` when it may pass: NothingSent when no request went out, MatrixDiffers when a
    cell differs and ``fail_on_difference``."""
    if all(row["got"] == NOT_SENT for row in result["observed"]):
        raise NothingSent(
            f"none of the {result['cells']} requests could be sent: "
            f"{result['observed'][0]['reason'] if result['observed'] else 'no cells'}"
        )
    differs = result["differs"]
    if differs and matrix.fail_on_difference:
        shown = "; ".join(
            f"{row['source']} -> {row['destination']} {row['method']} {row['path']} "
            f"token={row['token']}: expected {row['expected']}, got {row['got']}"
            + (f" ({row['reason']})" if row["reason"] else "")
            for row in differs[:10]
        )
        more = f"; and {len(differs) - 10} more" if len(differs) > 10 else ""
        raise MatrixDiffers(
            f"{len(differs)} of {result['cells']} cells differ from what was expected: "
            f"{shown}{more}"
        )
    return result


def _names(field: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            field, f"must be a non-empty list of names, got {value!r}", 'e.g. ["productpage-v1"]'
        )
    names = tuple(checks.text(f"{field}[{i}]", name) for i, name in enumerate(value))
    if len(set(names)) != len(names):
        raise InvalidInput(field, f"names one twice: {list(names)}")
    return names


def _requests(value: object) -> tuple[Request, ...]:
    if value is None:
        return (Request("GET", "/"),)
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            "requests",
            f"must be a non-empty list of requests, got {value!r}",
            'e.g. [{"method": "GET", "path": "/productpage"}]',
        )
    requests = []
    for index, item in enumerate(value):
        field = f"requests[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(field, f"must be an object (method, path, headers), got {item!r}")
        unknown = sorted(set(item) - {"method", "path", "headers"})
        if unknown:
            raise InvalidInput(
                f"{field}.{unknown[0]}", "is not a request field", "method, path, headers"
            )
        method = item.get("method", "GET")
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise InvalidInput(
                f"{field}.method", f"must be an HTTP method in capitals, got {method!r}"
            )
        path = item.get("path", "/")
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise InvalidInput(
                f"{field}.path",
                f"must be a path starting with /, printable ASCII without blanks, got {path!r}",
                "percent-encode anything else (%20 for a blank)",
            )
        headers = item.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise InvalidInput(
                f"{field}.headers", f"must map header names to strings, got {headers!r}"
            )
        for name, header_value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise InvalidInput(f"{field}.headers", f"{name!r} is not a header name")
            if not _HEADER_VALUE.fullmatch(header_value):
                raise InvalidInput(
                    f"{field}.headers.{name}", "must be printable ASCII text without line breaks"
                )
        requests.append(Request(method, path, tuple(sorted(headers.items()))))
    return tuple(requests)


def _tokens(value: object) -> tuple[str, ...]:
    if value is None:
        return (NO_TOKEN,)
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            "tokens",
            f"must be a non-empty list of token states, got {value!r}",
            f"of {list(STATES)}",
        )
    for index, state in enumerate(value):
        if state not in STATES:
            raise InvalidInput(
                f"tokens[{index}]", f"{state!r} is no token state", f"one of {list(STATES)}"
            )
    if len(set(value)) != len(value):
        raise InvalidInput("tokens", f"names a state twice: {value}")
    return tuple(value)


def _outcome(field: str, value: object) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str) and (text in OUTCOMES or (text.isdigit() and 100 <= int(text) <= 599)):
        return text
    raise InvalidInput(
        field,
        f"{value!r} is no outcome",
        f"one of {list(OUTCOMES)} or an HTTP status from 100 to 599",
    )


def _expectation(value: object, dimensions: Mapping[str, Sequence[str]]) -> Expectation:
    if not isinstance(value, dict):
        raise InvalidInput(
            "expect",
            f"must be an object with a default outcome and/or rules, got {value!r}",
            '{"default": "allowed", "rules": [{"source": "outside", "outcome": "reset"}]}',
        )
    unknown = sorted(set(value) - {"default", "rules"})
    if unknown:
        raise InvalidInput(f"expect.{unknown[0]}", "is not an expect field", "default, rules")
    default = value.get("default")
    rules_value = value.get("rules") or []
    if not isinstance(rules_value, list):
        raise InvalidInput("expect.rules", f"must be a list of rules, got {rules_value!r}")
    rules = tuple(
        _rule(f"expect.rules[{index}]", rule, dimensions) for index, rule in enumerate(rules_value)
    )
    return Expectation(None if default is None else _outcome("expect.default", default), rules)


def _rule(field: str, value: object, dimensions: Mapping[str, Sequence[str]]) -> Rule:
    if not isinstance(value, dict) or "outcome" not in value:
        raise InvalidInput(
            field,
            f"must be an object with an outcome, got {value!r}",
            '{"source": "outside", "outcome": "reset"}',
        )
    matches = {}
    for key, wanted in value.items():
        if key == "outcome":
            continue
        if key not in RULE_KEYS:
            raise InvalidInput(f"{field}.{key}", "is not a dimension", f"one of {list(RULE_KEYS)}")
        listed = wanted if isinstance(wanted, list) else [wanted]
        for item in listed:
            # A value outside the matrix is a typo: the rule would silently match nothing.
            if item not in dimensions[key]:
                raise InvalidInput(
                    f"{field}.{key}",
                    f"{item!r} is not in the matrix",
                    f"one of {sorted(set(dimensions[key]))}",
                )
        matches[key] = frozenset(listed)
    return Rule(matches, _outcome(f"{field}.outcome", value["outcome"]))


def _signing(arguments: Mapping[str, Any], tokens: Sequence[str]) -> Signing:
    issuer = arguments.get("issuer")
    if issuer is not None:
        checks.text("issuer", issuer)
    audiences = arguments.get("audiences")
    if audiences is not None and not (
        isinstance(audiences, list) and all(isinstance(a, str) and a for a in audiences)
    ):
        raise InvalidInput("audiences", f"must be a list of audience names, got {audiences!r}")
    claims = arguments.get("claims") or {}
    if not isinstance(claims, dict):
        raise InvalidInput("claims", f"must be an object of claims, got {claims!r}")
    key_file = arguments.get("signing_key_file")
    key_secret = arguments.get("signing_key_secret")
    for name, given in (("signing_key_file", key_file), ("signing_key_secret", key_secret)):
        if given is not None:
            checks.text(name, given)
    if key_file is not None and key_secret is not None:
        raise InvalidInput("signing_key_file", "and signing_key_secret are both given", "give one")
    signed = [state for state in tokens if state in SIGNED_STATES]
    if signed and issuer is not None and key_file is None and key_secret is None:
        raise InvalidInput(
            "signing_key_secret",
            f"the token states {signed} need a key to sign with, and issuer {issuer!r} has none",
            "name a secret holding the private key (PEM or JWK) or a signing_key_file; "
            "leave issuer out to use the local mesh's issuer",
        )
    return Signing(
        issuer=issuer,
        audiences=None if audiences is None else tuple(audiences),
        subject=checks.text("subject", arguments.get("subject", "chaosmesh-matrix")),
        claims=claims,
        key_file=key_file,
        key_secret=key_secret,
    )


def _header_name(value: object) -> str:
    name = checks.text("token_header", value)
    if not _HEADER_NAME.fullmatch(name):
        raise InvalidInput("token_header", f"{name!r} is not a header name")
    return name


def _timeout(value: object) -> float:
    timeout = checks.seconds("timeout_s", value)
    if timeout > MAX_TIMEOUT_S:
        raise InvalidInput("timeout_s", f"must be at most {MAX_TIMEOUT_S:g} s, got {timeout:g}")
    return timeout
