"""Fixtures for the API double's own tests: a freshly reset server and real clients
(the `kubernetes` client, the stdlib HTTP client, and kubectl).

The session-scoped `api_server` comes from `tests/conftest.py`; every test here gets it reset
(no objects, the initial namespaces, no faults, an empty request log).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.conftest import ISTIO_CRDS

__all__ = ["ISTIO_CRDS"]  # re-exported for the tests of this folder

NETWORKING = ("networking.istio.io", "v1")
# kubectl with arguments (and `stdin=`), against the `server` fixture: the finished process.
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def server(api_server: ApiServer) -> Iterator[ApiServer]:
    api_server.reset()
    yield api_server
    api_server.clear_faults()  # a fault left over must not hit another folder's tests


@pytest.fixture
def client(server: ApiServer) -> Iterator[kubernetes.client.ApiClient]:
    configuration = kubernetes.client.Configuration(host=server.url)
    with kubernetes.client.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture
def custom(client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(client)


def virtual_service(
    name: str = "reviews", namespace: str = "default", **spec: Any
) -> dict[str, Any]:
    """A valid VirtualService routing all traffic to its host; `spec` entries override."""
    body = {
        "hosts": [name],
        "http": [{"route": [{"destination": {"host": name, "subset": "v1"}}]}],
        **spec,
    }
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def with_fault(fault: dict[str, Any], name: str = "ratings") -> dict[str, Any]:
    """A VirtualService whose only route carries `fault`."""
    obj = virtual_service(name)
    obj["spec"]["http"][0]["fault"] = fault
    return obj


def status_body(error: kubernetes.client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def raw(
    server: ApiServer | str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, Any]:
    """One HTTP request with the stdlib client: (status, headers, decoded JSON or None)."""
    url = server if isinstance(server, str) else server.url
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return response.status, response.headers, json.loads(data) if data else None
    finally:
        connection.close()


@pytest.fixture
def kubectl(server: ApiServer, tmp_path: Path) -> Iterator[Kubectl]:
    """kubectl talking to the reset double, with a fresh cache (it reads this server's discovery
    and OpenAPI); skipped without kubectl unless CHAOSMESH_REQUIRE_KUBECTL is set."""
    if not shutil.which("kubectl"):
        if os.environ.get("CHAOSMESH_REQUIRE_KUBECTL"):
            pytest.fail("CHAOSMESH_REQUIRE_KUBECTL is set but kubectl is not installed")
        pytest.skip("kubectl is not installed")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": server.url}}],
        "users": [{"name": "admin", "user": {}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "admin"}}],
        "current-context": "double",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config), encoding="utf-8")
    # A fresh cache directory: kubectl must read this server's discovery and OpenAPI.
    environment = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=environment,
        )

    yield run
