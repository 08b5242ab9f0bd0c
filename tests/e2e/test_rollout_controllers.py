"""`chaos run` while a rollout controller writes the same VirtualService (tests/rollout_writers.py),
against the API double: Argo's weights survive and the run passes; Flagger's rewrite is
reported by the run, and the run fails saying why."""

import json
import threading
import time
from datetime import datetime, timedelta

import pytest

from chaosmesh_py.istio.owner_record import OWNER_ANNOTATION_PREFIX
from tests.conftest import NAMESPACE, python_activity
from tests.e2e.test_chaos_run import LENIENT_CONTROL, SYSTEM_OK, chaos, write_experiment
from tests.integration.test_inject_rollback import read
from tests.integration.test_rollout_controllers import canary_route
from tests.rollout_writers import ArgoLikeWriter, FlaggerLikeWriter

pytestmark = pytest.mark.slow

HOLD = {
    "type": "action",
    "name": "hold",
    "provider": {"type": "process", "path": "true"},
    "pauses": {"after": 1.5},
}
STILL_INJECTED = {
    "type": "probe",
    "name": "fault-still-injected",
    "provider": {
        "type": "python",
        "module": "chaosmesh_py.faults.probes",
        "func": "fault_is_injected",
        "arguments": {"virtual_service": "reviews", "namespace": NAMESPACE},
    },
}


def abort_reviews(**arguments):
    return python_activity(
        "abort-reviews-for-jason",
        "chaosmesh_py.faults.actions",
        "inject_abort",
        virtual_service="reviews",
        namespace=NAMESPACE,
        http_status=503,
        percentage=100,
        headers={"end-user": "jason"},
        **arguments,
    )


def run(api, tmp_path, method):
    path = write_experiment(tmp_path, method, controls=[LENIENT_CONTROL], probes=[SYSTEM_OK])
    done = chaos(api, tmp_path, "run", "--journal-path", str(tmp_path / "journal.json"), path)
    return done, json.loads((tmp_path / "journal.json").read_text())


def ours_present(api):
    annotations = read(api, "reviews")["metadata"].get("annotations") or {}
    return any(key.startswith(OWNER_ANNOTATION_PREFIX) for key in annotations)


def test_a_run_beside_argo_passes_and_leaves_argo_s_latest_weights(api, tmp_path):
    canary_route(api)
    with ArgoLikeWriter(api.url, NAMESPACE, "reviews", seed=3) as argo:
        done, journal = run(
            api, tmp_path, [abort_reviews(route_name="everyone-to-v1"), HOLD, STILL_INJECTED]
        )
        time.sleep(0.3)
    assert done.returncode == 0, done.stderr
    assert journal["run"][-1]["output"] is True
    assert journal["chaosmesh"]["removed_by_another_writer"] == []
    assert argo.weights_in(read(api, "reviews")) == {"everyone-to-v1": argo.last_weights}
    assert len(argo.writes) >= 10


def test_a_run_whose_fault_flagger_rewrites_away_fails_saying_when(api, tmp_path):
    flagger = FlaggerLikeWriter(api.url, NAMESPACE, "reviews")
    flagger.reconcile()

    def rewrite_once_ours_is_there():
        deadline = time.monotonic() + 30
        while not ours_present(api) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the control follows the object from the end of the action on
        flagger.reconcile()

    writer = threading.Thread(target=rewrite_once_ours_is_there, daemon=True)
    writer.start()
    done, journal = run(api, tmp_path, [abort_reviews(), HOLD, STILL_INJECTED])
    writer.join(5)
    rewrite = flagger.rewrites[-1]

    assert done.returncode == 1, done.stderr
    summary = journal["chaosmesh"]
    (lost,) = summary["removed_by_another_writer"]
    seen_at = datetime.fromisoformat(lost["at"])
    # Seen when Flagger wrote (a watch event away; generous for a busy machine).
    assert rewrite.sent_at <= seen_at <= rewrite.answered_at + timedelta(seconds=2)
    assert lost["during_method"] is True and lost["record"] is True
    # The probe after the rewrite said False, and its result says why.
    probe = journal["run"][-1]
    assert probe["output"] is False
    assert probe["chaosmesh_removed_by_another_writer"][0]["at"] == lost["at"]
    (removal,) = summary["rollback"]
    assert removal["removed"] == [] and removal["note"].endswith("nothing to remove")
    assert lost["by"].startswith("flagger, Update at ")  # who, from managedFields
    said = f"removed by another writer ({lost['by']}) at {lost['at']}"
    (reason,) = summary["verdict"]["reasons"]
    assert said in reason
    assert said in done.stderr
    # Flagger's object stands as Flagger wrote it.
    assert read(api, "reviews")["spec"] == flagger.desired_spec(100, 0)
