"""One VirtualService's ``http[]`` rules as Envoy routes, the way istiod builds them.

This is the route half of the translator (``chaosmesh_py.localmesh.translate`` holds the rest and
describes the whole mapping). It mirrors istiod's ``pilot/pkg/networking/core/route/route.go``
and ``route/retry/retry.go``:

- ``http[]`` order is kept; each ``match`` entry becomes its own Envoy route (the entries are
  OR'ed); a rule without ``match`` is ``prefix: "/"``; translation stops after the first
  catch-all route, since Envoy would never reach the routes behind it.
- A match entry is dropped for this proxy when its ``port`` is not the listener's, when its
  ``gateways`` do not name this proxy's gateway (``mesh`` for a sidecar), or, with no
  ``gateways``, when its ``sourceLabels`` are not among the proxy's labels or its
  ``sourceNamespace`` is not the proxy's namespace. This is why route configurations are per
  workload.
- ``timeout`` unset is ``0s`` (disabled: Envoy's own default would be 15 s); ``retries`` unset is
  Istio's default policy (2 retries on connect-failure, refused-stream, unavailable, cancelled,
  and retriable-status-codes with no codes, so a 503 is not retried); ``attempts: 0`` is none.
- Faults go in the route's ``typed_per_filter_config`` for the listener's fault filter.
  ``percentage.value`` becomes parts per million, truncated like istiod's ``uint32(v * 10000)``
  (0.57 → 5699). An abort without ``percentage`` has none in Envoy either, so it never fires.

Not translated: ``corsPolicy`` (no CORS filter on the listeners), ``delegate``, consistent-hash
load balancing (no hash policies, and the retry policy keeps the previous-hosts predicate),
JWT-claim header matches (``@request.auth.claims.*``, treated as plain headers), tracing
decorators, route metadata, and istiod's ``max_grpc_timeout`` (deprecated in Envoy 1.40, which
warns on every load; without it a ``grpc-timeout`` header is ignored and the route timeout rules).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_py.istio.effective_policy import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_ON,
    duration_ms,
    parse_retry_on,
)
from chaosmesh_py.istio.fault import GRPC_CODES
from chaosmesh_py.localmesh.envoy import JsonDict
from chaosmesh_py.localmesh.topology import CLUSTER_DOMAIN, Topology

MESH_GATEWAY = "mesh"
FAULT_FILTER = "envoy.filters.http.fault"
HTTP_FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
DEFAULT_ROUTE_NAME = "default"
RETRY_PREVIOUS_HOSTS: JsonDict = {
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3"
        ".PreviousHostsPredicate"
    },
}
RETRY_PREVIOUS_PRIORITIES: JsonDict = {
    "name": "envoy.retry_priorities.previous_priorities",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3"
        ".PreviousPrioritiesConfig",
        "update_frequency": 2,
    },
}
REDIRECT_CODES = {
    0: "MOVED_PERMANENTLY",
    301: "MOVED_PERMANENTLY",
    302: "FOUND",
    303: "SEE_OTHER",
    307: "TEMPORARY_REDIRECT",
    308: "PERMANENT_REDIRECT",
}


@dataclass(frozen=True)
class RouteContext:
    """Who the routes are built for: a workload's sidecar or the ingress gateway.

    ``gateways`` holds ``mesh`` for a sidecar, the gateway's ``namespace/name`` at the ingress.
    ``listen_port`` is the port istiod would build the routes for: the service's port on a
    sidecar, the Gateway server's port at the ingress. It picks the destination port when a
    destination names neither a port nor a known service.
    """

    topology: Topology
    labels: Mapping[str, str]
    namespace: str
    gateways: frozenset[str]
    listen_port: int


def envoy_duration(milliseconds: int) -> str:
    """Envoy's JSON spelling of a protobuf Duration: 180000 → "180s", 100 → "0.100s"."""
    seconds, millis = divmod(milliseconds, 1000)
    return f"{seconds}.{millis:03d}s" if millis else f"{seconds}s"


def convert_duration(value: object) -> str:
    return envoy_duration(duration_ms(value))


def resolve_gateway(name: str, namespace: str) -> str:
    """A VirtualService's gateway reference as ``namespace/name`` (``mesh`` stays ``mesh``)."""
    if name == MESH_GATEWAY or "/" in name:
        return name
    return f"{namespace}/{name}"


def translate_http_routes(
    virtual_service: Mapping[str, Any], context: RouteContext
) -> list[JsonDict]:
    """The Envoy routes for a VirtualService's ``http[]``, as seen by ``context``'s proxy."""
    namespace = (virtual_service.get("metadata") or {}).get("namespace") or "default"
    routes: list[JsonDict] = []
    for rule in (virtual_service.get("spec") or {}).get("http") or []:
        matches = rule.get("match") or []
        if not matches:
            route = _translate_route(rule, None, namespace, context)
            if route is not None:
                routes.append(route)
            break  # a rule without a match is a catch-all
        catch_all = False
        for match in matches:
            route = _translate_route(rule, match, namespace, context)
            if route is not None:
                routes.append(route)
                if is_catch_all(route):
                    catch_all = True
                    break
        if catch_all:
            break
    return routes


def default_route(cluster: str) -> JsonDict:
    """istiod's route for a service no VirtualService names: all of it to the service."""
    return {
        "name": DEFAULT_ROUTE_NAME,
        "match": {"prefix": "/"},
        "route": {
            "cluster": cluster,
            "timeout": "0s",
            "retry_policy": translate_retries(None),
        },
    }


def is_catch_all(route: Mapping[str, Any]) -> bool:
    """Every request reaches it: prefix "/" (or regex ".*"), no header or query conditions."""
    match = route["match"]
    catch_all = match.get("prefix") == "/" or (match.get("safe_regex") or {}).get("regex") == ".*"
    return catch_all and not match.get("headers") and not match.get("query_parameters")


def sort_catch_all_last(routes: list[JsonDict]) -> list[JsonDict]:
    """istiod's order for a gateway host merged from several VirtualServices."""
    return [r for r in routes if not is_catch_all(r)] + [r for r in routes if is_catch_all(r)]


def translate_fault(fault: Mapping[str, Any] | None) -> JsonDict | None:
    """An Istio ``HTTPFaultInjection`` as a per-route Envoy ``HTTPFault`` (None: no fault)."""
    if not fault:
        return None
    out: JsonDict = {"@type": HTTP_FAULT_TYPE}
    delay = fault.get("delay")
    if delay and "fixedDelay" in delay:  # exponentialDelay: unsupported, as in istiod
        percentage = (
            fraction_per_million(delay["percentage"].get("value", 0))
            if delay.get("percentage") is not None
            else {"numerator": int(delay.get("percent", 0)), "denominator": "HUNDRED"}
        )
        out["delay"] = {
            "fixed_delay": convert_duration(delay["fixedDelay"]),
            "percentage": percentage,
        }
    abort = fault.get("abort")
    if abort:
        error: JsonDict | None = None
        if "httpStatus" in abort:
            error = {"http_status": int(abort["httpStatus"])}
        elif "grpcStatus" in abort:
            error = {"grpc_status": _grpc_code(abort["grpcStatus"])}
        if error is not None:  # http2Error: unsupported, as in istiod
            if abort.get("percentage") is not None:
                error["percentage"] = fraction_per_million(abort["percentage"].get("value", 0))
            out["abort"] = error
    return out if "delay" in out or "abort" in out else None


def fraction_per_million(percent: float) -> JsonDict:
    # int() truncates like Go's uint32(): 0.57 * 10000 = 5699.99… → 5699.
    return {"numerator": int(float(percent) * 10000), "denominator": "MILLION"}


def translate_retries(retries: Mapping[str, Any] | None) -> JsonDict | None:
    """An Istio ``HTTPRetry`` as an Envoy retry policy (None: retries disabled)."""
    policy: JsonDict = {
        "retry_on": DEFAULT_RETRY_ON,
        "num_retries": DEFAULT_RETRIES,
        "retry_host_predicate": [copy.deepcopy(RETRY_PREVIOUS_HOSTS)],
        "host_selection_retry_max_attempts": 5,
    }
    if retries is None:
        return policy
    attempts = int(retries.get("attempts") or 0)
    if attempts <= 0:
        return None
    policy["num_retries"] = attempts
    if retries.get("retryOn"):
        retry_on, codes = parse_retry_on(str(retries["retryOn"]))
        policy["retry_on"] = retry_on
        if codes:
            policy["retriable_status_codes"] = codes
            if "retriable-status-codes" not in retry_on:
                policy["retry_on"] = f"{retry_on},retriable-status-codes".lstrip(",")
    if retries.get("perTryTimeout"):
        policy["per_try_timeout"] = convert_duration(retries["perTryTimeout"])
    if retries.get("retryIgnorePreviousHosts") is False:
        del policy["retry_host_predicate"]
    if retries.get("retryRemoteLocalities"):
        policy["retry_priority"] = copy.deepcopy(RETRY_PREVIOUS_PRIORITIES)
    if retries.get("backoff"):
        policy["retry_back_off"] = {"base_interval": convert_duration(retries["backoff"])}
    return policy


def translate_match(match: Mapping[str, Any] | None) -> JsonDict:
    """An ``HTTPMatchRequest`` as an Envoy ``RouteMatch`` (None: everything)."""
    out: JsonDict = {"prefix": "/"}
    if match is None:
        return out
    headers = [_header_matcher(name, value) for name, value in (match.get("headers") or {}).items()]
    for name, value in (match.get("withoutHeaders") or {}).items():
        matcher = _header_matcher(name, value)
        matcher["invert_match"] = True
        if not _is_presence(value):  # Envoy refuses it together with present_match
            matcher["treat_missing_header_as_empty"] = True
        headers.append(matcher)
    headers.sort(key=lambda matcher: str(matcher["name"]))
    uri = match.get("uri") or {}
    if "exact" in uri:
        out = {"path": uri["exact"]}
    elif "prefix" in uri:
        out = {"prefix": uri["prefix"]}
    elif "regex" in uri:
        out = {"safe_regex": {"regex": uri["regex"]}}
    out["case_sensitive"] = not match.get("ignoreUriCase", False)
    for field, header in (
        ("method", ":method"),
        ("authority", ":authority"),
        ("scheme", ":scheme"),
    ):
        if match.get(field) is not None:
            headers.append(_header_matcher(header, match[field]))
    if headers:
        out["headers"] = headers
    query = []
    for name, value in (match.get("queryParams") or {}).items():
        if _is_presence(value):
            query.append({"name": name, "present_match": True})
        else:
            query.append({"name": name, "string_match": _string_matcher(value)})
    if query:
        out["query_parameters"] = query
    return out


def _translate_route(
    rule: Mapping[str, Any],
    match: Mapping[str, Any] | None,
    namespace: str,
    context: RouteContext,
) -> JsonDict | None:
    if match is not None:
        port = match.get("port")
        if port and int(port) != context.listen_port:
            return None
        if not _source_matches(match, namespace, context):
            return None
    name = rule.get("name") or ""
    if match is not None and match.get("name"):
        name = f"{name}.{match['name']}"
    route: JsonDict = {"match": translate_match(match)}
    if name:
        route["name"] = name
    operations, authority = _header_operations(rule.get("headers"))
    route.update(operations)
    if rule.get("redirect") is not None:
        redirect = _redirect(rule["redirect"], context.listen_port)
        if redirect is None:
            return None
        route["redirect"] = redirect
    elif rule.get("directResponse") is not None:
        route["direct_response"] = _direct_response(rule["directResponse"])
    else:
        action = _route_action(rule, route, authority, namespace, context)
        if action is None:
            return None
        route["route"] = action
    fault = translate_fault(rule.get("fault"))
    if fault is not None:
        route["typed_per_filter_config"] = {FAULT_FILTER: fault}
    return route


def _source_matches(match: Mapping[str, Any], namespace: str, context: RouteContext) -> bool:
    # istiod's sourceMatchHTTP: gateways named in the match entry win over sourceLabels.
    gateways = match.get("gateways") or []
    if gateways:
        return any(resolve_gateway(g, namespace) in context.gateways for g in gateways)
    labels = match.get("sourceLabels") or {}
    if any(context.labels.get(key) != value for key, value in labels.items()):
        return False
    source_namespace = match.get("sourceNamespace")
    return not source_namespace or source_namespace == context.namespace


def _route_action(
    rule: Mapping[str, Any],
    route: JsonDict,
    authority: str,
    namespace: str,
    context: RouteContext,
) -> JsonDict | None:
    destinations = rule.get("route") or []
    if not destinations:
        return None  # the API server refuses such a rule; nothing to route to
    # Unset is 0s, disabled: Envoy's own default would be 15 s.
    action: JsonDict = {
        "timeout": convert_duration(rule["timeout"]) if rule.get("timeout") else "0s"
    }
    rewrite = rule.get("rewrite") or {}
    if rewrite.get("uriRegexRewrite"):
        regex_rewrite = rewrite["uriRegexRewrite"]
        action["regex_rewrite"] = {
            "pattern": {"regex": regex_rewrite.get("match", "")},
            "substitution": regex_rewrite.get("rewrite", ""),
        }
    elif rewrite.get("uri"):
        action["prefix_rewrite"] = rewrite["uri"]
    authority = rewrite.get("authority") or authority
    if authority:
        action["host_rewrite_literal"] = authority
    mirrors = _mirror_policies(rule, namespace, context)
    if mirrors:
        action["request_mirror_policies"] = mirrors
    if len(destinations) == 1:
        destination = destinations[0]
        action["cluster"] = _cluster_name(destination.get("destination") or {}, namespace, context)
        operations, destination_authority = _header_operations(destination.get("headers"))
        for key, values in operations.items():
            route[key] = [*route.get(key, []), *values]
        if destination_authority and "host_rewrite_literal" not in action:
            action["host_rewrite_literal"] = destination_authority
    else:
        weighted = []
        for destination in destinations:
            weight = int(destination.get("weight") or 0)
            if weight == 0:
                continue
            cluster: JsonDict = {
                "name": _cluster_name(destination.get("destination") or {}, namespace, context),
                "weight": weight,
            }
            operations, destination_authority = _header_operations(destination.get("headers"))
            cluster.update(operations)
            if destination_authority:
                cluster["host_rewrite_literal"] = destination_authority
            weighted.append(cluster)
        if not weighted:
            return None  # all weights 0: the API server refuses it
        # No total_weight: deprecated, and Envoy 1.40 takes the sum of the weights.
        action["weighted_clusters"] = {"clusters": weighted}
    retry_policy = translate_retries(rule.get("retries"))
    if retry_policy is not None:
        action["retry_policy"] = retry_policy
    return action


def _cluster_name(destination: Mapping[str, Any], namespace: str, context: RouteContext) -> str:
    """``outbound|<port>|<subset>|<fqdn>``; a short host resolves in the resource's namespace."""
    host = str(destination.get("host") or "")
    port = (destination.get("port") or {}).get("number")
    service = context.topology.service(host, namespace)
    if service is not None:
        fqdn, port = service.fqdn, port or service.port
    else:
        # istiod names the cluster anyway; with no such cluster Envoy answers 503 (NR).
        fqdn = host if "." in host else f"{host}.{namespace}.{CLUSTER_DOMAIN}"
        port = port or context.listen_port
    return f"outbound|{port}|{destination.get('subset') or ''}|{fqdn}"


def _mirror_policies(
    rule: Mapping[str, Any], namespace: str, context: RouteContext
) -> list[JsonDict]:
    """istiod's ``MirrorPercent`` / ``MirrorPercentByPolicy`` and ``TranslateRequestMirrorPolicy``:
    ``mirror`` (its ``mirrorPercentage``, else the deprecated integer ``mirrorPercent``, else
    100 %) then each of ``mirrors`` (its ``percentage``, else 100 %); an explicit 0 mirrors
    nothing. Envoy sends the copy and drops its answer. istiod's DISABLE_SHADOW_HOST_SUFFIX
    (true by default) keeps the copy's Host as it was: Envoy would append "-shadow" otherwise.
    """
    mirrors: list[tuple[Mapping[str, Any], JsonDict | None]] = []
    if rule.get("mirror"):
        if rule.get("mirrorPercentage") is not None:
            percent = _positive_fraction(rule["mirrorPercentage"].get("value", 0))
        elif rule.get("mirrorPercent") is not None:
            value = int(rule["mirrorPercent"])
            percent = {"numerator": value, "denominator": "HUNDRED"} if value > 0 else None
        else:
            percent = {"numerator": 100, "denominator": "HUNDRED"}
        mirrors.append((rule["mirror"], percent))
    for mirror in rule.get("mirrors") or []:
        if mirror.get("destination"):
            percent = (
                _positive_fraction(mirror["percentage"].get("value", 0))
                if mirror.get("percentage") is not None
                else {"numerator": 100, "denominator": "HUNDRED"}
            )
            mirrors.append((mirror["destination"], percent))
    return [
        {
            "cluster": _cluster_name(destination, namespace, context),
            "runtime_fraction": {"default_value": percent},
            "trace_sampled": False,
            "disable_shadow_host_suffix_append": True,
        }
        for destination, percent in mirrors
        if percent is not None
    ]


def _positive_fraction(percent: float) -> JsonDict | None:
    return fraction_per_million(percent) if float(percent) > 0 else None


def _header_operations(headers: Mapping[str, Any] | None) -> tuple[JsonDict, str]:
    """Istio ``Headers`` as Envoy route fields, plus the authority to rewrite to ("" if none)."""
    if not headers:
        return {}, ""
    request = headers.get("request") or {}
    response = headers.get("response") or {}
    set_request, set_authority = _headers_to_add(request.get("set"), "OVERWRITE_IF_EXISTS_OR_ADD")
    add_request, add_authority = _headers_to_add(request.get("add"), "APPEND_IF_EXISTS_OR_ADD")
    set_response, _ = _headers_to_add(response.get("set"), "OVERWRITE_IF_EXISTS_OR_ADD")
    add_response, _ = _headers_to_add(response.get("add"), "APPEND_IF_EXISTS_OR_ADD")
    fields = {
        "request_headers_to_add": set_request + add_request,
        "response_headers_to_add": set_response + add_response,
        "request_headers_to_remove": _droppable(request.get("remove")),
        "response_headers_to_remove": _droppable(response.get("remove")),
    }
    return {key: value for key, value in fields.items() if value}, set_authority or add_authority


def _headers_to_add(
    headers: Mapping[str, str] | None, append_action: str
) -> tuple[list[JsonDict], str]:
    authority = ""
    options = []
    for key in sorted(headers or {}):
        value = str((headers or {})[key])
        if key.lower() in (":authority", "host"):
            authority = value  # becomes a host rewrite, as in istiod
        if _is_internal(key):
            continue
        options.append({"header": {"key": key, "value": value}, "append_action": append_action})
    return options, authority


def _droppable(keys: list[str] | None) -> list[str]:
    return [key for key in keys or [] if not _is_internal(key)]


def _is_internal(key: str) -> bool:
    # Pseudo-headers and Host cannot be edited by Envoy's header operations.
    return key.startswith(":") or key.lower() == "host"


def _redirect(redirect: Mapping[str, Any], listen_port: int) -> JsonDict | None:
    code = int(redirect.get("redirectCode") or 0)
    if code not in REDIRECT_CODES:
        return None  # istiod leaves such a route without an action; Envoy would refuse it
    out: JsonDict = {"response_code": REDIRECT_CODES[code]}
    if redirect.get("authority"):
        out["host_redirect"] = redirect["authority"]
    if redirect.get("uri"):
        out["path_redirect"] = redirect["uri"]
    scheme = redirect.get("scheme") or ""
    if scheme:
        out["scheme_redirect"] = scheme
    port = 0
    if redirect.get("port"):
        port = int(redirect["port"])
    elif redirect.get("derivePort") == "FROM_REQUEST_PORT":
        port = listen_port
    # No explicit :80 for http (this listener is never TLS).
    if (
        port
        and not (port == 80 and scheme in ("", "http"))
        and not (port == 443 and scheme == "https")
    ):
        out["port_redirect"] = port
    return out


def _direct_response(response: Mapping[str, Any]) -> JsonDict:
    out: JsonDict = {"status": int(response.get("status") or 0)}
    body = response.get("body") or {}
    if "string" in body:
        out["body"] = {"inline_string": body["string"]}
    elif "bytes" in body:  # base64 in the Kubernetes JSON and in Envoy's JSON alike
        out["body"] = {"inline_bytes": body["bytes"]}
    return out


def _header_matcher(name: str, value: Mapping[str, Any] | None) -> JsonDict:
    if _is_presence(value):
        return {"name": name, "present_match": True}
    return {"name": name, "string_match": _string_matcher(value or {})}


def _is_presence(value: Mapping[str, Any] | None) -> bool:
    # Istio: an empty StringMatch, or the regex "*" (not RE2), means "the header is present".
    if not value or not any(kind in value for kind in ("exact", "prefix", "regex")):
        return True
    return value.get("regex") == "*"


def _string_matcher(value: Mapping[str, Any]) -> JsonDict:
    if "exact" in value:
        return {"exact": value["exact"]}
    if "prefix" in value:
        return {"prefix": value["prefix"]}
    return {"safe_regex": {"regex": value.get("regex", "")}}


def _grpc_code(status: object) -> int:
    text = str(status)
    return int(text) if text.isdigit() else GRPC_CODES.index(text)
