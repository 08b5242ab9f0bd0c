"""`chaosmesh local up | status | down` as users run them."""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.conftest import ISTIO_CRDS

pytestmark = pytest.mark.slow

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")


def chaosmesh(tmp_path, *arguments, check=True):
    done = subprocess.run(
        [CHAOSMESH, "local", *arguments, "--state-dir", str(tmp_path / "state")]
        + (
            ["--kubeconfig", str(tmp_path / "kubeconfig")] if arguments[0] in ("up", "down") else []
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CHAOSMESH_ISTIO_CRDS": str(ISTIO_CRDS)},
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_up_status_down_leaves_nothing_behind(tmp_path):
    shm_before = set(Path("/dev/shm").glob("envoy_shared_memory_*"))
    chaosmesh(tmp_path, "up")
    status = json.loads(chaosmesh(tmp_path, "status", "--json").stdout)
    assert status["running"] is True
    assert status["context"] == "chaosmesh-local"
    for key in ("api_url", "ingress_url", "envoy_admin_url"):
        assert status[key].startswith("http://127.0.0.1:")
    assert set(status["services"]) == {"productpage", "details", "reviews", "ratings", "httpbin"}

    again = chaosmesh(tmp_path, "up")  # harmless: reports the running mesh
    assert json.loads(chaosmesh(tmp_path, "status", "--json").stdout)["pid"] == status["pid"]
    assert "local mesh up" in again.stdout

    api = client.CustomObjectsApi(
        config.new_client_from_config(
            config_file=str(tmp_path / "kubeconfig"), context="chaosmesh-local"
        )
    )
    listed = api.list_cluster_custom_object("networking.istio.io", "v1", "virtualservices")
    assert {vs["metadata"]["name"] for vs in listed["items"]} >= {"ratings", "reviews", "bookinfo"}

    if shutil.which("kubectl") or os.environ.get("CHAOSMESH_REQUIRE_KUBECTL"):
        done = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(tmp_path / "kubeconfig"),
                "--context",
                "chaosmesh-local",
                "get",
                "virtualservices",
                "-A",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert re.search(r"^bookinfo\s+ratings\s", done.stdout, re.MULTILINE), done.stdout

    envoy_pid = int(
        subprocess.run(
            ["pgrep", "-g", str(status["pid"]), "-f", "envoy"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()[0]
    )
    chaosmesh(tmp_path, "down")
    assert not alive(status["pid"])
    assert not alive(envoy_pid)
    assert not (tmp_path / "state").exists()
    kubeconfig = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    assert all(c["name"] != "chaosmesh-local" for c in kubeconfig["contexts"])
    assert set(Path("/dev/shm").glob("envoy_shared_memory_*")) == shm_before
    assert chaosmesh(tmp_path, "status", check=False).returncode == 1


def test_a_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = chaosmesh(tmp_path, "up", "--ingress-port", str(port), check=False)
    assert done.returncode != 0
    assert f"port {port} is in use; choose another with --ingress-port" in done.stderr


def test_the_commands_up_prints_run_an_experiment_as_printed(tmp_path):
    # A newcomer copies what `up` prints into a shell that has none of the variables set.
    printed = chaosmesh(tmp_path, "up").stdout.splitlines()
    try:
        page = next(line for line in printed if line.startswith("product page: "))
        export, run = (line.strip() for line in printed if line.startswith("  "))
        assert export.startswith("export ") and run.startswith("chaos run ")
        variables = dict(word.split("=", 1) for word in shlex.split(export)[1:])
        assert page == f"product page: {variables['PRODUCTPAGE_URL']}/productpage"
        assert variables["KUBECONFIG"] == str(tmp_path / "kubeconfig")
        shell = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "BOOKINFO"))}
        shell.pop("PRODUCTPAGE_URL", None)
        shell["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), shell["PATH"]])
        done = subprocess.run(
            ["/bin/sh", "-c", f"{export}\n{run}"],
            cwd=tmp_path,
            env=shell,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        journal = json.loads((tmp_path / "journal.json").read_text())
        assert journal["steady_states"]["before"]["steady_state_met"], done.stderr
        assert [a["status"] for a in journal["run"]] == ["succeeded", "succeeded"]
        assert journal["deviated"] and journal["chaosmesh"]["rollback_complete"]
    finally:
        chaosmesh(tmp_path, "down")
