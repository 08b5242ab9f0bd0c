"""The corpus for routing edits: bad weights, subsets, hosts and mirror percentages.

Three layers, as for faults:
- refused before any request (the activity itself, and ``chaosmesh validate`` / ``chaosmesh
  gate``: exit 2, the field named), because the arguments alone are wrong;
- refused before any write, because the cluster says so (an unknown subset lists those the
  DestinationRule defines; an unknown host lists the known ones; no DestinationRule says so);
- ``chaos run`` with a bad routing action later in the method: the control stops the run before
  anything is written.
Every case leaves every VirtualService on the API server byte for byte as it was.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.traffic.actions import mirror_traffic, route_to_version, shift_traffic
from tests.badinput.test_actions import refused, snapshot
from tests.conftest import NAMESPACE, python_activity
from tests.e2e.test_chaos_run import CONTROL, chaos, delay_action, environment, write_experiment
from tests.integration.test_inject_rollback import writes
from tests.integration.test_traffic_edits import shadow_entry

V1 = "networking.istio.io/v1"
REVIEWS = {"virtual_service": "reviews", "namespace": NAMESPACE}
SHIFT = {**REVIEWS, "weights": {"v1": 90, "v3": 10}}
DARK = {**REVIEWS, "subset": "v2", "headers": {"end-user": "jason"}}
MIRROR = {**REVIEWS, "percentage": 100, "subset": "v3"}


REFUSED_BEFORE_ANY_REQUEST = [
    refused(
        "weights-sum-110",
        shift_traffic,
        {**SHIFT, "weights": {"v1": 90, "v3": 20}},
        "weights: the weights sum to 110, not 100",
    ),
    refused(
        "weights-sum-99",
        shift_traffic,
        {**SHIFT, "weights": {"v1": 90, "v3": 9}},
        "weights: the weights sum to 99, not 100",
    ),
    refused(
        "weight-negative",
        shift_traffic,
        {**SHIFT, "weights": {"v1": 110, "v3": -10}},
        "weights.v1: 110 is outside 0-100",
    ),
    refused(
        "weight-negative-first",
        shift_traffic,
        {**SHIFT, "weights": {"v3": -10, "v1": 110}},
        "weights.v3: -10 is outside 0-100",
    ),
    refused(
        "weight-fraction",
        shift_traffic,
        {**SHIFT, "weights": {"v1": 89.5, "v3": 10.5}},
        "weights.v1: must be a whole percentage, got float 89.5",
    ),
    refused(
        "weight-integral-float",
        shift_traffic,
        {**SHIFT, "weights": {"v1": 90.0, "v3": 10}},
        "write it as a whole number: 90",
    ),
    refused(
        "weight-string",
        shift_traffic,
        {**SHIFT, "weights": {"v1": "90", "v3": 10}},
        "weights.v1: must be a whole percentage, got str '90'",
    ),
    refused(
        "weight-bool",
        shift_traffic,
        {**SHIFT, "weights": {"v1": True, "v3": 99}},
        "weights.v1: must be a whole percentage, got bool True",
    ),
    refused(
        "weights-all-zero",
        shift_traffic,
        {**SHIFT, "weights": {"v1": 0, "v3": 0}},
        "weights: the weights sum to 0, not 100",
    ),
    refused("weights-a-list", shift_traffic, {**SHIFT, "weights": [90, 10]}, "weights: must map"),
    refused("weights-empty", shift_traffic, {**SHIFT, "weights": {}}, "weights: must map"),
    refused(
        "weights-bad-subset-name",
        shift_traffic,
        {**SHIFT, "weights": {"v_1": 100}},
        "weights: 'v_1' is not a subset name",
    ),
    refused(
        "subset-not-a-name",
        route_to_version,
        {**DARK, "subset": "v 2"},
        "subset: 'v 2' is not a subset name",
    ),
    refused("subset-a-number", route_to_version, {**DARK, "subset": 2}, "subset: 2 is not"),
    refused(
        "destination-host-wildcard",
        route_to_version,
        {**DARK, "destination_host": "*.bookinfo.svc.cluster.local"},
        "destination_host: '*.bookinfo.svc.cluster.local' is a wildcard",
    ),
    refused(
        "mirror-percentage-0",
        mirror_traffic,
        {**MIRROR, "percentage": 0},
        "percentage: 0 is outside (0, 100]",
    ),
    refused(
        "mirror-percentage-101",
        mirror_traffic,
        {**MIRROR, "percentage": 101},
        "percentage: 101 is outside (0, 100]",
    ),
    refused(
        "mirror-percentage-negative",
        mirror_traffic,
        {**MIRROR, "percentage": -5},
        "percentage: -5 is outside (0, 100]",
    ),
    refused(
        "mirror-percentage-string",
        mirror_traffic,
        {**MIRROR, "percentage": "50"},
        "percentage: must be a number, got str",
    ),
    refused(
        "mirror-nowhere",
        mirror_traffic,
        {**REVIEWS, "percentage": 10},
        "subset/mirror_host: say where to mirror to",
    ),
    refused(
        "mirror-host-empty",
        mirror_traffic,
        {**REVIEWS, "percentage": 10, "mirror_host": ""},
        "mirror_host: must be a host name",
    ),
    refused(
        "route-name-and-index",
        route_to_version,
        {**DARK, "route_name": "x", "route_index": 0},
        "route_name/route_index: give one of them, not both",
    ),
    refused(
        "headers-not-a-mapping",
        shift_traffic,
        {**SHIFT, "headers": "jason"},
        "headers: must be a mapping",
    ),
    refused(
        "protected-namespace",
        route_to_version,
        {**DARK, "namespace": "istio-system"},
        "namespace: 'istio-system' is protected",
    ),
]


@pytest.mark.parametrize(("activity", "arguments", "expected"), REFUSED_BEFORE_ANY_REQUEST)
def test_refused_before_any_request(api, configuration, activity, arguments, expected):
    with pytest.raises(ActivityFailed) as caught:
        activity(configuration=configuration, **arguments)
    assert expected in str(caught.value)
    assert api.request_log == []


def _no_reviews_rule(api):
    api.delete(V1, "DestinationRule", NAMESPACE, "reviews")


def _reviews_rule_elsewhere_private(api):
    """The only rule for reviews is in another namespace and exported to it alone."""
    _no_reviews_rule(api)
    api.create_namespace("platform")
    api.create(
        {
            "apiVersion": V1,
            "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "platform"},
            "spec": {
                "host": f"reviews.{NAMESPACE}.svc.cluster.local",
                "exportTo": ["."],
                "subsets": [{"name": "v2", "labels": {"version": "v2"}}],
            },
        }
    )


REFUSED_BEFORE_ANY_WRITE = [
    pytest.param(
        (
            route_to_version,
            {**DARK, "subset": "v9"},
            None,
            "TargetNotFound: subset: host reviews.bookinfo.svc.cluster.local has no subset 'v9' "
            "(DestinationRule bookinfo/reviews defines v1, v2, v3)",
        ),
        id="unknown-subset",
    ),
    pytest.param(
        (
            shift_traffic,
            {**SHIFT, "weights": {"v1": 90, "v4": 10}},
            None,
            "weights: host reviews.bookinfo.svc.cluster.local has no subset 'v4'",
        ),
        id="unknown-weighted-subset",
    ),
    pytest.param(
        (
            mirror_traffic,
            {**MIRROR, "subset": "shadow"},
            None,
            "subset: host reviews.bookinfo.svc.cluster.local has no subset 'shadow'",
        ),
        id="unknown-mirror-subset",
    ),
    pytest.param(
        (
            shift_traffic,
            SHIFT,
            _no_reviews_rule,
            "weights: no DestinationRule defines subsets for reviews.bookinfo.svc.cluster.local "
            "(searched namespaces bookinfo, istio-system)",
        ),
        id="no-destination-rule",
    ),
    pytest.param(
        (
            route_to_version,
            DARK,
            _reviews_rule_elsewhere_private,
            "subset: no DestinationRule defines subsets for reviews.bookinfo.svc.cluster.local",
        ),
        id="destination-rule-not-exported-here",
    ),
    pytest.param(
        (
            route_to_version,
            {**DARK, "destination_host": "reviews-next"},
            shadow_entry,
            "destination_host: unknown host 'reviews-next' "
            "(reviews-next.bookinfo.svc.cluster.local): no Service or ServiceEntry in namespace "
            "'bookinfo' has it (known: shadow.example.com)",
        ),
        id="unknown-destination-host",
    ),
    pytest.param(
        (
            mirror_traffic,
            {**REVIEWS, "percentage": 10, "mirror_host": "shadow.example.org"},
            shadow_entry,
            "mirror_host: unknown host 'shadow.example.org'",
        ),
        id="unknown-mirror-host",
    ),
    pytest.param(
        (
            route_to_version,
            {**DARK, "route_name": "nope"},
            None,
            "route_name: VirtualService bookinfo/reviews has no route named 'nope'",
        ),
        id="unknown-route",
    ),
    pytest.param(
        (
            route_to_version,
            {**DARK, "virtual_service": "nope"},
            None,
            "virtual_service: no VirtualService 'nope' in namespace 'bookinfo'",
        ),
        id="unknown-virtual-service",
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


def _experiment(tmp_path, method):
    return write_experiment(tmp_path, method, controls=(CONTROL,))


def _traffic_action(func, **arguments):
    return python_activity(
        f"{func}-reviews",
        "chaosmesh_py.traffic.actions",
        func,
        **{"virtual_service": "reviews", "namespace": "${namespace}", **arguments},
    )


VALIDATE_CASES = [
    pytest.param(
        _traffic_action("shift_traffic", weights={"v1": 90, "v3": 20}),
        "shift_traffic-reviews: weights: the weights sum to 110, not 100",
        id="weights-sum",
    ),
    pytest.param(
        _traffic_action("shift_traffic", weights={"v1": 50.5, "v3": 49.5}),
        "shift_traffic-reviews: weights.v1: must be a whole percentage",
        id="weights-fraction",
    ),
    pytest.param(
        _traffic_action("mirror_traffic", percentage=150, subset="v3"),
        "mirror_traffic-reviews: percentage: 150 is outside (0, 100]",
        id="mirror-percentage",
    ),
    pytest.param(
        _traffic_action("route_to_version", subset="v2", weights={"v2": 100}),
        "argument 'weights' is not part of the function signature in activity 'route_to_version'",
        id="unknown-argument",
    ),
]


@pytest.mark.parametrize(("action", "expected"), VALIDATE_CASES)
def test_validate_exits_2_naming_the_field(tmp_path, action, expected):
    path = _experiment(tmp_path, [delay_action(), action])
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_gate_exits_2_and_nothing_is_written(api, tmp_path):
    action = _traffic_action("shift_traffic", weights={"v1": 90, "v3": 20})
    path = _experiment(tmp_path, [delay_action(), action])
    before = snapshot(api)
    api.request_log.clear()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "chaosmesh"),
            "gate",
            "--journal-dir",
            str(tmp_path / "journals"),
            str(path),
        ],
        env=environment(api, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    shown = " ".join(done.stdout.split())  # the gate's table wraps its reasons
    assert "weights: the weights sum to 110, not 100" in shown, done.stdout
    assert "gate: INVALID INPUT" in shown
    assert "Traceback" not in done.stdout + done.stderr
    assert writes(api) == []
    assert snapshot(api) == before


@pytest.mark.slow
def test_chaos_run_stops_before_anything_is_written(api, tmp_path):
    action = _traffic_action("mirror_traffic", percentage=0, subset="v3")
    path = _experiment(tmp_path, [delay_action(), action])
    before = snapshot(api)
    api.request_log.clear()
    journal_path = tmp_path / "journal.json"
    done = chaos(api, tmp_path, "run", "--journal-path", str(journal_path), str(path))
    assert done.returncode == 1, done.stderr
    assert "mirror_traffic-reviews: percentage: 0 is outside (0, 100]" in done.stderr
    assert "nothing was injected" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert json.loads(journal_path.read_text())["run"] == []
    assert writes(api) == []
    assert snapshot(api) == before


@pytest.mark.slow
def test_chaos_run_with_an_unknown_subset_fails_the_action_and_writes_nothing(api, tmp_path):
    """Only the cluster knows the subsets: the action fails naming them, and the run fails."""
    action = _traffic_action("route_to_version", subset="v9")
    path = _experiment(tmp_path, [action])
    before = snapshot(api)
    api.request_log.clear()
    journal_path = tmp_path / "journal.json"
    done = chaos(api, tmp_path, "run", "--journal-path", str(journal_path), str(path))
    assert done.returncode == 1, done.stderr
    journal = json.loads(journal_path.read_text())
    (entry,) = journal["run"]
    assert entry["status"] == "failed"
    assert (
        "subset: host reviews.bookinfo.svc.cluster.local has no subset 'v9'"
        in entry["exception"][-1]
    )
    assert "Traceback" not in done.stderr
    assert writes(api) == []
    assert snapshot(api) == before


def test_the_corpus_is_big_enough():
    assert len(REFUSED_BEFORE_ANY_REQUEST) + len(REFUSED_BEFORE_ANY_WRITE) >= 30
