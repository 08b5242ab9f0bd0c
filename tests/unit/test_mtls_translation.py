"""The local mesh's mutual TLS as the translation writes it (chaosmesh_py.localmesh.mtls), dict by
dict: each caller names its identity, each mTLS cluster presents the caller's certificate, each
inbound's filter chains follow PeerAuthentication. Envoy runs it in tests/local/test_mtls.py."""

from chaosmesh_py.localmesh.mtls import IDENTITY_KEY, Secrets
from chaosmesh_py.localmesh.topology import Ingress, Service, Topology, Workload
from chaosmesh_py.localmesh.translate import translate

NS = "bookinfo"
TOPOLOGY = Topology(
    services=(Service("ratings", NS, 9080, {"app": "ratings"}),),
    workloads=(
        Workload("ratings-v1", NS, {"app": "ratings", "version": "v1"}, 1, 2, 3,
                 pod="ratings-v1-a", service_account="bookinfo-ratings"),
        Workload("reviews-v1", NS, {"app": "reviews", "version": "v1"}, 4, 5, 6,
                 pod="reviews-v1-a", service_account="bookinfo-reviews"),
    ),
    ingress=Ingress(7),
    entry_ports={"ratings": 8},
)  # fmt: skip
SECRETS = Secrets(
    lambda name: {"path_config_source": {"path": f"/sds/{name}.json"}},
    {"default~bookinfo~reviews-v1-a": "1f"},
)
RATINGS = "outbound|9080||ratings.bookinfo.svc.cluster.local"


def config(peer_authentications=(), destination_rules=(), secrets=SECRETS):
    return translate(
        TOPOLOGY,
        [],
        list(destination_rules),
        [],
        lambda name: {"path_config_source": {"path": f"/rds/{name}.json"}},
        peer_authentications=list(peer_authentications),
        secrets=secrets,
    )


def by_name(resources, name):
    (found,) = [r for r in resources if r["name"] == name]
    return found


def test_every_caller_listener_names_its_identity_first():
    listeners = config().listeners
    expected = {
        "sidecar~bookinfo~ratings-v1-a": "default~bookinfo~ratings-v1-a",
        "sidecar~bookinfo~reviews-v1-a": "default~bookinfo~reviews-v1-a",
        "ingress": "default~istio-system~istio-ingressgateway",
        "entry~bookinfo~ratings": "default~bookinfo~entry",
    }
    for name, secret in expected.items():
        first = by_name(listeners, name)["filter_chains"][0]["filters"][0]
        (state,) = first["typed_config"]["on_new_connection"]
        assert state["object_key"] == IDENTITY_KEY
        # Hashable: part of the upstream pool's key, so callers never share a connection.
        assert state["factory_key"] == "envoy.hashable_string"
        assert state["format_string"]["text_format_source"]["inline_string"] == secret


def test_an_mtls_cluster_has_one_certificate_per_caller_and_checks_the_servers_identity():
    cluster = by_name(config().clusters, RATINGS)
    matches = {
        m["name"]: m["transport_socket"]["typed_config"]
        for m in cluster["transport_socket_matches"]
    }
    # The version (serial) in the name: a re-issued certificate drains the pooled connections.
    assert "default~bookinfo~reviews-v1-a~1f" in matches
    assert len(matches) == 4  # two pods, the ingress gateway, the namespace's entry listeners
    tls = matches["default~bookinfo~reviews-v1-a~1f"]
    assert tls["sni"] == "outbound_.9080_._.ratings.bookinfo.svc.cluster.local"
    context = tls["common_tls_context"]
    (certificate,) = context["tls_certificate_sds_secret_configs"]
    assert certificate["name"] == "default~bookinfo~reviews-v1-a"
    validation = context["combined_validation_context"]
    assert validation["validation_context_sds_secret_config"]["name"] == "ROOTCA"
    assert validation["default_validation_context"]["match_typed_subject_alt_names"] == [
        {
            "san_type": "URI",
            "matcher": {"exact": "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings"},
        }
    ]
    tree = cluster["transport_socket_matcher"]["matcher_tree"]
    assert tree["input"]["name"] == "envoy.matching.inputs.transport_socket_filter_state"
    assert tree["input"]["typed_config"]["key"] == IDENTITY_KEY
    choice = tree["exact_match_map"]["map"]["default~bookinfo~reviews-v1-a"]
    assert choice["action"]["typed_config"]["name"] == "default~bookinfo~reviews-v1-a~1f"


def pa(mode, name="default", selector=None, ports=None):
    spec = {"mtls": {"mode": mode}}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if ports:
        spec["portLevelMtls"] = ports
    return {"metadata": {"name": name, "namespace": NS}, "spec": spec}


def chains(listener):
    return [
        (chain.get("filter_chain_match"), "transport_socket" in chain)
        for chain in listener["filter_chains"]
    ]


def test_inbound_filter_chains_follow_the_mode_istiod_resolves():
    def inbound(policies):
        return by_name(config(policies).listeners, "inbound~bookinfo~ratings-v1-a")

    strict = inbound([pa("STRICT")])
    assert chains(strict) == [({"transport_protocol": "tls"}, True)]
    assert strict["listener_filters"][0]["name"] == "envoy.filters.listener.tls_inspector"
    tls = strict["filter_chains"][0]["transport_socket"]["typed_config"]
    assert tls["require_client_certificate"] is True
    context = tls["common_tls_context"]
    assert context["alpn_protocols"] == ["h2", "http/1.1"]
    assert context["tls_params"] == {
        "tls_minimum_protocol_version": "TLSv1_2",
        "tls_maximum_protocol_version": "TLSv1_3",
    }
    assert context["combined_validation_context"]["default_validation_context"] == {
        "match_typed_subject_alt_names": [
            {"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}
        ]
    }
    permissive = chains(inbound([]))
    assert permissive[0][0]["transport_protocol"] == "tls" and permissive[0][1]
    assert permissive[1] == ({"transport_protocol": "raw_buffer"}, False)
    disable = inbound([pa("STRICT"), pa("DISABLE", "ratings", {"app": "ratings"})])
    assert chains(disable) == [(None, False)] and "listener_filters" not in disable
    # portLevelMtls of the workload's policy, for its container port (the Service's).
    port_level = inbound(
        [pa("STRICT", "ratings", {"app": "ratings"}, {"9080": {"mode": "DISABLE"}})]
    )
    assert chains(port_level) == [(None, False)]


def test_auto_mtls_and_destination_rule_modes_pick_the_clusters_tls():
    def tls_of(policies=(), rules=()):
        return "transport_socket_matches" in by_name(config(policies, rules).clusters, RATINGS)

    assert tls_of()
    assert not tls_of([pa("DISABLE")])  # the namespace's mode: auto mTLS sends plain text
    # A workload's DISABLE is not seen by auto mTLS (istiod's best-effort inference).
    assert tls_of([pa("DISABLE", "ratings", {"app": "ratings"})])
    rule = {
        "metadata": {"name": "ratings", "namespace": NS},
        "spec": {"host": "ratings", "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
    }
    assert not tls_of(rules=[rule])
    mutual = {
        **rule,
        "spec": {"host": "ratings", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
    }
    assert tls_of([pa("DISABLE")], [mutual])
    port_level = {
        **rule,
        "spec": {
            "host": "ratings",
            "trafficPolicy": {
                "tls": {"mode": "DISABLE"},
                "portLevelSettings": [{"port": {"number": 9080}, "tls": {"mode": "ISTIO_MUTUAL"}}],
            },
        },
    }
    assert tls_of(rules=[port_level])


def test_without_secrets_every_sidecar_speaks_plain_text():
    plain = config([pa("STRICT")], secrets=None)
    assert "transport_socket_matches" not in by_name(plain.clusters, RATINGS)
    inbound = by_name(plain.listeners, "inbound~bookinfo~ratings-v1-a")
    assert chains(inbound) == [(None, False)]
