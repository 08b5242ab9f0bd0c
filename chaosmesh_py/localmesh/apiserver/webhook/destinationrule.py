"""Port of ``ValidateDestinationRule`` and the traffic policy checks of
``pkg/config/validation/validation.go`` (outlier detection, connection pool, load balancer,
port-level settings, tunnel, PROXY protocol, subsets)."""

from __future__ import annotations

import math

from chaosmesh_py.localmesh.apiserver.webhook import agent, golang, names
from chaosmesh_py.localmesh.apiserver.webhook import validation as v
from chaosmesh_py.localmesh.apiserver.webhook.golang import Err, Validation
from chaosmesh_py.localmesh.apiserver.webhook.proto import Message

_POLICY_FIELDS = (
    "outlierDetection",
    "connectionPool",
    "loadBalancer",
    "tls",
    "portLevelSettings",
    "tunnel",
    "proxyProtocol",
    "retryBudget",
)


def validate_destination_rule(spec: Message, namespace: str) -> Validation:
    """``ValidateDestinationRule``."""
    errs = golang.append_validation(
        Validation(),
        agent.validate_wildcard_domain(spec.text("host")),
        _validate_traffic_policy(spec.message("trafficPolicy")),
    )
    subset_names: set[str] = set()
    for subset in spec.messages("subsets"):
        if subset is None:
            errs = golang.append_validation(errs, golang.error("subset may not be null"))
            continue
        name = subset.text("name")
        if name in subset_names:
            problem = golang.error(f"duplicate subset names: {name}")
            errs = golang.append_validation(errs, problem)
        subset_names.add(name)
        errs = golang.append_validation(errs, _validate_subset(subset))
    selector = spec.message("workloadSelector")
    return golang.append_validation(
        errs,
        names.validate_export_to(namespace, spec.texts("exportTo"), False, selector is not None),
        names.validate_workload_selector(selector),
    )


def _validate_subset(subset: Message) -> Err:
    return golang.append_errors(
        v.validate_subset_name(subset.text("name")),
        names.validate_labels(subset.text_map("labels")),
        _validate_traffic_policy(subset.message("trafficPolicy")),
    )


def _validate_traffic_policy(policy: Message | None) -> Validation:
    if policy is None:
        return Validation()
    if not any(policy.has(field) for field in _POLICY_FIELDS):
        return Validation(golang.error("traffic policy must have at least one field"))
    if policy.has("tunnel") and policy.has("proxyProtocol"):
        return Validation(golang.error("tunnel and proxyProtocol must not be set together"))
    outlier = policy.message("outlierDetection")
    return golang.append_validation(
        _validate_outlier_detection(outlier),
        _validate_connection_pool(policy.message("connectionPool")),
        _validate_load_balancer(policy.message("loadBalancer"), outlier),
        agent.validate_tls(policy.message("tls")),
        _validate_port_traffic_policies(policy.messages("portLevelSettings")),
        _validate_tunnel_settings(policy.message("tunnel")),
        _validate_proxy_protocol(policy.message("proxyProtocol")),
    )


def _validate_proxy_protocol(proxy_protocol: Message | None) -> Err:
    if proxy_protocol is None:
        return None
    version = proxy_protocol.fields.get("version") or "V1"
    if version not in ("V1", "V2", 0, 1):
        return golang.error(f"proxy protocol version is invalid: {version}")
    return None


def _validate_tunnel_settings(tunnel: Message | None) -> Err:
    if tunnel is None:
        return None
    errs: Err = None
    protocol = tunnel.text("protocol")
    if protocol not in ("", "CONNECT", "POST"):
        message = 'tunnel protocol must be "CONNECT" or "POST"'
        errs = golang.append_errors(errs, golang.error(message))
    target_host = tunnel.text("targetHost")
    fqdn_problem = agent.validate_fqdn(target_host)
    if fqdn_problem is not None and not golang.is_ip_address(target_host):
        message = (
            f"tunnel target host must be valid FQDN or IP address: {fqdn_problem}; "
            f"{target_host} is not a valid IP"
        )
        errs = golang.append_errors(errs, golang.error(message))
    port_problem = agent.validate_port(tunnel.integer("targetPort", "uint32"))
    if port_problem is not None:
        message = f"tunnel target port is invalid: {port_problem}"
        errs = golang.append_errors(errs, golang.error(message))
    return errs


def _validate_outlier_detection(outlier: Message | None) -> Validation:
    errs = Validation()
    if outlier is None:
        return errs
    base_ejection_time = outlier.duration("baseEjectionTime")
    if base_ejection_time is not None:
        errs = golang.append_validation(errs, agent.validate_duration(base_ejection_time))
    if outlier.integer("consecutiveErrors") != 0:
        errs = golang.append_validation(
            errs,
            golang.warning(
                "outlier detection consecutive errors is deprecated, use "
                "consecutiveGatewayErrors or consecutive5xxErrors instead"
            ),
        )
    local_origin_failures = outlier.integer("consecutiveLocalOriginFailures", "uint32")
    if not outlier.flag("splitExternalLocalOriginErrors") and local_origin_failures > 0:
        message = (
            "outlier detection consecutive local origin failures is specified, but split "
            "external local origin errors is set to false"
        )
        errs = golang.append_validation(errs, golang.error(message))
    interval = outlier.duration("interval")
    if interval is not None:
        errs = golang.append_validation(errs, agent.validate_duration(interval))
    return golang.append_validation(
        errs,
        v.validate_percent(outlier.integer("maxEjectionPercent")),
        v.validate_percent(outlier.integer("minHealthPercent")),
    )


def _validate_connection_pool(settings: Message | None) -> Err:
    if settings is None:
        return None
    http, tcp = settings.message("http"), settings.message("tcp")
    if http is None and tcp is None:
        return golang.error("connection pool must have at least one field")
    errs: Err = None

    def add(problem: Err) -> None:
        nonlocal errs
        errs = golang.append_errors(errs, problem)

    if http is not None:
        for field, what in (
            ("http1MaxPendingRequests", "http1 max pending requests"),
            ("http2MaxRequests", "http2 max requests"),
            ("maxRequestsPerConnection", "max requests per connection"),
            ("maxRetries", "max retries"),
        ):
            if http.integer(field) < 0:
                add(golang.error(f"{what} must be non-negative"))
        idle_timeout = http.duration("idleTimeout")
        if idle_timeout is not None:
            add(agent.validate_duration(idle_timeout))
        if http.text("h2UpgradePolicy") == "UPGRADE" and http.flag("useClientProtocol"):
            add(
                golang.error("use client protocol must not be true when H2UpgradePolicy is UPGRADE")
            )
        if http.integer("maxConcurrentStreams") < 0:
            add(golang.error("max concurrent streams must be non-negative"))
        keepalive = http.message("http2KeepAlive")
        if keepalive is not None:
            for field in ("interval", "timeout"):
                duration = keepalive.duration(field)
                if duration is None:
                    add(golang.error(f"http2 keepalive {field} is required"))
                else:
                    add(agent.validate_duration(duration))
    if tcp is not None:
        if tcp.integer("maxConnections") < 0:
            add(golang.error("max connections must be non-negative"))
        for field in ("connectTimeout", "maxConnectionDuration"):
            duration = tcp.duration(field)
            if duration is not None:
                add(agent.validate_duration(duration))
        idle_timeout = tcp.duration("idleTimeout")
        if idle_timeout is not None and abs(idle_timeout) >= agent.MILLISECOND_NS:
            add(agent.validate_duration(idle_timeout))  # 0 turns the idle timeout off
        keepalive = tcp.message("tcpKeepalive")
        for field in ("time", "interval"):
            duration = keepalive.duration(field) if keepalive else None
            if duration is not None:
                add(agent.validate_duration(duration))
    return errs


def _validate_load_balancer(settings: Message | None, outlier: Message | None) -> Validation:
    errs = Validation()
    if settings is None:
        return errs
    consistent_hash = settings.message("consistentHash")
    if consistent_hash is not None:
        errs = golang.append_validation(errs, *_consistent_hash_errors(consistent_hash))
    locality, zone_aware = (
        settings.message("localityLbSetting"),
        settings.message("zoneAwareLbSetting"),
    )
    if locality is not None and zone_aware is not None:
        message = "only one of localityLbSetting and zoneAwareLbSetting can be set"
        errs = golang.append_validation(errs, golang.error(message))
    errs = golang.append_validation(
        errs,
        agent.validate_locality_lb_setting(locality, outlier),
        agent.validate_zone_aware_lb_setting(zone_aware, outlier),
    )
    warmup = settings.message("warmup")
    if warmup is not None:
        duration = warmup.duration("duration")
        if duration is None:
            errs = golang.append_validation(errs, golang.error("duration is required"))
        else:
            errs = golang.append_validation(errs, agent.validate_duration(duration))
        minimum = warmup.message("minimumPercent")
        if minimum is not None and minimum.number("value") > 100:
            message = "minimumPercent value should be less than or equal to 100"
            errs = golang.append_validation(errs, golang.error(message))
        aggression = warmup.message("aggression")
        if aggression is not None and aggression.number("value") <= 0:
            errs = golang.append_validation(
                errs, golang.error("aggression should be greater than 0")
            )
    return errs


def _consistent_hash_errors(consistent_hash: Message) -> list[Err | Validation]:
    found: list[Err | Validation] = []
    cookie = consistent_hash.message("httpCookie")
    if cookie is not None and cookie.text("name") == "":
        found.append(golang.error("name required for HttpCookie"))
    attribute_names: set[str] = set()
    for attribute in cookie.messages("attributes") if cookie else []:
        name = attribute.text("name") if attribute else ""
        if name == "":
            found.append(golang.error("cookie attribute name cannot be empty"))
        elif name in attribute_names:
            found.append(golang.error(f"duplicate cookie attribute name: {name}"))
        else:
            attribute_names.add(name)
    ring_size = consistent_hash.integer("minimumRingSize", "uint64")
    if ring_size != 0:
        found.append(
            golang.warning(
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash "
                "configuration instead"
            )
        )
        if consistent_hash.oneof("ringHash", "maglev") is not None:
            message = "only one of MinimumRingSize or Maglev/Ringhash can be specified"
            found.append(golang.error(message))
    maglev = consistent_hash.message("maglev")
    if maglev is not None:
        table_size = maglev.integer("tableSize", "uint64")
        if table_size == 0:
            found.append(golang.error("tableSize must be set for maglev"))
        if table_size >= 5000011:
            found.append(golang.error("tableSize must be less than 5000011 for maglev"))
        if not _is_prime(table_size):
            found.append(golang.error("tableSize must be a prime number for maglev"))
    return found


def _is_prime(number: int) -> bool:
    """Envoy's (and Istio's copy of its) primality test: 0 is not prime, 1 is."""
    if 0 < number < 4:
        return True
    if number % 2 == 0:
        return False
    return all(number % factor for factor in range(3, math.isqrt(number) + 1, 2))


def _validate_port_traffic_policies(policies: list[Message | None]) -> Err:
    errs: Err = None
    for policy in policies:
        if policy is None:
            errs = golang.append_errors(errs, golang.error("traffic policy may not be null"))
            continue
        if not policy.has("port"):
            errs = golang.append_errors(
                errs, golang.error("portTrafficPolicy must have valid port")
            )
        if not any(
            policy.has(f) for f in ("outlierDetection", "connectionPool", "loadBalancer", "tls")
        ):
            message = "port traffic policy must have at least one field"
            errs = golang.append_errors(errs, golang.error(message))
            continue
        outlier = policy.message("outlierDetection")
        errs = golang.append_errors(
            errs,
            _validate_outlier_detection(outlier),
            _validate_connection_pool(policy.message("connectionPool")),
            _validate_load_balancer(policy.message("loadBalancer"), outlier),
            agent.validate_tls(policy.message("tls")),
        )
    return errs
