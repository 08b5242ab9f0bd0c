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

from chaosmesh_py.errors import ConflictPersisted
from chaosmesh_py.kube.client import Kube, ResourceKind, ResourceRef
from chaosmesh_py.localmesh.apiserver import ApiError, ApiServer
from tests.apiserver.conftest import raw, status_body


@pytest.fixture
def coordination(client: kubernetes.client.ApiClient) -> kubernetes.client.CoordinationV1Api:
    return kubernetes.client.CoordinationV1Api(client)


def refused(server: ApiServer, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    """POST `obj`, expect 422 and nothing stored; the Status body."""
    status, _, body = raw(server, "POST", path, obj)
    assert status == 422, body
    assert server.get(obj["apiVersion"], obj["kind"], "default", obj["metadata"]["name"]) is None
    return body


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


def test_a_lease_may_name_a_custom_strategy(server: ApiServer) -> None:
    created = server.create(lease(strategy="example.com/newest", preferredHolder="runner-b"))
    assert created["spec"]["strategy"] == "example.com/newest"
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    body = refused(server, path, lease("other", strategy="example.com/-bad-"))
    assert (
        'spec.strategy: Invalid value: "example.com/-bad-": name part must consist'
        in (body["message"])
    )


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
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    assert message in refused(server, path, lease(**spec))["message"]


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


# -- batch ---------------------------------------------------------------------------------------

CRON_JOBS = "/apis/batch/v1/namespaces/default/cronjobs"


def cron_job(name: str = "gameday", **spec: Any) -> dict[str, Any]:
    pod = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "runner",
                "image": "ghcr.io/example/chaosmesh:1.0",
                "volumeMounts": [{"name": "results", "mountPath": "/results"}],
            }
        ],
        "volumes": [{"name": "results", "emptyDir": {}}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": "30 10 * * TUE",
            "timeZone": "Europe/Berlin",
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": pod}}},
            **spec,
        },
    }


def test_a_cron_job_is_stored_with_the_defaults_a_real_apiserver_fills_in(
    client: kubernetes.client.ApiClient,
) -> None:
    batch = kubernetes.client.BatchV1Api(client)
    created = batch.create_namespaced_cron_job("default", cron_job(concurrencyPolicy="Forbid"))
    assert created.spec.concurrency_policy == "Forbid"
    assert (created.spec.suspend, created.spec.successful_jobs_history_limit) == (False, 3)
    assert created.spec.failed_jobs_history_limit == 1
    container = created.spec.job_template.spec.template.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert created.metadata.generation == 1
    # Built-in kinds take a strategic merge patch (the client's default for a dict body).
    patched = batch.patch_namespaced_cron_job("gameday", "default", {"spec": {"suspend": True}})
    assert patched.spec.suspend is True
    assert patched.metadata.generation == 2
    assert [c.metadata.name for c in batch.list_namespaced_cron_job("default").items] == ["gameday"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"schedule": "30 25 * * TUE"},
            'spec.schedule: Invalid value: "30 25 * * TUE": end of range (25) above maximum'
            " (23): 25",
        ),
        (
            {"schedule": "every tuesday"},
            'spec.schedule: Invalid value: "every tuesday": expected exactly 5 fields, found 2:'
            " [every tuesday]",
        ),
        (
            {"schedule": "@fortnightly"},
            'spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly',
        ),
        (
            {"schedule": "CRON_TZ=Europe/Berlin 30 10 * * *", "timeZone": None},
            'spec.schedule: Invalid value: "CRON_TZ=Europe/Berlin 30 10 * * *": cannot use TZ or'
            " CRON_TZ in schedule, use timeZone field instead",
        ),
        (
            {"timeZone": "Europe/Berln"},
            'spec.timeZone: Invalid value: "Europe/Berln": unknown time zone Europe/Berln',
        ),
        (
            {"timeZone": "Local"},
            'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as'
            " defined in https://www.iana.org/time-zones",
        ),
        (
            {"concurrencyPolicy": "Never"},
            'spec.concurrencyPolicy: Unsupported value: "Never": supported values: "Allow",'
            ' "Forbid", "Replace"',
        ),
        (
            {"startingDeadlineSeconds": -1},
            "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
        ),
    ],
)
def test_cron_job_rules_are_422_naming_the_field(
    server: ApiServer, changes: dict[str, Any], message: str
) -> None:
    obj = cron_job(**changes)
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    body = refused(server, CRON_JOBS, obj)
    assert message in body["message"]
    assert body["details"]["causes"][0]["field"] == message.partition(":")[0]


def test_a_cron_job_name_is_at_most_52_characters(server: ApiServer) -> None:
    status, _, body = raw(server, "POST", CRON_JOBS, cron_job("g" * 53))
    assert status == 422
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "{"g" * 53}": must be no more than 52 characters',
            "field": "metadata.name",
        }
    ]
    assert raw(server, "POST", CRON_JOBS, cron_job("g" * 52))[0] == 201


@pytest.mark.parametrize(
    ("pod", "field", "message"),
    [
        ({"restartPolicy": "Always"}, "restartPolicy", 'Unsupported value: "Always"'),
        ({"restartPolicy": None}, "restartPolicy", 'Unsupported value: "Always"'),
        ({"containers": []}, "containers", "Required value"),
        ({"volumes": [{"name": "results"}]}, "volumes[0]", "must specify a volume type"),
        ({"volumes": []}, "containers[0].volumeMounts[0].name", 'Not found: "results"'),
    ],
)
def test_the_job_template_meets_the_pod_rules(
    server: ApiServer, pod: dict[str, Any], field: str, message: str
) -> None:
    obj = cron_job()
    template = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    template.update(pod)
    obj["spec"]["jobTemplate"]["spec"]["template"]["spec"] = {
        k: v for k, v in template.items() if v is not None
    }
    body = refused(server, CRON_JOBS, obj)
    where = f"spec.jobTemplate.spec.template.spec.{field}"
    assert any(
        c["field"] == where and message in c["message"] for c in body["details"]["causes"]
    ), body


def test_a_job_keeps_its_template(server: ApiServer) -> None:
    template = cron_job()["spec"]["jobTemplate"]["spec"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "gameday-manual", "namespace": "default"},
        "spec": template,
    }
    created = server.create(job)
    assert created["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    path = "/apis/batch/v1/namespaces/default/jobs/gameday-manual"
    status, _, body = raw(
        server,
        "PATCH",
        path,
        {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "spec.template"
    assert "field is immutable" in body["message"]
    status, _, body = raw(
        server,
        "PATCH",
        path,
        {"spec": {"ttlSecondsAfterFinished": 60}},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200, body
    assert body["spec"]["ttlSecondsAfterFinished"] == 60


# -- core: ServiceAccount, PersistentVolumeClaim -------------------------------------------------


def test_service_accounts_are_served(client: kubernetes.client.ApiClient) -> None:
    core = kubernetes.client.CoreV1Api(client)
    body = {"metadata": {"name": "chaosmesh-gameday"}, "automountServiceAccountToken": False}
    created = core.create_namespaced_service_account("default", body)
    assert created.automount_service_account_token is False
    names = [sa.metadata.name for sa in core.list_namespaced_service_account("default").items]
    assert names == ["chaosmesh-gameday"]


def pvc(**spec: Any) -> dict[str, Any]:
    body = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "results", "namespace": "default"},
        "spec": {**body, **spec},
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"accessModes": []},
            "spec.accessModes: Required value: at least 1 access mode is required",
        ),
        (
            {"accessModes": ["ReadWriteSometimes"]},
            'spec.accessModes: Unsupported value: "ReadWriteSometimes"',
        ),
        ({"resources": {}}, "spec.resources[storage]: Required value"),
        (
            {"resources": {"requests": {"storage": "0"}}},
            'spec.resources[storage]: Invalid value: "0": must be greater than zero',
        ),
    ],
)
def test_claim_rules_are_422(server: ApiServer, spec: dict[str, Any], message: str) -> None:
    path = "/api/v1/namespaces/default/persistentvolumeclaims"
    assert message in refused(server, path, pvc(**spec))["message"]


def test_a_claim_can_grow_but_its_spec_is_otherwise_immutable(server: ApiServer) -> None:
    created = server.create(pvc(resources={"requests": {"storage": 1073741824}}))
    assert created["spec"]["volumeMode"] == "Filesystem"
    grown = server.patch(
        "v1",
        "PersistentVolumeClaim",
        "default",
        "results",
        {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
    )
    assert grown["spec"]["resources"]["requests"]["storage"] == "2Gi"
    with pytest.raises(ApiError) as caught:
        server.patch(
            "v1",
            "PersistentVolumeClaim",
            "default",
            "results",
            {"spec": {"accessModes": ["ReadWriteMany"]}},
        )
    assert caught.value.status == 422
    assert "spec: Forbidden: spec is immutable after creation" in caught.value.message


# -- rbac.authorization.k8s.io -------------------------------------------------------------------

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def role(*rules: dict[str, Any], kind: str = "Role", name: str = "chaosmesh") -> dict[str, Any]:
    metadata = {"name": name, **({"namespace": "default"} if kind == "Role" else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "rules": list(rules),
    }


def binding(kind: str = "RoleBinding", role_kind: str = "Role", **subject: Any) -> dict[str, Any]:
    metadata = {"name": "chaosmesh", **({"namespace": "default"} if kind == "RoleBinding" else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": "chaosmesh",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "chaosmesh-gameday", **subject}],
    }


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": []},
            "rules[0].verbs: Required value: verbs must contain at least one value",
        ),
        (
            {"resources": ["jobs"], "verbs": ["get"]},
            "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
        ),
        (
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
            'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules'
            " cannot apply to non-resource URLs",
        ),
    ],
)
def test_policy_rules_are_checked(server: ApiServer, rule: dict[str, Any], message: str) -> None:
    assert message in refused(server, f"{RBAC}/namespaces/default/roles", role(rule))["message"]


def test_cluster_roles_take_rbac_names_and_non_resource_urls(server: ApiServer) -> None:
    obj = role({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, kind="ClusterRole")
    obj["metadata"]["name"] = "chaosmesh:gameday-reader"
    status, _, body = raw(server, "POST", f"{RBAC}/clusterroles", obj)
    assert status == 201, body
    assert "namespace" not in body["metadata"]
    obj["metadata"]["name"] = "chaosmesh/reader"
    status, _, body = raw(server, "POST", f"{RBAC}/clusterroles", obj)
    assert status == 422
    assert (
        "metadata.name: Invalid value: \"chaosmesh/reader\": may not contain '/'" in body["message"]
    )


def test_a_binding_keeps_its_role_ref(server: ApiServer) -> None:
    server.create(binding())
    path = f"{RBAC}/namespaces/default/rolebindings/chaosmesh"
    status, _, body = raw(
        server,
        "PATCH",
        path,
        {"roleRef": {"kind": "ClusterRole"}},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 422
    assert body["message"] == (
        'RoleBinding.rbac.authorization.k8s.io "chaosmesh" is invalid: roleRef: Invalid value:'
        ' rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole",'
        ' Name:"chaosmesh"}: cannot change roleRef'
    )
    # Subjects may change.
    status, _, body = raw(
        server,
        "PATCH",
        path,
        {"subjects": [{"kind": "Group", "name": "sre", "apiGroup": "rbac.authorization.k8s.io"}]},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200, body


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            binding(kind="ClusterRoleBinding", role_kind="ClusterRole"),
            "subjects[0].namespace: Required value",
        ),
        (
            binding(kind="ClusterRoleBinding", role_kind="Role", namespace="default"),
            'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
        ),
        (
            binding(apiGroup="rbac.authorization.k8s.io"),
            'subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io"',
        ),
    ],
)
def test_binding_rules_are_422(server: ApiServer, obj: dict[str, Any], message: str) -> None:
    cluster = obj["kind"] == "ClusterRoleBinding"
    plural = "clusterrolebindings" if cluster else "namespaces/default/rolebindings"
    assert message in refused(server, f"{RBAC}/{plural}", obj)["message"]


def test_the_projects_own_client_takes_a_lease_once(server: ApiServer) -> None:
    """The game-day runner's path: chaosmesh_py.kube's Kube (CustomObjectsApi by group and
    plural, merge patches with a resourceVersion precondition) on coordination.k8s.io."""
    kube = Kube.at(server.url)
    ref = ResourceRef(ResourceKind("coordination.k8s.io", "v1", "leases", "Lease"), "default", "gd")
    created = kube.create(ref, lease("gd"))
    seen = created["metadata"]["resourceVersion"]
    with pytest.raises(ConflictPersisted):
        kube.create(ref, lease("gd"))  # a second runner finds it taken
    taken = kube.patch(
        ref, {"metadata": {"resourceVersion": seen}, "spec": {"holderIdentity": "b"}}
    )
    assert taken["spec"]["holderIdentity"] == "b"
    with pytest.raises(ConflictPersisted):  # the same read, used twice: the second loses
        kube.patch(ref, {"metadata": {"resourceVersion": seen}, "spec": {"holderIdentity": "c"}})
    assert kube.get(ref)["spec"]["holderIdentity"] == "b"


def service(name: str = "reviews-v2", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": "reviews", "version": "v2"}, **spec},
    }


def test_a_service_is_served_and_listed_through_the_core_api(
    client: kubernetes.client.ApiClient, server: ApiServer
) -> None:
    core = kubernetes.client.CoreV1Api(client)
    created = core.create_namespaced_service(
        "default", service(ports=[{"name": "http", "port": 9080, "targetPort": "http"}])
    )
    assert created.spec.type == "ClusterIP"
    assert created.spec.ports[0].protocol == "TCP"
    assert created.spec.ports[0].target_port == "http"  # an IntOrString, kept as given
    kube = Kube(client)
    listed = kube.list(ResourceKind("", "v1", "services", "Service"), "default")
    assert [s["metadata"]["name"] for s in listed] == ["reviews-v2"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.ports: Required value"),
        ({"ports": [{"port": 0}]}, "spec.ports[0].port: Invalid value: 0"),
        (
            {"ports": [{"port": 80, "protocol": "HTTP"}]},
            'spec.ports[0].protocol: Unsupported value: "HTTP"',
        ),
        ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name: Required value"),
        (
            {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
            'spec.ports[1].name: Duplicate value: "a"',
        ),
        ({"type": "Mesh", "ports": [{"port": 80}]}, 'spec.type: Unsupported value: "Mesh"'),
    ],
)
def test_a_service_the_apiserver_would_refuse_is_refused(
    server: ApiServer, spec: dict[str, Any], message: str
) -> None:
    body = refused(server, "/api/v1/namespaces/default/services", service(**spec))
    assert message in body["message"], body["message"]
