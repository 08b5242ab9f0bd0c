"""`chaosmesh gate` as CI runs it: real `chaos run`s against the Kubernetes API double.

One test per case Chaos Toolkit misgrades (chaostoolkit.md): each is graded fail (or
rollback-incomplete) with the reason that says why. A clean run passes, and its reports parse.
Every fault a test injects is gone when it ends (the `api` fixture checks for leftovers too).
"""

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.localmesh.apiserver import ApiFault
from chaosmesh_py.verdict import gate
from tests.conftest import NAMESPACE
from tests.e2e.test_chaos_run import CHAOS, CONTROL, delay_action, environment
from tests.integration.test_inject_rollback import exact, read, writes
from tests.unit.test_verdict import clean

pytestmark = pytest.mark.slow

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")

SYSTEM_OK = {
    "type": "probe",
    "name": "system-ok",
    "tolerance": 0,
    "provider": {"type": "process", "path": "true"},
}
NO_FAULT_ON_RATINGS = {
    "type": "probe",
    "name": "no-fault-on-ratings",
    "tolerance": False,
    "provider": {
        "type": "python",
        "module": "chaosmesh_py.faults.probes",
        "func": "fault_is_injected",
        "arguments": {"virtual_service": "ratings", "namespace": "${namespace}"},
    },
}
REMOVE_FAULTS = {
    "type": "action",
    "name": "remove-ratings-faults",
    "provider": {
        "type": "python",
        "module": "chaosmesh_py.faults.rollbacks",
        "func": "remove_faults",
        "arguments": {"virtual_service": "ratings", "namespace": "${namespace}"},
    },
}


def experiment(
    tmp_path, name, method, *, probes=(SYSTEM_OK,), rollbacks=(), controls=(CONTROL,), **extra
):
    document = {
        "title": name,
        "description": name,
        "configuration": {"namespace": NAMESPACE},
        "controls": list(controls),
        "steady-state-hypothesis": {"title": "the system is fine", "probes": list(probes)},
        "method": list(method),
        "rollbacks": list(rollbacks),
        **extra,
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def paused(action, seconds):
    return {**action, "pauses": {"after": seconds}}


def gate_command(tmp_path, *arguments):
    return [
        CHAOSMESH,
        "gate",
        "--journal-dir",
        str(tmp_path / "journals"),
        "--json",
        str(tmp_path / "report.json"),
        "--junit",
        str(tmp_path / "report.xml"),
        *map(str, arguments),
    ]


def run_gate(api, tmp_path, *arguments):
    return subprocess.run(
        gate_command(tmp_path, *arguments),
        cwd=tmp_path,
        env=environment(api, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report(tmp_path):
    return json.loads((tmp_path / "report.json").read_text())


def journal_of(tmp_path, name):
    return json.loads((tmp_path / "journals" / f"{name}.journal.json").read_text())


def wait_for_the_fault(api, process):
    deadline = time.monotonic() + 20
    while len(read(api)["spec"]["http"]) == 1:
        assert process.poll() is None, "the run ended before injecting"
        assert time.monotonic() < deadline, "the fault never appeared"
        time.sleep(0.02)


def test_a_clean_run_passes_and_its_reports_are_well_formed(api, tmp_path):
    before = read(api)
    path = experiment(
        tmp_path,
        "clean",
        [delay_action()],
        rollbacks=[REMOVE_FAULTS],
        title="clean run for ${token}",
        secrets={"k8s": {"token": "s3cr3t-gate-token"}},
    )
    done = run_gate(api, tmp_path, "--allow-unverified", path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate: PASS (1 pass)" in done.stdout
    assert exact(read(api)) == exact(before)

    (row,) = report(tmp_path)
    assert row["outcome"] == "pass"
    assert row["reasons"] == []
    assert row["kind"] == "experiment"
    # What the fault hit cannot be counted without a data plane: said, and waived.
    (fault,) = row["faults"]
    assert (fault["activity"], fault["hits"]) == ("delay-ratings", "unknown")
    assert "chaosmesh_prometheus_url" in fault["counted"]
    assert row["title"] == "clean run for ***"
    assert row["duration_s"] > 0
    journal = journal_of(tmp_path, "clean")
    assert row["run_id"] == journal["chaosmesh"]["run_id"]
    assert row["journal"] == str(tmp_path / "journals/clean.journal.json")

    suites = ET.parse(tmp_path / "report.xml").getroot()
    (suite,) = suites
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
    (case,) = suite.findall("testcase")
    assert case.get("name") == str(path)
    assert case.find("failure") is None

    # Neither the journal (the control redacts it) nor any report holds the inline secret.
    assert journal["experiment"]["title"] == "clean run for ***"
    for text in (done.stdout, (tmp_path / "report.json").read_text(), json.dumps(journal)):
        assert "s3cr3t-gate-token" not in text
    assert b"s3cr3t-gate-token" not in (tmp_path / "report.xml").read_bytes()
    # The experiment declared the control: the gate did not add it a second time.
    assert (tmp_path / "journals/clean.log").read_text().count("chaosmesh: run id") == 1

    # The same journal, graded without --allow-unverified: the fault was never seen live, and
    # what it hit is unknown.
    done = run_gate(api, tmp_path, tmp_path / "journals/clean.journal.json")
    assert done.returncode == 1, done.stdout
    (row,) = report(tmp_path)
    assert row["kind"] == "journal"
    unverified, uncounted = row["reasons"]
    assert unverified.startswith("fault of 'delay-ratings' not verified live: ")
    assert "give verify_url" in unverified
    assert uncounted.startswith("what the fault of 'delay-ratings' hit is unknown: ")


def test_a_steady_state_not_met_before_the_method_fails(api, tmp_path):
    always_false = {**SYSTEM_OK, "name": "always-false", "provider": {**SYSTEM_OK["provider"]}}
    always_false["provider"]["path"] = "false"
    path = experiment(tmp_path, "pre-check", [delay_action()], probes=[always_false])
    done = run_gate(api, tmp_path, path)
    assert done.returncode == 1, done.stdout + done.stderr
    journal = journal_of(tmp_path, "pre-check")
    # Chaos Toolkit alone: completed, not deviated, exit 0; the control marked it deviated.
    assert journal["status"] == "completed"
    assert journal["chaosmesh"]["verdict"]["marked_deviated"] is True
    assert report(tmp_path)[0]["reasons"] == [
        "steady state not met before the method, so the method never ran: "
        "probe 'always-false' out of tolerance (exit status 1)"
    ]
    assert len(read(api)["spec"]["http"]) == 1


def test_a_failed_injection_fails(api, tmp_path):
    action = delay_action()
    action["provider"]["arguments"]["virtual_service"] = "nosuch"
    done = run_gate(api, tmp_path, experiment(tmp_path, "action-failed", [action]))
    assert done.returncode == 1, done.stdout + done.stderr
    journal = journal_of(tmp_path, "action-failed")
    assert journal["status"] == "completed"
    assert journal["chaosmesh"]["verdict"]["marked_deviated"] is True
    (reason,) = report(tmp_path)[0]["reasons"]
    assert reason.startswith(
        "action 'delay-ratings' failed: TargetNotFound: virtual_service: "
        "no VirtualService 'nosuch' in namespace 'bookinfo'"
    )
    assert "action 'delay-ratings' failed" in done.stdout


def test_a_deviation_only_during_the_method_fails(api, tmp_path):
    # The experiment asks for checks during the method itself (runtime.hypothesis.strategy):
    # the fault shows only while it is in place; the method removes it before the after-check.
    path = experiment(
        tmp_path,
        "during",
        [paused(delay_action(), 2.5), REMOVE_FAULTS],
        probes=[NO_FAULT_ON_RATINGS],
        runtime={"hypothesis": {"strategy": "continuously"}},
    )
    done = run_gate(api, tmp_path, "--allow-unverified", path)
    assert done.returncode == 1, done.stdout + done.stderr
    journal = journal_of(tmp_path, "during")
    assert journal["status"] == "completed"
    assert journal["chaosmesh"]["verdict"]["marked_deviated"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    (reason,) = report(tmp_path)[0]["reasons"]
    assert reason.startswith("steady state deviated during the method (")
    assert "probe 'no-fault-on-ratings' out of tolerance" in reason


def test_a_during_method_only_run_chaos_passes_is_graded_fail(api, tmp_path):
    path = experiment(
        tmp_path,
        "during-only",
        [paused(delay_action(), 2.5), REMOVE_FAULTS],
        probes=[NO_FAULT_ON_RATINGS],
    )
    journal = tmp_path / "during-only.journal.json"
    done = subprocess.run(
        [
            *(CHAOS, "--no-version-check", "run"),
            *("--hypothesis-strategy", "during-method-only"),
            *("--journal-path", str(journal), str(path)),
        ],
        cwd=tmp_path,
        env=environment(api, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Chaos Toolkit alone would exit 0; the control grades the run as the gate does.
    assert done.returncode == 1, done.stderr
    assert "steady state deviated during the method" in done.stderr
    done = run_gate(api, tmp_path, "--allow-unverified", journal)
    assert done.returncode == 1, done.stdout
    reasons = report(tmp_path)[0]["reasons"]
    assert reasons[0] == "steady state not checked before the method"
    assert reasons[1].startswith("steady state deviated during the method (")
    assert reasons[2] == "steady state not checked after the method"


def test_a_run_that_injects_no_fault_fails_unless_allowed(api, tmp_path):
    # The steady state held and the method ran: but nothing was injected, nothing tested.
    path = experiment(tmp_path, "no-fault", [{**SYSTEM_OK, "name": "just-looking"}])
    done = run_gate(api, tmp_path, path)
    assert done.returncode == 1, done.stdout + done.stderr
    (reason,) = report(tmp_path)[0]["reasons"]
    assert reason.startswith("no chaosmesh fault was injected: the run tested nothing")
    done = run_gate(api, tmp_path, "--allow-no-fault", tmp_path / "journals/no-fault.journal.json")
    assert done.returncode == 0, done.stdout
    assert report(tmp_path)[0]["outcome"] == "pass"


def test_a_safeguard_trip_without_rollback_fails(api, tmp_path):
    before = read(api)
    path = experiment(
        tmp_path, "safeguard", [paused(delay_action(), 10)], rollbacks=[REMOVE_FAULTS]
    )
    journal = tmp_path / "safeguard.journal.json"
    log = tmp_path / "safeguard.log"
    process = subprocess.Popen(
        [
            *(CHAOS, "--no-version-check", "--log-file", str(log)),
            *("run", "--journal-path", str(journal), str(path)),
        ],
        cwd=tmp_path,
        env=environment(api, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_the_fault(api, process)
    # Trip it in the pause, once the action is in the journal, as a safeguard would.
    while not log.exists() or "Pausing after activity" not in log.read_text():
        assert process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGUSR1)  # what chaostoolkit-addons' safeguards send
    assert process.wait(timeout=30) == 1
    assert json.loads(journal.read_text())["rollbacks"] == []  # the default strategy skipped it
    assert exact(read(api)) == exact(before)  # only the control removed the fault

    done = run_gate(api, tmp_path, "--allow-unverified", journal)
    assert done.returncode == 1, done.stdout
    assert report(tmp_path)[0]["reasons"] == [
        "run interrupted (a signal, Ctrl-C, a safeguard or a control stopped it)",
        "rollback 'remove-ratings-faults' never ran (the rollback strategy skipped it: run "
        "interrupted); the chaosmesh control removed the run's faults",
    ]


def test_a_failed_rollback_action_leaves_the_rollback_incomplete(api, tmp_path):
    restore = {
        "type": "action",
        "name": "restore-replicas",
        "provider": {"type": "process", "path": "false"},
    }
    path = experiment(tmp_path, "rollback-failed", [delay_action()], rollbacks=[restore])
    done = run_gate(api, tmp_path, "--allow-unverified", path)
    assert done.returncode == 3, done.stdout + done.stderr
    (rollback,) = journal_of(tmp_path, "rollback-failed")["rollbacks"]
    assert rollback["status"] == "succeeded"  # Chaos Toolkit's verdict on `false`
    assert report(tmp_path)[0]["reasons"] == [
        "rollback 'restore-replicas' exited 1 (Chaos Toolkit records that as succeeded)"
    ]
    assert "gate: ROLLBACK INCOMPLETE" in done.stdout


def test_a_control_that_cannot_remove_the_fault_leaves_the_rollback_incomplete(api, tmp_path):
    before = read(api)
    path = experiment(tmp_path, "control-blocked", [paused(delay_action(), 2.0)])
    process = subprocess.Popen(
        gate_command(tmp_path, "--allow-unverified", path),
        cwd=tmp_path,
        env=environment(api, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    wait_for_the_fault(api, process)
    # From now on every write to ratings is refused: the control's rollback cannot happen.
    api.inject(ApiFault(method="PATCH", path="/virtualservices/ratings$", status=403, times=100))
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 3, stdout
    (row,) = report(tmp_path)
    (reason,) = row["reasons"]
    assert reason.startswith(
        f"the chaosmesh control could not remove run {row['run_id']}'s faults from "
        "bookinfo/ratings: "
    )
    assert "forbidden" in reason.lower()

    api.clear_faults()
    remove_faults(
        virtual_service="ratings",
        namespace=NAMESPACE,
        configuration={"chaosmesh_run_id": row["run_id"]},
    )
    assert exact(read(api)) == exact(before)


def test_a_run_that_leaves_no_journal_is_graded_rollback_incomplete(api, tmp_path):
    # chaos run killed before it could write anything: nobody can say what it left behind.
    kill_chaos = {
        "type": "action",
        "name": "kill-chaos",
        "provider": {"type": "process", "path": "sh", "arguments": ["-c", "kill -9 $PPID"]},
    }
    done = run_gate(api, tmp_path, experiment(tmp_path, "killed", [kill_chaos]))
    assert done.returncode == 3, done.stdout + done.stderr
    (reason,) = report(tmp_path)[0]["reasons"]
    assert reason.startswith("chaos run was killed by signal 9 without a journal: ")


def test_the_control_and_rollbacks_are_forced_on_when_the_experiment_forgot_them(api, tmp_path):
    before = read(api)
    path = experiment(tmp_path, "no-control", [delay_action()], controls=())
    done = run_gate(api, tmp_path, "--allow-unverified", path, path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [row["journal"] for row in report(tmp_path)] == [
        str(tmp_path / "journals/no-control.journal.json"),
        str(tmp_path / "journals/no-control-2.journal.json"),
    ]
    journal = journal_of(tmp_path, "no-control")
    assert "controls" not in journal["experiment"] or not journal["experiment"]["controls"]
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert journal["chaosmesh"]["rollback"][0]["virtual_service"] == "bookinfo/ratings"
    assert exact(read(api)) == exact(before)
    assert "Rollbacks strategy: always" in (tmp_path / "journals/no-control.log").read_text()


def test_invalid_input_exits_2_and_nothing_runs(api, tmp_path):
    (tmp_path / "garbage.txt").write_text("{{{ not: [json")
    (tmp_path / "neither.json").write_text(json.dumps({"hello": "world"}))
    untitled = json.loads(experiment(tmp_path, "untitled", [delay_action()]).read_text())
    del untitled["title"]
    (tmp_path / "untitled.json").write_text(json.dumps(untitled))
    too_much = delay_action(percentage=101)
    (tmp_path / "malformed.journal.json").write_text(json.dumps(clean(run={"not": "a list"})))
    inputs = [
        tmp_path / "missing.json",
        tmp_path / "garbage.txt",
        tmp_path / "neither.json",
        tmp_path / "untitled.json",
        experiment(tmp_path, "too-much", [too_much]),
        tmp_path / "malformed.journal.json",
        experiment(tmp_path, "fine", [delay_action()]),
    ]
    api.request_log.clear()
    done = run_gate(api, tmp_path, *inputs)
    assert done.returncode == 2, done.stdout + done.stderr
    assert writes(api) == []
    assert not (tmp_path / "journals/fine.journal.json").exists()
    rows = report(tmp_path)
    assert [row["outcome"] for row in rows] == ["invalid"] * 6 + ["not-run"]
    reasons = [row["reasons"][0] for row in rows]
    assert reasons[0] == "no such file"
    assert reasons[1].startswith("neither JSON nor YAML: ")
    assert reasons[2].startswith("neither a Chaos Toolkit experiment (no method) nor a journal")
    assert reasons[3] == "invalid: title: missing (every experiment needs a title)"
    assert reasons[4].startswith("delay-ratings: percentage: 101")
    assert reasons[5] == "malformed journal: run is not a list of activity runs"
    assert reasons[6] == "not run: another input is invalid"
    suite = ET.parse(tmp_path / "report.xml").getroot()[0]
    assert (suite.get("errors"), suite.get("skipped"), suite.get("failures")) == ("6", "1", "0")
    assert "gate: INVALID INPUT (6 invalid, 1 not-run)" in done.stdout


def test_the_most_urgent_outcome_sets_the_exit_code(api, tmp_path):
    incomplete = clean()
    incomplete["chaosmesh"]["rollback_complete"] = False
    journals = {"pass": clean(), "fail": clean(status="aborted"), "incomplete": incomplete}
    for name, journal in journals.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(journal))
    (tmp_path / "invalid.json").write_text("[]")
    done = run_gate(api, tmp_path, *(tmp_path / f"{n}.json" for n in [*journals, "invalid"]))
    assert done.returncode == 3, done.stdout
    outcomes = [row["outcome"] for row in report(tmp_path)]
    assert outcomes == ["pass", "fail", "rollback-incomplete", "invalid"]

    def exit_code(*outcomes):
        results = [gate.Result(str(i), None, outcome) for i, outcome in enumerate(outcomes)]
        try:
            gate.raise_for(results)
        except gate.GateError as error:
            return error.exit_code
        return 0

    assert exit_code("pass", "pass") == 0
    assert exit_code("pass", "invalid", "not-run") == 2
    assert exit_code("invalid", "fail") == 1
    assert exit_code("invalid", "fail", "rollback-incomplete") == 3


def test_the_run_command_has_the_safe_defaults(tmp_path):
    command = gate.chaos_command(
        Path("e.yaml"), tmp_path / "e.journal.json", tmp_path / "e.log", tmp_path / "c.json"
    )
    assert command[:3] == [sys.executable, "-m", "chaostoolkit"]
    assert command[3:6] == ["--no-version-check", "--log-file", str(tmp_path / "e.log")]
    assert command[6:] == [
        "run",
        "--journal-path",
        str(tmp_path / "e.journal.json"),
        "--rollback-strategy",
        "always",
        "--control-file",
        str(tmp_path / "c.json"),
        "e.yaml",
    ]
