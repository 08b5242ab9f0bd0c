"""Port of VirtualService validation: ``ValidateVirtualService`` and the rule analysis of
``pkg/config/validation/validation.go``, and ``pkg/config/validation/virtualservice.go``
(``validateHTTPRoute``, ``validateHTTPRouteConflict``, ``validateHTTPRouteMatchRequest``,
``validateAuthorityRewrite``), with TLS and TCP routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from chaosmesh_py.localmesh.apiserver.webhook import agent, golang, names
from chaosmesh_py.localmesh.apiserver.webhook import validation as v
from chaosmesh_py.localmesh.apiserver.webhook.golang import Err, Validation
from chaosmesh_py.localmesh.apiserver.webhook.proto import Message

MESH_GATEWAY = "mesh"
INTERNAL_ROUTE_SEMANTICS = "internal.istio.io/route-semantics"


class _RouteType(Enum):
    INDEPENDENT = auto()
    ROOT = auto()  # delegates to another VirtualService
    DELEGATE = auto()  # a route of a delegate VirtualService (one without hosts)


def validate_virtual_service(
    spec: Message, namespace: str, annotations: dict[str, str]
) -> Validation:
    """``ValidateVirtualService``."""
    errs = Validation()
    hosts, gateways = spec.texts("hosts"), spec.texts("gateways")
    http, tls, tcp = spec.messages("http"), spec.messages("tls"), spec.messages("tcp")
    if not hosts:  # a delegate
        for present, what in ((gateways, "gateways"), (tls, "tls route"), (tcp, "tcp route")):
            if present:
                message = f"delegate virtual service must have no {what} specified"
                errs = golang.append_validation(errs, golang.error(message))
    gateway_semantics = annotations.get(INTERNAL_ROUTE_SEMANTICS) == "gateway"
    applies_to_gateway = False
    if gateways:
        errs = golang.append_validation(errs, v.validate_gateway_names(gateways, gateway_semantics))
        applies_to_gateway = MESH_GATEWAY not in gateways
    if not applies_to_gateway:
        errs = golang.append_validation(errs, *_jwt_claim_route_errors(http, gateways))
    errs = golang.append_validation(errs, *_host_errors(hosts, applies_to_gateway, tls))

    if not http and not tcp and not tls:
        message = "http, tcp or tls must be provided in virtual service"
        errs = golang.append_validation(errs, golang.error(message))
    for route in http:
        if route is None:
            errs = golang.append_validation(errs, golang.error("http route may not be null"))
            continue
        errs = golang.append_validation(
            errs, validate_http_route(route, not hosts, gateway_semantics)
        )
    for tls_route in tls:
        errs = golang.append_validation(
            errs, _validate_tls_route(tls_route, hosts, gateways, gateway_semantics)
        )
    for tcp_route in tcp:
        errs = golang.append_validation(errs, _validate_tcp_route(tcp_route, gateway_semantics))
    errs = golang.append_validation(
        errs, names.validate_export_to(namespace, spec.texts("exportTo"), False, False)
    )
    return golang.append_validation(errs, *_unreachable_rule_warnings(http, tcp, tls))


def _jwt_claim_route_errors(http: list[Message | None], gateways: list[str]) -> list[Err]:
    """JWT-claim header keys, which only a gateway can route on."""
    found: list[Err] = []
    for route in http:
        for match in route.messages("match") if route else []:
            for field in ("headers", "withoutHeaders"):
                for key in match.message_map(field) if match else {}:
                    if names.is_jwt_routing_claim(key):
                        found.append(
                            golang.error(
                                f"JWT claim based routing (key: {key}) is only supported for "
                                f"gateway, found no gateways: {golang.slice_v(gateways)}"
                            )
                        )
    return found


def _host_errors(
    hosts: list[str], applies_to_gateway: bool, tls: list[Message | None]
) -> list[Err]:
    found: list[Err] = []
    all_hosts_valid = True
    sni = _is_sni_host(tls)
    for host in hosts:
        if applies_to_gateway:
            problem = agent.validate_wildcard_domain_for_virtual_service_bound_to_gateway(sni, host)
        else:
            problem = agent.validate_wildcard_domain(host)
        if problem is not None:
            if not golang.is_ip_address(host):
                found.append(problem)
                all_hosts_valid = False
        elif not applies_to_gateway and host == "*":
            message = (
                "wildcard host * is not allowed for virtual services bound to the mesh gateway"
            )
            found.append(golang.error(message))
            all_hosts_valid = False
    if all_hosts_valid:  # duplicates: the same name, or one wildcard covering another
        for index, first in enumerate(hosts):
            for second in hosts[index + 1 :]:
                if names.host_matches(first, second):
                    message = f"duplicate hosts in virtual service: {first} & {second}"
                    found.append(golang.error(message))
    return found


def _unreachable_rule_warnings(
    http: list[Message | None], tcp: list[Message | None], tls: list[Message | None]
) -> list[Validation]:
    warnings: list[Validation] = []

    def unused(rule: str, reason: str) -> None:
        warnings.append(golang.warning(f"virtualService rule {rule} not used ({reason})"))

    def ineffective(rule: str, match: str, duplicate: str) -> None:
        warnings.append(
            golang.warning(
                f"virtualService rule {rule} match {match} is not used "
                f"(duplicate/overlapping match in rule {duplicate})"
            )
        )

    _analyze_unreachable_rules(http, unused, ineffective, http=True)
    for routes in (tcp, tls):
        _analyze_unreachable_rules(routes, unused, ineffective, http=False)
    return warnings


def _is_sni_host(tls: list[Message | None]) -> bool:
    return any(
        match is not None and match.texts("sniHosts")
        for route in tls
        if route is not None
        for match in route.messages("match")
    )


# -- virtualservice.go -----------------------------------------------------------------------


def validate_http_route(http: Message, delegate: bool, gateway_semantics: bool) -> Validation:
    """``validateHTTPRoute``."""
    if delegate:
        route_type = _RouteType.DELEGATE
    elif http.has("delegate"):
        route_type = _RouteType.ROOT
    else:
        route_type = _RouteType.INDEPENDENT
    errs = Validation(err=_validate_http_route_conflict(http, route_type))
    errs = golang.append_validation(errs, _validate_http_route_match_request(http))
    headers = http.message("headers")
    errs = golang.append_validation(errs, *v.header_operation_errors(headers))
    errs = golang.append_validation(errs, v.validate_cors_policy(http.message("corsPolicy")))
    errs = golang.append_validation(errs, v.validate_http_fault_injection(http.message("fault")))

    if http.has("mirrorPercent"):
        value = http.integer("mirrorPercent", "uint32")
        if value > 100:
            message = f"mirror_percent must have a max value of 100 (it has {value})"
            errs = golang.append_validation(errs, golang.error(message))
        errs = golang.append_validation(
            errs,
            golang.warning(
                'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead'
            ),
        )
    errs = golang.append_validation(
        errs, *v.mirror_percentage_errors(http.message("mirrorPercentage"), "mirror_percentage")
    )

    matches = http.messages("match")
    rewrite = http.message("rewrite")
    errs = golang.append_validation(
        errs,
        v.validate_destination(http.message("mirror")),
        v.validate_http_mirrors(http.messages("mirrors")),
        v.validate_http_redirect(http.message("redirect"), matches),
        v.validate_http_direct_response(http.message("directResponse")),
        agent.validate_http_retry(http.message("retries")),
        v.validate_http_rewrite(rewrite),
        _validate_authority_rewrite(rewrite, headers),
        v.validate_http_route_destinations(http.messages("route"), gateway_semantics),
    )
    timeout = http.duration("timeout")
    if timeout is not None:
        errs = golang.append_validation(errs, agent.validate_duration(timeout))
    return errs


def _validate_authority_rewrite(rewrite: Message | None, headers: Message | None) -> Err:
    """Authority may be rewritten in one place only."""
    current = rewrite.text("authority") if rewrite else ""
    request = headers.message("request") if headers else None
    for field in ("set", "add"):
        for key, value in (request.text_map(field) if request else {}).items():
            if not v.is_authority_header(key):
                continue
            if current != "":
                return golang.error(
                    f"authority header cannot be set multiple times: have {golang.quote(current)}, "
                    f"attempting to set {golang.quote(value)}"
                )
            current = value
    return None


def _validate_http_route_match_request(http: Message) -> Err:
    errs: Err = None
    matches = [match for match in http.messages("match") if match is not None]
    for match in matches:
        for name, header in match.message_map("headers").items():
            if header is None:
                problem = golang.error(f"header match {name} cannot be null")
                errs = golang.append_errors(errs, problem)
            errs = golang.append_errors(
                errs,
                v.validate_http_header_name_or_jwt_claim_route(name),
                v.validate_string_match(header, "headers"),
            )
        for name, header in match.message_map("withoutHeaders").items():
            errs = golang.append_errors(errs, v.validate_http_header_name_or_jwt_claim_route(name))
            # `*` is not a regex here: Istio turns it into a presence match.
            if header is not None and not (
                header.oneof(*v.MATCH_TYPES) == "regex" and header.text("regex") == "*"
            ):
                errs = golang.append_errors(errs, v.validate_string_match(header, "withoutHeaders"))
        # An empty prefix is allowed for uri only (Envoy's route match takes it).
        errs = golang.append_errors(
            errs, v.validate_string_match_regexp(match.message("uri"), "uri")
        )
        for field in ("scheme", "method", "authority"):
            errs = golang.append_errors(errs, v.validate_string_match(match.message(field), field))
        for query in match.message_map("queryParams").values():
            errs = golang.append_errors(errs, v.validate_string_match(query, "queryParams"))
    for match in matches:
        port = match.integer("port", "uint32")
        if port != 0:
            errs = golang.append_errors(errs, agent.validate_port(port))
        errs = golang.append_errors(
            errs,
            names.validate_labels(match.text_map("sourceLabels")),
            v.validate_gateway_names(match.texts("gateways"), False),
        )
        source_namespace = match.text("sourceNamespace")
        if source_namespace != "" and not names.is_dns1123_label(source_namespace):
            problem = golang.error(f"sourceNamespace match {source_namespace} is invalid")
            errs = golang.append_errors(errs, problem)
    return errs


def _validate_http_route_conflict(http: Message, route_type: _RouteType) -> Err:
    errs: Err = None

    def add(message: str) -> None:
        nonlocal errs
        errs = golang.append_errors(errs, golang.error(message))

    if route_type is _RouteType.ROOT:
        if http.has("redirect"):
            add(f"root HTTP route {http.text('name')} must not specify redirect")
        if http.has("route"):
            add(f"root HTTP route {http.text('name')} must not specify route")
        return errs
    if route_type is _RouteType.DELEGATE and http.has("delegate"):
        add("delegate HTTP route cannot contain delegate")
    forwards = len(http.messages("route")) > 0
    if http.has("redirect"):
        if forwards:
            add("HTTP route cannot contain both route and redirect")
        if http.has("fault"):
            add("HTTP route cannot contain both fault and redirect")
        if http.has("rewrite"):
            add("HTTP route rule cannot contain both rewrite and redirect")
        if http.has("directResponse"):
            add("HTTP route rule cannot contain both direct_response and redirect")
    elif http.has("directResponse"):
        if forwards:
            add("HTTP route cannot contain both route and direct_response")
        if http.has("fault"):
            add("HTTP route cannot contain both fault and direct_response")
        if http.has("rewrite"):
            add("HTTP route rule cannot contain both rewrite and direct_response")
    elif not forwards:
        add("HTTP route, redirect or direct_response is required")
    if http.has("mirror") and http.messages("mirrors"):
        add("HTTP route cannot contain both mirror and mirrors")
    return errs


# -- TLS and TCP routes ----------------------------------------------------------------------


def _validate_tls_route(
    tls: Message | None, hosts: list[str], gateways: list[str], gateway_semantics: bool
) -> Validation:
    errs = Validation()
    if tls is None:
        return errs
    matches = tls.messages("match")
    if not matches:
        message = "TLS route must have at least one match condition"
        errs = golang.append_validation(errs, golang.error(message))
    for match in matches:
        errs = golang.append_validation(errs, _validate_tls_match(match, hosts, gateways))
    destinations = tls.messages("route")
    if not destinations:
        errs = golang.append_validation(errs, golang.error("TLS route is required"))
    return golang.append_validation(
        errs, v.validate_route_destinations(destinations, gateway_semantics)
    )


def _validate_tls_match(match: Message | None, hosts: list[str], gateways: list[str]) -> Validation:
    if match is None:
        return Validation(golang.error("TLS match may not be null"))
    errs = Validation()
    sni_hosts = match.texts("sniHosts")
    if not sni_hosts:
        message = "TLS match must have at least one SNI host"
        errs = golang.append_validation(errs, golang.error(message))
    for sni_host in sni_hosts:
        errs = golang.append_validation(errs, _validate_sni_host(sni_host, hosts, gateways))
    return golang.append_validation(errs, *_l4_match_errors(match))


def _validate_sni_host(sni_host: str, hosts: list[str], gateways: list[str]) -> Validation:
    if MESH_GATEWAY not in gateways:  # isGateway
        problem = agent.validate_wildcard_domain_for_virtual_service_bound_to_gateway(
            True, sni_host
        )
    else:
        problem = agent.validate_wildcard_domain(sni_host)
    if problem is not None:
        if golang.is_ip_address(sni_host):
            return golang.warning(
                f"using an IP address ({golang.quote(sni_host)}) goes against SNI spec and most "
                "clients do not support this"
            )
        return Validation(problem)
    if any(names.host_subset_of(sni_host, host) for host in hosts):
        return Validation()
    return Validation(
        golang.error(
            f"SNI host {golang.quote(sni_host)} is not a compatible subset of any of the virtual "
            f"service hosts: [{', '.join(hosts)}]"
        )
    )


def _validate_tcp_route(tcp: Message | None, gateway_semantics: bool) -> Err:
    if tcp is None:
        return None
    errs: Err = None
    for match in tcp.messages("match"):
        errs = golang.append_errors(errs, _validate_tcp_match(match))
    destinations = tcp.messages("route")
    if not destinations:
        errs = golang.append_errors(errs, golang.error("TCP route is required"))
    return golang.append_errors(
        errs, v.validate_route_destinations(destinations, gateway_semantics)
    )


def _validate_tcp_match(match: Message | None) -> Err:
    if match is None:
        return golang.multierror_append(None, golang.error("tcp match may not be nil"))
    return golang.append_errors(None, *_l4_match_errors(match))


def _l4_match_errors(match: Message) -> list[Err | Validation]:
    """What TLS and TCP matches share: subnets, port, source labels, gateways."""
    found: list[Err | Validation] = [
        agent.validate_ip_subnet(subnet) for subnet in match.texts("destinationSubnets")
    ]
    port = match.integer("port", "uint32")
    if port != 0:
        found.append(agent.validate_port(port))
    found.append(names.validate_labels(match.text_map("sourceLabels")))
    found.append(v.validate_gateway_names(match.texts("gateways"), False))
    return found


# -- rule analysis (warnings) ----------------------------------------------------------------

Unused = Callable[[str, str], None]
Ineffective = Callable[[str, str, str], None]

# HTTPMatchRequest fields by kind, for comparing two matches as Go compares their encodings.
_MATCH_MESSAGES = ("uri", "scheme", "method", "authority")
_MATCH_MAPS = ("headers", "queryParams", "withoutHeaders", "sourceLabels")


def _as_json(match: Message | None, http: bool) -> str:
    """``asJSON``: a match's encoding without its name, zero values left out as Go omits them."""
    if match is None:
        return "null"
    canonical: dict[str, Any] = {}
    for key, value in match.fields.items():
        if value is None or (http and key == "name"):
            continue
        if http and key in _MATCH_MESSAGES:
            canonical[key] = {k: x for k, x in value.items() if x is not None}
        elif http and key in _MATCH_MAPS:
            if value:
                canonical[key] = {
                    k: {m: x for m, x in s.items() if x is not None} if isinstance(s, dict) else s
                    for k, s in value.items()
                }
        elif value not in ("", 0, [], {}) and value is not False:
            canonical[key] = value
    return json.dumps(canonical, sort_keys=True)


def _route_name(route: Message, index: int) -> str:
    name = route.text("name")
    return golang.quote(name) if name else f"#{index}"


@dataclass(frozen=True)
class _PrefixMatch:
    """``OverlappingMatchValidationForHTTPRoute``."""

    route: str
    match: str
    prefix: str
    port: int
    method: str
    authority: str
    headers: dict[str, str]
    query_params: dict[str, str]
    without_headers: dict[str, str]


def _exact_or_prefix(match: Message | None) -> str:
    kind = match.oneof(*v.MATCH_TYPES) if match else None
    value = match.text(kind) if match and kind in ("exact", "prefix") else ""
    return f"{kind}:{value}" if value else ""


def _prefix_match(route: Message, match: Message, rule: int, index: int) -> _PrefixMatch | None:
    uri = match.message("uri")
    prefix = uri.text("prefix") if uri and uri.oneof(*v.MATCH_TYPES) == "prefix" else ""
    if not prefix:
        return None

    def matches(field: str) -> dict[str, str]:
        return {k: _exact_or_prefix(m) for k, m in match.message_map(field).items()}

    return _PrefixMatch(
        route=_route_name(route, rule),
        match=_match_name(match, index, http=True),
        prefix=prefix,
        port=match.integer("port", "uint32"),
        method=_exact_or_prefix(match.message("method")) or "exact:GET",
        authority=_exact_or_prefix(match.message("authority")),
        headers=matches("headers"),
        query_params=matches("queryParams"),
        without_headers=matches("withoutHeaders"),
    )


def _covered(first: _PrefixMatch, second: _PrefixMatch) -> bool:
    """``coveredValidation``: ``first``, earlier, takes all the traffic ``second`` would."""
    if not second.prefix.startswith(first.prefix) or second.port != first.port:
        return False
    for mine, theirs in ((first.method, second.method), (first.authority, second.authority)):
        if mine != theirs and not mine.startswith(theirs):
            return False
    for mine_map, theirs_map in (
        (first.headers, second.headers),
        (first.query_params, second.query_params),
        (first.without_headers, second.without_headers),
    ):
        if len(mine_map) != len(theirs_map):
            return False
        for key, mine in mine_map.items():
            if key not in theirs_map:
                return False
            if mine != theirs_map[key] and not mine.startswith(theirs_map[key]):
                return False
    return True


def _analyze_unreachable_rules(
    routes: list[Message | None], unused: Unused, ineffective: Ineffective, *, http: bool
) -> None:
    """``analyzeUnreachableHTTPRules``, and (``http`` false: unnamed rules, no prefix analysis)
    ``analyzeUnreachableTCPRules`` / ``analyzeUnreachableTLSRules``, which Go keeps identical."""
    seen: dict[str, int] = {}
    empty_match_at = -1
    prefix_matches: list[_PrefixMatch] = []
    for rule, route in enumerate(routes):
        if route is None:
            continue
        rule_name = _route_name(route, rule) if http else f"#{rule}"
        matches = route.messages("match")
        if not matches:
            if empty_match_at >= 0:
                unused(rule_name, "only the last rule can have no matches")
            empty_match_at = rule
            continue
        duplicates = 0
        for index, match in enumerate(matches):
            if empty_match_at >= 0:
                unused(rule_name, "route without matches defined before")
                continue
            encoded = _as_json(match, http=http)
            if encoded in seen:
                earlier = routes[seen[encoded]]
                assert earlier is not None
                earlier_name = _route_name(earlier, seen[encoded]) if http else f"#{seen[encoded]}"
                ineffective(rule_name, _match_name(match, index, http), earlier_name)
                duplicates += 1
                continue
            seen[encoded] = rule
            found = _prefix_match(route, match, rule, index) if http and match else None
            if found is not None:
                prefix_matches.append(found)
        if duplicates == len(matches):
            unused(rule_name, "all matches used by prior rules")
    for position, first in enumerate(prefix_matches):
        for second in prefix_matches[position + 1 :]:
            if second.prefix != first.prefix and _covered(first, second):
                ineffective(
                    second.route,
                    f"{second.match} of prefix {second.prefix}",
                    f"{first.match} of prefix {first.prefix} on {first.route}",
                )


def _match_name(match: Message | None, index: int, http: bool) -> str:
    name = match.text("name") if http and match else ""
    return golang.quote(name) if name else f"#{index}"
