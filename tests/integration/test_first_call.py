"""The first activity of a run imports nothing: everything it needs was loaded with its module.

A module loaded inside the first injection is time the fault lands late (client 37 builds an API
class on first use in ~100-250 ms; ``bench/first_call.py`` measures the ratio). Timing is not
asserted here, since a busy machine makes it noisy; the imports themselves are, and any new one
shows up by name.
"""

import json
import subprocess
import sys

from tests.conftest import NAMESPACE

# As under `chaos run`, which has imported chaoslib before any activity runs.
FIRST_PAIR = f"""
import json, sys
import chaoslib.exceptions
from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.rollbacks import remove_faults

before = set(sys.modules)
configuration = {{"chaosmesh_run_id": "firstcall", "chaosmesh_verify_timeout_s": 0}}
inject_abort(percentage=100, http_status=500, virtual_service="ratings",
             namespace={NAMESPACE!r}, headers={{"end-user": "jason"}},
             configuration=configuration)
remove_faults(configuration=configuration)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_first_inject_and_rollback_import_no_module(api):
    done = subprocess.run(
        [sys.executable, "-c", FIRST_PAIR], capture_output=True, text=True, timeout=60, check=True
    )
    imported = json.loads(done.stdout.splitlines()[-1])
    assert imported == [], f"imported during the first activity: {imported}"
