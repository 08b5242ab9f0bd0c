"""Pods, Deployments and Endpoints on the local mesh: a killed pod stops serving, its Deployment
starts a replacement after the delay, Endpoints and Envoy's clusters follow; scaling adds
replicas Envoy balances over. Through the real client, kubectl and the real Envoy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import requests

from chaosmesh_py.localmesh.workloads import START_DELAY_S
from tests.local.conftest import through_sidecar

NAMESPACE = "bookinfo"
RATINGS_CLUSTER = "outbound|9080||ratings.bookinfo.svc.cluster.local"
REVIEWS_V1_CLUSTER = "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"


@pytest.fixture
def core(mesh: Any) -> kubernetes.client.CoreV1Api:
    configuration = kubernetes.client.Configuration(host=mesh.api.url)
    configuration.api_key = {"authorization": f"Bearer {mesh.credentials.token}"}
    configuration.ssl_ca_cert = str(mesh.credentials.ca_file)
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))


@pytest.fixture
def apps(core: kubernetes.client.CoreV1Api) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(core.api_client)


def pods(core: kubernetes.client.CoreV1Api, selector: str) -> list[Any]:
    return list(core.list_namespaced_pod(NAMESPACE, label_selector=selector).items)


def eventually(check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    """``check()``'s first truthy answer, polled; fails with its last answer after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            pytest.fail(f"not so after {timeout_s} s: {answer!r}")
        time.sleep(0.05)


def envoy_hosts(mesh: Any, cluster: str) -> set[str]:
    """The hosts Envoy's /clusters lists for ``cluster``: what it balances over now."""
    text = mesh.envoy.admin.get("/clusters").decode()
    return {
        line.split("::")[1]
        for line in text.splitlines()
        if line.startswith(f"{cluster}::") and line.split("::")[2].startswith("cx_active")
    }


def host_requests(mesh: Any, cluster: str) -> dict[str, int]:
    """Requests Envoy sent to each host of ``cluster`` (its ``rq_total`` per host)."""
    text = mesh.envoy.admin.get("/clusters").decode()
    return {
        line.split("::")[1]: int(line.rsplit("::", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{cluster}::") and line.split("::")[2] == "rq_total"
    }


def refuses(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def ready_addresses(
    core: kubernetes.client.CoreV1Api, service: str, field: str = "addresses"
) -> list[str]:
    endpoints = core.read_namespaced_endpoints(service, NAMESPACE)
    return sorted(
        address.target_ref.name
        for subset in endpoints.subsets or ()
        for address in getattr(subset, field) or ()
    )


def test_every_declared_workload_runs_one_ready_pod_named_as_kubernetes_names_it(
    mesh: Any, core: kubernetes.client.CoreV1Api, apps: kubernetes.client.AppsV1Api
) -> None:
    listed = pods(core, "app=reviews")
    assert len(listed) == 3
    for pod in listed:
        deployment = f"reviews-{pod.metadata.labels['version']}"
        template_hash = pod.metadata.labels["pod-template-hash"]
        assert pod.metadata.name.startswith(f"{deployment}-{template_hash}-")
        assert len(pod.metadata.name) == len(deployment) + len(template_hash) + 7
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.name) == ("ReplicaSet", f"{deployment}-{template_hash}")
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        assert pod.status.container_statuses[0].ready
    deployment = apps.read_namespaced_deployment("reviews-v1", NAMESPACE)
    assert (deployment.status.ready_replicas, deployment.status.available_replicas) == (1, 1)
    assert ready_addresses(core, "reviews") == sorted(p.metadata.name for p in listed)
    url, headers = through_sidecar(mesh, "reviews", "/reviews/0")
    assert requests.get(url, headers=headers, timeout=5).json()["podname"] == "reviews-v1"


def test_a_deleted_pod_stops_serving_and_a_new_one_takes_its_place_after_the_delay(
    mesh: Any, core: kubernetes.client.CoreV1Api, apps: kubernetes.client.AppsV1Api
) -> None:
    (old,) = pods(core, "app=ratings")
    ratings = mesh.info()["workloads"]["ratings-v1"]
    app_url, pod_url = ratings["app_url"], ratings["pod_url"]
    port = int(app_url.rsplit(":", 1)[1])
    # Envoy's endpoint is the pod's address (its inbound sidecar, in front of the app).
    pod_address = pod_url.removeprefix("http://")
    assert requests.get(f"{app_url}/ratings/0", timeout=5).ok
    assert envoy_hosts(mesh, RATINGS_CLUSTER) == {pod_address}

    deleted_at = time.monotonic()
    core.delete_namespaced_pod(
        old.metadata.name, NAMESPACE, body=kubernetes.client.V1DeleteOptions(grace_period_seconds=0)
    )
    # Killed: its port closes, Endpoints drop it, Envoy's cluster has no host left.
    eventually(lambda: refuses(port), timeout_s=5)
    eventually(lambda: ready_addresses(core, "ratings") == [], timeout_s=5)
    eventually(lambda: envoy_hosts(mesh, RATINGS_CLUSTER) == set(), timeout_s=5)
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0")
    assert requests.get(url, headers=headers, timeout=5).status_code == 503
    # The ReplicaSet's replacement: Pending first, then Running and Ready after the delay.
    replacement = eventually(
        lambda: [p for p in pods(core, "app=ratings") if p.metadata.name != old.metadata.name]
    )[0]
    assert (
        replacement.metadata.labels["pod-template-hash"] == old.metadata.labels["pod-template-hash"]
    )
    eventually(lambda: ready_addresses(core, "ratings") == [replacement.metadata.name])
    ready_after = time.monotonic() - deleted_at
    assert ready_after >= START_DELAY_S * 0.9
    eventually(lambda: envoy_hosts(mesh, RATINGS_CLUSTER) == {pod_address})
    answer = eventually(lambda: requests.get(url, headers=headers, timeout=5).ok)
    assert answer
    deployment = apps.read_namespaced_deployment("ratings-v1", NAMESPACE)
    assert deployment.status.available_replicas == 1
    (now,) = pods(core, "app=ratings")
    assert now.status.phase == "Running"


def test_scaling_reviews_v1_to_three_gives_envoy_three_hosts_and_back(
    mesh: Any, core: kubernetes.client.CoreV1Api, apps: kubernetes.client.AppsV1Api
) -> None:
    apps.patch_namespaced_deployment_scale("reviews-v1", NAMESPACE, {"spec": {"replicas": 3}})
    eventually(lambda: len(envoy_hosts(mesh, REVIEWS_V1_CLUSTER)) == 3)
    replicas = pods(core, "app=reviews,version=v1")
    assert len(replicas) == 3
    assert all(p.status.phase == "Running" for p in replicas)
    deployment = apps.read_namespaced_deployment("reviews-v1", NAMESPACE)
    assert (deployment.spec.replicas, deployment.status.ready_replicas) == (3, 3)
    # Envoy spreads calls over the three pods: each host of the cluster served some.
    url, headers = through_sidecar(mesh, "reviews", "/reviews/0")
    before = host_requests(mesh, REVIEWS_V1_CLUSTER)
    for _ in range(60):
        assert requests.get(url, headers=headers, timeout=5).json()["podname"] == "reviews-v1"
    after = host_requests(mesh, REVIEWS_V1_CLUSTER)
    served = {host: after[host] - before.get(host, 0) for host in after}
    assert len(served) == 3 and all(count > 0 for count in served.values()), served
    assert sum(served.values()) == 60
    apps.patch_namespaced_deployment_scale("reviews-v1", NAMESPACE, {"spec": {"replicas": 1}})
    eventually(lambda: len(envoy_hosts(mesh, REVIEWS_V1_CLUSTER)) == 1)
    assert len(pods(core, "app=reviews,version=v1")) == 1


def test_kubectl_lists_deletes_and_scales_the_mesh_s_pods(mesh: Any, tmp_path: Path) -> None:
    if not shutil.which("kubectl"):
        if os.environ.get("CHAOSMESH_REQUIRE_KUBECTL"):
            pytest.fail("CHAOSMESH_REQUIRE_KUBECTL is set but kubectl is not installed")
        pytest.skip("kubectl is not installed")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": mesh.api.url,
                    "certificate-authority": str(mesh.credentials.ca_file),
                },
            }
        ],
        "users": [{"name": "owner", "user": {"token": mesh.credentials.token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "owner"}}],
        "current-context": "local",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    environment = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            ["kubectl", "-n", NAMESPACE, *args],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = kubectl("get", "pods")
    rows = [line.split() for line in listed.splitlines()[1:]]
    assert len(rows) == 9  # Bookinfo's six, httpbin v1 and v2, sleep
    assert all(row[1:3] == ["1/1", "Running"] for row in rows), listed
    details = next(row[0] for row in rows if row[0].startswith("details-v1-"))
    kubectl("delete", "pod", details)
    kubectl("scale", "deploy/httpbin-v1", "--replicas=2")
    eventually(lambda: len(kubectl("get", "pods", "-l", "app=httpbin").splitlines()) == 4)
    shown = eventually(
        lambda: (
            text
            if "2/2" in (text := kubectl("get", "deploy", "httpbin-v1"))
            and details not in kubectl("get", "pods")
            else ""
        )
    )
    assert "httpbin-v1" in shown
