"""Torture on the Kubernetes API double: `chaos run` killed at random moments (tests/torture.py)."""

import os

import pytest

from chaosmesh_py.localmesh.apiserver import ApiFault
from tests import torture
from tests.e2e.test_chaos_run import environment

pytestmark = pytest.mark.slow

TRIALS_PER_SIGNAL = int(os.environ.get("CHAOSMESH_TORTURE_TRIALS", "8"))


def test_no_fault_survives_a_killed_run(api, tmp_path, ledger_dir):
    # Slower writes widen the windows a kill can land in: mid-write, mid-rollback.
    api.inject(ApiFault(method="PATCH", delay_s=0.05, times=1_000_000))
    env = {**environment(api, tmp_path), "CHAOSMESH_LEDGER_DIR": str(ledger_dir)}
    results = torture.torture(api, env, tmp_path, TRIALS_PER_SIGNAL)
    print(torture.summary(results))
    failures = [t for t in results if t.leftovers or t.mismatches]
    assert not failures, f"{torture.summary(results)}\n{failures}"
    # The rollout controller wrote beside the runs, its weights kept (no mismatch above).
    assert sum(t.controller_writes for t in results) >= len(results)
    # The kills must have hit runs with faults in place, or this proves nothing.
    for name in torture.SIGNALS:
        assert any(t.faults_at_kill for t in results if t.signal_name == name), name
    # ... and some with security changes in place (an override, an owned DENY).
    assert any(t.security_at_kill for t in results)
