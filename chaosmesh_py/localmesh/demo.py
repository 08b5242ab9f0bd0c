"""The main job: a Bookinfo fault-injection experiment, end to end, on the local mesh.

    python -m chaosmesh_py.localmesh.demo [EXPERIMENT]   # default: the packaged ratings delay

What a user would type, in order: ``chaosmesh local up`` (a temporary state directory and
kubeconfig, so nothing of yours is touched), ``chaos run`` of the experiment against the context
``chaosmesh-local``, ``chaosmesh local down``. The ``chaos run`` line is printed in full, with
the variables it needs, and run exactly as printed by a shell. Then it reads the journal and
says what happened: the steady state before, the fault live in Envoy (time to effect), the
deviation the experiment found, the rollback, and that nothing is left running. Exit 0 when all
of that held.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from chaosmesh_py import packaged
from chaosmesh_py.localmesh import lifecycle
from chaosmesh_py.observe.bookinfo_page import check_page, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "experiment",
        type=Path,
        nargs="?",
        default=packaged.examples_dir() / packaged.DEMO_EXPERIMENT,
        help=f"the experiment to run (default: the packaged {packaged.DEMO_EXPERIMENT})",
    )
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="chaosmesh-demo-") as work:
        mesh = throwaway_mesh(Path(work))
        if not mesh.crds:
            print("! no Istio CRDs found: validating with the project's own checks only")
        print("$ chaosmesh local up")
        status = lifecycle.up(mesh)
        print(f"  Kubernetes API {status['api_url']} (context {status['context']})")
        print(f"  Envoy admin    {status['envoy_admin_socket']}")
        print(f"  product page   {status['ingress_url']}/productpage")
        try:
            journal = _run_experiment(options.experiment, status, mesh, Path(work))
            restored = _page_whole_after(status["ingress_url"])
        finally:
            print("$ chaosmesh local down")
            stopped = lifecycle.down(mesh)
            left = [pid for pid in stopped if lifecycle.alive(pid)]
            print(f"  stopped pid {stopped}; still running: {left or 'nothing'}")
        held = _report(journal) and restored and not left
        print(
            "\nYour turn: `chaosmesh local up` keeps a mesh running and prints how to run "
            "experiments against it; `chaosmesh examples` lists those that ship."
        )
        return 0 if held else 1


def throwaway_mesh(work: Path) -> lifecycle.Options:
    """A mesh whose state and kubeconfig live in ``work``: none of the user's is touched."""
    return lifecycle.Options(
        state_dir=work / "state", kubeconfig=work / "kubeconfig", crds=lifecycle.default_crds()
    )


def _run_experiment(
    experiment: Path, status: dict[str, Any], mesh: lifecycle.Options, work: Path
) -> dict[str, Any]:
    journal_path = work / "journal.json"
    variables = lifecycle.experiment_environment(status, mesh.kubeconfig)
    command = ["chaos", "--no-version-check", "run", "--journal-path", str(journal_path)]
    run_as_printed(variables, [*command, str(experiment)])
    loaded: dict[str, Any] = json.loads(journal_path.read_text())
    return loaded


def run_as_printed(variables: dict[str, str], command: list[str]) -> int:
    """Print ``command`` with the ``variables`` it needs as a shell line, and run exactly that
    line through a shell, with none of those variables inherited: it must work as a user types
    it (in a shell where the command is on PATH, e.g. .venv activated). Its exit status."""
    line = " \\\n    ".join([lifecycle.shell_assignments(variables), shlex.join(command)])
    print(f"$ {line}", flush=True)
    done = subprocess.run(["/bin/sh", "-c", line], env=_shell_environment(variables), check=False)
    return done.returncode


def _shell_environment(variables: dict[str, str]) -> dict[str, str]:
    """This process's environment as a user's shell would have it: without the variables the
    printed command sets itself, with this Python's scripts first on PATH (an activated venv)."""
    environment = {k: v for k, v in os.environ.items() if k not in variables}
    scripts = str(Path(sys.executable).parent)
    environment["PATH"] = os.pathsep.join([scripts, environment.get("PATH", os.defpath)])
    return environment


def _page_whole_after(ingress_url: str) -> bool:
    """The steady-state probe once more, after the rollback: is jason's page whole again?"""
    report = check_page(ingress_url, "jason").to_json()
    print("- after the rollback, the product page again:")
    print(f"    {summary(report)}")
    return bool(report["whole_share"] == 1.0)


def _report(journal: dict[str, Any]) -> bool:
    """Print what the journal shows; True when the experiment did all it should."""
    print("\nWhat happened:")
    before = journal["steady_states"]["before"] or {}
    print(f"- steady state before: {'met' if before.get('steady_state_met') else 'NOT met'}")
    _print_probes(before)
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
    _print_probes(after)
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


def _print_probes(steady_state: dict[str, Any]) -> None:
    for probe in steady_state.get("probes", []):
        output = probe.get("output")
        said = summary(output) if _is_page_report(output) else json.dumps(output)
        print(f"    {probe['activity']['name']}: {said}")


def _is_page_report(output: object) -> bool:
    return isinstance(output, dict) and {"user", "whole", "pages", "errors"} <= output.keys()


if __name__ == "__main__":
    sys.exit(main())
