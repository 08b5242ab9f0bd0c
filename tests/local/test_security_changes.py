"""Security changes on the local mesh, through the real Envoy: each action's effect seen in the
data plane (the pods' inbound chains, RBAC and jwt_authn filters, certificates, real requests),
and gone again after the rollback, as Istio's tasks describe it."""

import time

import pytest

from chaosmesh_py.control import roll_back
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.security.actions import (
    deny_requests,
    expire_certificate,
    make_jwks_unreachable,
    require_jwt,
    rotate_certificate,
    set_mtls_mode,
)
from chaosmesh_py.security.rollbacks import remove_security_changes
from tests.conftest import NAMESPACE
from tests.local.security_helpers import (
    bearer,
    from_sidecar,
    inbound_counters,
    issuer,
    request_authentication,
    settle,
    to_pod,
    token,
)

REVIEWS = "cluster.local/ns/bookinfo/sa/bookinfo-reviews"


def plain_text_answered(mesh, workload):
    """A client without a sidecar gets an answer from the pod (STRICT resets it)."""
    try:
        to_pod(mesh, workload, "/")
    except OSError:
        return False
    return True


def test_strict_for_the_namespace_refuses_plain_text_until_rolled_back(mesh, configuration):
    assert plain_text_answered(mesh, "ratings-v1")  # PERMISSIVE: Istio's default
    report = set_mtls_mode(mode="STRICT", namespace=NAMESPACE, configuration=configuration)
    effect = report["effect"]
    assert effect["verified"] is True, effect
    assert effect["plain_text"]["ratings-v1"] == "refused"
    assert set(effect["pods"].values()) == {"STRICT"}
    assert not plain_text_answered(mesh, "ratings-v1")
    # In-mesh traffic is mTLS (auto mTLS): still answered.
    assert from_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")[0] == 200
    removed = remove_security_changes(namespace=NAMESPACE, configuration=configuration)
    assert [entry["deleted"] for entry in removed["removed"]] == [True]
    # The removal waited until every pod's inbound was back to PERMISSIVE (Istio's default).
    assert removed["effect"]["verified"] is True, removed["effect"]
    assert plain_text_answered(mesh, "ratings-v1")


def test_a_workload_policy_keeps_its_pods_out_of_a_namespace_change(mesh, configuration):
    mesh.api.create(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "ratings-permissive", "namespace": NAMESPACE},
            "spec": {
                "selector": {"matchLabels": {"app": "ratings"}},
                "mtls": {"mode": "PERMISSIVE"},
            },
        }
    )
    try:
        report = set_mtls_mode(mode="STRICT", namespace=NAMESPACE, configuration=configuration)
        effect = report["effect"]
        assert effect["governed_by_another_policy"] == {"ratings-v1": "PERMISSIVE"}
        assert effect["plain_text"]["ratings-v1"].startswith("answered")
        assert effect["plain_text"]["details-v1"] == "refused"
        roll_back(run_for(configuration))
    finally:
        mesh.api.delete(
            "security.istio.io/v1", "PeerAuthentication", NAMESPACE, "ratings-permissive"
        )


def test_deny_from_reviews_to_ratings_answers_403_and_recovers(mesh, configuration):
    report = deny_requests(
        destination_labels={"app": "ratings"},
        namespace=NAMESPACE,
        sources={"principals": [REVIEWS]},
        verify={"from": "reviews-v2", "to": "ratings", "path": "/ratings/0"},
        configuration=configuration,
    )
    assert report["effect"]["verified"] is True
    assert report["effect"]["request"] == {
        "status": 403,
        "body": "RBAC: access denied",
        "as_expected": True,
    }
    # Another caller (productpage's identity) is not denied.
    assert from_sidecar(mesh, "ratings", "/ratings/0", workload="productpage-v1")[0] == 200
    roll_back(run_for(configuration))
    settle(mesh)
    assert from_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")[0] == 200


def test_a_replaced_pod_shows_the_change_though_the_run_read_the_mesh_before(mesh, configuration):
    """A process reads the mesh's info once; a pod replaced afterwards (kubectl delete pod,
    chaosk8s terminate_pods) serves on the same address under a new name, and the effect
    check must still find it (it once looked the listener up by the old pod's name)."""
    deny = {
        "destination_labels": {"app": "ratings"},
        "namespace": NAMESPACE,
        "sources": {"principals": [REVIEWS]},
        "verify": {"from": "reviews-v2", "to": "ratings", "path": "/ratings/0"},
        "configuration": configuration,
    }
    assert deny_requests(**deny)["effect"]["verified"] is True  # the info is read and kept
    roll_back(run_for(configuration))
    (old,) = [
        pod["metadata"]["name"]
        for pod in mesh.api.list("v1", "Pod", NAMESPACE)
        if pod["metadata"]["labels"].get("app") == "ratings"
    ]
    mesh.api.delete("v1", "Pod", NAMESPACE, old)
    deadline = time.monotonic() + 20
    while from_sidecar(mesh, "ratings", "/ratings/0", workload="productpage-v1")[0] != 200:
        assert time.monotonic() < deadline, "no replacement for ratings' pod"
        time.sleep(0.2)
    settle(mesh)
    report = deny_requests(**deny)
    assert report["effect"]["verified"] is True, report["effect"]
    assert report["effect"]["request"]["status"] == 403
    roll_back(run_for(configuration))


def test_a_dry_run_deny_is_counted_not_enforced(mesh, configuration):
    before = inbound_counters(mesh, "ratings-v1")
    report = deny_requests(
        destination_labels={"app": "ratings"},
        namespace=NAMESPACE,
        sources={"principals": [REVIEWS]},
        dry_run=True,
        verify={"from": "reviews-v2", "to": "ratings", "path": "/ratings/0"},
        configuration=configuration,
    )
    request = report["effect"]["request"]
    assert request["status"] == 200 and request["shadow_denied"] >= 1
    after = inbound_counters(mesh, "ratings-v1")
    assert sum(v for k, v in after.items() if k.endswith("shadow_denied")) > sum(
        v for k, v in before.items() if k.endswith("shadow_denied")
    )
    roll_back(run_for(configuration))


def test_require_jwt_refuses_a_request_without_a_token_and_admits_a_valid_one(mesh, configuration):
    local = issuer(mesh)
    report = require_jwt(
        workload_labels={"app": "httpbin"},
        namespace=NAMESPACE,
        issuer=local["issuer"],
        jwks_uri=local["jwks_uri"],
        audiences=["httpbin"],
        configuration=configuration,
    )
    assert report["effect"]["verified"] is True
    settle(mesh)
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 403  # no token: the DENY
    assert from_sidecar(mesh, "httpbin", "/headers", headers=bearer(token(mesh)))[0] == 200
    roll_back(run_for(configuration))
    settle(mesh)
    assert from_sidecar(mesh, "httpbin", "/headers")[0] == 200


def test_an_unreachable_jwks_refuses_every_token_until_restored(mesh, configuration):
    local = issuer(mesh)
    request_authentication(
        mesh,
        "httpbin-jwt",
        {
            "selector": {"matchLabels": {"app": "httpbin"}},
            "jwtRules": [{"issuer": local["issuer"], "jwksUri": local["jwks_uri"]}],
        },
    )
    try:
        valid = bearer(token(mesh))
        assert from_sidecar(mesh, "httpbin", "/headers", headers=valid)[0] == 200
        report = make_jwks_unreachable(
            request_authentication="httpbin-jwt", namespace=NAMESPACE, configuration=configuration
        )
        assert report["effect"]["verified"] is True, report["effect"]
        settle(mesh)
        status, body = from_sidecar(mesh, "httpbin", "/headers", headers=valid)
        assert (status, body) == (401, "Jwt verification fails")
        roll_back(run_for(configuration))
        settle(mesh)
        assert from_sidecar(mesh, "httpbin", "/headers", headers=valid)[0] == 200
    finally:
        mesh.api.delete("security.istio.io/v1", "RequestAuthentication", NAMESPACE, "httpbin-jwt")


@pytest.mark.parametrize("action", [expire_certificate, rotate_certificate])
def test_a_certificate_changes_and_is_issued_fresh_at_rollback(mesh, configuration, action):
    report = action(
        workload_labels={"app": "ratings"}, namespace=NAMESPACE, configuration=configuration
    )
    assert report["effect"]["verified"] is True, report["effect"]
    assert report["effect"]["identities"] == {
        "ratings-v1": "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings"
    }
    status = from_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")[0]
    assert (status == 200) == (action is rotate_certificate)
    roll_back(run_for(configuration))
    settle(mesh)
    assert from_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")[0] == 200
