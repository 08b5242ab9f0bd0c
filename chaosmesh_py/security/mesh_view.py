"""What the posture checks read and send (``chaosmesh_py.security.posture``): a namespace's
workloads (its Pods, and on the local mesh each pod's own address), the security.istio.io
policies of the namespace and of the root namespace, read through ``chaosmesh_py.kube``; and
one real GET, whose answer may be a reset as well as a status. Nothing here writes.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py import checks
from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.engine.kinds import SECURITY, editable_kinds
from chaosmesh_py.errors import ChaosMeshError, InvalidInput, shown
from chaosmesh_py.istio import authorization as authz
from chaosmesh_py.istio.identity import principal
from chaosmesh_py.kube import Kube
from chaosmesh_py.kube.client import POD
from chaosmesh_py.kube.names import parse_namespace

DEFAULT_TIMEOUT_S = 3.0

DEFAULT_TIMEOUT_S = 3.0


# The security.istio.io kinds, at the version the engine edits them (chaosmesh_py.engine.kinds).
_SECURITY_KINDS = {e.kind.kind: e.kind for e in editable_kinds() if e.kind.group == SECURITY}
AUTHORIZATION_POLICY = _SECURITY_KINDS["AuthorizationPolicy"]
PEER_AUTHENTICATION = _SECURITY_KINDS["PeerAuthentication"]
REQUEST_AUTHENTICATION = _SECURITY_KINDS["RequestAuthentication"]
POLICY_KINDS = (AUTHORIZATION_POLICY, PEER_AUTHENTICATION, REQUEST_AUTHENTICATION)


@dataclass(frozen=True)
class Finding:
    kind: str
    namespace: str
    where: str  # the workload, or "AuthorizationPolicy ns/name"
    message: str
    fix: str
    measured: bool  # a real request showed it; False: predicted from the policies
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "where": self.where,
            "message": self.message,
            "fix": self.fix,
            "measured": self.measured,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Workload:
    name: str
    namespace: str
    labels: Mapping[str, str]
    service_account: str
    ports: tuple[int, ...]  # declared container ports; () when the pods declare none
    sidecar: bool
    pod_url: str | None = None  # the local mesh's pod address (plain text reaches its inbound)
    service_url: str | None = None  # the local mesh's way to the workload's service

    @property
    def principal(self) -> str:
        return principal(self.namespace, self.service_account)


@dataclass(frozen=True)
class Answer:
    """One real request's outcome: the status, else why there was none (reset, refused)."""

    status: int | None
    detail: str

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def let_through(self) -> bool:
        """Answered by the application: neither refused at the connection nor by a policy."""
        return self.status is not None and self.status not in (401, 403)

    def __str__(self) -> str:
        if self.status is None:
            return f"no answer ({self.detail})"
        return f"HTTP {self.status}" + (f" {self.detail!r}" if self.detail else "")


@dataclass
class MeshView:
    """What the checks read, once per call."""

    namespace: str
    root_namespace: str
    workloads: list[Workload]
    authorization_policies: list[dict[str, Any]]
    peer_authentications: list[dict[str, Any]]
    request_authentications: list[dict[str, Any]]
    local: bool
    kube: Kube | None = None
    _pods_elsewhere: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)
    # What one report measured once (each pod's plain-text answer), shared by its checks so the
    # table and the findings agree and no pod is asked twice.
    measured: dict[str, Any] = field(default_factory=dict)

    def policies(self) -> list[authz.AuthorizationPolicy]:
        return [authz.parse(p) for p in self.authorization_policies]

    def pods_in(self, namespace: str) -> list[dict[str, Any]] | None:
        """The pods of ``namespace``; None when they cannot be read (no right to list them)."""
        if namespace not in self._pods_elsewhere:
            try:
                pods = self.kube.list(POD, namespace) if self.kube else []
            except ChaosMeshError:
                pods = None
            self._pods_elsewhere[namespace] = pods
        return self._pods_elsewhere[namespace]


@dataclass(frozen=True)
class Request:
    """The checks' arguments, checked."""

    namespace: str
    root_namespace: str
    measure: bool
    path: str
    timeout_s: float
    url: str | None = None
    selector: Mapping[str, str] | None = None  # only the workloads carrying these labels

    def chosen(self, workloads: Sequence[Workload]) -> list[Workload]:
        wanted = self.selector or {}
        return [w for w in workloads if all(w.labels.get(k) == v for k, v in wanted.items())]


def check_request(arguments: Mapping[str, Any]) -> Request:
    namespace = parse_namespace(arguments.get("namespace", "default"))
    root = parse_namespace(arguments.get("root_namespace", authz.ROOT_NAMESPACE), "root_namespace")
    measure = checks.flag("measure", arguments.get("measure", True))
    path = arguments.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInput(
            "path", f"must be a path starting with '/', got {shown(path)}", 'e.g. "/"'
        )
    timeout_s = checks.seconds("timeout_s", arguments.get("timeout_s", DEFAULT_TIMEOUT_S))
    url = arguments.get("url")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(
                "url", f"must be an http(s) URL, got {shown(url)}", 'e.g. "http://127.0.0.1:9080/"'
            )
    selector = arguments.get("selector")
    if selector is not None and not (
        isinstance(selector, dict)
        and selector
        and all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items())
    ):
        raise InvalidInput(
            "selector",
            f"must map pod labels to strings, got {shown(selector)}",
            'e.g. {"app": "productpage"}',
        )
    return Request(namespace, root, measure, path, timeout_s, url, selector)


# ------------------------------------------------------------------ reading


def read(kube: Kube, request: Request) -> MeshView:
    """Pods and policies of the namespace (and the root namespace's policies)."""
    mesh = _local_mesh(kube)
    namespaces = dict.fromkeys((request.namespace, request.root_namespace))
    lists = {
        kind.plural: [item for ns in namespaces for item in kube.list(kind, ns)]
        for kind in POLICY_KINDS
    }
    pods = kube.list(POD, request.namespace)
    view = MeshView(
        namespace=request.namespace,
        root_namespace=request.root_namespace,
        workloads=_workloads(pods, request.namespace, mesh),
        authorization_policies=lists["authorizationpolicies"],
        peer_authentications=lists["peerauthentications"],
        request_authentications=lists["requestauthentications"],
        local=mesh is not None,
        kube=kube,
    )
    view._pods_elsewhere[request.namespace] = pods
    return view


def _local_mesh(kube: Kube) -> Mapping[str, Any] | None:
    try:
        return kube.local_mesh()
    except ChaosMeshError:
        return None


def _workloads(
    pods: Sequence[Mapping[str, Any]], namespace: str, mesh: Mapping[str, Any] | None
) -> list[Workload]:
    """One per workload (a Deployment's pods share everything the checks read)."""
    published = (mesh or {}).get("workloads") or {}
    seen: dict[str, Workload] = {}
    for pod in pods:
        metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        name = workload_name(pod)
        if name in seen:
            continue
        info = published.get(name) or {}
        containers = spec.get("containers") or []
        seen[name] = Workload(
            name=name,
            namespace=namespace,
            labels=dict(metadata.get("labels") or {}),
            service_account=str(
                info.get("service_account") or spec.get("serviceAccountName") or "default"
            ),
            ports=tuple(
                sorted(
                    {
                        int(port["containerPort"])
                        for container in containers
                        if container.get("name") != "istio-proxy"
                        for port in container.get("ports") or []
                        if isinstance(port.get("containerPort"), int)
                    }
                )
            ),
            # The local mesh gives every workload a sidecar; a cluster's pods show theirs.
            sidecar=mesh is not None or _has_sidecar(pod),
            pod_url=info.get("pod_url"),
            service_url=_service_url(mesh, metadata.get("labels") or {}),
        )
    return sorted(seen.values(), key=lambda w: w.name)


def workload_name(pod: Mapping[str, Any]) -> str:
    """The Deployment's name for its pods (as Istio's telemetry names the workload): the owning
    ReplicaSet's name less its pod-template-hash; the pod's own name otherwise."""
    metadata = pod.get("metadata") or {}
    owners = [o for o in metadata.get("ownerReferences") or [] if o.get("kind") == "ReplicaSet"]
    template_hash = (metadata.get("labels") or {}).get("pod-template-hash")
    if owners:
        owner = str(owners[0].get("name") or "")
        if template_hash and owner.endswith(f"-{template_hash}"):
            return owner[: -len(template_hash) - 1]
        base, _, suffix = owner.rpartition("-")
        return base if base and suffix.isalnum() and not template_hash else owner
    return str(metadata.get("name") or "")


def _has_sidecar(pod: Mapping[str, Any]) -> bool:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    init = (pod.get("spec") or {}).get("initContainers") or []
    return "sidecar.istio.io/status" in annotations or any(
        c.get("name") == "istio-proxy" for c in [*containers, *init]
    )


def _service_url(mesh: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> str | None:
    for service in ((mesh or {}).get("services") or {}).values():
        selector = service.get("selector") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            return str(service.get("url")) if service.get("url") else None
    return None


# ------------------------------------------------------------------ one real request


def send(
    url: str,
    path: str = "",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One GET of ``url`` (at ``path`` when given, else the URL's own path); a reset, a refusal
    or a timeout is an answer too (no status)."""
    parts = urlsplit(url)
    target = path or ((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        connection.request("GET", target, headers=dict(headers or {}))
        response = connection.getresponse()
        body = response.read(200).decode("utf-8", "replace").strip()
        # Envoy's own refusals say why in a short body; an application's page is not shown.
        detail = body if response.status in (401, 403, 503) and len(body) < 80 else ""
        return Answer(response.status, detail)
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, type(error).__name__ + (f": {error}" if str(error) else ""))
    finally:
        connection.close()


def needs(arguments: Mapping[str, Any]) -> list[Access]:
    """Listing Pods in the namespace, and the security.istio.io policies there and in the root
    namespace. (Pods of other namespaces a policy names are read when allowed, else those
    names are not judged.)"""
    request = check_request(arguments)
    namespaces = dict.fromkeys((request.namespace, request.root_namespace))
    access = on(POD, ["list"], request.namespace)
    for kind in POLICY_KINDS:
        for namespace in namespaces:
            access += on(kind, ["list"], namespace)
    return access
