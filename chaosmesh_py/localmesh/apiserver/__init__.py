"""A Kubernetes API double for the Istio kinds: real HTTP, real validation, injectable faults.

It enforces what a real kube-apiserver enforces on the objects this project writes:
resourceVersion concurrency (409), the CRDs' structural schemas with pruning (Warning header,
400 with fieldValidation=Strict) and CEL rules (422), Istio's validating webhook (400), patch
content types (415), bearer tokens and RBAC (401/403), size limits (413 for a body over 3 MiB, 422
for annotations over 256 KiB). Besides Istio's kinds it serves the built-in kinds a game day's
manifests use (Namespace, ConfigMap, ServiceAccount, PersistentVolumeClaim, Lease, CronJob, Job,
Role, RoleBinding, ClusterRole, ClusterRoleBinding: structure from the `kubernetes` client's
models, each kind's own rules ported), and publishes `/openapi/v2` and `/openapi/v3`, so plain
`kubectl apply` validates against it. Nothing runs the CronJobs and Jobs it stores.
Faults (5xx/429 without a state change, delays, connections dropped before or after the write,
a concurrent writer) are injected per request. The local mesh serves its Istio API from it,
over TLS with a token.

    with ApiServer(crd_paths=[crds]) as server:
        client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=server.url))
        server.inject(ApiFault(method="PATCH", path=r"/virtualservices/reviews$", status=503))

Modules: `server` (ApiServer), `handler` (HTTP), `store` (write semantics), `schema` and `cel`
(validation), `webhook` (its own port of Istio's validating webhook), `patch`, `selector`, `meta`,
`strategic` (strategic merge), `resources` (CRDs), `builtin` (built-in kinds; `models` their
structure, `builtin_rules`, `batch` and `cron` their rules), `openapi`, `tables` (what `kubectl get`
prints), `discovery`, `faults`, `rbac` (tokens) and `rbac_objects` (stored Roles and bindings),
`errors` (Status bodies).
"""

from chaosmesh_py.localmesh.apiserver.errors import ApiError, FieldError
from chaosmesh_py.localmesh.apiserver.faults import ApiFault
from chaosmesh_py.localmesh.apiserver.handler import RequestRecord
from chaosmesh_py.localmesh.apiserver.rbac import PolicyRule, User
from chaosmesh_py.localmesh.apiserver.server import ApiServer
from chaosmesh_py.localmesh.apiserver.store import WatchEvent
from chaosmesh_py.localmesh.apiserver.webhook import Review

__all__ = [
    "ApiError",
    "ApiFault",
    "ApiServer",
    "FieldError",
    "PolicyRule",
    "RequestRecord",
    "Review",
    "User",
    "WatchEvent",
]
