"""The policy report against the Kubernetes API double, over HTTP, with the real client:
Bookinfo's routing (Istio's implicit retries: 9 attempts at ratings per productpage request),
Istio's request-timeouts task flagged as a timeout inversion, the declared RBAC is enough, and
the CLI's exit statuses and output."""

import inspect
import json

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.engine import access
from chaosmesh_py.resilience.probes import max_amplification, policy_findings, policy_report
from tests.conftest import NAMESPACE
from tests.integration.test_traffic_edits import _as_user_with

V1 = "networking.istio.io/v1"
BOOKINFO_EDGES = [
    {"source": "productpage", "destination": "reviews"},
    {"source": "productpage", "destination": "details"},
    {"source": "reviews", "destination": "ratings"},
]
GRAPH = {"namespaces": [NAMESPACE], "edges": BOOKINFO_EDGES}


def replace_spec(api, name, http):
    current = api.get(V1, "VirtualService", NAMESPACE, name)
    current["spec"]["http"] = http
    api.replace(current)


def istio_request_timeouts_task(api):
    """Istio's request-timeouts task: reviews to v2 with a 0.5 s timeout, a 2 s delay on every
    call to ratings."""
    replace_spec(
        api,
        "reviews",
        [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}], "timeout": "0.5s"}],
    )
    replace_spec(
        api,
        "ratings",
        [
            {
                "fault": {"delay": {"percentage": {"value": 100}, "fixedDelay": "2s"}},
                "route": [{"destination": {"host": "ratings", "subset": "v1"}}],
            }
        ],
    )


def test_bookinfo_default_policy_amplifies_nine_times_through_reviews(api):
    report = policy_report(**GRAPH)
    assert report["max_amplification"] == 9
    worst = report["paths"][0]
    assert worst["nodes"] == [f"{s}.{NAMESPACE}" for s in ("productpage", "reviews", "ratings")]
    assert (worst["attempts"], worst["max_attempts"]) == ([3, 3], 9)
    # Istio's default retries connect failures only: a 503 from ratings is not retried.
    assert worst["max_attempts_on_503"] == 1
    # A dead ratings pod: reviews' sidecar tries it 3 times (connect-failure is retried), and
    # productpage's does not retry the 503 reviews then answers.
    assert worst["max_attempts_leaf_unreachable"] == 3
    assert worst["worst_case_s"] is None  # no timeout anywhere
    edges = {(e["source"], e["destination"]): e for e in report["edges"]}
    reviews = edges[(f"productpage.{NAMESPACE}", f"reviews.{NAMESPACE}")]
    assert reviews["virtual_service"] == f"{NAMESPACE}/reviews"
    assert reviews["implicit_default"]
    assert reviews["worst_path_amplification"] == 9
    # jason's route and everyone's: both reachable by productpage's requests.
    assert [r["route"] for r in reviews["routes"]] == ["jason-to-v2", "everyone-to-v1"]
    kinds = {f["kind"] for f in report["findings"]}
    assert kinds == {"no_circuit_breaker", "no_outlier_detection"}  # 9 <= the threshold of 10
    assert max_amplification(**GRAPH) == 9
    assert max_amplification(entry="productpage", leaf="details", **GRAPH) == 3
    assert max_amplification(leaf=f"ratings.{NAMESPACE}", **GRAPH) == 9
    assert [
        f["where"] for f in policy_findings(kind="amplification", max_amplification=8, **GRAPH)
    ] == [f"productpage.{NAMESPACE} -> reviews.{NAMESPACE} -> ratings.{NAMESPACE}"]


def test_turning_retries_off_on_one_hop_is_seen_at_once(api):
    replace_spec(
        api,
        "ratings",
        [
            {
                "route": [{"destination": {"host": "ratings", "subset": "v1"}}],
                "retries": {"attempts": 0},
            }
        ],
    )
    assert max_amplification(**GRAPH) == 3


def test_istios_request_timeouts_task_is_a_timeout_inversion(api):
    assert policy_findings(kind="timeout_inversion", **GRAPH) == []
    istio_request_timeouts_task(api)
    (inversion,) = policy_findings(kind="timeout_inversion", **GRAPH)
    assert inversion["path"] == [f"{s}.{NAMESPACE}" for s in ("productpage", "reviews", "ratings")]
    assert (inversion["inner_s"], inversion["outer_budget_s"]) == (2.0, 0.5)
    assert "takes at least 2 s" in inversion["message"]
    report = policy_report(**GRAPH)
    edges = {(e["source"], e["destination"]): e for e in report["edges"]}
    reviews = edges[(f"productpage.{NAMESPACE}", f"reviews.{NAMESPACE}")]
    assert (reviews["timeout_s"], reviews["worst_case_s"]) == (0.5, 0.5)
    # The timeout bounds the whole path: productpage waits at most 0.5 s for reviews.
    assert report["paths"][0]["worst_case_s"] == 0.5


def test_the_declared_rbac_is_enough_and_needed(api, monkeypatch):
    bound = inspect.signature(policy_report).bind(**GRAPH)
    bound.apply_defaults()
    declared = access.declared(policy_report.__module__, "policy_report")(bound.arguments)
    assert {(a.verb, a.resource, a.namespace) for a in declared} == {
        ("list", "virtualservices", NAMESPACE),
        ("list", "destinationrules", NAMESPACE),
        ("list", "services", NAMESPACE),
    }
    _as_user_with(api, monkeypatch, [a for a in declared if a.resource != "destinationrules"])
    with pytest.raises(ActivityFailed, match="destinationrules"):
        policy_report(**GRAPH)
    _as_user_with(api, monkeypatch, declared)
    assert policy_report(**GRAPH)["max_amplification"] == 9
    # From metrics on a cluster: the local mesh's Prometheus ("" ) is refused for a game day.
    with pytest.raises(Exception, match="prometheus_url"):
        access.declared(policy_report.__module__, "policy_report")(
            {**bound.arguments, "edges": None, "from_metrics": True}
        )


def test_a_namespace_holding_nothing_is_refused_naming_it(api):
    with pytest.raises(ActivityFailed, match="'bookinfo-typo' holds no Service"):
        policy_report(namespaces=["bookinfo-typo"], edges=BOOKINFO_EDGES)


# --- the CLI ---------------------------------------------------------------------------------


def chaosmesh(*args):
    from click.testing import CliRunner

    from chaosmesh_py.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_prints_tables_and_exits_1_with_findings(api, tmp_path):
    edges = tmp_path / "edges.yaml"
    edges.write_text(
        "\n".join(
            f"- {{source: {e['source']}, destination: {e['destination']}}}" for e in BOOKINFO_EDGES
        )
    )
    result = chaosmesh("policy", "report", "-n", NAMESPACE, "--edges", str(edges))
    assert result.exit_code == 1, result.output
    assert "EDGES" in result.output
    assert (
        f"productpage.{NAMESPACE} -> reviews.{NAMESPACE} -> ratings.{NAMESPACE}  3 x 3"
        in result.output
    )
    assert "[no_circuit_breaker]" in result.output
    as_json = chaosmesh("policy", "report", "-n", NAMESPACE, "--edges", str(edges), "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["max_amplification"] == 9


def test_cli_exits_0_when_nothing_is_found(api, tmp_path):
    for name in ("reviews", "ratings"):
        current = api.get(V1, "DestinationRule", NAMESPACE, name)
        current["spec"]["trafficPolicy"] = {
            "connectionPool": {"http": {"http1MaxPendingRequests": 10}},
            "outlierDetection": {"consecutive5xxErrors": 3},
        }
        api.replace(current)
    edges = tmp_path / "edges.json"
    edges.write_text(json.dumps([{"source": "reviews", "destination": "ratings"}]))
    result = chaosmesh("policy", "report", "-n", NAMESPACE, "--edges", str(edges))
    assert result.exit_code == 0, result.output
    assert "FINDINGS (0)" in result.output


def test_cli_ignores_the_kinds_it_is_told_to(api, tmp_path):
    edges = tmp_path / "edges.json"
    edges.write_text(json.dumps(BOOKINFO_EDGES))
    arguments = ["policy", "report", "-n", NAMESPACE, "--edges", str(edges), "--json"]
    result = chaosmesh(
        *arguments, "--ignore", "no_circuit_breaker", "--ignore", "no_outlier_detection"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)["summary"]
    assert summary["ignored"]["no_circuit_breaker"] == 3
    assert sum(summary["findings"].values()) == 0
    lowered = chaosmesh(*arguments, "--ignore", "no_circuit_breaker", "--max-amplification", "8")
    assert lowered.exit_code == 1
    kinds = {f["kind"] for f in json.loads(lowered.output)["findings"]}
    assert kinds == {"amplification", "no_outlier_detection"}


def test_entry_and_leaf_are_checked_and_named(api):
    with pytest.raises(ActivityFailed, match="entry: must be a service name"):
        max_amplification(entry=5, **GRAPH)
    with pytest.raises(ActivityFailed, match="'checkout' is no node of the call graph") as unknown:
        max_amplification(entry="checkout", **GRAPH)
    assert f"productpage.{NAMESPACE}" in str(unknown.value)
    with pytest.raises(ActivityFailed, match="no call path from"):
        max_amplification(entry="details", leaf="ratings", **GRAPH)


def test_edges_into_a_namespace_not_read_are_said(api):
    edges = [*BOOKINFO_EDGES, {"source": "reviews", "destination": "audit.compliance"}]
    report = policy_report(namespaces=[NAMESPACE], edges=edges)
    assert report["unread_namespaces"] == ["compliance"]
    assert policy_report(**GRAPH)["unread_namespaces"] == []
