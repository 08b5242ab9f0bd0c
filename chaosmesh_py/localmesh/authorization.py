"""AuthorizationPolicy -> Envoy RBAC HTTP filters, as istiod builds them for a sidecar's inbound.

Pure. After istio/istio ``pilot/pkg/security/authz/builder/builder.go`` and ``model/*.go``
(``model.go``, ``generator.go``, ``util.go``) and ``authz/matcher``, with its worked examples
``builder/testdata/http/*-out.yaml``:

Which policies apply to a pod (``policies_for``, ``pilot/pkg/model/policyattachment.go``)
    Those in the root namespace (``istio-system``: mesh-wide) and in the pod's namespace whose
    ``selector.matchLabels`` are among the pod's labels (no selector: every pod). A policy with
    ``targetRef``/``targetRefs`` attaches to gateways and waypoints, never to a sidecar: skipped,
    as istiod does. (``chaosmesh_py.istio.authorization.selects`` says the same for product
    code; it parses the whole policy and refuses what it cannot read, where a translator must
    take every stored policy and skip only what istiod skips.) ``CUSTOM`` needs an ext_authz
    extension provider the local mesh has none of: skipped, and said on the policy's status
    (``unsupported``).

The filters (``rbac_filters``)
    One ``envoy.filters.http.rbac`` filter per action present, in the order AUDIT (RBAC action
    LOG), DENY, ALLOW. Each rule ``i`` of policy ``Y`` in namespace ``X`` is an RBAC policy named
    ``ns[X]-policy[Y]-rule[i]``; a policy with no rules is one never-matching RBAC policy
    ``...-rule[0]`` (so ALLOW with no rules denies everything, DENY with no rules denies
    nothing), and a rule with no ``from``/``to``/``when`` matches every request (ALLOW ``{}``).
    A policy annotated ``istio.io/dry-run: "true"`` goes in ``shadow_rules`` instead: counted
    (``http.<inbound prefix>.rbac.<istio_dry_run_allow_|istio_dry_run_deny_>shadow_allowed`` /
    ``shadow_denied``), never enforced. ``shadow_rules_stat_prefix`` is istiod's quirk too: the
    prefix of the shadow rules' action, ``istio_dry_run_allow_`` when there are none.

A rule -> an RBAC policy: ``permissions`` one per ``to`` entry (one ``any`` without ``to``),
``principals`` one per ``from`` entry (one ``any`` without ``from``), each the AND of its fields
in istiod's order (``to``: hosts, methods, paths, ports, then ``when``'s destination.ip,
destination.port, connection.sni, experimental.envoy.filters.*; ``from``: principals,
requestPrincipals, serviceAccounts, trustDomains, namespaces, remoteIpBlocks, ipBlocks, then
``when``'s other keys). A field's values are ORed; its ``notX`` values are NOT(OR). Matching:

- principals / ``source.principal``: ``authenticated.principal_name`` against ``spiffe://`` +
  value (``*`` any, ``x*`` prefix, ``*x`` suffix); they never match plain text (no
  certificate), which is ISTIO-SECURITY-2021-004's trap. namespaces: regex ``.*/ns/X/.*``.
- ipBlocks / ``source.ip``: ``direct_remote_ip``; remoteIpBlocks / ``remote.ip``: ``remote_ip``.
- requestPrincipals / ``request.auth.principal``: ``iss/sub`` as two metadata matchers on
  ``envoy.filters.http.jwt_authn``'s ``payload``; ``request.auth.audiences`` (``aud``),
  ``presenter`` (``azp``), ``claims[a][b]`` (nested): a metadata matcher on the claim's path
  accepting a string or a list holding one.
- hosts: ``:authority``, case-insensitive; methods: ``:method``; headers: the header; paths:
  the path (``{*}``/``{**}`` templates as Envoy's ``uri_template``); ports and
  ``destination.port``: ``destination_port``; ``connection.sni``: ``requested_server_name``.

What istiod does with what it cannot build, and so does this: an unknown ``when`` key skips the
rule (any action); a value it cannot convert (a port that is no number, an IP that is no
address, a malformed ``[name]``) skips the whole rule under ALLOW, and under DENY or AUDIT only
drops that value (the rule then matches more: fail closed). ``skipped_rules`` names them.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from chaosmesh_py.localmesh.envoy import JsonDict

RBAC_FILTER = "envoy.filters.http.rbac"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "payload"  # where jwt_authn puts a verified token's claims (payload_in_metadata)
ROOT_NAMESPACE = "istio-system"
DRY_RUN_ANNOTATION = "istio.io/dry-run"
# Istio's action -> Envoy's RBAC action, in the order istiod puts the filters.
ENVOY_ACTIONS = {"AUDIT": "LOG", "DENY": "DENY", "ALLOW": "ALLOW"}
SHADOW_STAT_PREFIXES = {"ALLOW": "istio_dry_run_allow_", "DENY": "istio_dry_run_deny_"}
URI_TEMPLATE_TYPE = (
    "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
)
SPIFFE_PREFIX = "spiffe://"
_MATCH_ANY: JsonDict = {"safe_regex": {"regex": ".+"}}
_NEVER: JsonDict = {
    "permissions": [{"not_rule": {"any": True}}],
    "principals": [{"not_id": {"any": True}}],
}


class RuleError(ValueError):
    """A value istiod's generators cannot convert (skips the rule or the value, see the module)."""


# --- which policies apply ------------------------------------------------------------------


def policies_for(
    resources: Iterable[Mapping[str, Any]],
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str = ROOT_NAMESPACE,
) -> list[Mapping[str, Any]]:
    """The policies (AuthorizationPolicy or RequestAuthentication) that attach to a sidecar of a
    pod in ``namespace`` with ``labels``, root namespace first, then oldest first."""
    chosen = []
    for resource in resources:
        metadata = resource.get("metadata") or {}
        spec = resource.get("spec") or {}
        if metadata.get("namespace") not in (root_namespace, namespace):
            continue
        if spec.get("targetRef") or spec.get("targetRefs"):
            continue  # gateways' and waypoints', never a sidecar's
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if all(labels.get(key) == value for key, value in selector.items()):
            chosen.append(resource)
    return sorted(chosen, key=lambda r: _age(r, root_namespace))


def _age(resource: Mapping[str, Any], root_namespace: str) -> tuple[int, str, str]:
    metadata = resource.get("metadata") or {}
    root_first = 0 if metadata.get("namespace") == root_namespace else 1
    return root_first, str(metadata.get("creationTimestamp") or ""), str(metadata.get("name"))


def unsupported(policy: Mapping[str, Any]) -> list[str]:
    """What of an AuthorizationPolicy the local mesh does not apply, one phrase each."""
    problems = policy_attachment_problems(policy)
    if (policy.get("spec") or {}).get("action") == "CUSTOM":
        problems.append("action CUSTOM (no ext_authz extension provider on the local mesh)")
    return problems


def policy_attachment_problems(policy: Mapping[str, Any]) -> list[str]:
    """A policy bound by ``targetRef(s)`` applies to no sidecar (``policies_for``)."""
    spec = policy.get("spec") or {}
    if spec.get("targetRef") or spec.get("targetRefs"):
        return ["targetRef(s): they attach to gateways and waypoints, not sidecars"]
    return []


def is_dry_run(policy: Mapping[str, Any]) -> bool:
    """istiod's ``strconv.ParseBool`` on the annotation (an unparsable value: not dry-run)."""
    value = ((policy.get("metadata") or {}).get("annotations") or {}).get(DRY_RUN_ANNOTATION)
    return str(value) in ("1", "t", "T", "TRUE", "true", "True")


def policy_name(namespace: str, name: str, rule: int) -> str:
    return f"ns[{namespace}]-policy[{name}]-rule[{rule}]"


# --- the filters ---------------------------------------------------------------------------


def rbac_filters(
    policies: Sequence[Mapping[str, Any]], listener_ports: Mapping[int, int] | None = None
) -> list[JsonDict]:
    """The RBAC HTTP filters for the policies that apply to one sidecar (``policies_for``).

    ``listener_ports``: where the port a policy names (the container port, what istiod's
    ``destination_port`` sees behind its 15006 listener) is the local listener's own port: on
    the local mesh each pod's inbound listens on a port of its own (see ``inbound``)."""
    filters = []
    for action, envoy_action in ENVOY_ACTIONS.items():
        chosen = [p for p in policies if ((p.get("spec") or {}).get("action") or "ALLOW") == action]
        if not chosen:
            continue
        enforced: dict[str, JsonDict] = {}
        shadow: dict[str, JsonDict] = {}
        has_enforced = has_shadow = False
        for policy in chosen:
            dry_run = is_dry_run(policy)
            has_shadow |= dry_run
            has_enforced |= not dry_run
            target = shadow if dry_run else enforced
            for name, generated in _rules(policy, action, listener_ports or {}):
                target[name] = generated
        config: JsonDict = {"@type": RBAC_TYPE}
        if has_enforced:
            config["rules"] = {"action": envoy_action, "policies": dict(sorted(enforced.items()))}
        if has_shadow:
            config["shadow_rules"] = {
                "action": envoy_action,
                "policies": dict(sorted(shadow.items())),
            }
        # istiod reads the action of the shadow rules, ALLOW's when there are none.
        prefix = SHADOW_STAT_PREFIXES.get(action if has_shadow else "ALLOW", "")
        if prefix:
            config["shadow_rules_stat_prefix"] = prefix
        filters.append({"name": RBAC_FILTER, "typed_config": config})
    return filters


def _rules(
    policy: Mapping[str, Any], action: str, listener_ports: Mapping[int, int]
) -> list[tuple[str, JsonDict]]:
    metadata = policy.get("metadata") or {}
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    rules = (policy.get("spec") or {}).get("rules") or []
    if not rules:
        return [(policy_name(namespace, name, 0), _NEVER)]
    built = []
    for index, rule in enumerate(rules):
        try:
            generated = generate(rule or {}, namespace, action, listener_ports)
        except RuleError:
            continue  # istiod: "skipped invalid rule" (see the module)
        built.append((policy_name(namespace, name, index), generated))
    return built


def skipped_rules(policy: Mapping[str, Any]) -> list[str]:
    """The rules of ``policy`` istiod would skip, each with why (for documentation and tests)."""
    metadata = policy.get("metadata") or {}
    spec = policy.get("spec") or {}
    action = spec.get("action") or "ALLOW"
    skipped = []
    for index, rule in enumerate(spec.get("rules") or []):
        try:
            generate(rule or {}, str(metadata.get("namespace")), action)
        except RuleError as error:
            skipped.append(f"rules[{index}]: {error}")
    return skipped


# --- one rule (model.New + Model.Generate) -------------------------------------------------

Field = tuple[str, list[str], list[str]]  # key, values, notValues

_PERMISSION_WHEN = ("destination.ip", "destination.port", "connection.sni")
_PRINCIPAL_WHEN = (
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.trustDomain",
    "source.serviceAccount",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
)
_ENVOY_FILTER_KEY = "experimental.envoy.filters."
# A ``from.source`` / ``to.operation`` field -> the attribute it is, in istiod's order.
_SOURCE_FIELDS = (
    ("principals", "source.principal"),
    ("requestPrincipals", "request.auth.principal"),
    ("serviceAccounts", "source.serviceAccount"),
    ("trustDomains", "source.trustDomain"),
    ("namespaces", "source.namespace"),
    ("remoteIpBlocks", "remote.ip"),
    ("ipBlocks", "source.ip"),
)
_OPERATION_FIELDS = (
    ("hosts", ":authority"),
    ("methods", ":method"),
    ("paths", "path"),
    ("ports", "destination.port"),
)


def generate(
    rule: Mapping[str, Any],
    namespace: str,
    action: str,
    listener_ports: Mapping[int, int] | None = None,
) -> JsonDict:
    """One AuthorizationPolicy rule as an Envoy RBAC policy (raises RuleError when istiod skips
    it under ``action``; ``listener_ports`` as ``rbac_filters``)."""
    base_permission: list[Field] = []
    base_principal: list[Field] = []
    for condition in rule.get("when") or []:
        key = str(condition.get("key"))
        field = (key, list(condition.get("values") or []), list(condition.get("notValues") or []))
        if key in _PERMISSION_WHEN or key.startswith(_ENVOY_FILTER_KEY):
            base = base_permission
        elif key in _PRINCIPAL_WHEN or key.startswith(("request.headers", "request.auth.claims")):
            base = base_principal
        else:
            raise RuleError(f"unknown attribute {key}")
        if field[1] or field[2]:
            base.append(field)
    principals = [
        _fields((from_entry or {}).get("source") or {}, _SOURCE_FIELDS, "not", base_principal)
        for from_entry in rule.get("from") or []
    ] or [base_principal]
    permissions = [
        _fields((to or {}).get("operation") or {}, _OPERATION_FIELDS, "not", base_permission)
        for to in rule.get("to") or []
    ] or [base_permission]
    return {
        "permissions": [
            _and_permission(fields, action, listener_ports or {}) for fields in permissions
        ],
        "principals": [_and_principal(fields, namespace, action) for fields in principals],
    }


def _fields(
    section: Mapping[str, Any],
    names: Sequence[tuple[str, str]],
    negation: str,
    base: list[Field],
) -> list[Field]:
    fields = []
    for name, key in names:
        values = list(section.get(name) or [])
        not_values = list(section.get(negation + name[0].upper() + name[1:]) or [])
        if values or not_values:
            fields.append((key, values, not_values))
    return fields + base


def _and_permission(
    fields: list[Field], action: str, listener_ports: Mapping[int, int]
) -> JsonDict:
    rules: list[JsonDict] = []
    build = functools.partial(_permission, listener_ports=listener_ports)
    for field in fields:
        rules += _combine(field, action, build, or_name="or_rules", list_name="rules")
    return {"and_rules": {"rules": [*rules] or [{"any": True}]}}


def _and_principal(fields: list[Field], namespace: str, action: str) -> JsonDict:
    ids: list[JsonDict] = []
    build = functools.partial(_principal, namespace=namespace)
    for field in fields:
        ids += _combine(field, action, build, or_name="or_ids", list_name="ids")
    return {"and_ids": {"ids": [*ids] or [{"any": True}]}}


_EXTENDED = ("request.auth.principal", "request.auth.audiences", "request.auth.presenter")


def _combine(
    field: Field,
    action: str,
    build: Callable[[str, list[str]], JsonDict | None],
    *,
    or_name: str,
    list_name: str,
) -> list[JsonDict]:
    """istiod's ``rule.permission`` / ``rule.principal``: the values ORed, the notValues as
    NOT(OR); a value that cannot be built fails the rule under ALLOW and is dropped otherwise.
    Keys matched on several values at once (``extended``: JWT claims) build all in one."""
    key, values, not_values = field
    extended = key in _EXTENDED or key.startswith(("request.auth.claims", _ENVOY_FILTER_KEY))
    not_name = "not_rule" if or_name == "or_rules" else "not_id"
    out: list[JsonDict] = []
    for negate, group in ((False, values), (True, not_values)):
        if not group:
            continue
        built: list[JsonDict] = []
        for chunk in [group] if extended else [[v] for v in group]:
            try:
                one = build(key, chunk)
            except RuleError:
                if action == "ALLOW":
                    raise
                continue
            if one is not None:
                built.append(one)
        if not built:
            continue
        combined = built[0] if extended else {or_name: {list_name: built}}
        out.append({not_name: combined} if negate else combined)
    return out


# --- generators ----------------------------------------------------------------------------


def _permission(key: str, values: list[str], listener_ports: Mapping[int, int]) -> JsonDict | None:
    if key.startswith(_ENVOY_FILTER_KEY):
        return _envoy_filter_metadata(key, values)
    (value,) = values
    if key == ":authority":
        return {"header": _header(":authority", value, ignore_case=True)}
    if key == ":method":
        return {"header": _header(":method", value)}
    if key == "path":
        if "{*}" in value or "{**}" in value:
            template = value.replace("{**}", "**").replace("{*}", "*")
            return {
                "uri_template": {
                    "name": "uri-template",
                    "typed_config": {"@type": URI_TEMPLATE_TYPE, "path_template": template},
                }
            }
        return {"url_path": {"path": string_matcher(value)}}
    if key == "destination.port":
        port = _port(value)
        return {"destination_port": listener_ports.get(port, port)}
    if key == "destination.ip":
        return {"destination_ip": _cidr(value)}
    if key == "connection.sni":
        return {"requested_server_name": string_matcher(value)}
    raise RuleError("unimplemented")


def _envoy_filter_metadata(key: str, values: list[str]) -> JsonDict:
    """``experimental.envoy.filters.<filter>[<key>]``: the filter's metadata at ``key``."""
    filter_name, _, rest = key.removeprefix("experimental.").removesuffix("]").partition("[")
    if not rest:
        raise RuleError(f"invalid key: {key}")
    matchers: list[JsonDict] = []
    for item in values:  # "[x]": x among a list's members
        string = {"string_match": string_matcher(item.strip("[]"))}
        listed = item.startswith("[") and item.endswith("]")
        matchers.append({"list_match": {"one_of": string}} if listed else string)
    value = matchers[0] if len(matchers) == 1 else {"or_match": {"value_matchers": matchers}}
    return {"metadata": {"filter": filter_name, "path": [{"key": rest}], "value": value}}


def _principal(key: str, values: list[str], namespace: str) -> JsonDict | None:
    if key == "request.auth.principal":
        return _request_principals(values)
    if key == "request.auth.audiences":
        return {"metadata": _jwt_claims(["aud"], values)}
    if key == "request.auth.presenter":
        return {"metadata": _jwt_claims(["azp"], values)}
    if key.startswith("request.auth.claims"):
        return {
            "metadata": _jwt_claims(nested_names(key.removeprefix("request.auth.claims")), values)
        }
    (value,) = values
    if key == "source.principal":
        return _authenticated(string_matcher(value, SPIFFE_PREFIX))
    if key == "source.namespace":
        pattern = ".*".join(quote_meta(part) for part in value.split("*"))
        return _authenticated(_regex(f".*/ns/{pattern}/.*"))
    if key == "source.serviceAccount":
        account_namespace, slash, account = value.partition("/")
        if not slash:
            account_namespace, account = namespace, value
        return _authenticated(
            _regex(
                f"spiffe://.+/ns/{quote_meta(account_namespace)}/(.+/|)sa/{quote_meta(account)}(/.+)?"
            )
        )
    if key == "source.trustDomain":
        if value == "*":
            return _authenticated({"prefix": SPIFFE_PREFIX})
        if "*" not in value:
            return _authenticated({"prefix": f"{SPIFFE_PREFIX}{value}/"})
        head, _, tail = value.partition("*")
        return _authenticated(_regex(f"spiffe://{quote_meta(head)}[^/]*{quote_meta(tail)}/.*"))
    if key == "source.ip":
        return {"direct_remote_ip": _cidr(value)}
    if key == "remote.ip":
        return {"remote_ip": _cidr(value)}
    if key.startswith("request.headers"):
        name = name_in_brackets(key.removeprefix("request.headers"))
        return {"header": _header(name, value)}
    raise RuleError("unimplemented")


def _request_principals(values: list[str]) -> JsonDict:
    """``iss/sub`` (split at the last ``/``) as two claim matchers, istiod's wildcard rules."""
    alternatives = []
    for value in values:
        iss, slash, sub = value.rpartition("/")
        if not slash:
            iss, sub = value, ""
        if value == "*":
            match_iss, match_sub = _MATCH_ANY, _MATCH_ANY
        elif value.startswith("*"):
            if slash:
                match_iss = _MATCH_ANY if iss == "*" else {"suffix": iss[1:]}
                match_sub = {"exact": sub}
            else:
                match_iss, match_sub = _MATCH_ANY, {"suffix": value[1:]}
        elif value.endswith("*"):
            if slash:
                match_iss = {"exact": iss}
                match_sub = _MATCH_ANY if sub == "*" else {"prefix": sub[:-1]}
            else:
                match_iss, match_sub = {"prefix": value[:-1]}, _MATCH_ANY
        else:
            match_iss, match_sub = {"exact": iss}, {"exact": sub}
        alternatives.append(
            {
                "and_ids": {
                    "ids": [
                        {"metadata": _jwt_claim_string("iss", match_iss)},
                        {"metadata": _jwt_claim_string("sub", match_sub)},
                    ]
                }
            }
        )
    return alternatives[0] if len(alternatives) == 1 else {"or_ids": {"ids": alternatives}}


def _jwt_claim_string(claim: str, matcher: JsonDict) -> JsonDict:
    return {
        "filter": JWT_FILTER,
        "path": [{"key": JWT_PAYLOAD}, {"key": claim}],
        "value": {"string_match": matcher},
    }


def _jwt_claims(claims: list[str], values: list[str]) -> JsonDict:
    """A claim holding one of ``values``, as a string or a list member (istiod's extended JWT
    matcher: ``aud`` may be either)."""
    matchers = [{"string_match": string_matcher(v)} for v in values]
    value = matchers[0] if len(matchers) == 1 else {"or_match": {"value_matchers": matchers}}
    return {
        "filter": JWT_FILTER,
        "path": [{"key": JWT_PAYLOAD}, *({"key": c} for c in claims)],
        "value": {"or_match": {"value_matchers": [{"list_match": {"one_of": value}}, value]}},
    }


def nested_names(text: str) -> list[str]:
    """``[a][b]`` -> ["a", "b"] (util.go's ``extractNameInNestedBrackets``)."""
    names = []
    begin = 0
    while begin < len(text):
        end = _end_bracket(text, begin)
        if end == -1:
            return [name_in_brackets(text)]
        names.append(text[begin + 1 : end])
        begin = end + 1
    return names


def name_in_brackets(text: str) -> str:
    """``[a]`` -> "a" (util.go's ``extractNameInBrackets``)."""
    if not (text.startswith("[") and text.endswith("]")):
        raise RuleError(f"expecting format [<NAME>], but found {text}")
    return text[1:-1]


def _end_bracket(text: str, begin: int) -> int:
    if begin >= len(text) or text[begin] != "[":
        return -1
    for index in range(begin + 1, len(text)):
        if text[index] == "[":
            return -1
        if text[index] == "]":
            return index
    return -1


# --- matchers (authz/matcher) --------------------------------------------------------------


def string_matcher(value: str, prefix: str = "") -> JsonDict:
    """istiod's ``StringMatcherWithPrefix``: ``*`` any non-empty, ``*x`` suffix, ``x*`` prefix."""
    if value == "*":
        return dict(_MATCH_ANY)
    if value.startswith("*"):
        if not prefix:
            return {"suffix": value[1:]}
        return _regex(prefix + ".*" + quote_meta(value[1:]))
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1]}
    return {"exact": prefix + value}


def _header(name: str, value: str, *, ignore_case: bool = False) -> JsonDict:
    """istiod's ``HeaderMatcher`` (``HostMatcher`` with ``ignore_case``)."""
    if value == "*":
        return {"name": name, "present_match": True}
    if value.startswith("*"):
        matcher: JsonDict = {"suffix": value[1:]}
    elif value.endswith("*"):
        matcher = {"prefix": value[:-1]}
    else:
        matcher = {"exact": value}
    if ignore_case:
        matcher["ignore_case"] = True
    return {"name": name, "string_match": matcher}


def _authenticated(matcher: JsonDict) -> JsonDict:
    return {"authenticated": {"principal_name": matcher}}


def _regex(pattern: str) -> JsonDict:
    return {"safe_regex": {"regex": pattern}}


def quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta`` (Python's ``re.escape`` escapes more, e.g. ``-``)."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in text)


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise RuleError(f"invalid port {value}")
    return int(value)


def _cidr(value: str) -> JsonDict:
    """``util.AddrStrToCidrRange``: an address (a /32 or /128) or a CIDR, as written."""
    try:
        if "/" in value:
            interface = ipaddress.ip_interface(value)
            return {
                "address_prefix": str(interface.ip),
                "prefix_len": interface.network.prefixlen,
            }
        address = ipaddress.ip_address(value)
    except ValueError as error:
        raise RuleError(f"invalid IP address or CIDR {value}: {error}") from None
    return {"address_prefix": str(address), "prefix_len": address.max_prefixlen}
