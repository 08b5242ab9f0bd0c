"""The posture checks where no local mesh is (the API double as a cluster's API, through the real
kubernetes client): every finding predicted from the policies, marked measured: false, and
each one gone once the policy that fixes it is applied."""

import json
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.engine.access import declared
from chaosmesh_py.security.probes import (
    mtls_only_rules_on_plaintext,
    never_matching_policies,
    plaintext_acceptors,
    security_posture,
    unenforced_request_authentication,
)
from tests.conftest import NAMESPACE

SECURITY = "security.istio.io/v1"


def pod(
    name: str, app: str, account: str, *, sidecar: bool = True, namespace: str = NAMESPACE
) -> dict:
    """A pod as a Deployment's ReplicaSet makes it, with Istio's injected sidecar or without."""
    metadata: dict[str, Any] = {
        "name": f"{name}-5d9f8c7b6-abcde",
        "namespace": namespace,
        "labels": {"app": app, "pod-template-hash": "5d9f8c7b6"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": f"{name}-5d9f8c7b6",
                "uid": f"uid-{name}",
                "controller": True,
            }
        ],
    }
    containers = [{"name": app, "image": "x", "ports": [{"containerPort": 9080}]}]
    if sidecar:
        metadata["annotations"] = {"sidecar.istio.io/status": '{"containers":["istio-proxy"]}'}
        containers.append({"name": "istio-proxy", "image": "proxyv2"})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"serviceAccountName": account, "containers": containers},
    }


def policy(kind: str, name: str, spec: dict, namespace: str = NAMESPACE) -> dict:
    return {
        "apiVersion": SECURITY,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture
def cluster(api):
    api.create_namespace("istio-system") if api.get(
        "v1", "Namespace", None, "istio-system"
    ) is None else None
    for name, app, account, sidecar in (
        ("productpage-v1", "productpage", "bookinfo-productpage", True),
        ("details-v1", "details", "bookinfo-details", True),
        ("ratings-v1", "ratings", "bookinfo-ratings", True),
        ("legacy-client", "legacy", "default", False),
    ):
        api.create(pod(name, app, account, sidecar=sidecar))
    # Only productpage is STRICT: the namespace stays at the mesh's default, PERMISSIVE.
    api.create(
        policy(
            "PeerAuthentication",
            "productpage-strict",
            {"selector": {"matchLabels": {"app": "productpage"}}, "mtls": {"mode": "STRICT"}},
        )
    )
    return api


# Meant: nobody of namespace foo reads details. Plain text carries no namespace.
DENY_FOO_TO_DETAILS = policy(
    "AuthorizationPolicy",
    "deny-foo",
    {
        "selector": {"matchLabels": {"app": "details"}},
        "action": "DENY",
        "rules": [{"from": [{"source": {"namespaces": ["foo"]}}]}],
    },
)


def where(findings: list) -> set:
    return {f["where"] for f in findings}


def test_plaintext_acceptors_are_predicted_from_peer_authentication(cluster):
    found = plaintext_acceptors(namespace=NAMESPACE)
    assert where(found) == {"details-v1", "ratings-v1", "legacy-client"}
    assert all(f["measured"] is False for f in found)
    evidence = {f["where"]: f["evidence"] for f in found}
    assert evidence["details-v1"] == "PeerAuthentication mode PERMISSIVE on port 9080"
    assert evidence["legacy-client"].startswith("no sidecar")
    legacy = next(f for f in found if f["where"] == "legacy-client")
    assert "no Istio policy applies" in legacy["message"] and "injection" in legacy["fix"]
    cluster.create(policy("PeerAuthentication", "default", {"mtls": {"mode": "STRICT"}}))
    assert where(plaintext_acceptors(namespace=NAMESPACE)) == {"legacy-client"}


def test_missing_token_trap_is_predicted_until_a_policy_requires_a_principal(cluster):
    cluster.create(
        policy(
            "RequestAuthentication",
            "jwt-details",
            {
                "selector": {"matchLabels": {"app": "details"}},
                "jwtRules": [{"issuer": "testing@secure.istio.io", "jwks": '{"keys": []}'}],
            },
        )
    )
    found = unenforced_request_authentication(namespace=NAMESPACE)
    assert where(found) == {"details-v1"}
    assert found[0]["measured"] is False
    assert "a plain-text client" in found[0]["evidence"]
    assert "cluster.local/ns/bookinfo/sa/bookinfo-productpage" in found[0]["evidence"]
    cluster.create(
        policy(
            "AuthorizationPolicy",
            "require-jwt",
            {
                "selector": {"matchLabels": {"app": "details"}},
                "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}],
            },
        )
    )
    assert unenforced_request_authentication(namespace=NAMESPACE) == []


def test_deny_on_namespaces_is_bypassed_over_plain_text(cluster):
    cluster.create(DENY_FOO_TO_DETAILS)
    found = mtls_only_rules_on_plaintext(namespace=NAMESPACE)
    assert where(found) == {f"AuthorizationPolicy {NAMESPACE}/deny-foo on details-v1"}
    assert "rule 0 namespaces" in found[0]["message"]
    assert found[0]["evidence"].startswith("cluster.local/ns/foo/sa/default is refused over mTLS")
    assert found[0]["measured"] is False
    # STRICT for details: plain text never reaches the rule.
    cluster.create(
        policy(
            "PeerAuthentication",
            "details-strict",
            {"selector": {"matchLabels": {"app": "details"}}, "mtls": {"mode": "STRICT"}},
        )
    )
    assert mtls_only_rules_on_plaintext(namespace=NAMESPACE) == []


def test_never_matching_policies_say_why(cluster):
    cluster.create_namespace("foo")
    cluster.create(pod("sleep", "sleep", "sleep", namespace="foo"))
    dead = {
        "no-pod": {"selector": {"matchLabels": {"app": "reviewz"}}, "rules": [{}]},
        "other-domain": {
            "rules": [{"from": [{"source": {"principals": ["example.org/ns/foo/sa/sleep"]}}]}]
        },
        "ghost-ns": {
            "action": "DENY",
            "rules": [{"from": [{"source": {"namespaces": ["ghost"]}}]}],
        },
        "lowercase": {"rules": [{"to": [{"operation": {"methods": ["get"]}}]}]},
        "scheme": {
            "rules": [
                {"from": [{"source": {"principals": ["spiffe://cluster.local/ns/foo/sa/sleep"]}}]}
            ]
        },
        "unserved-port": {
            "selector": {"matchLabels": {"app": "ratings"}},
            "rules": [{"to": [{"operation": {"ports": ["8080"]}}]}],
        },
        "contradiction": {
            "rules": [{"to": [{"operation": {"methods": ["GET"], "notMethods": ["GET"]}}]}]
        },
        "nobody": {
            "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/foo/sa/admin"]}}]}]
        },
    }
    for name, spec in dead.items():
        cluster.create(policy("AuthorizationPolicy", name, spec))
    # Alive: a real identity from foo, and a wildcard (never judged).
    cluster.create(
        policy(
            "AuthorizationPolicy",
            "sleep-ok",
            {"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/foo/sa/sleep"]}}]}]},
        )
    )
    cluster.create(
        policy(
            "AuthorizationPolicy",
            "wild",
            {"rules": [{"from": [{"source": {"namespaces": ["gho*"]}}]}]},
        )
    )
    found = {f["where"].split("/")[-1]: f for f in never_matching_policies(namespace=NAMESPACE)}
    assert set(found) == set(dead)
    assert "matches no pod" in found["no-pod"]["message"]
    assert "trust domain 'example.org'" in found["other-domain"]["message"]
    assert "no pod runs in namespace 'ghost'" in found["ghost-ns"]["message"]
    assert "case-sensitive: GET" in found["lowercase"]["message"]
    assert "istiod adds spiffe:// itself" in found["scheme"]["message"]
    assert "served by no selected pod (they serve [9080])" in found["unserved-port"]["message"]
    assert "excluded by its not-form" in found["contradiction"]["message"]
    assert "runs as 'admin' (they run as ['sleep'])" in found["nobody"]["message"]
    assert "it denies nothing" in found["ghost-ns"]["message"]
    assert "it allows nothing" in found["nobody"]["message"]


def test_security_posture_reports_all_and_expect_judges(cluster):
    report = security_posture(namespace=NAMESPACE)
    assert report["local_mesh"] is False
    assert report["summary"]["by_kind"]["plaintext_acceptor"] == 3
    rows = {w["workload"]: w for w in report["workloads"]}
    assert rows["productpage-v1"]["accepts_plaintext"] is False
    assert (
        rows["productpage-v1"]["principal"] == "cluster.local/ns/bookinfo/sa/bookinfo-productpage"
    )
    assert rows["productpage-v1"]["predicted_mode"] == "STRICT"
    with pytest.raises(ActivityFailed, match=r"3 findings, expected 0 .*details-v1"):
        plaintext_acceptors(namespace=NAMESPACE, expect={"findings": 0})
    assert len(plaintext_acceptors(namespace=NAMESPACE, expect={"findings": [1, 3]})) == 3


def test_the_probes_declare_what_they_read():
    needs = declared("chaosmesh_py.security.probes", "security_posture")
    assert needs is not None
    access = {str(a) for a in needs({"namespace": "shop", "root_namespace": "istio-system"})}
    assert "list pods in 'shop'" in access
    assert "list authorizationpolicies.security.istio.io in 'istio-system'" in access
    assert "list requestauthentications.security.istio.io in 'shop'" in access
    assert not any(a.startswith(("create", "patch", "delete")) for a in access)


def chaosmesh(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_prints_the_report_and_exits_1_with_findings(cluster):
    result = chaosmesh("security", "posture", "-n", NAMESPACE)
    assert result.exit_code == 1, result.output
    assert f"security posture of {NAMESPACE} (a cluster, predicted)" in result.output
    assert "productpage-v1  cluster.local/ns/bookinfo/sa/bookinfo-productpage  refused" in (
        result.output
    )
    assert "[plaintext_acceptor] details-v1 (predicted)" in result.output
    as_json = json.loads(chaosmesh("security", "posture", "-n", NAMESPACE, "--json").output)
    assert as_json["summary"]["by_kind"]["plaintext_acceptor"] == 3
    only = chaosmesh("security", "posture", "-n", NAMESPACE, "-l", "app=productpage")
    assert only.exit_code == 0, only.output
    assert "FINDINGS (0)" in only.output


def test_idioms_on_absent_attributes_are_not_called_never_matching(cluster):
    # notRequestPrincipals ["*"] is how istio.io denies requests without a token; notPrincipals
    # ["*"] refuses plain text. Both match requests lacking the attribute: alive.
    for name, field in (("deny-no-token", "notRequestPrincipals"), ("deny-plain", "notPrincipals")):
        cluster.create(
            policy(
                "AuthorizationPolicy",
                name,
                {"action": "DENY", "rules": [{"from": [{"source": {field: ["*"]}}]}]},
            )
        )
    cluster.create(
        policy(
            "AuthorizationPolicy",
            "deny-every-method",
            {"action": "DENY", "rules": [{"to": [{"operation": {"notMethods": ["*"]}}]}]},
        )
    )
    found = never_matching_policies(namespace=NAMESPACE)
    assert [f["where"] for f in found] == [f"AuthorizationPolicy {NAMESPACE}/deny-every-method"]
    assert "notMethods ['*'] excludes every request" in found[0]["message"]


def test_a_path_scoped_deny_is_shown_bypassed_on_its_own_path(cluster):
    cluster.create(
        policy(
            "AuthorizationPolicy",
            "deny-foo-admin",
            {
                "selector": {"matchLabels": {"app": "details"}},
                "action": "DENY",
                "rules": [
                    {
                        "from": [{"source": {"namespaces": ["foo"]}}],
                        "to": [{"operation": {"paths": ["/admin/*"], "methods": ["POST"]}}],
                    }
                ],
            },
        )
    )
    (found,) = mtls_only_rules_on_plaintext(namespace=NAMESPACE)
    assert "its POST /admin/x is answered over plain text" in found["evidence"], found


def test_no_bypass_where_another_policy_refuses_plain_text_anyway(cluster):
    cluster.create(DENY_FOO_TO_DETAILS)
    cluster.create(
        policy(
            "AuthorizationPolicy",
            "only-productpage",
            {
                "selector": {"matchLabels": {"app": "details"}},
                "rules": [
                    {
                        "from": [
                            {
                                "source": {
                                    "principals": [
                                        "cluster.local/ns/bookinfo/sa/bookinfo-productpage"
                                    ]
                                }
                            }
                        ]
                    }
                ],
            },
        )
    )
    assert mtls_only_rules_on_plaintext(namespace=NAMESPACE) == []


def test_authentication_policies_that_apply_to_nothing(cluster):
    cluster.create(
        policy(
            "RequestAuthentication",
            "jwt-for-a-typo",
            {
                "selector": {"matchLabels": {"app": "product-page"}},
                "jwtRules": [{"issuer": "testing@secure.istio.io"}],
            },
        )
    )
    cluster.create(
        policy(
            "PeerAuthentication",
            "ratings-port",
            {
                "selector": {"matchLabels": {"app": "ratings"}},
                "mtls": {"mode": "STRICT"},
                "portLevelMtls": {"8080": {"mode": "DISABLE"}},
            },
        )
    )
    found = {f["where"]: f for f in never_matching_policies(namespace=NAMESPACE)}
    assert set(found) == {
        f"RequestAuthentication {NAMESPACE}/jwt-for-a-typo",
        f"PeerAuthentication {NAMESPACE}/ratings-port",
    }
    assert "matches no pod" in found[f"RequestAuthentication {NAMESPACE}/jwt-for-a-typo"]["message"]
    assert (
        "ports ['8080'] no selected pod serves (they serve [9080])"
        in (found[f"PeerAuthentication {NAMESPACE}/ratings-port"]["message"])
    )
