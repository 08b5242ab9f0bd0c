"""The corpus for policy edits: bad timeouts, retries, connection pools and outlier detection.

Three layers, as for faults and routing edits:
- refused before any request (the activity itself, and `chaosmesh validate`: exit 2, the field
  named), because the arguments alone are wrong: zero, negative or malformed durations,
  attempts out of range, retry conditions Istio does not know, connection-pool values Istio
  rejects (or that mean "no limit" where a limit was meant), misspelt fields;
- refused before any write, because the cluster says so: no such VirtualService,
  DestinationRule, route or subset, no DestinationRule for a host (none is created);
- `chaos run` with a bad policy edit later in the method: the control stops the run before
  anything is written (exit 1, the journal's run empty).
Every case leaves every VirtualService and DestinationRule byte for byte as it was.
"""

import json

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.resilience.actions import (
    set_connection_pool,
    set_outlier_detection,
    set_retries,
    set_route_timeout,
)
from chaosmesh_py.resilience.rollbacks import restore_policies
from tests.badinput.test_actions import refused
from tests.conftest import NAMESPACE, python_activity
from tests.e2e.test_chaos_run import CONTROL, chaos, delay_action, write_experiment
from tests.integration.test_inject_rollback import writes

V1 = "networking.istio.io/v1"
REVIEWS = {"virtual_service": "reviews", "namespace": NAMESPACE}
RULE = {"destination_rule": "reviews", "namespace": NAMESPACE}
TIMEOUT = {**REVIEWS, "timeout": "0.5s"}
POOL = {**RULE, "connection_pool": {"tcp": {"maxConnections": 1}}}
EJECT = {**RULE, "outlier_detection": {"consecutive5xxErrors": 1, "interval": "1s"}}


def snapshot(api):
    """Every VirtualService and DestinationRule, exactly as the API server holds them."""
    return json.dumps(
        [api.list(V1, "VirtualService"), api.list(V1, "DestinationRule")], sort_keys=True
    )


def pool(**settings):
    return {**RULE, "connection_pool": settings}


def outlier(**settings):
    return {**RULE, "outlier_detection": settings}


REFUSED_BEFORE_ANY_REQUEST = [
    refused(
        "timeout-zero", set_route_timeout, {**TIMEOUT, "timeout": "0s"}, "timeout: '0s' is zero"
    ),
    refused(
        "timeout-negative",
        set_route_timeout,
        {**TIMEOUT, "timeout": "-1s"},
        "timeout: '-1s' is negative",
    ),
    refused(
        "timeout-number",
        set_route_timeout,
        {**TIMEOUT, "timeout": 0.5},
        "timeout: must be a duration string, got float 0.5",
    ),
    refused(
        "timeout-no-unit",
        set_route_timeout,
        {**TIMEOUT, "timeout": "500"},
        "timeout: '500' is not a duration",
    ),
    refused(
        "timeout-sub-millisecond",
        set_route_timeout,
        {**TIMEOUT, "timeout": "500us"},
        "timeout: '500us' is shorter than 1ms",
    ),
    refused(
        "attempts-negative",
        set_retries,
        {**REVIEWS, "attempts": -1},
        "attempts: must be a whole number from 0 to 100, got -1",
    ),
    refused(
        "attempts-absurd",
        set_retries,
        {**REVIEWS, "attempts": 10_000},
        "attempts: must be a whole number from 0 to 100, got 10000",
    ),
    refused(
        "attempts-fraction",
        set_retries,
        {**REVIEWS, "attempts": 2.5},
        "attempts: must be a whole number from 0 to 100, got 2.5",
    ),
    refused(
        "attempts-bool",
        set_retries,
        {**REVIEWS, "attempts": True},
        "attempts: must be a whole number from 0 to 100, got True",
    ),
    refused(
        "attempts-string",
        set_retries,
        {**REVIEWS, "attempts": "3"},
        "attempts: must be a whole number from 0 to 100, got '3'",
    ),
    refused(
        "per-try-without-attempts",
        set_retries,
        {**REVIEWS, "attempts": 0, "per_try_timeout": "1s"},
        "per_try_timeout: is set while attempts is 0",
    ),
    refused(
        "retry-on-without-attempts",
        set_retries,
        {**REVIEWS, "attempts": 0, "retry_on": "5xx"},
        "retry_on: is set while attempts is 0",
    ),
    refused(
        "per-try-zero",
        set_retries,
        {**REVIEWS, "attempts": 2, "per_try_timeout": "0s"},
        "per_try_timeout: '0s' is shorter than 1ms",
    ),
    refused(
        "retry-on-unknown",
        set_retries,
        {**REVIEWS, "attempts": 2, "retry_on": "5xx,bogus"},
        "retry_on: 'bogus' is not a retry condition Istio knows",
    ),
    refused(
        "retry-on-unknown-status",
        set_retries,
        {**REVIEWS, "attempts": 2, "retry_on": ["599"]},
        "retry_on: '599' is not a retry condition",
    ),
    refused(
        "retry-on-empty",
        set_retries,
        {**REVIEWS, "attempts": 2, "retry_on": []},
        "retry_on: must be retry conditions",
    ),
    refused(
        "pool-not-a-mapping",
        set_connection_pool,
        {**RULE, "connection_pool": 1},
        "connection_pool: must be Istio's connection pool settings",
    ),
    refused(
        "pool-empty",
        set_connection_pool,
        {**RULE, "connection_pool": {}},
        "connection_pool: must be Istio's connection pool settings",
    ),
    refused(
        "pool-negative",
        set_connection_pool,
        pool(tcp={"maxConnections": -1}),
        "connection_pool.tcp.maxConnections: -1 is not a whole number >= 0",
    ),
    refused(
        "pool-zero-means-unlimited",
        set_connection_pool,
        pool(http={"http1MaxPendingRequests": 0}),
        "connection_pool.http.http1MaxPendingRequests: 0 means no limit to Istio",
    ),
    refused(
        "pool-beyond-int32",
        set_connection_pool,
        pool(http={"http2MaxRequests": 2**31}),
        "connection_pool.http.http2MaxRequests: 2147483648 is not a whole number",
    ),
    refused(
        "pool-string-count",
        set_connection_pool,
        pool(tcp={"maxConnections": "1"}),
        "connection_pool.tcp.maxConnections: '1' is not a whole number",
    ),
    refused(
        "pool-misspelt",
        set_connection_pool,
        pool(tcp={"maxConnection": 1}),
        "connection_pool.tcp.maxConnection: Istio has no such field",
    ),
    refused(
        "pool-unknown-section",
        set_connection_pool,
        pool(grpc={"maxConnections": 1}),
        "connection_pool.grpc: Istio has no such field",
    ),
    refused(
        "pool-connect-timeout",
        set_connection_pool,
        pool(tcp={"connectTimeout": "0.1ms"}),
        "connection_pool.tcp.connectTimeout: '0.1ms' is shorter than 1ms",
    ),
    refused(
        "pool-h2-policy",
        set_connection_pool,
        pool(http={"h2UpgradePolicy": "ALWAYS"}),
        "connection_pool.http.h2UpgradePolicy: 'ALWAYS' is not one of",
    ),
    refused(
        "outlier-empty",
        set_outlier_detection,
        {**RULE, "outlier_detection": {}},
        "outlier_detection: must be Istio's outlier detection settings",
    ),
    refused(
        "outlier-percent",
        set_outlier_detection,
        outlier(maxEjectionPercent=150),
        "outlier_detection.maxEjectionPercent: 150 is not a whole percentage",
    ),
    refused(
        "outlier-interval",
        set_outlier_detection,
        outlier(interval="soon"),
        "outlier_detection.interval: 'soon' is not a duration",
    ),
    refused(
        "outlier-negative-count",
        set_outlier_detection,
        outlier(consecutive5xxErrors=-2),
        "outlier_detection.consecutive5xxErrors: -2 is not a whole number >= 0",
    ),
    refused(
        "outlier-misspelt",
        set_outlier_detection,
        outlier(consecutive5xxErrorz=1),
        "outlier_detection.consecutive5xxErrorz: Istio has no such field",
    ),
    refused(
        "outlier-local-origin",
        set_outlier_detection,
        outlier(consecutiveLocalOriginFailures=2),
        "needs splitExternalLocalOriginErrors: true",
    ),
    refused(
        "rule-and-host",
        set_connection_pool,
        {**POOL, "host": "reviews"},
        "destination_rule/host: give exactly one of them",
    ),
    refused(
        "rule-name",
        set_connection_pool,
        {**POOL, "destination_rule": "Reviews"},
        "destination_rule: 'Reviews' is not a resource name",
    ),
    refused(
        "subset-name",
        set_outlier_detection,
        {**EJECT, "subset": "v 1"},
        "subset: 'v 1' is not a subset name",
    ),
    refused(
        "vs-and-host",
        set_route_timeout,
        {**TIMEOUT, "host": "reviews"},
        "virtual_service/host: give exactly one of them",
    ),
    refused(
        "route-name-and-index",
        set_retries,
        {**REVIEWS, "attempts": 1, "route_name": "x", "route_index": 0},
        "route_name/route_index: give one of them, not both",
    ),
    refused(
        "protected-namespace",
        set_connection_pool,
        {**POOL, "namespace": "istio-system"},
        "namespace: 'istio-system' is protected",
    ),
    refused(
        "other-runs-flag",
        set_route_timeout,
        {**TIMEOUT, "allow_other_runs": "yes"},
        "allow_other_runs: must be true or false",
    ),
]


@pytest.mark.parametrize(("activity", "arguments", "expected"), REFUSED_BEFORE_ANY_REQUEST)
def test_refused_before_any_request(api, configuration, activity, arguments, expected):
    with pytest.raises(ActivityFailed) as caught:
        activity(configuration=configuration, **arguments)
    assert expected in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert api.request_log == []


def _no_reviews_rule(api):
    api.delete(V1, "DestinationRule", NAMESPACE, "reviews")


REFUSED_BEFORE_ANY_WRITE = [
    pytest.param(
        (
            set_route_timeout,
            {**TIMEOUT, "virtual_service": "nope"},
            None,
            "virtual_service: no VirtualService 'nope' in namespace 'bookinfo'",
        ),
        id="unknown-virtual-service",
    ),
    pytest.param(
        (
            set_retries,
            {**REVIEWS, "attempts": 1, "route_name": "nope"},
            None,
            "route_name: VirtualService bookinfo/reviews has no route named 'nope'",
        ),
        id="unknown-route",
    ),
    pytest.param(
        (
            set_route_timeout,
            {**TIMEOUT, "route_index": 7},
            None,
            "route_index: VirtualService bookinfo/reviews has no route 7",
        ),
        id="route-index-out-of-range",
    ),
    pytest.param(
        (
            set_connection_pool,
            {**POOL, "destination_rule": "nope"},
            None,
            "destination_rule: no DestinationRule 'nope' in namespace 'bookinfo' (existing: ",
        ),
        id="unknown-destination-rule",
    ),
    pytest.param(
        (
            set_outlier_detection,
            {**EJECT, "subset": "v9"},
            None,
            "subset: DestinationRule bookinfo/reviews has no subset 'v9' (its subsets: v1, v2, v3)",
        ),
        id="unknown-subset",
    ),
    pytest.param(
        (
            set_connection_pool,
            {
                "host": "reviews",
                "namespace": NAMESPACE,
                "connection_pool": {"tcp": {"maxConnections": 1}},
            },
            _no_reviews_rule,
            "host: no DestinationRule in namespace 'bookinfo' is for host 'reviews'; "
            "chaosmesh does not create one",
        ),
        id="no-destination-rule-for-host",
    ),
]


@pytest.mark.parametrize("case", REFUSED_BEFORE_ANY_WRITE)
def test_refused_before_any_write(api, configuration, case):
    activity, arguments, setup, expected = case
    if setup is not None:
        setup(api)
    before = snapshot(api)
    api.request_log.clear()
    with pytest.raises(ActivityFailed) as caught:
        activity(configuration=configuration, **arguments)
    assert expected in str(caught.value)
    assert writes(api) == []
    assert snapshot(api) == before


def test_restoring_nothing_is_safe_and_a_bad_name_is_refused(api, configuration):
    assert (
        restore_policies(
            virtual_service="reviews", namespace=NAMESPACE, configuration=configuration
        )["restored"][0]["restored"]
        == []
    )
    with pytest.raises(ActivityFailed, match="virtual_service/destination_rule: give one of them"):
        restore_policies(virtual_service="a", destination_rule="b", configuration=configuration)
    assert writes(api) == []


def _policy_action(func, **arguments):
    return python_activity(
        f"{func}-reviews",
        "chaosmesh_py.resilience.actions",
        func,
        **{"namespace": "${namespace}", **arguments},
    )


VALIDATE_CASES = [
    pytest.param(
        _policy_action("set_route_timeout", virtual_service="reviews", timeout="0s"),
        "set_route_timeout-reviews: timeout: '0s' is zero",
        id="timeout-zero",
    ),
    pytest.param(
        _policy_action("set_retries", virtual_service="reviews", attempts=-1),
        "set_retries-reviews: attempts: must be a whole number from 0 to 100, got -1",
        id="attempts-negative",
    ),
    pytest.param(
        _policy_action("set_retries", virtual_service="reviews", attempts=2, retry_on="5xx,teapot"),
        "set_retries-reviews: retry_on: 'teapot' is not a retry condition Istio knows",
        id="retry-on-unknown",
    ),
    pytest.param(
        _policy_action(
            "set_connection_pool",
            destination_rule="reviews",
            connection_pool={"tcp": {"maxConnections": 0}},
        ),
        "set_connection_pool-reviews: connection_pool.tcp.maxConnections: 0 means no limit",
        id="pool-zero",
    ),
]


@pytest.mark.parametrize(("action", "expected"), VALIDATE_CASES)
def test_validate_exits_2_naming_the_field(tmp_path, action, expected):
    path = write_experiment(tmp_path, [delay_action(), action], controls=(CONTROL,))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_chaos_run_stops_before_anything_is_written(api, tmp_path):
    action = _policy_action(
        "set_connection_pool",
        destination_rule="reviews",
        connection_pool={"http": {"http1MaxPendingRequests": -1}},
    )
    path = write_experiment(tmp_path, [delay_action(), action], controls=(CONTROL,))
    before = snapshot(api)
    api.request_log.clear()
    journal_path = tmp_path / "journal.json"
    done = chaos(api, tmp_path, "run", "--journal-path", str(journal_path), str(path))
    assert done.returncode == 1, done.stderr
    assert (
        "connection_pool.http.http1MaxPendingRequests: -1 is not a whole number >= 0" in done.stderr
    )
    assert "nothing was injected" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert json.loads(journal_path.read_text())["run"] == []
    assert writes(api) == []
    assert snapshot(api) == before
