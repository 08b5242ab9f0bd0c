"""Core v1 ConfigMaps, validated as a real apiserver validates them (ValidateConfigMap).

The local mesh publishes what its clients need to know in one; clients read it with the real
client's CoreV1Api, as from any cluster.
"""

from __future__ import annotations

import base64

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import status_body


@pytest.fixture
def core(client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(client)


def config_map(name: str = "settings", **fields: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


def test_create_read_update_delete(core: kubernetes.client.CoreV1Api, server: ApiServer) -> None:
    created = core.create_namespaced_config_map("default", config_map(data={"mode": "fast"}))
    assert created.data == {"mode": "fast"}
    assert created.metadata.resource_version
    read = core.read_namespaced_config_map("settings", "default")
    assert read.data == {"mode": "fast"}
    # Core kinds allow an unconditional update (no resourceVersion), unlike custom resources.
    replaced = core.replace_namespaced_config_map(
        "settings", "default", config_map(data={"mode": "slow"})
    )
    assert replaced.data == {"mode": "slow"}
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == [
        "settings"
    ]
    core.delete_namespaced_config_map("settings", "default")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("settings", "default")
    assert gone.value.status == 404
    assert status_body(gone.value)["message"] == 'configmaps "settings" not found'


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"data": {"bad/key": "x"}},
            'data[bad/key]: Invalid value: "bad/key": a valid config key must consist of',
        ),
        ({"data": {"..": "x"}}, "data[..]: Invalid value: \"..\": must not be '..'"),
        (
            {"data": {"k": "x"}, "binaryData": {"k": base64.b64encode(b"y").decode()}},
            'binaryData[k]: Invalid value: "k": duplicate of key present in data',
        ),
        ({"binaryData": {"k": "not base64!"}}, "binaryData[k]: Invalid value: illegal base64"),
        (
            {"data": {"big": "x" * (1024 * 1024 + 1)}},
            ": Too long: must have at most 1048576 bytes",
        ),
    ],
)
def test_what_a_real_apiserver_refuses_is_422(
    core: kubernetes.client.CoreV1Api, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", config_map(**fields))
    assert caught.value.status == 422
    assert message in status_body(caught.value)["message"]


def test_an_immutable_config_map_keeps_its_data(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", config_map(data={"a": "1"}, immutable=True))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("settings", "default", {"data": {"a": "2"}})
    assert caught.value.status == 422
    assert (
        "data: Forbidden: field is immutable when `immutable` is set"
        in (status_body(caught.value)["message"])
    )
    assert core.read_namespaced_config_map("settings", "default").data == {"a": "1"}


def test_unknown_fields_are_pruned_with_a_warning(server: ApiServer) -> None:
    stored = server.create({**config_map(data={"a": "1"}), "spec": {"x": 1}})
    assert "spec" not in stored
