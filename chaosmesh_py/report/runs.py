"""What ``chaosmesh report`` reads: journals, game-day run directories, a game day's history.

Each argument is one of (told apart by what is there, not by its name):

    a journal          a Chaos Toolkit journal.json (graded as ``chaosmesh gate`` grades it)
    a run directory    holds ``gameday.json`` (``chaosmesh gameday run`` writes it, with
                       ``NN-<stem>.journal.json`` beside it): one run of a game day
    a results tree     directories below it hold run directories, e.g. ``RESULTS/<game day>/``
                       or ``RESULTS/``: every run found, grouped by game day, oldest first
    a directory        of ``*.journal.json`` files (what ``chaosmesh gate --journal-dir`` wrote)

Anything else is invalid input, named with the fix, before anything is written. Everything read
is passed through the Redactor of the secrets the current environment resolves for each
experiment (``redaction.secret_values``): the control already hid them in the journal; this is
the second look that a report, which people pass around, deserves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from chaosmesh_py.engine.redaction import Redactor, Secret, secret_values
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.report.model import ExperimentView, experiment_view, parse_time
from chaosmesh_py.verdict import rules

SUMMARY = "gameday.json"
JOURNAL_SUFFIX = ".journal.json"
MAX_RUNS = 1000  # a results tree deeper than this is not what was meant


@dataclass(frozen=True)
class SlotRecord:
    slot: str  # ISO 8601 with offset; "" for a run by hand
    slot_id: str  # 20261208T093000Z, or adhoc-<UTC time>
    outcome: str  # pass, fail, missed, skipped, already-running, ...
    runner: str
    reason: str


@dataclass(frozen=True)
class GameDayRun:
    gameday: str
    directory: str
    slot_id: str
    slot: datetime | None
    started: datetime | None
    ended: datetime | None
    outcome: str
    reasons: tuple[str, ...]
    experiments: tuple[ExperimentView, ...]
    unrun: tuple[tuple[str, str, tuple[str, ...]], ...]  # (title, outcome, reasons), no journal
    slots: tuple[SlotRecord, ...]
    preflight: tuple[tuple[str, bool, str], ...] = ()
    abort: str | None = None
    pause: str | None = None
    notifications: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    runs: tuple[GameDayRun, ...]  # oldest first
    journals: tuple[ExperimentView, ...]
    # What the environment resolves the experiments' secrets to: hidden from the whole page.
    secrets: frozenset[Secret] = frozenset()

    def by_gameday(self) -> dict[str, list[GameDayRun]]:
        grouped: dict[str, list[GameDayRun]] = {}
        for run in self.runs:
            grouped.setdefault(run.gameday, []).append(run)
        return grouped


def read_inputs(paths: Sequence[Path], environ: Mapping[str, str] = os.environ) -> Inputs:
    """Every path read; InvalidInput naming the first that is not a journal or a run."""
    runs: list[GameDayRun] = []
    journals: list[ExperimentView] = []
    secrets: set[Secret] = set()
    for path in paths:
        if path.is_file():
            if path.name == SUMMARY:
                runs.append(read_run(path.parent, environ, secrets))
            else:
                journals.append(read_journal(path, environ, secrets))
        elif path.is_dir():
            found_runs = _run_directories(path)
            if found_runs:
                runs += [read_run(d, environ, secrets) for d in found_runs]
                continue
            found = sorted(path.glob(f"*{JOURNAL_SUFFIX}"))
            if not found:
                raise InvalidInput(
                    str(path),
                    f"holds neither {SUMMARY} (a game-day run), run directories, "
                    f"nor *{JOURNAL_SUFFIX} files",
                    "give a journal, a run directory, or a game day's results directory",
                )
            journals += [read_journal(p, environ, secrets) for p in found]
        else:
            raise InvalidInput(str(path), "no such file or directory")
    unique = {run.directory: run for run in runs}
    ordered = sorted(unique.values(), key=lambda r: (r.gameday, r.slot_id))
    return Inputs(tuple(ordered), tuple(journals), frozenset(secrets))


def _run_directories(path: Path) -> list[Path]:
    if (path / SUMMARY).is_file():
        return [path]
    found = sorted(p.parent for p in path.glob(f"*/{SUMMARY}"))
    found += sorted(p.parent for p in path.glob(f"*/*/{SUMMARY}"))
    if len(found) > MAX_RUNS:
        raise InvalidInput(
            str(path), f"holds more than {MAX_RUNS} game-day runs", "give one game day's directory"
        )
    return found


def read_journal(
    path: Path,
    environ: Mapping[str, str],
    secrets: set[Secret],
    verdict: tuple[str, list[str]] | None = None,
) -> ExperimentView:
    """One journal, its secrets (as ``environ`` resolves them) hidden and added to
    ``secrets``."""
    document = _load(path)
    if not rules.is_journal(document):
        raise InvalidInput(
            str(path),
            "is not a Chaos Toolkit journal (it needs experiment, status and run)",
            "give the journal.json that chaos run or chaosmesh gate wrote",
        )
    experiment = document.get("experiment")
    block = experiment.get("secrets") if isinstance(experiment, dict) else None
    found = secret_values(block, environ)
    secrets |= found
    try:
        return experiment_view(Redactor(found).deep(document), str(path), verdict)
    except rules.MalformedJournal as error:
        raise InvalidInput(
            str(path), f"is not a journal chaosmesh can read: {error}", "give it unedited"
        ) from None


def read_run(directory: Path, environ: Mapping[str, str], secrets: set[Secret]) -> GameDayRun:
    """One game-day run: its summary and the journals beside it."""
    summary = _load(directory / SUMMARY)
    name = summary.get("gameday")
    if not isinstance(name, str) or not isinstance(summary.get("slot_id"), str):
        raise InvalidInput(
            str(directory / SUMMARY),
            "is not a game-day summary (it needs gameday and slot_id)",
            "give the directory chaosmesh gameday run wrote",
        )
    journals = sorted(directory.glob(f"[0-9][0-9]-*{JOURNAL_SUFFIX}"))
    results = [r for r in _list(summary.get("experiments")) if isinstance(r, Mapping)]
    experiments = []
    for path in journals:
        # NN- is the experiment's place in the game day, as in the summary's results: the
        # gate's verdict for it.
        result = _at(results, int(path.name[:2]) - 1)
        verdict = None
        if isinstance(result.get("outcome"), str):
            verdict = (result["outcome"], [str(r) for r in _list(result.get("reasons"))])
        view = read_journal(path, environ, secrets, verdict)
        if view.prometheus_url is None and isinstance(summary.get("prometheus_url"), str):
            # The game day's Prometheus, for experiments that name none of their own.
            view = replace(view, prometheus_url=summary["prometheus_url"])
        experiments.append(view)
    with_journal = {int(path.name[:2]) - 1 for path in journals}
    hide = Redactor(secrets)
    # Those the summary names without a journal: never run (stopped before), or refused.
    unrun = tuple(
        (
            hide.text(str(r.get("title") or r.get("input") or f"experiment {index + 1}")),
            str(r.get("outcome", "not-run")),
            tuple(hide.text(str(reason)) for reason in _list(r.get("reasons"))),
        )
        for index, r in enumerate(results)
        if index not in with_journal
    )
    return GameDayRun(
        gameday=name,
        directory=str(directory),
        slot_id=summary["slot_id"],
        slot=parse_time(summary.get("slot")),
        started=parse_time(summary.get("started")),
        ended=parse_time(summary.get("ended")),
        outcome=str(summary.get("outcome", "unknown")),
        reasons=tuple(hide.text(str(r)) for r in _list(summary.get("reasons"))),
        experiments=tuple(experiments),
        unrun=unrun,
        slots=tuple(_slots(summary.get("slots"))),
        preflight=tuple(
            (str(p.get("name")), p.get("ok") is True, str(p.get("detail", "")))
            for p in _list(summary.get("preflight"))
            if isinstance(p, Mapping)
        ),
        abort=_event(summary.get("abort"), ("condition", "value", "at")),
        pause=_event(summary.get("pause"), ("by", "reason", "at")),
        notifications=tuple(
            f"{n.get('event')} → {n.get('target')}: "
            + ("ok" if n.get("ok") else f"failed ({n.get('error') or n.get('status')})")
            for n in _list(summary.get("notifications"))
            if isinstance(n, Mapping)
        ),
    )


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _at(results: list[Mapping[str, Any]], index: int) -> Mapping[str, Any]:
    return results[index] if 0 <= index < len(results) else {}


def _slots(records: object) -> list[SlotRecord]:
    if not isinstance(records, list):
        return []
    return [
        SlotRecord(
            str(r.get("slot") or ""),
            str(r.get("slot_id") or _slot_id(r.get("slot"))),
            str(r.get("outcome")),
            str(r.get("runner", "")),
            str(r.get("reason") or ""),
        )
        for r in records
        if isinstance(r, Mapping)
    ]


def _slot_id(slot: object) -> str:
    """A slot's time as the runner names its run directory (20261208T093000Z)."""
    moment = parse_time(slot)
    return "" if moment is None else moment.strftime("%Y%m%dT%H%M%SZ")


def _event(value: object, keys: tuple[str, ...]) -> str | None:
    if not isinstance(value, Mapping):
        return None
    return ", ".join(f"{k} {value.get(k)}" for k in keys if value.get(k) is not None)


def _load(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInput(str(path), f"cannot be read: {error.strerror}") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(str(path), f"is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise InvalidInput(str(path), "is not a JSON object")
    return document
