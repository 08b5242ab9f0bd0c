"""What validation costs a plain `kubectl apply` against the local API (the API double).

    python bench/kubectl_apply.py [--runs 5]

Applies the Bookinfo samples (experiments/bookinfo/) and the reaper's manifests (deploy/
reaper.yaml: Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, CronJob) to a freshly
reset double, `--runs` times in each way: with `--validate=false`; with validation on and an
empty kubectl cache (kubectl fetches /openapi/v3 and the documents of the group-versions it
applies); with validation on and a warm cache (the documents' hashes are unchanged, so kubectl
reads them from disk). Prints the median wall time of each and the ratios to `--validate=false`,
and how long the double takes to build its OpenAPI documents the first time. Skips (exit 0) without
kubectl.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CRDS = Path(
    os.environ.get("CHAOSMESH_ISTIO_CRDS") or ROOT.parent / "shared/istio/crds-1.30.3.gen.yaml"
)
MANIFESTS = [ROOT / "experiments" / "bookinfo", ROOT / "deploy" / "reaper.yaml"]


def main() -> int:
    from chaosmesh_py.localmesh.apiserver import ApiServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("kubectl"):
        print("kubectl is not installed: nothing to measure")
        return 0
    with ApiServer(crd_paths=[CRDS]) as server, tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        urllib.request.urlopen(server.url + "/openapi/v3").read()
        build_ms = (time.perf_counter() - started) * 1000
        kubeconfig = Path(scratch) / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: d\n"
            f"clusters: [{{name: d, cluster: {{server: '{server.url}'}}}}]\n"
            "users: [{name: u, user: {}}]\n"
            "contexts: [{name: d, context: {cluster: d, user: u, namespace: default}}]\n",
            encoding="utf-8",
        )
        files = [arg for path in MANIFESTS for arg in ("-f", str(path))]

        def apply(home: str, *flags: str) -> float:
            server.reset()
            environment = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": home}
            started = time.perf_counter()
            subprocess.run(
                ["kubectl", "apply", *flags, *files],
                env=environment,
                check=True,
                capture_output=True,
                timeout=120,
            )
            return time.perf_counter() - started

        warm_home = tempfile.mkdtemp(dir=scratch)
        apply(warm_home)  # fills the warm cache
        timings: dict[str, list[float]] = {"--validate=false": [], "cold cache": [], "warm": []}
        for _ in range(args.runs):
            timings["--validate=false"].append(
                apply(tempfile.mkdtemp(dir=scratch), "--validate=false")
            )
            timings["cold cache"].append(apply(tempfile.mkdtemp(dir=scratch)))
            timings["warm"].append(apply(warm_home))
    baseline = statistics.median(timings["--validate=false"])
    print(f"OpenAPI documents built on first request: {build_ms:.0f} ms")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"kubectl apply, {name:>17}: {median * 1000:6.0f} ms  ({median / baseline:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
