"""How the core tells a local mesh from a cluster: an ordinary GET of a ConfigMap, no private
path. A cluster without it (404), or one that does not let us read it (403), is a cluster."""

import json

import pytest

from chaosmesh_py.kube import Kube
from chaosmesh_py.kube import client as kube_client
from chaosmesh_py.kube.client import LOCAL_MESH_CONFIG_MAP, LOCAL_MESH_KEY
from chaosmesh_py.localmesh.apiserver import PolicyRule

NAMESPACE, NAME = LOCAL_MESH_CONFIG_MAP


@pytest.fixture(autouse=True)
def uncached(monkeypatch):
    monkeypatch.setattr(kube_client, "_local_mesh_by_host", {})


def publish(api, data):
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "data": data,
        }
    )


def test_a_cluster_without_the_config_map_is_a_cluster(api):
    assert Kube.connect().local_mesh() is None
    assert all("/chaosmesh/" not in record.path for record in api.request_log)


def test_the_published_info_is_read_with_a_plain_get(api):
    info = {"instance_id": "0123abcd", "envoy_admin_socket": "/run/admin.sock"}
    publish(api, {LOCAL_MESH_KEY: json.dumps(info)})
    assert Kube.connect().local_mesh() == info
    assert [r.path for r in api.request_log] == [
        f"/api/v1/namespaces/{NAMESPACE}/configmaps/{NAME}"
    ]


def test_a_cluster_that_forbids_reading_it_is_a_cluster(api, monkeypatch):
    publish(api, {LOCAL_MESH_KEY: json.dumps({"instance_id": "x"})})
    api.set_tokens({"vs-editor": [PolicyRule(("get", "patch"), ("virtualservices",))]})
    monkeypatch.setenv("KUBERNETES_API_KEY", "vs-editor")
    assert Kube.connect().local_mesh() is None
    assert api.request_log[-1].status == 403


@pytest.mark.parametrize("data", [{}, {LOCAL_MESH_KEY: "not json"}, {LOCAL_MESH_KEY: "[1]"}])
def test_a_config_map_that_says_nothing_usable_is_not_a_local_mesh(api, data):
    publish(api, data)
    assert Kube.connect().local_mesh() is None
