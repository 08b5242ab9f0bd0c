"""What the posture checks cost: Istio's authorization evaluator alone, and the whole
`security_posture` probe on the local mesh, measured (real requests) and predicted only.

    python bench/security_posture.py [--rounds 5]

1. ``decide`` over 10, 100 and 1000 AuthorizationPolicies (a third DENY, mixed principals,
   namespaces, paths, methods and a when condition, every one selecting the workload): decisions
   per second for requests that match none (each policy's every rule is tried), CPU time.
2. ``security_posture`` on Bookinfo's namespace of the local mesh (9 workloads) with a
   RequestAuthentication and a DENY on namespaces applied, so every check has work: wall time
   per report with ``measure: true`` (a plain-text GET per pod, a GET without a token per
   selected workload) and ``measure: false``; median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.local_mesh import running_mesh  # noqa: E402
from chaosmesh_py.istio.authorization import RequestFacts, decide, parse  # noqa: E402
from chaosmesh_py.security.probes import security_posture  # noqa: E402

NAMESPACE = "bookinfo"


def policies(count: int) -> list[Any]:
    generated = []
    for index in range(count):
        rule = {
            "from": [
                {"source": {"principals": [f"cluster.local/ns/team{index}/sa/app"]}},
                {"source": {"namespaces": [f"team{index}-*"]}},
            ],
            "to": [{"operation": {"methods": ["POST", "PUT"], "paths": [f"/api/{index}/*"]}}],
            "when": [{"key": "request.headers[x-team]", "values": [f"t{index}"]}],
        }
        generated.append(
            parse(
                {
                    "metadata": {"name": f"p{index}", "namespace": "shop"},
                    "spec": {"action": "DENY" if index % 3 == 0 else "ALLOW", "rules": [rule]},
                }
            )
        )
    return generated


def bench_decide(count: int) -> float:
    """Decisions per second (CPU time) for a request no policy matches."""
    mesh_policies = policies(count)
    request = RequestFacts(
        namespace="shop",
        labels={"app": "web"},
        port=8080,
        source_principal="cluster.local/ns/other/sa/app",
        method="GET",
        path="/home",
        headers={"x-team": "none"},
    )
    decisions = max(20, 20000 // count)
    start = time.process_time()
    for _ in range(decisions):
        assert not decide(mesh_policies, request).allowed
    return decisions / (time.process_time() - start)


def security_objects(mesh: Any) -> None:
    issuer = mesh.info()["jwt_issuer"]
    for kind, name, spec in (
        (
            "RequestAuthentication",
            "jwt-productpage",
            {
                "selector": {"matchLabels": {"app": "productpage"}},
                "jwtRules": [{"issuer": issuer["issuer"], "jwksUri": issuer["jwks_uri"]}],
            },
        ),
        (
            "AuthorizationPolicy",
            "deny-bookinfo-to-ratings",
            {
                "selector": {"matchLabels": {"app": "ratings"}},
                "action": "DENY",
                "rules": [{"from": [{"source": {"namespaces": [NAMESPACE]}}]}],
            },
        ),
    ):
        mesh.api.create(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": spec,
            }
        )
    mesh.sync()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    print("decide (CPU): policies  decisions/s  us/decision/policy")
    for count in (10, 100, 1000):
        rate = bench_decide(count)
        print(f"  {count:>20}  {rate:>11.0f}  {1e6 / rate / count:>18.2f}")
    with running_mesh() as mesh:
        security_objects(mesh)
        print(f"security_posture on {NAMESPACE} (wall, median of {options.rounds}):")
        for measure in (True, False):
            times, findings = [], 0
            for _ in range(options.rounds):
                start = time.perf_counter()
                report = security_posture(namespace=NAMESPACE, measure=measure)
                times.append(time.perf_counter() - start)
                findings = report["summary"]["findings"]
            kind = "measured " if measure else "predicted"
            print(
                f"  {kind}: {statistics.median(times) * 1000:7.1f} ms "
                f"({len(report['workloads'])} workloads, {findings} findings)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
