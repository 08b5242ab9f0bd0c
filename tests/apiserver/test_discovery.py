"""Discovery documents in the shapes kubectl and the dynamic client read."""

from __future__ import annotations

from pathlib import Path

import kubernetes.dynamic
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import raw, virtual_service


def test_version(server: ApiServer) -> None:
    status, _, body = raw(server, "GET", "/version")
    assert status == 200
    assert body["major"] == "1"
    assert body["gitVersion"].startswith("v1.")


def test_core_api(server: ApiServer) -> None:
    versions = raw(server, "GET", "/api")[2]
    assert versions["kind"] == "APIVersions"
    assert versions["versions"] == ["v1"]
    resources = raw(server, "GET", "/api/v1")[2]
    assert resources["kind"] == "APIResourceList"
    assert resources["groupVersion"] == "v1"
    namespaces = next(r for r in resources["resources"] if r["name"] == "namespaces")
    assert namespaces["namespaced"] is False
    assert namespaces["kind"] == "Namespace"
    assert namespaces["shortNames"] == ["ns"]


def test_group_list_prefers_v1(server: ApiServer) -> None:
    groups = raw(server, "GET", "/apis")[2]
    assert groups["kind"] == "APIGroupList"
    networking = next(g for g in groups["groups"] if g["name"] == "networking.istio.io")
    assert [v["version"] for v in networking["versions"]] == ["v1", "v1beta1", "v1alpha3"]
    assert networking["preferredVersion"] == {
        "groupVersion": "networking.istio.io/v1",
        "version": "v1",
    }
    security = raw(server, "GET", "/apis/security.istio.io")[2]
    assert security["kind"] == "APIGroup"
    assert [v["version"] for v in security["versions"]] == ["v1", "v1beta1"]


def test_group_version_resources(server: ApiServer) -> None:
    document = raw(server, "GET", "/apis/networking.istio.io/v1alpha3")[2]
    assert document["groupVersion"] == "networking.istio.io/v1alpha3"
    by_name = {r["name"]: r for r in document["resources"]}
    virtual_services = by_name["virtualservices"]
    assert virtual_services["singularName"] == "virtualservice"
    assert virtual_services["namespaced"] is True
    assert virtual_services["kind"] == "VirtualService"
    assert virtual_services["shortNames"] == ["vs"]
    assert virtual_services["categories"] == ["istio-io", "networking-istio-io"]
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(
        virtual_services["verbs"]
    )
    assert by_name["virtualservices/status"]["verbs"] == ["get", "patch", "update"]
    assert "envoyfilters" in by_name  # v1alpha3-only kinds are served there
    assert "envoyfilters" not in {
        r["name"] for r in raw(server, "GET", "/apis/networking.istio.io/v1")[2]["resources"]
    }


def test_unknown_group_or_version_is_404(server: ApiServer) -> None:
    assert raw(server, "GET", "/apis/networking.istio.io/v9")[0] == 404
    assert raw(server, "GET", "/apis/nothing.example.com")[0] == 404
    assert raw(server, "GET", "/openapi/v4")[0] == 404


def test_discovery_is_read_only(server: ApiServer) -> None:
    assert raw(server, "POST", "/apis", {})[0] == 405


def test_the_dynamic_client_finds_and_uses_the_kinds(
    server: ApiServer, client, tmp_path: Path
) -> None:
    dynamic = kubernetes.dynamic.DynamicClient(client, cache_file=str(tmp_path / "discovery.json"))
    resource = dynamic.resources.get(api_version="networking.istio.io/v1", kind="VirtualService")
    created = resource.create(body=virtual_service(), namespace="default")
    assert created.metadata.name == "reviews"
    assert [i.metadata.name for i in resource.get(namespace="default").items] == ["reviews"]
    with pytest.raises(ApiException) as caught:  # the dynamic client defaults to strategic merge
        resource.patch(body={"spec": {"gateways": ["mesh"]}}, name="reviews", namespace="default")
    assert caught.value.status == 415
    patched = resource.patch(
        body={"spec": {"gateways": ["mesh"]}},
        name="reviews",
        namespace="default",
        content_type="application/merge-patch+json",
    )
    assert patched.spec.gateways == ["mesh"]
