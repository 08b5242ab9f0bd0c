"""The main job: a Bookinfo fault-injection experiment, end to end, on the local mesh.

    python -m chaosmesh_py.localmesh.demo experiments/bookinfo-ratings-delay.json

What a user would type, in order: ``chaosmesh local up`` (a temporary state directory and
kubeconfig, so nothing of yours is touched), ``chaos run`` of the experiment against the context
``chaosmesh-local``, ``chaosmesh local down``. Then it reads the journal and says what happened:
the steady state before, the fault live in Envoy (time to effect), the deviation the experiment
found, the rollback, and that nothing is left running. Exit 0 when all of that held.
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

from chaosmesh_py.localmesh import lifecycle

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="chaosmesh-demo-") as work:
        mesh = lifecycle.Options(
            state_dir=Path(work) / "state",
            kubeconfig=Path(work) / "kubeconfig",
            crds=lifecycle.default_crds(),
        )
        if not mesh.crds:
            print("! no Istio CRDs found: validating with the project's own checks only")
        print("$ chaosmesh local up")
        status = lifecycle.up(mesh)
        print(f"  Kubernetes API {status['api_url']} (context {status['context']})")
        print(f"  Envoy admin    {status['envoy_admin_url']}")
        print(f"  Bookinfo       {status['ingress_url']}/productpage")
        try:
            journal = _run_experiment(options.experiment, status, mesh, Path(work))
            restored = _page_whole_after(status["ingress_url"])
        finally:
            print("$ chaosmesh local down")
            stopped = lifecycle.down(mesh)
            left = [pid for pid in stopped if lifecycle.alive(pid)]
            print(f"  stopped pid {stopped}; still running: {left or 'nothing'}")
        return 0 if _report(journal) and restored and not left else 1


def _run_experiment(
    experiment: Path, status: dict[str, Any], mesh: lifecycle.Options, work: Path
) -> dict[str, Any]:
    journal_path = work / "journal.json"
    environment = {
        **os.environ,
        "KUBECONFIG": str(mesh.kubeconfig),
        "KUBERNETES_CONTEXT": status["context"],
        "PRODUCTPAGE_URL": status["ingress_url"],
        "BOOKINFO_NAMESPACE": status["namespace"],
    }
    chaos = str(Path(sys.executable).parent / "chaos")
    command = [chaos, "--no-version-check", "run", "--journal-path", str(journal_path)]
    print(f"$ KUBERNETES_CONTEXT={status['context']} chaos run {experiment}")
    subprocess.run([*command, str(experiment)], env=environment, cwd=ROOT, check=False)
    loaded: dict[str, Any] = json.loads(journal_path.read_text())
    return loaded


def _page_whole_after(ingress_url: str) -> bool:
    """The steady-state probe once more, after the rollback: is jason's page whole again?"""
    probe = [sys.executable, str(ROOT / "probes/bookinfo_page.py"), ingress_url, "--user", "jason"]
    done = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=60)
    print(f"$ python3 probes/bookinfo_page.py {ingress_url} --user jason   # after the rollback")
    print(f"  {done.stdout.strip()}")
    return done.returncode == 0


def _report(journal: dict[str, Any]) -> bool:
    """Print what the journal shows; True when the experiment did all it should."""
    print("\nWhat happened:")
    before = journal["steady_states"]["before"] or {}
    print(f"- steady state before: {'met' if before.get('steady_state_met') else 'NOT met'}")
    for probe in before.get("probes", []):
        print(
            f"    {probe['activity']['name']}: {probe.get('output', {}).get('stdout', '').strip()}"
        )
    injected = [a for a in journal["run"] if a["activity"]["type"] == "action"]
    verified = True
    for action in injected:
        effect = (action.get("output") or {}).get("effect", {})
        verified = verified and action["status"] == "succeeded" and "traffic_s" in effect
        print(
            f"- {action['activity']['name']}: {action['status']}; live in Envoy after "
            f"{effect.get('config_s', float('nan')) * 1000:.1f} ms, seen on traffic after "
            f"{effect.get('traffic_s', float('nan')) * 1000:.1f} ms ({effect.get('traffic')})"
        )
        if action["status"] != "succeeded":
            print(f"    {action.get('exception', [''])[-1].strip()}")
    for fault in journal.get("chaosmesh", {}).get("faults", []):
        print(f"- {fault['activity']} hit {fault['hits']} request(s) of the experiment")
    after = journal["steady_states"]["after"] or {}
    # Not the journal's "deviated": the control also marks a run whose verdict is not a pass.
    deviated = not after.get("steady_state_met", True)
    print(f"- steady state with the fault live: {'deviated' if deviated else 'held'}")
    for probe in after.get("probes", []):
        print(
            f"    {probe['activity']['name']}: {probe.get('output', {}).get('stdout', '').strip()}"
        )
    rollback = journal.get("chaosmesh", {})
    removed = [r for entry in journal["rollbacks"] for r in (entry.get("output") or [])]
    for entry in removed:
        effect = entry.get("effect", {})
        print(
            f"- rollback {entry['virtual_service']}: removed {entry['removed']}; gone from Envoy "
            f"after {effect.get('config_s', float('nan')) * 1000:.1f} ms"
        )
    complete = rollback.get("rollback_complete", False)
    print(f"- every fault of run {rollback.get('run_id')} removed: {complete}")
    if deviated:
        print("Finding: the system did not hold its steady state under this fault.")
    return bool(before.get("steady_state_met")) and verified and complete


if __name__ == "__main__":
    sys.exit(main())
