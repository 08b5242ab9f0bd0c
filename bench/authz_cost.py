"""What authorization and request authentication cost on a pod's inbound: wrk to one inbound
with no policy, with RBAC (a handful of rules), and with RBAC + jwt_authn verifying a token.

    python bench/authz_cost.py [--seconds 5] [--rounds 3] [--connections 4]

One local mesh; ``wrk -t1 --latency`` GETs ``/get`` straight on httpbin-v1's inbound (its pod
address: plain text, PERMISSIVE, no caller sidecar in the way), so the three setups differ only
in the inbound's HTTP filters, built from the resources through the API as the mesh builds them:

- ``none``: no policy (the fault filter and the router);
- ``rbac``: an ALLOW policy of five rules (paths, methods, a header, IP blocks, namespaces) whose
  last rule matches, and a DENY of two rules that do not: every rule is evaluated;
- ``rbac+jwt``: the same plus a RequestAuthentication (the mesh's issuer, its JWKS as the local
  istiod fetched it); each request carries a valid RS256 token the filter verifies.

The setups alternate ``--rounds`` times (the policies applied and the old listener's
connections drained between). Checked: in ``rbac`` and ``rbac+jwt`` each of the inbound's two
RBAC filters counts every request allowed, and in ``rbac+jwt`` jwt_authn counts every request
verified. Printed: requests/s, p50 and p99 per round, the medians, and the ratios to ``none``.
Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jwt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_probe import wrk  # noqa: E402
from bench.local_mesh import running_mesh  # noqa: E402

SERVER = "httpbin-v1"
SECURITY = "security.istio.io/v1"
SELECTOR = {"matchLabels": {"app": "httpbin", "version": "v1"}}
ALLOW = {
    "selector": SELECTOR,
    "rules": [
        {"to": [{"operation": {"paths": ["/admin/*", "/internal"]}}]},
        {"to": [{"operation": {"methods": ["DELETE", "PUT"]}}]},
        {"when": [{"key": "request.headers[x-team]", "values": ["blue", "green"]}]},
        {"from": [{"source": {"namespaces": ["payments"]}}]},
        {
            "from": [{"source": {"ipBlocks": ["127.0.0.0/8"]}}],
            "to": [{"operation": {"methods": ["GET"], "paths": ["/get", "/headers"]}}],
        },
    ],
}
DENY = {
    "selector": SELECTOR,
    "action": "DENY",
    "rules": [
        {"to": [{"operation": {"paths": ["/delay/*"]}}]},
        {"when": [{"key": "request.headers[x-user]", "values": ["mallory"]}]},
    ],
}
SETUPS = ("none", "rbac", "rbac+jwt")
RBAC_FILTERS = 2  # DENY's, then ALLOW's


def apply(mesh: Any, setup: str) -> None:
    """Make httpbin-v1's inbound what ``setup`` says, and wait out the old filter chains."""
    wanted = {"none": {}, "rbac": {"allow": ALLOW, "deny": DENY}}.get(setup)
    if wanted is None:
        issuer = mesh.info()["jwt_issuer"]
        wanted = {
            "allow": ALLOW,
            "deny": DENY,
            "jwt": {
                "selector": SELECTOR,
                "jwtRules": [{"issuer": issuer["issuer"], "jwksUri": issuer["jwks_uri"]}],
            },
        }
    for kind in ("AuthorizationPolicy", "RequestAuthentication"):
        for item in mesh.api.list(SECURITY, kind):
            mesh.api.delete(SECURITY, kind, "bookinfo", item["metadata"]["name"])
    for name, spec in wanted.items():
        kind = "RequestAuthentication" if "jwtRules" in spec else "AuthorizationPolicy"
        metadata = {"name": f"bench-{name}", "namespace": "bookinfo"}
        mesh.api.create({"apiVersion": SECURITY, "kind": kind, "metadata": metadata, "spec": spec})
    mesh.sync()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        mesh.envoy.stats(r"listener_manager\.total_.*draining").values()
    ):
        time.sleep(0.05)


def a_token(mesh: Any) -> str:
    issuer = mesh.info()["jwt_issuer"]
    key = Path(issuer["private_key_file"]).read_bytes()
    claims = {"iss": issuer["issuer"], "sub": "bench", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, key, algorithm="RS256")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (Debian: apt-get install wrk)")
        return 0
    results: dict[str, list[dict[str, float]]] = {setup: [] for setup in SETUPS}
    with running_mesh() as mesh:
        info = mesh.info()["workloads"][SERVER]
        url, prefix = f"{info['pod_url']}/get", f"http.{info['inbound_stat_prefix']}"
        headers = {"Authorization": f"Bearer {a_token(mesh)}"}
        for round_number in range(options.rounds):
            for setup in SETUPS:
                apply(mesh, setup)
                wrk(url, options.connections, 1, headers)  # warm up the new chain
                before = mesh.envoy.stats(prefix)
                row = wrk(url, options.connections, options.seconds, headers)
                after = mesh.envoy.stats(prefix)
                check(
                    setup,
                    row,
                    before=before,
                    after=after,
                    prefix=prefix,
                    connections=options.connections,
                )
                results[setup].append(row)
                print(
                    f"round {round_number + 1} {setup:9} {row['rps']:8.0f} req/s"
                    f"  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms",
                    flush=True,
                )
    medians = {
        setup: {k: statistics.median(r[k] for r in rows) for k in ("rps", "p50_ms", "p99_ms")}
        for setup, rows in results.items()
    }
    print(
        f"\nwrk -t1 -c{options.connections} to {SERVER}'s inbound, medians of {options.rounds}"
        f" rounds of {options.seconds:g} s\n"
    )
    print("| inbound filters | req/s | p50 ms | p99 ms | throughput vs none | p50 vs none |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = medians["none"]
    for setup, median in medians.items():
        print(
            f"| {setup} | {median['rps']:.0f} | {median['p50_ms']:.2f} | {median['p99_ms']:.2f}"
            f" | {median['rps'] / base['rps']:.2f}x | {median['p50_ms'] / base['p50_ms']:.2f}x |"
        )
    return 0


def check(
    setup: str,
    row: dict[str, float],
    *,
    before: dict[str, int],
    after: dict[str, int],
    prefix: str,
    connections: int,
) -> None:
    """Each setup is what it says: RBAC allowed every request, jwt_authn verified each."""

    def moved(name: str) -> int:
        return after.get(f"{prefix}.{name}", 0) - before.get(f"{prefix}.{name}", 0)

    requests = row["requests"]
    if setup == "none":
        assert moved("rbac.allowed") == 0, setup
    else:
        # Each RBAC filter (here DENY's and ALLOW's) counts every request it lets through.
        allowed = moved("rbac.allowed")
        assert abs(allowed - RBAC_FILTERS * requests) <= RBAC_FILTERS * connections, (
            setup,
            allowed,
        )
        assert moved("rbac.denied") == 0, setup
    if setup == "rbac+jwt":
        assert abs(moved("jwt_authn.allowed") - requests) <= connections, (setup, requests)


if __name__ == "__main__":
    sys.exit(main())
