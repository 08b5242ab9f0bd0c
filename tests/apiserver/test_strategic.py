"""Strategic merge patches on built-in kinds, as kube-apiserver applies them: keyed lists merge
element by element, other lists are replaced, and kubectl's directives work."""

from __future__ import annotations

from typing import Any

import pytest

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import raw, virtual_service
from tests.apiserver.test_builtin_kinds import cron_job

PATH = "/apis/batch/v1/namespaces/default/cronjobs/gameday"
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}


def pod_patch(**fields: Any) -> dict[str, Any]:
    return {"spec": {"jobTemplate": {"spec": {"template": {"spec": fields}}}}}


def pod(body: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = body["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture
def stored(server: ApiServer) -> ApiServer:
    obj = cron_job()
    pod(obj)["containers"].append(
        {
            "name": "sidecar",
            "image": "busybox:1.36",
            "args": ["sleep", "1"],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        }
    )
    server.create(obj)
    return server


def patched(server: ApiServer, patch: dict[str, Any]) -> dict[str, Any]:
    status, _, body = raw(server, "PATCH", PATH, patch, STRATEGIC)
    assert status == 200, body
    return pod(body)


def test_containers_merge_by_name_and_their_lists_by_their_keys(stored: ApiServer) -> None:
    result = patched(
        stored,
        pod_patch(
            containers=[
                {
                    "name": "sidecar",
                    "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                }
            ]
        ),
    )
    runner, sidecar = result["containers"]
    assert runner["volumeMounts"] == [{"name": "results", "mountPath": "/results"}]  # untouched
    assert sidecar["image"] == "busybox:1.36"
    assert sidecar["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]


def test_a_list_without_a_merge_key_is_replaced(stored: ApiServer) -> None:
    result = patched(stored, pod_patch(containers=[{"name": "sidecar", "args": ["sleep", "9"]}]))
    assert result["containers"][1]["args"] == ["sleep", "9"]


def test_kubectl_directives(stored: ApiServer) -> None:
    result = patched(
        stored,
        pod_patch(
            **{
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "runner"}],
                "containers": [
                    {"name": "sidecar", "env": [{"name": "A", "$patch": "delete"}]},
                    {
                        "name": "runner",
                        "$setElementOrder/volumeMounts": [{"mountPath": "/out"}],
                        "volumeMounts": [
                            {"mountPath": "/out", "name": "results"},
                            {"mountPath": "/results", "$patch": "delete"},
                        ],
                    },
                ],
                "volumes": [
                    {
                        "$retainKeys": ["configMap", "name"],
                        "name": "results",
                        "configMap": {"name": "experiments"},
                        "emptyDir": None,
                    }
                ],
            }
        ),
    )
    assert [c["name"] for c in result["containers"]] == ["sidecar", "runner"]
    assert result["containers"][0]["env"] == [{"name": "B", "value": "2"}]
    assert result["containers"][1]["volumeMounts"] == [{"mountPath": "/out", "name": "results"}]
    assert result["volumes"] == [{"name": "results", "configMap": {"name": "experiments"}}]


def test_finalizers_are_a_set(stored: ApiServer) -> None:
    first = {"metadata": {"finalizers": ["a.example.com/x"]}}
    assert raw(stored, "PATCH", PATH, first, STRATEGIC)[0] == 200
    second = {"metadata": {"finalizers": ["b.example.com/y"]}}
    _, _, body = raw(stored, "PATCH", PATH, second, STRATEGIC)
    assert body["metadata"]["finalizers"] == ["a.example.com/x", "b.example.com/y"]
    removal = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x"]}}
    _, _, body = raw(stored, "PATCH", PATH, removal, STRATEGIC)
    assert body["metadata"]["finalizers"] == ["b.example.com/y"]


def test_a_keyed_element_without_its_key_is_a_bad_request(stored: ApiServer) -> None:
    status, _, body = raw(stored, "PATCH", PATH, pod_patch(containers=[{"image": "x"}]), STRATEGIC)
    assert status == 400
    assert "does not contain declared merge key: name" in body["message"]


def test_custom_resources_still_refuse_strategic_merge(server: ApiServer) -> None:
    server.create(virtual_service())
    path = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews"
    assert raw(server, "PATCH", path, {"spec": {}}, STRATEGIC)[0] == 415
