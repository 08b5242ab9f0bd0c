"""`chaos` itself, as users run it, against the Kubernetes API double."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import NAMESPACE, ROOT
from tests.integration.test_inject_rollback import exact, read, writes

pytestmark = pytest.mark.slow

CHAOS = str(Path(sys.executable).parent / "chaos")
CONTROL = {"name": "chaosmesh", "provider": {"type": "python", "module": "chaosmesh_py.control"}}
# The API double has no data plane: no fault can be seen live nor counted there. The control's
# verdict is told to accept that, as `chaosmesh gate --allow-unverified` would.
LENIENT_CONTROL = {
    "name": "chaosmesh",
    "provider": {
        "type": "python",
        "module": "chaosmesh_py.control",
        "arguments": {"allow_unverified": True},
    },
}
SYSTEM_OK = {
    "type": "probe",
    "name": "system-ok",
    "tolerance": 0,
    "provider": {"type": "process", "path": "true"},
}


def environment(api, tmp_path):
    return {
        **os.environ,
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        "KUBERNETES_HOST": api.url,
        "BOOKINFO_NAMESPACE": NAMESPACE,
    }


def chaos(api, tmp_path, *arguments, timeout_s=60):
    return subprocess.run(
        [CHAOS, "--no-version-check", "--log-file", str(tmp_path / "chaostoolkit.log"), *arguments],
        cwd=ROOT,
        env=environment(api, tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def write_experiment(tmp_path, method, rollbacks=(), controls=(CONTROL,), probes=()):
    experiment = {
        "title": "test",
        "description": "test",
        "configuration": {"namespace": NAMESPACE},
        "controls": list(controls),
        "method": method,
        "rollbacks": list(rollbacks),
    }
    if probes:
        experiment["steady-state-hypothesis"] = {"title": "fine", "probes": list(probes)}
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    return path


def delay_action(percentage=100):
    return {
        "type": "action",
        "name": "delay-ratings",
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.faults.actions",
            "func": "inject_delay",
            "arguments": {
                "virtual_service": "ratings",
                "namespace": "${namespace}",
                "fixed_delay": "7s",
                "percentage": percentage,
                "headers": {"end-user": "jason"},
            },
        },
    }


@pytest.mark.parametrize("name", ["bookinfo-ratings-delay", "bookinfo-ratings-abort"])
def test_the_bookinfo_experiments_run_and_leave_no_fault(api, tmp_path, name):
    # The API double has no data plane behind it: nothing serves Bookinfo's pages, so the
    # steady-state probes are replaced; the method, rollbacks and control run as written.
    experiment = json.loads((ROOT / f"experiments/{name}.json").read_text())
    experiment["steady-state-hypothesis"]["probes"] = [SYSTEM_OK]
    experiment["controls"] = [LENIENT_CONTROL]
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    before = read(api)
    journal_path = tmp_path / "journal.json"
    done = chaos(api, tmp_path, "run", "--journal-path", str(journal_path), str(path))
    assert done.returncode == 0, done.stderr
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "completed"
    action, probe = journal["run"]
    assert action["status"] == "succeeded"
    assert action["output"]["routes"][0].startswith("chaosmesh-")
    assert probe["output"] is True
    assert journal["rollbacks"][0]["output"][0]["removed"] == action["output"]["routes"]
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert journal["chaosmesh"]["verdict"] == {"outcome": "pass", "reasons": []}
    assert exact(read(api)) == exact(before)


def test_an_interrupted_run_is_rolled_back_by_the_control(api, tmp_path):
    before = read(api)
    pause = {
        "type": "action",
        "name": "wait",
        "provider": {"type": "process", "path": "sleep", "arguments": "30"},
    }
    path = write_experiment(tmp_path, [delay_action(), pause])
    process = subprocess.Popen(
        [CHAOS, "--no-version-check", "run", str(path)],
        cwd=tmp_path,
        env=environment(api, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while len(read(api)["spec"]["http"]) == 1:
        assert time.monotonic() < deadline, "the fault never appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert "rolled back run" in stderr
    assert exact(read(api)) == exact(before)


def test_rollbacks_happen_even_with_rollback_strategy_never(api, tmp_path):
    before = read(api)
    path = write_experiment(
        tmp_path, [delay_action()], controls=[LENIENT_CONTROL], probes=[SYSTEM_OK]
    )
    done = chaos(api, tmp_path, "run", "--rollback-strategy", "never", str(path))
    assert done.returncode == 0, done.stderr
    assert exact(read(api)) == exact(before)


def test_a_bad_argument_anywhere_stops_the_run_before_the_first_injection(api, tmp_path):
    path = write_experiment(tmp_path, [delay_action(), delay_action(percentage=101)])
    api.request_log.clear()
    done = chaos(api, tmp_path, "run", str(path))
    assert done.returncode == 1
    assert "percentage: 101 is outside" in done.stderr
    assert writes(api) == []


def test_a_run_the_gate_would_pass_exits_0_and_says_so(api, tmp_path):
    path = write_experiment(
        tmp_path, [delay_action()], controls=[LENIENT_CONTROL], probes=[SYSTEM_OK]
    )
    done = chaos(api, tmp_path, "run", "--journal-path", str(tmp_path / "journal.json"), path)
    assert done.returncode == 0, done.stderr
    assert "chaosmesh: verdict pass (as chaosmesh gate grades it)" in done.stderr
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["deviated"] is False
    (fault,) = journal["chaosmesh"]["faults"]
    assert (fault["activity"], fault["hits"]) == ("delay-ratings", "unknown")


def misnamed(**arguments):
    action = delay_action()
    action["provider"]["arguments"].update(arguments)
    return action


CANNOT_START = {
    **SYSTEM_OK,
    "name": "page-whole",
    "provider": {"type": "process", "path": sys.executable, "arguments": ["probes/no_such.py"]},
}


@pytest.mark.parametrize(
    ("method", "probe", "reason"),
    [
        (
            [misnamed(virtual_service="ratngs")],
            SYSTEM_OK,
            "action 'delay-ratings' failed: TargetNotFound: virtual_service: no VirtualService "
            "'ratngs' in namespace 'bookinfo'",
        ),
        (
            [misnamed(namespace="bookinf")],
            SYSTEM_OK,
            "action 'delay-ratings' failed: TargetNotFound: virtual_service: no VirtualService "
            "'ratings' in namespace 'bookinf'",
        ),
        (
            [delay_action()],
            CANNOT_START,
            "steady state not met before the method, so the method never ran: probe "
            "'page-whole' out of tolerance (exit status 2: ",
        ),
    ],
    ids=["typo-in-virtual-service", "wrong-namespace", "probe-cannot-start"],
)
def test_chaos_run_exits_1_when_the_gate_would_fail_and_says_why(
    api, tmp_path, method, probe, reason
):
    # Each of these exits 0 from chaos run alone, its reason only in the journal.
    path = write_experiment(tmp_path, method, controls=[LENIENT_CONTROL], probes=[probe])
    done = chaos(api, tmp_path, "run", "--journal-path", str(tmp_path / "journal.json"), path)
    assert done.returncode == 1, done.stderr
    assert "chaosmesh: verdict FAIL (as chaosmesh gate grades it):" in done.stderr
    assert f"chaosmesh:   - {reason}" in done.stderr
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert (journal["status"], journal["deviated"]) == ("completed", True)
    (said,) = journal["chaosmesh"]["verdict"]["reasons"]
    assert said.startswith(reason)
    assert journal["chaosmesh"]["verdict"]["marked_deviated"] is True

    # The gate grades the marked journal alike: the mark is not a reason of its own.
    graded = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "chaosmesh"), "gate", "--allow-unverified"),
            *("--json", str(tmp_path / "report.json"), str(tmp_path / "journal.json")),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert graded.returncode == 1, graded.stdout
    assert json.loads((tmp_path / "report.json").read_text())[0]["reasons"] == [said]


def test_chaos_validate_catches_a_missing_percentage(api, tmp_path):
    action = delay_action()
    del action["provider"]["arguments"]["percentage"]
    done = chaos(api, tmp_path, "validate", str(write_experiment(tmp_path, [action])))
    assert done.returncode == 1
    assert "required argument 'percentage' is missing" in done.stderr


def test_chaos_discover_describes_every_activity(api, tmp_path):
    done = chaos(
        api,
        tmp_path,
        "discover",
        "--no-install",
        "--discovery-path",
        str(tmp_path / "discovery.json"),
        "chaostoolkit-chaosmesh-py",
    )
    assert done.returncode == 0, done.stderr
    discovery = json.loads((tmp_path / "discovery.json").read_text())
    activities = {a["name"]: a for a in discovery["activities"]}
    assert set(activities) == {
        "inject_delay",
        "inject_abort",
        "remove_faults",
        "fault_is_injected",
        "list_owned_faults",
        "bookinfo_page",
        "envoy_counters",
        "measure_http_load",
        "http_slo_is_met",
        "prometheus_query",
        "istio_error_ratio",
        "istio_latency_p99_ms",
        "istio_request_rate",
        "route_to_version",
        "shift_traffic",
        "mirror_traffic",
        "remove_routing",
        "observed_share",
        "share_is_within",
        "dark_launch_leaks",
        "canary_analysis",
        "canary_is_healthy",
        "set_route_timeout",
        "set_retries",
        "set_connection_pool",
        "set_outlier_detection",
        "restore_policies",
        "inject_upstream_fault",
        "remove_upstream_faults",
        "policy_report",
        "policy_findings",
        "max_amplification",
        "measure_retries",
        "measure_overflow",
        "measure_ejection",
        "policy_matrix",
        "set_mtls_mode",
        "deny_requests",
        "require_jwt",
        "make_jwks_unreachable",
        "expire_certificate",
        "rotate_certificate",
        "remove_security_changes",
        "security_posture",
        "plaintext_acceptors",
        "unenforced_request_authentication",
        "mtls_only_rules_on_plaintext",
        "never_matching_policies",
    }
    for activity in activities.values():
        assert activity["doc"]
        assert all("type" in argument for argument in activity["arguments"]), activity
    delay = {a["name"]: a["type"] for a in activities["inject_delay"]["arguments"]}
    assert delay["percentage"] == "number"
    assert delay["fixed_delay"] == "string"
    assert delay["headers"] == "mapping"
    assert delay["route_index"] == "integer"
    retries = {a["name"]: a["type"] for a in activities["set_retries"]["arguments"]}
    assert (retries["attempts"], retries["per_try_timeout"]) == ("integer", "string")
    measured = {a["name"]: a["type"] for a in activities["measure_retries"]["arguments"]}
    assert (measured["requests"], measured["expect"]) == ("integer", "mapping")
    pool = {a["name"]: a["type"] for a in activities["set_connection_pool"]["arguments"]}
    assert pool["connection_pool"] == "mapping"
    matrix = {a["name"]: a["type"] for a in activities["policy_matrix"]["arguments"]}
    assert (matrix["sources"], matrix["expect"], matrix["concurrency"]) == (
        "list",
        "mapping",
        "integer",
    )


def test_chaos_info_lists_the_extension(api, tmp_path):
    done = chaos(api, tmp_path, "info", "extensions")
    assert "chaostoolkit-chaosmesh-py" in done.stdout


def test_chaosmesh_validate_catches_values_chaos_validate_lets_through(api, tmp_path):
    path = write_experiment(tmp_path, [delay_action(percentage=101)])
    assert chaos(api, tmp_path, "validate", str(path)).returncode == 0
    done = subprocess.run(
        [str(Path(sys.executable).parent / "chaosmesh"), "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "delay-ratings: percentage: 101 is outside" in done.stderr
    every = sorted(str(path) for path in (ROOT / "experiments").glob("*.json"))
    assert len(every) >= 3
    for path in every:
        assert chaos(api, tmp_path, "validate", path).returncode == 0, path
    done = subprocess.run(
        [str(Path(sys.executable).parent / "chaosmesh"), "validate", *every],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("experiment", "action", "page_error"),
    [
        ("bookinfo-ratings-delay", "delay-ratings-for-jason", "reviews"),
        ("bookinfo-ratings-abort", "abort-ratings-for-jason", "ratings"),
    ],
)
def test_the_readme_main_job_runs_end_to_end(tmp_path, experiment, action, page_error):
    # Whatever this shell has set, the printed `chaos run` line carries what it needs: it is
    # run exactly as printed, and would fail here on any of these values.
    poisoned = {
        "KUBECONFIG": str(tmp_path / "none"),
        "KUBERNETES_CONTEXT": "no-such-context",
        "PRODUCTPAGE_URL": "http://127.0.0.1:9",
        "BOOKINFO_NAMESPACE": "no-such-namespace",
        "PROMETHEUS_URL": "http://127.0.0.1:9",
        "JWKS_URI": "http://127.0.0.1:9/jwks.json",
    }
    done = subprocess.run(
        [sys.executable, "-m", "chaosmesh_py.localmesh.demo", f"experiments/{experiment}.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        env={**os.environ, **poisoned},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = printed_command(done.stdout, "chaos")
    assert printed[:5] == [
        f"KUBECONFIG={printed[0].partition('=')[2]}",
        "KUBERNETES_CONTEXT=chaosmesh-local",
        f"PRODUCTPAGE_URL={printed[2].partition('=')[2]}",
        "BOOKINFO_NAMESPACE=bookinfo",
        # The mesh's own Prometheus, when installed (CI installs it).
        f"PROMETHEUS_URL={printed[4].partition('=')[2]}",
    ]
    assert not printed[2].endswith("/productpage")
    assert printed[4].partition("=")[2].startswith("http://127.0.0.1:")
    # The mesh's JWT issuer, for the JWT experiments' RequestAuthentication.
    assert printed[5:7] == [
        "JWT_ISSUER=https://issuer.chaosmesh.local",
        f"JWKS_URI={printed[6].partition('=')[2]}",
    ]
    assert printed[6].endswith("/jwks.json")
    assert printed[7:] == [
        "chaos",
        "--no-version-check",
        "run",
        "--journal-path",
        printed[11],
        f"experiments/{experiment}.json",
    ]
    assert "- steady state before: met" in done.stdout
    assert f"- {action}: succeeded; live in Envoy after" in done.stdout
    deviated = f"0 of 20 page loads whole for jason; failed: {page_error} on 20"
    assert f"page-whole-for-jason: {deviated}" in done.stdout
    assert "- every fault of run" in done.stdout and "removed: True" in done.stdout
    after = done.stdout.split("- after the rollback, the product page again:\n")[1]
    assert after.startswith("    20 of 20 page loads whole for jason (")
    assert "still running: nothing" in done.stdout


def printed_command(stdout, program):
    """The words of the first `$ ` line of ``stdout`` that runs ``program``, continuation lines
    included, as a shell would split them."""
    lines = iter(stdout.splitlines())
    for line in lines:
        if not line.startswith("$ "):
            continue
        command = line[2:]
        while command.endswith("\\"):
            command = command[:-1] + next(lines)
        words = shlex.split(command)
        if program in words:
            return words
    raise AssertionError(f"no `$ ... {program} ...` line in:\n{stdout}")
