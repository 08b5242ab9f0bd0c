"""Bearer tokens and RBAC: 401 without a known token, 403 with the real message shape."""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiServer, PolicyRule, User
from tests.apiserver.conftest import ISTIO_CRDS, NETWORKING, raw, status_body, virtual_service

EDITOR = User(
    "chaos-operator",
    (
        PolicyRule(
            verbs=("get", "list", "patch"), resources=("virtualservices",), namespaces=("bookinfo",)
        ),
        PolicyRule(verbs=("get",), resources=("namespaces",), api_groups=("",)),
    ),
)
TOKENS = {
    "editor-token": EDITOR,
    "reader-token": [PolicyRule(verbs=("get", "list"), resources=("*",))],
}


@pytest.fixture(scope="module")
def secured() -> Iterator[ApiServer]:
    with ApiServer(crd_paths=[ISTIO_CRDS], tokens=TOKENS) as server:
        server.create_namespace("bookinfo")
        server.create(virtual_service("reviews", "bookinfo"))
        yield server


def custom_api(server: ApiServer, token: str | None) -> kubernetes.client.CustomObjectsApi:
    configuration = kubernetes.client.Configuration(host=server.url)
    if token is not None:
        configuration.api_key = {"authorization": f"Bearer {token}"}
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_missing_or_unknown_token_is_401(secured: ApiServer, token: str | None) -> None:
    api = custom_api(secured, token)
    with pytest.raises(ApiException) as caught:
        api.get_namespaced_custom_object(*NETWORKING, "bookinfo", "virtualservices", "reviews")
    api.api_client.close()
    assert caught.value.status == 401
    assert status_body(caught.value)["reason"] == "Unauthorized"


def test_allowed_verbs_succeed(secured: ApiServer) -> None:
    api = custom_api(secured, "editor-token")
    patched = api.patch_namespaced_custom_object(
        *NETWORKING, "bookinfo", "virtualservices", "reviews", {"spec": {"gateways": ["mesh"]}}
    )
    api.api_client.close()
    assert patched["spec"]["gateways"] == ["mesh"]


def test_denied_verb_is_403_with_the_rbac_message(secured: ApiServer) -> None:
    api = custom_api(secured, "reader-token")
    with pytest.raises(ApiException) as caught:
        api.patch_namespaced_custom_object(
            *NETWORKING, "bookinfo", "virtualservices", "reviews", {"spec": {}}
        )
    api.api_client.close()
    assert caught.value.status == 403
    body = status_body(caught.value)
    assert body["message"] == (
        'virtualservices.networking.istio.io "reviews" is forbidden: User "user-2" cannot patch'
        ' resource "virtualservices" in API group "networking.istio.io" in the namespace "bookinfo"'
    )
    assert body["reason"] == "Forbidden"
    assert body["details"] == {
        "name": "reviews",
        "group": "networking.istio.io",
        "kind": "virtualservices",
    }


def test_rules_are_limited_to_their_namespaces(secured: ApiServer) -> None:
    api = custom_api(secured, "editor-token")
    with pytest.raises(ApiException) as in_default:
        api.list_namespaced_custom_object(*NETWORKING, "default", "virtualservices")
    with pytest.raises(ApiException) as cluster_wide:
        api.list_cluster_custom_object(*NETWORKING, "virtualservices")
    with pytest.raises(ApiException) as create:
        api.create_namespaced_custom_object(
            *NETWORKING, "bookinfo", "virtualservices", virtual_service("x", "bookinfo")
        )
    api.api_client.close()
    assert in_default.value.status == 403
    assert status_body(cluster_wide.value)["message"] == (
        'virtualservices.networking.istio.io is forbidden: User "chaos-operator" cannot list'
        ' resource "virtualservices" in API group "networking.istio.io" at the cluster scope'
    )
    assert 'User "chaos-operator" cannot create resource' in status_body(create.value)["message"]


def test_core_group_and_namespace_scope(secured: ApiServer) -> None:
    headers = {"Authorization": "Bearer editor-token"}
    assert raw(secured, "GET", "/api/v1/namespaces/bookinfo", headers=headers)[0] == 200
    status, _, body = raw(secured, "DELETE", "/api/v1/namespaces/bookinfo", headers=headers)
    assert status == 403
    assert body["message"] == (
        'namespaces "bookinfo" is forbidden: User "chaos-operator" cannot delete resource'
        ' "namespaces" in API group "" in the namespace "bookinfo"'
    )


def test_discovery_needs_a_valid_token_but_no_rule(secured: ApiServer) -> None:
    assert raw(secured, "GET", "/apis")[0] == 401
    assert raw(secured, "GET", "/apis", headers={"Authorization": "Bearer editor-token"})[0] == 200


def test_direct_access_is_not_subject_to_rbac(secured: ApiServer) -> None:
    assert (
        secured.get("networking.istio.io/v1", "VirtualService", "bookinfo", "reviews") is not None
    )


def test_tokens_can_change_at_runtime_until_reset(server: ApiServer) -> None:
    reader = PolicyRule(verbs=("get", "list"), resources=("*",))
    server.set_tokens({"reader-token": ("jane", [reader])})
    headers = {"Authorization": "Bearer reader-token"}
    assert raw(server, "GET", "/api/v1/namespaces", headers=headers)[0] == 200
    status, _, body = raw(server, "DELETE", "/api/v1/namespaces/default", headers=headers)
    assert status == 403
    assert 'User "jane" cannot delete' in body["message"]
    assert raw(server, "GET", "/api/v1/namespaces")[0] == 401
    server.reset()
    assert raw(server, "GET", "/api/v1/namespaces")[0] == 200


CONTROL_REQUESTS = [
    ("GET", "/chaosmesh/v1/api-faults", None),
    ("POST", "/chaosmesh/v1/api-faults", {"status": 503}),
    ("DELETE", "/chaosmesh/v1/api-faults", None),
    ("POST", "/chaosmesh/v1/reset", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_REQUESTS)
def test_control_endpoints_need_a_token_and_a_rule(
    secured: ApiServer, method: str, path: str, body: object
) -> None:
    """The double's own endpoints can wipe the store and fault every request: they are behind
    the same authentication as the API, and need a non-resource rule of their own."""
    assert raw(secured, method, path, body)[0] == 401
    assert raw(secured, method, path, body, {"Authorization": "Bearer wrong"})[0] == 401
    # The reader may get and list every resource, but no path outside the API.
    status, _, denied = raw(secured, method, path, body, {"Authorization": "Bearer reader-token"})
    assert status == 403
    assert denied["message"] == f'forbidden: User "user-2" cannot {method.lower()} path "{path}"'
    assert secured.get("networking.istio.io/v1", "VirtualService", "bookinfo", "reviews")
    assert secured.faults.pending() == []


def test_a_non_resource_rule_opens_the_control_endpoints(server: ApiServer) -> None:
    operator = PolicyRule(verbs=("get", "post"), non_resource_urls=("/chaosmesh/v1/*",))
    server.set_tokens({"operator-token": ("test-operator", [operator])})
    headers = {"Authorization": "Bearer operator-token"}
    assert raw(server, "POST", "/chaosmesh/v1/api-faults", {"status": 503}, headers)[0] == 201
    assert raw(server, "GET", "/chaosmesh/v1/api-faults", headers=headers)[0] == 200
    assert raw(server, "DELETE", "/chaosmesh/v1/api-faults", headers=headers)[0] == 403
    server.clear_faults()
    # A non-resource rule grants no resource.
    assert raw(server, "GET", "/api/v1/namespaces", headers=headers)[0] == 403
