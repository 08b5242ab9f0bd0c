"""Server-side printing: the Table `kubectl get` asks for, with a real apiserver's columns."""

from __future__ import annotations

import pytest

from chaosmesh_py.localmesh.apiserver import ApiServer
from chaosmesh_py.localmesh.apiserver.tables import human_duration
from tests.apiserver.conftest import raw, virtual_service
from tests.apiserver.test_builtin_kinds import cron_job, lease

TABLE = {
    "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (47 * 3600, "47h"),
        (50 * 3600, "2d2h"),
        (30 * 86400, "30d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_ages_are_worded_as_kubernetes_words_them(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_a_cron_job_table_has_the_columns_of_kube_apiservers_printer(server: ApiServer) -> None:
    server.create(cron_job(concurrencyPolicy="Forbid"))
    status, _, body = raw(
        server, "GET", "/apis/batch/v1/namespaces/default/cronjobs", headers=TABLE
    )
    assert status == 200
    assert (body["kind"], body["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    names = [(c["name"], c["priority"]) for c in body["columnDefinitions"]]
    assert names == [
        ("Name", 0),
        ("Schedule", 0),
        ("Timezone", 0),
        ("Suspend", 0),
        ("Active", 0),
        ("Last Schedule", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    [row] = body["rows"]
    assert row["cells"][:6] == ["gameday", "30 10 * * TUE", "Europe/Berlin", "False", 0, "<none>"]
    assert row["cells"][7:9] == ["runner", "ghcr.io/example/chaosmesh:1.0"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "gameday"


def test_one_object_and_a_custom_kind_with_its_printer_columns(server: ApiServer) -> None:
    server.create(lease())
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/gameday"
    _, _, body = raw(server, "GET", path, headers=TABLE)
    assert [c["name"] for c in body["columnDefinitions"]] == ["Name", "Holder", "Age"]
    assert body["rows"][0]["cells"][:2] == ["gameday", "runner-a"]
    server.create(virtual_service("reviews"))
    path = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"
    _, _, body = raw(server, "GET", path, headers=TABLE)
    # The CRD's additionalPrinterColumns: Gateways, Hosts, Age.
    assert [c["name"] for c in body["columnDefinitions"]] == ["Name", "Gateways", "Hosts", "Age"]
    assert body["rows"][0]["cells"][:3] == ["reviews", "<none>", '["reviews"]']


def test_plain_json_is_still_the_default(server: ApiServer) -> None:
    server.create(lease())
    _, _, body = raw(server, "GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases")
    assert body["kind"] == "LeaseList"
