"""What Istio's AuthorizationPolicy decides for one request, without a proxy. Pure: data in,
data out.

The semantics are istiod's (``pilot/pkg/security/authz/builder`` and ``model``) and istio.io's
authorization reference, in the order the sidecar applies them:

- Which workloads a policy selects: a policy in the root namespace without a selector selects
  every workload of the mesh, with a selector the matching workloads of every namespace; any
  other policy only workloads of its own namespace (all of them without a selector). A policy
  with ``targetRef(s)`` binds to a gateway or a waypoint, never to a sidecar.
- CUSTOM policies (an external authorizer) are not evaluated here: the decision says so.
  AUDIT policies never change a decision. A policy annotated ``istio.io/dry-run: "true"`` is
  shadow only: it counts in Envoy's ``shadow_*`` stats and changes nothing.
- A matching DENY policy denies. Otherwise, when ALLOW policies select the workload, one of
  them must match; when none selects it, the request is allowed.
- A policy without rules matches nothing (an ALLOW without rules: nothing is allowed), a rule
  ``{}`` matches everything. Inside a rule: any ``from`` entry AND any ``to`` entry AND every
  ``when`` condition; inside an entry every field; inside a field any value. A ``notX`` field
  matches when none of its values does.
- Values match as Istio's string matchers: ``*`` any non-empty value, ``abc*`` a prefix,
  ``*abc`` a suffix, else exactly; paths also take ``{*}`` (one segment) and ``{**}`` (the rest
  of the path); hosts ignore case.
- mTLS-only fields (``principals``, ``namespaces``, ``serviceAccounts``, ``trustDomains``, their
  ``not`` forms, ``source.principal`` / ``source.namespace`` / ``source.serviceAccount``
  conditions) compare against an empty value on plain text: the positive form never matches,
  the ``not`` form always does (ISTIO-SECURITY-2021-004).
- ``requestPrincipals`` (``iss/sub``), ``request.auth.*`` conditions and claims compare with
  what a valid JWT carried; without one (no token, or a RequestAuthentication that let a
  request without a token pass) they compare against an empty value likewise.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosmesh_py.errors import InvalidInput, shown

ROOT_NAMESPACE = "istio-system"
DRY_RUN_ANNOTATION = "istio.io/dry-run"
ACTIONS = ("ALLOW", "DENY", "AUDIT", "CUSTOM")
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

# Source fields: (value form, not form). Order is istiod's (model.New) for readable reasons.
SOURCE_FIELDS = (
    ("principals", "notPrincipals"),
    ("requestPrincipals", "notRequestPrincipals"),
    ("serviceAccounts", "notServiceAccounts"),
    ("namespaces", "notNamespaces"),
    ("trustDomains", "notTrustDomains"),
    ("remoteIpBlocks", "notRemoteIpBlocks"),
    ("ipBlocks", "notIpBlocks"),
)
OPERATION_FIELDS = (
    ("hosts", "notHosts"),
    ("methods", "notMethods"),
    ("paths", "notPaths"),
    ("ports", "notPorts"),
)
# Fields and condition keys Envoy can only compare with a peer certificate's identity.
# (A Values carries a field's positive name; its not-values are the ``not`` form.)
MTLS_ONLY_FIELDS = frozenset({"principals", "namespaces", "serviceAccounts", "trustDomains"})
MTLS_ONLY_KEYS = frozenset({"source.principal", "source.namespace", "source.serviceAccount"})
# ...and those a valid JWT provides (RequestAuthentication's payload in Envoy's metadata).
TOKEN_FIELDS = frozenset({"requestPrincipals"})
TOKEN_KEYS = ("request.auth.principal", "request.auth.audiences", "request.auth.presenter")
CLAIMS_KEY = "request.auth.claims"
# Claims istiod has jwt_authn split on spaces (normalize_payload_in_metadata): "scope: a b"
# matches "a" and "b", as a list claim would.
SPACE_DELIMITED_CLAIMS = ("scope", "permission")
HEADERS_KEY = "request.headers"
CONDITION_KEYS = (
    *MTLS_ONLY_KEYS,
    *TOKEN_KEYS,
    "source.ip",
    "remote.ip",
    "destination.ip",
    "destination.port",
    "connection.sni",
)
_CLAIM_PATH = re.compile(r"^request\.auth\.claims((?:\[[^\[\]]+\])+)$")
_HEADER_NAME = re.compile(r"^request\.headers\[([^\[\]]+)\]$")


@dataclass(frozen=True)
class Values:
    """One field of a source or an operation (or one condition): its values and not-values."""

    name: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """``from`` entries (each a tuple of source fields; empty: any source), ``to`` entries
    (operation fields; empty: any operation) and ``when`` conditions (all must hold)."""

    sources: tuple[tuple[Values, ...], ...] = ()
    operations: tuple[tuple[Values, ...], ...] = ()
    conditions: tuple[Values, ...] = ()

    def fields(self) -> Iterable[Values]:
        for entry in (*self.sources, *self.operations):
            yield from entry
        yield from self.conditions


@dataclass(frozen=True)
class AuthorizationPolicy:
    name: str
    namespace: str
    action: str
    # matchLabels; None: no selector (every workload of the namespace, or of the mesh)
    selector: Mapping[str, str] | None
    rules: tuple[Rule, ...]
    dry_run: bool = False
    bound_to_gateway: bool = False  # targetRef(s): never a sidecar's
    provider: str | None = None
    created: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class RequestFacts:
    """What the destination's sidecar knows of one request.

    ``source_principal`` is the peer certificate's identity ("cluster.local/ns/N/sa/S"), None on
    plain text. ``source_namespace`` is where the caller really runs; Envoy learns it only from
    the principal, so it is never compared on plain text (it is kept for the decision's reason).
    ``request_principal`` ("iss/sub") and ``claims`` come from a valid JWT; None without one.
    """

    namespace: str
    labels: Mapping[str, str]
    port: int | None = None
    source_principal: str | None = None
    source_namespace: str | None = None
    source_ip: str | None = None
    remote_ip: str | None = None  # from X-Forwarded-For; the source ip when None
    method: str = "GET"
    path: str = "/"
    host: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    request_principal: str | None = None
    claims: Mapping[str, Any] | None = None
    destination_ip: str | None = None
    sni: str | None = None


@dataclass(frozen=True)
class Decision:
    """``by``: the policy ("namespace/name") whose match decided; None when none matched
    (allowed with no ALLOW policy selecting the workload, denied when some did)."""

    allowed: bool
    by: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "by": self.by, "reason": self.reason}


# ------------------------------------------------------------------ parsing


def parse(resource: Mapping[str, Any]) -> AuthorizationPolicy:
    """An AuthorizationPolicy resource, normalised; InvalidInput naming the field when it is
    not one Istio's webhook would accept."""
    if not isinstance(resource, Mapping):
        raise InvalidInput(
            "policy", f"must be an AuthorizationPolicy object, got {shown(resource)}"
        )
    metadata = resource.get("metadata") or {}
    name = str(metadata.get("name") or "")
    where = f"AuthorizationPolicy {metadata.get('namespace') or 'default'}/{name}"
    spec = resource.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{where} spec", f"must be an object, got {shown(spec)}")
    action = spec.get("action") or "ALLOW"
    if action not in ACTIONS:
        raise InvalidInput(
            f"{where} spec.action", f"{shown(action)} is no action", f"one of {ACTIONS}"
        )
    provider = (spec.get("provider") or {}).get("name") if action == "CUSTOM" else None
    if action == "CUSTOM" and not provider:
        raise InvalidInput(f"{where} spec.provider", "a CUSTOM policy needs a provider name")
    raw_rules = spec.get("rules") or []
    if not isinstance(raw_rules, list):
        raise InvalidInput(f"{where} spec.rules", f"must be a list, got {shown(raw_rules)}")
    annotations = metadata.get("annotations") or {}
    return AuthorizationPolicy(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        action=str(action),
        selector=_selector(spec.get("selector"), f"{where} spec.selector"),
        rules=tuple(_rule(rule, f"{where} spec.rules[{i}]") for i, rule in enumerate(raw_rules)),
        dry_run=str(annotations.get(DRY_RUN_ANNOTATION, "")).lower() == "true",
        bound_to_gateway=bool(spec.get("targetRef") or spec.get("targetRefs")),
        provider=str(provider) if provider else None,
        created=str(metadata.get("creationTimestamp") or ""),
    )


def _selector(selector: Any, where: str) -> Mapping[str, str] | None:
    if selector is None:
        return None
    labels = selector.get("matchLabels") if isinstance(selector, Mapping) else None
    if labels is not None and not (
        isinstance(labels, Mapping) and all(isinstance(v, str) for v in labels.values())
    ):
        raise InvalidInput(
            f"{where}.matchLabels", f"must map labels to strings, got {shown(labels)}"
        )
    return dict(labels or {})


def _rule(rule: Any, where: str) -> Rule:
    if not isinstance(rule, Mapping):
        raise InvalidInput(where, f"must be an object, got {shown(rule)}")
    sources = tuple(
        _entry(entry, "source", SOURCE_FIELDS, f"{where}.from[{i}]")
        for i, entry in enumerate(rule.get("from") or [])
    )
    operations = tuple(
        _entry(entry, "operation", OPERATION_FIELDS, f"{where}.to[{i}]")
        for i, entry in enumerate(rule.get("to") or [])
    )
    conditions = tuple(
        _condition(condition, f"{where}.when[{i}]")
        for i, condition in enumerate(rule.get("when") or [])
    )
    return Rule(sources, operations, conditions)


def _entry(
    entry: Any, part: str, names: Sequence[tuple[str, str]], where: str
) -> tuple[Values, ...]:
    body = entry.get(part) if isinstance(entry, Mapping) else None
    if not isinstance(body, Mapping) or not body:
        # Istio's webhook: "`from.source` must not be empty" (likewise `to.operation`).
        raise InvalidInput(
            f"{where}.{part}", "must not be empty", f"name at least one field of {part}"
        )
    known = {n for pair in names for n in pair}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidInput(
            f"{where}.{part}.{unknown[0]}", "is no field of a " + part, f"one of {sorted(known)}"
        )
    fields = []
    for value_name, not_name in names:
        values = _strings(body.get(value_name), f"{where}.{part}.{value_name}")
        not_values = _strings(body.get(not_name), f"{where}.{part}.{not_name}")
        if values or not_values:
            fields.append(Values(value_name, values, not_values))
    return tuple(fields)


def _condition(condition: Any, where: str) -> Values:
    if not isinstance(condition, Mapping) or not isinstance(condition.get("key"), str):
        raise InvalidInput(
            f"{where}.key", "a condition needs a key", 'e.g. "request.headers[version]"'
        )
    key = condition["key"]
    if not known_condition_key(key):
        raise InvalidInput(
            f"{where}.key",
            f"{shown(key)} is no attribute Istio knows",
            f"one of {sorted(CONDITION_KEYS)}, request.headers[NAME], request.auth.claims[NAME]",
        )
    values = _strings(condition.get("values"), f"{where}.values")
    not_values = _strings(condition.get("notValues"), f"{where}.notValues")
    if not values and not not_values:
        raise InvalidInput(where, "a condition needs values or notValues")
    return Values(key, values, not_values)


def known_condition_key(key: str) -> bool:
    return (
        key in CONDITION_KEYS
        or bool(_CLAIM_PATH.match(key) or _HEADER_NAME.match(key))
        or key.startswith("experimental.envoy.filters.")
    )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(where, f"must be a list of strings, got {shown(value)}")
    return tuple(value)


# ------------------------------------------------------------------ selection


def selects(
    policy: AuthorizationPolicy | Mapping[str, Any],
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str = ROOT_NAMESPACE,
) -> bool:
    """Whether ``policy`` applies to a sidecar workload in ``namespace`` carrying ``labels``."""
    policy = _parsed(policy)
    if policy.bound_to_gateway:
        return False
    return _in_scope(policy.namespace, policy.selector, namespace, labels, root_namespace)


def resource_selects(
    resource: Mapping[str, Any],
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str = ROOT_NAMESPACE,
) -> bool:
    """The same scope rule for a RequestAuthentication (istiod selects it as a policy):
    ``resource`` applies to a sidecar workload in ``namespace`` carrying ``labels``."""
    metadata = resource.get("metadata") or {}
    spec = resource.get("spec") or {}
    if spec.get("targetRef") or spec.get("targetRefs"):
        return False
    selector = spec.get("selector")
    labels_wanted = None if selector is None else dict(selector.get("matchLabels") or {})
    own = str(metadata.get("namespace") or "default")
    return _in_scope(own, labels_wanted, namespace, labels, root_namespace)


def _in_scope(
    own_namespace: str,
    selector: Mapping[str, str] | None,
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str,
) -> bool:
    if own_namespace not in (namespace, root_namespace):
        return False
    return selector is None or all(labels.get(k) == v for k, v in selector.items())


def _parsed(policy: AuthorizationPolicy | Mapping[str, Any]) -> AuthorizationPolicy:
    return policy if isinstance(policy, AuthorizationPolicy) else parse(policy)


# ------------------------------------------------------------------ evaluation


def decide(
    policies: Iterable[AuthorizationPolicy | Mapping[str, Any]],
    request: RequestFacts,
    *,
    root_namespace: str = ROOT_NAMESPACE,
    enforce_dry_run: bool = False,
) -> Decision:
    """Istio's decision for ``request`` under ``policies`` (all of the mesh's; those that do not
    select the destination are left out here). ``enforce_dry_run``: decide as if the dry-run
    policies were enforced (what their shadow rules report)."""
    applicable = sorted(
        (
            p
            for p in map(_parsed, policies)
            if selects(p, request.namespace, request.labels, root_namespace)
            and (enforce_dry_run or not p.dry_run)
        ),
        key=lambda p: (p.created, p.key),
    )
    facts = _Facts(request)
    custom = [p.key for p in applicable if p.action == "CUSTOM"]
    note = f"; CUSTOM {', '.join(custom)} not evaluated (an external authorizer)" if custom else ""
    for policy in applicable:
        if policy.action == "DENY":
            rule = _first_matching_rule(policy, facts)
            if rule is not None:
                return Decision(False, policy.key, f"DENY {policy.key} rule {rule} matched{note}")
    allows = [p for p in applicable if p.action == "ALLOW"]
    if not allows:
        return Decision(True, None, f"no ALLOW policy selects the workload{note}")
    for policy in allows:
        rule = _first_matching_rule(policy, facts)
        if rule is not None:
            return Decision(True, policy.key, f"ALLOW {policy.key} rule {rule} matched{note}")
    names = ", ".join(p.key for p in allows)
    return Decision(
        False, None, f"no rule of the ALLOW policies {names} matched{_why(request)}{note}"
    )


def _why(request: RequestFacts) -> str:
    gaps = []
    if request.source_principal is None:
        gaps.append("plain text: no peer principal")
    if request.request_principal is None:
        gaps.append("no valid token")
    return f" ({'; '.join(gaps)})" if gaps else ""


def first_matching_rule(policy: AuthorizationPolicy, request: RequestFacts) -> int | None:
    """The index of ``policy``'s first rule matching ``request``; None if none does."""
    return _first_matching_rule(policy, _Facts(request))


def _first_matching_rule(policy: AuthorizationPolicy, facts: _Facts) -> int | None:
    for index, rule in enumerate(policy.rules):
        if _rule_matches(rule, facts, policy.namespace):
            return index
    return None


def rule_matches(rule: Rule, request: RequestFacts, policy_namespace: str) -> bool:
    return _rule_matches(rule, _Facts(request), policy_namespace)


def _rule_matches(rule: Rule, facts: _Facts, policy_namespace: str) -> bool:
    def holds(values: Values) -> bool:
        return facts.holds(values, policy_namespace)

    sources = not rule.sources or any(all(map(holds, e)) for e in rule.sources)
    operations = not rule.operations or any(all(map(holds, e)) for e in rule.operations)
    return sources and operations and all(map(holds, rule.conditions))


class _Facts:
    """A request's attributes as Istio's generators read them: each a list of values (a claim
    may be a list), empty when the request does not carry the attribute. Read once per
    decision, for every rule of every policy."""

    def __init__(self, request: RequestFacts) -> None:
        self.request = request
        self._read: dict[str, list[str]] = {}

    def holds(self, values: Values, policy_namespace: str) -> bool:
        present = self._read.get(values.name)
        if present is None:
            present = self._read[values.name] = self.attribute(values.name)
        match: Callable[[str, str], bool]
        if values.name in ("serviceAccounts", "source.serviceAccount"):
            # "name" alone is a service account of the policy's namespace (istiod's generator).
            def match(value: str, actual: str) -> bool:
                return (value if "/" in value else f"{policy_namespace}/{value}") == actual
        else:
            match = _MATCHERS.get(values.name, _istio_match)
        if values.values and not any(match(v, a) for v in values.values for a in present):
            return False
        return not any(match(v, a) for v in values.not_values for a in present)

    def attribute(self, name: str) -> list[str]:
        r = self.request
        peer = _principal_parts(r.source_principal)
        claims = r.claims if r.request_principal is not None else None
        simple: dict[str, str | None] = {
            "principals": r.source_principal,
            "source.principal": r.source_principal,
            "namespaces": peer[1],
            "source.namespace": peer[1],
            "trustDomains": peer[0],
            "serviceAccounts": f"{peer[1]}/{peer[2]}" if peer[1] else None,
            "source.serviceAccount": f"{peer[1]}/{peer[2]}" if peer[1] else None,
            "requestPrincipals": r.request_principal,
            "request.auth.principal": r.request_principal,
            "request.auth.presenter": _text((claims or {}).get("azp")),
            "ipBlocks": r.source_ip,
            "source.ip": r.source_ip,
            "remoteIpBlocks": r.remote_ip or r.source_ip,
            "remote.ip": r.remote_ip or r.source_ip,
            "destination.ip": r.destination_ip,
            "connection.sni": r.sni,
            "hosts": r.host,
            "methods": r.method,
            "paths": r.path.split("?", 1)[0],
            "ports": str(r.port) if r.port is not None else None,
            "destination.port": str(r.port) if r.port is not None else None,
        }
        if name in simple:
            value = simple[name]
            return [value] if value else []
        if name == "request.auth.audiences":
            return _listed((claims or {}).get("aud"))
        claim = _CLAIM_PATH.match(name)
        if claim:
            node: Any = claims or {}
            steps = re.findall(r"\[([^\[\]]+)\]", claim.group(1))
            for step in steps:
                node = node.get(step) if isinstance(node, Mapping) else None
            if len(steps) == 1 and steps[0] in SPACE_DELIMITED_CLAIMS and isinstance(node, str):
                return node.split()
            return _listed(node)
        header = _HEADER_NAME.match(name)
        if header:
            wanted = header.group(1).lower()
            return [v for k, v in r.headers.items() if k.lower() == wanted and v]
        return []  # experimental.envoy.filters.*: metadata this evaluator does not have


def _principal_parts(principal: str | None) -> tuple[str | None, str | None, str | None]:
    """(trust domain, namespace, service account) of "td/ns/N/sa/S"; Nones when not that form."""
    parts = (principal or "").split("/")
    if len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa":
        return parts[0], parts[2], parts[4]
    return None, None, None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _listed(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float) and str(v)]
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, bool):
        return [str(value).lower()]
    if isinstance(value, int | float):
        return [str(value)]
    return []


def istio_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Istio's string matcher: ``*`` any non-empty value, ``abc*`` prefix, ``*abc`` suffix."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if not value:
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return pattern == value


def _istio_match(pattern: str, value: str) -> bool:
    return istio_match(pattern, value)


def path_match(pattern: str, path: str) -> bool:
    """Istio's path matcher: the string forms, or a template with ``{*}`` (one segment) and
    ``{**}`` (everything after, the last operator)."""
    if "{*" not in pattern:
        return istio_match(pattern, path)
    expression = "".join(
        "[^/]+" if piece == "{*}" else ".*" if piece == "{**}" else re.escape(piece)
        for piece in re.split(r"(\{\*\*?\})", pattern)
    )
    return re.fullmatch(expression, path) is not None


def _ip_match(block: str, address: str) -> bool:
    try:
        network = ipaddress.ip_network(block, strict=False)
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


def _principal_match(pattern: str, principal: str) -> bool:
    # istiod writes "spiffe://" + the value (a prefix or exact match; a suffix as written):
    # a value that already starts with "spiffe://" never matches.
    if pattern.startswith("spiffe://"):
        return False
    return istio_match(pattern, principal)


_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "principals": _principal_match,
    "source.principal": _principal_match,
    "hosts": lambda p, v: istio_match(p, v, ignore_case=True),
    "methods": lambda p, v: p == v,
    "paths": path_match,
    "ports": lambda p, v: p == v,
    "destination.port": lambda p, v: p == v,
    "ipBlocks": _ip_match,
    "source.ip": _ip_match,
    "remoteIpBlocks": _ip_match,
    "remote.ip": _ip_match,
    "destination.ip": _ip_match,
}


# ------------------------------------------------------------------ what a policy relies on


def mtls_only_uses(policy: AuthorizationPolicy) -> list[tuple[int, Values]]:
    """(rule index, field or condition) for each mTLS-only field a rule of ``policy`` uses."""
    return [
        (index, values)
        for index, rule in enumerate(policy.rules)
        for values in rule.fields()
        if values.name in MTLS_ONLY_FIELDS or values.name in MTLS_ONLY_KEYS
    ]


def plaintext_bypass(policy: AuthorizationPolicy) -> list[tuple[int, str]]:
    """The uses of mTLS-only fields through which a plain-text request gets what the author
    meant to refuse it: in an ALLOW policy a ``not`` form (it matches the empty value), in a
    DENY policy a positive form (it never matches plain text, so the DENY never fires).
    ALLOW with a positive form and DENY with a ``not`` form refuse plain text: safe."""
    found = []
    for index, values in mtls_only_uses(policy):
        if policy.action == "ALLOW" and values.not_values:
            found.append((index, field_label(values, negative=True)))
        if policy.action == "DENY" and values.values:
            found.append((index, field_label(values, negative=False)))
    return found


def field_label(values: Values, *, negative: bool) -> str:
    """How the policy's author wrote the field: ``notNamespaces``, ``when source.namespace
    notValues``."""
    if "." in values.name:
        return f"when {values.name} {'notValues' if negative else 'values'}"
    if negative:
        return "not" + values.name[0].upper() + values.name[1:]
    return values.name
