"""On the local mesh: killed runs leave nothing (tests/torture.py), and expired faults are reaped
by the mesh itself, in the API and in Envoy."""

import os
import time

import pytest
import requests

from chaosmesh_py.faults.actions import inject_abort
from tests import torture
from tests.conftest import NAMESPACE, leftover_faults
from tests.e2e.test_chaos_run import environment
from tests.local.conftest import through_sidecar

TRIALS_PER_SIGNAL = int(os.environ.get("CHAOSMESH_TORTURE_TRIALS_LOCAL", "4"))


@pytest.mark.slow
def test_no_fault_survives_a_killed_run_on_the_local_mesh(mesh, tmp_path, ledger_dir):
    env = {**environment(mesh.api, tmp_path), "CHAOSMESH_LEDGER_DIR": str(ledger_dir)}
    results = torture.torture(mesh.api, env, tmp_path, TRIALS_PER_SIGNAL)
    print(torture.summary(results))
    failures = [t for t in results if t.leftovers or t.mismatches]
    assert not failures, f"{torture.summary(results)}\n{failures}"
    assert sum(1 for t in results if t.faults_at_kill) >= len(torture.SIGNALS)
    # The rollout controller wrote beside the runs, its weights kept (no mismatch above).
    assert sum(t.controller_writes for t in results) >= len(results)
    # Envoy follows the API: ratings answers as before for jason.
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")
    assert requests.get(url, headers={**headers, "end-user": "jason"}, timeout=5).ok


def test_the_local_mesh_reaps_an_expired_fault_by_itself(mesh):
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0")
    inject_abort(
        virtual_service="ratings",
        namespace=NAMESPACE,
        http_status=503,
        percentage=100,
        configuration={"chaosmesh_run_id": "expiring", "chaosmesh_ttl_s": 1},
    )
    assert requests.get(url, headers=headers, timeout=5).status_code == 503
    deadline = time.monotonic() + 1 + 3 * mesh.reap_interval_s + 2
    while leftover_faults(mesh.api) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leftover_faults(mesh.api), "the reaper left an expired fault"
    mesh.sync()
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
