"""Journals and game-day run directories in the shapes ``chaos run`` + the control and
``chaosmesh gameday run`` write them (common.md's run directory), for the report's tests and
bench/report_size.py."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

T0 = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
ROUTE = "chaosmesh-run1-abc"
PAGE_TOLERANCE = {"type": "range", "range": [1.0, 1.0], "target": "whole_share"}


def at(seconds, origin=T0):
    return (origin + timedelta(seconds=seconds)).isoformat()


def probe(name, start, end, whole_share, median_s, *, met=True, tolerance=PAGE_TOLERANCE):
    return {
        "activity": {
            "type": "probe",
            "name": name,
            "tolerance": tolerance,
            "provider": {
                "type": "python",
                "module": "chaosmesh_py.observe.probes",
                "func": "bookinfo_page",
                "arguments": {"url": "${productpage_url}", "pages": 20},
            },
        },
        "output": {
            "pages": 20,
            "whole": round(20 * whole_share),
            "whole_share": whole_share,
            "seconds": {"median": median_s, "max": median_s},
        },
        "start": start,
        "end": end,
        "status": "succeeded",
        "tolerance_met": met,
    }


def load_probe(name, start, end, error_ratio, p99_ms, *, met=True):
    entry = probe(name, start, end, 1.0, 0.1, met=met)
    entry["activity"]["tolerance"] = {"type": "range", "range": [0, 0.01], "target": "error_ratio"}
    entry["activity"]["provider"]["func"] = "measure_http_load"
    entry["output"] = {"requests": 100, "error_ratio": error_ratio, "latency_ms": {"p99": p99_ms}}
    return entry


def journal(
    title="Ratings is slow for jason",
    *,
    origin=T0,
    hits=40,
    verdict="pass",
    reasons=(),
    after_met=True,
    rollback_activity=True,
    evidence=None,
    guardrail_checks=0,
    breach=None,
    extra_output=None,
    secrets=None,
):
    """One run: steady state 0-1 s, fault injected at 1.0 s (seen 0.03 s later), steady state
    after the method 1.1-7 s, rollback 7.0-7.05 s (by the experiment's rollback, or by the
    control at 7.1 s)."""
    s = lambda seconds: at(seconds, origin)  # noqa: E731
    inject = {
        "activity": {
            "type": "action",
            "name": "delay-ratings-for-jason",
            "provider": {
                "type": "python",
                "module": "chaosmesh_py.faults.actions",
                "func": "inject_delay",
            },
        },
        "output": {
            "run_id": "run1",
            "virtual_service": "bookinfo/ratings",
            "fault": {"delay": {"fixedDelay": "7s"}},
            "routes": [ROUTE],
            "fault_routes": [ROUTE],
            "destinations": ["ratings.bookinfo.svc.cluster.local"],
            "effect": {"checked": "local mesh", "config_s": 0.02, "traffic_s": 0.03},
            **(extra_output or {}),
        },
        "start": s(1.0),
        "end": s(1.05),
        "status": "succeeded",
    }
    removal = {
        "removed": [ROUTE],
        "virtual_service": "bookinfo/ratings",
        "effect": {"checked": "local mesh", "config_s": 0.02, "traffic_s": 0.04},
    }
    rollbacks = []
    control_rollback = []
    if rollback_activity:
        rollbacks.append(
            {
                "activity": {
                    "type": "action",
                    "name": "remove-ratings-faults",
                    "provider": {"type": "python", "module": "chaosmesh_py.faults.rollbacks"},
                },
                "output": [removal],
                "start": s(7.0),
                "end": s(7.05),
                "status": "succeeded",
            }
        )
    else:
        control_rollback.append(removal)
    control = {
        "run_id": "run1",
        "rollback_started": s(7.1),
        "rollback_ended": s(7.15),
        "rollback": control_rollback,
        "rollback_failed": [],
        "rollback_complete": True,
        "method_started": s(1.0),
        "evidence": evidence
        if evidence is not None
        else [
            {
                "resource": "VirtualService bookinfo/ratings",
                "equal": True,
                "before": {"present": True, "digest": "sha256:" + "a" * 64, "chars": 10},
                "after": {"present": True, "digest": "sha256:" + "a" * 64, "chars": 10},
            }
        ],
        "faults": [
            {
                "activity": "delay-ratings-for-jason",
                "virtual_service": "bookinfo/ratings",
                "fault": "delay",
                "routes": [ROUTE],
                "hits": hits,
            }
        ],
        "verdict": {"outcome": verdict, "reasons": list(reasons)},
    }
    if guardrail_checks:
        control["guardrail_checks"] = guardrail_checks
        control["guardrail_checked_at"] = [s(1.0 + i) for i in range(guardrail_checks)]
    if breach:
        control["aborted_by_guardrail"] = {"probe": "others-fine", "reason": breach, "at": s(3)}
    experiment = {"title": title, "method": [inject["activity"]]}
    if secrets is not None:
        experiment["secrets"] = secrets
    return {
        "experiment": experiment,
        "start": s(0),
        "end": s(7.2),
        "status": "completed",
        "deviated": not after_met,
        "steady_states": {
            "before": {
                "steady_state_met": True,
                "probes": [
                    probe("page-whole-for-jason", s(0), s(0.5), 1.0, 0.05),
                    load_probe("ratings-load", s(0.5), s(1.0), 0.0, 40.0),
                ],
            },
            "after": {
                "steady_state_met": after_met,
                "probes": [
                    probe(
                        "page-whole-for-jason",
                        s(1.1),
                        s(7.0),
                        1.0 if after_met else 0.0,
                        6.0,
                        met=after_met,
                    )
                ],
            },
            "during": [],
        },
        "run": [inject],
        "rollbacks": rollbacks,
        "chaosmesh": control,
    }


def gameday_run(results, name, slot_id, outcome, journals, *, slots=None, slot=None):
    """A run directory as ``chaosmesh gameday run`` writes it; returns its path."""
    directory = Path(results) / name / slot_id
    directory.mkdir(parents=True)
    experiments = []
    for index, document in enumerate(journals, start=1):
        path = directory / f"{index:02d}-experiment-{index}.journal.json"
        path.write_text(json.dumps(document))
        verdict = document["chaosmesh"]["verdict"]
        experiments.append(
            {
                "input": f"experiment-{index}.json",
                "kind": "experiment",
                "outcome": verdict["outcome"],
                "reasons": verdict["reasons"],
                "title": document["experiment"]["title"],
                "duration_s": 7.2,
                "run_id": "run1",
                "journal": str(path),
                "faults": document["chaosmesh"]["faults"],
                "started": document["start"],
                "ended": document["end"],
            }
        )
    first = journals[0] if journals else None
    summary = {
        "version": 1,
        "gameday": name,
        "file": "gameday.yaml",
        "namespace": "bookinfo",
        "slot": slot,
        "slot_id": slot_id,
        "runner": "runner-a",
        "started": first["start"] if first else slot,
        "ended": journals[-1]["end"] if journals else slot,
        "outcome": outcome,
        "reasons": [],
        "experiments": experiments,
        "preflight": [{"name": "no-alerts", "ok": True, "detail": "no series"}],
        "abort": None,
        "pause": None,
        "slots": slots
        if slots is not None
        else [{"slot": slot, "outcome": outcome, "runner": "runner-a", "recorded": slot}],
        "notifications": [],
    }
    (directory / "gameday.json").write_text(json.dumps(summary))
    return directory
