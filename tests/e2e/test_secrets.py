"""Tokens never appear in what the project writes: logs, ledger, journal, CLI output."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chaosmesh_py.localmesh.apiserver import ApiFault
from chaosmesh_py.localmesh.apiserver.rbac import PolicyRule
from tests.conftest import NAMESPACE
from tests.e2e.test_chaos_run import CHAOS, ROOT, delay_action, environment, write_experiment
from tests.e2e.test_gate import CHAOSMESH, run_gate
from tests.integration.test_inject_rollback import exact, read

pytestmark = pytest.mark.slow

TOKEN = "s3cr3t-token-0123456789abcdef"
ISTIO = PolicyRule(
    verbs=("get", "list", "patch"), resources=("virtualservices",), namespaces=(NAMESPACE,)
)


def run(command, env=None):
    return subprocess.run(
        list(map(str, command)),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_token_in_logs_ledger_journal_or_output(api, tmp_path, ledger_dir):
    api.set_tokens({TOKEN: ("ci", [ISTIO])})
    env = {**environment(api, tmp_path), "KUBERNETES_API_KEY": TOKEN}
    forbidden = delay_action()
    forbidden["name"] = "delay-elsewhere"
    forbidden["provider"]["arguments"]["namespace"] = "team-x"  # no rights there: 403
    path = write_experiment(tmp_path, [delay_action(), forbidden])
    # Once the fault is in, the API answers 503 to the control's rollback (7 attempts) and its
    # clean-up (7 more): the journal then lists what is left, and `chaosmesh rollback` ends it.
    storm = ApiFault(method="PATCH", status=503, retry_after_s=0, times=14)
    api.inject(ApiFault(method="PATCH", concurrent_write=lambda server: server.inject(storm)))
    outputs = []
    done = run(
        [
            *(CHAOS, "--no-version-check", "--verbose", "--log-file", tmp_path / "chaos.log"),
            *("run", "--journal-path", tmp_path / "journal.json", path),
        ],
        env,
    )
    outputs += [done.stdout, done.stderr]
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["chaosmesh"]["rollback_complete"] is False
    assert "forbidden" in json.dumps(journal["run"])
    rollback = subprocess.run(
        [Path(sys.executable).parent / "chaosmesh", "rollback", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    outputs += [rollback.stdout, rollback.stderr]
    wrong = subprocess.run(
        [Path(sys.executable).parent / "chaosmesh", "halt"],
        env={**env, "KUBERNETES_API_KEY": TOKEN + "-wrong"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 3 and "unauthorized" in wrong.stderr
    outputs += [wrong.stdout, wrong.stderr]
    written = [
        (tmp_path / "chaos.log").read_text(),
        (tmp_path / "journal.json").read_text(),
        *(path.read_text() for path in ledger_dir.iterdir()),
        *outputs,
    ]
    assert len(written) >= 9 and all(written[:3])
    leaks = [text[:200] for text in written if TOKEN in text]
    assert not leaks, leaks


def test_secret_values_are_redacted_from_the_journal(api, tmp_path):
    api.set_tokens({TOKEN: ("ci", [ISTIO])})
    action = delay_action()
    action["provider"]["secrets"] = ["k8s"]
    path = write_experiment(tmp_path, [action])
    experiment = json.loads(path.read_text())
    experiment["title"] = "uses ${KUBERNETES_API_KEY}"  # Chaos Toolkit substitutes the secret
    experiment["secrets"] = {
        "k8s": {"KUBERNETES_API_KEY": TOKEN, "KUBERNETES_HOST": {"type": "env", "key": "KUBE"}}
    }
    path.write_text(json.dumps(experiment))
    run = subprocess.run(
        [CHAOS, "--no-version-check", "run", "--journal-path", tmp_path / "journal.json", path],
        cwd=ROOT,
        env={**environment(api, tmp_path), "KUBE": api.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "completed", run.stderr[-2000:]
    assert journal["run"][0]["status"] == "succeeded"  # the inline token was used
    assert TOKEN not in (tmp_path / "journal.json").read_text()
    assert journal["experiment"]["title"] == "uses ***"
    assert journal["experiment"]["secrets"]["k8s"] == {
        "KUBERNETES_API_KEY": "***",
        "KUBERNETES_HOST": {"type": "env", "key": "KUBE"},
    }
    assert api.url not in (tmp_path / "journal.json").read_text()  # an env secret's value


NOWHERE = "http://127.0.0.1:9"  # the discard port
INT_TOKEN = 86753091234567  # an integer token: Chaos Toolkit keeps its type
HEADER_SECRET = "tester-S3cret-7f2a9c"  # narrows the fault: lands in the route copy's match
SHORT_SECRET = "ab1"


def secrets_experiment(tmp_path, title="secrets"):
    """A run that uses each secret the way users do: the token to reach the API, the header
    secret as the fault's narrowing and in a probe's command line (logged at debug level)."""
    action = delay_action()
    action["provider"]["secrets"] = ["k8s"]
    action["provider"]["arguments"]["headers"] = {"x-tester-token": "${tester_token}"}
    probe = {
        "type": "probe",
        "name": "tester-token-accepted",
        "tolerance": 0,
        "provider": {"type": "process", "path": "true", "arguments": "--token ${tester_token}"},
    }
    path = write_experiment(tmp_path, [action])
    experiment = json.loads(path.read_text())
    experiment["title"] = title
    experiment["description"] = "ab12 and 1 keep their names"
    experiment["steady-state-hypothesis"] = {"title": "tester served", "probes": [probe]}
    experiment["secrets"] = {
        "k8s": {"KUBERNETES_API_KEY": INT_TOKEN},
        "user": {"tester_token": HEADER_SECRET, "pin": SHORT_SECRET},
    }
    path.write_text(json.dumps(experiment))
    return path


def leaks(texts):
    return [
        (name, secret)
        for name, text in texts.items()
        for secret in (str(INT_TOKEN), HEADER_SECRET)
        if secret in text
    ]


def test_integer_and_header_secrets_stay_out_of_journal_log_ledger_and_output(
    api, tmp_path, ledger_dir
):
    api.set_tokens({str(INT_TOKEN): ("ci", [ISTIO])})
    before = read(api)
    path = secrets_experiment(tmp_path)
    # The control's rollback and clean-up meet 503s: the ledger is all that is left to finish.
    storm = ApiFault(method="PATCH", status=503, retry_after_s=0, times=14)
    api.inject(ApiFault(method="PATCH", concurrent_write=lambda server: server.inject(storm)))
    log = tmp_path / "chaostoolkit.log"
    chaos_run = run(
        [
            *(CHAOS, "--no-version-check", "--verbose", "--log-file", log, "run"),
            *("--journal-path", tmp_path / "journal.json", path),
        ],
        environment(api, tmp_path),
    )
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["run"][0]["status"] == "succeeded", chaos_run.stderr[-2000:]
    assert journal["chaosmesh"]["rollback_complete"] is False
    rollback = run(
        [CHAOSMESH, "rollback", "--all"],
        {**environment(api, tmp_path), "KUBERNETES_API_KEY": str(INT_TOKEN)},
    )
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert exact(read(api)) == exact(before)  # the redacted ledger was enough to roll back
    ledgers = {p.name: p.read_text() for p in ledger_dir.iterdir()}
    texts = {
        "journal": (tmp_path / "journal.json").read_text(),
        "log": log.read_text(),
        "chaos run stdout": chaos_run.stdout,
        "chaos run stderr": chaos_run.stderr,
        "rollback output": rollback.stdout + rollback.stderr,
        **ledgers,
    }
    assert leaks(texts) == []
    # Hidden, not absent: each place held the secret before.
    assert journal["experiment"]["secrets"]["k8s"]["KUBERNETES_API_KEY"] == "***"
    assert "--token ***" in texts["log"]
    assert any('"x-tester-token":{"exact":"***"}' in text for text in ledgers.values())
    # A short secret is hidden as a value, and warned about; text around it keeps its ones.
    assert journal["experiment"]["secrets"]["user"]["pin"] == "***"
    assert journal["experiment"]["description"] == "ab12 and 1 keep their names"
    assert "secret(s) user.pin shorter than 8 characters" in chaos_run.stderr
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    for ledger in ledger_dir.iterdir():
        assert stat.S_IMODE(ledger.stat().st_mode) == 0o600


def test_the_gate_hides_secrets_in_its_output_logs_journals_and_reports(api, tmp_path):
    api.set_tokens({str(INT_TOKEN): ("ci", [ISTIO])})
    # Chaos Toolkit logs the title before any control runs: the gate hides it itself.
    path = secrets_experiment(tmp_path, title="as tester ${tester_token}")
    gate = run_gate(api, tmp_path, "--allow-unverified", path)
    assert gate.returncode == 0, gate.stdout + gate.stderr[-3000:]
    journals = tmp_path / "journals"
    written = [*journals.iterdir(), tmp_path / "report.json", tmp_path / "report.xml"]
    assert len(written) == 4
    texts = {p.name: p.read_text() for p in written}
    texts |= {"gate stdout": gate.stdout, "gate stderr": gate.stderr}
    assert leaks(texts) == []
    assert "Running experiment: as tester ***" in texts["experiment.log"]
    assert "Running experiment: as tester ***" in gate.stderr
    assert stat.S_IMODE(journals.stat().st_mode) == 0o700
    for file in written:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


@pytest.mark.parametrize("output", ["experiment.log", "experiment.journal.json"])
def test_the_gate_refuses_to_write_through_a_symbolic_link(tmp_path, output):
    path = secrets_experiment(tmp_path)
    journals = tmp_path / "journals"
    journals.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not yours")
    (journals / output).symlink_to(elsewhere)
    # Credentials that reach nothing: were the link followed, the run would fail, not touch a
    # cluster of the machine's.
    nowhere = {**os.environ, "KUBECONFIG": str(tmp_path / "none"), "KUBERNETES_HOST": NOWHERE}
    gate = run([CHAOSMESH, "gate", "--journal-dir", journals, path], nowhere)
    assert gate.returncode == 2, gate.stdout + gate.stderr
    assert f"{journals / output} is a symbolic link" in gate.stderr
    assert "Traceback" not in gate.stderr
    assert elsewhere.read_text() == "not yours"
