"""Helpers for the local mesh's authorization and request-authentication tests: policies
through the API, requests through a workload's sidecar or straight to a pod, tokens signed with
the mesh's issuer key."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

SECURITY = "security.istio.io/v1"
NAMESPACE = "bookinfo"


def apply(mesh, kind, name, spec, *, namespace=NAMESPACE, annotations=None):
    """Create a security resource and let the mesh translate it before returning."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    mesh.api.create({"apiVersion": SECURITY, "kind": kind, "metadata": metadata, "spec": spec})
    settle(mesh)


def delete(mesh, kind, name, *, namespace=NAMESPACE):
    mesh.api.delete(SECURITY, kind, namespace, name)
    settle(mesh)


def settle(mesh, timeout_s=5.0):
    """Translate now, then wait out the old inbound listeners: a connection a caller's sidecar
    pooled before the change keeps the old filters until it closes (at its next answer, or the
    local Envoy's 1 s drain time), as on a cluster."""
    mesh.sync()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        gauges = mesh.envoy.stats(r"listener_manager\.total_.*draining")
        if not any(gauges.get(name, 0) for name in DRAINING):
            return
        time.sleep(0.05)


# A listener changed in place drains its old filter chains; one replaced drains whole.
DRAINING = (
    "listener_manager.total_filter_chains_draining",
    "listener_manager.total_listeners_draining",
)


def authorization_policy(mesh, name, spec, **options):
    apply(mesh, "AuthorizationPolicy", name, spec, **options)


def request_authentication(mesh, name, spec, **options):
    apply(mesh, "RequestAuthentication", name, spec, **options)


def send(url, *, method="GET", headers=None, timeout=5.0):
    """(status, body text) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def from_sidecar(mesh, service, path, *, workload="sleep", method="GET", headers=None):
    """A request from ``workload`` to ``service`` through the workload's outbound sidecar."""
    info = mesh.info()
    url = f"{info['workloads'][workload]['sidecar_url']}{path}"
    return send(
        url,
        method=method,
        headers={"Host": info["services"][service]["host"], **(headers or {})},
    )


def to_pod(mesh, workload, path, *, method="GET", headers=None):
    """A request straight to the pod's inbound, as a client without a sidecar."""
    url = f"{mesh.info()['workloads'][workload]['pod_url']}{path}"
    return send(url, method=method, headers=headers)


def issuer(mesh):
    return mesh.info()["jwt_issuer"]


def token(mesh, *, audience="httpbin", subject="alice", expires_in_s=600, key=None, **claims):
    """A token from the mesh's issuer (``key``: sign with another key, ``iss`` in ``claims``:
    another issuer). Expired means by more than jwt_authn's 60 s clock skew."""
    now = int(time.time())
    payload = {
        "iss": issuer(mesh)["issuer"],
        "sub": subject,
        "aud": audience,
        "iat": min(now, now + expires_in_s) - 60,
        "exp": now + expires_in_s,
        **claims,
    }
    if key is None:
        with open(issuer(mesh)["private_key_file"], "rb") as handle:
            key = handle.read()
    return jwt.encode(payload, key, algorithm="RS256")


def stranger_key():
    """A key nobody's JWKS holds: its tokens fail signature verification."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def bearer(value):
    return {"Authorization": f"Bearer {value}"}


def inbound_counters(mesh, workload, pattern=r"rbac\."):
    prefix = mesh.info()["workloads"][workload]["inbound_stat_prefix"]
    stats = mesh.envoy.stats(pattern)
    return {k.removeprefix(f"http.{prefix}."): v for k, v in stats.items() if prefix in k}
