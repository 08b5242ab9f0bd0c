"""The policy matrix's requests: one real request per cell, on the local mesh.

Where a cell's request goes (``chaosmesh local status --json`` publishes every address):

- from a workload: into its outbound sidecar (``sidecar_url``) with ``Host: <service>:<port>``.
  The request leaves with the workload's identity, over mutual TLS to the destination's inbound
  sidecar when the mesh would use it, as from inside that pod;
- from ``outside`` (a client without a sidecar, plain text): a workload destination at its pod
  address (``pod_url``), a service at its ClusterIP as kube-proxy serves it
  (``no_sidecar_url``: one of its pods per connection).

Each request goes on a new connection to the sidecar or the pod (``Connection: close``); the
source's sidecar pools its own connections to the destination, as in a pod, so before the first
request the probe waits until Envoy drains no listener (a pooled connection answers with the
configuration it was accepted with). A transport error that is not
what the cell measures is retried twice: the source's own sidecar refusing or dropping the
connection, and a pod address refusing it (nothing listening: STRICT resets, it does not
refuse). A reset from outside is the measured outcome and is never retried. A sidecar's answer
that an established connection was closed (Envoy's 503 "reset reason: connection termination",
what a pooled connection drained by a listener change gets) is tried twice more, and stands if
it persists.

On a cluster the sources are pods, and sending from one needs the Kubernetes exec API: not done
yet, so the probe refuses there (docs/security.md, "The policy matrix").
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.errors import ChaosMeshError, InvalidInput
from chaosmesh_py.kube import Kube
from chaosmesh_py.security import tokens
from chaosmesh_py.security.matrix import (
    ALLOWED,
    NOT_SENT,
    OUTSIDE,
    RESET,
    Answer,
    Cell,
    Matrix,
    Signing,
    compared,
)

RETRIES = 2
# The local mesh's Envoy drains a changed listener for 1 s (localmesh/envoy.py): ample.
DRAIN_WAIT_S = 5.0
DRAIN_POLL_S = 0.05
RETRY_PAUSE_S = 0.2
_BODY_BYTES = 4096
_REASON_CHARS = 240
# Envoy's own answers when the source's sidecar could not get an answer from the destination:
# the connection (or its TLS handshake) failed or was reset before any response headers.
_UPSTREAM_RESET = "upstream connect error or disconnect/reset before headers"
# Envoy's own 5xx answers that are not a reset: the status itself is the outcome.
_ENVOY_UNAVAILABLE = ("no healthy upstream", "upstream request timeout")


@dataclass(frozen=True)
class Target:
    """Where the cells from one source to one destination go."""

    url: str
    host: str
    via_sidecar: bool


class _Retry(Exception):
    """A transport error that is not the cell's outcome: try again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run(matrix: Matrix, secrets: Mapping[str, Any] | None) -> dict[str, Any]:
    """Send every cell's request; the compared result (not yet judged)."""
    mesh = _local_mesh(secrets)
    targets = resolve(mesh, matrix)
    bearer = _tokens(matrix, mesh, secrets)
    cells = matrix.cells()

    def one(cell: Cell) -> tuple[Cell, Answer]:
        target = targets[cell.source, cell.destination]
        headers = {**dict(cell.request.headers), "Host": target.host, "Connection": "close"}
        if cell.token in bearer:
            headers[matrix.token_header] = bearer[cell.token]
        return cell, send(target, cell.request.method, cell.request.path, headers, matrix.timeout_s)

    drained_s = _await_drained(mesh)
    handshakes_before = _tls_handshakes(mesh)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=matrix.concurrency) as pool:
        answers = list(pool.map(one, cells))
    result = compared(matrix, answers, time.monotonic() - started)
    handshakes_after = _tls_handshakes(mesh)
    result["tls_handshakes"] = (
        handshakes_after - handshakes_before
        if handshakes_before is not None and handshakes_after is not None
        else None
    )
    result["waited_for_drain_s"] = drained_s
    return result


def _await_drained(mesh: Mapping[str, Any]) -> float | None:
    """Seconds waited until no listener of the local mesh's Envoy drains (at most
    ``DRAIN_WAIT_S``); None when Envoy's admin cannot tell.

    A connection opened before a policy change keeps the listener configuration it was accepted
    with until that listener has drained: a sidecar's pooled connection would answer a cell with
    the policy being replaced. Istio's sidecars behave alike (for their drain duration, 45 s by
    default); the matrix measures the policy in force, so it waits them out.
    """
    started = time.monotonic()
    try:
        with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
            while time.monotonic() - started < DRAIN_WAIT_S:
                draining = admin.counters(
                    r"^listener_manager\.total_(listeners|filter_chains)_draining$"
                )
                if not any(draining.values()):
                    break
                time.sleep(DRAIN_POLL_S)
    except (ChaosMeshError, OSError, KeyError, ValueError):
        return None
    return round(time.monotonic() - started, 3)


def _tls_handshakes(mesh: Mapping[str, Any]) -> int | None:
    """Every TLS handshake the local mesh's Envoy completed so far, client and server sides
    (``cluster.*.ssl.handshake``, ``listener.*.ssl.handshake``); None when unreadable."""
    try:
        with EnvoyAdmin(mesh["envoy_admin_socket"]) as admin:
            return sum(admin.counters(r"\.ssl\.handshake$").values())
    except (ChaosMeshError, OSError, KeyError, ValueError):
        return None


def resolve(mesh: Mapping[str, Any], matrix: Matrix) -> dict[tuple[str, str], Target]:
    """Each (source, destination) pair's target; InvalidInput listing the known names for a
    source or destination the mesh does not have."""
    workloads: Mapping[str, Any] = mesh["workloads"]
    services: Mapping[str, Any] = mesh["services"]
    for index, source in enumerate(matrix.sources):
        if source != OUTSIDE and source not in workloads:
            raise InvalidInput(
                f"sources[{index}]",
                f"{source!r} is no workload of the local mesh",
                f"one of {[*sorted(workloads), OUTSIDE]}",
            )
    pods = {name for name, workload in workloads.items() if workload.get("pod_url")}
    for index, destination in enumerate(matrix.destinations):
        if destination not in services and destination not in pods:
            raise InvalidInput(
                f"destinations[{index}]",
                f"{destination!r} is no service or serving workload of the local mesh",
                f"a service, one of {sorted(services)}, or a workload, one of {sorted(pods)}",
            )
    return {
        (source, destination): _target(mesh, source, destination)
        for source in matrix.sources
        for destination in matrix.destinations
    }


def _target(mesh: Mapping[str, Any], source: str, destination: str) -> Target:
    services: Mapping[str, Any] = mesh["services"]
    workloads: Mapping[str, Any] = mesh["workloads"]
    if destination in services:
        service = services[destination]
        if source == OUTSIDE:
            if not service.get("no_sidecar_url"):
                raise InvalidInput(
                    "destinations",
                    f"the local mesh serves no ClusterIP for {destination!r} (a Service created "
                    "through the API): a client without a sidecar cannot reach it as a service",
                    f"name one of its workloads as the destination for {OUTSIDE!r}",
                )
            return Target(service["no_sidecar_url"], service["host"], via_sidecar=False)
        return Target(workloads[source]["sidecar_url"], service["host"], via_sidecar=True)
    labels = workloads[destination]["labels"]
    selecting = [
        name
        for name, service in services.items()
        if service["selector"] and all(labels.get(k) == v for k, v in service["selector"].items())
    ]
    host = services[selecting[0]]["host"] if selecting else destination
    if source == OUTSIDE:
        return Target(workloads[destination]["pod_url"], host, via_sidecar=False)
    # A sidecar calls a service, never one pod of it: only a pod alone behind its service can
    # be a destination for an in-mesh source.
    alone = [
        name
        for name in selecting
        if [
            other
            for other, workload in workloads.items()
            if workload.get("pod_url")
            and all(workload["labels"].get(k) == v for k, v in services[name]["selector"].items())
        ]
        == [destination]
    ]
    if not alone:
        raise InvalidInput(
            "destinations",
            f"{destination!r} is one of several pods behind {selecting or 'no service'}: a "
            f"sidecar ({source}) calls a service, never one pod of it",
            f"name the service ({', '.join(selecting) or 'none selects it'}) for in-mesh "
            f"sources; a pod can be a destination for {OUTSIDE!r} alone",
        )
    return Target(workloads[source]["sidecar_url"], services[alone[0]]["host"], via_sidecar=True)


def send(
    target: Target, method: str, path: str, headers: Mapping[str, str], timeout_s: float
) -> Answer:
    """One cell's request, on a new connection, classified; transport errors that are not the
    outcome retried ``RETRIES`` times."""
    reason = ""
    answer = None
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(RETRY_PAUSE_S * attempt)
        try:
            answer = _once(target, method, path, headers, timeout_s)
        except _Retry as retry:
            reason = retry.reason
            continue
        if not (target.via_sidecar and _drained(answer)):
            return answer
    if answer is not None:
        return answer  # a reset that persisted: the outcome after all
    return Answer(NOT_SENT, None, f"{reason} ({RETRIES + 1} attempts)")


def _drained(answer: Answer) -> bool:
    """The source's sidecar reused a connection to the destination that the destination closed
    (a listener change drains open connections; Istio's default retry policy does not retry a
    request already sent): the same answer as a reset of an established connection, so tried
    again; a reset that persists stands."""
    return answer.outcome == RESET and answer.reason.endswith(
        "reset reason: connection termination"
    )


def _once(
    target: Target, method: str, path: str, headers: Mapping[str, str], timeout_s: float
) -> Answer:
    parts = urlsplit(target.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    where = f"the sidecar at {target.url}" if target.via_sidecar else target.url
    try:
        try:
            connection.connect()
        except ConnectionRefusedError as error:
            raise _Retry(f"{where} refused the connection: nothing listens there") from error
        except OSError as error:
            raise _Retry(f"cannot connect to {where}: {error}") from error
        try:
            connection.request(method, path, headers=dict(headers))
            response = connection.getresponse()
            body = response.read(_BODY_BYTES)
        except TimeoutError:
            return Answer("timeout", None, f"no answer within {timeout_s:g} s")
        except (OSError, http.client.HTTPException) as error:
            seen = _socket_saw(error)
            if target.via_sidecar:
                # The outcome comes back from the sidecar as an answer; its own socket failing
                # is no outcome of the destination's policy.
                raise _Retry(f"{where} {seen}") from error
            return Answer(RESET, None, seen)
        return classify(response.status, body, response.getheader("www-authenticate"))
    finally:
        connection.close()


def classify(status: int, body: bytes, www_authenticate: str | None = None) -> Answer:
    """An HTTP answer as a matrix outcome, with Envoy's reason for the security answers."""
    text = body.decode("utf-8", errors="replace").strip()
    reason = text.splitlines()[0][:_REASON_CHARS] if text else ""
    if status in (401, 403):
        return Answer(str(status), status, reason or (www_authenticate or "")[:_REASON_CHARS])
    if text.startswith(_UPSTREAM_RESET):
        return Answer(RESET, status, reason)
    if status >= 500 and text.startswith(_ENVOY_UNAVAILABLE):
        return Answer(str(status), status, reason)
    return Answer(ALLOWED, status, "")


def _socket_saw(error: BaseException) -> str:
    if isinstance(error, http.client.RemoteDisconnected):
        return "closed the connection without an answer"
    if isinstance(error, ConnectionResetError):
        return "reset the connection (ECONNRESET)"
    if isinstance(error, BrokenPipeError):
        return "closed the connection while the request was sent (EPIPE)"
    return f"failed the exchange: {type(error).__name__}: {error}"


def _local_mesh(secrets: Mapping[str, Any] | None) -> Mapping[str, Any]:
    try:
        mesh = Kube.connect(secrets).local_mesh()
    except ChaosMeshError as error:
        raise InvalidInput(
            "sources", f"cannot tell whether the API is a local mesh's: {error}"
        ) from error
    if mesh is None:
        raise InvalidInput(
            "sources",
            "on a cluster, sending from a source pod needs the Kubernetes exec API, which the "
            "policy matrix does not use yet",
            "run the matrix against the local mesh (chaosmesh local up), or test a cluster's "
            "policies there with the posture probes",
        )
    return mesh


def _tokens(
    matrix: Matrix, mesh: Mapping[str, Any], secrets: Mapping[str, Any] | None
) -> dict[str, str]:
    """The header value for each signed token state of the matrix: one token per state."""
    if not matrix.signs:
        return {}
    key, issuer, audiences = _signing_material(matrix.signing, mesh, secrets)
    scheme: Callable[[str], str] = (
        (lambda token: f"Bearer {token}")
        if matrix.token_header.lower() == "authorization"
        else (lambda token: token)
    )
    return {
        state: scheme(
            tokens.mint(
                key, issuer, audiences, matrix.signing.subject, state, matrix.signing.claims
            )
        )
        for state in matrix.tokens
        if state in tokens.SIGNED_STATES
    }


def _signing_material(
    signing: Signing, mesh: Mapping[str, Any], secrets: Mapping[str, Any] | None
) -> tuple[tokens.SigningKey, str, tuple[str, ...]]:
    local = mesh.get("jwt_issuer") or {}
    if signing.key_secret is not None:
        material = (secrets or {}).get(signing.key_secret)
        if not material:
            raise InvalidInput(
                "signing_key_secret",
                f"no secret {signing.key_secret!r} reached the probe",
                "declare it in the experiment's secrets and list its scope in the probe's "
                '"secrets"',
            )
        key = tokens.load_key(material, "signing_key_secret")
    elif signing.key_file is not None:
        key = tokens.load_key_file(signing.key_file, "signing_key_file")
    elif local.get("private_key_file"):
        key = tokens.load_key_file(local["private_key_file"], "jwt_issuer.private_key_file")
    else:
        raise InvalidInput(
            "signing_key_file",
            "signed token states need a key, and this local mesh publishes no JWT issuer",
            "give signing_key_file or signing_key_secret (with issuer), or restart the local "
            "mesh with a chaosmesh that runs one",
        )
    issuer = signing.issuer or local.get("issuer")
    if not issuer:
        raise InvalidInput("issuer", "is needed with a signing key of your own")
    audiences = signing.audiences
    if audiences is None:
        audiences = tuple(local.get("audiences") or ()) if signing.issuer is None else ()
    return key, str(issuer), audiences
