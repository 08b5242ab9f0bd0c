"""The corpus for upstream faults (an owned EnvoyFilter on pods' inbound side): each bad input is
a clear error naming the field, before any request or, for pods that do not exist, before any
write; `chaosmesh validate` exits 2 and `chaos run` stops before anything is written."""

import json

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.resilience.actions import inject_upstream_fault
from tests.conftest import NAMESPACE, python_activity
from tests.e2e.test_chaos_run import CONTROL, chaos, delay_action, write_experiment
from tests.integration.test_inject_rollback import writes

ENVOY_FILTER = ("networking.istio.io/v1alpha3", "EnvoyFilter")
RATINGS = {"workload_labels": {"app": "ratings"}, "namespace": NAMESPACE}

REFUSED_BEFORE_ANY_REQUEST = [
    pytest.param({**RATINGS}, "abort_http_status/delay: give at least one of them", id="nothing"),
    pytest.param(
        {**RATINGS, "abort_http_status": 600},
        "abort_http_status: must be a whole number from 200 to 599",
        id="status-600",
    ),
    pytest.param(
        {**RATINGS, "abort_http_status": 199},
        "abort_http_status: must be a whole number from 200 to 599",
        id="status-199",
    ),
    pytest.param(
        {**RATINGS, "abort_http_status": "503"},
        "abort_http_status: must be a whole number",
        id="status-string",
    ),
    pytest.param(
        {**RATINGS, "abort_http_status": 503, "abort_percentage": 0},
        "abort_percentage: must be a percentage above 0",
        id="percentage-0",
    ),
    pytest.param(
        {**RATINGS, "abort_http_status": 503, "abort_percentage": 150},
        "abort_percentage: must be a percentage above 0, up to 100",
        id="percentage-150",
    ),
    pytest.param(
        {**RATINGS, "delay": "2s", "delay_percentage": -5},
        "delay_percentage: must be a percentage",
        id="delay-percentage-negative",
    ),
    pytest.param({**RATINGS, "delay": "0s"}, "delay: '0s' is shorter than 1ms", id="delay-zero"),
    pytest.param({**RATINGS, "delay": "-1s"}, "delay: '-1s' is negative", id="delay-negative"),
    pytest.param({**RATINGS, "delay": "soon"}, "delay: 'soon' is not a duration", id="delay-words"),
    pytest.param(
        {**RATINGS, "delay": "2s", "port": 0},
        "port: must be a whole number from 1 to 65535",
        id="port-0",
    ),
    pytest.param(
        {**RATINGS, "delay": "2s", "port": 70000},
        "port: must be a whole number from 1 to 65535",
        id="port-70000",
    ),
    pytest.param(
        {**RATINGS, "workload_labels": {}, "delay": "2s"},
        "workload_labels: must be a non-empty map",
        id="labels-empty",
    ),
    pytest.param(
        {**RATINGS, "workload_labels": "app=ratings", "delay": "2s"},
        "workload_labels: must be a non-empty map",
        id="labels-string",
    ),
    pytest.param(
        {**RATINGS, "workload_labels": {"app": 1}, "delay": "2s"},
        "workload_labels.app: must be a label value",
        id="label-value-number",
    ),
    pytest.param(
        {**RATINGS, "workload_labels": {"bad key!": "x"}, "delay": "2s"},
        "is not a label name",
        id="label-name",
    ),
    pytest.param(
        {**RATINGS, "namespace": "istio-system", "delay": "2s"},
        "namespace: 'istio-system' is protected",
        id="protected-namespace",
    ),
]


@pytest.mark.parametrize(("arguments", "expected"), REFUSED_BEFORE_ANY_REQUEST)
def test_refused_before_any_request(api, configuration, arguments, expected):
    with pytest.raises(ActivityFailed) as caught:
        inject_upstream_fault(configuration=configuration, **arguments)
    assert expected in str(caught.value)
    assert api.request_log == []


def test_a_workload_that_does_not_exist_is_refused_before_any_write(api, configuration):
    api.request_log.clear()
    with pytest.raises(ActivityFailed) as caught:
        inject_upstream_fault(
            workload_labels={"app": "ratings", "version": "v9"},
            namespace=NAMESPACE,
            abort_http_status=503,
            configuration=configuration,
        )
    message = str(caught.value)
    assert "workload_labels: no Pod in namespace" in message
    assert "app=ratings,version=v9" in message
    assert writes(api) == []
    assert api.list(*ENVOY_FILTER) == []


def _upstream_action(**arguments):
    return python_activity(
        "upstream-ratings",
        "chaosmesh_py.resilience.actions",
        "inject_upstream_fault",
        **{"workload_labels": {"app": "ratings"}, "namespace": "${namespace}", **arguments},
    )


def test_validate_exits_2_naming_the_field(tmp_path):
    path = write_experiment(
        tmp_path, [delay_action(), _upstream_action(abort_http_status=700)], controls=(CONTROL,)
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "upstream-ratings: abort_http_status: must be a whole number from 200 to 599" in (
        result.output
    )
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_chaos_run_stops_before_anything_is_written(api, tmp_path):
    path = write_experiment(
        tmp_path, [delay_action(), _upstream_action(delay="0s")], controls=(CONTROL,)
    )
    api.request_log.clear()
    journal_path = tmp_path / "journal.json"
    done = chaos(api, tmp_path, "run", "--journal-path", str(journal_path), str(path))
    assert done.returncode == 1, done.stderr
    assert "upstream-ratings: delay: '0s' is shorter than 1ms" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert json.loads(journal_path.read_text())["run"] == []
    assert writes(api) == []
    assert api.list(*ENVOY_FILTER) == []
