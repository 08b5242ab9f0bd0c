"""The inbound fault as an EnvoyFilter (pure), and istiod's EnvoyFilter patching as the local
mesh applies it to a pod's inbound HTTP filters."""

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.istio import inbound_fault, owned_object, validation
from chaosmesh_py.istio.inbound_fault import HTTP_FAULT_TYPE, UpstreamFault
from chaosmesh_py.localmesh import envoy_filter
from chaosmesh_py.localmesh.inbound import inbound_config
from chaosmesh_py.localmesh.topology import Service, Topology, Workload

FAULT = {"name": "envoy.filters.http.fault", "typed_config": {"@type": HTTP_FAULT_TYPE}}
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
REVIEWS_V3 = Workload(
    "reviews-v3", "bookinfo", {"app": "reviews", "version": "v3"}, 7003, 7103, 7203
)
REVIEWS_V1 = Workload(
    "reviews-v1", "bookinfo", {"app": "reviews", "version": "v1"}, 7001, 7101, 7201
)


def envoy_filter_object(spec, name="f", namespace="bookinfo", created="2026-01-01T00:00:00Z"):
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": spec,
    }


def test_the_envoy_filter_merges_a_v3_http_fault_into_istiods_inbound_fault_filter():
    fault = inbound_fault.parse(
        workload_labels={"app": "reviews", "version": "v3"},
        abort_http_status=503,
        abort_percentage=50,
        delay="1.5s",
        delay_percentage=0.57,
        port=9080,
    )
    spec = fault.envoy_filter_spec()
    (patch,) = spec["configPatches"]
    assert spec["workloadSelector"] == {"labels": {"app": "reviews", "version": "v3"}}
    assert patch["applyTo"] == "HTTP_FILTER"
    assert patch["match"]["context"] == "SIDECAR_INBOUND"
    assert patch["match"]["listener"]["portNumber"] == 9080
    assert patch["match"]["listener"]["filterChain"]["filter"] == {
        "name": "envoy.filters.network.http_connection_manager",
        "subFilter": {"name": "envoy.filters.http.fault"},
    }
    assert patch["patch"]["operation"] == "MERGE"
    assert patch["patch"]["value"]["typed_config"] == {
        "@type": HTTP_FAULT_TYPE,
        "abort": {
            "http_status": 503,
            "percentage": {"numerator": 500000, "denominator": "MILLION"},
        },
        # istiod's truncation: 0.57 % is 5699 parts per million.
        "delay": {
            "fixed_delay": "1.5s",
            "percentage": {"numerator": 5699, "denominator": "MILLION"},
        },
    }
    assert fault.describe() == (
        "aborts 50 % of requests to pods app=reviews,version=v3 port 9080 with 503; "
        "delays 0.57 % of requests to pods app=reviews,version=v3 port 9080 by 1500 ms (inbound)"
    )


def test_the_owned_envoy_filter_passes_istios_admission_and_describes_itself():
    from datetime import UTC, datetime, timedelta

    spec = UpstreamFault(
        {"app": "ratings"}, abort_http_status=500, abort_percentage=25
    ).envoy_filter_spec()
    body = owned_object.build(
        "run1",
        api_version="networking.istio.io/v1alpha3",
        kind="EnvoyFilter",
        namespace="bookinfo",
        spec=spec,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    assert validation.admission_errors("EnvoyFilter", body) == []
    assert owned_object.describe(body) == (
        "aborts 25 % of requests to pods app=ratings with 500 (inbound)"
    )
    assert owned_object.describe({**body, "spec": {"configPatches": []}}) is None


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({}, "workload_labels"),
        (["app"], "workload_labels"),
        ({"app": ""}, None),
        ({"a/b/c": "x"}, "workload_labels"),
    ],
)
def test_labels_are_a_non_empty_label_map(labels, field):
    if field is None:
        assert inbound_fault.parse_labels(labels) == labels  # an empty value is a valid label
        return
    with pytest.raises(InvalidInput) as caught:
        inbound_fault.parse_labels(labels)
    assert caught.value.field == field


def patched(spec, port=9080, chain="0.0.0.0_9080"):
    return envoy_filter.patch_inbound_http_filters(
        [FAULT, ROUTER], port=port, chain_name=chain, envoy_filters=[envoy_filter_object(spec)]
    )


def test_merge_on_the_fault_filter_fills_it_in_and_keeps_the_router():
    spec = UpstreamFault({"app": "reviews"}, abort_http_status=503).envoy_filter_spec()
    fault, router = patched(spec)
    assert fault["typed_config"]["abort"]["http_status"] == 503
    assert router == ROUTER


def test_a_port_that_is_not_the_pods_leaves_it_alone():
    spec = UpstreamFault({"app": "reviews"}, abort_http_status=503, port=8080).envoy_filter_spec()
    assert patched(spec) == [FAULT, ROUTER]


def test_insert_before_the_router_and_remove_as_istiod():
    value = {
        "name": "my.fault",
        "typed_config": {"@type": HTTP_FAULT_TYPE, "abort": {"http_status": 500}},
    }
    spec = {
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "SIDECAR_INBOUND",
                    "listener": {
                        "filterChain": {
                            "filter": {
                                "name": "envoy.filters.network.http_connection_manager",
                                "subFilter": {"name": "envoy.filters.http.router"},
                            }
                        }
                    },
                },
                "patch": {"operation": "INSERT_BEFORE", "value": value},
            },
            {
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "SIDECAR_INBOUND",
                    "listener": {
                        "filterChain": {
                            "filter": {
                                "name": "envoy.filters.network.http_connection_manager",
                                "subFilter": {"name": "envoy.filters.http.fault"},
                            }
                        }
                    },
                },
                "patch": {"operation": "REMOVE"},
            },
        ]
    }
    assert [f["name"] for f in patched(spec)] == ["my.fault", "envoy.filters.http.router"]


def test_merge_of_another_type_leaves_the_filter_as_it_was():
    spec = UpstreamFault({"app": "reviews"}, abort_http_status=503).envoy_filter_spec()
    spec["configPatches"][0]["patch"]["value"]["typed_config"]["@type"] = (
        "type.googleapis.com/other"
    )
    assert patched(spec) == [FAULT, ROUTER]


def test_outbound_patches_and_other_kinds_are_reported_never_silently_dropped():
    spec = {
        "targetRefs": [{"kind": "Service", "name": "reviews"}],
        "configPatches": [
            {
                "applyTo": "CLUSTER",
                "match": {"context": "SIDECAR_OUTBOUND"},
                "patch": {"operation": "MERGE", "value": {}},
            },
            {
                "applyTo": "HTTP_FILTER",
                "match": {"context": "SIDECAR_OUTBOUND"},
                "patch": {"operation": "MERGE", "value": {}},
            },
            {
                "applyTo": "HTTP_FILTER",
                "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {"sni": "x"}}},
                "patch": {"operation": "MERGE", "value": {}},
            },
        ],
    }
    problems = envoy_filter.unsupported(envoy_filter_object(spec))
    assert problems == [
        "targetRefs (only workloadSelector is read)",
        "configPatches[0]: applyTo CLUSTER (only HTTP_FILTER)",
        "configPatches[1]: context SIDECAR_OUTBOUND (only SIDECAR_INBOUND)",
        "configPatches[2]: match on listener.filterChain.sni",
    ]
    assert patched(spec) == [FAULT, ROUTER]
    ours = UpstreamFault({"app": "reviews"}, delay_ms=10).envoy_filter_spec()
    assert envoy_filter.unsupported(envoy_filter_object(ours)) == []


def test_the_selector_and_istiods_order_decide_which_filters_apply():
    v3_only = envoy_filter_object(
        UpstreamFault({"version": "v3"}, abort_http_status=500).envoy_filter_spec(), name="b"
    )
    every_pod = envoy_filter_object(
        {
            **UpstreamFault({"x": "y"}, abort_http_status=501).envoy_filter_spec(),
            "workloadSelector": None,
        },
        name="a",
    )
    root = envoy_filter_object(
        UpstreamFault({"app": "reviews"}, abort_http_status=502).envoy_filter_spec(),
        name="z",
        namespace="istio-system",
    )
    elsewhere = envoy_filter_object(
        UpstreamFault({"app": "reviews"}, abort_http_status=503).envoy_filter_spec(),
        namespace="other",
    )
    chosen = envoy_filter.for_workload(REVIEWS_V3, [v3_only, every_pod, root, elsewhere])
    assert [f["metadata"]["name"] for f in chosen] == ["z", "a", "b"]
    assert [f["metadata"]["name"] for f in envoy_filter.for_workload(REVIEWS_V1, [v3_only])] == []


def test_the_translated_inbound_carries_the_fault_for_the_selected_pods_only():
    topology = Topology(
        services=(Service("reviews", "bookinfo", 9080, {"app": "reviews"}),),
        workloads=(REVIEWS_V1, REVIEWS_V3),
    )
    spec = UpstreamFault({"version": "v3"}, abort_http_status=503, port=9080).envoy_filter_spec()
    listeners, clusters = inbound_config(topology, [], [envoy_filter_object(spec)])
    by_name = {listener["name"]: listener for listener in listeners}
    faults = {
        name: listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
        for name, listener in by_name.items()
    }
    assert faults["inbound~bookinfo~reviews-v3"]["typed_config"]["abort"]["http_status"] == 503
    assert "abort" not in faults["inbound~bookinfo~reviews-v1"]["typed_config"]
    assert sorted(c["name"] for c in clusters) == [
        "inbound|9080||bookinfo~reviews-v1",
        "inbound|9080||bookinfo~reviews-v3",
    ]
