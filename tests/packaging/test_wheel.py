"""The package as `pip install` gives it: a wheel in a fresh venv, used outside the source tree.

Nothing here reads the repository once the wheel is built: the local mesh's Bookinfo routing,
the demo's experiment and the experiments the gate runs all come from the installed package.
Istio's CRDs are the only file from outside it, named with ``--crds`` as a user would.
"""

import json
import os
import shutil
import subprocess
import sys
import venv

import pytest

from tests.conftest import ISTIO_CRDS, ROOT

pytestmark = pytest.mark.slow

# What a source tree holds that a wheel build must not see (a stale build/ would be packaged).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "journal*.json"
)


def run(*command, cwd, env=None, timeout=300):
    done = subprocess.run(
        [str(word) for word in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel built from this tree and its dependencies (``local`` extra)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    dist = work / "dist"
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, ".", cwd=source)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("*.whl")
    venv.create(work / "venv", with_pip=True)
    bin_dir = work / "venv/bin"
    done = run(bin_dir / "pip", "install", "--quiet", f"{wheel}[local]", cwd=work)
    assert done.returncode == 0, done.stderr
    shutil.rmtree(source)  # from here on, only the installed package exists
    return bin_dir


@pytest.fixture
def shell(installed, tmp_path):
    """A user's shell outside any source tree, with the venv activated and nothing else set."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBE", "BOOKINFO", "PRODUCTPAGE", "CHAOSMESH", "PYTHON"))
    }
    environment["PATH"] = os.pathsep.join([str(installed), environment["PATH"]])
    environment["VIRTUAL_ENV"] = str(installed.parent)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def sh(script, timeout=300):
        return run("/bin/bash", "-c", script, cwd=elsewhere, env=environment, timeout=timeout)

    return sh


def test_the_installed_wheel_runs_the_mesh_the_demo_and_the_gate(shell, tmp_path):
    where = shell("python -c 'import chaosmesh_py; print(chaosmesh_py.__file__)'")
    assert "site-packages" in where.stdout, where.stdout + where.stderr
    assert shell("chaosmesh --version").stdout.startswith("chaosmesh, version ")
    listed = shell("chaosmesh examples")
    assert "bookinfo-ratings-delay.json" in listed.stdout, listed.stderr
    # The Bookinfo game day ships beside its experiments, which it names by relative path.
    gameday = shell('cat "$(chaosmesh examples --dir)"/bookinfo-gameday.yaml')
    assert "path: bookinfo-reviews-errors-contained.json" in gameday.stdout, gameday.stderr

    # The main job from the package alone: its default experiment is the packaged one.
    demo = shell(f"CHAOSMESH_ISTIO_CRDS={ISTIO_CRDS} python -m chaosmesh_py.localmesh.demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "20 of 20 page loads whole for jason" in demo.stdout

    state = f"--state-dir {tmp_path}/state"
    mesh = f"{state} --kubeconfig {tmp_path}/kubeconfig"
    up = shell(f"chaosmesh local up {mesh} --crds {ISTIO_CRDS}", timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        (export,) = (line.strip() for line in up.stdout.splitlines() if "export " in line)
        gate = shell(
            f"{export}\n"
            'chaosmesh gate "$(chaosmesh examples --dir)"/bookinfo-ratings-{delay,abort}.json'
            f" --journal-dir {tmp_path}/journals --json {tmp_path}/gate.json"
        )
    finally:
        down = shell(f"chaosmesh local down {mesh}", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    # Both find Bookinfo's bug (jason's page breaks): the expected verdict is a clean fail.
    assert gate.returncode == 1, gate.stdout + gate.stderr
    verdicts = json.loads((tmp_path / "gate.json").read_text())
    assert [v["outcome"] for v in verdicts] == ["fail", "fail"], gate.stdout
    for verdict in verdicts:
        assert len(verdict["reasons"]) == 1, gate.stdout
        assert verdict["reasons"][0].startswith(
            "steady state deviated after the method: probe 'page-whole-for-jason'"
        ), gate.stdout
    assert shell(f"chaosmesh local status {state}").returncode == 1
