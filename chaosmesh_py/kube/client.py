"""Kubernetes access through the ``kubernetes`` client (this package is its only importer).

Credentials resolve as chaostoolkit-kubernetes resolves them (``chaosmesh_py.kube.credentials``).
A certificate that fails verification raises ``Untrusted`` at once, never retried: another
attempt meets the same certificate.

Errors become the project's tree (``chaosmesh_py.errors``). Writes go through ``update``, which
re-reads after any failure instead of trusting it: a dropped connection may hide a write that
landed, so the next plan is computed from what the server holds, never from a guess.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from chaosmesh_py.errors import (
    ApiError,
    ConflictPersisted,
    Forbidden,
    NotFound,
    Rejected,
    Unauthorized,
    Unavailable,
    Untrusted,
    shorten,
)
from chaosmesh_py.kube import credentials

Plan = Callable[[dict[str, Any]], dict[str, Any] | None]

MERGE_PATCH = "application/merge-patch+json"
# Who our writes are from, as a cluster's managedFields name them: what tells a change of ours
# from another writer's (``chaosmesh_py.engine.vanished``).
FIELD_MANAGER = "chaosmesh"
# Where a local mesh (chaosmesh_py.localmesh) publishes what its clients need to know about its
# data plane: an ordinary ConfigMap, JSON under one key. A cluster has none (404), or does not
# let us read it (403): either way, not a local mesh.
LOCAL_MESH_CONFIG_MAP = ("istio-system", "chaosmesh-local-mesh")
LOCAL_MESH_KEY = "mesh.json"


_local_mesh_by_host: dict[str, dict[str, Any] | None] = {}


@dataclass(frozen=True)
class ResourceKind:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def resource(self) -> str:
        """``virtualservices.networking.istio.io``, as RBAC and error messages name it (a core
        kind by its plural alone: ``configmaps``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str, name: str = "") -> str:
        """The object's URL path (its collection's without ``name``; every namespace's without
        ``namespace`` either): core kinds (group "") live under ``/api``, every other group
        under ``/apis``."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if not namespace and not name:
            return f"{root}/{self.plural}"
        return f"{root}/namespaces/{namespace}/{self.plural}" + (f"/{name}" if name else "")


CONFIG_MAP = ResourceKind("", "v1", "configmaps", "ConfigMap")
LEASE = ResourceKind("coordination.k8s.io", "v1", "leases", "Lease")
SERVICE = ResourceKind("", "v1", "services", "Service")
# The workload kinds: what chaostoolkit-kubernetes' pod actions and probes read and delete, and
# what an upstream fault checks its workload selector against (pods by labels).
POD = ResourceKind("", "v1", "pods", "Pod")
ENDPOINTS = ResourceKind("", "v1", "endpoints", "Endpoints")
DEPLOYMENT = ResourceKind("apps", "v1", "deployments", "Deployment")


def virtual_service_kind(version: str = "v1") -> ResourceKind:
    """Istio serves v1 since 1.22; older clusters need "v1beta1"."""
    return ResourceKind("networking.istio.io", version, "virtualservices", "VirtualService")


@dataclass(frozen=True)
class ResourceRef:
    kind: ResourceKind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for ``Kube.update``: how long to keep trying before giving up with an error."""

    max_conflicts: int = 20
    max_transient: int = 6
    first_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    max_retry_after_s: float = 5.0
    request_timeout_s: tuple[float, float] = (5.0, 30.0)  # connect, read


@dataclass(frozen=True)
class Outcome:
    """The resource as the server holds it after ``update``, and whether our write is in it."""

    resource: dict[str, Any]
    wrote: bool
    attempts: int
    # 409s: another writer changed the object between our read and our write (each one
    # re-read and re-planned); and every read after the first (after a 409 or a lost answer).
    conflicts: int = 0
    rereads: int = 0


class Kube:
    """Reads and writes Istio resources through one isolated ApiClient."""

    def __init__(self, api_client: Any, retry: RetryPolicy | None = None) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.retry = retry or RetryPolicy()
        self._custom = client.CustomObjectsApi(api_client)

    @classmethod
    def connect(cls, secrets: Mapping[str, Any] | None = None) -> Kube:
        return cls(credentials.api_client(secrets or {}))

    @classmethod
    def at(cls, host: str, *, token: str | None = None, ca_file: str | None = None) -> Kube:
        """A client for the API at ``host`` without a kubeconfig (the local mesh reaching its
        own API server): a bearer ``token`` if given, TLS verified against ``ca_file``."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = host
        configuration.retries = False
        if ca_file is not None:
            configuration.ssl_ca_cert = ca_file
        if token is not None:
            configuration.api_key["BearerToken"] = token
            configuration.api_key_prefix["BearerToken"] = "Bearer"
        return cls(client.ApiClient(configuration))

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def get(self, ref: ResourceRef) -> dict[str, Any]:
        kind = ref.kind
        if not kind.group:
            return self._core("get", ref, "GET")
        return self._call(
            "get",
            ref,
            lambda: self._custom.get_namespaced_custom_object(
                kind.group,
                kind.version,
                ref.namespace,
                kind.plural,
                ref.name,
                _request_timeout=self.retry.request_timeout_s,
            ),
        )

    def read(self, ref: ResourceRef) -> dict[str, Any]:
        """``get``, retried like ``update``'s reads on 429, 5xx and lost connections."""
        transient = 0
        while True:
            try:
                return self.get(ref)
            except Unavailable as error:
                transient += 1
                if transient > self.retry.max_transient:
                    raise
                time.sleep(self.backoff_s(transient, error.retry_after_s))

    def list(
        self, kind: ResourceKind, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace``, or in all namespaces when None; only those
        ``label_selector`` (Kubernetes' syntax: ``app=reviews,version=v1``) selects, if given."""
        ref = ResourceRef(kind, namespace or "", "")
        timeout = self.retry.request_timeout_s
        if not kind.group:
            query = "?" + urlencode({"labelSelector": label_selector}) if label_selector else ""
            return list(self._core("list", ref, "GET", query=query).get("items") or [])
        if namespace is None:
            answer = self._call(
                "list",
                ref,
                lambda: self._custom.list_cluster_custom_object(
                    kind.group,
                    kind.version,
                    kind.plural,
                    label_selector=label_selector,
                    _request_timeout=timeout,
                ),
            )
        else:
            answer = self._call(
                "list",
                ref,
                lambda: self._custom.list_namespaced_custom_object(
                    kind.group,
                    kind.version,
                    namespace,
                    kind.plural,
                    label_selector=label_selector,
                    _request_timeout=timeout,
                ),
            )
        return list(answer.get("items") or [])

    def watch(
        self, ref: ResourceRef, resource_version: str, timeout_s: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The changes to one object of a custom kind after ``resource_version``, as the API
        streams them: ``(type, object)`` with type ADDED, MODIFIED or DELETED, for at most
        ``timeout_s`` seconds (the server ends the stream then). A version the server no
        longer remembers raises ConflictPersisted with status 410: read the object again and
        watch from its version. Errors translate as for every call."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        kind = ref.kind
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self._custom.list_namespaced_custom_object,
                kind.group,
                kind.version,
                ref.namespace,
                kind.plural,
                field_selector=f"metadata.name={ref.name}",
                resource_version=resource_version,
                timeout_seconds=timeout_s,
                _request_timeout=(self.retry.request_timeout_s[0], timeout_s + 10),
            ):
                kind_of_event = str(event.get("type"))
                body = event.get("raw_object") or event.get("object")
                if kind_of_event == "ERROR":
                    status = int((body or {}).get("code") or 0)
                    message = str((body or {}).get("message") or "watch error")
                    if status == 410:
                        raise ConflictPersisted(f"watch {ref}: {message}", 410)
                    raise ApiError(f"watch {ref}: {message}", status)
                if isinstance(body, dict):
                    yield kind_of_event, body
        except ApiException as error:
            if int(error.status or 0) == 410:
                raise ConflictPersisted(f"watch {ref}: too old resource version", 410) from None
            raise _translate(error, "watch", ref, self.host) from None
        except HTTPError as error:
            raise Unavailable(
                f"watch {ref} at {self.host}: connection failed ({type(error).__name__})"
            ) from None
        finally:
            stream.stop()  # type: ignore[no-untyped-call]

    def patch(self, ref: ResourceRef, patch: dict[str, Any]) -> dict[str, Any]:
        """One JSON merge patch; a ``metadata.resourceVersion`` in it is a precondition."""
        kind = ref.kind
        if not kind.group:
            return self._core("patch", ref, "PATCH", patch, MERGE_PATCH)
        return self._call(
            "patch",
            ref,
            lambda: self._custom.patch_namespaced_custom_object(
                kind.group,
                kind.version,
                ref.namespace,
                kind.plural,
                ref.name,
                patch,
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
                _request_timeout=self.retry.request_timeout_s,
            ),
        )

    def create(self, ref: ResourceRef, body: dict[str, Any]) -> dict[str, Any]:
        """One create; 409 (already exists) raises ConflictPersisted."""
        kind = ref.kind
        if not kind.group:
            return self._core("create", ref, "POST", body)
        return self._call(
            "create",
            ref,
            lambda: self._custom.create_namespaced_custom_object(
                kind.group,
                kind.version,
                ref.namespace,
                kind.plural,
                body,
                field_manager=FIELD_MANAGER,
                _request_timeout=self.retry.request_timeout_s,
            ),
        )

    def delete(self, ref: ResourceRef, uid: str, resource_version: str) -> dict[str, Any]:
        """One delete of exactly the object read: the server refuses (409) if its uid or
        resourceVersion differ, i.e. if it was replaced or changed since."""
        from kubernetes import client

        kind = ref.kind
        if not kind.group:
            preconditions = {"uid": uid, "resourceVersion": resource_version}
            return self._core("delete", ref, "DELETE", {"preconditions": preconditions})
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid, resource_version=resource_version)
        )
        return self._call(
            "delete",
            ref,
            lambda: self._custom.delete_namespaced_custom_object(
                kind.group,
                kind.version,
                ref.namespace,
                kind.plural,
                ref.name,
                body=options,
                _request_timeout=self.retry.request_timeout_s,
            ),
        )

    def ensure_created(
        self, ref: ResourceRef, body: dict[str, Any], mine: Callable[[dict[str, Any]], bool]
    ) -> Outcome:
        """Create ``body`` unless an object ``mine`` accepts is already there (a retried or
        repeated create); raise ConflictPersisted when another object holds the name.

        A lost answer is followed by a read, never by a blind second create.
        """
        transient = attempts = 0
        while True:
            attempts += 1
            try:
                try:
                    return Outcome(self.create(ref, body), wrote=True, attempts=attempts)
                except ConflictPersisted:
                    existing = self.get(ref)
                    if mine(existing):
                        return Outcome(existing, wrote=False, attempts=attempts)
                    raise ConflictPersisted(
                        f"{ref} already exists and is not this run's: left as it is", 409
                    ) from None
            except Unavailable as error:
                transient += 1
                if transient > self.retry.max_transient:
                    raise
                time.sleep(self.backoff_s(transient, error.retry_after_s))
                try:
                    existing = self.get(ref)
                except NotFound:
                    continue
                except Unavailable:
                    continue
                if mine(existing):
                    return Outcome(existing, wrote=True, attempts=attempts)
                raise ConflictPersisted(f"{ref} exists and is not this run's", 409) from None

    def delete_if(
        self,
        ref: ResourceRef,
        wanted: Callable[[dict[str, Any]], bool],
        current: dict[str, Any] | None = None,
    ) -> Outcome:
        """Delete the object while ``wanted`` says so of it as the server holds it: read, judge,
        delete with the uid and resourceVersion just judged; a 409 (replaced or changed since)
        judges again. ``wrote`` tells whether this call deleted it. NotFound when it is gone
        from the first read."""
        conflicts = transient = attempts = 0
        sent = False
        while True:
            attempts += 1
            try:
                if current is None:
                    current = self.get(ref)
                if not wanted(current):
                    return Outcome(current, False, attempts, conflicts, attempts - 1)
                metadata = current["metadata"]
                try:
                    gone = self.delete(ref, metadata["uid"], metadata["resourceVersion"])
                except Unavailable:
                    sent = True
                    raise
                return Outcome(gone, True, attempts, conflicts, attempts - 1)
            except NotFound:
                if sent:
                    # Our delete whose answer was lost, landed.
                    return Outcome(current or {}, wrote=True, attempts=attempts)
                raise
            except ConflictPersisted as error:
                current = None
                conflicts += 1
                if conflicts > self.retry.max_conflicts:
                    raise ConflictPersisted(
                        f"{ref} changed under us on {conflicts} attempts; try again later", 409
                    ) from error
            except Unavailable as error:
                current = None
                transient += 1
                if transient > self.retry.max_transient:
                    raise
                time.sleep(self.backoff_s(transient, error.retry_after_s))

    def local_mesh(self) -> dict[str, Any] | None:
        """What a local mesh serving this API publishes about its data plane (where Envoy's
        admin is, its ``instance_id``, its workloads); None on a cluster.

        Read from the ConfigMap ``LOCAL_MESH_CONFIG_MAP`` with an ordinary GET: a 404 or 403
        only means "not a local mesh". Asked once per API server and process: the answer does
        not change while the server runs.
        """
        if self.host not in _local_mesh_by_host:
            _local_mesh_by_host[self.host] = self._read_local_mesh()
        return _local_mesh_by_host[self.host]

    def _read_local_mesh(self) -> dict[str, Any] | None:
        # A plain GET through the client's own connection pool (TLS and credentials as for
        # every call), not CoreV1Api: client 37 builds that class on first use, ~250 ms that a
        # run's first activity would spend (bench/first_call.py).
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        namespace, name = LOCAL_MESH_CONFIG_MAP
        headers = {
            setting["key"]: setting["value"]
            for setting in self.api_client.configuration.auth_settings().values()
            if setting.get("in") == "header" and setting.get("value")
        }
        headers["Accept"] = "application/json"
        try:
            response = self.api_client.rest_client.request(
                "GET",
                f"{self.host}/api/v1/namespaces/{namespace}/configmaps/{name}",
                headers=headers,
                _request_timeout=(2, 5),
            )
        except (ApiException, HTTPError):
            return None
        if response.status != 200:
            return None
        # Client 36 reads the body eagerly into .data; 37 on read().
        body = response.data if response.data is not None else response.read()
        try:
            info = json.loads(json.loads(body)["data"][LOCAL_MESH_KEY])
        except (KeyError, TypeError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def update(
        self, ref: ResourceRef, plan: Plan, current: dict[str, Any] | None = None
    ) -> Outcome:
        """Read, plan, write with a resourceVersion precondition; repeat until the plan is empty.

        ``plan`` gets the object as the server holds it and returns the merge patch still
        needed, or None when the object is already as wanted. It must be idempotent: after a
        failure whose outcome is unknown, the next round's plan sees what actually landed.
        A 409 (someone else wrote meanwhile) re-reads at once; 429, 5xx and lost connections
        re-read after a bounded backoff. Errors that another attempt cannot fix raise at once.
        ``current``, when the caller has just listed the object, saves the first read: a stale
        copy costs one 409 and a re-read, never a wrong write.
        """
        conflicts = transient = attempts = reads = 0
        sent = False
        most_attempts = self.retry.max_conflicts + self.retry.max_transient + 2

        def outcome(resource: dict[str, Any], wrote: bool) -> Outcome:
            return Outcome(resource, wrote, attempts, conflicts, max(0, reads - 1))

        while attempts < most_attempts:
            attempts += 1
            try:
                if current is None:
                    reads += 1
                    current = self.get(ref)
                elif attempts == 1:
                    reads += 1  # the caller's read counts as the first
                patch = plan(current)
                if patch is None:
                    return outcome(current, sent)
                try:
                    current = self.patch(ref, patch)
                except Unavailable:
                    sent = True  # a lost answer may have landed; the next read decides
                    raise
                sent = True
                if plan(current) is None:
                    return outcome(current, True)
            except ConflictPersisted as error:
                current = None
                conflicts += 1
                if conflicts > self.retry.max_conflicts:
                    raise ConflictPersisted(
                        f"{ref} changed under us on {conflicts} attempts; another writer keeps "
                        "updating it. Nothing of ours is half-written: try again later.",
                        409,
                    ) from error
            except Unavailable as error:
                current = None
                transient += 1
                if transient > self.retry.max_transient:
                    raise
                time.sleep(self.backoff_s(transient, error.retry_after_s))
        raise ApiError(f"{ref}: still not as planned after {attempts} writes; giving up")

    def backoff_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """How long to wait before retry number ``attempt`` (from 1) after a lost answer: the
        server's Retry-After when it gave one, within this client's bounds."""
        if retry_after_s is not None:
            return float(min(retry_after_s, self.retry.max_retry_after_s))
        # Exponential with jitter, so several runners do not retry in lockstep.
        delay: float = self.retry.first_backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1)
        return min(delay, self.retry.max_backoff_s)

    def _core(
        self,
        verb: str,
        ref: ResourceRef,
        method: str,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
        *,
        query: str = "",
    ) -> dict[str, Any]:
        """One request for a core kind (a ConfigMap): CustomObjectsApi only reaches ``/apis``.

        Through the client's own REST layer (its TLS, credentials and connection pool); client
        36 raises ApiException for an error status itself, 37 returns it: both end in
        ``_call``'s translation.
        """
        from kubernetes.client.exceptions import ApiException

        name = ref.name if method != "POST" else ""
        url = self.host + ref.kind.path(ref.namespace, name) + query
        headers = {
            setting["key"]: setting["value"]
            for setting in self.api_client.configuration.auth_settings().values()
            if setting.get("in") == "header" and setting.get("value")
        }
        headers["Accept"] = "application/json"
        if body is not None:
            headers["Content-Type"] = content_type

        def call() -> dict[str, Any]:
            response = self.api_client.rest_client.request(
                method,
                url,
                headers=headers,
                body=body,
                _request_timeout=self.retry.request_timeout_s,
            )
            data = response.data if response.data is not None else response.read()
            if not 200 <= response.status <= 299:
                error = ApiException(status=response.status, reason=response.reason)
                error.body = data
                error.headers = response.headers
                raise error
            answer: dict[str, Any] = json.loads(data)
            return answer

        return self._call(verb, ref, call)

    def _call(self, verb: str, ref: ResourceRef, call: Callable[[], Any]) -> dict[str, Any]:
        """Run one client call, translating its failures into the project's errors."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            answer: dict[str, Any] = call()
            return answer
        except ApiException as error:
            if (problem := _certificate_problem(error)) is not None:
                raise _untrusted(self.host, problem) from None
            raise _translate(error, verb, ref, self.host) from None
        except AttributeError as error:
            # Client 36 turns a TLS failure into an ApiException without a body, then fails
            # decoding that body: the error that counts is the one it was handling.
            original = error.__context__
            if not isinstance(original, ApiException):
                raise
            if (problem := _certificate_problem(original)) is not None:
                raise _untrusted(self.host, problem) from None
            raise _translate(original, verb, ref, self.host) from None
        except HTTPError as error:
            if (problem := _certificate_problem(error)) is not None:
                raise _untrusted(self.host, problem) from None
            raise Unavailable(
                f"{verb} {ref} at {self.host}: connection failed ({type(error).__name__}: "
                f"{shorten(str(error))})"
            ) from None


def refuses_connections(url: str) -> bool:
    """Nothing listens at ``url``'s address any more (connection refused): what a local mesh
    that was taken down looks like. Any other failure (a timeout, no route) is no answer."""
    parsed = urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "localhost", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def _certificate_problem(error: BaseException) -> str | None:
    """Why the server's certificate failed verification, if that is what ``error`` comes from.

    The client reports it as an ApiException with status 0 (and urllib3 as an SSLError), the
    cause only in the chain: the ssl module's verification error, or urllib3's own hostname
    check. Other TLS failures (a handshake cut short) may be transient and are not matched.
    """
    import ssl

    from urllib3.util.ssl_match_hostname import CertificateError

    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current.verify_message or current.reason or current)
        if isinstance(current, CertificateError):
            return str(current)
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


def _untrusted(host: str, problem: str) -> Untrusted:
    reason = shorten(problem).rstrip(".")
    return Untrusted(
        f"the API server's certificate at {host} is not trusted: {reason}; set "
        "KUBERNETES_CA_CERT_FILE to the CA that signed it (with a kubeconfig: the cluster's "
        "certificate-authority), or KUBERNETES_VERIFY_SSL=false to skip the check, at the "
        "cost of not knowing who answers"
    )


def _translate(error: Any, verb: str, ref: ResourceRef, host: str) -> ApiError:
    """An ApiException as one of the project's errors, with a message that says what to do."""
    status = int(error.status or 0)
    message, reason = _remote_message(error)
    where = f"in namespace {ref.namespace!r}" if ref.namespace else "across all namespaces"
    if status == 401:
        return Unauthorized(
            f"unauthorized: the API server at {host} rejected the credentials ({message})",
            status,
        )
    if status == 403:
        return Forbidden(
            f"forbidden: needs {verb} on {ref.kind.resource} {where} ({message})", status
        )
    if status == 404:
        target = f"{ref}" if ref.name else f"{ref.kind.kind} {where}"
        if not ref.kind.group.endswith("istio.io"):
            return NotFound(f"{target} not found ({message})", status)
        return NotFound(
            f"{target} not found ({message}); if the kind itself is missing, check that Istio's "
            f"CRDs serve {ref.kind.group}/{ref.kind.version}",
            status,
        )
    if status == 409:
        return ConflictPersisted(f"{verb} {ref}: conflict ({message})", status)
    if status in (400, 422):
        return Rejected(f"{verb} {ref} rejected ({reason or status}): {message}", status)
    if status == 429 or status >= 500 or status == 0:
        return Unavailable(
            f"{verb} {ref}: API unavailable ({status}: {message})", status, _retry_after(error)
        )
    return ApiError(f"{verb} {ref}: HTTP {status}: {message}", status)


def _remote_message(error: Any) -> tuple[str, str]:
    try:
        body = json.loads(error.body or "{}")
        return shorten(str(body.get("message") or error.reason)), str(body.get("reason") or "")
    except (ValueError, AttributeError):
        return shorten(str(error.body or error.reason)), ""


def _retry_after(error: Any) -> float | None:
    value = (error.headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def load_client() -> None:
    """Import the kubernetes client now, not inside the first request that needs it.

    ``import kubernetes`` imports the whole package (config, watch, stream, dynamic, …) and
    client 37 loads ``CustomObjectsApi`` on first use: ~100 ms together, which a run's first
    activity would otherwise spend (and its fault would land that much later). The activity
    modules call this when imported, as Chaos Toolkit validates the experiment before the run.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException  # noqa: F401

    client.CustomObjectsApi  # noqa: B018 (the attribute access is the load)
