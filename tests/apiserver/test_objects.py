"""Create, read, replace, delete and list: resourceVersion, uid, generation, namespaces."""

from __future__ import annotations

import re
import uuid

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException, ConflictException, NotFoundException

from chaosmesh_py.localmesh.apiserver import ApiError, ApiServer
from tests.apiserver.conftest import NETWORKING, raw, status_body, virtual_service

VS = (*NETWORKING, "default", "virtualservices")


def test_create_answers_201_with_server_fields(server: ApiServer, custom) -> None:
    before = int(server.get("v1", "Namespace", None, "default")["metadata"]["resourceVersion"])
    created, status, _ = custom.create_namespaced_custom_object_with_http_info(
        *VS, virtual_service()
    )
    assert status == 201
    meta = created["metadata"]
    assert int(meta["resourceVersion"]) > before
    assert uuid.UUID(meta["uid"]).version == 4
    assert meta["generation"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["namespace"] == "default"


def test_resource_versions_increase_across_objects(server: ApiServer) -> None:
    first = server.create(virtual_service("a"))["metadata"]["resourceVersion"]
    second = server.create(virtual_service("b"))["metadata"]["resourceVersion"]
    assert int(second) > int(first)


def test_duplicate_create_is_409_already_exists(custom) -> None:
    custom.create_namespaced_custom_object(*VS, virtual_service())
    with pytest.raises(ConflictException) as caught:
        custom.create_namespaced_custom_object(*VS, virtual_service())
    body = status_body(caught.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'virtualservices.networking.istio.io "reviews" already exists'
    assert body["details"] == {
        "name": "reviews",
        "group": "networking.istio.io",
        "kind": "virtualservices",
    }


def test_create_with_resource_version_fails_like_the_storage_layer(custom) -> None:
    obj = virtual_service()
    obj["metadata"]["resourceVersion"] = "12"
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(*VS, obj)
    assert caught.value.status == 500
    assert (
        status_body(caught.value)["message"]
        == "resourceVersion should not be set on objects to be created"
    )


def test_recreated_object_gets_a_new_uid(server: ApiServer) -> None:
    first = server.create(virtual_service())["metadata"]["uid"]
    server.delete("networking.istio.io/v1", "VirtualService", "default", "reviews")
    assert server.create(virtual_service())["metadata"]["uid"] != first


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, "metadata.name: Required value: name or generateName is required"),
        ("Bad_Name", 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'),
    ],
)
def test_name_is_required_and_a_dns_subdomain(custom, name: str | None, expected: str) -> None:
    obj = virtual_service()
    obj["metadata"]["name"] = name
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(*VS, obj)
    assert caught.value.status == 422
    assert expected in status_body(caught.value)["message"]


def test_generate_name_makes_a_unique_name(server: ApiServer) -> None:
    obj = virtual_service()
    obj["metadata"] = {"generateName": "reviews-", "namespace": "default"}
    assert re.fullmatch(r"reviews-[a-z0-9]{5}", server.create(obj)["metadata"]["name"])


def test_invalid_label_value_is_422(server: ApiServer) -> None:
    obj = virtual_service()
    obj["metadata"]["labels"] = {"app": "not valid!"}
    with pytest.raises(ApiError) as caught:
        server.create(obj)
    assert caught.value.status == 422
    assert caught.value.details["causes"][0]["field"] == "metadata.labels"


def test_create_in_a_missing_namespace_is_404(custom) -> None:
    with pytest.raises(NotFoundException) as caught:
        custom.create_namespaced_custom_object(
            *NETWORKING, "nope", "virtualservices", virtual_service(namespace="nope")
        )
    assert status_body(caught.value)["message"] == 'namespaces "nope" not found'


def test_body_namespace_must_match_the_url(custom) -> None:
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(*VS, virtual_service(namespace="istio-system"))
    assert caught.value.status == 400


def test_put_needs_a_resource_version(custom) -> None:
    obj = custom.create_namespaced_custom_object(*VS, virtual_service())
    del obj["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(*VS, "reviews", obj)
    assert caught.value.status == 422
    assert status_body(caught.value)["message"] == (
        'VirtualService.networking.istio.io "reviews" is invalid: metadata.resourceVersion:'
        " Invalid value: 0x0: must be specified for an update"
    )


def test_put_with_a_stale_resource_version_is_409(server: ApiServer, custom) -> None:
    stale = custom.create_namespaced_custom_object(*VS, virtual_service())
    server.patch(
        "networking.istio.io/v1",
        "VirtualService",
        "default",
        "reviews",
        {"spec": {"gateways": ["mesh"]}},
    )
    stale["spec"]["hosts"] = ["reviews.default.svc.cluster.local"]
    with pytest.raises(ConflictException) as caught:
        custom.replace_namespaced_custom_object(*VS, "reviews", stale)
    assert status_body(caught.value)["message"] == (
        'Operation cannot be fulfilled on virtualservices.networking.istio.io "reviews": the object'
        " has been modified; please apply your changes to the latest version and try again"
    )
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "reviews")["spec"][
        "hosts"
    ] == ["reviews"]


def test_put_on_a_missing_object_is_404(custom) -> None:
    obj = virtual_service()
    obj["metadata"]["resourceVersion"] = "1"
    with pytest.raises(NotFoundException):
        custom.replace_namespaced_custom_object(*VS, "reviews", obj)


def test_put_with_current_version_replaces(custom) -> None:
    obj = custom.create_namespaced_custom_object(*VS, virtual_service())
    obj["spec"]["gateways"] = ["mesh"]
    replaced = custom.replace_namespaced_custom_object(*VS, "reviews", obj)
    assert replaced["spec"]["gateways"] == ["mesh"]
    assert int(replaced["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])


def test_no_op_writes_keep_the_resource_version(server: ApiServer, custom) -> None:
    created = custom.create_namespaced_custom_object(*VS, virtual_service())
    replaced = custom.replace_namespaced_custom_object(*VS, "reviews", created)
    patched = custom.patch_namespaced_custom_object(
        *VS, "reviews", {"spec": {"hosts": ["reviews"]}}
    )
    assert replaced["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_generation_counts_spec_changes_only(custom) -> None:
    custom.create_namespaced_custom_object(*VS, virtual_service())
    labelled = custom.patch_namespaced_custom_object(
        *VS, "reviews", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    changed = custom.patch_namespaced_custom_object(
        *VS, "reviews", {"spec": {"gateways": ["mesh"]}}
    )
    assert changed["metadata"]["generation"] == 2


def test_system_fields_are_immutable(custom) -> None:
    created = custom.create_namespaced_custom_object(*VS, virtual_service())
    patched = custom.patch_namespaced_custom_object(
        *VS, "reviews", {"metadata": {"creationTimestamp": "2000-01-01T00:00:00Z", "generation": 9}}
    )
    assert patched["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert patched["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            *VS, "reviews", {"metadata": {"uid": str(uuid.uuid4())}}
        )
    assert caught.value.status == 422
    assert "field is immutable" in status_body(caught.value)["message"]
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(*VS, "reviews", {"metadata": {"name": "other"}})
    assert caught.value.status == 400


def test_empty_labels_and_annotations_are_omitted(custom) -> None:
    obj = virtual_service()
    obj["metadata"]["labels"] = {"a": "b"}
    obj["metadata"]["annotations"] = {}
    created = custom.create_namespaced_custom_object(*VS, obj)
    assert "annotations" not in created["metadata"]
    emptied = custom.patch_namespaced_custom_object(
        *VS, "reviews", {"metadata": {"labels": {"a": None}}}
    )
    assert "labels" not in emptied["metadata"]


def test_status_is_written_only_through_the_status_subresource(custom) -> None:
    obj = virtual_service()
    obj["status"] = {"observedGeneration": 5}
    created = custom.create_namespaced_custom_object(*VS, obj)
    assert "status" not in created
    patched = custom.patch_namespaced_custom_object(
        *VS, "reviews", {"status": {"observedGeneration": 1}}
    )
    assert "status" not in patched
    status = custom.patch_namespaced_custom_object_status(
        *VS, "reviews", {"status": {"observedGeneration": 1}, "spec": {"gateways": ["x"]}}
    )
    assert status["status"] == {"observedGeneration": 1}
    assert "gateways" not in status["spec"]
    assert status["metadata"]["generation"] == 1


def test_versions_are_aliases_of_one_stored_object(custom) -> None:
    obj = virtual_service()
    obj["apiVersion"] = "networking.istio.io/v1alpha3"
    custom.create_namespaced_custom_object(
        "networking.istio.io", "v1alpha3", "default", "virtualservices", obj
    )
    as_v1 = custom.get_namespaced_custom_object(*VS, "reviews")
    as_beta = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "default", "virtualservices", "reviews"
    )
    assert as_v1["apiVersion"] == "networking.istio.io/v1"
    assert as_beta["apiVersion"] == "networking.istio.io/v1beta1"
    assert as_v1["metadata"] == as_beta["metadata"]


def test_api_version_in_body_must_match_the_url(custom) -> None:
    obj = virtual_service()
    obj["apiVersion"] = "networking.istio.io/v1beta1"
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(*VS, obj)
    assert caught.value.status == 400


def test_delete_returns_the_object_then_404(custom) -> None:
    custom.create_namespaced_custom_object(*VS, virtual_service())
    deleted = custom.delete_namespaced_custom_object(*VS, "reviews")
    assert deleted["metadata"]["name"] == "reviews"
    with pytest.raises(NotFoundException):
        custom.get_namespaced_custom_object(*VS, "reviews")
    with pytest.raises(NotFoundException):
        custom.delete_namespaced_custom_object(*VS, "reviews")


def test_delete_precondition_on_resource_version(custom) -> None:
    custom.create_namespaced_custom_object(*VS, virtual_service())
    options = kubernetes.client.V1DeleteOptions(
        preconditions=kubernetes.client.V1Preconditions(resource_version="1")
    )
    with pytest.raises(ConflictException):
        custom.delete_namespaced_custom_object(*VS, "reviews", body=options)


def preconditions(uid: str, resource_version: str) -> kubernetes.client.V1DeleteOptions:
    return kubernetes.client.V1DeleteOptions(
        preconditions=kubernetes.client.V1Preconditions(uid=uid, resource_version=resource_version)
    )


def test_delete_precondition_on_uid_refuses_an_object_recreated_under_the_same_name(
    server: ApiServer, custom
) -> None:
    first = custom.create_namespaced_custom_object(*VS, virtual_service())["metadata"]
    server.delete("networking.istio.io/v1", "VirtualService", "default", "reviews")
    again = custom.create_namespaced_custom_object(*VS, virtual_service())["metadata"]
    assert again["uid"] != first["uid"]
    with pytest.raises(ConflictException) as caught:
        custom.delete_namespaced_custom_object(
            *VS, "reviews", body=preconditions(first["uid"], again["resourceVersion"])
        )
    assert "Precondition failed: UID in precondition" in caught.value.body
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "reviews")


def test_delete_with_matching_uid_and_resource_version_deletes(server: ApiServer, custom) -> None:
    meta = custom.create_namespaced_custom_object(*VS, virtual_service())["metadata"]
    deleted = custom.delete_namespaced_custom_object(
        *VS, "reviews", body=preconditions(meta["uid"], meta["resourceVersion"])
    )
    assert deleted["metadata"]["uid"] == meta["uid"]
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "reviews") is None


def test_list_across_namespaces_and_by_label(server: ApiServer, custom) -> None:
    server.create_namespace("bookinfo")
    for name, namespace, tier in [
        ("a", "default", "front"),
        ("b", "bookinfo", "back"),
        ("c", "bookinfo", "front"),
    ]:
        obj = virtual_service(name, namespace)
        obj["metadata"]["labels"] = {"tier": tier}
        server.create(obj)
    everywhere = custom.list_cluster_custom_object(*NETWORKING, "virtualservices")
    assert everywhere["kind"] == "VirtualServiceList"
    assert everywhere["apiVersion"] == "networking.istio.io/v1"
    assert int(everywhere["metadata"]["resourceVersion"]) >= 1
    # ordered by namespace, then name: the order of etcd keys
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["b", "c", "a"]
    fronts = custom.list_cluster_custom_object(
        *NETWORKING, "virtualservices", label_selector="tier=front"
    )
    assert sorted(i["metadata"]["name"] for i in fronts["items"]) == ["a", "c"]
    in_bookinfo = custom.list_namespaced_custom_object(
        *NETWORKING, "bookinfo", "virtualservices", label_selector="tier in (front,back),tier!=back"
    )
    assert [i["metadata"]["name"] for i in in_bookinfo["items"]] == ["c"]
    named = custom.list_cluster_custom_object(
        *NETWORKING, "virtualservices", field_selector="metadata.name=b"
    )
    assert [i["metadata"]["name"] for i in named["items"]] == ["b"]
    with pytest.raises(ApiException) as caught:
        custom.list_cluster_custom_object(
            *NETWORKING, "virtualservices", label_selector="tier in front"
        )
    assert caught.value.status == 400


def test_namespaces_are_a_core_resource(server: ApiServer, client) -> None:
    core = kubernetes.client.CoreV1Api(client)
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", "istio-system"} <= names
    created = core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name="bookinfo"))
    )
    assert created.status.phase == "Active"
    server.create(virtual_service(namespace="bookinfo"))
    core.delete_namespace("bookinfo")
    with pytest.raises(NotFoundException):
        core.read_namespace("bookinfo")
    assert server.list("networking.istio.io/v1", "VirtualService", "bookinfo") == []


def test_dry_run_validates_without_storing(custom) -> None:
    created = custom.create_namespaced_custom_object(*VS, virtual_service(), dry_run="All")
    assert created["metadata"]["name"] == "reviews"
    with pytest.raises(NotFoundException):
        custom.get_namespaced_custom_object(*VS, "reviews")


def test_unknown_paths_answer_404_status(server: ApiServer) -> None:
    status, _, body = raw(server, "GET", "/apis/networking.istio.io/v1/namespaces/default/nothings")
    assert status == 404
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    assert raw(server, "GET", "/healthz/whatever")[0] == 404


def test_direct_access_reads_and_reset(server: ApiServer) -> None:
    server.create(virtual_service())
    assert server.get("networking.istio.io/v1beta1", "VirtualService", "default", "reviews")[
        "apiVersion"
    ] == ("networking.istio.io/v1beta1")
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "missing") is None
    server.create_namespace("bookinfo")
    server.reset()
    assert server.list("networking.istio.io/v1", "VirtualService") == []
    assert server.get("v1", "Namespace", None, "bookinfo") is None
    assert server.get("v1", "Namespace", None, "default") is not None


def test_delete_collection_by_label(server: ApiServer, custom) -> None:
    for name, tier in [("a", "front"), ("b", "back")]:
        obj = virtual_service(name)
        obj["metadata"]["labels"] = {"tier": tier}
        server.create(obj)
    custom.delete_collection_namespaced_custom_object(*VS, label_selector="tier=front")
    assert [
        o["metadata"]["name"] for o in server.list("networking.istio.io/v1", "VirtualService")
    ] == ["b"]
