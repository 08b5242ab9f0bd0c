"""Security changes on the local mesh: time from the call to a verified effect, and from the
removal call to the data plane showing it gone, per action.

    python bench/security_changes.py [--rounds 5]

Each round, on Bookinfo: ``set_mtls_mode`` STRICT for the namespace (verified on every pod's
inbound chains and by a plain-text request to each pod), ``deny_requests`` reviews -> ratings
(verified in ratings' RBAC filter and by a 403 from reviews-v2's sidecar), ``require_jwt`` on
httpbin with the mesh's issuer, ``expire_certificate`` on ratings (Envoy's /certs); then
``remove_security_changes``, which waits until the sidecars no longer show any of them. Median
and p95 over the rounds, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.local_mesh import percentile, running_mesh  # noqa: E402
from chaosmesh_py.localmesh.mesh import LocalMesh  # noqa: E402
from chaosmesh_py.security import actions  # noqa: E402
from chaosmesh_py.security.rollbacks import remove_security_changes  # noqa: E402

NAMESPACE = "bookinfo"


def changes(mesh: LocalMesh) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    issuer = mesh.info()["jwt_issuer"]
    return {
        "set_mtls_mode STRICT (8 pods)": lambda run: actions.set_mtls_mode(
            mode="STRICT", namespace=NAMESPACE, configuration=run
        ),
        "deny_requests reviews -> ratings, 403 seen": lambda run: actions.deny_requests(
            destination_labels={"app": "ratings"},
            namespace=NAMESPACE,
            sources={"principals": [f"cluster.local/ns/{NAMESPACE}/sa/bookinfo-reviews"]},
            verify={"from": "reviews-v2", "to": "ratings", "path": "/ratings/0"},
            configuration=run,
        ),
        "require_jwt on httpbin": lambda run: actions.require_jwt(
            workload_labels={"app": "httpbin"},
            namespace=NAMESPACE,
            issuer=issuer["issuer"],
            jwks_uri=issuer["jwks_uri"],
            configuration=run,
        ),
        "expire_certificate on ratings": lambda run: actions.expire_certificate(
            workload_labels={"app": "ratings"}, namespace=NAMESPACE, configuration=run
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    times: dict[str, list[float]] = {}
    with running_mesh() as mesh:
        for number in range(options.rounds):
            for label, change in changes(mesh).items():
                run = {"chaosmesh_run_id": f"benchsecurity{number}x{len(times.get(label, []))}"}
                started = time.monotonic()
                report = change(run)
                assert report["effect"]["verified"] is True, report["effect"]
                times.setdefault(label, []).append(time.monotonic() - started)
                started = time.monotonic()
                removed = remove_security_changes(namespace=NAMESPACE, configuration=run)
                assert removed["effect"]["verified"] is True, removed["effect"]
                removal = f"  {label.split()[0]}: removed, gone from the sidecars"
                times.setdefault(removal, []).append(time.monotonic() - started)
    print(f"\nsecurity changes over {options.rounds} rounds (ms){'':<25}median      p95")
    for label, values in times.items():
        print(
            f"  {label:<58} {1000 * statistics.median(values):>7.1f} "
            f"{1000 * percentile(values, 0.95):>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
