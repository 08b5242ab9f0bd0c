"""PATCH content types: merge, JSON patch, strategic merge (415), server-side apply."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException, ConflictException, NotFoundException

from chaosmesh_py.localmesh.apiserver import ApiError, ApiServer
from tests.apiserver.conftest import NETWORKING, raw, status_body, virtual_service

VS = (*NETWORKING, "default", "virtualservices")
JSON_PATCH = "application/json-patch+json"
PATH = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews"


@pytest.fixture
def reviews(custom) -> dict:
    created: dict = custom.create_namespaced_custom_object(*VS, virtual_service())
    return created


def test_merge_patch_is_the_client_default(custom, reviews) -> None:
    patched = custom.patch_namespaced_custom_object(
        *VS, "reviews", {"spec": {"gateways": ["mesh"]}}
    )
    assert patched["spec"]["gateways"] == ["mesh"]
    assert patched["spec"]["hosts"] == ["reviews"]


def test_merge_patch_null_removes_a_field(custom, reviews) -> None:
    custom.patch_namespaced_custom_object(*VS, "reviews", {"spec": {"gateways": ["mesh"]}})
    patched = custom.patch_namespaced_custom_object(*VS, "reviews", {"spec": {"gateways": None}})
    assert "gateways" not in patched["spec"]


def test_merge_patch_resource_version_is_a_precondition(server: ApiServer, custom, reviews) -> None:
    current = reviews["metadata"]["resourceVersion"]
    server.patch(
        "networking.istio.io/v1",
        "VirtualService",
        "default",
        "reviews",
        {"spec": {"gateways": ["x"]}},
    )
    stale = {"metadata": {"resourceVersion": current}, "spec": {"gateways": ["mesh"]}}
    with pytest.raises(ConflictException) as caught:
        custom.patch_namespaced_custom_object(*VS, "reviews", stale)
    assert "the object has been modified" in status_body(caught.value)["message"]
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "reviews")["spec"][
        "gateways"
    ] == ["x"]


def test_merge_patch_with_the_current_resource_version_applies(custom, reviews) -> None:
    fresh = {
        "metadata": {"resourceVersion": reviews["metadata"]["resourceVersion"]},
        "spec": {"gateways": ["m"]},
    }
    assert custom.patch_namespaced_custom_object(*VS, "reviews", fresh)["spec"]["gateways"] == ["m"]


def test_a_list_sent_as_merge_patch_is_422(custom, reviews) -> None:
    operations = [{"op": "add", "path": "/spec/gateways", "value": ["mesh"]}]
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(*VS, "reviews", operations)
    assert caught.value.status == 422


def test_json_patch_applies_operations(custom, reviews) -> None:
    operations = [
        {"op": "test", "path": "/spec/hosts/0", "value": "reviews"},
        {"op": "add", "path": "/spec/gateways", "value": ["mesh"]},
    ]
    patched = custom.patch_namespaced_custom_object(
        *VS, "reviews", operations, _content_type=JSON_PATCH
    )
    assert patched["spec"]["gateways"] == ["mesh"]


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/spec/hosts/0", "value": "ratings"}],
        [{"op": "remove", "path": "/spec/nothing"}],
    ],
)
def test_json_patch_that_cannot_apply_is_422_and_changes_nothing(
    server: ApiServer, custom, reviews, operations
) -> None:
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            *VS,
            "reviews",
            [*operations, {"op": "add", "path": "/spec/gateways", "value": ["mesh"]}],
            _content_type=JSON_PATCH,
        )
    assert caught.value.status == 422
    assert (
        "gateways"
        not in server.get("networking.istio.io/v1", "VirtualService", "default", "reviews")["spec"]
    )


@pytest.mark.parametrize(
    "body",
    [
        b'[{"op": "jump", "path": "/spec"}]',
        b'[{"op": "add", "path": "spec/gateways", "value": []}]',
        b'[{"op": "add", "path": "/spec/gateways"}]',
        b'{"op": "add"}',
        b"not json",
    ],
)
def test_malformed_json_patch_is_400(server: ApiServer, reviews, body: bytes) -> None:
    status, _, answer = raw(server, "PATCH", PATH, body, {"Content-Type": JSON_PATCH})
    assert status == 400
    assert answer["reason"] == "BadRequest"


def test_strategic_merge_patch_on_a_custom_resource_is_415(custom, reviews) -> None:
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            *VS,
            "reviews",
            {"spec": {"gateways": ["mesh"]}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert caught.value.status == 415
    assert status_body(caught.value)["reason"] == "UnsupportedMediaType"


def test_other_content_types_are_415(server: ApiServer, reviews) -> None:
    status, _, _ = raw(server, "PATCH", PATH, b"{}", {"Content-Type": "text/plain"})
    assert status == 415


def test_apply_needs_a_field_manager(server: ApiServer, reviews) -> None:
    status, _, body = raw(
        server, "PATCH", PATH, virtual_service(), {"Content-Type": "application/apply-patch+yaml"}
    )
    assert status == 422
    assert "fieldManager: Required value" in body["message"]


def test_apply_creates_then_updates(server: ApiServer, custom) -> None:
    manifest = virtual_service()
    status, _, created = raw(
        server,
        "PATCH",
        PATH + "?fieldManager=chaosmesh",
        manifest,
        {"Content-Type": "application/apply-patch+yaml"},
    )
    assert status == 201
    assert created["metadata"]["generation"] == 1
    manifest["spec"]["gateways"] = ["mesh"]
    updated = custom.patch_namespaced_custom_object(
        *VS,
        "reviews",
        manifest,
        field_manager="chaosmesh",
        _content_type="application/apply-patch+yaml",
    )
    assert updated["spec"]["gateways"] == ["mesh"]
    assert updated["metadata"]["generation"] == 2


def test_patch_on_a_missing_object_is_404(custom) -> None:
    with pytest.raises(NotFoundException):
        custom.patch_namespaced_custom_object(*VS, "reviews", {"spec": {}})


def test_direct_patch_uses_the_same_rules(server: ApiServer, reviews) -> None:
    with pytest.raises(ApiError) as caught:
        server.patch(
            "networking.istio.io/v1",
            "VirtualService",
            "default",
            "reviews",
            [{"op": "test", "path": "/spec/hosts/0", "value": "x"}],
            content_type=JSON_PATCH,
        )
    assert caught.value.status == 422
    with pytest.raises(ApiError) as caught:
        server.patch(
            "networking.istio.io/v1",
            "VirtualService",
            "default",
            "reviews",
            {},
            content_type="text/plain",
        )
    assert caught.value.status == 415
