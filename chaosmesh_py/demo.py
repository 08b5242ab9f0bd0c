"""The local demo: a Bookinfo fault-injection experiment, end to end, on this machine.

    python -m chaosmesh_py.demo experiments/bookinfo-ratings-delay.json

Starts the Kubernetes API double with Istio's CRDs, loads Bookinfo's routing
(``experiments/bookinfo/mesh.yaml``) into namespace ``bookinfo``, runs the experiment with the
real ``chaos run`` against it (credentials the chaosk8s way: ``KUBERNETES_HOST``), and shows the
ratings VirtualService before, during (from the journal) and after. Until the local data plane
lands, there is no Bookinfo to probe, so the steady-state hypothesis is left out, and said so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_py.apiserver import ApiServer

NAMESPACE = "bookinfo"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CRDS = ROOT.parent / "shared/istio/crds-1.30.3.gen.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path)
    parser.add_argument(
        "--crds",
        type=Path,
        default=Path(os.environ.get("CHAOSMESH_ISTIO_CRDS") or DEFAULT_CRDS),
        help="Istio's CRD file (from an Istio release or `kubectl get crd -o yaml`)",
    )
    options = parser.parse_args()
    crds = [options.crds] if options.crds.exists() else []
    if not crds:
        print(f"! no Istio CRDs at {options.crds}: validating with the project's own checks only")

    with ApiServer(crd_paths=crds) as server, tempfile.TemporaryDirectory() as work:
        server.create_namespace(NAMESPACE)
        for document in yaml.safe_load_all((ROOT / "experiments/bookinfo/mesh.yaml").read_text()):
            document["metadata"]["namespace"] = NAMESPACE
            server.create(document)
        before = _ratings(server)
        print(f"Kubernetes API (double) at {server.url}, Bookinfo routing in '{NAMESPACE}'")
        _show("ratings VirtualService before", before["spec"]["http"])

        # No data plane yet: nothing serves Bookinfo's pages, so the steady-state probes are
        # left out of this run; the method, rollbacks and control run as written.
        experiment = json.loads(options.experiment.read_text())
        experiment.pop("steady-state-hypothesis", None)
        runnable = Path(work) / options.experiment.name
        runnable.write_text(json.dumps(experiment))
        journal_path = Path(work) / "journal.json"
        environment = {
            **os.environ,
            "KUBECONFIG": str(Path(work) / "none"),  # chaosk8s credential path 3
            "KUBERNETES_HOST": server.url,
            "BOOKINFO_NAMESPACE": NAMESPACE,
        }
        command = [
            str(Path(sys.executable).parent / "chaos"),
            "--no-version-check",
            "run",
            "--journal-path",
            str(journal_path),
            str(runnable),
        ]
        print("(steady-state hypothesis left out: no local data plane serves Bookinfo yet)")
        print("$ chaos " + " ".join(command[1:]))
        finished = subprocess.run(command, env=environment, cwd=ROOT, check=False)
        journal = json.loads(journal_path.read_text())
        for activity in journal["run"]:
            output = activity.get("output")
            print(f"- {activity['activity']['name']}: {activity['status']} -> {output}")
        for activity in journal["rollbacks"]:
            print(f"- rollback {activity['activity']['name']}: {activity.get('output')}")

        after = _ratings(server)
        _show("ratings VirtualService after", after["spec"]["http"])
        restored = after["spec"] == before["spec"] and after["metadata"].get(
            "annotations"
        ) == before["metadata"].get("annotations")
        print(
            "Restored exactly: spec and annotations equal the original."
            if restored
            else "NOT restored: the VirtualService differs from the original."
        )
        return 0 if finished.returncode == 0 and restored else 1


def _ratings(server: ApiServer) -> dict[str, Any]:
    resource = server.get("networking.istio.io/v1", "VirtualService", NAMESPACE, "ratings")
    assert resource is not None
    return resource


def _show(title: str, routes: list[dict[str, Any]]) -> None:
    print(f"{title}:")
    for route in routes:
        print("  " + json.dumps(route, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
