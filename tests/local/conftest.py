"""The local mesh for tests: one real Envoy, the API double, Bookinfo and httpbin, per session.

Each test starts from the mesh's initial resources (Bookinfo's routing and gateway) and must
leave no owned fault behind.
"""

import pytest

from chaosmesh_py.localmesh.lifecycle import DEFAULT_MANIFESTS
from chaosmesh_py.localmesh.mesh import LocalMesh
from chaosmesh_py.localmesh.topology import free_ports
from tests.conftest import ISTIO_CRDS, leftover_faults


@pytest.fixture(scope="session")
def local_mesh(tmp_path_factory):
    mesh = LocalMesh(
        tmp_path_factory.mktemp("mesh"),
        [ISTIO_CRDS],
        DEFAULT_MANIFESTS,
        free_ports(),
        reap_interval_s=0.5,
    )
    mesh.start()
    yield mesh
    mesh.stop()


@pytest.fixture
def mesh(local_mesh, monkeypatch, tmp_path):
    """The mesh as loaded, reached the chaosk8s way (KUBERNETES_HOST and the mesh's token and
    CA, no kubeconfig)."""
    local_mesh.reset()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_HOST", local_mesh.api.url)
    monkeypatch.setenv("KUBERNETES_API_KEY", local_mesh.credentials.token)
    monkeypatch.setenv("KUBERNETES_CA_CERT_FILE", str(local_mesh.credentials.ca_file))
    monkeypatch.delenv("CHAOSMESH_RUN_ID", raising=False)
    yield local_mesh
    left = leftover_faults(local_mesh.api)
    assert not left, f"the test left faults behind: {left}"


def through_sidecar(mesh, service, path, workload="sleep"):
    """URL and headers for a request from ``workload`` to ``service`` through its sidecar."""
    info = mesh.info()
    return (
        f"{info['workloads'][workload]['sidecar_url']}{path}",
        {"Host": info["services"][service]["host"]},
    )


def workload_of(pod):
    """The workload (Deployment) a pod's name belongs to, as Istio names workloads: without its
    ReplicaSet hash and pod id (httpbin names the pod that answered)."""
    parts = str(pod).rsplit("-", 2)
    return parts[0] if len(parts) == 3 else pod


def cluster_stat(mesh, cluster, name):
    return mesh.envoy.stats().get(f"cluster.{cluster}.{name}", 0)


def httpbin_route(mesh, **route):
    """A VirtualService for httpbin (one route, ``route`` fields added) that faults can go on."""
    mesh.api.create(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "httpbin", "namespace": "bookinfo"},
            "spec": {
                "hosts": ["httpbin"],
                "http": [
                    {"name": "httpbin", "route": [{"destination": {"host": "httpbin"}}], **route}
                ],
            },
        }
    )
    mesh.sync()


def create_service(mesh, name, selector, port=9080):
    """A Kubernetes Service in Bookinfo's namespace (e.g. a per-version one), through the API."""
    mesh.api.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "bookinfo"},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": port}]},
        }
    )
    mesh.sync()
