"""Ledgers bound to an API that no longer exists (issue 8 item 7): a local mesh taken down closes
its runs' ledgers with the reason; a cluster never does, and `rollback --forget` closes one by hand.

Each test starts its own API double, made a local mesh by the info it serves (its instance id),
and runs `chaosmesh rollback` as another process, as a user would after `chaosmesh local down`.
"""

import json

import pytest
import yaml

from chaosmesh_py.engine import ledger
from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.conftest import BOOKINFO_MESH, ISTIO_CRDS, NAMESPACE
from tests.integration.test_cleanup import chaosmesh, chaosmesh_process


def publish_local_mesh(server, info):
    """Make the double answer as a local mesh does, with ``info`` as what the mesh publishes:
    at the double's mesh endpoint, or (once the local mesh publishes itself through the API) in
    the ConfigMap ``Kube.local_mesh`` reads."""
    if hasattr(server, "mesh_info"):
        server.mesh_info = lambda: info
        return
    from chaosmesh_py.kube import client

    namespace, name = client.LOCAL_MESH_CONFIG_MAP
    server.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {client.LOCAL_MESH_KEY: json.dumps(info)},
        }
    )


class Api:
    """A started API double that remembers its URL once stopped."""

    def __init__(self, server):
        self.server = server
        self.url = server.url

    def __getattr__(self, name):
        return getattr(self.server, name)


def bookinfo_api(instance_id=None, port=0):
    """A started API double with Bookinfo's routing; a local mesh when given an instance id."""
    server = ApiServer(crd_paths=[ISTIO_CRDS], port=port).start()
    if instance_id is not None:
        publish_local_mesh(server, {"instance_id": instance_id})
    server.create_namespace(NAMESPACE)
    for document in yaml.safe_load_all(BOOKINFO_MESH.read_text()):
        document["metadata"]["namespace"] = NAMESPACE
        server.create(document)
    return Api(server)


@pytest.fixture
def pointed_at(monkeypatch, tmp_path):
    def point(server):
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
        monkeypatch.setenv("KUBERNETES_HOST", server.url)

    return point


def inject(run_id):
    return inject_abort(
        virtual_service="ratings",
        namespace=NAMESPACE,
        http_status=503,
        percentage=50,
        configuration={"chaosmesh_run_id": run_id, "chaosmesh_verify_timeout_s": 0},
    )


def rollback_all():
    done = chaosmesh_process("rollback", "--all", "--json")
    return done.returncode, json.loads(done.stdout or "{}"), done.stderr


def test_the_ledger_records_whether_the_api_was_a_local_mesh_and_which(pointed_at, ledger_dir):
    server = bookinfo_api("first")
    try:
        pointed_at(server)
        inject("boundmesh")
    finally:
        server.stop()
    entries = ledger.Ledger(ledger_dir, "boundmesh").entries()
    assert ledger.bindings(entries) == {server.url: {"local_mesh": True, "instance_id": "first"}}


def test_a_run_on_a_local_mesh_that_was_taken_down_is_closed_with_the_reason(
    pointed_at, ledger_dir
):
    server = bookinfo_api("first")
    try:
        pointed_at(server)
        inject("downmesh")
    finally:
        server.stop()  # `chaosmesh local down`: the API and its state are gone
    code, reports, stderr = rollback_all()
    assert code == 0, stderr
    reason = reports["downmesh"]["closed"]
    assert f"the local mesh at {server.url} is gone (connection refused)" in reason
    assert ledger.closed_reason(ledger.Ledger(ledger_dir, "downmesh").entries()) == reason
    assert rollback_all()[:2] == (0, {})  # not pending any more


def test_a_run_on_a_local_mesh_replaced_by_another_instance_is_closed(pointed_at, ledger_dir):
    server = bookinfo_api("first")
    try:
        pointed_at(server)
        inject("oldmesh")
    finally:
        server.stop()
    port = int(server.url.rsplit(":", 1)[1])
    again = bookinfo_api("second", port=port)  # `local up` again, on the same port
    try:
        code, reports, stderr = rollback_all()
        assert code == 0, stderr
        assert (
            "is another instance (second; the run wrote to first)" in (reports["oldmesh"]["closed"])
        )
        # Nothing was written to the new instance.
        assert not any(r.method in ("PATCH", "DELETE") for r in again.request_log)
    finally:
        again.stop()


def test_the_same_local_mesh_instance_is_rolled_back_not_closed(pointed_at, ledger_dir):
    server = bookinfo_api("same")
    try:
        pointed_at(server)
        inject("samemesh")
        code, reports, stderr = rollback_all()
        assert code == 0, stderr
        assert reports["samemesh"]["routes_removed"] == 1
        assert reports["samemesh"]["closed"] == "rolled back completely"
    finally:
        server.stop()


def test_a_cluster_that_does_not_answer_keeps_its_ledger_open_until_forgotten(
    pointed_at, ledger_dir
):
    cluster = bookinfo_api(instance_id=None)
    try:
        pointed_at(cluster)
        injected = inject("clusterrun")
    finally:
        cluster.stop()  # down, perhaps for a while: never closed on its own
    code, reports, _ = rollback_all()
    assert code == 3 and not reports["clusterrun"]["complete"]
    assert not ledger.is_closed(ledger.Ledger(ledger_dir, "clusterrun").entries())

    forgot = chaosmesh("rollback", "--forget", "clusterrun")
    assert forgot.returncode == 0, forgot.stderr
    assert "run clusterrun: its ledger is closed (forgotten by hand" in forgot.stdout
    assert (
        f"may remain at {cluster.url}: VirtualService {NAMESPACE}/ratings: "
        f"{injected['routes'][0]}" in forgot.stdout
    )
    assert rollback_all()[:2] == (0, {})
    again = chaosmesh("rollback", "--forget", "clusterrun", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["already_closed"] is True


@pytest.mark.parametrize(
    "arguments",
    [["--forget", "../x"], ["--forget", "nosuchrun"], ["--run", "a", "--forget", "b"], []],
)
def test_forget_takes_one_existing_run_id(api, arguments):
    done = chaosmesh("rollback", *arguments)
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr


def test_forget_names_its_own_option_for_a_run_without_a_ledger(api):
    done = chaosmesh("rollback", "--forget", "nosuchrun")
    assert "error: --forget: no ledger for run 'nosuchrun'" in done.stderr, done.stderr
