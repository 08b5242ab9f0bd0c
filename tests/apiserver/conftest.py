"""Fixtures for the API double's own tests: a freshly reset server and real clients.

The session-scoped `api_server` comes from `tests/conftest.py`; every test here gets it reset
(no objects, the initial namespaces, no faults, an empty request log).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.conftest import ISTIO_CRDS

__all__ = ["ISTIO_CRDS"]  # re-exported for the tests of this folder

NETWORKING = ("networking.istio.io", "v1")


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
