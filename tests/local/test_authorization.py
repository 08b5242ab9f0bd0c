"""AuthorizationPolicy on the local mesh, through the real Envoy: the RBAC filters istiod builds
on each pod's inbound (``chaosmesh_py.localmesh.authorization``), answering as Envoy does."""

import pytest

from chaosmesh_py.istio import status
from tests.local.security_helpers import (
    authorization_policy,
    delete,
    from_sidecar,
    inbound_counters,
    send,
    to_pod,
)

pytestmark = pytest.mark.slow

DENIED = (403, "RBAC: access denied")
HTTPBIN = {"matchLabels": {"app": "httpbin"}}


def inbound_filters(mesh, workload):
    name = mesh.info()["workloads"][workload]["inbound_listener"]
    for item in mesh.envoy.config_dump("dynamic_listeners")["configs"]:
        if item["name"] == name:
            # One chain per transport PeerAuthentication lets in (PERMISSIVE: TLS and plain
            # text), each with the same HTTP filters.
            chains = item["active_state"]["listener"]["filter_chains"]
            first, *others = [c["filters"][0]["typed_config"]["http_filters"] for c in chains]
            assert all(other == first for other in others)
            return first
    raise AssertionError(f"no listener {name}")


def test_deny_by_path_answers_403_rbac_access_denied_and_lets_other_paths_through(mesh):
    authorization_policy(
        mesh,
        "deny-status",
        {
            "selector": HTTPBIN,
            "action": "DENY",
            "rules": [{"to": [{"operation": {"paths": ["/status/*"]}}]}],
        },
    )
    assert from_sidecar(mesh, "httpbin", "/status/200") == DENIED
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 200
    # Any caller, sidecar or none: the inbound decides.
    assert to_pod(mesh, "httpbin-v1", "/status/200") == DENIED


def test_filters_are_in_istiods_order_and_only_on_the_selected_pods(mesh):
    authorization_policy(mesh, "allow-get", {"selector": HTTPBIN, "rules": [{}]})
    authorization_policy(mesh, "deny-post", {"selector": HTTPBIN, "action": "DENY", "rules": [{}]})
    authorization_policy(mesh, "audit", {"selector": HTTPBIN, "action": "AUDIT", "rules": [{}]})
    filters = inbound_filters(mesh, "httpbin-v1")
    actions = [f["typed_config"]["rules"].get("action", "ALLOW") for f in filters[:3]]
    assert [f["name"] for f in filters] == [
        "envoy.filters.http.rbac",
        "envoy.filters.http.rbac",
        "envoy.filters.http.rbac",
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]
    assert actions == ["LOG", "DENY", "ALLOW"]
    assert [f["name"] for f in inbound_filters(mesh, "ratings-v1")] == [
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]


def test_deny_by_method_and_by_header(mesh):
    authorization_policy(
        mesh,
        "deny-post-and-header",
        {
            "selector": HTTPBIN,
            "action": "DENY",
            "rules": [
                {"to": [{"operation": {"methods": ["POST"]}}]},
                {"when": [{"key": "request.headers[x-user]", "values": ["mallory*"]}]},
            ],
        },
    )
    assert from_sidecar(mesh, "httpbin", "/headers", method="POST") == DENIED
    assert from_sidecar(mesh, "httpbin", "/headers", headers={"x-user": "mallory-2"}) == DENIED
    assert from_sidecar(mesh, "httpbin", "/headers", headers={"x-user": "alice"})[0] == 200


def test_ip_blocks_match_the_connecting_address(mesh):
    # A client without a sidecar connects from 127.0.0.1 straight to the pod.
    authorization_policy(
        mesh,
        "deny-loopback",
        {
            "selector": HTTPBIN,
            "action": "DENY",
            "rules": [{"from": [{"source": {"ipBlocks": ["127.0.0.1/32"]}}]}],
        },
    )
    assert to_pod(mesh, "httpbin-v1", "/headers") == DENIED
    delete(mesh, "AuthorizationPolicy", "deny-loopback")
    authorization_policy(
        mesh,
        "deny-elsewhere",
        {
            "selector": HTTPBIN,
            "action": "DENY",
            "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}],
        },
    )
    assert to_pod(mesh, "httpbin-v1", "/headers")[0] == 200


def test_remote_ip_blocks_read_x_forwarded_for_as_the_inbound_trusts_it(mesh):
    authorization_policy(
        mesh,
        "deny-office",
        {
            "selector": HTTPBIN,
            "action": "DENY",
            "rules": [{"from": [{"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]}],
        },
    )
    office = {"X-Forwarded-For": "203.0.113.7"}
    assert to_pod(mesh, "httpbin-v1", "/headers", headers=office) == DENIED
    assert (
        to_pod(mesh, "httpbin-v1", "/headers", headers={"X-Forwarded-For": "198.51.100.1"})[0]
        == 200
    )


def test_deny_wins_over_allow(mesh):
    authorization_policy(mesh, "allow-all", {"selector": HTTPBIN, "rules": [{}]})
    authorization_policy(
        mesh,
        "deny-delay",
        {
            "selector": HTTPBIN,
            "action": "DENY",
            "rules": [{"to": [{"operation": {"paths": ["/delay/*"]}}]}],
        },
    )
    assert from_sidecar(mesh, "httpbin", "/delay/0") == DENIED
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 200


def test_allow_with_no_match_denies_and_allow_nothing_denies_all(mesh):
    authorization_policy(
        mesh,
        "allow-headers",
        {"selector": HTTPBIN, "rules": [{"to": [{"operation": {"paths": ["/headers"]}}]}]},
    )
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 200
    assert from_sidecar(mesh, "httpbin", "/status/200") == DENIED
    # A policy with no rules under ALLOW: the selected pods accept nothing (istio.io's
    # "allow-nothing"), whatever other ALLOW policies say.
    authorization_policy(mesh, "allow-nothing", {"selector": HTTPBIN})
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 200  # its ALLOW still matches
    delete(mesh, "AuthorizationPolicy", "allow-headers")
    assert from_sidecar(mesh, "httpbin", "/headers") == DENIED


def test_deny_all_in_the_root_namespace_applies_mesh_wide(mesh):
    authorization_policy(
        mesh,
        "deny-all",
        {"action": "DENY", "rules": [{}]},
        namespace="istio-system",
    )
    assert from_sidecar(mesh, "ratings", "/ratings/0") == DENIED
    assert from_sidecar(mesh, "httpbin", "/headers") == DENIED


def test_deny_with_no_rules_denies_nothing(mesh):
    authorization_policy(mesh, "deny-nothing", {"selector": HTTPBIN, "action": "DENY"})
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 200


def test_dry_run_lets_the_request_through_and_counts_it_on_the_shadow_counters(mesh):
    authorization_policy(
        mesh,
        "deny-headers-dry-run",
        {
            "selector": {"matchLabels": {"app": "httpbin", "version": "v1"}},
            "action": "DENY",
            "rules": [{"to": [{"operation": {"paths": ["/headers"]}}]}],
        },
        annotations={"istio.io/dry-run": "true"},
    )
    before = inbound_counters(mesh, "httpbin-v1")
    for _ in range(3):
        assert to_pod(mesh, "httpbin-v1", "/headers")[0] == 200
    assert to_pod(mesh, "httpbin-v1", "/get")[0] == 200
    after = inbound_counters(mesh, "httpbin-v1")

    def moved(name):
        return after.get(name, 0) - before.get(name, 0)

    assert moved("rbac.istio_dry_run_deny_.shadow_denied") == 3
    assert moved("rbac.istio_dry_run_deny_.shadow_allowed") == 1
    assert moved("rbac.denied") == 0


def test_enforced_decisions_are_counted(mesh):
    authorization_policy(
        mesh,
        "deny-status",
        {
            "selector": {"matchLabels": {"app": "httpbin", "version": "v1"}},
            "action": "DENY",
            "rules": [{"to": [{"operation": {"paths": ["/status/*"]}}]}],
        },
    )
    before = inbound_counters(mesh, "httpbin-v1")
    assert to_pod(mesh, "httpbin-v1", "/status/200") == DENIED
    assert to_pod(mesh, "httpbin-v1", "/get")[0] == 200
    after = inbound_counters(mesh, "httpbin-v1")
    assert after.get("rbac.denied", 0) - before.get("rbac.denied", 0) == 1
    assert after.get("rbac.allowed", 0) - before.get("rbac.allowed", 0) == 1


def test_principals_never_match_plain_text(mesh):
    """ISTIO-SECURITY-2021-004's ground: a client without a certificate has no principal, so
    an ALLOW on principals refuses it and a DENY on principals lets it through."""
    authorization_policy(
        mesh,
        "deny-sleep",
        {
            "selector": HTTPBIN,
            "action": "DENY",
            "rules": [
                {"from": [{"source": {"principals": ["cluster.local/ns/bookinfo/sa/sleep"]}}]}
            ],
        },
    )
    assert to_pod(mesh, "httpbin-v1", "/headers")[0] == 200
    authorization_policy(
        mesh,
        "allow-bookinfo",
        {"selector": HTTPBIN, "rules": [{"from": [{"source": {"namespaces": ["bookinfo"]}}]}]},
    )
    assert to_pod(mesh, "httpbin-v1", "/headers") == DENIED


def test_a_rule_istiod_cannot_build_is_skipped_under_allow(mesh):
    authorization_policy(
        mesh,
        "allow-bad-port-or-alice",
        {
            "selector": HTTPBIN,
            "rules": [
                # A port that is no number: istiod skips the rule rather than allow everything.
                {"to": [{"operation": {"ports": ["http"]}}]},
                {"when": [{"key": "request.headers[x-user]", "values": ["alice"]}]},
            ],
        },
    )
    assert from_sidecar(mesh, "httpbin", "/get", headers={"x-user": "alice"})[0] == 200
    assert from_sidecar(mesh, "httpbin", "/get") == DENIED


def test_custom_is_said_to_be_unsupported_on_the_policys_status(mesh):
    authorization_policy(mesh, "allow-all", {"selector": HTTPBIN, "rules": [{}]})
    authorization_policy(
        mesh,
        "ext-authz",
        {
            "selector": HTTPBIN,
            "action": "CUSTOM",
            "provider": {"name": "my-ext-authz"},
            "rules": [{}],
        },
    )
    accepted = mesh.api.get("security.istio.io/v1", "AuthorizationPolicy", "bookinfo", "allow-all")
    custom = mesh.api.get("security.istio.io/v1", "AuthorizationPolicy", "bookinfo", "ext-authz")
    # As for every kind: no condition while Envoy runs it, "Reconciled: False" otherwise.
    assert not status.is_marked_rejected(accepted)
    assert "action CUSTOM" in (status.not_supported(custom) or "")
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 200


# --- identities over mutual TLS -----------------------------------------------------------------

RATINGS = {"matchLabels": {"app": "ratings"}}


def principal_of(mesh, workload):
    return mesh.info()["workloads"][workload]["principal"]


def test_principals_allow_reviews_to_ratings_and_refuse_productpage(mesh):
    reviews = principal_of(mesh, "reviews-v2")
    assert reviews == "cluster.local/ns/bookinfo/sa/bookinfo-reviews"
    authorization_policy(
        mesh,
        "ratings-from-reviews",
        {"selector": RATINGS, "rules": [{"from": [{"source": {"principals": [reviews]}}]}]},
    )
    assert from_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")[0] == 200
    assert from_sidecar(mesh, "ratings", "/ratings/0", workload="productpage-v1") == DENIED
    # Plain text carries no principal at all.
    assert to_pod(mesh, "ratings-v1", "/ratings/0") == DENIED


def test_namespaces_and_not_principals_read_the_peer_certificate(mesh):
    authorization_policy(
        mesh,
        "deny-bookinfo-but-reviews",
        {
            "selector": RATINGS,
            "action": "DENY",
            "rules": [
                {
                    "from": [
                        {
                            "source": {
                                "namespaces": ["bookinfo"],
                                "notPrincipals": ["cluster.local/ns/bookinfo/sa/bookinfo-rev*"],
                            }
                        }
                    ]
                }
            ],
        },
    )
    assert from_sidecar(mesh, "ratings", "/ratings/0", workload="productpage-v1") == DENIED
    assert from_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v3")[0] == 200
    # ISTIO-SECURITY-2021-004: the DENY on an mTLS-only field never matches plain text.
    assert to_pod(mesh, "ratings-v1", "/ratings/0")[0] == 200


def test_source_principal_condition_and_the_bookinfo_page_under_a_ratings_lockdown(mesh):
    authorization_policy(
        mesh,
        "ratings-only-reviews",
        {
            "selector": RATINGS,
            "rules": [
                {
                    "when": [
                        {
                            "key": "source.principal",
                            "values": ["cluster.local/ns/bookinfo/sa/bookinfo-reviews"],
                        }
                    ]
                }
            ],
        },
    )
    status, page = send_page(mesh)
    assert status == 200 and "Ratings service is currently unavailable" not in page
    authorization_policy(
        mesh, "ratings-nothing", {"selector": RATINGS, "action": "DENY", "rules": [{}]}
    )
    status, page = send_page(mesh)
    assert status == 200 and "Ratings service is currently unavailable" in page


def send_page(mesh):
    """The product page as jason sees it: Bookinfo's routing sends him to reviews v2, which
    calls ratings."""
    url = f"{mesh.info()['ingress_url']}/productpage"
    return send(url, headers={"Cookie": "user=jason"}, timeout=10)


def test_every_field_istiod_translates_is_accepted_by_envoy(mesh):
    """A policy using every source, operation and condition (as istiod's allow-full-rule
    example): Envoy takes the translation (no Reconciled: False on the policy)."""
    everything = {
        "selector": HTTPBIN,
        "rules": [
            {
                "from": [
                    {
                        "source": {
                            "principals": ["a", "b-*", "*-c", "*"],
                            "requestPrincipals": ["iss/sub", "iss/*", "*/sub", "*"],
                            "namespaces": ["ns", "ns-*", "*"],
                            "ipBlocks": ["10.0.0.1", "10.1.0.0/16"],
                            "remoteIpBlocks": ["192.0.2.0/24"],
                            "notPrincipals": ["x"],
                            "notRequestPrincipals": ["x/y"],
                            "notNamespaces": ["x"],
                            "notIpBlocks": ["10.2.0.0/16"],
                        }
                    },
                    # Istio's CRD: serviceAccounts never beside principals or namespaces.
                    {"source": {"serviceAccounts": ["ns/sa", "sa"], "trustDomains": ["td"]}},
                ],
                "to": [
                    {
                        "operation": {
                            "hosts": ["a.com", "*.b.com", "c.*", "*"],
                            "methods": ["GET", "P*"],
                            "paths": ["/a", "/b/*", "*/c", "/d/{*}/e", "/{**}/f"],
                            "ports": ["8000"],
                            "notPaths": ["/x"],
                            "notMethods": ["DELETE"],
                        }
                    }
                ],
                "when": [
                    {"key": "request.headers[x-a]", "values": ["a", "*"], "notValues": ["b"]},
                    {"key": "source.ip", "values": ["10.0.0.0/8"]},
                    {"key": "remote.ip", "values": ["10.0.0.0/8"]},
                    {"key": "source.namespace", "values": ["bookinfo"]},
                    {"key": "source.principal", "values": ["*"]},
                    {"key": "request.auth.principal", "values": ["iss/sub"]},
                    {"key": "request.auth.audiences", "values": ["aud"]},
                    {"key": "request.auth.presenter", "values": ["azp"]},
                    {"key": "request.auth.claims[groups]", "values": ["g"]},
                    {"key": "request.auth.claims[a][b]", "values": ["c"]},
                    {"key": "destination.port", "values": ["8000"]},
                    {"key": "destination.ip", "values": ["127.0.0.1"]},
                    {"key": "connection.sni", "values": ["*.svc.cluster.local"]},
                ],
            }
        ],
    }
    authorization_policy(mesh, "everything", everything)
    stored = mesh.api.get("security.istio.io/v1", "AuthorizationPolicy", "bookinfo", "everything")
    assert not status.is_marked_rejected(stored)
    (rbac, *_) = inbound_filters(mesh, "httpbin-v1")
    assert rbac["name"] == "envoy.filters.http.rbac"
    # Built, not skipped: Envoy runs the rule itself.
    assert list(rbac["typed_config"]["rules"]["policies"]) == [
        "ns[bookinfo]-policy[everything]-rule[0]"
    ]
    # Nobody carries all that: the ALLOW refuses.
    assert from_sidecar(mesh, "httpbin", "/a") == DENIED


def test_ports_name_the_container_port_as_on_a_cluster(mesh):
    """A policy names the pod's container port (httpbin's 8000), whatever port the local
    inbound listens on."""
    authorization_policy(
        mesh,
        "allow-8000",
        {"selector": HTTPBIN, "rules": [{"to": [{"operation": {"ports": ["8000"]}}]}]},
    )
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 200
    authorization_policy(
        mesh,
        "deny-not-9999",
        {
            "selector": HTTPBIN,
            "action": "DENY",
            "rules": [{"when": [{"key": "destination.port", "notValues": ["9999"]}]}],
        },
    )
    assert from_sidecar(mesh, "httpbin", "/headers") == DENIED


def test_policies_selecting_the_ingress_gateway_apply_at_the_edge(mesh):
    """As istio.io's ingress tasks: policies in istio-system selecting the gateway's labels."""
    authorization_policy(
        mesh,
        "ingress-no-api",
        {
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "action": "DENY",
            "rules": [{"to": [{"operation": {"paths": ["/api/v1/products*"]}}]}],
        },
        namespace="istio-system",
    )
    ingress = mesh.info()["ingress_url"]
    assert send(f"{ingress}/api/v1/products") == DENIED
    assert send(f"{ingress}/productpage", timeout=10)[0] == 200
    # Behind the gateway nothing changed: productpage's own API still answers a mesh caller.
    assert from_sidecar(mesh, "productpage", "/api/v1/products")[0] == 200
