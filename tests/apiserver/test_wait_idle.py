"""`ApiServer.wait_idle`: a test awaits the requests a client gave up on, instead of sleeping."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import kubernetes.client
import pytest
import urllib3

from chaosmesh_py.localmesh.apiserver import ApiFault, ApiServer, RequestRecord
from tests.apiserver.conftest import NETWORKING, virtual_service

VS = (*NETWORKING, "default", "virtualservices")
ITEM = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews"
REVIEWS = r"/virtualservices/reviews$"


@pytest.fixture
def impatient(server: ApiServer) -> Iterator[kubernetes.client.CustomObjectsApi]:
    configuration = kubernetes.client.Configuration(host=server.url)
    configuration.retries = False
    with kubernetes.client.ApiClient(configuration) as api_client:
        yield kubernetes.client.CustomObjectsApi(api_client)


def test_a_write_the_client_gave_up_on_lands_and_is_awaited(server: ApiServer, impatient) -> None:
    server.create(virtual_service())
    server.inject(ApiFault(method="PATCH", path=REVIEWS, delay_s=0.5))
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        impatient.patch_namespaced_custom_object(
            *VS, "reviews", {"spec": {"gateways": ["mesh"]}}, _request_timeout=(1, 0.1)
        )
    assert server.wait_idle(0) is False  # still being handled
    assert server.wait_idle(5) is True
    obj = server.get("networking.istio.io/v1", "VirtualService", "default", "reviews")
    assert obj is not None
    assert obj["spec"]["gateways"] == ["mesh"]
    assert server.request_log == [RequestRecord("PATCH", ITEM, 200)]


def test_an_open_watch_is_not_in_flight(server: ApiServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", "/apis/networking.istio.io/v1/virtualservices?watch=true")
        response = connection.getresponse()  # headers sent: the stream is open
        assert response.status == 200
        assert server.wait_idle(0) is True
    finally:
        connection.close()


def test_an_answered_request_does_not_keep_the_server_busy(server: ApiServer, impatient) -> None:
    server.create(virtual_service())
    impatient.get_namespaced_custom_object(*VS, "reviews")
    started = time.monotonic()
    assert server.wait_idle(5) is True
    assert time.monotonic() - started < 1
