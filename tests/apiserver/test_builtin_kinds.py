"""Built-in kinds beyond Namespace and ConfigMap, through the real client's typed APIs.

Each is validated as a real apiserver validates it: the structure first (a value of the wrong
type is a 400 from the decoder, an unknown field a Warning or, with fieldValidation=Strict, a
400), then the kind's own rules (422).
"""

from __future__ import annotations

import datetime
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import raw, status_body


@pytest.fixture
def coordination(client: kubernetes.client.ApiClient) -> kubernetes.client.CoordinationV1Api:
    return kubernetes.client.CoordinationV1Api(client)


def lease(name: str = "gameday", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"holderIdentity": "runner-a", "leaseDurationSeconds": 60, **spec},
    }


def test_a_lease_is_taken_once_a_second_conditional_update_conflicts(
    coordination: kubernetes.client.CoordinationV1Api,
) -> None:
    created = coordination.create_namespaced_lease("default", lease())
    assert created.spec.holder_identity == "runner-a"
    assert created.metadata.resource_version
    # Two runners read the same version; both try to take the lease with it: one wins.
    seen = coordination.read_namespaced_lease("gameday", "default")
    now = datetime.datetime.now(datetime.UTC)
    seen.spec.holder_identity, seen.spec.renew_time = "runner-b", now
    taken = coordination.replace_namespaced_lease("gameday", "default", seen)
    assert taken.spec.holder_identity == "runner-b"
    assert taken.spec.renew_time == now
    seen.spec.holder_identity = "runner-c"
    with pytest.raises(ApiException) as caught:
        coordination.replace_namespaced_lease("gameday", "default", seen)
    assert caught.value.status == 409
    assert status_body(caught.value)["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "gameday": the object has'
        " been modified; please apply your changes to the latest version and try again"
    )
    assert coordination.read_namespaced_lease("gameday", "default").spec.holder_identity == (
        "runner-b"
    )
    # A merge patch carrying the stale resourceVersion is refused the same way.
    with pytest.raises(ApiException) as stale:
        coordination.patch_namespaced_lease(
            "gameday",
            "default",
            {"metadata": {"resourceVersion": created.metadata.resource_version}},
        )
    assert stale.value.status == 409
    listed = coordination.list_namespaced_lease("default").items
    assert [item.metadata.name for item in listed] == ["gameday"]


def test_a_lease_has_no_generation_and_its_updates_need_no_resource_version(
    server: ApiServer,
) -> None:
    created = server.create(lease())
    assert "generation" not in created["metadata"]
    del created["metadata"]["resourceVersion"]
    created["spec"]["holderIdentity"] = "runner-b"
    assert server.replace(created)["spec"]["holderIdentity"] == "runner-b"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"leaseDurationSeconds": 0},
            'Lease.coordination.k8s.io "gameday" is invalid: spec.leaseDurationSeconds:'
            " Invalid value: 0: must be greater than 0",
        ),
        (
            {"leaseTransitions": -1},
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            {"strategy": "Newest"},
            'spec.strategy: Unsupported value: "Newest": supported values:'
            ' "OldestEmulationVersion"',
        ),
        (
            {"preferredHolder": "runner-b"},
            "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
        ),
    ],
)
def test_lease_rules_are_422(server: ApiServer, spec: dict[str, Any], message: str) -> None:
    status, _, body = raw(
        server, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", lease(**spec)
    )
    assert status == 422, body
    assert message in body["message"]


def test_a_value_of_the_wrong_type_is_refused_by_the_decoder(server: ApiServer) -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    status, _, body = raw(server, "POST", path, lease(leaseDurationSeconds="60s"))
    assert status == 400
    assert body["message"] == (
        'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal string into'
        " Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32"
    )
    status, _, body = raw(server, "POST", path, lease(renewTime="yesterday"))
    assert status == 400
    assert 'parsing time "yesterday"' in body["message"]
    assert server.list("coordination.k8s.io/v1", "Lease") == []


def test_unknown_lease_fields_warn_or_with_strict_are_refused(server: ApiServer) -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    status, _, body = raw(server, "POST", path + "?fieldValidation=Strict", lease(holder="x"))
    assert status == 400
    assert body["message"] == (
        'Lease in version "v1" cannot be handled as a Lease: strict decoding error:'
        ' unknown field "spec.holder"'
    )
    status, headers, body = raw(server, "POST", path, lease(holder="x"))
    assert status == 201
    assert headers.get_all("Warning") == ['299 - "unknown field \\"spec.holder\\""']
    assert "holder" not in body["spec"]


def test_leases_are_discovered_as_a_real_server_lists_them(server: ApiServer) -> None:
    _, _, groups = raw(server, "GET", "/apis")
    coordination = next(g for g in groups["groups"] if g["name"] == "coordination.k8s.io")
    assert coordination["preferredVersion"]["groupVersion"] == "coordination.k8s.io/v1"
    _, _, resources = raw(server, "GET", "/apis/coordination.k8s.io/v1")
    assert [(r["name"], r["kind"], r["namespaced"]) for r in resources["resources"]] == [
        ("leases", "Lease", True)
    ]
