"""Upstream faults through the Kubernetes API double with the real `kubernetes` client, as on a
cluster: the owned EnvoyFilter created exactly (ledger first), selected Pods checked, removed
whole by the rollback, the control and `chaosmesh rollback --run`, others' EnvoyFilters kept."""

import json

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.control import roll_back
from chaosmesh_py.engine import ledger
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.istio.inbound_fault import UpstreamFault
from chaosmesh_py.resilience.actions import inject_upstream_fault
from chaosmesh_py.resilience.rollbacks import remove_upstream_faults
from tests.conftest import NAMESPACE, leftover_faults
from tests.integration.test_cleanup import chaosmesh
from tests.integration.test_inject_rollback import writes

ENVOY_FILTER = ("networking.istio.io/v1alpha3", "EnvoyFilter")


def pod(api, name, **labels):
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "docker.io/istio/examples:1"}]},
        }
    )


@pytest.fixture
def pods(api):
    pod(api, "reviews-v3-7d9f-a1", app="reviews", version="v3")
    pod(api, "reviews-v3-7d9f-b2", app="reviews", version="v3")
    pod(api, "reviews-v1-5c4b-c3", app="reviews", version="v1")
    return api


def envoy_filters(api):
    return api.list(*ENVOY_FILTER)


def inject(configuration, **extra):
    return inject_upstream_fault(
        workload_labels={"app": "reviews", "version": "v3"},
        namespace=NAMESPACE,
        abort_http_status=503,
        abort_percentage=50,
        configuration=configuration,
        **extra,
    )


def test_the_envoy_filter_is_created_exactly_after_its_ledger_intent(
    pods, configuration, ledger_dir
):
    report = inject(configuration, port=9080)
    (created,) = envoy_filters(pods)
    assert report["envoy_filter"] == f"{NAMESPACE}/{created['metadata']['name']}"
    assert report["workloads"] == ["reviews-v3-7d9f-a1", "reviews-v3-7d9f-b2"]
    expected = UpstreamFault(
        {"app": "reviews", "version": "v3"}, abort_http_status=503, abort_percentage=50, port=9080
    ).envoy_filter_spec()
    assert created["spec"] == expected
    assert created["metadata"]["name"].startswith("chaosmesh-")
    # On a cluster, without verify_url, the result says the effect was not checked.
    assert report["effect"]["verified"] is False
    assert "verify_url" in report["effect"]["checked"]
    run_id = configuration["chaosmesh_run_id"]
    intent, outcome = ledger.Ledger(ledger_dir, run_id).entries()[:2]
    assert (intent.event, intent.op) == ("intent", "inject")
    assert (outcome.event, outcome.detail["result"]) == ("outcome", "applied")

    removed = remove_upstream_faults(namespace=NAMESPACE, configuration=configuration)
    (entry,) = removed["removed"]
    assert entry["deleted"] is True
    assert entry["what"] == (
        "aborts 50 % of requests to pods app=reviews,version=v3 port 9080 with 503 (inbound)"
    )
    assert envoy_filters(pods) == []
    assert leftover_faults(pods) == []
    # Again: nothing of the run is left, nothing else is touched.
    assert remove_upstream_faults(namespace=NAMESPACE, configuration=configuration)["removed"] == []


def test_another_writers_envoy_filter_on_the_same_pods_is_never_touched(pods, configuration):
    theirs = {
        "apiVersion": ENVOY_FILTER[0],
        "kind": "EnvoyFilter",
        "metadata": {"name": "team-lua", "namespace": NAMESPACE},
        "spec": UpstreamFault({"app": "reviews"}, delay_ms=5).envoy_filter_spec(),
    }
    pods.create(theirs)
    before = json.dumps(pods.get(*ENVOY_FILTER, NAMESPACE, "team-lua"), sort_keys=True)
    inject(configuration)
    assert len(envoy_filters(pods)) == 2
    summary = roll_back(run_for(configuration))
    assert summary["rollback_complete"] is True
    assert [f["metadata"]["name"] for f in envoy_filters(pods)] == ["team-lua"]
    assert json.dumps(pods.get(*ENVOY_FILTER, NAMESPACE, "team-lua"), sort_keys=True) == before


def test_chaosmesh_rollback_of_the_run_deletes_and_describes_it(pods, configuration):
    inject(configuration)
    done = chaosmesh("rollback", "--run", configuration["chaosmesh_run_id"])
    assert done.returncode == 0, done.stderr
    assert "deleted 1 object(s)" in done.stdout
    assert (
        "deleted (aborts 50 % of requests to pods app=reviews,version=v3 with 503 (inbound))"
        in (done.stdout)
    )
    assert envoy_filters(pods) == []


def test_labels_that_select_no_pod_list_what_the_pods_carry(pods, configuration):
    pods.request_log.clear()
    with pytest.raises(ActivityFailed) as caught:
        inject_upstream_fault(
            workload_labels={"app": "reviews", "version": "v9"},
            namespace=NAMESPACE,
            delay="1s",
            configuration=configuration,
        )
    message = str(caught.value)
    assert (
        "workload_labels: no Pod in namespace 'bookinfo' carries app=reviews,version=v9" in message
    )
    assert "app=reviews,version=v1; app=reviews,version=v3" in message
    assert writes(pods) == []
    assert envoy_filters(pods) == []
