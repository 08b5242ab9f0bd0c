"""Bad input to `chaosmesh policy report` and to the policy-report probes: every case exits 2
(or is refused by `chaosmesh validate` before a run) with the option or field named and the
fix, no traceback, nothing asked of a cluster or a Prometheus."""

import pytest
from click.testing import CliRunner

from chaosmesh_py.cli import main
from tests.badinput.corpus import edited
from tests.badinput.test_cli import assert_refused
from tests.conftest import NAMESPACE

POLICY = "chaosmesh_py.resilience.probes"
# Where a case that wrongly got past its checks would connect: nothing listens there.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_HOST", NOWHERE)
    monkeypatch.delenv("KUBERNETES_CONTEXT", raising=False)
    return tmp_path


def report(*arguments):
    result = CliRunner().invoke(main, ["policy", "report", *map(str, arguments)])
    assert isinstance(result.exception, SystemExit | None), result.exception
    return result


EDGES_FILES = {
    "not-yaml": ("edges: [unclosed", ["--edges", "is not valid JSON/YAML"]),
    "a-mapping-without-edges": ("graph: {}", ["--edges", "non-empty list of edges"]),
    "empty": ("", ["--edges", "non-empty list"]),
    "strings": ("- productpage -> reviews", ["--edges (edges_file[0])", "must be an object"]),
    "no-destination": ("- {source: productpage}", ["edges_file[0].destination", "is missing"]),
    "bad-source": (
        "- {source: Product_Page, destination: reviews}",
        ["edges_file[0].source", "not a service name"],
    ),
    "wildcard": (
        "- {source: productpage, destination: '*.bookinfo'}",
        ["edges_file[0].destination", "wildcard"],
    ),
    "bad-namespace": (
        "- {source: a, destination: b, namespace: Not-A-Namespace}",
        ["edges_file[0].namespace", "not a namespace"],
    ),
    "port-out-of-range": (
        "- {source: a, destination: b, port: 70000}",
        ["edges_file[0].port", "not a port number"],
    ),
    "unknown-field": (
        "- {source: a, destination: b, retries: 3}",
        ["edges_file[0]", "unknown field(s) ['retries']"],
    ),
    "labels-not-a-mapping": (
        "- {source: a, destination: b, source_labels: [app]}",
        ["edges_file[0].source_labels", "label"],
    ),
}


@pytest.mark.parametrize("case", list(EDGES_FILES))
def test_a_bad_edges_file_is_named_with_the_fix(isolated, case):
    text, words = EDGES_FILES[case]
    path = isolated / "edges.yaml"
    path.write_text(text)
    assert_refused(report("--edges", path), words)


def test_an_edges_file_that_is_not_there_or_not_text(isolated):
    assert_refused(report("--edges", isolated / "missing.yaml"), ["--edges", "cannot be read"])
    binary = isolated / "edges.yaml"
    binary.write_bytes(b"\xff\xfe\x00binary")
    assert_refused(report("--edges", binary), ["--edges", "not UTF-8"])


@pytest.fixture
def edges(tmp_path):
    path = tmp_path / "edges.json"
    path.write_text('[{"source": "productpage", "destination": "reviews"}]')
    return path


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ([], ["--edges", "no call graph", "--from-metrics"]),
        (["-n", "Bad_NS", "--from-metrics"], ["-n/--namespace", "not a namespace name"]),
        (["--from-metrics", "--window", "ten minutes"], ["--window", "not a PromQL duration"]),
        (["--from-metrics", "--window", "-5m"], ["--window", "not a PromQL duration"]),
        (["--from-metrics", "--prometheus", "ftp://prom"], ["--prometheus", "http(s) URL"]),
        (["--from-metrics", "--max-amplification", "0"], ["--max-amplification", "from 1"]),
        (["--from-metrics", "--max-paths", "0"], ["--max-paths", "from 1"]),
        (["--from-metrics", "--max-amplification", "many"], ["--max-amplification", "many"]),
        (["--from-metrics", "--istio-api-version", "v2"], ["--istio-api-version", "v2"]),
    ],
)
def test_bad_options_are_named_with_the_fix(isolated, arguments, words):
    assert_refused(report(*arguments), words)


def test_a_namespace_holding_nothing_is_refused(api, edges):
    result = report("-n", "bookinfo-typo", "--edges", edges)
    assert_refused(result, ["'bookinfo-typo' holds no Service", "-n"])
    # The real one works.
    assert report("-n", NAMESPACE, "--edges", edges).exit_code == 1


def test_no_metrics_in_the_window_is_said_not_reported_as_a_clean_mesh(api, monkeypatch):
    from chaosmesh_py.observe import prometheus

    monkeypatch.setattr(prometheus, "query", lambda url, promql, *a, **k: [])
    result = report("-n", NAMESPACE, "--from-metrics", "--prometheus", "http://127.0.0.1:9")
    assert_refused(result, ["show no calls", "send traffic first"])


def test_an_unreachable_api_is_exit_3_not_a_clean_report(isolated, edges):
    result = report("-n", NAMESPACE, "--edges", edges)
    assert result.exit_code == 3, result.output
    assert "no report" in result.output
    assert "Traceback" not in result.output


# --- the probes, through `chaosmesh validate` (the control makes the same checks) -----------


def with_probe(func, **arguments):
    def add(experiment):
        experiment["steady-state-hypothesis"]["probes"].append(
            {
                "type": "probe",
                "name": "policy",
                "tolerance": [],
                "provider": {
                    "type": "python",
                    "module": POLICY,
                    "func": func,
                    "arguments": arguments,
                },
            }
        )

    return edited(add)


PROBE_CASES = [
    (
        with_probe("policy_findings", kind="bogus", edges=[{"source": "a", "destination": "b"}]),
        "kind: 'bogus' is not a finding kind",
    ),
    (with_probe("policy_report"), "no call graph"),
    (with_probe("policy_report", edges=[{"source": "a"}]), "edges[0].destination: is missing"),
    (with_probe("policy_report", from_metrics="yes"), "from_metrics: must be true or false"),
    (with_probe("policy_report", from_metrics=True, window="1 hour"), "window"),
    (
        with_probe("max_amplification", entry=5, edges=[{"source": "a", "destination": "b"}]),
        "entry: must be a service name",
    ),
    (
        with_probe("policy_report", namespaces=["Bad"], from_metrics=True),
        "namespaces: 'Bad' is not a namespace name",
    ),
    (
        with_probe(
            "policy_report", edges=[{"source": "a", "destination": "b"}], max_amplification=-1
        ),
        "max_amplification",
    ),
]


@pytest.mark.parametrize(("write", "words"), PROBE_CASES)
def test_probe_arguments_are_refused_before_a_run(tmp_path, write, words):
    result = CliRunner().invoke(main, ["validate", str(write(tmp_path))])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "Traceback" not in result.output


def test_an_unknown_kind_to_ignore_lists_the_kinds(isolated):
    result = report("--from-metrics", "--ignore", "slow_things")
    assert_refused(result, ["--ignore (ignore)", "finding kinds", "no_circuit_breaker"])
