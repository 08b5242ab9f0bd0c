"""`chaosmesh local up | status | down` as users run them."""

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from chaosmesh_py.localmesh import state
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
    assert status["api_url"].startswith("https://127.0.0.1:")
    assert status["ingress_url"].startswith("http://127.0.0.1:")
    assert Path(status["envoy_admin_socket"]).is_socket()
    assert set(status["services"]) == {"productpage", "details", "reviews", "ratings", "httpbin"}
    # Clients without a sidecar: a ClusterIP per service, a pod address per serving workload.
    assert status["services"]["reviews"]["no_sidecar_url"].startswith("http://127.0.0.1:")
    assert status["workloads"]["reviews-v2"]["pod_url"].startswith("http://127.0.0.1:")
    # The mesh's JWT issuer: its JWKS served, its key's path given (0600), the key never shown.
    issuer = status["jwt_issuer"]
    with urllib.request.urlopen(issuer["jwks_uri"], timeout=5) as response:
        assert json.loads(response.read())["keys"][0]["kty"] == "RSA"
    assert os.stat(issuer["private_key_file"]).st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in chaosmesh(tmp_path, "status", "--json").stdout
    text = chaosmesh(tmp_path, "status").stdout
    reviews = status["services"]["reviews"]
    assert (
        f"reviews         {reviews['url']}  (without a sidecar: {reviews['no_sidecar_url']})"
        in text
    )

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
        # Plain `kubectl apply`, validation on, over TLS with the mesh's token: the local API
        # publishes OpenAPI and validates as a cluster does (a server dry run changes nothing).
        samples = Path(__file__).resolve().parents[2] / "experiments" / "bookinfo"
        applied = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(tmp_path / "kubeconfig"),
                "--context",
                "chaosmesh-local",
                "apply",
                "--dry-run=server",
                "-n",
                "bookinfo",
                "-f",
                str(samples),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert applied.returncode == 0, applied.stderr
        # "configured": the mesh created them without kubectl's last-applied annotation.
        assert re.search(
            r"^virtualservice.networking.istio.io/ratings configured \(server dry run\)$",
            applied.stdout,
            re.MULTILINE,
        ), applied.stdout

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
    assert not (tmp_path / "kubeconfig").exists()  # `up` created it: gone with the mesh
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


def test_down_refuses_a_user_folder_and_keeps_its_files(tmp_path):
    """``--state-dir`` pointed at a folder of the user's: nothing in it may go, and a pid file
    there names nothing we may signal."""
    folder = tmp_path / "state"  # where chaosmesh() points --state-dir
    folder.mkdir()
    (folder / "thesis.tex").write_text("three years of work")
    (folder / "figures").mkdir()
    (folder / "figures" / "plot.png").write_bytes(b"\x89PNG")
    with sleeping() as bystander:
        (folder / "daemon.pid").write_text(str(bystander.pid))
        done = chaosmesh(tmp_path, "down", check=False)
        assert alive(bystander.pid)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--state-dir" in done.stderr
    assert "is not a local mesh state directory" in done.stderr
    assert "give a new or empty directory" in done.stderr
    assert (folder / "thesis.tex").read_text() == "three years of work"
    assert (folder / "figures" / "plot.png").read_bytes() == b"\x89PNG"


def test_up_refuses_a_folder_with_files_and_writes_nothing(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    done = chaosmesh(tmp_path, "up", check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not empty and is not a local mesh state directory" in done.stderr
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "kubeconfig").exists()


@contextlib.contextmanager
def sleeping():
    """An unrelated process leading its own process group, as the daemon does."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("record", ["plain pid", "pid and its start time"])
def test_a_pid_file_naming_an_unrelated_process_signals_nothing(tmp_path, record):
    """A crashed mesh's state directory whose daemon pid now belongs to another program."""
    folder = tmp_path / "state"
    state.claim(folder)  # as `up` left it
    with sleeping() as bystander:
        if record == "plain pid":  # the format of earlier versions
            (folder / state.PID_FILE).write_text(str(bystander.pid))
        else:  # even its start time matches: only the command line tells it apart
            state.record_daemon(folder, bystander.pid)
        done = chaosmesh(tmp_path, "down")
        assert alive(bystander.pid), "down signalled a process that is not its daemon"
    assert "was not running" in done.stdout
    assert not folder.exists()  # ours: removed


@pytest.mark.parametrize("existed", [True, False], ids=["adopted empty folder", "new folder"])
def test_a_failed_up_removes_only_what_it_created(tmp_path, existed):
    folder = tmp_path / "state"
    if existed:
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    broken = tmp_path / "broken-crds.yaml"
    broken.write_text("kind: CustomResourceDefinition\nspec: {}\n")  # the daemon dies on it
    done = chaosmesh(tmp_path, "up", "--crds", str(broken), check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the local mesh did not start" in done.stderr
    if existed:
        assert folder.is_dir() and list(folder.iterdir()) == []
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    else:
        assert not folder.exists()
    assert not (tmp_path / "kubeconfig").exists()


def test_up_and_down_leave_the_users_kubeconfig_as_it_was(tmp_path):
    """Comments, layout, other clusters' credentials, a symlink: all kept; down restores it."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "kubeconfig"
    original = (
        "# work clusters\n"
        "apiVersion: v1\n"
        "clusters:\n"
        "- cluster:\n"
        "    server: https://prod.example:6443   # production\n"
        "  name: prod\n"
        "contexts:\n"
        "- context: {cluster: prod, user: admin}\n"
        "  name: prod\n"
        "current-context: prod\n"
        "kind: Config\n"
        "users:\n"
        "- name: admin\n"
        "  user:\n"
        "    token: prod-secret\n"
    )
    target.write_text(original)
    target.chmod(0o600)
    (tmp_path / "kubeconfig").symlink_to(target)
    chaosmesh(tmp_path, "up")
    try:
        assert (tmp_path / "kubeconfig").is_symlink()
        edited = target.read_text()
        assert edited.startswith("# work clusters\n")
        assert "server: https://prod.example:6443   # production" in edited
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        loaded = yaml.safe_load(edited)
        assert loaded["current-context"] == "prod"  # never switched to the local mesh
        local = next(u for u in loaded["users"] if u["name"] == "chaosmesh-local")
        assert local["user"]["token"]
    finally:
        chaosmesh(tmp_path, "down")
    assert (tmp_path / "kubeconfig").is_symlink()
    assert target.read_text() == original


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
