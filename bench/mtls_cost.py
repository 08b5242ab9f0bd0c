"""What mutual TLS costs on the local mesh: wrk through one caller sidecar -> the server's inbound
-> app, under STRICT (mTLS) against DISABLE (auto mTLS then sends plain text).

    python bench/mtls_cost.py [--seconds 5] [--rounds 3] [--connections 10]

One local mesh. The caller is the ``sleep`` pod's sidecar (identity ``sleep``; wrk sends
``Host: httpbin:8000`` to it as the pod would), the server httpbin's two pods. Each round sets
the namespace's PeerAuthentication through the API (the mesh's control loop re-translates:
STRICT gives the inbound a TLS-only chain and the caller's cluster its certificate; DISABLE a
plain-text chain, and the cluster no TLS, as istiod's auto mTLS infers from the namespace),
checks the path is what it says (the inbounds' TLS handshakes rise under STRICT only), then
``wrk -t1 --latency`` GETs ``/get``, alternating modes, ``--rounds`` times, at 1 connection and
at ``--connections``. Printed: requests/s, p50, p99 of each round and the medians' ratios
(STRICT / DISABLE). One Envoy does both ends of each handshake here, on one worker thread; wrk
keeps its connections open, so this is the cost of encrypting requests (and of the handshakes
of new upstream connections), not of a handshake per request. Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_probe import (  # noqa: E402
    medians,
    print_comparison,
    wrk,
    wrk_comparison_options,
)
from bench.local_mesh import running_mesh  # noqa: E402
from chaosmesh_py.localmesh.apiserver import ApiError  # noqa: E402

SERVICE = "httpbin"
CALLER = "sleep"
MODES = ("STRICT", "DISABLE")
HANDSHAKES = r"^listener\..*\.ssl\.handshake$"


def set_mode(mesh: Any, mode: str) -> None:
    """The namespace's PeerAuthentication ``default`` in ``mode``, applied before returning."""
    body = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "bookinfo"},
        "spec": {"mtls": {"mode": mode}},
    }
    with contextlib.suppress(ApiError):  # the first round: nothing to delete
        mesh.api.delete(body["apiVersion"], body["kind"], "bookinfo", "default")
    mesh.api.create(body)
    mesh.sync()


def measure(mesh: Any, connections: int, options: argparse.Namespace) -> dict[str, Any]:
    url = f"{mesh.info()['workloads'][CALLER]['sidecar_url']}/get"
    headers = {"Host": mesh.info()["services"][SERVICE]["host"]}
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for round_number in range(options.rounds):
        for mode in MODES:
            set_mode(mesh, mode)
            before = sum(mesh.envoy.stats(HANDSHAKES).values())
            wrk(url, connections, 1, headers)  # warm up: new upstream connections, first requests
            row = wrk(url, connections, options.seconds, headers)
            handshakes = sum(mesh.envoy.stats(HANDSHAKES).values()) - before
            # Each mode is what it says: the mode's change drained the pooled connections, so
            # under STRICT the new ones were TLS handshakes at the inbound; DISABLE has none.
            assert (handshakes > 0) == (mode == "STRICT"), (mode, handshakes)
            results[mode].append(row)
            print(
                f"-c{connections} round {round_number + 1} {mode:8} {row['rps']:8.0f} req/s"
                f"  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms",
                flush=True,
            )
    return medians(results)


def main() -> int:
    options = wrk_comparison_options(__doc__ or "")
    if options is None:
        return 0
    with running_mesh() as mesh:
        tables = [
            (connections, measure(mesh, connections, options))
            for connections in sorted({1, options.connections})
        ]
    print_comparison(tables, "mode", ("STRICT", "DISABLE"), options.rounds, options.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
