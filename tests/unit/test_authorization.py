"""Istio's AuthorizationPolicy semantics (chaosmesh_py.istio.authorization), from the examples of
istio.io's authorization tasks (authz-http, authz-deny, authz-jwt, dry-run), its reference and
the ISTIO-SECURITY-2021-004 advisory."""

from __future__ import annotations

from typing import Any

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.istio.authorization import (
    RequestFacts,
    decide,
    parse,
    path_match,
    plaintext_bypass,
    selects,
)

PRODUCTPAGE_SA = "cluster.local/ns/default/sa/bookinfo-productpage"
SLEEP_FOO = "cluster.local/ns/foo/sa/sleep"
ISSUER_SUBJECT = "testing@secure.istio.io/testing@secure.istio.io"


def policy(
    name: str,
    spec: dict[str, Any],
    namespace: str = "default",
    annotations: dict[str, str] | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "creationTimestamp": created}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": metadata,
        "spec": spec,
    }


def request(app: str = "productpage", **facts: Any) -> RequestFacts:
    return RequestFacts(
        namespace=facts.pop("namespace", "default"),
        labels={"app": app},
        port=facts.pop("port", 9080),
        **facts,
    )


ALLOW_NOTHING = policy("allow-nothing", {})
PRODUCTPAGE_VIEWER = policy(
    "productpage-viewer",
    {
        "selector": {"matchLabels": {"app": "productpage"}},
        "action": "ALLOW",
        "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}],
    },
)
DETAILS_VIEWER = policy(
    "details-viewer",
    {
        "selector": {"matchLabels": {"app": "details"}},
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"principals": [PRODUCTPAGE_SA]}}],
                "to": [{"operation": {"methods": ["GET"]}}],
            }
        ],
    },
)


def test_allow_nothing_denies_every_request_of_the_namespace() -> None:
    decision = decide([ALLOW_NOTHING], request(source_principal=PRODUCTPAGE_SA))
    assert not decision.allowed and decision.by is None
    assert "default/allow-nothing" in decision.reason
    # ...and nothing outside its namespace.
    assert decide([ALLOW_NOTHING], request(namespace="foo")).allowed


def test_no_policy_allows() -> None:
    decision = decide([], request())
    assert decision.allowed and decision.by is None


def test_productpage_viewer_allows_get_only() -> None:
    policies = [ALLOW_NOTHING, PRODUCTPAGE_VIEWER]
    get = decide(policies, request(method="GET"))
    assert get.allowed and get.by == "default/productpage-viewer"
    assert not decide(policies, request(method="POST")).allowed
    # The viewer selects productpage only: details stays under allow-nothing.
    assert not decide(policies, request("details", method="GET")).allowed


def test_details_viewer_needs_productpage_identity_over_mtls() -> None:
    policies = [ALLOW_NOTHING, DETAILS_VIEWER]
    assert decide(policies, request("details", source_principal=PRODUCTPAGE_SA)).allowed
    other = decide(policies, request("details", source_principal=SLEEP_FOO))
    assert not other.allowed
    plain = decide(policies, request("details", source_namespace="default"))
    assert not plain.allowed and "plain text" in plain.reason


def test_deny_wins_over_allow() -> None:
    deny_get = policy(
        "deny-get",
        {
            "selector": {"matchLabels": {"app": "productpage"}},
            "action": "DENY",
            "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}],
        },
    )
    decision = decide([PRODUCTPAGE_VIEWER, deny_get], request(method="GET"))
    assert not decision.allowed and decision.by == "default/deny-get"


def test_authz_deny_task_header_not_values() -> None:
    # istio.io authz-deny: deny GET unless the x-token header is "admin".
    deny = policy(
        "deny-method-get",
        {
            "selector": {"matchLabels": {"app": "httpbin"}},
            "action": "DENY",
            "rules": [
                {
                    "to": [{"operation": {"methods": ["GET"]}}],
                    "when": [{"key": "request.headers[x-token]", "notValues": ["admin"]}],
                }
            ],
        },
        namespace="foo",
    )
    target = {"app": "httpbin", "namespace": "foo"}
    assert not decide([deny], request(**target, method="GET")).allowed
    assert decide([deny], request(**target, method="GET", headers={"X-Token": "admin"})).allowed
    assert not decide([deny], request(**target, method="GET", headers={"x-token": "guest"})).allowed
    assert decide([deny], request(**target, method="POST")).allowed


def test_mtls_only_fields_against_plain_text_istio_security_2021_004() -> None:
    allow_not_foo = policy(
        "allow-ns-not-foo",
        {"action": "ALLOW", "rules": [{"from": [{"source": {"notNamespaces": ["foo"]}}]}]},
    )
    deny_foo = policy(
        "deny-ns-foo",
        {"action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["foo"]}}]}]},
    )
    from_foo_mtls = request(source_principal=SLEEP_FOO, source_namespace="foo")
    from_foo_plain = request(source_namespace="foo")
    # The advisory's example: a plain-text request from foo is allowed by the not-form.
    assert not decide([allow_not_foo], from_foo_mtls).allowed
    assert decide([allow_not_foo], from_foo_plain).allowed
    # A DENY on namespaces never fires for plain text.
    assert not decide([deny_foo], from_foo_mtls).allowed
    assert decide([deny_foo], from_foo_plain).allowed
    assert plaintext_bypass(parse(allow_not_foo)) == [(0, "notNamespaces")]
    assert plaintext_bypass(parse(deny_foo)) == [(0, "namespaces")]
    # The safe forms refuse plain text: nothing to report.
    deny_not_foo = policy(
        "deny-not-foo",
        {"action": "DENY", "rules": [{"from": [{"source": {"notNamespaces": ["foo"]}}]}]},
    )
    assert not decide([deny_not_foo], from_foo_plain).allowed
    assert plaintext_bypass(parse(deny_not_foo)) == []
    assert plaintext_bypass(parse(DETAILS_VIEWER)) == []


def test_source_principal_condition_is_mtls_only() -> None:
    deny = policy(
        "deny-sleep",
        {
            "action": "DENY",
            "rules": [{"when": [{"key": "source.principal", "values": [SLEEP_FOO]}]}],
        },
    )
    assert not decide([deny], request(source_principal=SLEEP_FOO)).allowed
    assert decide([deny], request()).allowed
    assert plaintext_bypass(parse(deny)) == [(0, "when source.principal values")]


def test_request_principals_need_a_valid_token() -> None:
    # istio.io authz-jwt: require a request principal from the task's issuer.
    require_jwt = policy(
        "require-jwt",
        {
            "selector": {"matchLabels": {"app": "httpbin"}},
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"requestPrincipals": [ISSUER_SUBJECT]}}]}],
        },
    )
    assert not decide([require_jwt], request("httpbin")).allowed
    with_token = request("httpbin", request_principal=ISSUER_SUBJECT, claims={"groups": ["g1"]})
    assert decide([require_jwt], with_token).allowed
    # The deny-requests-without-a-token pattern: notRequestPrincipals ["*"].
    deny_missing = policy(
        "deny-missing",
        {"action": "DENY", "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]},
    )
    assert not decide([deny_missing], request()).allowed
    assert decide([deny_missing], with_token).allowed


def test_claims_condition_matches_an_item_of_a_list_claim() -> None:
    groups = policy(
        "group1",
        {
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"requestPrincipals": ["*"]}}],
                    "when": [{"key": "request.auth.claims[groups]", "values": ["group1"]}],
                }
            ],
        },
    )
    member = request(request_principal=ISSUER_SUBJECT, claims={"groups": ["group1", "group2"]})
    stranger = request(request_principal=ISSUER_SUBJECT, claims={"groups": ["group2"]})
    nested = policy(
        "nested",
        {
            "action": "ALLOW",
            "rules": [{"when": [{"key": "request.auth.claims[a][b]", "values": ["c*"]}]}],
        },
    )
    assert decide([groups], member).allowed
    assert not decide([groups], stranger).allowed
    # Claims of a token that was not valid (no request principal) are not there.
    assert not decide([groups], request(claims={"groups": ["group1"]})).allowed
    deep = request(request_principal="i/s", claims={"a": {"b": "cat"}})
    assert decide([nested], deep).allowed
    # scope is split on spaces (istiod's space_delimited_claims); other claims are not.
    scoped = policy(
        "scoped",
        {"rules": [{"when": [{"key": "request.auth.claims[scope]", "values": ["write"]}]}]},
    )
    assert decide(
        [scoped], request(request_principal="i/s", claims={"scope": "read write"})
    ).allowed
    named = policy(
        "named",
        {"rules": [{"when": [{"key": "request.auth.claims[name]", "values": ["write"]}]}]},
    )
    assert not decide(
        [named], request(request_principal="i/s", claims={"name": "read write"})
    ).allowed


def test_root_namespace_policy_selects_every_namespace() -> None:
    mesh_deny = policy(
        "deny-all-post",
        {"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]},
        namespace="istio-system",
    )
    assert not decide([mesh_deny], request(namespace="foo", method="POST")).allowed
    assert selects(mesh_deny, "bar", {"app": "x"})
    with_selector = policy(
        "r", {"selector": {"matchLabels": {"app": "x"}}}, namespace="istio-system"
    )
    assert selects(with_selector, "bar", {"app": "x"})
    assert not selects(with_selector, "bar", {"app": "y"})
    # Another namespace's policy selects nothing here; a custom root namespace is honoured.
    assert not selects(policy("p", {}, namespace="foo"), "bar", {})
    assert selects(policy("p", {}, namespace="mesh-root"), "bar", {}, root_namespace="mesh-root")


def test_target_ref_policy_does_not_bind_to_sidecars() -> None:
    waypoint = policy(
        "waypoint",
        {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "w"}]},
    )
    assert not selects(waypoint, "default", {"app": "productpage"})
    assert decide([waypoint], request()).allowed


def test_dry_run_changes_nothing_unless_asked() -> None:
    dry = policy(
        "deny-all-dry",
        {"action": "DENY", "rules": [{}]},
        annotations={"istio.io/dry-run": "true"},
    )
    assert decide([dry], request()).allowed
    shadow = decide([dry], request(), enforce_dry_run=True)
    assert not shadow.allowed and shadow.by == "default/deny-all-dry"


def test_audit_never_decides_and_custom_is_named_not_evaluated() -> None:
    audit = policy("audit", {"action": "AUDIT", "rules": [{}]})
    custom = policy("ext", {"action": "CUSTOM", "provider": {"name": "opa"}, "rules": [{}]})
    decision = decide([audit, custom], request())
    assert decision.allowed
    assert "CUSTOM default/ext not evaluated" in decision.reason


def test_empty_rule_matches_everything_no_rules_nothing() -> None:
    allow_all = policy("allow-all", {"rules": [{}]})
    deny_no_rules = policy("deny-none", {"action": "DENY"})
    assert decide([ALLOW_NOTHING, allow_all], request()).allowed
    assert decide([deny_no_rules], request()).allowed


def test_operations_paths_hosts_ports() -> None:
    ops = policy(
        "ops",
        {
            "rules": [
                {
                    "to": [
                        {"operation": {"paths": ["/api/*"], "notPaths": ["/api/admin*"]}},
                        {"operation": {"hosts": ["*.Example.com"], "ports": ["8080"]}},
                    ]
                }
            ]
        },
    )
    assert decide([ops], request(path="/api/v1?x=1")).allowed
    assert not decide([ops], request(path="/api/admin/x")).allowed
    assert not decide([ops], request(path="/other")).allowed
    assert decide([ops], request(path="/other", host="shop.example.COM", port=8080)).allowed
    assert not decide([ops], request(path="/other", host="shop.example.com", port=9080)).allowed


def test_path_templates() -> None:
    assert path_match("/users/{*}/profile", "/users/ann/profile")
    assert not path_match("/users/{*}/profile", "/users/a/b/profile")
    assert path_match("/files/{**}", "/files/a/b/c.txt")
    assert path_match("*", "/anything") and not path_match("*", "")


def test_ip_blocks_and_remote_ip() -> None:
    ips = policy(
        "ips",
        {"action": "DENY", "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]},
    )
    remote = policy(
        "remote",
        {"action": "DENY", "rules": [{"from": [{"source": {"remoteIpBlocks": ["1.2.3.4"]}}]}]},
    )
    assert not decide([ips], request(source_ip="10.1.2.3")).allowed
    assert decide([ips], request(source_ip="192.168.0.1")).allowed
    assert not decide([remote], request(source_ip="10.0.0.1", remote_ip="1.2.3.4")).allowed
    assert decide([remote], request(source_ip="10.0.0.1")).allowed


def test_service_accounts_and_trust_domains() -> None:
    by_sa = policy(
        "by-sa",
        {"rules": [{"from": [{"source": {"serviceAccounts": ["bookinfo-productpage"]}}]}]},
    )
    elsewhere = policy(
        "elsewhere",
        {"rules": [{"from": [{"source": {"serviceAccounts": ["foo/sleep"]}}]}]},
    )
    other_domain = policy(
        "td", {"rules": [{"from": [{"source": {"trustDomains": ["other.local"]}}]}]}
    )
    assert decide([by_sa], request(source_principal=PRODUCTPAGE_SA)).allowed
    assert not decide([by_sa], request(source_principal=SLEEP_FOO)).allowed
    assert decide([elsewhere], request(source_principal=SLEEP_FOO)).allowed
    assert not decide([other_domain], request(source_principal=SLEEP_FOO)).allowed


def test_methods_are_case_sensitive_and_principal_wildcards() -> None:
    get_only = policy("g", {"rules": [{"to": [{"operation": {"methods": ["get"]}}]}]})
    any_peer = policy("p", {"rules": [{"from": [{"source": {"principals": ["*"]}}]}]})
    suffix = policy("s", {"rules": [{"from": [{"source": {"principals": ["*/sa/sleep"]}}]}]})
    assert not decide([get_only], request(method="GET")).allowed
    assert decide([any_peer], request(source_principal=SLEEP_FOO)).allowed
    assert not decide([any_peer], request()).allowed
    assert decide([suffix], request(source_principal=SLEEP_FOO)).allowed
    assert not decide([suffix], request(source_principal=PRODUCTPAGE_SA)).allowed
    # istiod writes "spiffe://" + value itself: a value carrying the scheme never matches.
    with_scheme = policy(
        "scheme", {"rules": [{"from": [{"source": {"principals": [f"spiffe://{SLEEP_FOO}"]}}]}]}
    )
    assert not decide([with_scheme], request(source_principal=SLEEP_FOO)).allowed


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"action": "PERMIT"}, "spec.action"),
        ({"action": "CUSTOM"}, "spec.provider"),
        ({"rules": [{"from": [{"source": {}}]}]}, "spec.rules[0].from[0].source"),
        ({"rules": [{"from": [{"source": {"principal": ["x"]}}]}]}, "source.principal"),
        ({"rules": [{"to": [{"operation": {"methods": "GET"}}]}]}, "operation.methods"),
        ({"rules": [{"when": [{"key": "source.namespace"}]}]}, "spec.rules[0].when[0]"),
        ({"rules": [{"when": [{"key": "request.auth.claim[x]", "values": ["y"]}]}]}, "when[0].key"),
        ({"selector": {"matchLabels": {"app": 1}}}, "spec.selector.matchLabels"),
    ],
)
def test_malformed_policies_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(policy("bad", spec))
    assert field in caught.value.field
    assert "default/bad" in caught.value.field
