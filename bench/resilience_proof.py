"""Predicted vs measured through the local mesh's real Envoy: retries, absorbed errors,
circuit-breaker overflow, outlier ejection, and tries along a call path.

    python bench/resilience_proof.py [--requests 2000] [--waves 40]

One local mesh; each scenario (``tests/local/resilience_scenarios.py``, the same the proof
tests assert) starts from the mesh's initial resources, writes its policy through the API, sends
counted requests through the ``sleep`` workload's sidecar and prints one Markdown table: the
prediction, the measurement, the requests behind it, the tolerance and whether it held.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.local_mesh import running_mesh  # noqa: E402
from chaosmesh_py.resilience.prediction import table  # noqa: E402
from tests.local import resilience_scenarios as scenarios  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="for the absorbed error ratio")
    parser.add_argument("--waves", type=int, default=40, help="per concurrency, for overflow")
    options = parser.parse_args()
    failed = 0
    with running_mesh() as mesh:
        runs = [
            (
                "Amplification: an always-failing upstream (httpbin /status/503)",
                lambda: scenarios.amplification(mesh),
            ),
            (
                "Absorbed error ratio: httpbin failing 50 %, attempts 3 on 5xx",
                lambda: scenarios.absorbed_errors(mesh, requests=options.requests),
            ),
            (
                "Overflow: Istio's circuit-breaking task (maxConnections 1, pending 1)",
                lambda: scenarios.overflow(mesh, waves=options.waves),
            ),
            (
                "Ejection: httpbin v1 failing on its inbound side, consecutive5xxErrors 3",
                lambda: scenarios.ejection(mesh),
            ),
            (
                "Tries along a call path: productpage -> reviews -> ratings",
                lambda: scenarios.multi_hop_amplification(mesh),
            ),
        ]
        for title, run in runs:
            mesh.reset()
            rows = run()
            failed += sum(not row.passed for row in rows)
            print(f"\n### {title}\n\n{table(rows)}", flush=True)
    print(f"\n{failed} row(s) did not hold")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
