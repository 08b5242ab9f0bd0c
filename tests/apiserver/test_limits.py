"""What a real kube-apiserver refuses by size: bodies over 3 MiB (413), annotations over 256 KiB
(422), each with the apiserver's own words, and the connection still usable afterwards."""

from __future__ import annotations

import http.client
import json

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import NETWORKING, raw, status_body, virtual_service

MIB = 1024 * 1024


def test_a_body_over_3_mib_is_413_and_the_connection_stays_usable(server: ApiServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    big = virtual_service("big")
    big["metadata"]["labels"] = {"padding": "x"}
    big["spec"]["padding"] = "x" * (3 * MIB)
    connection.request(
        "POST",
        "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
        body=json.dumps(big).encode(),
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 413
    assert answer["reason"] == "RequestEntityTooLarge"
    assert answer["message"] == "Request entity too large: limit is 3145728"
    # The refused body was read and dropped: the next request on the connection is served.
    connection.request("GET", "/version")
    assert connection.getresponse().status == 200
    connection.close()
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "big") is None


def test_a_body_at_the_limit_is_read(server: ApiServer) -> None:
    body = json.dumps(virtual_service("fits")).encode()
    body += b" " * (3 * MIB - len(body))  # JSON allows trailing whitespace
    status, _, created = raw(
        server,
        "POST",
        "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
        body,
        {"Content-Type": "application/json"},
    )
    assert status == 201, created


def test_annotations_over_256_kib_are_422_as_the_apiserver_words_it(
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    body = virtual_service("annotated")
    # Keys and values count together: 2 x 128 KiB plus the keys is just over the limit.
    body["metadata"]["annotations"] = {"a": "x" * (128 * 1024), "b": "y" * (128 * 1024)}
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(*NETWORKING, "default", "virtualservices", body)
    assert caught.value.status == 422
    assert status_body(caught.value)["message"] == (
        'VirtualService.networking.istio.io "annotated" is invalid: metadata.annotations: '
        "Too long: must have at most 262144 bytes"
    )
    body["metadata"]["annotations"] = {"a": "x" * (128 * 1024 - 1), "b": "y" * (128 * 1024 - 1)}
    custom.create_namespaced_custom_object(*NETWORKING, "default", "virtualservices", body)
