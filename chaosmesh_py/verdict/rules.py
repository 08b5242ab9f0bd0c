"""The verdict on one Chaos Toolkit run, read from its journal: pass, fail or rollback-incomplete.

``chaos run`` alone exits 0 for runs a CI gate must not pass (the steady state not met before the
method, so the method was skipped; the fault-injection action itself failing; the steady state
deviating only during the method; a fault that met no request), and by default plays no
rollback when a safeguard or Ctrl-C interrupts a run. So the verdict is read from the journal,
rule by rule. Every rule that does not hold adds one reason, written for the person reading the
CI log. Pure: no I/O. Both ``chaosmesh gate`` and the chaosmesh control (at the end of
``chaos run``, so that it exits 1 whenever the gate would fail) grade with these rules.

A run passes only if every rule holds:

    rule                                                journal fields read
    R1  the run completed (not interrupted, aborted,    status, chaosmesh.aborted_by_guardrail
        failed, nor stopped by a guardrail)
    R2  it was not a dry run                            experiment.dry
    R3  the experiment has a steady-state hypothesis    experiment.steady-state-hypothesis.probes
        with probes
    R4  the steady state was met before the method      steady_states.before
    R5  ... at every check during it, when probed       steady_states.during[]
    R6  ... and after it                                steady_states.after, deviated
    R7  every method activity succeeded; a process      run[].status, run[].output.status
        action also exited 0 (Chaos Toolkit records
        a non-zero exit as "succeeded")
    R8  every chaosmesh fault was seen live: its        run[].output.effect
        effect has ``config_s`` or ``traffic_s`` (a     (.verification)
        routing edit: its verification)
    R9  every declared rollback ran, and succeeded      rollbacks[], experiment.rollbacks
        (exit 0 for a process)
    R10 the chaosmesh control ran, when chaosmesh       chaosmesh
        actions did
    R11 the control removed every fault of the run      chaosmesh.rollback_complete,
                                                        chaosmesh.rollback_failed
    R12 the method injected a chaosmesh fault (or       run[]
        made a routing edit)
    R13 every chaosmesh fault hit real requests: a      chaosmesh.faults[].hits
        count above 0, as the control counted them
        (``chaosmesh_py.observe.hits``)
    R14 no edit of the run was removed by another      chaosmesh.removed_by_another_writer
        writer during the method (a rollout
        controller rewriting the VirtualService)

R4 not met means the method never ran: R5/R6 are then not asked. "Not checked" (R4, R6) counts
only for a completed run; an interrupted one already fails R1. R9's "never ran" counts only when
the method ran something: with nothing done, there is nothing to undo.

The outcome is ``rollback-incomplete`` when what the run changed may still be in place:
- R11 fails (or the control never reported its rollback);
- R9 fails for a rollback that is not a chaosmesh activity (nobody else undoes it), or for a
  chaosmesh one when the control did not then remove every fault;
- R10 fails and a chaosmesh edit was made with no removal of its kind succeeding anywhere
  (``remove_faults``, ``remove_routing``, ``restore_policies`` / ``remove_upstream_faults``).
Else ``fail`` when any rule failed, else ``pass``.

Unverified faults (R8): on a cluster, without ``verify_url``, an injection reports
``{"checked": "no: ..."}``; with ``chaosmesh_verify_timeout_s: 0`` it reports no effect at all.
Both fail R8: the fault may never have reached Envoy, and a steady state that held then proves
nothing. ``allow_unverified`` waives R8 for clusters where no URL can show the fault, and R13's
"unknown" count (a cluster without ``chaosmesh_prometheus_url``), but never a count of 0: a
fault that met no request tested nothing. R12 and R13 are asked only of a run whose method ran
to its end (R1, R4), as the other reasons already say why nothing was hit.
``allow_no_fault`` waives R12, for experiments whose faults come from another extension.

R14 fails the run (``fail``, not a status of its own): from the moment another writer removed
the fault or route, the method ran without it, so a steady state that held afterwards proves
nothing about it, which is what ``fail`` already means to a gate, a report and a game day; nothing
of ours is left either (the writer took it), so it is not ``rollback-incomplete``. A loss seen
after the method ended (``during_method`` false) changed nothing the method observed and is not a
reason; one whose moment is unknown (found only by the rollback) is.

A journal the control graded as failing is marked ``deviated`` (``chaos run`` then exits 1),
and says so in ``chaosmesh.verdict.marked_deviated``: R6 reads past that mark, so a journal
graded again gets the same reasons.

No secret reaches a verdict: every value of the experiment's ``secrets`` block (inline values,
and those read from the environment variables it names) is replaced by ``***`` in the title and
the reasons (an error message or a substituted title may carry one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from chaosmesh_py.engine.redaction import Redactor, secret_values

Outcome = Literal["pass", "fail", "rollback-incomplete"]

ACTIONS_MODULE = "chaosmesh_py.faults.actions"
ROLLBACKS_MODULE = "chaosmesh_py.faults.rollbacks"
# Routing edits (dark launch, shift, mirror) are route copies too: owned, verified, rolled back
# like faults, so R8, R10 and R12 ask the same of them; only faults hit requests (R13).
ROUTING_MODULE = "chaosmesh_py.traffic.actions"
ROUTING_ROLLBACKS_MODULE = "chaosmesh_py.traffic.rollbacks"
# Resilience edits (a route's timeout or retries, a DestinationRule's connection pool or outlier
# detection, upstream faults) are owned, verified (their "effect") and rolled back the same way.
RESILIENCE_MODULE = "chaosmesh_py.resilience.actions"
RESILIENCE_ROLLBACKS_MODULE = "chaosmesh_py.resilience.rollbacks"
# Security changes (an mTLS mode, a DENY policy, a required JWT, a certificate) likewise.
SECURITY_MODULE = "chaosmesh_py.security.actions"
SECURITY_ROLLBACKS_MODULE = "chaosmesh_py.security.rollbacks"
# Each kind of edit and the module whose activities remove it: without the control, an edit
# counts as removed only by its own kind's removal (remove_faults leaves a policy edit in place).
REMOVED_BY = {
    ACTIONS_MODULE: ROLLBACKS_MODULE,
    ROUTING_MODULE: ROUTING_ROLLBACKS_MODULE,
    RESILIENCE_MODULE: RESILIENCE_ROLLBACKS_MODULE,
    SECURITY_MODULE: SECURITY_ROLLBACKS_MODULE,
}
EDIT_MODULES = tuple(REMOVED_BY)
REMOVAL_MODULES = tuple(REMOVED_BY.values())
_EDIT_NAMES = {
    ACTIONS_MODULE: "fault",
    ROUTING_MODULE: "routing edit",
    SECURITY_MODULE: "security change",
}
CONTROL_KEY = "chaosmesh"

# What Chaos Toolkit 1.19 means by each status other than completed (chaoslib/run.py).
_STATUS_CAUSES = {
    "interrupted": "a signal, Ctrl-C, a safeguard or a control stopped it",
    "aborted": "an unexpected error stopped it",
    "failed": "a steady-state probe could not run, or --fail-fast tripped",
}
_MAX_ERROR = 300  # an activity's error is quoted in a table cell


class MalformedJournal(ValueError):
    """A document shaped like a journal whose fields have the wrong types: not gradable."""

    exit_code = 2


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...]
    title: str
    duration_s: float | None
    run_id: str | None
    # What each chaosmesh fault hit, as the control counted it (``chaosmesh.faults``).
    faults: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "title": self.title,
            "duration_s": self.duration_s,
            "run_id": self.run_id,
            "faults": [dict(f) for f in self.faults],
        }


class Finding(NamedTuple):
    reason: str
    leaves_changes: bool = False  # what the run changed may still be in place


def is_journal(document: object) -> bool:
    """A journal as ``chaos run`` writes it, told from an experiment by its content."""
    return (
        isinstance(document, dict)
        and isinstance(document.get("experiment"), dict)
        and "status" in document
        and "run" in document
    )


def grade(
    journal: Mapping[str, Any],
    *,
    allow_unverified: bool = False,
    allow_no_fault: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Verdict:
    """Grade one run. ``environ`` resolves the experiment's environment secrets to hide them.

    Raises MalformedJournal when a field the rules read has the wrong type.
    """
    experiment = _mapping(journal, "experiment")
    runs = _entries(journal, "run")
    rollbacks = _entries(journal, "rollbacks")
    steady_states = _mapping(journal, "steady_states")
    control = journal.get(CONTROL_KEY)
    if control is not None and not isinstance(control, dict):
        raise MalformedJournal(f"{CONTROL_KEY} is not an object")

    counted = _counted_faults(control)
    findings = [
        *_status(journal, control),
        *_dry(experiment),
        *_steady_state(journal, experiment, steady_states, control),
        *_method(runs),
        *([] if allow_unverified else _verification(runs)),
        *_rollbacks(journal, experiment, runs, rollbacks, control),
        *_control(runs, rollbacks, control),
        *_removed_by_another_writer(control),
    ]
    if journal.get("status") == "completed" and _method_ran(steady_states):
        findings += [
            *([] if allow_no_fault else _some_fault(runs)),
            # A control that never reported its end (R11) could not count either.
            *(_hits(runs, counted, allow_unverified) if _control_ended(control) else []),
        ]
    if any(f.leaves_changes for f in findings):
        outcome: Outcome = "rollback-incomplete"
    elif findings:
        outcome = "fail"
    else:
        outcome = "pass"
    hide = Redactor(secret_values(experiment.get("secrets"), environ or {}))
    duration = journal.get("duration")
    return Verdict(
        outcome=outcome,
        reasons=tuple(dict.fromkeys(hide(f.reason) for f in findings)),
        title=hide(str(experiment.get("title") or "")),
        duration_s=float(duration) if isinstance(duration, int | float) else None,
        run_id=_run_id(experiment, control),
        faults=tuple(counted),
    )


# R1
def _status(journal: Mapping[str, Any], control: Mapping[str, Any] | None) -> list[Finding]:
    guardrail = (control or {}).get("aborted_by_guardrail")
    if isinstance(guardrail, dict):
        # The guardrail says why the run stopped; "interrupted" would say less.
        return [
            Finding(f"aborted by guardrail {guardrail.get('probe')!r}: {guardrail.get('reason')}")
        ]
    status = journal.get("status")
    if status == "completed":
        return []
    cause = _STATUS_CAUSES.get(str(status))
    return [Finding(f"run {status}" + (f" ({cause})" if cause else ""))]


# R2
def _dry(experiment: Mapping[str, Any]) -> list[Finding]:
    dry = experiment.get("dry")
    if not dry:
        return []
    return [Finding(f"dry run (--dry {dry}): the experiment was not really carried out")]


# R3-R6
def _steady_state(
    journal: Mapping[str, Any],
    experiment: Mapping[str, Any],
    steady_states: Mapping[str, Any],
    control: Mapping[str, Any] | None,
) -> list[Finding]:
    hypothesis = experiment.get("steady-state-hypothesis")
    if not isinstance(hypothesis, dict) or not hypothesis.get("probes"):
        return [Finding("no steady-state hypothesis with probes: nothing shows the system held")]
    completed = journal.get("status") == "completed"
    before = _state(steady_states, "before")
    after = _state(steady_states, "after")
    during = steady_states.get("during") or []
    if not isinstance(during, list):
        raise MalformedJournal("steady_states.during is not a list")

    findings = []
    if before is None:
        if completed:
            findings.append(Finding("steady state not checked before the method"))
    elif not before.get("steady_state_met"):
        return [
            Finding(
                "steady state not met before the method, so the method never ran: "
                + _off_probes(before)
            )
        ]
    checks = [state for state in during if isinstance(state, dict)]
    deviations = [state for state in checks if not state.get("steady_state_met")]
    if deviations:
        findings.append(
            Finding(
                f"steady state deviated during the method ({len(deviations)} of "
                f"{len(checks)} checks): {_off_probes(deviations[0])}"
            )
        )
    if after is not None and not after.get("steady_state_met"):
        findings.append(Finding(f"steady state deviated after the method: {_off_probes(after)}"))
    elif journal.get("deviated") and not _marked_by_control(control):
        findings.append(Finding("the journal marks the run deviated"))
    elif after is None and completed:
        findings.append(Finding("steady state not checked after the method"))
    return findings


def _state(steady_states: Mapping[str, Any], when: str) -> Mapping[str, Any] | None:
    state = steady_states.get(when)
    if state is not None and not isinstance(state, dict):
        raise MalformedJournal(f"steady_states.{when} is not an object")
    return state


def _off_probes(state: Mapping[str, Any]) -> str:
    """The probes that made a steady-state check fail, and how."""
    off = []
    for probe in state.get("probes") or []:
        if not isinstance(probe, dict):
            continue
        name = _name(probe.get("activity"))
        if probe.get("status") != "succeeded":
            off.append(f"probe {name!r} {probe.get('status')}: {_error(probe)}")
        elif probe.get("tolerance_met") is False:
            off.append(
                f"probe {name!r} out of tolerance ({_shorten(_output(probe.get('output')))})"
            )
    return "; ".join(off) or "no probe says why"


# R7
def _method(runs: Sequence[Mapping[str, Any]]) -> list[Finding]:
    findings = []
    for entry in runs:
        problem = _problem(entry)
        if problem:
            activity = entry["activity"]
            findings.append(Finding(f"{activity.get('type')} {_name(activity)!r} {problem}"))
    return findings


def _problem(entry: Mapping[str, Any]) -> str | None:
    """Why an activity of the method or the rollbacks did not do its job, if it did not."""
    if entry.get("status") != "succeeded":
        return f"{entry.get('status')}: {_error(entry)}"
    activity = entry["activity"]
    output = entry.get("output")
    if (
        activity.get("type") == "action"
        and (activity.get("provider") or {}).get("type") == "process"
        and isinstance(output, dict)
        and output.get("status") not in (0, None)
    ):
        return f"exited {output['status']} (Chaos Toolkit records that as succeeded)"
    return None


# R8
def _verification(runs: Sequence[Mapping[str, Any]]) -> list[Finding]:
    findings = []
    for entry in runs:
        module = _module(entry)
        if module not in EDIT_MODULES or entry.get("status") != "succeeded":
            continue
        output = entry.get("output")
        # A fault's (and a resilience edit's) check is its "effect"; a routing edit's, its
        # "verification".
        key = "verification" if module == ROUTING_MODULE else "effect"
        effect = output.get(key) if isinstance(output, dict) else None
        if isinstance(effect, dict) and ("config_s" in effect or "traffic_s" in effect):
            continue
        # An upstream fault's check (inject_upstream_fault): each pod's inbound config, then
        # requests to each pod until its fault counters moved. A security change's: each pod's
        # inbound chains / RBAC / jwt_authn / certificate, and the requests it sent.
        if (
            module in (RESILIENCE_MODULE, SECURITY_MODULE)
            and isinstance(effect, dict)
            and effect.get("verified") is True
        ):
            continue
        if isinstance(effect, dict) and str(effect.get("checked", "")).startswith("no: "):
            why = str(effect["checked"]).removeprefix("no: ")
        elif isinstance(effect, dict) and effect.get("checked"):
            why = str(effect["checked"])
        else:
            why = "the data plane was not checked (chaosmesh_verify_timeout_s is 0)"
        what = _EDIT_NAMES.get(str(module), "resilience edit")
        findings.append(
            Finding(
                f"{what} of {_name(entry['activity'])!r} not verified live: {why} "
                "(or accept unverified faults with --allow-unverified)"
            )
        )
    return findings


# R9
def _rollbacks(
    journal: Mapping[str, Any],
    experiment: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    rollbacks: Sequence[Mapping[str, Any]],
    control: Mapping[str, Any] | None,
) -> list[Finding]:
    control_removed_all = control is not None and control.get("rollback_complete") is True

    def finding(activity: Mapping[str, Any], problem: str) -> Finding:
        ours = str((activity.get("provider") or {}).get("module", "")).startswith("chaosmesh_py.")
        if ours and control_removed_all:
            return Finding(
                f"rollback {_name(activity)!r} {problem}; "
                "the chaosmesh control removed the run's faults"
            )
        return Finding(f"rollback {_name(activity)!r} {problem}", leaves_changes=True)

    findings = []
    for entry in rollbacks:
        problem = _problem(entry)
        if problem:
            findings.append(finding(entry["activity"], problem))
    declared = experiment.get("rollbacks") or []
    if runs and isinstance(declared, list) and len(rollbacks) < len(declared):
        why = f"never ran (the rollback strategy skipped it: run {journal.get('status')})"
        findings += [finding(a, why) for a in declared[len(rollbacks) :] if isinstance(a, dict)]
    return findings


# R10, R11
def _control(
    runs: Sequence[Mapping[str, Any]],
    rollbacks: Sequence[Mapping[str, Any]],
    control: Mapping[str, Any] | None,
) -> list[Finding]:
    if control is None:
        injections = [entry for entry in runs if _module(entry) in EDIT_MODULES]
        if not injections:
            return []
        findings = [Finding("the chaosmesh control was not declared: rollback not guaranteed")]
        removed = {
            _module(entry)
            for entry in [*runs, *rollbacks]
            if _module(entry) in REMOVAL_MODULES and entry.get("status") == "succeeded"
        }
        for module, removal in REMOVED_BY.items():
            injected = [
                _name(e["activity"])
                for e in injections
                if _module(e) == module and e.get("status") == "succeeded"
            ]
            if injected and removal not in removed:
                findings.append(
                    Finding(
                        f"edits by {', '.join(map(repr, injected))} were never removed: "
                        f"no {removal} activity succeeded",
                        leaves_changes=True,
                    )
                )
        return findings
    complete = control.get("rollback_complete")
    if complete is True:
        return []
    if complete is None:
        return [Finding("the chaosmesh control never reported its rollback", leaves_changes=True)]
    failed = [f for f in control.get("rollback_failed") or [] if isinstance(f, dict)]
    if not failed:
        return [Finding("the chaosmesh control did not remove every fault", leaves_changes=True)]
    return [
        Finding(
            f"the chaosmesh control could not remove run {control.get('run_id')}'s faults "
            f"from {f.get('virtual_service')}: {_shorten(str(f.get('error')))}",
            leaves_changes=True,
        )
        for f in failed
    ]


# R14
def _removed_by_another_writer(control: Mapping[str, Any] | None) -> list[Finding]:
    lost = (control or {}).get("removed_by_another_writer") or []
    if not isinstance(lost, list):
        raise MalformedJournal(f"{CONTROL_KEY}.removed_by_another_writer is not a list")
    findings = []
    for entry in lost:
        if not isinstance(entry, dict) or entry.get("during_method") is False:
            continue
        what = [f"route {name}" for name in entry.get("routes") or []]
        what += [f"field {path}" for path in entry.get("fields") or []]
        if entry.get("deleted"):
            what.insert(0, "the object")
        elif entry.get("record"):
            what.append("the run's owner record")
        by = f" ({entry['by']})" if entry.get("by") else ""
        when = f"at {entry['at']}" if entry.get("at") else "before the rollback (when: unknown)"
        findings.append(
            Finding(
                f"{', '.join(what) or 'an edit'} on {entry.get('resource')} removed by another "
                f"writer{by} {when}: from then on the method ran without it, so it did not test "
                "it (keep the rollout controller off that object during experiments, or give "
                "its routes a delegate VirtualService of their own)"
            )
        )
    return findings


def _control_ended(control: Mapping[str, Any] | None) -> bool:
    return control is not None and control.get("rollback_complete") is not None


def _marked_by_control(control: Mapping[str, Any] | None) -> bool:
    verdict = (control or {}).get("verdict")
    return isinstance(verdict, dict) and verdict.get("marked_deviated") is True


def _method_ran(steady_states: Mapping[str, Any]) -> bool:
    before = _state(steady_states, "before")
    return before is None or bool(before.get("steady_state_met"))


# R12
def _some_fault(runs: Sequence[Mapping[str, Any]]) -> list[Finding]:
    if any(_module(entry) in EDIT_MODULES for entry in runs):
        return []  # injected (a fault, a routing or resilience edit), or R7 says why not
    return [
        Finding(
            "no chaosmesh fault was injected: the run tested nothing (when another extension "
            "injects the experiment's faults, accept it with --allow-no-fault)"
        )
    ]


# R13
def _hits(
    runs: Sequence[Mapping[str, Any]],
    counted: Sequence[Mapping[str, Any]],
    allow_unknown: bool,
) -> list[Finding]:
    findings = []
    for entry in runs:
        if _module(entry) != ACTIONS_MODULE or entry.get("status") != "succeeded":
            continue
        output = entry.get("output")
        output = output if isinstance(output, dict) else {}
        routes = list(output.get("fault_routes") or output.get("routes") or [])
        name = _name(entry["activity"])
        count = next((c for c in counted if c.get("routes") == routes), {})
        hits = count.get("hits")
        if isinstance(hits, int) and not isinstance(hits, bool):
            if hits == 0:
                findings.append(Finding(_tested_nothing(name, output, count)))
            continue
        if not allow_unknown:
            why = count.get("counted") or "the chaosmesh control did not count it"
            findings.append(
                Finding(
                    f"what the fault of {name!r} hit is unknown: "
                    f"{str(why).removeprefix('not counted: ')} "
                    "(or accept uncounted faults with --allow-unverified)"
                )
            )
    return findings


def _tested_nothing(name: str, output: Mapping[str, Any], count: Mapping[str, Any]) -> str:
    routes = ", ".join(count.get("routes") or []) or "its routes"
    where = f"{routes} of {output.get('virtual_service', '?')}"
    taken = count.get("requests")
    took = f"; {taken} request(s) took those routes" if isinstance(taken, int) else ""
    return (
        f"the fault of {name!r} tested nothing: it hit 0 requests on {where} during the run"
        f"{took} (does the experiment's traffic match the fault's route and narrowing?)"
    )


def _counted_faults(control: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    faults = (control or {}).get("faults") or []
    if not isinstance(faults, list):
        raise MalformedJournal(f"{CONTROL_KEY}.faults is not a list")
    return [f for f in faults if isinstance(f, dict)]


def _run_id(experiment: Mapping[str, Any], control: Mapping[str, Any] | None) -> str | None:
    run_id = (control or {}).get("run_id")
    if run_id is None and isinstance(experiment.get("configuration"), dict):
        # A run without the control: the id the experiment fixed, if any.
        run_id = experiment["configuration"].get("chaosmesh_run_id")
    return run_id if isinstance(run_id, str) else None


def _mapping(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedJournal(f"{key} is not an object")
    return value


def _entries(document: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The activity runs under ``key``: each an object with an ``activity`` object."""
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(e, dict) and isinstance(e.get("activity"), dict) for e in value
    ):
        raise MalformedJournal(f"{key} is not a list of activity runs")
    return value


def _module(entry: Mapping[str, Any]) -> str:
    return str((entry["activity"].get("provider") or {}).get("module", ""))


def _name(activity: object) -> str:
    return str(activity.get("name", "?")) if isinstance(activity, dict) else "?"


def _error(entry: Mapping[str, Any]) -> str:
    """The last line of an activity's exception, without Chaos Toolkit's wrapping."""
    lines = [line.strip() for line in entry.get("exception") or [] if str(line).strip()]
    if not lines:
        return "no error recorded"
    message = lines[-1]
    wrapper = "chaoslib.exceptions.ActivityFailed: "
    while message.startswith(wrapper):
        message = message.removeprefix(wrapper)
    return _shorten(message)


def _output(output: object) -> str:
    if isinstance(output, dict) and {"status", "stdout", "stderr"} <= output.keys():
        # A process probe: its exit status, and its last words when it said any.
        said = (str(output["stderr"]).strip() or str(output["stdout"]).strip()).splitlines()
        return f"exit status {output['status']}" + (f": {said[-1]}" if said else "")
    if isinstance(output, dict) and isinstance(output.get("summary"), str):
        return str(output["summary"])  # a probe that says in one line what it saw
    return f"output {output!r}"


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"
