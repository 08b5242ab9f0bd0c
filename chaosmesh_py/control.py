"""A Chaos Toolkit control that makes a run's faults safe to inject.

Declare it at the experiment level::

    "controls": [{"name": "chaosmesh",
                  "provider": {"type": "python", "module": "chaosmesh_py.control"}}]

What it does, and why Chaos Toolkit alone does not:
- when the run starts, it gives the run an id (unless the configuration sets
  ``chaosmesh_run_id``) so every activity of the run owns its faults under that id;
- before the experiment starts, it checks the arguments of every chaosmesh activity in the
  experiment, so a bad percentage in the third action stops the run before the first one
  injects anything (``chaos validate`` only checks argument names);
- after the experiment, whatever the rollback strategy and whatever the status (failed,
  interrupted by Ctrl-C, aborted), it removes every fault the run injected. Chaos Toolkit's
  default strategy skips the experiment's rollbacks in exactly those cases. The result goes into
  the journal under ``chaosmesh``;
- at clean-up, which Chaos Toolkit reaches even when something above raised, it removes anything
  still left.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from chaosmesh_py import injection
from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.run import RUN_ID_KEY, Run, get_run, new_run_id, run_id_from

logger = logging.getLogger("chaostoolkit")

JOURNAL_KEY = "chaosmesh"

# The run this control started, for cleanup_control which Chaos Toolkit calls with no arguments.
_active_runs: list[Run] = []


def configure_control(configuration: dict[str, Any] | None = None, **_: Any) -> None:
    """Give the run an id that every activity will see in its configuration."""
    if configuration is None:
        return
    if not configuration.get(RUN_ID_KEY):
        configuration[RUN_ID_KEY] = new_run_id()
    run = get_run(run_id_from(configuration))
    _active_runs.append(run)
    logger.info(f"chaosmesh: run id {run.run_id}")


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    """Check every chaosmesh activity's arguments before anything runs."""
    from chaoslib.exceptions import InterruptExecution

    problems = argument_problems(context, configuration or {})
    if problems:
        raise InterruptExecution(
            "chaosmesh: invalid arguments, nothing was injected:\n  " + "\n  ".join(problems)
        )


def after_experiment_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Remove every fault the run injected, and say so in the journal."""
    run = get_run(run_id_from(configuration))
    try:
        verify_timeout_s = injection.Settings.from_configuration(configuration).verify_timeout_s
    except ChaosMeshError:
        verify_timeout_s = 0.0  # a bad setting must not keep faults in place
    summary = roll_back(run, verify_timeout_s)
    if isinstance(state, dict):
        state[JOURNAL_KEY] = summary


def cleanup_control() -> None:
    """Last chance: remove anything a run of this process still holds."""
    while _active_runs:
        run = _active_runs.pop()
        if run.touched():
            roll_back(run)


def roll_back(run: Run, verify_timeout_s: float = 0.0) -> dict[str, Any]:
    """Remove the run's faults from every resource it wrote to; never raises."""
    removed = []
    failed = []
    for kube, ref in run.touched():
        try:
            removed.append(injection.remove_for_run(kube, ref, run, verify_timeout_s))
        except ChaosMeshError as error:
            logger.error(
                f"chaosmesh: could not remove run {run.run_id}'s faults from {ref}: {error}"
            )
            failed.append({"virtual_service": f"{ref.namespace}/{ref.name}", "error": str(error)})
    if removed:
        count = sum(len(r["removed"]) for r in removed)
        logger.info(f"chaosmesh: rolled back run {run.run_id}: removed {count} route(s)")
    return {
        "run_id": run.run_id,
        "rollback": removed,
        "rollback_failed": failed,
        "rollback_complete": not failed,
    }


def argument_problems(experiment: dict[str, Any], configuration: dict[str, Any]) -> list[str]:
    """One line per chaosmesh activity whose arguments would fail, naming activity and field."""
    from chaoslib import substitute

    from chaosmesh_py import actions

    problems = []
    for activity in _activities(experiment):
        provider = activity.get("provider") or {}
        module = str(provider.get("module", ""))
        if provider.get("type") != "python" or not module.startswith("chaosmesh_py."):
            continue
        function = getattr(actions, str(provider.get("func")), None)
        arguments = substitute(dict(provider.get("arguments") or {}), configuration, {})
        name = activity.get("name", provider.get("func"))
        try:
            if module == actions.__name__ and function is not None:
                inspect.signature(function).bind(**arguments)
                actions.check_arguments(function.__name__, arguments, configuration)
        except ChaosMeshError as error:
            problems.append(f"{name}: {error}")
        except TypeError as error:
            problems.append(f"{name}: {error}")
    return problems


def _activities(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    return [
        *(hypothesis.get("probes") or []),
        *(experiment.get("method") or []),
        *(experiment.get("rollbacks") or []),
    ]
