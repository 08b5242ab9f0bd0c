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
