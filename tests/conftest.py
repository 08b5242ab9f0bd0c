"""Fixtures shared by every test folder: the Kubernetes API double, run ids, credentials.

The double is a real HTTP server (``chaosmesh_py.localmesh.apiserver``) validating against
Istio's own CRDs; tests drive it through the real ``kubernetes`` client, exactly as against a
cluster.
"""

import itertools
import os
from pathlib import Path

import pytest
import yaml

from chaosmesh_py.engine.kinds import sweep_kinds
from chaosmesh_py.istio import owned_object, owner_record, route_copy
from chaosmesh_py.localmesh.apiserver import ApiServer

ROOT = Path(__file__).resolve().parents[1]
ISTIO_CRDS = Path(
    os.environ.get("CHAOSMESH_ISTIO_CRDS") or ROOT.parent / "shared/istio/crds-1.30.3.gen.yaml"
)
BOOKINFO_MESH = ROOT / "experiments/bookinfo/mesh.yaml"
NAMESPACE = "bookinfo"

_run_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def ledger_dir(tmp_path_factory, monkeypatch):
    """Every test's ledgers in a directory of its own, never the user's state directory."""
    directory = tmp_path_factory.mktemp("ledger")
    monkeypatch.setenv("CHAOSMESH_LEDGER_DIR", str(directory))
    return directory


@pytest.fixture(scope="session")
def api_server():
    if not ISTIO_CRDS.exists():
        pytest.fail(f"Istio CRDs not found at {ISTIO_CRDS}; set CHAOSMESH_ISTIO_CRDS")
    with ApiServer(crd_paths=[ISTIO_CRDS]) as server:
        yield server


@pytest.fixture
def api(api_server, monkeypatch, tmp_path):
    """The double, emptied, with Bookinfo's routing in namespace ``bookinfo``.

    Credentials come the chaosk8s way, path 3: no kubeconfig, ``KUBERNETES_HOST``.
    """
    api_server.reset()
    api_server.create_namespace(NAMESPACE)
    for document in yaml.safe_load_all(BOOKINFO_MESH.read_text()):
        document["metadata"]["namespace"] = NAMESPACE
        api_server.create(document)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_HOST", api_server.url)
    monkeypatch.delenv("CHAOSMESH_RUN_ID", raising=False)
    api_server.request_log.clear()
    yield api_server
    api_server.clear_faults()
    left = leftover_faults(api_server)
    assert not left, f"the test left faults behind: {left}"


def leftover_faults(server):
    """Everything chaosmesh still holds on any object of the double, by record: each run's
    record (an annotation), the routes, fields and objects it names, fences, and orphans that
    prove themselves ours. A name alone is nothing: a user's route named ``chaosmesh-…`` is not
    a leftover."""
    left = []
    for kind in sweep_kinds():
        for resource in server.list(f"{kind.group}/{kind.version}", kind.kind):
            metadata = resource["metadata"]
            where = f"{metadata['namespace']}/{metadata['name']}"
            held = owner_record.holdings(resource)
            present = {r.get("name") for r in (resource.get("spec") or {}).get("http") or []}
            for record in held.records:
                left += [f"{where}: route {name}" for name in record.routes if name in present]
                left += [f"{where}: field {owner_record.path_text(f.path)}" for f in record.fields]
                left += [f"{where}: object {kind.kind}"] if record.owns_object else []
                left.append(f"{where}: annotation {owner_record.owner_key(record.run_id)}")
            left += [f"{where}: annotation {owner_record.fence_key(r)}" for r in held.fences]
            left += [f"{where}: annotation {key} (unreadable)" for key in held.unreadable]
            recorded = {name for record in held.records for name in record.routes}
            left += [
                f"{where}: route {name} (orphan)"
                for name in route_copy.owned_routes(resource)
                if name not in recorded
            ]
            if not held.records and owned_object.proven_owner(resource):
                left.append(f"{where}: object {kind.kind} (orphan)")
    return left


def abort_action(name, virtual_service, **arguments):
    """An experiment action: a 503 for every request to ``virtual_service`` in Bookinfo's
    namespace (``arguments`` add or override, e.g. headers for narrowing)."""
    return python_activity(
        name,
        "chaosmesh_py.faults.actions",
        "inject_abort",
        virtual_service=virtual_service,
        namespace=NAMESPACE,
        http_status=503,
        percentage=100,
        **arguments,
    )


def python_activity(name, module, func, **arguments):
    """An experiment action calling ``module.func(**arguments)``."""
    return {
        "type": "action",
        "name": name,
        "provider": {"type": "python", "module": module, "func": func, "arguments": arguments},
    }


@pytest.fixture
def configuration():
    """A fresh run per test, as the control would give one to a `chaos run`."""
    return {"chaosmesh_run_id": f"test{next(_run_numbers)}"}
