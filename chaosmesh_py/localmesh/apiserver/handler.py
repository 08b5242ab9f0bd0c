"""The HTTP layer: parse a request, apply injected faults, authorize, route to the store, answer.

Per request: authenticate (401) -> read the body (413 over 3 MiB, as kube-apiserver) ->
injected fault (delay; status answer or dropped connection before the work; a concurrent writer)
-> route (404/405) -> authorize (403) -> the store -> JSON answer with `Warning` headers (or, for
`drop="after"`, no answer at all). Watches (`?watch=true`) stream newline-delimited events with
chunked encoding.

Control endpoints for tests in other processes live under `/chaosmesh/v1/` (not faulted, not
logged): `GET|POST|DELETE /chaosmesh/v1/api-faults`, `POST /chaosmesh/v1/reset`. They are
authenticated like every other path, and authorized as non-resource URLs (a rule's
`non_resource_urls`). What a local mesh tells its clients goes through the Kubernetes API itself
(a ConfigMap), never through a private path.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import yaml

from chaosmesh_py.localmesh.apiserver import discovery, errors, reviews, tables, workloads
from chaosmesh_py.localmesh.apiserver.errors import ApiError, JsonDict
from chaosmesh_py.localmesh.apiserver.faults import ApiFault
from chaosmesh_py.localmesh.apiserver.patch import apply_patch, decode_patch, patch_type
from chaosmesh_py.localmesh.apiserver.rbac import User
from chaosmesh_py.localmesh.apiserver.rbac_objects import Request
from chaosmesh_py.localmesh.apiserver.resources import NAMESPACE, ResourceType
from chaosmesh_py.localmesh.apiserver.selector import (
    Predicate,
    field_selector,
    label_selector,
    required_name,
)
from chaosmesh_py.localmesh.apiserver.store import WriteOptions

if TYPE_CHECKING:
    from chaosmesh_py.localmesh.apiserver.server import ApiServer

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/chaosmesh/v1/"
DROPPED = 0  # the status recorded for a request answered by closing the connection
# kube-apiserver's limit on a request body (apiserver's MaxRequestBodyBytes): 413 beyond it.
MAX_BODY_BYTES = 3 * 1024 * 1024
# A refused body up to this size is read and dropped, so the client can read the answer; a
# bigger one closes the connection instead.
_DISCARD_BYTES = 64 * 1024 * 1024


class RequestRecord(NamedTuple):
    """One served HTTP request: method, URL path (no query), status (0 = connection dropped)."""

    method: str
    path: str
    status: int


@dataclass(frozen=True)
class Target:
    """What a resource URL names: a collection (name None) or one object, maybe a subresource."""

    rt: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass(frozen=True)
class Response:
    """An answer; `encoded` is a document already serialised (the OpenAPI ones, built once);
    `cache_control` replaces the default `no-cache, private`."""

    status: int
    document: JsonDict
    warnings: tuple[str, ...] = ()
    encoded: bytes | None = None
    cache_control: str | None = None


def _query_flag(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _is_watch(query: dict[str, list[str]]) -> bool:
    return (_query_flag(query, "watch") or "").lower() in ("1", "t", "true")


class ApiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the kubernetes client's urllib3 pool expects
    api: ApiServer  # set on the subclass the server creates

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- one request -----------------------------------------------------------------------

    def _handle(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        try:
            # Authentication comes before the body is looked at, as kube-apiserver's filters do.
            user = self._impersonated(
                self.api.authenticator.user(self.headers.get("Authorization"))
            )
        except ApiError as error:
            self._skip_body()
            self._answer_error(path, error)
            return
        try:
            body = self._read_body()
        except ApiError as error:
            self._answer_error(path, error)
            return
        if path.startswith(CONTROL_PREFIX):
            self._send(self._control(path, body, user))
            return
        if _is_watch(query):  # streams until the client leaves: never "in flight" for wait_idle
            self._handle_api(path, query, body, user)
            return
        with self.api.handling():
            self._handle_api(path, query, body, user)

    def _impersonated(self, user: User) -> User:
        return reviews.impersonated(self.api, user, self.headers.get("Impersonate-User"))

    def _review(self, plural: str, body: bytes, user: User) -> Response:
        if self.command != "POST":
            raise errors.method_not_allowed()
        content_type = self.headers.get("Content-Type") or ""
        return Response(201, reviews.review(self.api, user, plural, body, content_type))

    def _content_length(self) -> int:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise errors.bad_request("invalid Content-Length")
        return length

    def _read_body(self) -> bytes:
        """The request body; 413 beyond MAX_BODY_BYTES (the body is then dropped unread)."""
        length = self._content_length()
        if length > MAX_BODY_BYTES:
            self._skip_body()
            raise errors.too_large(MAX_BODY_BYTES)
        return self.rfile.read(length) if length else b""

    def _skip_body(self) -> None:
        """Drop a body we will not serve, so the connection stays usable (or close it)."""
        try:
            length = self._content_length()
        except ApiError:
            return
        if length > _DISCARD_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _handle_api(self, path: str, query: dict[str, list[str]], body: bytes, user: User) -> None:
        fault = self.api.faults.take(self.command, path)
        if fault is not None:
            if fault.delay_s:
                self.api.stopping.wait(fault.delay_s)
            if fault.status is not None:
                self._answer_error(path, fault.error())
                return
            if fault.drop == "before":
                self._drop(path)
                return
            if fault.concurrent_write is not None:
                try:
                    fault.concurrent_write(self.api)
                except Exception as error:  # a broken test writer must not look like a drop
                    log.exception("the injected concurrent write failed")
                    failure = f"the injected concurrent write failed: {error!r}"
                    self._answer_error(path, ApiError(500, "InternalError", failure))
                    return
        try:
            response = self._serve(path, query, body, user)
        except ApiError as error:
            if fault is not None and fault.drop == "after":
                self._drop(path)
            else:
                self._answer_error(path, error)
            return
        except Exception as error:
            log.exception("internal error serving %s %s", self.command, path)
            self._answer_error(
                path, ApiError(500, "InternalError", f"Internal error occurred: {error}")
            )
            return
        if response is None:  # a watch, already streamed
            return
        if fault is not None and fault.drop == "after":
            self._drop(path)
            return
        # Logged before answering: a client that got its answer finds its request in the log.
        self.api.request_log.append(RequestRecord(self.command, path, response.status))
        self._send(response)

    def _serve(
        self, path: str, query: dict[str, list[str]], body: bytes, user: User
    ) -> Response | None:
        parts = [p for p in path.split("/") if p]
        registry = self.api.registry
        document: JsonDict | None
        match parts:
            case ["version"]:
                document = discovery.KUBERNETES_VERSION
            case ["api"]:
                document = discovery.api_versions(urlsplit(self.api.url).netloc)
            case ["api", version]:
                document = discovery.resource_list(registry, "", version)
            case ["apis"]:
                document = discovery.api_group_list(registry)
            case ["apis", group]:
                document = discovery.api_group(registry, group)
            case ["apis", group, version]:
                document = discovery.resource_list(registry, group, version)
            case ["api", version, *rest]:
                return self._resource(self._target("", version, rest), user, query, body)
            case [
                "apis",
                reviews.GROUP,
                "v1",
                ("selfsubjectaccessreviews" | "selfsubjectrulesreviews") as plural,
            ]:
                return self._review(plural, body, user)
            case ["apis", group, version, *rest]:
                return self._resource(self._target(group, version, rest), user, query, body)
            case ["openapi", *rest]:
                return self._openapi(rest, query)
            case _:
                raise errors.path_not_found()
        if document is None:
            raise errors.path_not_found()
        if self.command != "GET":
            raise errors.method_not_allowed()
        return Response(200, document)

    def _openapi(self, rest: list[str], query: dict[str, list[str]]) -> Response:
        """`/openapi/v2` (JSON only: a protobuf-only Accept is 406), `/openapi/v3` and its
        group-version documents (their `?hash=` is ignored: documents never change)."""
        openapi = self.api.openapi
        encoded: bytes | None = None
        document: JsonDict = {}
        cache: str | None = None
        match rest:
            case ["v2"]:
                accept = self.headers.get("Accept") or "*/*"
                if not any(t in accept for t in ("application/json", "*/*")):
                    raise errors.not_acceptable(accept)
                encoded = openapi.v2_document
            case ["v3"]:
                document = openapi.v3_index()
            case ["v3", *key]:
                encoded = openapi.v3_document("/".join(key))
                if encoded is None:
                    raise errors.path_not_found()
                if _query_flag(query, "hash"):
                    # A URL naming its content's hash never changes, so clients may keep it,
                    # as kube-apiserver tells them: kubectl then reads it from its disk cache.
                    cache = "public, immutable, max-age=31536000"
            case _:
                raise errors.path_not_found()
        if self.command != "GET":
            raise errors.method_not_allowed()
        return Response(200, document, encoded=encoded, cache_control=cache)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        registry = self.api.registry
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            nested = registry.by_plural(group, version, rest[2])
            if nested is not None and nested.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = registry.by_plural(group, version, rest[0]) if rest else None
        if rt is None or len(rest) > 3 or (namespace is None and rt.namespaced and len(rest) > 1):
            raise errors.path_not_found()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and not (
            (subresource == "status" and rt.has_status) or (subresource == "scale" and rt.scale)
        ):
            raise errors.path_not_found()
        return Target(rt, version, namespace, name, subresource)

    def _resource(
        self, target: Target, user: User, query: dict[str, list[str]], body: bytes
    ) -> Response | None:
        rt, store = target.rt, self.api.store
        watch = _is_watch(query)
        verb = {
            ("GET", False): "watch" if watch else "list",
            ("GET", True): "get",
            ("POST", False): "create",
            ("PUT", True): "update",
            ("PATCH", True): "patch",
            ("DELETE", True): "delete",
            ("DELETE", False): "deletecollection",
        }.get((self.command, target.name is not None))
        if verb is None:
            raise errors.method_not_allowed()
        resource = f"{rt.plural}/{target.subresource}" if target.subresource else rt.plural
        scope = target.name if rt is NAMESPACE else target.namespace  # RBAC sees a namespace's own
        named = target.name
        if verb in ("list", "watch") and named is None:
            # As kube-apiserver: a list or watch of one name (fieldSelector metadata.name=x)
            # is authorized as a request for that object, so resourceNames can grant it.
            named = required_name(_query_flag(query, "fieldSelector"))
        asked = Request(verb, rt.group, resource, scope, named)
        if not self.api.authorizes(user, asked):
            raise errors.forbidden(
                user.name, verb, resource, rt.group, namespace=scope, name=target.name
            )
        options = self._write_options(query, self.headers.get("User-Agent"))
        version, namespace, name = target.version, target.namespace, target.name or ""
        if target.subresource == "scale":
            return self._scale(target, verb, body, options)
        if verb in ("list", "watch", "deletecollection"):
            predicate = self._predicate(query)
            if verb == "watch":
                self._watch(target, predicate, query)
                return None
            listed = store.list(rt, version, namespace, predicate)
            if verb == "deletecollection":
                for item in listed["items"]:
                    meta = item["metadata"]
                    store.delete(rt, version, meta.get("namespace"), meta["name"])
            elif self._wants_table():
                revision = listed["metadata"]["resourceVersion"]
                return Response(
                    200, tables.table(tables.columns_of(rt, version), listed["items"], revision)
                )
            return Response(200, listed)
        if verb == "get":
            found = store.get(rt, version, namespace, name)
            if self._wants_table():
                revision = found["metadata"]["resourceVersion"]
                return Response(
                    200, tables.table(tables.columns_of(rt, version), [found], revision)
                )
            return Response(200, found)
        if verb == "delete":
            preconditions = (_decode_object(body, "") or {}).get("preconditions") if body else None
            return Response(200, store.delete(rt, version, namespace, name, preconditions))
        content_type = self.headers.get("Content-Type") or "application/json"
        if verb == "patch":
            kind = patch_type(content_type, custom_resource=rt.custom)
            result = store.patch(
                rt,
                version,
                namespace,
                name,
                decode_patch(kind, body),
                kind=kind,
                options=options,
                subresource=target.subresource,
            )
        elif verb == "create":
            result = store.create(
                rt, version, namespace, _decode_object(body, content_type), options
            )
        else:
            obj = _decode_object(body, content_type)
            result = store.update(
                rt,
                version,
                namespace,
                name,
                obj,
                options=options,
                subresource=target.subresource,
            )
        return Response(201 if result.created else 200, result.object, result.warnings)

    def _scale(self, target: Target, verb: str, body: bytes, options: WriteOptions) -> Response:
        """A Deployment's or ReplicaSet's Scale: read, patched (``kubectl scale``) or replaced."""
        if verb not in ("get", "patch", "update"):
            raise errors.method_not_allowed()
        content_type = self.headers.get("Content-Type") or "application/json"
        change = None
        if verb == "patch":
            kind = patch_type(content_type, custom_resource=False)
            patch = decode_patch(kind, body)
            change = lambda scale: apply_patch(kind, scale, patch, None)  # noqa: E731
        elif verb == "update":
            written = _decode_object(body, content_type)
            change = lambda scale: written  # noqa: E731
        answer = workloads.scale(
            self.api.store,
            target.rt,
            version=target.version,
            namespace=target.namespace,
            name=target.name or "",
            change=change,
            options=options,
        )
        return Response(200, answer)

    def _wants_table(self) -> bool:
        """`kubectl get` asks for a Table (server-side printing) before plain JSON."""
        return tables.TABLE_MEDIA in (self.headers.get("Accept") or "")

    @staticmethod
    def _write_options(query: dict[str, list[str]], user_agent: str | None) -> WriteOptions:
        validation = _query_flag(query, "fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise errors.bad_request(
                f'fieldValidation: Unsupported value: "{validation}":'
                ' supported values: "Ignore", "Warn", "Strict"'
            )
        dry_run = _query_flag(query, "dryRun")
        if dry_run not in (None, "All"):
            raise errors.bad_request(
                f'dryRun: Unsupported value: "{dry_run}": supported values: "All"'
            )
        return WriteOptions(
            validation, dry_run == "All", _query_flag(query, "fieldManager"), user_agent
        )

    @staticmethod
    def _predicate(query: dict[str, list[str]]) -> Predicate | None:
        try:
            checks = [
                parse(text)
                for parse, text in (
                    (label_selector, _query_flag(query, "labelSelector")),
                    (field_selector, _query_flag(query, "fieldSelector")),
                )
                if text
            ]
        except ValueError as error:
            raise errors.bad_request(str(error)) from error
        return (lambda obj: all(check(obj) for check in checks)) if checks else None

    # -- watch -----------------------------------------------------------------------------

    def _watch(
        self, target: Target, predicate: Predicate | None, query: dict[str, list[str]]
    ) -> None:
        """Stream events after `resourceVersion` (or the current objects as ADDED, then events)."""
        store, rt = self.api.store, target.rt
        timeout_s = float(_query_flag(query, "timeoutSeconds") or 1800)
        since = _query_flag(query, "resourceVersion") or "0"
        self.api.request_log.append(RequestRecord(self.command, urlsplit(self.path).path, 200))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        columns = tables.columns_of(rt, target.version) if self._wants_table() else None

        def shown(obj: JsonDict) -> JsonDict:
            """The event's object: a one-row Table for `kubectl get -w`, else the object."""
            if columns is None:
                return obj
            return tables.table(columns, [obj], obj["metadata"]["resourceVersion"])

        def wanted(obj: JsonDict) -> bool:
            in_namespace = (
                target.namespace is None or obj["metadata"].get("namespace") == target.namespace
            )
            return in_namespace and (predicate is None or predicate(obj))

        with store.lock:
            if since == "0":
                listed = store.list(rt, target.version, target.namespace, predicate)["items"]
                pending = [{"type": "ADDED", "object": shown(item)} for item in listed]
                cursor = store.revision
            else:
                cursor = int(since)
                oldest = store.history[0].revision if store.history else store.revision + 1
                pending = []
                if cursor < store.revision and oldest > cursor + 1:
                    gone = ApiError(
                        410, "Expired", f"too old resource version: {cursor} ({oldest - 1})"
                    )
                    pending = [{"type": "ERROR", "object": gone.to_status()}]
                    timeout_s = 0
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                for event in pending:
                    self._write_chunk(json.dumps(event).encode() + b"\n")
                if time.monotonic() >= deadline or self.api.stopping.is_set():
                    break
                with store.changed:
                    store.changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                    fresh = [e for e in store.history if e.revision > cursor]
                cursor = fresh[-1].revision if fresh else cursor
                pending = [
                    {"type": e.type, "object": shown(store.present(rt, target.version, e.object))}
                    for e in fresh
                    if e.resource_type is rt and wanted(e.object)
                ]
            self._write_chunk(b"")
        except OSError:
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # -- answers ---------------------------------------------------------------------------

    def _control(self, path: str, body: bytes, user: User) -> Response:
        verb = self.command.lower()
        if not self.api.authorizes(user, Request(verb, path=path)):
            return Response(403, errors.forbidden_path(user.name, verb, path).to_status())
        try:
            match (self.command, path.removeprefix(CONTROL_PREFIX)):
                case ("GET", "api-faults"):
                    return Response(
                        200, {"items": [f.to_json() for f in self.api.faults.pending()]}
                    )
                case ("POST", "api-faults"):
                    fault = ApiFault.from_json(_decode_object(body, "application/json"))
                    self.api.inject(fault)
                    return Response(201, fault.to_json())
                case ("DELETE", "api-faults"):
                    self.api.clear_faults()
                    return Response(200, {"items": []})
                case ("POST", "reset"):
                    self.api.reset()
                    return Response(200, {})
            return Response(404, errors.path_not_found().to_status())
        except (ValueError, TypeError) as error:
            return Response(400, errors.bad_request(str(error)).to_status())
        except ApiError as error:
            return Response(error.status, error.to_status())

    def _answer_error(self, path: str, error: ApiError) -> None:
        retry_after = error.retry_after_s
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.api.request_log.append(RequestRecord(self.command, path, error.status))
        self._send(Response(error.status, error.to_status()), headers)

    def _drop(self, path: str) -> None:
        """Close the connection without a response (the client sees it reset mid-request)."""
        self.close_connection = True
        self.api.request_log.append(RequestRecord(self.command, path, DROPPED))

    def _send(self, response: Response, headers: dict[str, str] | None = None) -> None:
        payload = response.encoded
        if payload is None:
            payload = json.dumps(response.document, separators=(",", ":")).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", response.cache_control or "no-cache, private")
        for warning in response.warnings:
            self.send_header("Warning", "299 - " + json.dumps(warning))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _decode_object(body: bytes, content_type: str) -> Any:
    """Decode a JSON (or YAML) request body; 400 when unreadable or empty."""
    if not body:
        raise errors.bad_request("the request body is empty")
    if "protobuf" in content_type:
        # kubectl's typed clients (`kubectl create namespace`) send Kubernetes' protobuf
        # encoding; the double speaks JSON and YAML only, and says so (kubectl apply sends JSON).
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format ({content_type}) - accepted"
            " media types include: application/json, application/yaml",
        )
    try:
        if "yaml" in content_type:
            return yaml.safe_load(body.decode("utf-8"))
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as error:
        raise errors.bad_request(
            f"the body of the request could not be decoded: {error}"
        ) from error
