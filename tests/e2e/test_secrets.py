"""Tokens never appear in what the project writes: logs, ledger, journal, CLI output."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaosmesh_py.localmesh.apiserver import ApiFault
from chaosmesh_py.localmesh.apiserver.rbac import PolicyRule
from tests.conftest import NAMESPACE
from tests.e2e.test_chaos_run import CHAOS, ROOT, delay_action, environment, write_experiment

pytestmark = pytest.mark.slow

TOKEN = "s3cr3t-token-0123456789abcdef"
ISTIO = PolicyRule(
    verbs=("get", "list", "patch"), resources=("virtualservices",), namespaces=(NAMESPACE,)
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
    run = subprocess.run(
        [
            CHAOS,
            "--no-version-check",
            "--verbose",
            "--log-file",
            tmp_path / "chaos.log",
            "run",
            "--journal-path",
            tmp_path / "journal.json",
            path,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outputs += [run.stdout, run.stderr]
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
