"""The posture checks on the local mesh, measured through the real Envoy: plain text at each pod's
own address, the ISTIO-SECURITY-2021-004 trap (a DENY on namespaces that a plain-text caller
walks past) and the missing-token trap (a RequestAuthentication alone lets a request without a
token through), each caught by its probe, and each gone once the fix is applied."""

import http.client
from urllib.parse import urlsplit

import pytest

from chaosmesh_py.security.probes import (
    mtls_only_rules_on_plaintext,
    plaintext_acceptors,
    security_posture,
    unenforced_request_authentication,
)
from tests.local.conftest import through_sidecar

pytestmark = pytest.mark.slow

NAMESPACE = "bookinfo"
SERVING = {
    "productpage-v1",
    "details-v1",
    "ratings-v1",
    "reviews-v1",
    "reviews-v2",
    "reviews-v3",
    "httpbin-v1",
    "httpbin-v2",
}


def create(mesh, kind, name, spec):
    mesh.api.create(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }
    )
    mesh.sync()


def status(url, path, headers=None):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return "refused"
    finally:
        connection.close()


def measured(findings):
    return {f["where"] for f in findings if f["measured"]}


def test_plaintext_acceptors_are_measured_at_each_pod(mesh):
    found = plaintext_acceptors(namespace=NAMESPACE)
    assert measured(found) >= SERVING
    details = next(f for f in found if f["where"] == "details-v1")
    assert details["evidence"].startswith("a plain-text GET / at the pod's address: HTTP ")
    create(mesh, "PeerAuthentication", "default", {"mtls": {"mode": "STRICT"}})
    assert plaintext_acceptors(namespace=NAMESPACE, expect={"findings": 0}) == []
    report = security_posture(namespace=NAMESPACE)
    assert report["summary"]["findings"] == 0, report["findings"]
    rows = {w["workload"]: w for w in report["workloads"]}
    assert rows["ratings-v1"]["accepts_plaintext"] is False
    assert rows["ratings-v1"]["measured"] is True
    assert "no answer" in rows["ratings-v1"]["evidence"]


def test_the_2021_004_trap_is_caught_with_a_plain_text_request(mesh):
    # Meant: nobody of namespace bookinfo may read ratings. Over mTLS it holds; plain text,
    # which carries no namespace, walks past the DENY.
    create(
        mesh,
        "AuthorizationPolicy",
        "deny-bookinfo-to-ratings",
        {
            "selector": {"matchLabels": {"app": "ratings"}},
            "action": "DENY",
            "rules": [{"from": [{"source": {"namespaces": [NAMESPACE]}}]}],
        },
    )
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0")
    parts = urlsplit(url)
    assert status(f"{parts.scheme}://{parts.netloc}", parts.path, headers) == 403
    pod_url = mesh.info()["workloads"]["ratings-v1"]["pod_url"]
    assert status(pod_url, "/ratings/0") == 200

    found = mtls_only_rules_on_plaintext(namespace=NAMESPACE, path="/ratings/0")
    assert [f["where"] for f in found] == [
        f"AuthorizationPolicy {NAMESPACE}/deny-bookinfo-to-ratings on ratings-v1"
    ]
    assert found[0]["measured"] is True
    assert f"cluster.local/ns/{NAMESPACE}/sa/default is refused over mTLS" in found[0]["evidence"]
    assert found[0]["evidence"].endswith("a plain-text GET /ratings/0 at the pod: HTTP 200")

    # The fix: STRICT for ratings; the plain-text caller is refused at the connection.
    create(
        mesh,
        "PeerAuthentication",
        "ratings-strict",
        {"selector": {"matchLabels": {"app": "ratings"}}, "mtls": {"mode": "STRICT"}},
    )
    assert mtls_only_rules_on_plaintext(namespace=NAMESPACE) == []
    assert status(pod_url, "/ratings/0") == "refused"


def test_the_missing_token_trap_is_caught_with_a_request_without_a_token(mesh):
    issuer = mesh.info()["jwt_issuer"]
    create(
        mesh,
        "RequestAuthentication",
        "jwt-productpage",
        {
            "selector": {"matchLabels": {"app": "productpage"}},
            "jwtRules": [{"issuer": issuer["issuer"], "jwksUri": issuer["jwks_uri"]}],
        },
    )
    service_url = mesh.info()["services"]["productpage"]["url"]
    # A bad token is refused, so the RequestAuthentication is in force...
    assert status(service_url, "/productpage", {"Authorization": "Bearer not.a.jwt"}) == 401
    # ...and a request without one passes: the trap.
    found = unenforced_request_authentication(namespace=NAMESPACE, path="/productpage")
    assert [(f["where"], f["measured"]) for f in found] == [("productpage-v1", True)]
    assert found[0]["evidence"].endswith("HTTP 200")

    create(
        mesh,
        "AuthorizationPolicy",
        "require-jwt",
        {
            "selector": {"matchLabels": {"app": "productpage"}},
            "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}],
        },
    )
    # A connection the entry pooled before the change is answered once more by the old chain
    # (Envoy drains it on that answer): wait for the new one.
    mesh.envoy.wait_for(
        lambda: status(service_url, "/productpage") == 403,
        timeout_s=10,
        interval_s=0.05,
        what="productpage to require a token",
    )
    assert unenforced_request_authentication(namespace=NAMESPACE, path="/productpage") == []


SLEEP = f"cluster.local/ns/{NAMESPACE}/sa/sleep"
ADVISORY_FORMS = [
    # (action, source, bypassed over plain text)
    ("ALLOW", {"notNamespaces": [NAMESPACE]}, True),
    ("DENY", {"namespaces": [NAMESPACE]}, True),
    ("ALLOW", {"notPrincipals": [SLEEP]}, True),
    ("DENY", {"notNamespaces": ["elsewhere"]}, False),
    ("ALLOW", {"principals": [SLEEP]}, False),
]


@pytest.mark.parametrize(("action", "source", "bypassed"), ADVISORY_FORMS)
def test_the_advisorys_forms_as_envoy_answers_them_and_as_the_evaluator_predicts(
    mesh, action, source, bypassed
):
    """ISTIO-SECURITY-2021-004's unsafe forms (ALLOW with a not-form, DENY with a positive one)
    let plain text through, the safe ones refuse it: Envoy's answers (sleep over mutual TLS,
    an outside client in plain text) are the evaluator's decisions, and the probe names exactly
    the unsafe ones."""
    from chaosmesh_py.istio.authorization import RequestFacts, decide

    spec = {
        "selector": {"matchLabels": {"app": "ratings"}},
        "action": action,
        "rules": [{"from": [{"source": source}]}],
    }
    create(mesh, "AuthorizationPolicy", "advisory-form", spec)
    resource = {"metadata": {"name": "advisory-form", "namespace": NAMESPACE}, "spec": spec}
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0")
    parts = urlsplit(url)
    pod_url = mesh.info()["workloads"]["ratings-v1"]["pod_url"]
    for peer, send in (
        (SLEEP, lambda: status(f"{parts.scheme}://{parts.netloc}", parts.path, headers)),
        (None, lambda: status(pod_url, "/ratings/0")),
    ):
        facts = RequestFacts(
            namespace=NAMESPACE,
            labels={"app": "ratings"},
            source_principal=peer,
            source_namespace=NAMESPACE,
            path="/ratings/0",
        )
        expected = 200 if decide([resource], facts).allowed else 403
        # A connection pooled before the policy is answered once more by the old chain.
        mesh.envoy.wait_for(
            lambda expected=expected, send=send: send() == expected,
            timeout_s=10,
            interval_s=0.05,
            what=f"{action} {source} to answer {expected} to {peer or 'plain text'}",
        )
    assert decide([resource], facts).allowed is bypassed  # plain text gets in
    found = mtls_only_rules_on_plaintext(namespace=NAMESPACE, path="/ratings/0")
    assert bool(found) is bypassed, found
    assert all(f["measured"] for f in found)


def test_the_cli_reports_the_local_mesh_measured(mesh):
    from click.testing import CliRunner

    from chaosmesh_py.cli import main

    result = CliRunner().invoke(main, ["security", "posture", "-n", NAMESPACE, "--path", "/"])
    assert result.exit_code == 1, result.output  # PERMISSIVE: every pod accepts plain text
    assert f"security posture of {NAMESPACE} (the local mesh, measured)" in result.output
    assert "[plaintext_acceptor] ratings-v1 (measured)" in result.output
    create(mesh, "PeerAuthentication", "default", {"mtls": {"mode": "STRICT"}})
    result = CliRunner().invoke(main, ["security", "posture", "-n", NAMESPACE])
    assert result.exit_code == 0, result.output
    assert "FINDINGS (0)" in result.output
