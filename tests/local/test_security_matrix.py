"""The policy matrix for Bookinfo on the local mesh: real requests through the real Envoy, every
in-mesh cell through its source's sidecar (mutual TLS with its identity to the destination's
inbound), every outside cell plain text to the pod, matched against what istio.io documents.

Three posture setups, as the issue asks: Istio's defaults; STRICT plus the authz-http task's
policies; RequestAuthentication on productpage with and without a policy requiring a request
principal.
"""

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.security.probes import policy_matrix

pytestmark = pytest.mark.slow

NAMESPACE = "bookinfo"
SOURCES = ["productpage-v1", "reviews-v1", "sleep", "outside"]
DESTINATIONS = ["productpage", "details", "reviews", "ratings"]
# One path per service that its app answers 200, so "allowed" is a real page each time.
PATHS = {
    "productpage": "/productpage",
    "details": "/details/0",
    "reviews": "/reviews/0",
    "ratings": "/ratings/0",
}


def apply(mesh, *documents):
    for document in documents:
        document["metadata"].setdefault("namespace", NAMESPACE)
        mesh.api.create(document)
    mesh.sync()


def remove(mesh, *documents):
    for document in documents:
        kind = document["kind"]
        mesh.api.delete(
            document["apiVersion"],
            kind,
            document["metadata"]["namespace"],
            document["metadata"]["name"],
        )
    mesh.sync()


def peer_authentication(mode, name="default"):
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": name},
        "spec": {"mtls": {"mode": mode}},
    }


def authorization_policy(name, selector=None, rules=None, action=None):
    spec = {}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if action is not None:
        spec["action"] = action
    if rules is not None:
        spec["rules"] = rules
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def principal(service_account):
    return f"cluster.local/ns/{NAMESPACE}/sa/{service_account}"


def get_from(*principals):
    """An ALLOW rule: GET, from these principals (any source when none)."""
    rule = {"to": [{"operation": {"methods": ["GET"]}}]}
    if principals:
        rule["from"] = [{"source": {"principals": list(principals)}}]
    return [rule]


# istio.io's authz-http task, in the bookinfo namespace: allow-nothing, then each service opened
# to exactly its callers (https://istio.io/latest/docs/tasks/security/authorization/authz-http/).
AUTHZ_HTTP_TASK = (
    authorization_policy("allow-nothing"),
    authorization_policy("productpage-viewer", {"app": "productpage"}, get_from(), "ALLOW"),
    authorization_policy(
        "details-viewer", {"app": "details"}, get_from(principal("bookinfo-productpage")), "ALLOW"
    ),
    authorization_policy(
        "reviews-viewer", {"app": "reviews"}, get_from(principal("bookinfo-productpage")), "ALLOW"
    ),
    authorization_policy(
        "ratings-viewer", {"app": "ratings"}, get_from(principal("bookinfo-reviews")), "ALLOW"
    ),
)
TASK_EXPECTATION = [
    {"destination": "productpage", "method": "GET", "outcome": "allowed"},
    {
        "source": "productpage-v1",
        "destination": ["details", "reviews"],
        "method": "GET",
        "outcome": "allowed",
    },
    {
        "source": ["reviews-v1", "reviews-v2"],
        "destination": "ratings",
        "method": "GET",
        "outcome": "allowed",
    },
]
TASK_SOURCES = [
    "productpage-v1",
    "reviews-v1",
    "reviews-v2",
    "ratings-v1",
    "details-v1",
    "sleep",
    "outside",
]


def per_destination(destination, **arguments):
    """The matrix to one destination, with the path its app serves."""
    return policy_matrix(
        destinations=[destination],
        requests=[{"method": "GET", "path": PATHS[destination]}],
        **arguments,
    )


def test_istio_defaults_allow_everything_plain_text_included(mesh):
    """Istio's defaults (https://istio.io/latest/docs/tasks/security/authentication/authn-policy/:
    "by default, Istio ... PERMISSIVE mode", no AuthorizationPolicy: every request allowed),
    including a client without a sidecar sending plain text."""
    cells = 0
    for destination in DESTINATIONS:
        result = per_destination(destination, sources=SOURCES, expect={"default": "allowed"})
        assert result["matched"] == result["cells"] == len(SOURCES)
        assert {row["status"] for row in result["observed"]} == {200}
        cells += result["cells"]
    assert cells == 16


def test_strict_resets_the_outside_client_only(mesh):
    """STRICT for the namespace (authn-policy task, "Globally enabling Istio mutual TLS in
    STRICT mode": the sleep without a sidecar fails, curl exit 56, connection reset)."""
    strict = peer_authentication("STRICT")
    apply(mesh, strict)
    try:
        result = policy_matrix(
            sources=SOURCES,
            destinations=["ratings"],
            requests=[{"method": "GET", "path": "/ratings/0"}],
            expect={"default": "allowed", "rules": [{"source": "outside", "outcome": "reset"}]},
        )
    finally:
        remove(mesh, strict)
    assert result["matched"] == result["cells"] == 4
    (outside,) = [row for row in result["observed"] if row["source"] == "outside"]
    assert outside["got"] == "reset"
    assert outside["status"] is None
    assert "connection" in outside["reason"]


def test_a_difference_fails_the_probe_naming_the_cell(mesh):
    with pytest.raises(ActivityFailed, match=r"1 of 1 cells differ") as failed:
        per_destination("details", sources=["sleep"], expect={"default": "403"})
    assert "sleep -> details GET /details/0 token=none: expected 403, got allowed" in str(
        failed.value
    )


def test_without_failing_the_differences_are_returned(mesh):
    result = per_destination(
        "details", sources=["sleep"], expect={"default": "403"}, fail_on_difference=False
    )
    assert result["cells"] == 1
    assert result["matched"] == 0
    (differ,) = result["differs"]
    assert (differ["expected"], differ["got"], differ["status"]) == ("403", "allowed", 200)


def test_an_unknown_source_is_refused_before_any_request_naming_the_known_ones(mesh):
    with pytest.raises(ActivityFailed, match=r"sources\[1\]: 'ratings-v9' is no workload") as e:
        per_destination("details", sources=["sleep", "ratings-v9"], expect={"default": "allowed"})
    assert "'productpage-v1'" in str(e.value) and "'outside'" in str(e.value)


def test_one_pod_among_several_is_no_destination_for_a_sidecar(mesh):
    with pytest.raises(ActivityFailed, match=r"a sidecar \(sleep\) calls a service"):
        policy_matrix(sources=["sleep"], destinations=["reviews-v2"], expect={"default": "allowed"})
    # From outside it is the pod's own address.
    result = policy_matrix(
        sources=["outside"],
        destinations=["reviews-v2"],
        requests=[{"path": "/reviews/0"}],
        expect={"default": "200"},
    )
    assert result["matched"] == 1


def test_strict_and_the_authz_http_task_policies(mesh):
    """STRICT for bookinfo (authn-policy task) and the authz-http task's policies: productpage
    answers GET from anyone, details and reviews GET from productpage's identity, ratings GET
    from reviews' identity; every other request 403 "RBAC: access denied"; the client without a
    sidecar is reset before any policy is read
    (https://istio.io/latest/docs/tasks/security/authorization/authz-http/,
    https://istio.io/latest/docs/tasks/security/authentication/authn-policy/)."""
    strict = peer_authentication("STRICT")
    apply(mesh, strict, *AUTHZ_HTTP_TASK)
    try:
        result = policy_matrix(
            sources=TASK_SOURCES,
            destinations=DESTINATIONS,
            requests=[{"method": "GET", "path": "/"}, {"method": "POST", "path": "/"}],
            expect={
                "default": "403",
                "rules": [*TASK_EXPECTATION, {"source": "outside", "outcome": "reset"}],
            },
        )
    finally:
        remove(mesh, strict, *AUTHZ_HTTP_TASK)
    assert result["cells"] == result["matched"] == 7 * 4 * 2
    # The in-mesh cells went over mutual TLS: new connections after the change, handshaken.
    assert result["tls_handshakes"] > 0
    denied = [row for row in result["observed"] if row["got"] == "403"]
    # Allowed: GET productpage from the 6 in-mesh sources, details and reviews from
    # productpage, ratings from reviews v1 and v2; the outside's 8 cells reset.
    assert len(denied) == 7 * 4 * 2 - 6 - 2 - 2 - 8
    assert {row["reason"] for row in denied} == {"RBAC: access denied"}


def test_permissive_lets_plain_text_past_a_get_from_anyone_only(mesh):
    """The same policies under PERMISSIVE (Istio's default): the outside client's plain text
    reaches productpage, whose rule names no principal, and is denied wherever a rule requires
    one: principals never match plain text (ISTIO-SECURITY-2021-004's reading: a policy written
    for identities says nothing of a caller without one)."""
    apply(mesh, *AUTHZ_HTTP_TASK)
    try:
        result = policy_matrix(
            sources=TASK_SOURCES,
            destinations=DESTINATIONS,
            requests=[{"method": "GET", "path": "/"}],
            expect={"default": "403", "rules": TASK_EXPECTATION},
        )
    finally:
        remove(mesh, *AUTHZ_HTTP_TASK)
    assert result["cells"] == result["matched"] == 7 * 4
    outside = {
        row["destination"]: row["got"] for row in result["observed"] if row["source"] == "outside"
    }
    assert outside == {
        "productpage": "allowed",
        "details": "403",
        "reviews": "403",
        "ratings": "403",
    }


def request_authentication(issuer):
    """The jwt task's RequestAuthentication, on productpage, with the local issuer and an
    audience (https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/)."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "jwt-example"},
        "spec": {
            "selector": {"matchLabels": {"app": "productpage"}},
            "jwtRules": [
                {
                    "issuer": issuer["issuer"],
                    "jwksUri": issuer["jwks_uri"],
                    "audiences": ["bookinfo"],
                }
            ],
        },
    }


JWT_STATES = ["valid", "expired", "wrong-issuer", "wrong-audience", "bad-signature", "none"]
JWT_EXPECTATION = [
    {"token": ["expired", "wrong-issuer", "bad-signature"], "outcome": "401"},
    {"token": "wrong-audience", "outcome": "403"},
]


def jwt_matrix(expect_none):
    return policy_matrix(
        sources=["sleep", "outside"],
        destinations=["productpage"],
        requests=[{"method": "GET", "path": "/productpage"}],
        tokens=JWT_STATES,
        audiences=["bookinfo"],
        expect={
            "default": "allowed",
            "rules": [*JWT_EXPECTATION, {"token": "none", "outcome": expect_none}],
        },
    )


def test_request_authentication_on_productpage_with_and_without_a_required_principal(mesh):
    """istio.io's jwt task (https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/
    and https://istio.io/latest/docs/tasks/security/authentication/authn-policy/#end-user-authentication):
    a valid token passes, an invalid one is refused 401 (expired: "Jwt is expired"; another
    issuer; a bad signature: "Jwt verification fails"), a wrong audience 403; a request with
    no token passes until an AuthorizationPolicy requires a request principal, then 403. The
    tokens are minted with the local issuer's key, fetched by the local istiod from its
    jwksUri."""
    issuer = mesh.info()["jwt_issuer"]
    authentication = request_authentication(issuer)
    apply(mesh, authentication)
    require = authorization_policy(
        "require-jwt",
        {"app": "productpage"},
        [{"from": [{"source": {"requestPrincipals": [f"{issuer['issuer']}/chaosmesh-matrix"]}}]}],
        "ALLOW",
    )
    try:
        alone = jwt_matrix(expect_none="allowed")
        apply(mesh, require)
        required = jwt_matrix(expect_none="403")
    finally:
        remove(mesh, authentication)
        if mesh.api.get("security.istio.io/v1", "AuthorizationPolicy", NAMESPACE, "require-jwt"):
            remove(mesh, require)
    for result in (alone, required):
        assert result["cells"] == result["matched"] == 2 * 6
    reasons = {
        row["token"]: row["reason"] for row in required["observed"] if row["source"] == "sleep"
    }
    assert reasons["expired"] == "Jwt is expired"
    assert reasons["wrong-issuer"] == "Jwt issuer is not configured"
    assert reasons["bad-signature"] == "Jwt verification fails"
    assert reasons["wrong-audience"] == "Audiences in Jwt are not allowed"
    assert reasons["none"] == "RBAC: access denied"


def test_an_expired_certificate_on_ratings_resets_its_callers_with_envoys_reason(mesh):
    """The matrix tells a refused handshake from a policy: ratings' certificate expired (the
    local mesh's certificate ConfigMap), its in-mesh callers get Envoy's upstream reset (a 503
    whose body says the connection failed), not a 403; a fresh certificate, and they are
    answered again."""
    expired = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "ratings-certificate",
            "labels": {"security.chaosmesh.io/certificate": "true"},
        },
        "data": {"selector": '{"app": "ratings"}', "state": "expired"},
    }
    arguments = {
        "sources": ["reviews-v1", "productpage-v1"],
        "destinations": ["ratings"],
        "requests": [{"method": "GET", "path": "/ratings/0"}],
    }
    apply(mesh, expired)
    try:
        refused = policy_matrix(**arguments, expect={"default": "reset"})
    finally:
        remove(mesh, expired)
    assert refused["matched"] == refused["cells"] == 2
    reasons = {row["reason"] for row in refused["observed"]}
    assert all(
        r.startswith("upstream connect error or disconnect/reset before headers") for r in reasons
    )
    # Istio's default retry policy retried the connect failure; Envoy names the last one.
    assert all(r.endswith("reset reason: remote connection failure") for r in reasons), reasons
    assert {row["status"] for row in refused["observed"]} == {503}
    again = policy_matrix(**arguments, expect={"default": "200"})
    assert again["matched"] == 2
