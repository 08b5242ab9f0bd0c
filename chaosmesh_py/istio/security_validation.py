"""Istio's rules for the security kinds this project writes (PeerAuthentication,
AuthorizationPolicy, RequestAuthentication), checked before anything is sent.

Two layers, kept apart so a message can say which one refused:

- **the webhook** (``admission_errors`` through ``chaosmesh_py.istio.validation``): what istiod's
  ``validation.istio.io`` answers with HTTP 400, ported from istio/istio
  ``pkg/config/validation/validation.go`` (ValidatePeerAuthentication,
  ValidateAuthorizationPolicy, validateJwtRule) and ``pkg/config/security/security.go``
  (CheckEmptyValues, ValidateIPs, ValidatePorts, ParseJwksURI), in our words;
- **what would never match** (the ``parse_*`` functions for an experiment's arguments): values
  Istio admits but that can never do what the author meant, refused because a rehearsal built on
  them tests nothing. A principal written with ``spiffe://`` (istiod adds the scheme itself:
  pilot/pkg/security/authz/model), a ``*`` inside a value (only prefix, suffix or presence
  matching exists), a lower-case method (Envoy's ``:method`` is upper case), a path without its
  leading ``/``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py.errors import InvalidInput, shown

MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE")
# Istio's mesh-wide policies live in the root namespace (meshConfig.rootNamespace).
ROOT_NAMESPACE = "istio-system"
DRY_RUN_ANNOTATION = "istio.io/dry-run"
# Source fields of an AuthorizationPolicy rule, Istio's spelling, that an experiment may give.
PRINCIPAL_FIELDS = ("principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals")
NAMESPACE_FIELDS = ("namespaces", "notNamespaces")
IP_FIELDS = ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks")
SOURCE_FIELDS = PRINCIPAL_FIELDS + NAMESPACE_FIELDS + IP_FIELDS
_OPERATION_FIELDS = (
    *("hosts", "notHosts", "ports", "notPorts"),
    *("methods", "notMethods", "paths", "notPaths"),
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token: a method or header name
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PRINCIPAL_EXAMPLE = 'e.g. "cluster.local/ns/bookinfo/sa/bookinfo-reviews"'


# --------------------------------------------------------------- an experiment's arguments


def parse_mtls_mode(value: object, field: str = "mode") -> str:
    if not isinstance(value, str) or value.upper() not in MTLS_MODES:
        raise InvalidInput(
            field,
            f"{shown(value)} is not an mTLS mode",
            f"use one of {', '.join(MTLS_MODES)} (UNSET only inherits: nothing to rehearse)",
        )
    return value.upper()


def parse_port_modes(value: object, has_selector: bool) -> dict[int, str]:
    """``{"9080": "DISABLE"}`` -> ``{9080: "DISABLE"}``; Istio takes portLevelMtls only from a
    policy with a workload selector."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        raise InvalidInput(
            "port_modes",
            f"must be a non-empty map of port numbers to modes, got {shown(value)}",
            'e.g. {"9080": "DISABLE"}',
        )
    if not has_selector:
        raise InvalidInput(
            "port_modes",
            "Istio takes port-level mTLS only from a policy that selects workloads",
            "give workload_labels too (a mesh or namespace policy cannot have portLevelMtls)",
        )
    modes: dict[int, str] = {}
    for key, mode in value.items():
        port = int(key) if isinstance(key, str) and key.strip().isdigit() else key
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidInput(
                "port_modes", f"port {shown(key)} is not a port number from 1 to 65535"
            )
        modes[port] = parse_mtls_mode(mode, f"port_modes.{port}")
    return modes


def parse_sources(value: object) -> dict[str, list[str]]:
    """An AuthorizationPolicy ``source``: principals, namespaces, ipBlocks and their not-forms
    (also requestPrincipals, remoteIpBlocks), each a non-empty list of strings."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        raise InvalidInput(
            "sources",
            f"must be a non-empty map of source fields to lists, got {shown(value)}",
            f'e.g. {{"principals": [{_PRINCIPAL_EXAMPLE[5:]}]}}',
        )
    source: dict[str, list[str]] = {}
    for key, items in value.items():
        if key not in SOURCE_FIELDS:
            raise InvalidInput(
                "sources",
                f"{shown(key)} is not a source field",
                f"Istio's spelling: {', '.join(SOURCE_FIELDS)}",
            )
        field = f"sources.{key}"
        values = _strings(field, items)
        for item in values:
            if key in PRINCIPAL_FIELDS:
                _check_principal(field, item, request=key.lower().endswith("requestprincipals"))
            elif key in NAMESPACE_FIELDS:
                _check_namespace(field, item)
            else:
                _check_ip_block(field, item)
        source[key] = values
    return source


def parse_paths(value: object, field: str = "paths") -> list[str]:
    if value is None:
        return []
    paths = _strings(field, value)
    for path in paths:
        if not (path.startswith("/") or path == "*" or path.startswith("*")):
            raise InvalidInput(
                field,
                f"{shown(path)} never matches: a request path starts with '/'",
                'e.g. "/ratings/*" (prefix), "*/reviews" (suffix), "/health" (exact)',
            )
        _check_wildcards(field, path)
    return paths


def parse_methods(value: object) -> list[str]:
    if value is None:
        return []
    methods = _strings("methods", value)
    for method in methods:
        if not _TOKEN.match(method) or method != method.upper():
            raise InvalidInput(
                "methods",
                f"{shown(method)} never matches: Envoy compares the request's method, which "
                "is an upper-case token",
                'e.g. ["GET", "POST"]',
            )
    return methods


def parse_url(value: object, field: str) -> str:
    """An http(s) URL with a host (what istiod fetches a JWKS from)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, f"must be an http(s) URL, got {shown(value)}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise InvalidInput(
            field,
            f"{shown(value)} is not an http(s) URL",
            'e.g. "https://issuer.example.com/.well-known/jwks.json"',
        )
    try:
        parts.port  # noqa: B018 (a port out of range raises)
    except ValueError:
        raise InvalidInput(field, f"{shown(value)} has a bad port") from None
    return value


def parse_issuer(value: object) -> str:
    """A token issuer as JWTs carry it in ``iss``: an http(s) URL, or (as Istio's samples,
    "testing@secure.istio.io") a name@host without blanks."""
    example = 'e.g. "https://issuer.example.com" or "testing@secure.istio.io"'
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("issuer", f"must be a non-empty string, got {shown(value)}", example)
    if "://" in value:
        return parse_url(value, "issuer")
    if re.fullmatch(r"[^\s@/]+@[A-Za-z0-9.-]+", value) is None:
        raise InvalidInput(
            "issuer", f"{shown(value)} is neither an http(s) URL nor a name@host", example
        )
    return value


def parse_jwks(value: object) -> str:
    """A JSON Web Key Set (a JSON object, or its text) -> its text, as the RequestAuthentication
    ``jwks`` field holds it. Refuses what jwk.Parse would, and key sets with no usable key."""
    example = '{"keys": [{"kty": "RSA", "n": "...", "e": "AQAB"}]}'
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise InvalidInput("jwks", "is not JSON: not a JWKS", f"give e.g. {example}") from None
    else:
        parsed = value
    if not isinstance(parsed, Mapping) or not isinstance(parsed.get("keys"), list):
        raise InvalidInput("jwks", 'is not a JWKS: it needs a "keys" list', f"give e.g. {example}")
    if not parsed["keys"]:
        raise InvalidInput("jwks", "has no keys: every token would be refused", example)
    for index, key in enumerate(parsed["keys"]):
        if not isinstance(key, Mapping) or not isinstance(key.get("kty"), str):
            raise InvalidInput(
                f"jwks.keys[{index}]", 'is not a JWK: every key needs its "kty"', example
            )
        # A private key has no place in a policy, nor in the journal that records it.
        if any(part in key for part in ("d", "p", "q", "dp", "dq", "qi")):
            raise InvalidInput(
                f"jwks.keys[{index}]",
                "is a private key: a JWKS for verification holds public keys only",
                "give the public key set the issuer publishes",
            )
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_header_names(value: object) -> list[str]:
    if value is None:
        return []
    names = _strings("from_headers", value)
    for name in names:
        if not _TOKEN.match(name):
            raise InvalidInput("from_headers", f"{shown(name)} is not a header name")
    return names


def parse_audiences(value: object) -> list[str]:
    return [] if value is None else _strings("audiences", value)


def _strings(field: str, value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidInput(field, f"must be a non-empty list of strings, got {shown(value)}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput(field, f"holds {shown(item)}: empty values are not allowed")
    return list(value)


def _check_principal(field: str, value: str, request: bool) -> None:
    if not request and value.startswith("spiffe://"):
        raise InvalidInput(
            field,
            f"{shown(value)} never matches: istiod adds spiffe:// itself",
            f"drop the scheme, {_PRINCIPAL_EXAMPLE}",
        )
    if not request and value != "*" and "/ns/" not in value and not value.endswith("*"):
        raise InvalidInput(
            field,
            f"{shown(value)} is not a principal: <trust domain>/ns/<namespace>/sa/<account>",
            _PRINCIPAL_EXAMPLE,
        )
    if request and value != "*" and "/" not in value and not value.endswith("*"):
        raise InvalidInput(
            field,
            f"{shown(value)} is not a request principal: <issuer>/<subject>",
            'e.g. "testing@secure.istio.io/testing@secure.istio.io", or "*" for any token',
        )
    _check_wildcards(field, value)


def _check_namespace(field: str, value: str) -> None:
    _check_wildcards(field, value)
    bare = value.strip("*")
    if value != "*" and bare and not _NAMESPACE.match(bare.strip("-")):
        raise InvalidInput(field, f"{shown(value)} is not a namespace name", 'e.g. "bookinfo"')


def _check_ip_block(field: str, value: str) -> None:
    if not _ip_ok(value):
        raise InvalidInput(
            field,
            f"{shown(value)} is not an IP address or CIDR range",
            'e.g. "10.0.0.0/8" or "192.168.1.7"',
        )


def _check_wildcards(field: str, value: str) -> None:
    if "*" in value.strip("*") or value.startswith("**") or value.endswith("**"):
        raise InvalidInput(
            field,
            f"{shown(value)} never matches as meant: Istio takes '*' only as a prefix or a "
            "suffix (or alone)",
            'e.g. "cluster.local/ns/bookinfo/*" or "*/sa/bookinfo-reviews"',
        )


# --------------------------------------------------------------- the webhook (istiod, HTTP 400)


def peer_authentication_errors(spec: dict[str, Any]) -> Iterator[str]:
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    port_level = spec.get("portLevelMtls")
    if port_level is not None and not selector:
        yield "portLevelMtls: mesh/namespace peer authentication cannot have port level mTLS"
    if port_level is not None and not port_level:
        yield "portLevelMtls: if defined, must have at least one element"
    for port in port_level or {}:
        if not str(port).isdigit() or not 1 <= int(port) <= 65535:
            yield f"portLevelMtls: port {port} must be in range 1..65535"
    yield from _selector_errors(spec)


def authorization_policy_errors(spec: dict[str, Any]) -> Iterator[str]:
    yield from _selector_errors(spec)
    action = spec.get("action", "ALLOW")
    if action == "DENY" and spec.get("rules") is None:
        yield (
            "DENY action without `rules` is meaningless as it will never be triggered, add an "
            "empty rule `{}` if you want it be triggered for every request"
        )
    for i, rule in enumerate(spec.get("rules") or []):
        if not isinstance(rule, dict):
            yield f"`rule` must not be nil, found at rule {i}"
            continue
        if "from" in rule and not rule["from"]:
            yield f"`from` must not be empty, found at rule {i}"
        for entry in rule.get("from") or []:
            source = (entry or {}).get("source")
            if not source:
                yield f"`from.source` must not be empty, found at rule {i}"
                continue
            for key, values in source.items():
                if any(v == "" for v in values):
                    yield f"empty value not allowed, found in {key}"
                if key in IP_FIELDS:
                    yield from (f"bad IP ({v}) in {key}" for v in values if not _ip_ok(v))
        if "to" in rule and not rule["to"]:
            yield f"`to` must not be empty, found at rule {i}"
        for entry in rule.get("to") or []:
            operation = (entry or {}).get("operation")
            if not operation or not any(operation.get(k) for k in _OPERATION_FIELDS):
                yield f"`to.operation` must not be empty, found at rule {i}"
                continue
            for key, values in operation.items():
                if any(v == "" for v in values):
                    yield f"empty value not allowed, found in {key}"


def request_authentication_errors(spec: dict[str, Any]) -> Iterator[str]:
    yield from _selector_errors(spec)
    for rule in spec.get("jwtRules") or []:
        if any(not audience for audience in rule.get("audiences") or []):
            yield "audience must be non-empty string"
        if not rule.get("issuer") and not rule.get("jwksUri"):
            yield "issuer or jwksUri must be non-empty string"
        if rule.get("jwksUri") and urlsplit(rule["jwksUri"]).scheme not in ("http", "https"):
            yield f"jwksUri: URI scheme {urlsplit(rule['jwksUri']).scheme!r} is not supported"
        if rule.get("jwks"):
            try:
                parse_jwks(rule["jwks"])
            except InvalidInput as error:
                yield f"jwks parse error: {error.problem}"
        for location in rule.get("fromHeaders") or []:
            if not (location or {}).get("name"):
                yield "location header name must be non-empty string"


def _selector_errors(spec: Mapping[str, Any]) -> Iterator[str]:
    selector = spec.get("selector")
    if selector is not None and spec.get("targetRef") is not None:
        yield "only one of targetRefs or workloadSelector can be set"
    for key, value in ((selector or {}).get("matchLabels") or {}).items():
        if not key or "*" in key or "*" in str(value):
            yield f"selector: wildcard or empty label {key!r} is not supported"


def _ip_ok(value: str) -> bool:
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
