"""``chaosmesh gameday run``: one game day, now, honest like ``gate`` and safe to start twice.

In order, each refusal recorded in the cluster's slot history and said, never silent:

1. every experiment is checked as ``gate`` checks it, and every PromQL check has a Prometheus:
   invalid input writes nothing anywhere (exit 2);
2. the slot: with a schedule, the latest fire time at or before now, if no later than its
   starting deadline (else the run is "adhoc", outside any slot); started for a slot, the run
   first waits the slot's jitter (``--no-jitter`` skips it);
3. a blackout now refuses ("skipped");
4. the game day's Lease (``lease``): held by another runner, this one records
   "already-running" and does nothing else;
5. holding it: the slot already in the history ("already-run": a CronJob can start twice);
   scheduled slots since the last recorded one that nobody recorded ("missed"); the pause switch
   ("skipped"); the preflight checks ("skipped");
6. the experiments, in order, each a ``chaos run`` with ``gate``'s safe defaults (the control
   forced on, ``--rollback-strategy always``, journals 0600, secrets hidden), the pauses between.
   The pause switch (read every ``POLL_S``) and the abort conditions (``conditions``) stop the
   run: the running experiment gets SIGTERM (its control rolls it back) and no other starts.
   After each experiment its ledger is read: anything of its run still in place is removed
   (``chaosmesh rollback --run``'s own code), or the game day is rollback-incomplete.

Outcomes and exit status (as ``gate``'s where they meet)::

    pass                 0  every experiment passed
    skipped              0  blackout, paused before the start, preflight refused, already
                            running, already run: "skipped: <reason>" (a CronJob's Job
                            that did nothing on purpose succeeded)
    fail                 1  some experiment did not pass
    paused / aborted     1  the pause switch / an abort condition (or a lost Lease) stopped it
    invalid              2  (never written: nothing runs, nothing is recorded)
    rollback-incomplete  3  something may still be in place

The run directory (``chaosmesh report`` reads it)::

    RESULTS/<game day>/<slot id>/gameday.json, junit.xml, NN-<stem>.journal.json and .log

A second runner for a slot (already running or already run) writes no run directory: the
directory is the first runner's.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from chaosmesh_py.engine import cleanup, ledger
from chaosmesh_py.engine.guardrail import Breach
from chaosmesh_py.engine.private_file import check_creatable, make_directory, write_private
from chaosmesh_py.engine.redaction import Redactor, secret_values
from chaosmesh_py.engine.run import RUN_ID_ENV, new_run_id
from chaosmesh_py.errors import ChaosMeshError, InvalidInput
from chaosmesh_py.gameday import conditions, slots
from chaosmesh_py.gameday import schedule as timing
from chaosmesh_py.gameday.lease import DEFAULT_DURATION_S, Lease
from chaosmesh_py.gameday.state import RUNNING, GameDayState, Pause, SlotRecord, State
from chaosmesh_py.gameday.suite import GameDay, MissingVariable, NotificationEvent, resolve
from chaosmesh_py.kube import CONFIG_MAP, LEASE, Kube
from chaosmesh_py.observe import prometheus
from chaosmesh_py.verdict import gate

SUMMARY_VERSION = 1
POLL_S = 1.0
EXIT_CODES = {
    "pass": 0,
    "skipped": 0,
    "fail": 1,
    "paused": 1,
    "aborted": 1,
    "invalid": 2,
    "rollback-incomplete": 3,
}
# What the runner itself needs in the game day's namespace, beyond what the experiments'
# activities need: (API group, resource, verbs), as an RBAC Role's rules name them.
RUNNER_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (LEASE.group, LEASE.plural, ("get", "create", "patch")),
    (CONFIG_MAP.group, CONFIG_MAP.plural, ("get", "create", "patch")),
)
_END_EVENTS: dict[str, NotificationEvent] = {
    "pass": "gameday-completed",
    "aborted": "gameday-aborted",
    "paused": "gameday-aborted",
}
# Slot records that are not a start of the slot: a later runner may still run it.
_NOT_A_START = ("already-running", "already-run", "missed")


class Announcer(Protocol):
    """What the runner tells (``chaosmesh_py.gameday.announce.Announcer``)."""

    def event(self, name: NotificationEvent, summary: Mapping[str, Any]) -> None: ...
    def region_started(self, at: datetime, text: str) -> None: ...
    def region_ended(self, at: datetime, text: str) -> None: ...
    def close(self) -> list[dict[str, Any]]: ...


def default_announcer(gameday: GameDay, hide: Redactor) -> Announcer:
    from chaosmesh_py.gameday.announce import Announcer as Notifications

    return Notifications(gameday, hide)


@dataclass(frozen=True)
class Options:
    results_dir: Path = Path("chaosmesh-results")
    jitter: bool = True
    # Run by hand through a blackout (a throwaway mesh is not the environment it protects);
    # the summary says which blackout was overridden.
    ignore_blackouts: bool = False
    waivers: gate.Waivers = field(default_factory=gate.Waivers)
    runner_id: str | None = None
    lease_duration_s: int = DEFAULT_DURATION_S
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    announcer: Callable[[GameDay, Redactor], Announcer] = default_announcer


def _recorded_prometheus(gameday: GameDay) -> str | None:
    if not gameday.prometheus_url:
        return None
    try:
        url = resolve(gameday.prometheus_url, os.environ)
    except MissingVariable:
        return None
    return prometheus.without_userinfo(url)


def runner_identity(environ: Mapping[str, str] = os.environ) -> str:
    """``CHAOSMESH_RUNNER_ID``; in a pod, its name (HOSTNAME); else host:pid."""
    if environ.get("CHAOSMESH_RUNNER_ID"):
        return environ["CHAOSMESH_RUNNER_ID"]
    if environ.get("KUBERNETES_SERVICE_HOST") and environ.get("HOSTNAME"):
        return environ["HOSTNAME"]
    return f"{socket.gethostname()}:{os.getpid()}"


def person() -> str:
    """Who pauses a game day, for the record: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no name
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def check(gameday: GameDay) -> list[gate.Input]:
    """Every experiment as ``gate`` checks it, every PromQL check's Prometheus: InvalidInput
    naming the first that is wrong, before anything is read or written."""
    checked = []
    for index, step in enumerate(gameday.experiments):
        try:
            entry = gate.read_input(step.path)
        except gate.InputInvalid as error:
            raise InvalidInput(f"experiments[{index}] ({step.path})", str(error)) from None
        if entry.kind != "experiment":
            raise InvalidInput(
                f"experiments[{index}] ({step.path})",
                "is a journal, not an experiment",
                "a game day runs experiments; grade journals with chaosmesh gate",
            )
        checked.append(entry)
    conditions.check_urls(gameday)
    return checked


class GameDayRun:
    """One run of a game day; ``run()`` returns its summary (gameday.json's content)."""

    def __init__(self, gameday: GameDay, options: Options, kube: Kube) -> None:
        self.gameday = gameday
        self.options = options
        self.kube = kube
        self.runner = options.runner_id or runner_identity()
        self.state = GameDayState(kube, gameday.namespace, gameday.name)
        self.started = options.now()
        self.slot: datetime | None = None
        self.slot_id = ""
        self.records: list[SlotRecord] = []
        self.summary: dict[str, Any] = {}
        self.results: list[gate.Result] = []
        self._stop = threading.Event()
        self._stopped: tuple[str, dict[str, Any], str] | None = None  # outcome, record, reason
        # Reentrant: the SIGTERM handler runs on the main thread, which may hold it.
        self._lock = threading.RLock()
        self._running: gate.Running | None = None

    # -- the whole run ----------------------------------------------------------------------

    def run(self, entries: Sequence[gate.Input]) -> dict[str, Any]:
        hide = Redactor(
            set().union(*(secret_values(e.document.get("secrets"), os.environ) for e in entries))
        )
        self.slot = slots.current_slot(self.gameday, self.started)
        self.slot_id = slots.slot_id(self.slot, self.started)
        self.summary = self._blank_summary()
        announcer = self.options.announcer(self.gameday, hide)
        try:
            with self._signals_stop():
                self._wait_jitter()
                outcome, reasons, write_directory = self._run_guarded(entries, announcer)
        finally:
            self.summary["notifications"] = announcer.close()
        self.summary.update(
            outcome=outcome,
            reasons=reasons,
            ended=slots.iso(self.options.now()),
            slots=[r.to_json() for r in self.records],
        )
        if write_directory:
            self._write_directory()
        return self.summary

    def _blank_summary(self) -> dict[str, Any]:
        return {
            "version": SUMMARY_VERSION,
            "gameday": self.gameday.name,
            "file": str(self.gameday.source),
            "namespace": self.gameday.namespace,
            "slot": None if self.slot is None else self.slot.isoformat(),
            "slot_id": self.slot_id,
            "runner": self.runner,
            # The report's Prometheus for this run's plots (credentials left out).
            "prometheus_url": _recorded_prometheus(self.gameday),
            "started": slots.iso(self.started),
            "ended": None,
            "outcome": None,
            "reasons": [],
            "experiments": [],
            "preflight": [],
            "abort": None,
            "pause": None,
            "slots": [],
            "notifications": [],
        }

    def _wait_jitter(self) -> None:
        schedule = self.gameday.schedule
        if self.slot is None or schedule is None or not schedule.jitter_s:
            return
        if not self.options.jitter:
            _say(f"gameday: jitter skipped (--no-jitter) for slot {self.slot.isoformat()}")
            return
        jitter = timing.jitter_for(self.gameday.name, self.slot, schedule.jitter_s)
        wait_s = (self.slot + timedelta(seconds=jitter) - self.options.now()).total_seconds()
        if wait_s > 0:
            _say(f"gameday: waiting {wait_s:.0f} s (the slot's jitter, {jitter:.0f} s)")
            self._stop.wait(wait_s)
        self.started = self.options.now()
        self.summary["started"] = slots.iso(self.started)

    def _run_guarded(
        self, entries: Sequence[gate.Input], announcer: Announcer
    ) -> tuple[str, list[str], bool]:
        """(outcome, reasons, whether this run owns the slot's run directory)."""
        if self._stopped is not None:  # SIGTERM while waiting for the jitter
            return "aborted", [self._stopped[2]], False
        timezone = self.gameday.schedule.timezone if self.gameday.schedule else "UTC"
        blackout = timing.blackout_at(self.gameday.blackouts, timezone, self.options.now())
        if blackout is not None and self.options.ignore_blackouts:
            _say(f"gameday: in a blackout ({blackout.reason}): run anyway, --ignore-blackouts")
            self.summary["blackout_overridden"] = blackout.reason
        elif blackout is not None:
            return self._skip(
                "skipped", f"in a blackout: {blackout.reason}", announcer, owns_directory=True
            )
        lease = Lease(
            self.kube,
            self.gameday.namespace,
            self.gameday.name,
            self.runner,
            self.options.lease_duration_s,
        )
        holder = lease.acquire()  # the real clock: a Lease's times are other runners' too
        if holder is not None:
            reason = f"already running: the game day's Lease is held by {holder}"
            return self._skip("already-running", reason, announcer, owns_directory=False)
        lease.keep_renewed()
        try:
            return self._run_holding(entries, announcer, lease)
        finally:
            lease.release()

    def _run_holding(
        self, entries: Sequence[gate.Input], announcer: Announcer, lease: Lease
    ) -> tuple[str, list[str], bool]:
        state = self.state.read()
        done = [r for r in state.for_slot(self.slot_id) if r.outcome not in _NOT_A_START]
        if done:
            first = done[0]
            reason = (
                f"already run: slot {self.slot_id} was recorded {first.outcome!r} by "
                f"{first.runner} at {first.recorded}"
            )
            return self._skip("already-run", reason, announcer, owns_directory=False)
        self.records += slots.interrupted(state) + slots.missed(
            self.gameday, state, self.options.now(), self.slot_id, self.runner
        )
        if state.pause is not None:
            pause = state.pause
            self.summary["pause"] = pause.to_json()
            reason = f"paused by {pause.by} at {pause.at}: {pause.reason or 'no reason given'}"
            return self._skip("skipped", reason, announcer, owns_directory=True)
        preflight = conditions.run_preflight(self.gameday)
        self.summary["preflight"] = [p.to_json() for p in preflight]
        refused = [p for p in preflight if not p.ok]
        if refused:
            reason = "preflight refused: " + "; ".join(f"{p.name}: {p.detail}" for p in refused)
            return self._skip("skipped", reason, announcer, owns_directory=True)
        self._record(RUNNING, "")
        announcer.event("gameday-started", self._event())
        outcome, reasons = self._run_experiments(entries, announcer, lease)
        self._record(outcome, "; ".join(reasons))
        event = _END_EVENTS.get(outcome, "gameday-failed")
        announcer.event(
            event,
            {
                **self._event(),
                "outcome": outcome,
                "reasons": reasons,
                "experiments": self.summary["experiments"],
            },
        )
        return outcome, reasons, True

    # -- refusals and the history ------------------------------------------------------------

    def _skip(
        self, outcome: str, reason: str, announcer: Announcer, *, owns_directory: bool
    ) -> tuple[str, list[str], bool]:
        """Record the refusal in the history, say it; a second runner for the slot
        (``owns_directory`` false) leaves the slot's run directory to the first."""
        self._record(outcome, reason)
        announcer.event(
            "gameday-skipped", {**self._event(), "outcome": "skipped", "reasons": [reason]}
        )
        return "skipped", [reason], owns_directory

    def _record(self, outcome: str, reason: str) -> None:
        record = SlotRecord(
            None if self.slot is None else self.slot.isoformat(),
            self.slot_id,
            outcome,
            self.runner,
            slots.iso(self.options.now()),
            reason,
        )
        mine = (self.slot_id, self.runner)
        self.records = [r for r in self.records if (r.slot_id, r.runner) != mine] + [record]
        # All of this run's records each time: a record replaces its own earlier self (same
        # slot and runner), so the missed and interrupted ones found first are written once.
        self.state.record(*self.records)

    # -- the experiments ---------------------------------------------------------------------

    def _run_experiments(
        self, entries: Sequence[gate.Input], announcer: Announcer, lease: Lease
    ) -> tuple[str, list[str]]:
        directory = self.run_directory
        make_directory(directory, "--results")
        watch = conditions.abort_watch(self.gameday, self._on_breach)
        # Once now (a pause during the preflight checks must not let an experiment start),
        # then every POLL_S.
        self._look(lease)
        watcher = threading.Thread(
            target=self._watch_pause_and_lease, args=(lease,), name="chaosmesh-pause", daemon=True
        )
        watcher.start()
        if watch is not None:
            watch.start()
        results: list[gate.Result] = []
        region = False
        try:
            with gate.control_file() as forced_control:
                for index, (step, entry) in enumerate(
                    zip(self.gameday.experiments, entries, strict=True), 1
                ):
                    if self._stop.is_set():
                        results.append(self._not_run(entry))
                        continue
                    if not region:
                        announcer.region_started(
                            self.options.now(), f"game day {self.gameday.name} ({self.slot_id})"
                        )
                        region = True
                    control = None if gate.declares_control(entry.document) else forced_control
                    results.append(self._run_one(index, entry, directory, control, announcer))
                    last = index == len(entries)
                    if step.pause_after_s and not last:
                        self._stop.wait(step.pause_after_s)
        finally:
            self._stop.set()
            if watch is not None:
                watch.stop()
            watcher.join(timeout=POLL_S + 30)
            if region:
                announcer.region_ended(self.options.now(), f"game day {self.gameday.name}: ended")
        self.results = results
        return self._outcome(results)

    @property
    def running_experiment(self) -> gate.Running | None:
        """The experiment's ``chaos run`` in progress, if any."""
        with self._lock:
            return self._running

    @property
    def run_directory(self) -> Path:
        return self.options.results_dir / self.gameday.name / self.slot_id

    def _run_one(
        self,
        index: int,
        entry: gate.Input,
        directory: Path,
        control: Path | None,
        announcer: Announcer,
    ) -> gate.Result:
        name = f"{index:02d}-{entry.path.stem}"
        journal, log = gate.outputs(directory, name)
        run_id = new_run_id()
        started = self.options.now()
        about = {
            **self._event(),
            "experiment": entry.document.get("title") or str(entry.path),
            "index": index,
            "count": len(self.gameday.experiments),
        }
        announcer.event("experiment-started", about)
        with self._lock:
            running = gate.start_run(
                entry, journal, log, control, {**os.environ, RUN_ID_ENV: run_id}
            )
            self._running = running
            if self._stop.is_set():  # stopped between the check and the start
                running.terminate()
        try:
            running.wait()
        except KeyboardInterrupt:
            running.wait()  # the run got the same Ctrl-C and is rolling back
            raise
        finally:
            with self._lock:
                self._running = None
        result = self._after_ledger(running.result(self.options.waivers), entry, run_id)
        ended = self.options.now()
        row = {**result.to_json(), "started": slots.iso(started), "ended": slots.iso(ended)}
        self.summary["experiments"].append(row)
        announcer.event("experiment-completed", {**about, "outcome": result.outcome})
        return result

    def _after_ledger(self, result: gate.Result, entry: gate.Input, run_id: str) -> gate.Result:
        """Read the run's ledger: remove what it still holds, and say so in the result."""
        configured = (entry.document.get("configuration") or {}).get(ledger.LEDGER_DIR_KEY)
        directory = ledger.directory_for(
            {ledger.LEDGER_DIR_KEY: configured} if isinstance(configured, str) else None
        )
        result = replace(result, run_id=result.run_id or run_id)
        if not (directory / f"{run_id}.jsonl").exists():
            return result  # it wrote nothing
        if ledger.is_closed(ledger.Ledger(directory, run_id).entries()):
            return result  # its control removed everything
        report = cleanup.roll_back_run(self.kube, directory, run_id)
        # The clean-up's own report, on one line: what was still in place, and where.
        said = " / ".join(
            " ".join(line.split())
            for line in cleanup.format_report(f"ledger: run {run_id}", report).splitlines()
        )
        if report.complete:
            return replace(result, reasons=(*result.reasons, f"{said} (by the runner)"))
        return replace(
            result,
            outcome="rollback-incomplete",
            reasons=(*result.reasons, f"{said}; finish with: chaosmesh rollback --run {run_id}"),
        )

    def _not_run(self, entry: gate.Input) -> gate.Result:
        why = self._stopped[2] if self._stopped else "stopped"
        result = gate.Result(str(entry.path), "experiment", "not-run", (f"not run: {why}",))
        self.summary["experiments"].append({**result.to_json(), "started": None, "ended": None})
        return result

    def _outcome(self, results: Sequence[gate.Result]) -> tuple[str, list[str]]:
        outcomes = {r.outcome for r in results}
        summary = gate.summarize(results)
        reasons = [
            f"{r.input}: {reason}" for r in results if r.outcome != "pass" for reason in r.reasons
        ]
        if "rollback-incomplete" in outcomes:
            return "rollback-incomplete", [f"rollback incomplete ({summary})", *reasons]
        if self._stopped is not None:
            outcome, _, why = self._stopped
            return outcome, [why, f"({summary})"]
        if outcomes - {"pass"}:
            return "fail", [f"some experiment did not pass ({summary})", *reasons]
        return "pass", []

    # -- stopping ----------------------------------------------------------------------------

    def _stop_with(self, outcome: str, record: dict[str, Any], reason: str) -> None:
        with self._lock:
            if self._stopped is not None or self._stop.is_set():
                return
            self._stopped = (outcome, record, reason)
            self.summary["abort" if outcome == "aborted" else "pause"] = record
            self._stop.set()
            running = self._running
            if running is not None:
                _say(f"gameday: {reason}: stopping {running.entry.path} (it rolls back)")
                running.terminate()

    @contextmanager
    def _signals_stop(self) -> Iterator[None]:
        """SIGTERM (a CronJob's activeDeadlineSeconds, a deleted pod: Kubernetes signals the
        runner, not its ``chaos run``) and Ctrl-C stop the game day as an abort does: the
        running experiment rolls back and the outcome is recorded before the runner exits."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        why = {
            signal.SIGTERM: "the runner got SIGTERM (a CronJob's deadline, a deleted pod)",
            signal.SIGINT: "the runner got SIGINT (Ctrl-C)",
        }

        def stop(signum: int, _: FrameType | None) -> None:
            name = signal.Signals(signum).name
            self._stop_with(
                "aborted",
                {"condition": name, "value": None, "at": slots.iso(self.options.now())},
                f"aborted: {why[signal.Signals(signum)]}",
            )

        previous = {signum: signal.signal(signum, stop) for signum in why}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_breach(self, breach: Breach) -> None:
        self._stop_with(
            "aborted",
            {"condition": breach.probe, "value": breach.value, "at": breach.at},
            f"aborted: abort condition {breach.probe!r} breached: {breach.reason}",
        )

    def _watch_pause_and_lease(self, lease: Lease) -> None:
        while not self._stop.wait(POLL_S) and self._look(lease):
            pass

    def _look(self, lease: Lease) -> bool:
        """Stop for a lost Lease or the pause switch; whether to keep watching."""
        if lease.lost.is_set():
            self._stop_with(
                "aborted",
                {"condition": "lease", "value": None, "at": slots.iso(self.options.now())},
                "aborted: the game day's Lease was lost "
                "(another runner holds it, or it went unrenewed)",
            )
            return False
        try:
            pause = self.state.read().pause
        except ChaosMeshError as error:  # the API down for a moment: the Lease decides
            _say(f"gameday: cannot read the pause switch: {error}")
            return True
        if pause is not None:
            self._stop_with(
                "paused",
                pause.to_json(),
                f"paused by {pause.by} at {pause.at}: {pause.reason or 'no reason given'}",
            )
            return False
        return True

    # -- output ------------------------------------------------------------------------------

    def _event(self) -> dict[str, Any]:
        return {
            "gameday": self.gameday.name,
            "namespace": self.gameday.namespace,
            "slot": self.summary.get("slot"),
            "slot_id": self.slot_id,
            "runner": self.runner,
        }

    def _write_directory(self) -> None:
        directory = self.run_directory
        make_directory(directory, "--results")
        if self.results:
            gate.write_junit(self.results, directory / "junit.xml")
        write_summary(self.summary, directory / "gameday.json", "--results")


def write_summary(summary: Mapping[str, Any], path: Path, field: str) -> None:
    make_directory(path.parent, field)
    write_private(path, (json.dumps(summary, indent=2) + "\n").encode("utf-8"), field)


def run_gameday(
    gameday: GameDay, options: Options, connect: Callable[[], Kube] = Kube.connect
) -> GameDayRun:
    """Check everything (nothing read or written before), connect, run; the finished run
    (``summary``, ``results``)."""
    entries = check(gameday)
    # Where the run directory will go, checked before anything runs (its slot id is not known
    # yet: any file of it stands for it).
    check_creatable(options.results_dir / gameday.name / "gameday.json", "--results")
    game = GameDayRun(gameday, options, connect())
    game.run(entries)
    return game


def verdict_line(summary: Mapping[str, Any]) -> str:
    """The last line a run prints: what happened, in a word and its reasons."""
    outcome = summary["outcome"]
    reasons = "; ".join(summary["reasons"])
    if outcome == "skipped":
        return f"skipped: {reasons}"
    where = f"gameday {summary['gameday']} ({summary['slot_id']})"
    return f"{where}: {outcome.upper()}" + (f": {reasons}" if reasons else "")


def set_pause(kube: Kube, namespace: str, name: str, reason: str | None) -> State:
    pause = None if reason is None else Pause(person(), reason, slots.iso(datetime.now(UTC)))
    return GameDayState(kube, namespace, name).set_pause(pause)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
