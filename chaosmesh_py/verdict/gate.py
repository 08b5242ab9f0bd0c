"""``chaosmesh gate``: run experiments or read journals, grade each, and report for CI.

    chaosmesh gate PATH... [--junit FILE] [--json FILE] [--journal-dir DIR]
                           [--allow-unverified] [--allow-no-fault]

Each PATH is told apart by its content, not its name: a journal (it has ``experiment``,
``status`` and ``run``) is graded as it is; an experiment (it has a ``method``) is run, then its
journal is graded. ``chaosmesh_py.verdict.rules`` holds the grading rules.

Every input is read and checked before anything runs. Invalid input: a missing file, neither
JSON nor YAML, neither experiment nor journal, an experiment Chaos Toolkit's validation or
chaosmesh's argument checks refuse (what ``chaosmesh validate`` checks), a malformed journal.
When any input is invalid no experiment runs at all (a gate with a broken input must not inject
half of its faults); journals given alongside are still graded.

An experiment runs with safe defaults, in the current directory (as ``chaos run`` would)::

    python -m chaostoolkit --no-version-check --log-file DIR/NAME.log run \\
        --journal-path DIR/NAME.journal.json --rollback-strategy always \\
        [--control-file CONTROL.json] EXPERIMENT

- ``--rollback-strategy always``: the declared rollbacks are played whatever the status, even
  when a safeguard interrupts the run (Chaos Toolkit's default skips them then);
- the chaosmesh control is forced on. An experiment that does not declare
  ``chaosmesh_py.control`` among its top-level controls gets it from ``--control-file``, which
  Chaos Toolkit loads as a global control: the same hooks run and write the same journal entry,
  and the experiment file runs exactly as written (no rewritten copy whose relative paths or
  format could differ). One that declares it is not given it twice (two controls would each
  write the journal entry, the second overwriting the first);
- a run that leaves no journal (killed, crashed) is graded rollback-incomplete: nobody can say
  what it left in place.

Exit status, the first that applies (the most urgent first):

    3  rollback incomplete: some run may have left faults or changes in place
    1  fail: some run did not pass
    2  invalid input: some input could not be graded, and no experiment ran
    0  every input passed

carried by the exception ``raise_for`` raises::

    GateError
    ├── RollbackIncomplete   exit 3
    ├── RunFailed            exit 1
    └── InputInvalid         exit 2 (also raised for one input, and reported in its row)

Reports hold verdict fields only (input, outcome, reasons, title, duration, run id, journal
path, and what each fault hit: ``faults``, from ``chaosmesh.faults`` in the journal; in JUnit,
one ``hits:<activity>`` property per fault and a line in ``system-out``), secrets replaced by
``***``; the control does the same to the journals it ends, and to
Chaos Toolkit's log. What a run prints is relayed with the experiment's secrets hidden, and its
log is scrubbed once it ends (Chaos Toolkit logs the title before any control runs). Journals,
logs and reports are 0600, in directories created 0700 (``chaosmesh_py.engine.private_file``);
a symbolic link in their place is refused before anything runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TextIO

import yaml

from chaosmesh_py.engine.private_file import (
    check_creatable,
    make_directory,
    open_private,
    write_private,
)
from chaosmesh_py.engine.redaction import Redactor, secret_values
from chaosmesh_py.verdict import rules

Outcome = Literal["pass", "fail", "rollback-incomplete", "invalid", "not-run"]
Kind = Literal["experiment", "journal"]

CONTROL_MODULE = "chaosmesh_py.control"
DEFAULT_JOURNAL_DIR = Path("chaosmesh-journals")


class GateError(Exception):
    """The gate did not pass; ``exit_code`` is the exit status it means."""

    exit_code = 1


class RollbackIncomplete(GateError):
    exit_code = 3


class RunFailed(GateError):
    exit_code = 1


class InputInvalid(GateError):
    exit_code = 2


@dataclass(frozen=True)
class Result:
    """One input's row in every report."""

    input: str
    kind: Kind | None
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    title: str = ""
    duration_s: float | None = None
    run_id: str | None = None
    journal: str | None = None
    faults: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kind": self.kind,
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "title": self.title,
            "duration_s": self.duration_s,
            "run_id": self.run_id,
            "journal": self.journal,
            "faults": [dict(f) for f in self.faults],
        }


@dataclass(frozen=True)
class Input:
    """An input that can be graded: a journal, or an experiment Chaos Toolkit accepts."""

    path: Path
    kind: Kind
    document: dict[str, Any]


@dataclass(frozen=True)
class Waivers:
    """The rules the gate is told to let pass (``chaosmesh_py.verdict.rules``)."""

    allow_unverified: bool = False
    allow_no_fault: bool = False


def gate(
    paths: Sequence[Path], journal_dir: Path = DEFAULT_JOURNAL_DIR, waivers: Waivers = Waivers()
) -> list[Result]:
    """Check and grade every input first; then, when none is invalid, run the experiments."""
    checked: list[Input | Result] = []
    for path in paths:
        try:
            item = read_input(path)
        except InputInvalid as error:
            checked.append(Result(str(path), None, "invalid", (str(error),)))
            continue
        if item.kind == "journal":
            # Grading is pure: a journal's row is known before anything runs.
            checked.append(_graded(path, item.document, "journal", waivers))
        else:
            checked.append(item)
    any_invalid = any(isinstance(c, Result) and c.outcome == "invalid" for c in checked)
    names = _journal_names([c for c in checked if isinstance(c, Input)])
    if names and not any_invalid:
        # Where the runs will write, checked before the first one starts.
        make_directory(journal_dir, "--journal-dir")
        for name in names.values():
            for output in outputs(journal_dir, name):
                check_creatable(output, "--journal-dir")
    results: list[Result] = []
    with control_file() as forced_control:
        for entry in checked:
            if isinstance(entry, Result):
                results.append(entry)
            elif any_invalid:
                results.append(
                    Result(
                        str(entry.path),
                        "experiment",
                        "not-run",
                        ("not run: another input is invalid",),
                    )
                )
            else:
                run_control = None if declares_control(entry.document) else forced_control
                results.append(_run(entry, journal_dir, names[id(entry)], run_control, waivers))
    return results


def _journal_names(experiments: Sequence[Input]) -> dict[int, str]:
    """The file's stem names its journal; numbered when two inputs share one."""
    stems: Counter[str] = Counter()
    names = {}
    for entry in experiments:
        stems[entry.path.stem] += 1
        count = stems[entry.path.stem]
        names[id(entry)] = entry.path.stem + (f"-{count}" if count > 1 else "")
    return names


def outputs(journal_dir: Path, name: str) -> tuple[Path, Path]:
    """The journal and the log of the run named ``name``."""
    return journal_dir / f"{name}.journal.json", journal_dir / f"{name}.log"


def read_input(path: Path) -> Input:
    """Read one input and tell what it is; an experiment is validated as ``chaos run`` would."""
    try:
        if not path.is_file():
            raise InputInvalid("no such file" if not path.exists() else "not a file")
    except OSError as error:  # a name too long, a loop of links
        raise InputInvalid(f"cannot be read: {error.strerror}") from None
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        document = _parse(text)
    except RecursionError:
        raise InputInvalid(
            "nested too deeply to be an experiment or a journal; `chaosmesh validate` says where"
        ) from None
    if rules.is_journal(document):
        return Input(path, "journal", document)
    if isinstance(document, dict) and "method" in document:
        return Input(path, "experiment", validate_experiment(path))
    raise InputInvalid(
        "neither a Chaos Toolkit experiment (no method) nor a journal "
        "(no experiment, status and run)"
    )


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InputInvalid(f"neither JSON nor YAML: {_first_line(error)}") from None


def validate_experiment(path: Path) -> dict[str, Any]:
    """What ``chaosmesh validate`` checks (``chaos validate``'s rules and every chaosmesh
    argument's value); the experiment as loaded."""
    from chaosmesh_py import experiment

    problems = experiment.validation_problems(path)
    if problems:
        raise InputInvalid("; ".join(problems))
    return experiment.load(path)


def declares_control(experiment: Mapping[str, Any]) -> bool:
    return any(
        isinstance(control, dict)
        and (control.get("provider") or {}).get("module") == CONTROL_MODULE
        for control in experiment.get("controls") or []
    )


def chaos_command(
    experiment: Path, journal: Path, log: Path, control_file: Path | None
) -> list[str]:
    """The ``chaos run`` command line for one experiment: the safe defaults, documented above."""
    return [
        # The interpreter running the gate: its chaostoolkit sees the same chaosmesh_py.
        sys.executable,
        "-m",
        "chaostoolkit",
        "--no-version-check",
        "--log-file",
        str(log),
        "run",
        "--journal-path",
        str(journal),
        "--rollback-strategy",
        "always",
        *(["--control-file", str(control_file)] if control_file else []),
        str(experiment),
    ]


def _run(
    entry: Input, journal_dir: Path, name: str, control_file: Path | None, waivers: Waivers
) -> Result:
    journal, log = outputs(journal_dir, name)
    running = start_run(entry, journal, log, control_file)
    try:
        running.wait()
    except KeyboardInterrupt:
        # The run got the same Ctrl-C and is rolling back: let it finish, never kill it.
        running.wait()
        raise
    return running.result(waivers)


class Running:
    """One experiment's ``chaos run``, started by ``start_run``: ``terminate`` stops it (SIGTERM:
    the control rolls back and the run ends "interrupted"), ``result`` grades it once it ended.
    """

    def __init__(
        self,
        entry: Input,
        journal: Path,
        log: Path,
        process: subprocess.Popen[bytes],
        hide: Redactor,
    ) -> None:
        self.entry = entry
        self.journal = journal
        self.log = log
        self.process = process
        self._hide = hide
        self._relays = [
            threading.Thread(target=_relay, args=(stream, target, hide), daemon=True)
            for stream, target in ((process.stdout, sys.stdout), (process.stderr, sys.stderr))
        ]
        for relay in self._relays:
            relay.start()

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The exit status, or None while it still runs after ``timeout_s``."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self) -> None:
        """Ask the run to stop and roll back; never a SIGKILL, which would leave its faults."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def result(self, waivers: Waivers) -> Result:
        """The run's graded row; waits for it to end."""
        returncode = self.process.wait()
        for relay in self._relays:
            relay.join(timeout=5)
        if not any(relay.is_alive() for relay in self._relays):
            # Else a process the run left behind still holds the pipes: the relays read on.
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        _hide_in_file(self.log, self._hide)
        path = self.entry.path
        try:
            document = json.loads(self.journal.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = None
        if not rules.is_journal(document):
            ended = (
                f"was killed by signal {-returncode}" if returncode < 0 else f"exited {returncode}"
            )
            return Result(
                str(path),
                "experiment",
                "rollback-incomplete",
                (
                    f"chaos run {ended} without a journal: what it left in place is unknown "
                    f"(log: {self.log})",
                ),
                journal=None,
            )
        return _graded(path, document, "experiment", waivers, self.journal)


def start_run(
    entry: Input,
    journal: Path,
    log: Path,
    control_file: Path | None,
    environ: Mapping[str, str] | None = None,
) -> Running:
    """Start ``chaos run`` of one checked experiment with the safe defaults (module docstring),
    writing ``journal`` and ``log``; ``environ`` replaces the environment it inherits."""
    path = entry.path
    hide = Redactor(secret_values(entry.document.get("secrets"), environ or os.environ))
    journal.unlink(missing_ok=True)  # a journal left by an earlier gate must not be graded
    for output in (journal, log):  # 0600 before Chaos Toolkit writes a byte into them
        os.close(open_private(output, os.O_WRONLY))
    # Chaos Toolkit's own log follows on stderr: say which experiment it belongs to.
    print(f"gate: running {path} (journal {journal}, log {log})", file=sys.stderr, flush=True)
    # umask: whatever else the run creates is its owner's only. Its output is relayed with the
    # experiment's secrets hidden: Chaos Toolkit prints the title before any control runs.
    process = subprocess.Popen(
        chaos_command(path, journal, log, control_file),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        umask=0o077,
        env=None if environ is None else dict(environ),
    )
    return Running(entry, journal, log, process, hide)


def _relay(stream: IO[bytes] | None, target: TextIO, hide: Redactor) -> None:
    """Copy a run's output line by line, secrets hidden, as it comes. Reads to the end even
    when the target is gone (a closed pipe): a run blocked on a full pipe would never end."""
    if stream is None:
        return
    writable = True
    for raw in stream:
        if not writable:
            continue
        try:
            target.write(hide.text(raw.decode("utf-8", errors="replace")))
            target.flush()
        except (OSError, ValueError):
            writable = False


def _hide_in_file(path: Path, hide: Redactor) -> None:
    """Hide secrets the run logged before its control could (the title line) in its log."""
    if not hide:
        return
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    hidden = hide.text(text)
    if hidden != text:
        write_private(path, hidden.encode("utf-8"), "--journal-dir")


def _graded(
    path: Path,
    journal: Any,
    kind: Kind,
    waivers: Waivers,
    journal_path: Path | None = None,
) -> Result:
    try:
        graded = rules.grade(
            journal,
            allow_unverified=waivers.allow_unverified,
            allow_no_fault=waivers.allow_no_fault,
            environ=os.environ,
        )
    except rules.MalformedJournal as error:
        return Result(str(path), kind, "invalid", (f"malformed journal: {error}",))
    return Result(
        input=str(path),
        kind=kind,
        outcome=graded.outcome,
        reasons=graded.reasons,
        title=graded.title,
        duration_s=graded.duration_s,
        run_id=graded.run_id,
        journal=str(journal_path or path),
        faults=graded.faults,
    )


@contextmanager
def control_file() -> Iterator[Path]:
    """A control file that forces the chaosmesh control on (``--control-file``)."""
    control = {"chaosmesh": {"provider": {"type": "python", "module": CONTROL_MODULE}}}
    with tempfile.TemporaryDirectory(prefix="chaosmesh-gate-") as directory:
        # Chaos Toolkit picks the parser by extension: it must end in .json.
        path = Path(directory) / "chaosmesh-control.json"
        path.write_text(json.dumps(control))
        yield path


def raise_for(results: Sequence[Result]) -> None:
    """Raise the GateError whose exit code the results call for; return when all passed."""
    counts = Counter(result.outcome for result in results)
    summary = summarize(results)
    if counts["rollback-incomplete"]:
        raise RollbackIncomplete(
            f"gate: ROLLBACK INCOMPLETE ({summary}): faults or changes may still be in place; "
            "find chaosmesh's by the annotation fault.chaosmesh.io/<run id>"
        )
    if counts["fail"]:
        raise RunFailed(f"gate: FAIL ({summary})")
    if counts["invalid"]:
        raise InputInvalid(f"gate: INVALID INPUT ({summary})")


def summarize(results: Sequence[Result]) -> str:
    counts: Counter[str] = Counter(result.outcome for result in results)
    order = ("pass", "fail", "rollback-incomplete", "invalid", "not-run")
    return ", ".join(f"{counts[o]} {o}" for o in order if counts[o])


def format_table(results: Sequence[Result], width: int = 100) -> str:
    """One row per input: name, outcome, duration, the reasons wrapped in the last column."""
    name_width = min(max([len("INPUT"), *(len(r.input) for r in results)]), 40)
    outcome_width = len("rollback-incomplete")
    lead = name_width + outcome_width + 6 + 3 * 2
    reasons_width = max(width - lead, 30)
    lines = [f"{'INPUT':<{name_width}}  {'OUTCOME':<{outcome_width}}  {'TIME':>6}  REASONS"]
    for result in results:
        time = "-" if result.duration_s is None else f"{result.duration_s:.1f}s"
        cell = []
        for reason in result.reasons:
            cell += textwrap.wrap(
                reason,
                reasons_width,
                initial_indent="- ",
                subsequent_indent="  ",
                break_on_hyphens=False,  # probe and resource names carry hyphens
            )
        name = result.input
        if len(name) > name_width:
            name = "…" + name[-(name_width - 1) :]  # the file name is the telling end
        first = f"{name:<{name_width}}  {result.outcome:<{outcome_width}}  {time:>6}"
        lines.append(f"{first}  {cell[0]}" if cell else first)
        lines += [" " * lead + line for line in cell[1:]]
    return "\n".join(lines)


# Characters XML 1.0 cannot carry; an activity's error message may hold some.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def junit_xml(results: Sequence[Result]) -> bytes:
    """One testsuite, one testcase per input: failure for fail and rollback-incomplete, error
    for invalid input, skipped for an experiment not run."""
    counts = Counter(result.outcome for result in results)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="chaosmesh gate",
        tests=str(len(results)),
        failures=str(counts["fail"] + counts["rollback-incomplete"]),
        errors=str(counts["invalid"]),
        skipped=str(counts["not-run"]),
        time=f"{sum(r.duration_s or 0.0 for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            name=_xml(result.input),
            classname="chaosmesh.gate",
            time=f"{result.duration_s or 0.0:.3f}",
        )
        if result.faults:  # first, where JUnit readers (pytest's, Jenkins') expect them
            properties = ET.SubElement(case, "properties")
            for fault in result.faults:
                ET.SubElement(
                    properties,
                    "property",
                    name=_xml(f"hits:{fault.get('activity')}"),
                    value=_xml(str(fault.get("hits"))),
                )
        message = _xml(f"{result.outcome}: " + "; ".join(result.reasons))
        details = _xml("\n".join(result.reasons))
        if result.outcome in ("fail", "rollback-incomplete"):
            ET.SubElement(case, "failure", message=message, type=result.outcome).text = details
        elif result.outcome == "invalid":
            ET.SubElement(case, "error", message=message, type="invalid-input").text = details
        elif result.outcome == "not-run":
            ET.SubElement(case, "skipped", message=message)
        about = [f"title: {result.title}", f"run id: {result.run_id}"]
        about.append(f"journal: {result.journal}")
        about += [_hits_line(fault) for fault in result.faults]
        ET.SubElement(case, "system-out").text = _xml("\n".join(about))
    ET.indent(suites)
    document: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return document


def _hits_line(fault: Mapping[str, Any]) -> str:
    routes = ", ".join(fault.get("routes") or [])
    return (
        f"fault {fault.get('activity')!r} ({fault.get('fault')}) on "
        f"{fault.get('virtual_service')} [{routes}]: hit {fault.get('hits')} request(s); "
        f"{fault.get('counted')}"
    )


def write_junit(results: Sequence[Result], path: Path) -> None:
    make_directory(path.parent, "--junit")
    write_private(path, junit_xml(results), "--junit")


def write_json(results: Sequence[Result], path: Path) -> None:
    make_directory(path.parent, "--json")
    report = json.dumps([r.to_json() for r in results], indent=2) + "\n"
    write_private(path, report.encode("utf-8"), "--json")


def _xml(text: str) -> str:
    return _NOT_XML.sub("?", text)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
