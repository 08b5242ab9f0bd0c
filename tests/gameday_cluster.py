"""A cluster for game-day tests: the API double serving Leases, Bookinfo's routing, and game days
whose experiments really run (``chaos run`` subprocesses) against it.

Until the double serves ``coordination.k8s.io/v1`` Leases itself, it is given a CustomResource
Definition of the same group, version, kind and fields: the runner reaches it through the same
URLs, the same client and the same resourceVersion rules a cluster applies.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaosmesh_py.gameday import runner
from chaosmesh_py.gameday.suite import GameDay, Step
from chaosmesh_py.localmesh.apiserver import ApiServer
from chaosmesh_py.localmesh.apiserver.resources import Registry, load_crds
from tests.conftest import BOOKINFO_MESH, ISTIO_CRDS, NAMESPACE, ROOT, leftover_faults
from tests.conftest import python_activity as activity
from tests.e2e.test_chaos_run import LENIENT_CONTROL, delay_action

LEASE_FIELDS = {
    "holderIdentity": {"type": "string"},
    "leaseDurationSeconds": {"type": "integer", "format": "int32"},
    "acquireTime": {"type": "string", "format": "date-time"},
    "renewTime": {"type": "string", "format": "date-time"},
    "leaseTransitions": {"type": "integer", "format": "int32"},
}
LEASE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "leases.coordination.k8s.io"},
    "spec": {
        "group": "coordination.k8s.io",
        "names": {"kind": "Lease", "plural": "leases", "singular": "lease"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": LEASE_FIELDS},
                        },
                    }
                },
            }
        ],
    },
}
SYSTEM_OK = {
    "type": "probe",
    "name": "system-ok",
    "tolerance": 0,
    "provider": {"type": "process", "path": "true"},
}


def serves_leases(crd_paths: list[Path]) -> bool:
    return (
        Registry(load_crds(crd_paths)).by_plural("coordination.k8s.io", "v1", "leases") is not None
    )


@pytest.fixture(scope="module")
def lease_server(tmp_path_factory):
    paths = [ISTIO_CRDS]
    if not serves_leases(paths):
        crd = tmp_path_factory.mktemp("crds") / "lease.yaml"
        crd.write_text(yaml.safe_dump(LEASE_CRD))
        paths.append(crd)
    with ApiServer(crd_paths=paths) as server:
        yield server


@pytest.fixture
def cluster(lease_server, monkeypatch, tmp_path):
    """The double, emptied, Bookinfo's routing in ``bookinfo``; credentials from the
    environment (chaosk8s' path 3), as the runner's ``chaos run``s read them."""
    lease_server.reset()
    lease_server.create_namespace(NAMESPACE)
    for document in yaml.safe_load_all(BOOKINFO_MESH.read_text()):
        document["metadata"]["namespace"] = NAMESPACE
        lease_server.create(document)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_HOST", lease_server.url)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # tests.e2e.slow's activity
    monkeypatch.delenv("CHAOSMESH_RUN_ID", raising=False)
    yield lease_server
    lease_server.clear_faults()
    assert not leftover_faults(lease_server), "the test left faults behind"


def wait_activity(seconds: float) -> dict[str, Any]:
    return activity("wait", "tests.e2e.slow", "wait", seconds=seconds)


def write_experiment(directory: Path, name: str, method: list[dict[str, Any]]) -> Path:
    document = {
        "title": name,
        "description": name,
        "configuration": {"namespace": NAMESPACE},
        "controls": [LENIENT_CONTROL],
        "steady-state-hypothesis": {"title": "the system is fine", "probes": [SYSTEM_OK]},
        "method": method,
        "rollbacks": [],
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def delay_then_wait(directory: Path, name: str, seconds: float) -> Path:
    """An experiment that delays ratings for Jason, then holds the fault ``seconds``."""
    return write_experiment(directory, name, [delay_action(), wait_activity(seconds)])


def gameday(tmp_path: Path, experiments: list[Path], **fields: Any) -> GameDay:
    pauses = fields.pop("pauses", [0.0] * len(experiments))
    return GameDay(
        name="bookinfo-weekly",
        namespace=NAMESPACE,
        experiments=tuple(Step(p, pause) for p, pause in zip(experiments, pauses, strict=True)),
        source=tmp_path / "gameday.yaml",
        **fields,
    )


class Announcements:
    """A recording Announcer: what the runner told, in order."""

    def __init__(self, *_: Any) -> None:
        self.told: list[tuple[str, Any]] = []

    def event(self, name: str, summary: Any) -> None:
        self.told.append((name, dict(summary)))

    def region_started(self, at: datetime, text: str) -> None:
        self.told.append(("region-started", at))

    def region_ended(self, at: datetime, text: str) -> None:
        self.told.append(("region-ended", at))

    def close(self) -> list[dict[str, Any]]:
        return [{"target": "recorder", "event": name, "ok": True} for name, _ in self.told]


def options(tmp_path: Path, **overrides: Any) -> runner.Options:
    """Lenient as ``gate --allow-unverified``: the double has no data plane to count hits in."""
    announcements = overrides.pop("announcements", Announcements())
    return runner.Options(
        results_dir=tmp_path / "results",
        waivers=runner.gate.Waivers(allow_unverified=True),
        announcer=lambda *_: announcements,
        **overrides,
    )


def fixed_clock(start: datetime):
    """A clock that starts at ``start`` and runs at the real pace."""
    real_start = datetime.now(UTC)
    return lambda: start + (datetime.now(UTC) - real_start)
