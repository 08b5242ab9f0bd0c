"""What a report shows of one run, read from its journal: pure data, no plotting.

Chaos Toolkit's journal gives each activity's start and end and output; the control's entry
(``chaosmesh`` in the journal, ``chaosmesh_py.control``) adds what Chaos Toolkit cannot know:
when the method started, what each fault hit, the guardrail's checks, when the control's own
rollback ran, the rollback evidence and the verdict. Every time here is a timezone-aware UTC
datetime.

The phases are what really happened, in Chaos Toolkit's order: the steady state before, the
method (the faults), the steady state *after the method* (Chaos Toolkit probes it with the faults
still in place), then the rollbacks, then the control's rollback (whatever is left).

A fault's window runs from the start of the action that injected it to the end of the first
removal of its routes (a rollback activity's, else the control's). Its time to effect is the
action's own measurement: from the write to the fault seen in the data plane (``traffic_s``:
seen on a request; ``config_s``: seen in Envoy's config). Time to recover is from the start of
the first removal to the last fault seen gone in the data plane (its removal's ``effect``), or
to the end of the rollback when removals were not verified.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chaosmesh_py.verdict import rules

ACTIONS_MODULE = rules.ACTIONS_MODULE
ROLLBACKS_MODULE = rules.ROLLBACKS_MODULE
CONTROL_KEY = rules.CONTROL_KEY
MAX_NUMBER = 1e12

# What a probe's output is plotted by: the field (a dotted path), its label, and a factor.
PROBE_METRICS: tuple[tuple[str, str, float], ...] = (
    ("error_ratio", "error ratio", 1.0),
    ("latency_ms.p99", "p99 latency (ms)", 1.0),
    ("whole_share", "whole pages (share)", 1.0),
    ("seconds.median", "median page time (ms)", 1000.0),
)


@dataclass(frozen=True)
class Phase:
    name: str  # e.g. "steady state before"
    start: datetime
    end: datetime
    ok: bool | None  # None: not judged


@dataclass(frozen=True)
class FaultWindow:
    activity: str
    target: str  # e.g. "bookinfo/ratings"
    kind: str  # "delay", "abort", or what the fault is
    start: datetime
    end: datetime | None  # None: never seen removed
    effect_s: float | None  # from the write to the fault seen in the data plane
    effect_how: str  # what saw it
    hits: int | None  # None: unknown
    destinations: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeSample:
    probe: str
    phase: str
    start: datetime
    end: datetime
    values: Mapping[str, float]  # label -> value, see PROBE_METRICS
    tolerance: tuple[str, float, float] | None  # (label, low, high) the tolerance checks
    met: bool | None


@dataclass(frozen=True)
class Evidence:
    resource: str
    equal: bool | None  # None: could not be read back
    differences: tuple[str, ...] = ()  # each named: "changed /http/0/fault: ... -> ..."
    before: str = ""  # "absent", or the spec's digest
    after: str = ""
    error: str = ""


@dataclass(frozen=True)
class ExperimentView:
    title: str
    source: str  # the journal it was read from
    run_id: str | None
    outcome: str  # "pass", "fail", "rollback-incomplete", ...
    reasons: tuple[str, ...]
    start: datetime
    end: datetime
    phases: tuple[Phase, ...]
    faults: tuple[FaultWindow, ...]
    samples: tuple[ProbeSample, ...]
    guardrail_checks: tuple[datetime, ...] = ()
    guardrail_breach: str | None = None
    evidence: tuple[Evidence, ...] = ()
    evidence_recorded: bool = False  # False: a journal from before the control recorded it
    recovery_s: float | None = None
    rollback_complete: bool | None = None
    prometheus_url: str | None = None


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time from a journal, as UTC; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:  # Chaos Toolkit's older journals: naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def experiment_view(
    journal: Mapping[str, Any],
    source: str,
    verdict: tuple[str, Sequence[str]] | None = None,
) -> ExperimentView:
    """Everything the report shows of one run. ``journal`` must satisfy ``rules.is_journal``.

    The verdict shown is the one the run was graded with, waivers included: ``verdict`` (the
    gate's, from a game day's summary), else the control's in the journal, else the gate's
    rules applied now without waivers."""
    control = _mapping(journal.get(CONTROL_KEY))
    start = parse_time(journal.get("start")) or datetime.now(UTC)
    end = parse_time(journal.get("end")) or start
    if verdict is None:
        graded = _mapping(control.get("verdict"))
        if isinstance(graded.get("outcome"), str):
            verdict = (graded["outcome"], [str(r) for r in _list(graded.get("reasons"))])
        else:
            found = rules.grade(journal)
            verdict = (found.outcome, found.reasons)
    runs = _entries(journal.get("run"))
    rollbacks = _entries(journal.get("rollbacks"))
    phases = _phases(journal, control, runs, rollbacks)
    removals = _removals(runs + rollbacks, control)
    faults = _faults(runs, control, removals)
    breach = _mapping(control.get("aborted_by_guardrail"))
    return ExperimentView(
        title=str(_mapping(journal.get("experiment")).get("title") or source),
        source=source,
        run_id=control.get("run_id") if isinstance(control.get("run_id"), str) else None,
        outcome=verdict[0],
        reasons=tuple(verdict[1]),
        start=start,
        end=end,
        phases=phases,
        faults=faults,
        samples=_samples(journal, runs),
        guardrail_checks=tuple(
            t for t in (parse_time(v) for v in _list(control.get("guardrail_checked_at"))) if t
        ),
        guardrail_breach=(
            f"{breach.get('probe')}: {breach.get('reason')} at {breach.get('at')}"
            if breach
            else None
        ),
        evidence=tuple(_evidence(e) for e in _entries(control.get("evidence"))),
        evidence_recorded="evidence" in control,
        recovery_s=_recovery_s(removals, control),
        rollback_complete=control.get("rollback_complete") if control else None,
        prometheus_url=control.get("prometheus_url") or None,
    )


def _phases(
    journal: Mapping[str, Any],
    control: Mapping[str, Any],
    runs: list[Mapping[str, Any]],
    rollbacks: list[Mapping[str, Any]],
) -> tuple[Phase, ...]:
    states = _mapping(journal.get("steady_states"))
    found = [
        _state_phase(_mapping(states.get("before")), "steady state before"),
        _activities_phase(runs, "method (faults)"),
        *(_state_phase(d, "steady state during") for d in _entries(states.get("during"))),
        _state_phase(_mapping(states.get("after")), "steady state after the method"),
        _activities_phase(rollbacks, "rollbacks"),
    ]
    phases = [phase for phase in found if phase is not None]
    started = parse_time(control.get("rollback_started"))
    ended = parse_time(control.get("rollback_ended"))
    if started and ended:
        complete = control.get("rollback_complete")
        phases.append(
            Phase("chaosmesh rollback", started, max(ended, started), ok=complete is not False)
        )
    return tuple(phases)


def _activities_phase(entries: Sequence[Mapping[str, Any]], name: str) -> Phase | None:
    span = _span(entries)
    if span is None:
        return None
    return Phase(name, *span, ok=all(e.get("status") == "succeeded" for e in entries))


def _state_phase(state: Mapping[str, Any], name: str) -> Phase | None:
    span = _span(_entries(state.get("probes")))
    if span is None:
        return None
    met = state.get("steady_state_met")
    return Phase(name, *span, ok=met if isinstance(met, bool) else None)


def _span(entries: Sequence[Mapping[str, Any]]) -> tuple[datetime, datetime] | None:
    starts = [t for t in (parse_time(e.get("start")) for e in entries) if t]
    ends = [t for t in (parse_time(e.get("end")) for e in entries) if t]
    if not starts:
        return None
    return min(starts), max([*ends, *starts])


@dataclass(frozen=True)
class _Removal:
    routes: frozenset[str]
    start: datetime
    end: datetime
    seen_gone_s: float | None  # from the start of the removal's verification


def _removals(entries: Sequence[Mapping[str, Any]], control: Mapping[str, Any]) -> list[_Removal]:
    """Every removal of the run, by a rollback activity or the control, in time order."""
    found = []
    for entry in entries:
        if _module(entry) != ROLLBACKS_MODULE or not isinstance(entry.get("output"), list):
            continue
        start, end = parse_time(entry.get("start")), parse_time(entry.get("end"))
        if start is None or end is None:
            continue
        for report in entry["output"]:
            if isinstance(report, Mapping) and report.get("removed"):
                found.append(_removal(report, start, end))
    start = parse_time(control.get("rollback_started"))
    end = parse_time(control.get("rollback_ended"))
    if start and end:
        for report in _entries(control.get("rollback")):
            if report.get("removed"):
                # Each removal's own time when the control recorded it (a guardrail's rollback
                # comes long before the end of the experiment's).
                at = parse_time(report.get("removed_at")) or end
                found.append(_removal(report, min(start, at), at))
    return sorted(found, key=lambda r: r.end)


def _removal(report: Mapping[str, Any], start: datetime, end: datetime) -> _Removal:
    effect = _mapping(report.get("effect"))
    seen = effect.get("traffic_s", effect.get("config_s"))
    return _Removal(
        frozenset(_names(report.get("removed"))),
        start,
        end,
        number(seen),
    )


def _faults(
    runs: Sequence[Mapping[str, Any]], control: Mapping[str, Any], removals: list[_Removal]
) -> tuple[FaultWindow, ...]:
    counts = {str(c.get("activity")): c for c in _entries(control.get("faults"))}
    faults = []
    for entry in runs:
        output = entry.get("output")
        if _module(entry) != ACTIONS_MODULE or not isinstance(output, Mapping):
            continue
        start = parse_time(entry.get("start"))
        if start is None or "fault" not in output:
            continue
        name = str(_mapping(entry.get("activity")).get("name"))
        routes = set(_names(output.get("fault_routes")) or _names(output.get("routes")))
        ended = next((r.end for r in removals if r.routes & routes and r.end >= start), None)
        effect = _mapping(output.get("effect"))
        effect_s = effect.get("traffic_s", effect.get("config_s"))
        hits = _mapping(counts.get(name)).get("hits")
        fault = output.get("fault")
        faults.append(
            FaultWindow(
                activity=name,
                target=str(output.get("virtual_service") or output.get("resource") or ""),
                kind=", ".join(fault) if isinstance(fault, Mapping) else str(fault),
                start=start,
                end=ended,
                effect_s=number(effect_s),
                effect_how=str(effect.get("checked") or "not verified"),
                hits=hits if isinstance(hits, int) and not isinstance(hits, bool) else None,
                destinations=_names(output.get("destinations")),
            )
        )
    return tuple(faults)


def _recovery_s(removals: list[_Removal], control: Mapping[str, Any]) -> float | None:
    """From the start of the first removal to the last fault seen gone (see the docstring)."""
    if not removals:
        return None
    first = min(r.start for r in removals)
    gone = [
        r.end if r.seen_gone_s is None else min(r.end, r.start + timedelta(seconds=r.seen_gone_s))
        for r in removals
    ]
    # A verified removal is seen gone at most at its activity's end; unverified, at its end.
    return max((max(gone) - first).total_seconds(), 0.0)


def _samples(
    journal: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]
) -> tuple[ProbeSample, ...]:
    states = _mapping(journal.get("steady_states"))
    labelled: list[tuple[str, Mapping[str, Any]]] = []
    for key, phase in (("before", "before"), ("after", "after the method")):
        labelled += [(phase, p) for p in _entries(_mapping(states.get(key)).get("probes"))]
    for during in _entries(states.get("during")):
        labelled += [("during", p) for p in _entries(during.get("probes"))]
    labelled += [("method", r) for r in runs if _mapping(r.get("activity")).get("type") == "probe"]
    samples = []
    for phase, entry in labelled:
        start, end = parse_time(entry.get("start")), parse_time(entry.get("end"))
        values = probe_values(entry.get("output"))
        if start is None or end is None or not values:
            continue
        activity = _mapping(entry.get("activity"))
        met = entry.get("tolerance_met")
        samples.append(
            ProbeSample(
                probe=str(activity.get("name") or "probe"),
                phase=phase,
                start=start,
                end=end,
                values=values,
                tolerance=tolerance_band(activity.get("tolerance")),
                met=met if isinstance(met, bool) else None,
            )
        )
    return tuple(sorted(samples, key=lambda s: s.start))


def probe_values(output: object) -> dict[str, float]:
    """The numbers a probe's output is plotted by (``PROBE_METRICS``; a bare number as
    ``value``)."""
    bare = number(output)
    if bare is not None:
        return {"value": bare}
    if not isinstance(output, Mapping):
        return {}
    values = {}
    for path, label, factor in PROBE_METRICS:
        found = number(_at(output, path))
        if found is not None:
            values[label] = found * factor
    return values


def tolerance_band(tolerance: object) -> tuple[str, float, float] | None:
    """A range tolerance as (the label it checks, low, high); None for other tolerances."""
    if not isinstance(tolerance, Mapping) or tolerance.get("type") != "range":
        return None
    bounds = tolerance.get("range")
    if not isinstance(bounds, list) or len(bounds) != 2:
        return None
    low, high = number(bounds[0]), number(bounds[1])
    if low is None or high is None:
        return None
    target = tolerance.get("target")
    if target is None:
        return "value", low, high
    for path, label, factor in PROBE_METRICS:
        if target == path:
            return label, low * factor, high * factor
    return None


def _evidence(entry: Mapping[str, Any]) -> Evidence:
    if entry.get("error"):
        return Evidence(str(entry.get("resource")), None, error=str(entry["error"]))
    differences = []
    for difference in _entries(entry.get("differences")):
        change, path = difference.get("change"), difference.get("path")
        if change == "added":
            differences.append(f"added {path}: {_text(difference.get('after'))}")
        elif change == "removed":
            differences.append(f"removed {path} (was {_text(difference.get('before'))})")
        else:
            differences.append(
                f"{change} {path}: {_text(difference.get('before'))} → "
                f"{_text(difference.get('after'))}"
            )
    if entry.get("differences_not_shown"):
        differences.append(f"… and {entry['differences_not_shown']} more")
    return Evidence(
        resource=str(entry.get("resource")),
        equal=bool(entry.get("equal")),
        differences=tuple(differences),
        before=_snapshot_text(_mapping(entry.get("before"))),
        after=_snapshot_text(_mapping(entry.get("after"))),
    )


def _snapshot_text(snapshot: Mapping[str, Any]) -> str:
    if not snapshot.get("present"):
        return "absent"
    return str(snapshot.get("digest", ""))[:19]


def _text(value: object) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:120] + "…"


def _at(document: Mapping[str, Any], path: str) -> object:
    node: object = document
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def number(value: object) -> float | None:
    """``value`` as a number a plot can take: finite, within ±1e12 (a journal is input: a
    NaN, an infinity or an absurd value is shown as missing, never drawn)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) and abs(result) < MAX_NUMBER else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(value: object) -> tuple[str, ...]:
    """A journal's list of names (routes, destinations), its other items left out."""
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _module(entry: Mapping[str, Any]) -> object:
    return _mapping(_mapping(entry.get("activity")).get("provider")).get("module")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _entries(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
