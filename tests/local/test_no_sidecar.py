"""Clients without a sidecar on the local mesh, through the real Envoy: a Service's ClusterIP as
kube-proxy serves it (every selected pod, per connection, no VirtualService), each pod's own
address, and PeerAuthentication STRICT refusing plain text at the pod."""

import http.client
import json
from collections import Counter
from urllib.parse import urlsplit

import pytest

from tests.local.conftest import create_service

pytestmark = pytest.mark.slow


def served_by(url, path="/reviews/0", headers=None, requests=12):
    """Who answered each of ``requests`` GETs, each on a new connection: the pod named in the
    body, else the status ("refused": no answer at all)."""
    seen = Counter()
    parts = urlsplit(url)
    for _ in range(requests):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
            answer = json.loads(body) if response.status == 200 else {}
            seen[answer.get("podname", response.status)] += 1
        except (OSError, http.client.HTTPException):
            seen["refused"] += 1
        finally:
            connection.close()
    return dict(seen)


def peer_authentication(mesh, name, namespace, mode, selector=None):
    spec = {"mtls": {"mode": mode}}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    mesh.api.create(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    mesh.sync()


def test_status_names_each_way_in_without_a_sidecar(mesh):
    info = mesh.info()
    assert info["services"]["reviews"]["selector"] == {"app": "reviews"}
    assert info["services"]["reviews"]["no_sidecar_url"].startswith("http://127.0.0.1:")
    assert info["workloads"]["reviews-v2"]["pod_url"].startswith("http://127.0.0.1:")
    assert info["workloads"]["sleep"]["pod_url"] is None  # a client: it serves nothing


def test_kube_proxy_spreads_over_every_pod_and_ignores_the_virtual_service(mesh):
    # The reviews VirtualService sends everyone but jason to v1; kube-proxy never reads it.
    url = mesh.info()["services"]["reviews"]["no_sidecar_url"]
    spread = {"reviews-v1": 4, "reviews-v2": 4, "reviews-v3": 4}
    assert served_by(url) == spread
    assert served_by(url, headers={"end-user": "jason"}) == spread
    sidecar = mesh.info()["workloads"]["sleep"]["sidecar_url"]
    assert served_by(sidecar, headers={"Host": "reviews:9080"}) == {"reviews-v1": 12}


def test_strict_on_one_workload_refuses_plain_text_to_its_pod_only(mesh):
    peer_authentication(mesh, "reviews-v2-strict", "bookinfo", "STRICT", {"version": "v2"})
    info = mesh.info()
    url = info["services"]["reviews"]["no_sidecar_url"]
    assert served_by(url) == {"reviews-v1": 4, "refused": 4, "reviews-v3": 4}
    assert served_by(info["workloads"]["reviews-v2"]["pod_url"], requests=2) == {"refused": 2}
    assert served_by(info["workloads"]["reviews-v1"]["pod_url"], requests=2) == {"reviews-v1": 2}
    # In-mesh callers are unaffected (their sidecars would speak mutual TLS).
    sidecar = info["workloads"]["productpage-v1"]["sidecar_url"]
    jason = {"Host": "reviews:9080", "end-user": "jason"}
    assert served_by(sidecar, headers=jason, requests=2) == {"reviews-v2": 2}


def test_mesh_wide_strict_is_inherited_and_a_namespace_may_relax_it(mesh):
    url = mesh.info()["services"]["ratings"]["no_sidecar_url"]
    peer_authentication(mesh, "default", "istio-system", "STRICT")
    assert served_by(url, "/ratings/0", requests=2) == {"refused": 2}
    peer_authentication(mesh, "default", "bookinfo", "PERMISSIVE")
    assert served_by(url, "/ratings/0", requests=2) == {200: 2}  # ratings names no pod
    # UNSET on the workload inherits the namespace's PERMISSIVE.
    peer_authentication(mesh, "ratings", "bookinfo", "UNSET", {"app": "ratings"})
    assert served_by(url, "/ratings/0", requests=2) == {200: 2}


def test_a_service_created_through_the_api_is_routed_to_by_the_sidecars(mesh):
    sidecar = mesh.info()["workloads"]["sleep"]["sidecar_url"]
    canary = {"Host": "reviews-v2:9080"}
    assert served_by(sidecar, headers=canary, requests=1) == {404: 1}  # no such host yet
    create_service(mesh, "reviews-v2", {"app": "reviews", "version": "v2"})
    assert served_by(sidecar, headers=canary) == {"reviews-v2": 12}
    mesh.api.delete("v1", "Service", "bookinfo", "reviews-v2")
    mesh.sync()
    assert served_by(sidecar, headers=canary, requests=1) == {404: 1}


def test_a_services_selector_changed_through_the_api_is_followed(mesh):
    # No generation counts a Service's spec: the mesh must still see the change and re-route.
    sidecar = mesh.info()["workloads"]["sleep"]["sidecar_url"]
    canary = {"Host": "reviews-canary:9080"}
    create_service(mesh, "reviews-canary", {"app": "reviews", "version": "v2"})
    assert served_by(sidecar, headers=canary, requests=2) == {"reviews-v2": 2}
    mesh.api.patch(
        "v1", "Service", "bookinfo", "reviews-canary", {"spec": {"selector": {"version": "v3"}}}
    )
    mesh.envoy.wait_for(
        lambda: served_by(sidecar, headers=canary, requests=2) == {"reviews-v3": 2},
        timeout_s=10,
        interval_s=0.05,
        what="reviews-canary to select v3",
    )
