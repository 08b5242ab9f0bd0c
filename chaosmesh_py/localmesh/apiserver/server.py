"""`ApiServer`: the Kubernetes API double, served over real HTTP from a daemon thread.

HTTP by default; `tls=(certfile, keyfile)` serves HTTPS instead, so clients' certificate
verification can be tested against a real handshake.

It also offers direct access to the same store (`create`, `get`, `list`, `replace`, `patch`,
`delete`) for tests and the local mesh. Direct calls go through the same validation and
admission as HTTP requests, as an administrator, and are never faulted nor logged.
"""

from __future__ import annotations

import builtins
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from chaosmesh_py.localmesh.apiserver import rbac_objects
from chaosmesh_py.localmesh.apiserver.builtin import BUILTIN_TYPES
from chaosmesh_py.localmesh.apiserver.errors import ApiError, JsonDict
from chaosmesh_py.localmesh.apiserver.faults import ApiFault, FaultPlan
from chaosmesh_py.localmesh.apiserver.handler import ApiRequestHandler, RequestRecord
from chaosmesh_py.localmesh.apiserver.openapi import OpenApi
from chaosmesh_py.localmesh.apiserver.patch import PatchType, decode_patch, patch_type
from chaosmesh_py.localmesh.apiserver.rbac import Authenticator, Tokens, User
from chaosmesh_py.localmesh.apiserver.rbac_objects import Request
from chaosmesh_py.localmesh.apiserver.resources import (
    Registry,
    ResourceType,
    load_crds,
    permissive_istio_types,
)
from chaosmesh_py.localmesh.apiserver.store import Store, WatchEvent, WriteOptions
from chaosmesh_py.localmesh.apiserver.webhook import Webhook

# A client that connects and never completes the TLS handshake must not hold a thread forever.
_HANDSHAKE_TIMEOUT_S = 10.0


class _HttpServer(ThreadingHTTPServer):
    """Tracks open connections so `stop` can close idle keep-alive ones, and sets TCP_NODELAY.

    With `tls`, each connection's handshake runs in its own request thread (not in the accept
    loop, where one slow client would block every other); handshakes the client abandoned,
    typically because it did not trust the certificate, are recorded in `tls_rejections`.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[ApiRequestHandler],
        tls: ssl.SSLContext | None = None,
        tls_rejections: list[str] | None = None,
    ) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.tls = tls
        self.tls_rejections = tls_rejections if tls_rejections is not None else []
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # Without it each response waits ~40 ms for the client's delayed ACK (Nagle).
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.connections_lock:
            self.connections.add(connection)
        return connection, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        timeout = request.gettimeout()
        request.settimeout(_HANDSHAKE_TIMEOUT_S)
        try:
            # Detaches `request`: from here on the TLS socket owns the file descriptor (and
            # closes it itself when the handshake fails).
            secure = self.tls.wrap_socket(request, server_side=True)
        except ssl.SSLError as error:
            self.tls_rejections.append(error.reason or str(error))
            return
        except OSError:
            return  # the client went away mid-handshake
        secure.settimeout(timeout)
        with self.connections_lock:
            self.connections.discard(request)
            self.connections.add(secure)
        try:
            super().finish_request(secure, client_address)
        finally:
            self.shutdown_request(secure)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):  # already closed by the peer
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request is not the server's problem


class ApiServer:
    """A stateful Kubernetes API server for the Istio kinds (and namespaces).

    crd_paths: YAML files of CustomResourceDefinitions to serve; None serves VirtualService,
        DestinationRule and Gateway with a permissive schema (only the webhook checks apply).
    host, port: where to listen; port 0 picks a free port (read `url` after `start`).
    tokens: bearer token -> `User`, `(name, rules)` or a bare sequence of `PolicyRule`s;
        None disables authentication (everyone may do everything).
    webhook: `(kind, obj) -> webhook.Review` for Istio kinds; None uses the double's own port
        of Istio's validating webhook (`webhook.review`).
    tls: `(certfile, keyfile)` (PEM) to serve HTTPS with that certificate; None serves HTTP.
        Handshakes a client abandoned (e.g. it did not trust the certificate) are listed, by
        the reason the server saw, in `tls_rejections`.
    """

    def __init__(
        self,
        crd_paths: Sequence[Path | str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Tokens | None = None,
        webhook: Webhook | None = None,
        *,
        tls: tuple[Path | str, Path | str] | None = None,
    ) -> None:
        types = load_crds(Path(p) for p in crd_paths) if crd_paths else permissive_istio_types()
        self.registry = Registry([*BUILTIN_TYPES, *types])
        self.store = Store(self.registry, webhook)
        self.openapi = OpenApi(self.registry)
        self.faults = FaultPlan()
        self._tokens = tokens
        self.authenticator = Authenticator(tokens)
        self.request_log: list[RequestRecord] = []
        self._in_flight = 0
        self._idle = threading.Condition()
        self.stopping = threading.Event()
        self.tls_rejections: list[str] = []
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            certfile, keyfile = tls
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(certfile, keyfile)
        self._address = (host, port)
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ApiServer:
        """Listen and serve in a daemon thread."""
        handler = type("Handler", (ApiRequestHandler,), {"api": self})
        self._httpd = _HttpServer(self._address, handler, self._tls, self.tls_rejections)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="apiserver",
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        host, port = self._httpd.server_address[:2]
        scheme = "http" if self._tls is None else "https"
        return f"{scheme}://{host!s}:{port}"

    def stop(self) -> None:
        """Stop serving, close the listening socket and every connection, join the threads."""
        if self._httpd is None or self._thread is None:
            return
        self.stopping.set()
        with self.store.changed:
            self.store.changed.notify_all()  # wake watch streams
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()  # joins the request threads
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults and test support -----------------------------------------------------------

    def inject(self, fault: ApiFault) -> None:
        """Apply `fault` to the next `fault.times` matching HTTP requests."""
        self.faults.inject(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Count one HTTP request as in flight while the block runs (see `wait_idle`)."""
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no HTTP request is being handled; False if `timeout_s` passed first.

        A client that gave up on a slow request (a read timeout) has moved on while the server
        is still handling it, and may still apply it: a test awaits that here before it reads
        the final state. Watch streams do not count.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)

    def set_tokens(self, tokens: Tokens | None) -> None:
        """Replace the bearer tokens (None: no authentication) until the next `reset`."""
        self.authenticator = Authenticator(tokens)

    def reset(self) -> None:
        """Back to a fresh server: no objects, initial namespaces, no faults, empty request log,
        the tokens given to the constructor, no TLS rejections."""
        self.authenticator = Authenticator(self._tokens)
        self.faults.clear()
        self.store.reset()
        self.request_log.clear()
        self.tls_rejections.clear()

    def authorizes(self, user: User, request: Request) -> bool:
        """The token's own rules, else the Roles and bindings stored here (`rbac_objects`)."""
        if request.path is not None:
            if user.may_access(request.verb, request.path):
                return True
        elif user.may(request.verb, request.group, request.resource, request.namespace):
            return True
        return rbac_objects.allows(self.list, user.name, request)

    def bound_rules(self, user: User, namespace: str | None) -> builtins.list[JsonDict]:
        """The rules the stored RBAC grants `user` in `namespace` (see `rbac_objects`)."""
        return rbac_objects.bound_rules(self.list, user.name, namespace)

    def subscribe(self, listener: Callable[[WatchEvent], None]) -> Callable[[], None]:
        """Call `listener` with every committed change; returns the unsubscribe function."""
        return self.store.subscribe(listener)

    # -- direct access ---------------------------------------------------------------------

    def _resolve(self, api_version: str, kind: str) -> tuple[ResourceType, str]:
        found = self.registry.by_api_version(api_version, kind)
        if found is None:
            raise ApiError(
                404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"'
            )
        return found

    @staticmethod
    def _namespace(rt: ResourceType, namespace: str | None) -> str | None:
        return (namespace or "default") if rt.namespaced else None

    def create(self, obj: JsonDict) -> JsonDict:
        """Create like POST; raises ApiError (409, 422, 400, 404 for a missing namespace)."""
        rt, version = self._resolve(obj.get("apiVersion", ""), obj.get("kind", ""))
        namespace = self._namespace(rt, (obj.get("metadata") or {}).get("namespace"))
        return self.store.create(rt, version, namespace, obj, WriteOptions()).object

    def create_namespace(self, name: str) -> JsonDict:
        return self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> JsonDict | None:
        rt, version = self._resolve(api_version, kind)
        try:
            return self.store.get(rt, version, self._namespace(rt, namespace), name)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str | None = None
    ) -> builtins.list[JsonDict]:
        """Objects of a kind, in one namespace or (None) all of them."""
        rt, version = self._resolve(api_version, kind)
        listed = self.store.list(rt, version, namespace if rt.namespaced else None)
        items: builtins.list[JsonDict] = listed["items"]
        return items

    def replace(self, obj: JsonDict) -> JsonDict:
        """Update like PUT: `metadata.resourceVersion` is required and must be current."""
        rt, version = self._resolve(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        namespace = self._namespace(rt, meta.get("namespace"))
        name = meta.get("name", "")
        return self.store.update(rt, version, namespace, name, obj, options=WriteOptions()).object

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        patch: JsonDict | builtins.list[Any],
        *,
        content_type: str = PatchType.MERGE.value,
        field_manager: str | None = None,
        subresource: str | None = None,
    ) -> JsonDict:
        """Patch like PATCH with the given Content-Type (merge patch by default); with
        `subresource="status"`, only the status changes."""
        rt, version = self._resolve(api_version, kind)
        kind_of_patch = patch_type(content_type, custom_resource=rt.custom)
        if kind_of_patch is PatchType.APPLY and isinstance(patch, (str, bytes)):
            patch = decode_patch(kind_of_patch, patch.encode() if isinstance(patch, str) else patch)
        options = WriteOptions(field_manager=field_manager)
        namespace = self._namespace(rt, namespace)
        return self.store.patch(
            rt,
            version,
            namespace,
            name,
            patch,
            kind=kind_of_patch,
            options=options,
            subresource=subresource,
        ).object

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """Delete; raises ApiError 404 when there is no such object."""
        rt, version = self._resolve(api_version, kind)
        self.store.delete(rt, version, self._namespace(rt, namespace), name)
