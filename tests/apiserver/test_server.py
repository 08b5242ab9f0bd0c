"""Server lifecycle, latency and atomicity under concurrent writers."""

from __future__ import annotations

import http.client
import threading
import time

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ConflictException

from chaosmesh_py.localmesh.apiserver import ApiServer, Review
from tests.apiserver.conftest import ISTIO_CRDS, NETWORKING, virtual_service

VS = (*NETWORKING, "default", "virtualservices")


def test_listens_on_loopback_on_a_free_port() -> None:
    with ApiServer(crd_paths=[ISTIO_CRDS]) as server:
        host, port = server.url.removeprefix("http://").split(":")
        assert host == "127.0.0.1"
        assert int(port) > 0


def test_stop_closes_idle_keep_alive_connections() -> None:
    server = ApiServer(crd_paths=[ISTIO_CRDS]).start()
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", "/version")
    response = connection.getresponse()
    response.read()
    assert response.getheader("Connection") != "close"  # HTTP/1.1 keep-alive
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    connection.close()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(host, int(port), timeout=1).request("GET", "/version")


def test_requests_do_not_wait_for_delayed_acks(server: ApiServer, custom) -> None:
    """TCP_NODELAY: without it each answer (headers, then body) stalls ~40 ms."""
    server.create(virtual_service())
    custom.get_namespaced_custom_object(*VS, "reviews")  # connect first
    started = time.monotonic()
    for index in range(20):
        custom.patch_namespaced_custom_object(
            *VS, "reviews", {"metadata": {"labels": {"n": str(index)}}}
        )
    assert time.monotonic() - started < 0.4


def test_read_modify_write_loses_no_update(server: ApiServer) -> None:
    """Eight writers increment one counter with GET + PUT, retrying on 409: no lost update."""
    server.create(virtual_service())
    increments_each, conflicts = 10, []

    def writer() -> None:
        with kubernetes.client.ApiClient(
            kubernetes.client.Configuration(host=server.url)
        ) as client:
            api = kubernetes.client.CustomObjectsApi(client)
            done = 0
            while done < increments_each:
                obj = api.get_namespaced_custom_object(*VS, "reviews")
                annotations = obj["metadata"].setdefault("annotations", {})
                annotations["count"] = str(int(annotations.get("count", "0")) + 1)
                try:
                    api.replace_namespaced_custom_object(*VS, "reviews", obj)
                    done += 1
                except ConflictException:
                    conflicts.append(1)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = server.get("networking.istio.io/v1", "VirtualService", "default", "reviews")
    assert final is not None
    assert final["metadata"]["annotations"]["count"] == str(8 * increments_each)
    assert conflicts  # the writers did collide


def test_a_slow_admission_does_not_let_two_writers_share_a_version() -> None:
    """The resourceVersion check and the commit are atomic, even around a slow webhook."""

    def slow_webhook(kind: str, obj: dict) -> Review:
        time.sleep(0.1)
        return Review()

    with ApiServer(crd_paths=[ISTIO_CRDS], webhook=slow_webhook) as server:
        base = server.create(virtual_service())
        outcomes: list[int] = []

        def writer(gateway: str) -> None:
            configuration = kubernetes.client.Configuration(host=server.url)
            with kubernetes.client.ApiClient(configuration) as client:
                obj = {**base, "spec": {**base["spec"], "gateways": [gateway]}}
                try:
                    kubernetes.client.CustomObjectsApi(client).replace_namespaced_custom_object(
                        *VS, "reviews", obj
                    )
                    outcomes.append(200)
                except ConflictException:
                    outcomes.append(409)

        threads = [threading.Thread(target=writer, args=(g,)) for g in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(outcomes) == [200, 409]
