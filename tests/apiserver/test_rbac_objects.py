"""Authorization by stored Roles and bindings: a service account's token can do exactly what the
RBAC objects applied to the double give it, as on a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiServer, User
from tests.apiserver.conftest import NETWORKING, raw, status_body, virtual_service

RUNNER = "system:serviceaccount:bookinfo:gameday"
RBAC = "rbac.authorization.k8s.io/v1"


def rbac(kind: str, name: str, namespace: str | None = None, **body: Any) -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": RBAC, "kind": kind, "metadata": metadata, **body}


def ref(kind: str, name: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}


SA = {"kind": "ServiceAccount", "name": "gameday", "namespace": "bookinfo"}


@pytest.fixture
def secured(server: ApiServer) -> Iterator[ApiServer]:
    server.create_namespace("bookinfo")
    server.create_namespace("other")
    for namespace in ("bookinfo", "other"):
        server.create(virtual_service("reviews", namespace))
    # The runner's token has no rules of its own: only what is bound to it counts.
    server.set_tokens({"runner": User(RUNNER), "nobody": User("someone-else")})
    yield server
    server.reset()  # back to the session server's own tokens for the next folder


def custom(server: ApiServer, token: str) -> kubernetes.client.CustomObjectsApi:
    configuration = kubernetes.client.Configuration(host=server.url)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))


def status_of(call: Any) -> int:
    try:
        call()
    except ApiException as error:
        return int(error.status)
    return 200


def test_a_role_binding_grants_its_rules_in_its_namespace_only(secured: ApiServer) -> None:
    api = custom(secured, "runner")

    def read(namespace: str) -> int:
        return status_of(
            lambda: api.get_namespaced_custom_object(
                *NETWORKING, namespace, "virtualservices", "reviews"
            )
        )

    with pytest.raises(ApiException) as denied:
        api.get_namespaced_custom_object(*NETWORKING, "bookinfo", "virtualservices", "reviews")
    assert denied.value.status == 403
    assert status_body(denied.value)["message"] == (
        'virtualservices.networking.istio.io "reviews" is forbidden: User'
        f' "{RUNNER}" cannot get resource "virtualservices" in API group'
        ' "networking.istio.io" in the namespace "bookinfo"'
    )
    rules = [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["get"]}
    ]
    secured.create(rbac("Role", "gameday", "bookinfo", rules=rules))
    secured.create(
        rbac("RoleBinding", "gameday", "bookinfo", roleRef=ref("Role", "gameday"), subjects=[SA])
    )
    assert read("bookinfo") == 200
    assert read("other") == 403
    patch = {"metadata": {"labels": {"x": "y"}}}
    assert (
        status_of(
            lambda: api.patch_namespaced_custom_object(
                *NETWORKING, "bookinfo", "virtualservices", "reviews", patch
            )
        )
        == 403
    )
    assert (
        status_of(
            lambda: custom(secured, "nobody").get_namespaced_custom_object(
                *NETWORKING, "bookinfo", "virtualservices", "reviews"
            )
        )
        == 403
    )
    # Removing the binding takes the permission away at once.
    secured.delete(RBAC, "RoleBinding", "bookinfo", "gameday")
    assert read("bookinfo") == 403


def test_a_cluster_role_binding_grants_everywhere_and_groups_count(secured: ApiServer) -> None:
    rules = [{"apiGroups": ["*"], "resources": ["virtualservices"], "verbs": ["get", "list"]}]
    secured.create(rbac("ClusterRole", "vs-reader", rules=rules))
    group = {
        "kind": "Group",
        "name": "system:serviceaccounts:bookinfo",
        "apiGroup": "rbac.authorization.k8s.io",
    }
    secured.create(
        rbac(
            "ClusterRoleBinding",
            "vs-reader",
            roleRef=ref("ClusterRole", "vs-reader"),
            subjects=[group],
        )
    )
    api = custom(secured, "runner")
    listed = api.list_cluster_custom_object(*NETWORKING, "virtualservices")
    assert sorted(i["metadata"]["namespace"] for i in listed["items"]) == ["bookinfo", "other"]


def test_a_role_binding_to_a_cluster_role_and_resource_names(secured: ApiServer) -> None:
    rules = [
        {
            "apiGroups": ["networking.istio.io"],
            "resources": ["virtualservices"],
            "resourceNames": ["reviews"],
            "verbs": ["get", "patch"],
        }
    ]
    secured.create(rbac("ClusterRole", "reviews-editor", rules=rules))
    secured.create(
        rbac(
            "RoleBinding",
            "reviews-editor",
            "bookinfo",
            roleRef=ref("ClusterRole", "reviews-editor"),
            subjects=[{"kind": "ServiceAccount", "name": "gameday"}],  # the binding's namespace
        )
    )
    api = custom(secured, "runner")
    assert api.get_namespaced_custom_object(*NETWORKING, "bookinfo", "virtualservices", "reviews")
    with pytest.raises(ApiException) as listing:  # resourceNames never cover a list
        api.list_namespaced_custom_object(*NETWORKING, "bookinfo", "virtualservices")
    assert listing.value.status == 403
    secured.create(virtual_service("ratings", "bookinfo"))
    with pytest.raises(ApiException) as other_name:
        api.get_namespaced_custom_object(*NETWORKING, "bookinfo", "virtualservices", "ratings")
    assert other_name.value.status == 403


def test_subresources_need_their_own_rule(secured: ApiServer) -> None:
    rules = [{"apiGroups": ["networking.istio.io"], "resources": ["*/status"], "verbs": ["get"]}]
    secured.create(rbac("Role", "status", "bookinfo", rules=rules))
    secured.create(
        rbac("RoleBinding", "status", "bookinfo", roleRef=ref("Role", "status"), subjects=[SA])
    )
    path = "/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/reviews"
    headers = {"Authorization": "Bearer runner"}
    assert raw(secured, "GET", path + "/status", headers=headers)[0] == 200
    assert raw(secured, "GET", path, headers=headers)[0] == 403


def test_only_who_may_impersonate_acts_as_another_user(secured: ApiServer) -> None:
    path = "/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices"
    status, _, body = raw(
        secured,
        "GET",
        path,
        headers={"Authorization": "Bearer runner", "Impersonate-User": "system:admin"},
    )
    assert status == 403
    assert body["message"] == (
        f'users "system:admin" is forbidden: User "{RUNNER}" cannot impersonate resource'
        ' "users" in API group "" at the cluster scope'
    )


def test_an_access_review_in_json_answers_for_the_caller(secured: ApiServer) -> None:
    rules = [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["get"]}
    ]
    secured.create(rbac("Role", "gameday", "bookinfo", rules=rules))
    secured.create(
        rbac("RoleBinding", "gameday", "bookinfo", roleRef=ref("Role", "gameday"), subjects=[SA])
    )
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    attributes = {"namespace": "bookinfo", "verb": "get", "group": "networking.istio.io"}
    answers = []
    for resource in ("virtualservices", "destinationrules"):
        review = {"spec": {"resourceAttributes": {**attributes, "resource": resource}}}
        status, _, body = raw(secured, "POST", path, review, {"Authorization": "Bearer runner"})
        assert status == 201
        assert body["kind"] == "SelfSubjectAccessReview"
        answers.append(body["status"]["allowed"])
    assert answers == [True, False]
