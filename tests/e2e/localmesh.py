"""The local mesh as users start it for an experiment: `chaosmesh local up`, the variables it
prints, `chaosmesh local down` at the end."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chaosmesh_py.localmesh import lifecycle
from tests.conftest import ISTIO_CRDS

BIN = Path(sys.executable).parent


@contextlib.contextmanager
def running_mesh(work: Path, *up_options: str) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """(the environment an experiment runs in, the mesh's status) while the mesh runs."""
    mesh = ["--state-dir", work / "state", "--kubeconfig", work / "kubeconfig"]
    environment = {**os.environ, "CHAOSMESH_ISTIO_CRDS": str(ISTIO_CRDS)}
    up = subprocess.run(
        [BIN / "chaosmesh", "local", "up", *up_options, *mesh],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = lifecycle.status(work / "state")
        yield (
            {
                **{k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "PROMETHEUS"))},
                **lifecycle.experiment_environment(status, work / "kubeconfig"),
            },
            status,
        )
    finally:
        subprocess.run(
            [BIN / "chaosmesh", "local", "down", *mesh], check=False, timeout=120, env=environment
        )
