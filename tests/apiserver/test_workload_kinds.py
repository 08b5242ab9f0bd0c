"""Pods, Endpoints, Deployments and ReplicaSets through the real client's typed APIs and kubectl.

What chaostoolkit-kubernetes calls (CoreV1Api list/delete pods, AppsV1Api list deployments) and
what a user types (`kubectl get pods`, `kubectl delete pod`, `kubectl scale deploy`) work against
the double as against kube-apiserver; the kinds' own rules refuse what it refuses (422, nothing
stored). No controller runs here: the local mesh's (tests/local/test_pods.py) does the rest.
"""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.kube import DEPLOYMENT, ENDPOINTS, POD, Kube
from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import Kubectl, raw, status_body


def deployment(name: str = "ratings-v1", replicas: Any = 1, **spec: Any) -> dict[str, Any]:
    labels = {"app": name.split("-", maxsplit=1)[0], "version": "v1"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "docker.io/istio/x:1"}]},
            },
            **spec,
        },
    }


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "docker.io/istio/x:1"}]},
    }


@pytest.fixture
def core(client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(client)


@pytest.fixture
def apps(client: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(client)


def test_pods_are_listed_by_label_and_deleted_as_chaosk8s_does(
    core: kubernetes.client.CoreV1Api, server: ApiServer
) -> None:
    for name, app in (("ratings-v1-abc", "ratings"), ("reviews-v1-def", "reviews")):
        core.create_namespaced_pod("default", pod(name, app=app))
    listed = core.list_namespaced_pod("default", label_selector="app=ratings")
    assert [p.metadata.name for p in listed.items] == ["ratings-v1-abc"]
    # terminate_pods' call: a DeleteOptions body with a grace period.
    body = kubernetes.client.V1DeleteOptions(grace_period_seconds=0)
    core.delete_namespaced_pod("ratings-v1-abc", "default", body=body)
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == [
        "reviews-v1-def"
    ]
    # The project's own client lists them by labels too (an upstream fault's workload check).
    kube = Kube.at(server.url)
    assert [p["metadata"]["name"] for p in kube.list(POD, "default", "app=reviews")] == [
        "reviews-v1-def"
    ]
    assert kube.list(POD, "default", "app=details") == []


def test_a_deployment_is_listed_by_name_and_its_status_written_through_the_subresource(
    apps: kubernetes.client.AppsV1Api, server: ApiServer
) -> None:
    apps.create_namespaced_deployment("default", deployment(replicas=3))
    status = {"status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3}}
    apps.patch_namespaced_deployment_status("ratings-v1", "default", status)
    # deployment_available_and_healthy's call.
    found = apps.list_namespaced_deployment("default", field_selector="metadata.name=ratings-v1")
    (only,) = found.items
    assert (only.spec.replicas, only.status.available_replicas) == (3, 3)
    assert only.metadata.generation == 1
    listed = Kube.at(server.url).list(DEPLOYMENT, "default")
    assert [d["metadata"]["name"] for d in listed] == ["ratings-v1"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"replicas": -1}, "spec.replicas", "must be greater than or equal to 0"),
        (
            {"selector": {"matchLabels": {"app": "reviews"}}},
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        ),
        ({"selector": {}}, "spec.selector", "empty selector is invalid for deployment"),
    ],
)
def test_a_deployment_the_apiserver_refuses_is_refused(
    server: ApiServer, change: dict[str, Any], field: str, message: str
) -> None:
    body = deployment()
    body["spec"].update(change)
    status, _, answer = raw(server, "POST", "/apis/apps/v1/namespaces/default/deployments", body)
    assert status == 422, answer
    (cause,) = answer["details"]["causes"]
    assert cause["field"] == field
    assert message in cause["message"]
    assert server.get("apps/v1", "Deployment", "default", "ratings-v1") is None


def test_a_pod_without_containers_and_a_changed_selector_are_refused(
    core: kubernetes.client.CoreV1Api, apps: kubernetes.client.AppsV1Api
) -> None:
    empty = pod("bare", app="x")
    empty["spec"]["containers"] = []
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", empty)
    assert caught.value.status == 422
    assert status_body(caught.value)["details"]["causes"][0]["field"] == "spec.containers"
    apps.create_namespaced_deployment("default", deployment())
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(
            "ratings-v1",
            "default",
            {
                "spec": {
                    "selector": {"matchLabels": {"version": "v2"}},
                    "template": {"metadata": {"labels": {"version": "v2"}}},
                }
            },
        )
    assert caught.value.status == 422
    assert "field is immutable" in caught.value.body


def test_the_scale_subresource_reads_and_writes_replicas(
    apps: kubernetes.client.AppsV1Api,
) -> None:
    apps.create_namespaced_deployment("default", deployment(replicas=1))
    scale = apps.read_namespaced_deployment_scale("ratings-v1", "default")
    assert (scale.kind, scale.spec.replicas) == ("Scale", 1)
    assert scale.status.selector == "app=ratings,version=v1"
    apps.patch_namespaced_deployment_scale("ratings-v1", "default", {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("ratings-v1", "default").spec.replicas == 3
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment_scale("ratings-v1", "default", {"spec": {"replicas": -2}})
    assert caught.value.status == 422
    assert apps.read_namespaced_deployment("ratings-v1", "default").spec.replicas == 3


def test_endpoints_need_an_ip_per_address(
    core: kubernetes.client.CoreV1Api, server: ApiServer
) -> None:
    good = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "ratings", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.0.0.7"}], "ports": [{"port": 9080}]}],
    }
    core.create_namespaced_endpoints("default", good)
    assert Kube.at(core.api_client.configuration.host).list(ENDPOINTS, "default")
    bad = {**good, "metadata": {"name": "reviews", "namespace": "default"}}
    bad["subsets"] = [{"addresses": [{"hostname": "x"}], "ports": [{"port": 9080}]}]
    # Sent raw: the typed client refuses it before sending.
    status, _, answer = raw(server, "POST", "/api/v1/namespaces/default/endpoints", bad)
    assert status == 422, answer
    assert answer["details"]["causes"][0]["field"] == "subsets[0].addresses[0].ip"
    assert server.get("v1", "Endpoints", "default", "reviews") is None


def test_kubectl_gets_deletes_and_scales(kubectl: Kubectl, server: ApiServer) -> None:
    created = kubectl("apply", "-f", "-", stdin=_yaml(deployment(replicas=2)))
    assert created.returncode == 0, created.stderr
    for name in ("ratings-v1-5d8f-abcde", "ratings-v1-5d8f-fghij"):
        server.create(pod(name, app="ratings", version="v1"))
    listed = kubectl("get", "pods", "-n", "default")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "ratings-v1-5d8f-abcde" in listed.stdout
    gone = kubectl("delete", "pod", "ratings-v1-5d8f-abcde", "-n", "default")
    assert gone.returncode == 0, gone.stderr
    assert server.get("v1", "Pod", "default", "ratings-v1-5d8f-abcde") is None
    scaled = kubectl("scale", "deployment/ratings-v1", "--replicas=3", "-n", "default")
    assert scaled.returncode == 0, scaled.stderr
    assert "scaled" in scaled.stdout
    stored = server.get("apps/v1", "Deployment", "default", "ratings-v1")
    assert stored is not None and stored["spec"]["replicas"] == 3
    shown = kubectl("get", "deploy", "-n", "default")
    assert shown.stdout.split("\n")[0].split() == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
    ]


def _yaml(document: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(document)
