"""A configuration Istio accepts but the local mesh's Envoy rejects: the reason, at once.

Istio's webhook lets an abort's ``httpStatus`` be 600 (pkg/config/validation checks
``status > 600``, though its message says 200-599), and so does the Kubernetes API; Envoy's
``FaultAbort.http_status`` must be below 600, so Envoy NACKs the route. Our own arguments are
held to Envoy's range, so the 600 comes from another writer: a fault copy of that route carries
it too. The action must fail within about two seconds quoting Envoy's reason, not after its whole
verification time box with "never reached Envoy's configuration"; the resource's status says
why, as Istio's ``Reconciled`` condition would; everything else keeps reaching Envoy meanwhile.
"""

import time

import pytest
import requests
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.faults.actions import inject_delay
from chaosmesh_py.istio import status
from tests.local.conftest import httpbin_route, through_sidecar

V1 = "networking.istio.io/v1"
ENVOYS_REASON = "FaultAbortValidationError.HttpStatus: value must be inside range [200, 600)"


def reconciled(mesh, name):
    resource = mesh.api.get(V1, "VirtualService", "bookinfo", name)
    conditions = (resource.get("status") or {}).get("conditions") or []
    return resource, next((c for c in conditions if c["type"] == "Reconciled"), None)


def break_ratings(mesh):
    """Another writer (kubectl) puts an abort Envoy cannot take on ratings' route: Istio accepts
    it, Envoy rejects the route configuration (and keeps serving the one before)."""
    ratings = mesh.api.get(V1, "VirtualService", "bookinfo", "ratings")
    bad_route = {**ratings["spec"]["http"][0], "fault": {"abort": {"httpStatus": 600}}}
    bad_route["fault"]["abort"]["percentage"] = {"value": 100}
    mesh.api.patch(V1, "VirtualService", "bookinfo", "ratings", {"spec": {"http": [bad_route]}})
    mesh.envoy.wait_for(
        lambda: (reconciled(mesh, "ratings")[1] or {}).get("status") == "False",
        timeout_s=5,
        what="the rejection on the VirtualService's status",
    )


def test_an_edit_envoy_rejects_fails_the_action_at_once_quoting_envoy(mesh, configuration):
    break_ratings(mesh)
    before = mesh.api.get(V1, "VirtualService", "bookinfo", "ratings")
    configuration["chaosmesh_verify_timeout_s"] = 10
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as failed:
        inject_delay(
            virtual_service="ratings",
            namespace="bookinfo",
            fixed_delay="1s",
            percentage=100,
            headers={"end-user": "jason"},
            configuration=configuration,
        )
    elapsed_s = time.monotonic() - started
    assert elapsed_s < 2.5, f"took {elapsed_s:.2f} s: the reason was not seen at once"
    message = str(failed.value)
    assert "DataPlaneRejected" in message
    assert "Envoy rejected" in message and ENVOYS_REASON in message, message
    # The fault copy is gone again; the route is as the other writer left it.
    assert reconciled(mesh, "ratings")[0]["spec"] == before["spec"]
    sidecar = mesh.envoy.route_config("outbound~bookinfo~productpage-v1")
    routes = [r for host in sidecar["virtual_hosts"] for r in host["routes"]]
    assert not any(r.get("name", "").startswith("chaosmesh-") for r in routes)


def test_the_rejected_resource_is_set_aside_and_the_rest_still_reaches_envoy(mesh):
    """Another writer (kubectl) puts the bad abort in; a later change elsewhere still lands."""
    httpbin_route(mesh)
    break_ratings(mesh)
    resource, condition = reconciled(mesh, "ratings")
    assert condition["reason"] == "Rejected"
    assert ENVOYS_REASON in condition["message"]
    assert condition["observedGeneration"] == resource["metadata"]["generation"]
    assert status.rejection(resource, resource["metadata"]["generation"]) == condition["message"]

    # httpbin's route gets a fault of its own: it must land though ratings' change cannot.
    httpbin = mesh.api.get(V1, "VirtualService", "bookinfo", "httpbin")
    route = {
        **httpbin["spec"]["http"][0],
        "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
    }
    mesh.api.patch(V1, "VirtualService", "bookinfo", "httpbin", {"spec": {"http": [route]}})
    url, headers = through_sidecar(mesh, "httpbin", "/status/200")

    def teapot() -> bool:
        return requests.get(url, headers=headers, timeout=5).status_code == 418

    mesh.envoy.wait_for(teapot, timeout_s=5, what="httpbin's fault despite ratings' rejection")
    # The rejected abort never reached Envoy: ratings still answers.
    ratings_url, ratings_headers = through_sidecar(mesh, "ratings", "/ratings/0")
    assert requests.get(ratings_url, headers=ratings_headers, timeout=5).status_code == 200
