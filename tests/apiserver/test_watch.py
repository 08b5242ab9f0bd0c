"""Change notification: in-process listeners and `?watch=true` streams."""

from __future__ import annotations

import threading
import time
from collections import deque

import kubernetes.watch

from chaosmesh_py.localmesh.apiserver import ApiServer, Review, WatchEvent
from tests.apiserver.conftest import ISTIO_CRDS, NETWORKING, raw, virtual_service

VS_V1 = "networking.istio.io/v1"


def test_listeners_see_every_committed_change_in_order(server: ApiServer) -> None:
    events: list[WatchEvent] = []
    unsubscribe = server.subscribe(events.append)
    server.create(virtual_service())
    server.patch(VS_V1, "VirtualService", "default", "reviews", {"spec": {"gateways": ["mesh"]}})
    server.patch(
        VS_V1, "VirtualService", "default", "reviews", {"spec": {"gateways": ["mesh"]}}
    )  # no-op
    server.delete(VS_V1, "VirtualService", "default", "reviews")
    unsubscribe()
    server.create(virtual_service())
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert [e.object["metadata"]["resourceVersion"] for e in events] == [
        str(e.revision) for e in events
    ]
    assert events[0].resource_type.kind == "VirtualService"
    assert events[1].object["spec"]["gateways"] == ["mesh"]


def test_http_watch_streams_added_modified_deleted(server: ApiServer, custom) -> None:
    server.create(virtual_service("a"))

    def other_writer() -> None:
        time.sleep(0.1)
        server.patch(VS_V1, "VirtualService", "default", "a", {"spec": {"gateways": ["mesh"]}})
        server.create(virtual_service("elsewhere", "istio-system"))
        server.delete(VS_V1, "VirtualService", "default", "a")

    writer = threading.Thread(target=other_writer)
    writer.start()
    seen = []
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        custom.list_namespaced_custom_object,
        *NETWORKING,
        "default",
        "virtualservices",
        timeout_seconds=5,
    ):
        seen.append(
            (event["type"], event["object"]["metadata"]["name"], event["object"]["apiVersion"])
        )
        if event["type"] == "DELETED":
            watch.stop()
    writer.join()
    assert seen == [("ADDED", "a", VS_V1), ("MODIFIED", "a", VS_V1), ("DELETED", "a", VS_V1)]


def test_watch_from_a_resource_version_replays_later_events(server: ApiServer) -> None:
    since = server.create(virtual_service("a"))["metadata"]["resourceVersion"]
    server.patch(VS_V1, "VirtualService", "default", "a", {"spec": {"gateways": ["mesh"]}})
    query = f"watch=true&resourceVersion={since}&timeoutSeconds=0.2"
    path = f"/apis/networking.istio.io/v1beta1/virtualservices?{query}"
    status, _, body = raw(server, "GET", path)
    assert status == 200
    assert body["type"] == "MODIFIED"
    assert body["object"]["apiVersion"] == "networking.istio.io/v1beta1"


def test_watch_from_an_expired_resource_version_gets_410() -> None:
    server = ApiServer(crd_paths=[ISTIO_CRDS], webhook=lambda kind, obj: Review()).start()
    try:
        server.store.history = deque(maxlen=2)
        since = server.create(virtual_service("a"))["metadata"]["resourceVersion"]
        for gateway in ("x", "y", "z"):
            server.patch(VS_V1, "VirtualService", "default", "a", {"spec": {"gateways": [gateway]}})
        status, _, body = raw(
            server,
            "GET",
            f"/apis/networking.istio.io/v1/virtualservices?watch=1&resourceVersion={since}",
        )
        assert status == 200
        assert body["type"] == "ERROR"
        assert body["object"]["code"] == 410
        assert body["object"]["reason"] == "Expired"
    finally:
        server.stop()
