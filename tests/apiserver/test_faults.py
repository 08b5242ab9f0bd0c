"""Injected API faults, and what the kubernetes 37 client makes of each."""

from __future__ import annotations

import time
from collections.abc import Iterator

import kubernetes.client
import pytest
import urllib3
from kubernetes.client.exceptions import (
    ApiException,
    ConflictException,
    NotFoundException,
    ServiceException,
)

from chaosmesh_py.localmesh.apiserver import ApiFault, ApiServer, RequestRecord
from tests.apiserver.conftest import NETWORKING, raw, status_body, virtual_service

VS = (*NETWORKING, "default", "virtualservices")
ITEM = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews"
REVIEWS = r"/virtualservices/reviews$"


def spec_of(server: ApiServer) -> dict:
    obj = server.get("networking.istio.io/v1", "VirtualService", "default", "reviews")
    assert obj is not None
    spec: dict = obj["spec"]
    return spec


@pytest.fixture
def reviews(server: ApiServer) -> dict:
    return server.create(virtual_service())


@pytest.fixture
def no_retries(server: ApiServer) -> Iterator[kubernetes.client.CustomObjectsApi]:
    configuration = kubernetes.client.Configuration(host=server.url)
    configuration.retries = False
    with kubernetes.client.ApiClient(configuration) as api_client:
        yield kubernetes.client.CustomObjectsApi(api_client)


def test_status_fault_answers_without_changing_state(server: ApiServer, custom, reviews) -> None:
    server.inject(ApiFault(method="PATCH", path=REVIEWS, status=503))
    with pytest.raises(ServiceException) as caught:
        custom.patch_namespaced_custom_object(*VS, "reviews", {"spec": {"gateways": ["mesh"]}})
    body = status_body(caught.value)
    assert body["kind"] == "Status"
    assert body["reason"] == "ServiceUnavailable"
    assert body["code"] == 503
    assert "gateways" not in spec_of(server)
    assert custom.patch_namespaced_custom_object(*VS, "reviews", {"spec": {"gateways": ["mesh"]}})
    assert server.request_log == [
        RequestRecord("PATCH", ITEM, 503),
        RequestRecord("PATCH", ITEM, 200),
    ]


def test_a_fault_applies_times_then_is_used_up(server: ApiServer, custom, reviews) -> None:
    server.inject(ApiFault(method="GET", path=REVIEWS, status=500, times=3))
    for _ in range(3):
        with pytest.raises(ApiException) as caught:
            custom.get_namespaced_custom_object(*VS, "reviews")
        assert caught.value.status == 500
    assert custom.get_namespaced_custom_object(*VS, "reviews")["metadata"]["name"] == "reviews"
    assert server.faults.pending() == []


def test_faults_match_method_and_path(server: ApiServer, custom, reviews) -> None:
    server.inject(ApiFault(method="PATCH", path=REVIEWS, status=503))
    custom.get_namespaced_custom_object(*VS, "reviews")
    server.create(virtual_service("reviews-v2"))
    custom.patch_namespaced_custom_object(*VS, "reviews-v2", {"spec": {"gateways": ["mesh"]}})
    assert len(server.faults.pending()) == 1
    server.clear_faults()
    assert server.faults.pending() == []


def test_429_carries_retry_after(server: ApiServer, reviews) -> None:
    server.inject(ApiFault(path=REVIEWS, status=429, retry_after_s=2))
    status, headers, body = raw(server, "GET", ITEM)
    assert status == 429
    assert headers["Retry-After"] == "2"
    assert body["reason"] == "TooManyRequests"
    assert body["details"] == {"retryAfterSeconds": 2}


@pytest.mark.parametrize(
    ("code", "reason"), [(403, "Forbidden"), (404, "NotFound"), (409, "Conflict"), (504, "Timeout")]
)
def test_imitated_statuses_have_status_bodies(
    server: ApiServer, reviews, code: int, reason: str
) -> None:
    server.inject(ApiFault(method="DELETE", path=REVIEWS, status=code))
    status, _, body = raw(server, "DELETE", ITEM)
    assert (status, body["reason"], body["code"], body["status"]) == (code, reason, code, "Failure")
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "reviews") is not None


def test_delay_before_handling(server: ApiServer, custom, reviews) -> None:
    server.inject(ApiFault(method="GET", path=REVIEWS, delay_s=0.3))
    started = time.monotonic()
    custom.get_namespaced_custom_object(*VS, "reviews")
    assert time.monotonic() - started >= 0.3


def test_drop_before_a_patch_leaves_state_unchanged(server: ApiServer, custom, reviews) -> None:
    server.inject(ApiFault(method="PATCH", path=REVIEWS, drop="before"))
    with pytest.raises(urllib3.exceptions.ProtocolError):  # PATCH is not idempotent: no retry
        custom.patch_namespaced_custom_object(*VS, "reviews", {"spec": {"gateways": ["mesh"]}})
    assert "gateways" not in spec_of(server)
    assert server.request_log == [RequestRecord("PATCH", ITEM, 0)]


def test_drop_after_a_patch_applies_it(server: ApiServer, custom, reviews) -> None:
    server.inject(ApiFault(method="PATCH", path=REVIEWS, drop="after"))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        custom.patch_namespaced_custom_object(*VS, "reviews", {"spec": {"gateways": ["mesh"]}})
    assert spec_of(server)["gateways"] == ["mesh"]


def test_a_dropped_get_is_retried_by_urllib3(server: ApiServer, custom, reviews) -> None:
    server.inject(ApiFault(method="GET", path=REVIEWS, drop="before"))
    assert custom.get_namespaced_custom_object(*VS, "reviews")["metadata"]["name"] == "reviews"
    assert [r.status for r in server.request_log] == [0, 200]


def test_without_retries_a_dropped_get_raises(server: ApiServer, no_retries, reviews) -> None:
    server.inject(ApiFault(method="GET", path=REVIEWS, drop="before"))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        no_retries.get_namespaced_custom_object(*VS, "reviews")


def test_an_applied_put_that_was_dropped_comes_back_409(server: ApiServer, custom, reviews) -> None:
    """urllib3 re-sends the PUT; its resourceVersion is stale by then: the write did happen."""
    server.inject(ApiFault(method="PUT", path=REVIEWS, drop="after"))
    reviews["spec"]["gateways"] = ["mesh"]
    with pytest.raises(ConflictException):
        custom.replace_namespaced_custom_object(*VS, "reviews", reviews)
    assert spec_of(server)["gateways"] == ["mesh"]


def test_an_applied_delete_that_was_dropped_comes_back_404(
    server: ApiServer, custom, reviews
) -> None:
    server.inject(ApiFault(method="DELETE", path=REVIEWS, drop="after"))
    with pytest.raises(NotFoundException):
        custom.delete_namespaced_custom_object(*VS, "reviews")
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "reviews") is None


def test_concurrent_write_makes_the_precondition_stale(server: ApiServer, custom, reviews) -> None:
    def other_writer(api: ApiServer) -> None:
        api.patch(
            "networking.istio.io/v1",
            "VirtualService",
            "default",
            "reviews",
            {"spec": {"gateways": ["other"]}},
        )

    server.inject(ApiFault(method="PATCH", path=REVIEWS, concurrent_write=other_writer))
    ours = {
        "metadata": {"resourceVersion": reviews["metadata"]["resourceVersion"]},
        "spec": {"gateways": ["ours"]},
    }
    with pytest.raises(ConflictException):
        custom.patch_namespaced_custom_object(*VS, "reviews", ours)
    assert spec_of(server)["gateways"] == ["other"]


def test_faults_over_http_for_another_process(server: ApiServer, reviews) -> None:
    fault = {"method": "GET", "path": REVIEWS, "status": 503, "times": 2}
    status, _, created = raw(server, "POST", "/chaosmesh/v1/api-faults", fault)
    assert status == 201
    assert created["times"] == 2
    assert raw(server, "GET", "/chaosmesh/v1/api-faults")[2]["items"][0]["status"] == 503
    assert raw(server, "GET", ITEM)[0] == 503
    assert raw(server, "DELETE", "/chaosmesh/v1/api-faults")[0] == 200
    assert raw(server, "GET", ITEM)[0] == 200
    assert (
        raw(server, "POST", "/chaosmesh/v1/api-faults", {"status": 503, "drop": "before"})[0] == 400
    )
    assert raw(server, "POST", "/chaosmesh/v1/api-faults", {"bogus": 1})[0] == 400
    assert [r.path for r in server.request_log] == [ITEM, ITEM]  # control requests are not logged


@pytest.mark.parametrize(
    "arguments",
    [
        {"status": 503, "drop": "after"},
        {"times": 0},
        {"drop": "sideways"},
        {"path": "("},
        {"retry_after_s": 1},
    ],
)
def test_nonsensical_faults_are_refused(arguments: dict) -> None:
    with pytest.raises(ValueError):
        ApiFault(**arguments)


def test_retry_after_is_whole_seconds_rounded_up(server: ApiServer, reviews) -> None:
    server.inject(ApiFault(method="GET", path=REVIEWS, status=503, retry_after_s=0.2))
    status, headers, body = raw(server, "GET", ITEM)
    assert (status, headers["Retry-After"], body["details"]["retryAfterSeconds"]) == (503, "1", 1)


def test_a_failing_concurrent_writer_is_a_500_not_a_drop(server: ApiServer, reviews) -> None:
    def broken(api: ApiServer) -> None:
        raise RuntimeError("test writer bug")

    server.inject(ApiFault(method="GET", path=REVIEWS, concurrent_write=broken))
    status, _, body = raw(server, "GET", ITEM)
    assert status == 500
    assert "test writer bug" in body["message"]
