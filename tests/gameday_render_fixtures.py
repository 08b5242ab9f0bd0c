"""Game days for the render tests, built as files on disk (the experiments) and as GameDay
objects (until every test can read them with ``suite.load``)."""

import copy
import json
from pathlib import Path

from chaosmesh_py.gameday.suite import GameDay, Schedule, Step

CONTROL = [{"name": "chaosmesh", "provider": {"type": "python", "module": "chaosmesh_py.control"}}]
CONFIGURATION = {
    "namespace": {"type": "env", "key": "GAMEDAY_TEST_NAMESPACE", "default": "bookinfo"},
    # The API double has no data plane: nothing to see the fault on.
    "chaosmesh_verify_timeout_s": 0,
}


def activity(kind, name, module, func, **arguments):
    return {
        "type": kind,
        "name": name,
        "provider": {"type": "python", "module": module, "func": func, "arguments": arguments},
    }


def pods_probe(name, ns, label_selector="app=ratings"):
    """chaostoolkit-kubernetes' pods_in_phase: a list of the pods in ``ns``."""
    probe = activity(
        "probe", name, "chaosk8s.pod.probes", "pods_in_phase", label_selector=label_selector, ns=ns
    )
    probe["tolerance"] = True
    return probe


def experiment(title, method, rollbacks=(), probes=(), configuration=None):
    document = {
        "version": "1.0.0",
        "title": title,
        "description": title,
        # Copies: a test that edits its experiment must not edit the next test's.
        "configuration": copy.deepcopy(configuration or CONFIGURATION),
        "controls": copy.deepcopy(CONTROL),
        "method": list(method),
        "rollbacks": list(rollbacks),
    }
    if probes:
        document["steady-state-hypothesis"] = {"title": "as before", "probes": list(probes)}
    return document


ACTIONS, PROBES, ROLLBACKS = (
    "chaosmesh_py.faults.actions",
    "chaosmesh_py.faults.probes",
    "chaosmesh_py.faults.rollbacks",
)


def by_name(namespace="${namespace}"):
    """Delay ratings by its name: get and patch that one VirtualService."""
    return experiment(
        "delay ratings by name",
        [
            activity(
                "action",
                "delay-ratings",
                ACTIONS,
                "inject_delay",
                virtual_service="ratings",
                namespace=namespace,
                fixed_delay="1s",
                percentage=50,
            ),
            activity(
                "probe",
                "delay-in-place",
                PROBES,
                "fault_is_injected",
                virtual_service="ratings",
                namespace=namespace,
            ),
        ],
        rollbacks=[
            activity(
                "action",
                "remove-delay",
                ROLLBACKS,
                "remove_faults",
                virtual_service="ratings",
                namespace=namespace,
            )
        ],
    )


def by_host():
    """Abort reviews by a host it serves: a list of the namespace finds it first."""
    return experiment(
        "abort reviews by host",
        [
            activity(
                "action",
                "abort-reviews",
                ACTIONS,
                "inject_abort",
                host="reviews",
                namespace="${namespace}",
                http_status=503,
                percentage=10,
            ),
            activity("probe", "faults-here", PROBES, "list_owned_faults", namespace="${namespace}"),
        ],
        rollbacks=[activity("action", "remove-all", ROLLBACKS, "remove_faults")],
    )


def write_gameday(directory: Path, experiments: dict, name="weekly", namespace="bookinfo", **extra):
    """The experiments as files under ``directory/experiments``, the game-day file beside
    them, and the GameDay it describes."""
    (directory / "experiments").mkdir(parents=True, exist_ok=True)
    steps = []
    for stem, document in experiments.items():
        path = directory / "experiments" / f"{stem}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        steps.append(Step(path, pause_after_s=1))
    source = directory / "gameday.yaml"
    source.write_text(
        f"name: {name}\nnamespace: {namespace}\n"
        "schedule: {cron: '30 10 * * 2', timezone: Europe/Berlin, jitter: 1m, "
        "startingDeadline: 10m}\n"
        "experiments:\n"
        + "".join(f"  - path: experiments/{s.path.name}\n    pauseAfter: 1s\n" for s in steps)
    )
    defaults = {"schedule": Schedule("30 10 * * 2", "Europe/Berlin", 60.0, 600.0)}
    return GameDay(name, namespace, tuple(steps), source, **{**defaults, **extra})
