"""The built-in kinds served beyond Namespace and ConfigMap.

coordination.k8s.io/v1 Lease; batch/v1 CronJob and Job; v1 ServiceAccount, Service,
PersistentVolumeClaim, Pod and Endpoints; apps/v1 Deployment and ReplicaSet (with their scale
subresource); rbac.authorization.k8s.io/v1 Role, RoleBinding and the cluster-scoped
ClusterRole and ClusterRoleBinding: what a game day's rendered manifests use. Their structure
comes from the `kubernetes` client's models (`models`), their own rules from `builtin_rules` and
`batch`. Discovery names, short names and categories are a real apiserver's.

The double stores CronJobs and Jobs; nothing runs them (no controllers): executing them stays a
real cluster's job. Deployments, ReplicaSets, Pods and Endpoints are stored and validated here;
on the local mesh its deployment controller acts on them (``chaosmesh_py.localmesh.workloads``).
"""

from __future__ import annotations

from collections.abc import Callable

from chaosmesh_py.localmesh.apiserver import batch, builtin_rules, workloads
from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict
from chaosmesh_py.localmesh.apiserver.models import model_schema
from chaosmesh_py.localmesh.apiserver.resources import ResourceType
from chaosmesh_py.localmesh.apiserver.schema import Schema

Rules = Callable[[JsonDict, JsonDict | None], list[FieldError]]


def builtin_type(
    group: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    has_status: bool = False,
    scale: bool = False,
    generation: bool = False,
    path_segment_names: bool = False,
    validate: Rules | None = None,
) -> ResourceType:
    model = f"V1{kind}"
    return ResourceType(
        group=group,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        versions=("v1",),
        storage_version="v1",
        short_names=short_names,
        categories=categories,
        has_status=has_status,
        scale=scale,
        generation=generation,
        path_segment_names=path_segment_names,
        model=model,
        schemas={"v1": Schema(model_schema(model), times=True)},
        validate=validate,
    )


RBAC = builtin_rules.RBAC_GROUP
LEASE = builtin_type("coordination.k8s.io", "Lease", "leases", validate=builtin_rules.lease_errors)
CRON_JOB = builtin_type(
    "batch",
    "CronJob",
    "cronjobs",
    short_names=("cj",),
    categories=("all",),
    has_status=True,
    generation=True,
    validate=batch.cron_job_errors,
)
JOB = builtin_type(
    "batch",
    "Job",
    "jobs",
    categories=("all",),
    has_status=True,
    generation=True,
    validate=batch.job_errors,
)
SERVICE_ACCOUNT = builtin_type("", "ServiceAccount", "serviceaccounts", short_names=("sa",))
# Stored and validated only: no cluster IP is allocated and no Endpoints are kept. The local
# mesh reads Services to route to them (``chaosmesh_py.localmesh.mesh``).
SERVICE = builtin_type(
    "",
    "Service",
    "services",
    short_names=("svc",),
    categories=("all",),
    has_status=True,
    validate=builtin_rules.service_errors,
)
POD = builtin_type(
    "",
    "Pod",
    "pods",
    short_names=("po",),
    categories=("all",),
    has_status=True,
    validate=workloads.pod_errors,
)
ENDPOINTS = builtin_type(
    "", "Endpoints", "endpoints", short_names=("ep",), validate=workloads.endpoints_errors
)
DEPLOYMENT = builtin_type(
    "apps",
    "Deployment",
    "deployments",
    short_names=("deploy",),
    categories=("all",),
    has_status=True,
    scale=True,
    generation=True,
    validate=workloads.replicated_errors,
)
REPLICA_SET = builtin_type(
    "apps",
    "ReplicaSet",
    "replicasets",
    short_names=("rs",),
    categories=("all",),
    has_status=True,
    scale=True,
    generation=True,
    validate=workloads.replicated_errors,
)
PERSISTENT_VOLUME_CLAIM = builtin_type(
    "",
    "PersistentVolumeClaim",
    "persistentvolumeclaims",
    short_names=("pvc",),
    has_status=True,
    validate=builtin_rules.pvc_errors,
)
ROLE = builtin_type(
    RBAC, "Role", "roles", path_segment_names=True, validate=builtin_rules.role_errors
)
ROLE_BINDING = builtin_type(
    RBAC,
    "RoleBinding",
    "rolebindings",
    path_segment_names=True,
    validate=builtin_rules.role_binding_errors,
)
CLUSTER_ROLE = builtin_type(
    RBAC,
    "ClusterRole",
    "clusterroles",
    namespaced=False,
    path_segment_names=True,
    validate=builtin_rules.cluster_role_errors,
)
CLUSTER_ROLE_BINDING = builtin_type(
    RBAC,
    "ClusterRoleBinding",
    "clusterrolebindings",
    namespaced=False,
    path_segment_names=True,
    validate=builtin_rules.cluster_role_binding_errors,
)

BUILTIN_TYPES = (
    SERVICE_ACCOUNT,
    SERVICE,
    PERSISTENT_VOLUME_CLAIM,
    POD,
    ENDPOINTS,
    DEPLOYMENT,
    REPLICA_SET,
    LEASE,
    CRON_JOB,
    JOB,
    ROLE,
    ROLE_BINDING,
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
)
