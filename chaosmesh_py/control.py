"""A Chaos Toolkit control that makes a run's faults safe to inject.

Declare it at the experiment level::

    "controls": [{"name": "chaosmesh",
                  "provider": {"type": "python", "module": "chaosmesh_py.control"}}]

What it does, and why Chaos Toolkit alone does not:
- when the run starts, it gives the run an id (unless the configuration sets
  ``chaosmesh_run_id``, or the environment ``CHAOSMESH_RUN_ID``) so every activity of the run
  owns its faults under that id;
- before the experiment starts, it checks the arguments of every chaosmesh activity in the
  experiment, so a bad percentage in the third action stops the run before the first one
  injects anything (``chaos validate`` only checks argument names);
- after the experiment, whatever the rollback strategy and whatever the status (failed,
  interrupted by Ctrl-C, aborted), it removes every fault the run injected. Chaos Toolkit's
  default strategy skips the experiment's rollbacks in exactly those cases. The result goes into
  the journal under ``chaosmesh``;
- at clean-up, which Chaos Toolkit reaches even when something above raised, it removes anything
  still left;
- SIGINT and SIGTERM stop the experiment at once, even in the middle of a python activity
  (where Chaos Toolkit would only fail that activity and go on), and never interrupt a rollback
  (``chaosmesh_py.engine.signals``);
- every secret value of the experiment (inline, from the environment or Vault; strings and
  numbers) is replaced by ``***`` in the journal, in Chaos Toolkit's log (console and
  ``--log-file``, made 0600) and in the ledger: Chaos Toolkit writes them in clear. The rule for
  short secrets is in ``chaosmesh_py.engine.redaction``. Chaos Toolkit prints the experiment's
  title before any control runs: a secret substituted into the title reaches ``chaos run``'s
  console (not its journal; ``chaosmesh gate`` hides it from its output and log too);
- when a rollback cannot finish, the journal and the log say which routes are left where, and
  the command that finishes it: ``chaosmesh rollback --run ID``, which replays the run's
  ledger (``chaosmesh_py.engine.ledger``), as it does after ``kill -9``;
- with ``guardrails`` among its arguments (probes with tolerances, run every
  ``guardrail_interval_s`` while the method runs), a breach removes every fault of the run at
  once and then stops the experiment (Chaos Toolkit's SIGUSR1: the run ends "interrupted"). The
  journal says ``aborted_by_guardrail``. Unlike Chaos Toolkit's safeguards, the rollback never
  depends on the rollback strategy::

    "arguments": {"guardrail_interval_s": 1, "guardrails": [{"type": "probe", "name": "others-fine",
        "tolerance": true, "provider": {...}}]}
- from the start of the method to the rollback, it counts the requests each fault hit
  (``chaosmesh_py.observe.hits``: Envoy's counters on the local mesh, Prometheus on a cluster
  with configuration ``chaosmesh_prometheus_url``) into the journal, ``chaosmesh.faults``, and
  the requests each upstream fault's pods failed on their inbound side
  (``chaosmesh_py.observe.inbound_hits``), ``chaosmesh.upstream_faults``;
- it keeps the evidence of its rollback: each object the run wrote, its spec before the first
  write against its spec once every removal is done (``chaosmesh.evidence``: equal, or each
  difference named; ``chaosmesh_py.engine.evidence``), and when the method started and the
  rollback ran, when each guardrail check ended and which Prometheus the run used, for
  ``chaosmesh report``;
- from the first write of the run to its rollback, it follows every object the run wrote to
  (``chaosmesh_py.engine.vanished``): when another writer (a rollout controller rewriting the
  whole VirtualService) removes a route copy, a field or the owner record of the run, it says
  so in every activity result that follows (``chaosmesh_removed_by_another_writer``), in the
  log, in its rollback ("removed by another writer at T, nothing to remove") and in the
  journal (``chaosmesh.removed_by_another_writer``); the verdict fails a run whose edit was
  removed during the method;
- at the end, it grades the run with ``chaosmesh gate``'s rules (``chaosmesh_py.verdict.rules``)
  and prints the verdict and its reasons. When the verdict is not a pass, it marks the journal
  ``deviated``, so ``chaos run`` exits 1 exactly when the gate would fail: for a typo in a
  VirtualService name, a wrong namespace, a probe that cannot run, a fault that hit nothing.
  The gate's waivers are its arguments ``allow_unverified`` and ``allow_no_fault`` (false by
  default)::

    "arguments": {"allow_unverified": true}
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.engine import (
    cleanup,
    evidence,
    ledger,
    private_file,
    redaction,
    signals,
    vanished,
)
from chaosmesh_py.engine.guardrail import Breach, Guardrail, parse_guardrails
from chaosmesh_py.engine.run import (
    RUN_ID_ENV,
    RUN_ID_KEY,
    Run,
    new_run_id,
    parse_run_id,
    run_for,
    run_id_from,
)
from chaosmesh_py.errors import ChaosMeshError, NotFound
from chaosmesh_py.faults import injection
from chaosmesh_py.istio.route_copy import run_route_prefix
from chaosmesh_py.kube import Kube
from chaosmesh_py.observe import hits, inbound_hits, prometheus
from chaosmesh_py.verdict import rules

logger = logging.getLogger("chaostoolkit")

JOURNAL_KEY = "chaosmesh"

# The run this control started, for cleanup_control which Chaos Toolkit calls with no arguments.
_active_runs: list[Run] = []
# The guardrail watching each run's method, and what a breach already rolled back.
_guardrails: dict[str, Guardrail] = {}
_breach_rollbacks: dict[str, dict[str, Any]] = {}
# The counters each run's method started from, to count what its faults hit.
_method_starts: dict[str, hits.Start] = {}
_inbound_starts: dict[str, dict[str, int]] = {}
# When each run's method ended (Unix seconds): whether another writer's removal hit the method.
_method_ends: dict[str, float] = {}
# The key, in an activity's result, of what another writer had removed from the run by its end.
ACTIVITY_KEY = "chaosmesh_removed_by_another_writer"
# The control's own arguments that waive a rule of the verdict, as `chaosmesh gate`'s flags do.
WAIVERS = ("allow_unverified", "allow_no_fault")


def configure_control(
    configuration: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None, **_: Any
) -> None:
    """Hide the experiment's secrets from everything the run writes from now on; give the run an
    id that every activity will see in its configuration."""
    _hide_secrets(secrets)
    if configuration is None:
        return
    if not configuration.get(RUN_ID_KEY):
        # CHAOSMESH_RUN_ID, when set, names the run: a game day's runner sets it to find the
        # run's ledger (``chaosmesh_py.gameday.runner``); else a new id.
        from_environment = os.environ.get(RUN_ID_ENV)
        configuration[RUN_ID_KEY] = (
            parse_run_id(from_environment, RUN_ID_ENV) if from_environment else new_run_id()
        )
    run = run_for(configuration)
    _active_runs.append(run)
    vanished.begin(run.run_id)
    signals.install(run.run_id)
    logger.info(f"chaosmesh: run id {run.run_id}")


def _hide_secrets(secrets: dict[str, Any] | None) -> None:
    """Remember the loaded secrets, filter Chaos Toolkit's log handlers, make its log file
    private; warn about secrets too short to be hidden inside other text."""
    short = redaction.remember(secrets or {})
    for handler in redaction.install_log_filter(logger):
        if isinstance(handler, logging.FileHandler):
            private_file.restrict(Path(handler.baseFilename))
    if short:
        logger.warning(
            f"chaosmesh: secret(s) {', '.join(short)} shorter than "
            f"{redaction.MIN_EMBEDDED_CHARS} characters: hidden where a value is exactly the "
            "secret, not inside other text; use longer secrets"
        )


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    """Check every chaosmesh activity's arguments, and the guardrails, before anything runs."""
    from chaoslib.exceptions import InterruptExecution

    problems = argument_problems(context, configuration or {})
    if problems:
        raise InterruptExecution(
            "chaosmesh: invalid arguments, nothing was injected:\n  " + "\n  ".join(problems)
        )


def before_method_control(
    context: dict[str, Any],
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    guardrails: Any = None,
    guardrail_interval_s: Any = 1.0,
    **_: Any,
) -> None:
    """Read the counters the faults' hits are counted from; start watching the guardrails,
    if any, for as long as the method runs."""
    run = run_for(configuration)
    kube = _connect(secrets)
    _method_starts[run.run_id] = hits.start(kube, run_route_prefix(run.run_id))
    _inbound_starts[run.run_id] = inbound_hits.start(kube)
    if guardrails is None:
        return
    probes, interval_s = parse_guardrails(guardrails, guardrail_interval_s)
    verify_timeout_s = _verify_timeout_s(configuration)

    def on_breach(breach: Breach) -> None:
        from chaoslib.exit import exit_gracefully

        # Faults first, then the stop: the rollback must not wait for the method to notice.
        _breach_rollbacks[run.run_id] = roll_back(run, verify_timeout_s)
        exit_gracefully()

    _guardrails[run.run_id] = Guardrail(probes, interval_s, configuration, secrets, on_breach)
    _guardrails[run.run_id].start()
    logger.info(f"chaosmesh: {len(probes)} guardrail(s) watched every {interval_s:g} s")


def after_method_control(configuration: dict[str, Any] | None = None, **_: Any) -> None:
    _method_ends[run_id_from(configuration)] = time.time()
    guardrail = _guardrails.get(run_id_from(configuration))
    if guardrail is not None:
        guardrail.stop()


def after_activity_control(
    context: dict[str, Any] | None = None,
    state: Any = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Follow every object the run has written to so far; say in the activity's result what
    another writer has removed of the run by its end (the result must not read as if the
    run's edits were live)."""
    run = run_for(configuration)
    vanished.follow(run)
    lost = vanished.seen(run.run_id)
    if lost and isinstance(state, dict):
        state[ACTIVITY_KEY] = [v.to_json() for v in lost]


def after_experiment_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    allow_unverified: Any = False,
    allow_no_fault: Any = False,
    **_: Any,
) -> None:
    """Remove every fault the run injected, count what each hit, and grade the run; say all of
    it in the journal."""
    run = run_for(configuration)
    guardrail = _guardrails.pop(run.run_id, None)
    if guardrail is not None:
        guardrail.stop()
    summary = roll_back(run, _verify_timeout_s(configuration))
    earlier = _breach_rollbacks.pop(run.run_id, None)
    if earlier is not None:
        summary["rollback"] = earlier["rollback"] + summary["rollback"]
        summary["rollback_failed"] = earlier["rollback_failed"] + summary["rollback_failed"]
        summary["rollback_complete"] = not summary["rollback_failed"]
        summary["rollback_started"] = earlier["rollback_started"]
        summary[vanished.JOURNAL_KEY] = (
            earlier[vanished.JOURNAL_KEY] + summary[vanished.JOURNAL_KEY]
        )
    summary["evidence"] = rollback_evidence(run)
    started = _method_starts.get(run.run_id)
    if started is not None:
        summary["method_started"] = _iso(started.at)
    ended = _method_ends.pop(run.run_id, None)
    if ended is not None:
        summary["method_ended"] = _iso(ended)
    vanished.place_in_method(
        summary[vanished.JOURNAL_KEY], None if started is None else started.at, ended
    )
    if guardrail is not None:
        summary["guardrail_checks"] = guardrail.checks
        summary["guardrail_checked_at"] = list(guardrail.checked_at)
        if guardrail.breach is not None:
            summary["aborted_by_guardrail"] = guardrail.breach.to_json()
    # Where the report's range queries go by default; never with credentials in it. A bad URL
    # was refused before the run started (argument_problems).
    with contextlib.suppress(ChaosMeshError):
        summary["prometheus_url"] = prometheus.without_userinfo(hits.prometheus_url(configuration))
    inbound_started = _inbound_starts.pop(run.run_id, None)
    if isinstance(state, dict):
        summary["faults"] = _count_hits(run, state, summary, configuration)
        upstream = inbound_hits.injected(state.get("run") or [])
        if upstream:
            summary["upstream_faults"] = inbound_hits.count(upstream, run.apis(), inbound_started)
        state[JOURNAL_KEY] = summary
        if rules.is_journal(state):
            _grade(state, allow_unverified is True, allow_no_fault is True)
        redaction.redact_journal(state, os.environ)


def rollback_evidence(run: Run) -> list[dict[str, Any]]:
    """Each object the run wrote, its spec before the first write against its spec as the last
    removal left it (read back when no removal saw it); never raises. See
    ``chaosmesh_py.engine.evidence``."""
    entries = []
    for kube, ref, before, seen in run.written():
        if seen:
            (after,) = seen
        else:
            try:
                after = evidence.spec_of(kube.get(ref))
            except NotFound:
                after = evidence.ABSENT
            except ChaosMeshError as error:
                entries.append({"resource": str(ref), "error": f"cannot read it back: {error}"})
                continue
        entries.append(evidence.compare(str(ref), before, after))
    return entries


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds")


def _connect(secrets: dict[str, Any] | None) -> Kube | None:
    """The API the experiment's activities reach with these secrets, if one can be reached."""
    try:
        return Kube.connect(secrets)
    except ChaosMeshError as error:  # credentials the actions will report on, in their words
        logger.debug(f"chaosmesh: no API to read the hit counters from: {error}")
        return None


def _count_hits(
    run: Run,
    journal: dict[str, Any],
    summary: dict[str, Any],
    configuration: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """What each fault of the method hit, from the start of the method to the rollback."""
    # Only route copies compose onto a fault's copy (faults, routing edits); a resilience edit
    # is a field override or an owned EnvoyFilter, whose "fault" is no VirtualService fault.
    faults = hits.injected_faults(
        journal.get("run") or [], rules.ACTIONS_MODULE, (rules.ACTIONS_MODULE, rules.ROUTING_MODULE)
    )
    removals = [*summary["rollback"]]
    for entry in [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]:
        module = ((entry.get("activity") or {}).get("provider") or {}).get("module")
        if module == rules.ROLLBACKS_MODULE and isinstance(entry.get("output"), list):
            removals += entry["output"]
    try:
        prometheus_url = hits.prometheus_url(configuration)
    except ChaosMeshError:
        prometheus_url = None  # refused before the run started (argument_problems)
    counts = hits.count(
        faults,
        run.apis(),
        _method_starts.pop(run.run_id, None),
        route_prefix=run_route_prefix(run.run_id),
        prometheus_url=prometheus_url,
        removal_hits=hits.removal_checks(removals),
    )
    for count in counts:
        if count.hits is None:
            logger.info(
                f"chaosmesh: what {count.fault.activity!r} hit is unknown ({count.counted})"
            )
        else:
            logger.info(
                f"chaosmesh: the fault of {count.fault.activity!r} hit {count.hits} request(s) "
                f"({count.counted})"
            )
    return [count.to_json() for count in counts]


def _grade(journal: dict[str, Any], allow_unverified: bool, allow_no_fault: bool) -> None:
    """Grade the run as ``chaosmesh gate`` would, say why, and make ``chaos run`` exit 1 when
    the verdict is not a pass (it exits 1 for a status other than completed, or deviated)."""
    try:
        verdict = rules.grade(
            journal,
            allow_unverified=allow_unverified,
            allow_no_fault=allow_no_fault,
            environ=os.environ,
        )
    except rules.MalformedJournal as error:  # not Chaos Toolkit's own journal: nothing to add
        logger.error(f"chaosmesh: the journal cannot be graded: {error}")
        return
    graded: dict[str, Any] = {"outcome": verdict.outcome, "reasons": list(verdict.reasons)}
    if verdict.outcome == "pass":
        logger.info("chaosmesh: verdict pass (as chaosmesh gate grades it)")
    else:
        logger.error(f"chaosmesh: verdict {verdict.outcome.upper()} (as chaosmesh gate grades it):")
        for reason in verdict.reasons:
            logger.error(f"chaosmesh:   - {reason}")
        if journal.get("status") == "completed" and not journal.get("deviated"):
            journal["deviated"] = True
            graded["marked_deviated"] = True
    journal[JOURNAL_KEY]["verdict"] = graded


def _verify_timeout_s(configuration: dict[str, Any] | None) -> float:
    try:
        return injection.Settings.from_configuration(configuration).verify_timeout_s
    except ChaosMeshError:
        return 0.0  # a bad setting must not keep faults in place


def cleanup_control() -> None:
    """Last chance: remove anything a run of this process still holds."""
    while _active_runs:
        run = _active_runs.pop()
        vanished.stop(run.run_id)
        if run.touched():
            roll_back(run)
    signals.uninstall()


def roll_back(run: Run, verify_timeout_s: float = 0.0) -> dict[str, Any]:
    """Remove the run's faults from every resource it wrote to; never raises.

    Signals are held off meanwhile (see ``signals``): a second Ctrl-C must not leave half of
    the faults in place.
    """
    removed = []
    failed = []
    started = _iso(time.time())
    # Before our own removals: they are not another writer's.
    lost = vanished.stop(run.run_id)
    taken: list[vanished.Vanished] = []
    with signals.deferred():
        entries = run.ledger.entries()
        in_flight = ledger.uncertain(entries)
        for kube, ref in run.touched():
            fence = (kube.host, ref) in in_flight
            recorded = ledger.recorded(entries, kube.host, ref, run.run_id)
            try:
                report = injection.remove_for_run(
                    kube, ref, run, verify_timeout_s, fence=fence, extra=recorded
                )
                # When it was done (and seen gone, when verified): where the fault's window ends,
                # a guardrail's rollback long before the end of the experiment included.
                report["removed_at"] = _iso(time.time())
                if not fence:  # else a copy may be missing because it never landed
                    held = vanished.landed(entries, kube.host, ref, run.run_id)
                    taken += vanished.account(report, ref, held, lost)
                removed.append(report)
            except ChaosMeshError as error:
                entry: dict[str, Any] = {
                    "resource": str(ref),
                    "left": recorded.to_json(),
                    "routes_left": list(recorded.routes),
                    "error": str(error),
                }
                if ref.kind.kind == "VirtualService":
                    entry["virtual_service"] = f"{ref.namespace}/{ref.name}"
                failed.append(entry)
        if not failed and entries:
            # run.apis(), not run.touched(): each removal above made the run forget its resource.
            hosts = ",".join(sorted(kube.host for kube in run.apis()))
            ledger.best_effort(lambda: run.ledger.close(hosts))
            ledger.prune(run.ledger.directory)
    if removed:
        count = sum(len(r["removed"]) for r in removed)
        fields = sum(len(r.get("fields") or ()) for r in removed)
        restored = f", restored {fields} field(s)" if fields else ""
        logger.info(f"chaosmesh: rolled back run {run.run_id}: removed {count} route(s){restored}")
        for report in removed:
            where = str(report.get("resource") or f"VirtualService {report.get('virtual_service')}")
            for conflict in report.get("conflicts") or ():
                logger.warning(f"chaosmesh: kept {cleanup.describe_conflict(where, conflict)}")
    summary: dict[str, Any] = {
        "run_id": run.run_id,
        # When the removals started and when the last one was seen gone (verified, when
        # verification is on): the end of every fault window the experiment left to the control.
        "rollback_started": started,
        "rollback_ended": _iso(time.time()),
        "rollback": removed,
        "rollback_failed": failed,
        "rollback_complete": not failed,
        # What another writer removed before this rollback could: never restored, never
        # claimed removed by us.
        vanished.JOURNAL_KEY: [
            v.to_json() for v in sorted([*lost, *taken], key=lambda v: v.at or "~")
        ],
    }
    if failed:
        summary["finish_with"] = f"chaosmesh rollback --run {run.run_id}"
        for entry in failed:
            left = entry["left"]
            what = [*left["routes"], *left["fields"]] + (["the object"] if left["object"] else [])
            logger.error(
                f"chaosmesh: LEFT IN PLACE on {entry['resource']}: "
                f"{', '.join(what) or '(unknown)'} ({entry['error']})"
            )
        logger.error(
            f"chaosmesh: rollback incomplete; finish it with: {summary['finish_with']} "
            f"(its ledger: {run.ledger.path})"
        )
    return summary


def _surfaces() -> tuple[dict[str, ModuleType], set[ModuleType], set[ModuleType]]:
    """Every chaosmesh Chaos Toolkit module by name; those whose ``check_arguments`` takes the
    raw arguments (actions) and those that take them bound (probes with checks of their own)."""
    from chaosmesh_py.faults import actions, probes, rollbacks
    from chaosmesh_py.resilience import actions as resilience_actions
    from chaosmesh_py.resilience import probes as resilience_probes
    from chaosmesh_py.resilience import rollbacks as resilience_rollbacks
    from chaosmesh_py.security import actions as security_actions
    from chaosmesh_py.security import probes as security_probes
    from chaosmesh_py.security import rollbacks as security_rollbacks
    from chaosmesh_py.traffic import actions as traffic_actions
    from chaosmesh_py.traffic import probes as traffic_probes
    from chaosmesh_py.traffic import rollbacks as traffic_rollbacks

    checked_actions = {actions, traffic_actions, resilience_actions, security_actions}
    checked_probes = {traffic_probes, resilience_probes, security_probes}
    everything = {*checked_actions, *checked_probes}
    everything |= {probes, rollbacks, traffic_rollbacks, resilience_rollbacks, security_rollbacks}
    return {m.__name__: m for m in everything}, checked_actions, checked_probes


def argument_problems(experiment: dict[str, Any], configuration: dict[str, Any]) -> list[str]:
    """One line per chaosmesh activity whose arguments would fail, naming activity and field."""
    from chaoslib import substitute

    modules, checked_actions, checked_probes = _surfaces()
    problems = []
    try:
        hits.prometheus_url(configuration)
    except ChaosMeshError as error:
        problems.append(f"configuration: {error}")
    for control in experiment.get("controls") or []:
        provider = control.get("provider") or {}
        arguments = provider.get("arguments") or {}
        if provider.get("module") != __name__:
            continue
        try:
            if "guardrails" in arguments:
                parse_guardrails(
                    arguments["guardrails"], arguments.get("guardrail_interval_s", 1.0)
                )
            _check_waivers(arguments)
        except ChaosMeshError as error:
            problems.append(f"control {control.get('name')!r}: {error}")
    for activity in _activities(experiment):
        provider = activity.get("provider") or {}
        module = modules.get(str(provider.get("module", "")))
        func = str(provider.get("func"))
        exported = getattr(module, "__all__", ())
        if provider.get("type") != "python" or module is None or func not in exported:
            continue  # not ours, or Chaos Toolkit's own validation names the problem
        function = getattr(module, func)
        arguments = substitute(dict(provider.get("arguments") or {}), configuration, {})
        name = activity.get("name", func)
        try:
            bound = inspect.signature(function).bind(**arguments)
            if module in checked_actions:
                module.check_arguments(func, arguments, configuration)
            else:
                bound.apply_defaults()
                _check_target(bound.arguments, configuration)
                if module in checked_probes:
                    module.check_arguments(func, bound.arguments, configuration)
        except ChaosMeshError as error:
            problems.append(f"{name}: {error}")
        except TypeError as error:
            problems.append(f"{name}: {error}")
    return problems


def _check_waivers(arguments: dict[str, Any]) -> None:
    for waiver in WAIVERS:
        checks.flag(
            waiver,
            arguments.get(waiver, False),
            f"it waives the verdict's rule as chaosmesh gate's --{waiver.replace('_', '-')} does",
        )


def _check_target(arguments: dict[str, Any], configuration: dict[str, Any]) -> None:
    """A probe's or rollback's target, checked as the activity will check it."""
    settings = injection.Settings.from_configuration(configuration)
    if arguments.get("virtual_service") is not None or arguments.get("host") is not None:
        injection.parse_target(
            arguments.get("namespace"),
            arguments.get("virtual_service"),
            arguments.get("host"),
            settings,
        )
    elif arguments.get("namespace") is not None:
        injection.parse_namespace(arguments["namespace"])


def _activities(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    return [
        *(hypothesis.get("probes") or []),
        *(experiment.get("method") or []),
        *(experiment.get("rollbacks") or []),
    ]
