"""On the local mesh (real Envoy): a Flagger-like rewrite (tests/rollout_writers.py) ends the
run's fault in the data plane, and the run says so instead of claiming it live."""

import requests

from chaosmesh_py import control
from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.probes import fault_is_injected
from tests.conftest import NAMESPACE
from tests.integration.test_rollout_controllers import started_run, wait_for_loss
from tests.local.conftest import through_sidecar
from tests.rollout_writers import FlaggerLikeWriter


def test_a_rewrite_ends_the_fault_in_envoy_and_the_run_says_so(mesh):
    # Flagger owns ratings: both its "primary" and "canary" are the ratings service here.
    flagger = FlaggerLikeWriter(
        mesh.api.url,
        NAMESPACE,
        "ratings",
        primary_host="ratings",
        canary_host="ratings",
        hosts=("ratings",),
    )
    flagger.reconcile()
    mesh.sync()
    url, headers = through_sidecar(mesh, "ratings", "/ratings/0", workload="reviews-v2")
    jason = {**headers, "end-user": "jason"}
    configuration = started_run()
    try:
        report = inject_abort(
            virtual_service="ratings",
            namespace=NAMESPACE,
            http_status=503,
            percentage=100,
            headers={"end-user": "jason"},
            configuration=configuration,
        )
        assert report["effect"]["traffic_s"] is not None  # live in Envoy
        control.after_activity_control(context={}, state={}, configuration=configuration)
        assert requests.get(url, headers=jason, timeout=5).status_code == 503

        assert flagger.reconcile()
        (loss,) = wait_for_loss(configuration["chaosmesh_run_id"])
        mesh.sync()
        # Envoy follows the API: the fault is gone for jason, and nothing claims it is live.
        assert requests.get(url, headers=jason, timeout=5).status_code == 200
        assert not fault_is_injected(
            virtual_service="ratings", namespace=NAMESPACE, configuration=configuration
        )
        assert loss.by.startswith("flagger, Update at ")
        journal = {"status": "completed"}
        control.after_experiment_control(context={}, state=journal, configuration=configuration)
        (removal,) = journal["chaosmesh"]["rollback"]
        assert removal["removed"] == [] and removal["note"].endswith("nothing to remove")
    finally:
        control.cleanup_control()
