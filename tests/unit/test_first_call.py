"""Where the kubernetes client's import cost lands: before a run, never in its first activity.

Chaos Toolkit imports an experiment's activity modules while validating it, then runs it; the
client loaded inside the first injection made it ~100 ms slower than the next ones (the ratio
itself is measured by ``bench/first_call.py``). The commands that need no cluster stay light.
"""

import json
import subprocess
import sys

import pytest

CUSTOM_OBJECTS = "kubernetes.client.api.custom_objects_api"


def loaded_after(statement):
    """Which of the kubernetes modules a fresh interpreter holds after ``statement``."""
    script = (
        f"import sys; {statement}; import json; "
        f"print(json.dumps(['kubernetes' in sys.modules, {CUSTOM_OBJECTS!r} in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    ["chaosmesh_py.faults.actions", "chaosmesh_py.faults.rollbacks", "chaosmesh_py.faults.probes"],
)
def test_importing_a_fault_activity_module_loads_the_client_the_activities_use(module):
    assert loaded_after(f"import {module}") == [True, True]


@pytest.mark.parametrize(
    "statement",
    [
        "import chaosmesh_py",  # `chaos discover` and `chaos info` start here
        "import chaosmesh_py.cli",  # `chaosmesh --help`, `chaosmesh local up`
        "from chaosmesh_py.cli import main; main(['--help'], standalone_mode=False)",
    ],
)
def test_what_needs_no_cluster_does_not_load_the_client(statement):
    assert loaded_after(statement) == [False, False]
