"""The policy matrix's throughput on the local mesh: cells per second for a Bookinfo matrix.

    python bench/security_matrix.py [--runs 3]

Every Bookinfo workload plus sleep and the outside client, to the four Bookinfo services, GET
and POST, with six token states (none, and five minted per run with a key of this bench's own:
without a RequestAuthentication every token passes): 8 x 4 x 2 x 6 = 384 cells, each one real
request on a new connection. Measured under Istio's defaults, under STRICT for the namespace
(the outside cells reset) and under STRICT with the authz-http task's policies (most cells
403 "RBAC: access denied"), at concurrency 1, 4 (the probe's default) and 16; ``--runs`` runs
each, the median shown. Timed as the probe times it: from the first request to the last answer
(the tokens are minted before).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from bench.local_mesh import running_mesh  # noqa: E402
from chaosmesh_py.localmesh.mesh import LocalMesh  # noqa: E402
from chaosmesh_py.security.probes import policy_matrix  # noqa: E402
from tests.local.test_security_matrix import AUTHZ_HTTP_TASK  # noqa: E402

SOURCES = [
    "productpage-v1",
    "details-v1",
    "reviews-v1",
    "reviews-v2",
    "reviews-v3",
    "ratings-v1",
    "sleep",
    "outside",
]
DESTINATIONS = ["productpage", "details", "reviews", "ratings"]
REQUESTS = [{"method": "GET", "path": "/"}, {"method": "POST", "path": "/"}]
TOKENS = ["none", "valid", "expired", "wrong-issuer", "wrong-audience", "bad-signature"]
NS = "bookinfo"
# The authz-http task's outcomes for these sources (reviews v1-v3 share reviews' identity).
AUTHZ_HTTP_EXPECTED = {
    "default": "403",
    "rules": [
        {"destination": "productpage", "method": "GET", "outcome": "allowed"},
        {
            "source": "productpage-v1",
            "destination": ["details", "reviews"],
            "method": "GET",
            "outcome": "allowed",
        },
        {
            "source": ["reviews-v1", "reviews-v2", "reviews-v3"],
            "destination": "ratings",
            "method": "GET",
            "outcome": "allowed",
        },
        {"source": "outside", "outcome": "reset"},
    ],
}
STRICT = {
    "apiVersion": "security.istio.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "default", "namespace": "bookinfo"},
    "spec": {"mtls": {"mode": "STRICT"}},
}


def key_file(directory: Path) -> Path:
    path = directory / "bench-key.pem"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def measure(key: Path, concurrency: int, runs: int, expect: dict) -> tuple[int, float, int]:
    """(cells, median cells per second, cells that differed in the last run)."""
    rates = []
    for _ in range(runs):
        result = policy_matrix(
            sources=SOURCES,
            destinations=DESTINATIONS,
            requests=REQUESTS,
            tokens=TOKENS,
            issuer="https://bench.chaosmesh.invalid",
            audiences=["bookinfo"],
            signing_key_file=str(key),
            expect=expect,
            concurrency=concurrency,
            fail_on_difference=False,
        )
        rates.append(result["cells_per_s"])
    return result["cells"], statistics.median(rates), len(result["differs"])


def table(mesh: LocalMesh, key: Path, runs: int) -> None:
    print(f"\npolicy matrix, Bookinfo, {runs} run(s) each     cells  cells/s (median)  differ")
    outside_reset = {"source": "outside", "outcome": "reset"}
    setups = (
        ("Istio's defaults", (), {"default": "allowed"}),
        ("STRICT", (STRICT,), {"default": "allowed", "rules": [outside_reset]}),
        ("STRICT + authz-http task", (STRICT, *AUTHZ_HTTP_TASK), AUTHZ_HTTP_EXPECTED),
    )
    for label, documents, expect in setups:
        for document in documents:
            mesh.api.create({**document, "metadata": {**document["metadata"], "namespace": NS}})
        mesh.sync()
        for concurrency in (1, 4, 16):
            cells, rate, differ = measure(key, concurrency, runs, expect)
            row = f"{label}, concurrency {concurrency}"
            print(f"  {row:<40} {cells:>6} {rate:>17.0f} {differ:>7}")
        for document in documents:
            mesh.api.delete(
                document["apiVersion"], document["kind"], NS, document["metadata"]["name"]
            )
        mesh.sync()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, running_mesh() as mesh:
        table(mesh, key_file(Path(work)), options.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
