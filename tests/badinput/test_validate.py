"""The corpus, first layer: malformed experiment files through ``chaosmesh validate``.

Every case must exit 2 with a line naming the field (or the file's line and column) and the
problem, without a traceback, quickly, and in a message short enough to read.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosmesh_py.cli import main
from tests.badinput.corpus import (
    DROP,
    abort,
    configured,
    delay,
    document,
    edited,
    generated,
    raw,
    shipped,
)
from tests.conftest import ROOT

TEN_MB = 10 * 1024 * 1024
# What one bad value may cost on screen: its line, the field and the fix, not the value itself.
MAX_OUTPUT_CHARS = 1500


def _nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_headers(experiment):
    value: object = "jason"
    for _ in range(500):
        value = [value]
    experiment["method"][0]["provider"]["arguments"]["headers"] = {"end-user": value}


def _alias_bomb() -> str:
    lines = ["title: bomb", "description: aliases", 'a0: &a0 ["x","x","x","x","x","x","x","x"]']
    for level in range(1, 9):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 8)}]")
    lines.append("method: []")
    return "\n".join(lines) + "\n"


def _huge_description_and_bad_percentage() -> str:
    experiment = shipped("bookinfo-ratings-delay")
    experiment["description"] = "x" * TEN_MB
    experiment["method"][0]["provider"]["arguments"]["percentage"] = 0
    return json.dumps(experiment)


def _huge_percentage_string() -> str:
    experiment = shipped("bookinfo-ratings-delay")
    experiment["method"][0]["provider"]["arguments"]["percentage"] = "9" * TEN_MB
    return json.dumps(experiment)


def _huge_yaml_list() -> str:
    import yaml

    experiment = shipped("bookinfo-ratings-delay")
    experiment["method"][0]["provider"]["arguments"]["percentage"] = -1
    experiment["tags"] = ["padding-" + "p" * 90] * (TEN_MB // 100)
    return yaml.safe_dump(experiment)


def _remove(key):
    def edit(experiment):
        del experiment[key]

    return edit


def _set(key, value):
    return lambda experiment: experiment.__setitem__(key, value)


def _activity(**changes):
    def edit(experiment):
        experiment["method"][0].update(changes)

    return edit


def _provider(**changes):
    def edit(experiment):
        experiment["method"][0]["provider"].update(changes)

    return edit


def _later_action(**arguments):
    """A correct first action, then a second one with ``arguments`` changed."""

    def edit(experiment):
        second = json.loads(json.dumps(experiment["method"][0]))
        second["name"] = "second-delay"
        second["provider"]["arguments"].update(arguments)
        experiment["method"].insert(1, second)

    return edit


def _rollback_namespace(namespace):
    def edit(experiment):
        experiment["rollbacks"][0]["provider"]["arguments"]["namespace"] = namespace

    return edit


def _templated_percentage(experiment):
    experiment["configuration"]["pct"] = 150
    experiment["method"][0]["provider"]["arguments"]["percentage"] = "${pct}"


def _guardrails(value):
    def edit(experiment):
        experiment["controls"][0]["provider"]["arguments"] = {"guardrails": value}

    return edit


def _canary_analysis(**arguments):
    """The canary experiment with its canary analysis' ``arguments`` changed (DROP removes one)."""

    def edit(experiment):
        (analysis,) = [a for a in experiment["method"] if a["name"] == "canary-analysis-flags-v3"]
        for name, value in arguments.items():
            if value is DROP:
                analysis["provider"]["arguments"].pop(name)
            else:
                analysis["provider"]["arguments"][name] = value

    return edited(edit, "bookinfo-canary-v3-ratings-fault")


def case(name, write, *expected, marks=()):
    """``write`` makes the file in a directory; ``expected`` must all be in the output."""
    return pytest.param(write, expected, id=name, marks=marks)


CASES = [
    # --- the file itself -----------------------------------------------------------------------
    case("json-syntax-error", raw('{"title": "x",\n "method": [}'), "JSON syntax error at line 2"),
    case("json-trailing-comma", raw('{"title": "x", }'), "JSON syntax error at line 1, column 16"),
    case(
        "yaml-unclosed-flow",
        raw("title: x\nmethod: [unclosed\n", ".yaml"),
        "YAML syntax error at line",
    ),
    case(
        "yaml-bad-indentation",
        raw("title: x\n  description: y\n bad: z\n", ".yml"),
        "YAML syntax error at line 2",
    ),
    case(
        "yaml-two-documents",
        raw("title: a\n---\ntitle: b\n", ".yaml"),
        "YAML syntax error",
        "single document",
    ),
    case("empty-file", raw(""), "experiment: the file is empty"),
    case("blank-yaml", raw("\n   \n", ".yaml"), "experiment: the file is empty"),
    case("list-not-mapping", raw("[1, 2]"), "experiment: must be a mapping", "got a list"),
    case(
        "yaml-scalar", raw("just words", ".yaml"), "experiment: must be a mapping", "got a string"
    ),
    case("json-null", raw("null"), "experiment: must be a mapping", "null"),
    case("not-utf8", raw(b'{"title": "caf\xe9"}'), "experiment: is not UTF-8 text", "line 1"),
    case(
        "wrong-suffix", raw("{}", ".txt"), "experiment: 'experiment.txt' is neither JSON nor YAML"
    ),
    case(
        "integer-5000-digits",
        raw('{"percentage": 1' + "0" * 5000 + "}"),
        "experiment: JSON value cannot be read",
        "4300 digits",
    ),
    # --- huge and deep ------------------------------------------------------------------------
    case(
        "json-100000-nested-lists",
        generated(lambda: _nested_lists(100_000)),
        "experiment: nested too deeply",
        "line 1, column 101",
    ),
    case(
        "yaml-100000-nested-lists",
        generated(lambda: "title: x\nm: " + _nested_lists(100_000), ".yaml"),
        "experiment:",
        "nesting depth",
    ),
    case(
        "nested-500-in-an-argument",
        edited(_deep_headers),
        "method[0].provider.arguments.headers.end-user[0]*95: nested more than 100 levels",
    ),
    case(
        "yaml-alias-bomb",
        raw(_alias_bomb(), ".yaml"),
        "experiment: has more than 1000000 values",
        "aliases",
    ),
    case(
        "yaml-self-reference",
        raw("title: loop\nm: &loop [*loop]\n", ".yaml"),
        "m[0]*100: nested more than 100 levels",
    ),
    case(
        "10mb-document-bad-percentage",
        generated(_huge_description_and_bad_percentage),
        "delay-ratings-for-jason: percentage: 0 is outside",
    ),
    case(
        "10mb-string-as-percentage",
        generated(_huge_percentage_string),
        "percentage: must be a number, got str '9999",
    ),
    case("10mb-yaml-document", generated(_huge_yaml_list, ".yaml"), "percentage: -1 is outside"),
    # --- the experiment's structure -----------------------------------------------------------
    case("missing-title", edited(_remove("title")), "title: missing"),
    case("missing-description", edited(_remove("description")), "description: missing"),
    case("missing-method", edited(_remove("method")), "method: missing"),
    case("title-not-a-string", edited(_set("title", 5)), "title: must be a string, got an integer"),
    case(
        "method-not-a-list",
        edited(_set("method", {"inject": "delay"})),
        "method: must be a list of activities, got a mapping",
    ),
    case(
        "activity-not-a-mapping",
        edited(_set("method", ["inject_delay"])),
        "method[0]: must be a mapping, got a string",
    ),
    case(
        "provider-not-a-mapping",
        edited(_activity(provider="chaosmesh_py.faults.actions")),
        "method[0].provider: must be a mapping",
    ),
    case(
        "arguments-not-a-mapping",
        edited(_provider(arguments=["ratings", "7s"])),
        "method[0].provider.arguments: must be a mapping",
    ),
    case(
        "configuration-not-a-mapping",
        edited(_set("configuration", ["namespace"])),
        "configuration: must be a mapping, got a list",
    ),
    case(
        "env-configuration-without-key",
        configured(namespace={"type": "env"}),
        "configuration.namespace.key: must be an environment variable",
    ),
    case(
        "controls-not-a-list",
        edited(_set("controls", {"name": "chaosmesh"})),
        "controls: must be a list, got a mapping",
    ),
    case("unknown-function", edited(_provider(func="inject_delays")), "inject_delays"),
    case("unknown-argument-name", delay(percent=50), "percent"),
    case("missing-percentage", delay(percentage=DROP), "percentage", "missing"),
    # --- percentage ---------------------------------------------------------------------------
    case(
        "percentage-0",
        delay(percentage=0),
        "percentage: 0 is outside [0.0001, 100]",
        "injects nothing",
    ),
    case("percentage-negative", delay(percentage=-1), "percentage: -1 is outside"),
    case("percentage-100.5", delay(percentage=100.5), "percentage: 100.5 is outside"),
    case(
        "percentage-below-istio-minimum", delay(percentage=0.00001), "percentage: 1e-05 is outside"
    ),
    case(
        "percentage-string-with-percent-sign",
        delay(percentage="50%"),
        "percentage: must be a number, got str '50%'",
        "without quotes",
    ),
    case("percentage-nan", delay(percentage=float("nan")), "percentage: NaN is not a number"),
    case("percentage-infinity", delay(percentage=float("inf")), "percentage: inf is outside"),
    case("percentage-true", delay(percentage=True), "percentage: must be a number, got bool True"),
    case(
        "percentage-null", delay(percentage=None), "percentage: must be a number, got NoneType None"
    ),
    case(
        "percentage-from-configuration", edited(_templated_percentage), "percentage: 150 is outside"
    ),
    # --- fixed_delay ---------------------------------------------------------------------------
    case(
        "delay-without-unit", delay(fixed_delay="7"), "fixed_delay: '7' is not a duration", '"7s"'
    ),
    case(
        "delay-spelled-out",
        delay(fixed_delay="7 seconds"),
        "fixed_delay: '7 seconds' is not a duration",
        "ms, s, m, h",
    ),
    case("delay-negative", delay(fixed_delay="-1s"), "fixed_delay: '-1s' is negative"),
    case("delay-zero", delay(fixed_delay="0s"), "fixed_delay: '0s' is shorter than 1ms"),
    case(
        "delay-sub-millisecond",
        delay(fixed_delay="1.5ms"),
        "fixed_delay: '1.5ms' is not a whole number of milliseconds",
    ),
    case("delay-a-number", delay(fixed_delay=7), "fixed_delay: must be a duration string, got 7"),
    case("delay-astronomical", delay(fixed_delay="9" * 400 + "h"), "fixed_delay:", "longer than"),
    # --- abort status --------------------------------------------------------------------------
    case("http-status-99", abort(http_status=99), "http_status: 99 is outside 200-599"),
    case("http-status-600", abort(http_status=600), "http_status: 600 is outside", "Envoy"),
    case("http-status-601", abort(http_status=601), "http_status: 601 is outside"),
    case(
        "http-status-string",
        abort(http_status="503"),
        "http_status: must be an integer HTTP status, got '503'",
        "without quotes",
    ),
    case(
        "http-status-float",
        abort(http_status=503.5),
        "http_status: must be an integer HTTP status, got 503.5",
    ),
    case(
        "abort-both-statuses",
        abort(grpc_status="UNAVAILABLE"),
        "http_status/grpc_status: exactly one of them",
    ),
    case(
        "abort-no-status", abort(http_status=DROP), "http_status/grpc_status: exactly one of them"
    ),
    case(
        "grpc-status-unknown",
        abort(http_status=DROP, grpc_status="BROKEN"),
        "grpc_status: 'BROKEN' is not a gRPC status code name",
        "UNAVAILABLE",
    ),
    case(
        "grpc-status-lower-case",
        abort(http_status=DROP, grpc_status="unavailable"),
        "grpc_status: 'unavailable'",
        "'UNAVAILABLE'",
    ),
    case(
        "grpc-status-number",
        abort(http_status=DROP, grpc_status=14),
        "grpc_status: 14",
        "'UNAVAILABLE' for 14",
    ),
    # --- narrowing -----------------------------------------------------------------------------
    case(
        "headers-a-string",
        delay(headers="jason"),
        "headers: must be a mapping, got 'jason'",
        '{"end-user": "jason"}',
    ),
    case("headers-a-list", delay(headers=["end-user", "jason"]), "headers: must be a mapping"),
    case(
        "header-value-a-number",
        delay(headers={"end-user": 5}),
        "headers.end-user: 5 is not a header match",
    ),
    case(
        "header-unknown-match-kind",
        delay(headers={"end-user": {"contains": "ja"}}),
        "headers.end-user: {'contains': 'ja'} is not a header match",
        "prefix",
    ),
    case(
        "header-bad-regex",
        delay(headers={"end-user": {"regex": "(ja"}}),
        "headers.end-user.regex: '(ja' is not a regular expression",
    ),
    case(
        "header-empty-name",
        delay(headers={"": "jason"}),
        "headers: header name '' must be a non-empty string",
    ),
    case(
        "source-labels-a-list",
        delay(source_labels=["app"]),
        "source_labels: must map label names to string values",
    ),
    case(
        "source-label-value-a-number",
        delay(source_labels={"app": 1}),
        "source_labels: must map label names to string values",
    ),
    # --- route choice ---------------------------------------------------------------------------
    case(
        "route-index-negative",
        delay(route_index=-1),
        "route_index: must be a whole number from 0, got -1",
    ),
    case(
        "route-index-string",
        delay(route_index="0"),
        "route_index: must be a whole number from 0, got '0'",
    ),
    case(
        "route-index-float",
        delay(route_index=1.5),
        "route_index: must be a whole number from 0, got 1.5",
    ),
    case(
        "route-index-true",
        delay(route_index=True),
        "route_index: must be a whole number from 0, got True",
    ),
    case("route-name-empty", delay(route_name=""), "route_name: must be a non-empty string"),
    case(
        "route-name-and-index",
        delay(route_name="ratings-v1", route_index=0),
        "route_name/route_index: give one of them, not both",
    ),
    # --- targets ---------------------------------------------------------------------------------
    case(
        "namespace-kube-system",
        delay(namespace="kube-system"),
        "namespace: 'kube-system' is protected",
        'in configuration chaosmesh_allow_namespaces, e.g. ["kube-system"]',
    ),
    case(
        "namespace-istio-system",
        delay(namespace="istio-system"),
        "namespace: 'istio-system' is protected",
    ),
    case(
        "namespace-malformed",
        delay(namespace="Bad_NS"),
        "namespace: 'Bad_NS' is not a namespace name",
    ),
    case("namespace-a-number", delay(namespace=5), "namespace: 5 is not a namespace name"),
    case(
        "virtual-service-and-host",
        delay(host="ratings"),
        "virtual_service/host: give exactly one of them",
    ),
    case(
        "neither-virtual-service-nor-host",
        delay(virtual_service=DROP),
        "virtual_service/host: give exactly one of them",
    ),
    case(
        "virtual-service-malformed",
        delay(virtual_service="Ratings!"),
        "virtual_service: 'Ratings!' is not a resource name",
    ),
    case(
        "verify-url-not-http",
        delay(verify_url="ftp://ratings"),
        "verify_url: 'ftp://ratings' is not an http(s) URL",
    ),
    case(
        "allow-other-runs-a-string",
        delay(allow_other_runs="yes"),
        "allow_other_runs: must be true or false, got 'yes'",
    ),
    # --- configuration ---------------------------------------------------------------------------
    case(
        "run-id-malformed",
        configured(chaosmesh_run_id="Run 1!"),
        "chaosmesh_run_id: 'Run 1!' is not a valid run id",
        "lower-case",
    ),
    case(
        "run-id-a-number",
        configured(chaosmesh_run_id=5),
        "chaosmesh_run_id: 5 is not a valid run id",
    ),
    case(
        "ttl-zero",
        configured(chaosmesh_ttl_s=0),
        "chaosmesh_ttl_s: must be a whole number of seconds from 1 to 2592000 (30 days), got 0",
    ),
    case(
        "ttl-a-string",
        configured(chaosmesh_ttl_s="3600"),
        "chaosmesh_ttl_s: must be a number, got the string '3600' (write it unquoted)",
    ),
    case(
        "ttl-a-float",
        configured(chaosmesh_ttl_s=1.5),
        "chaosmesh_ttl_s: must be a whole number of seconds from 1 to 2592000",
    ),
    case(
        "ttl-overflows-dates",
        configured(chaosmesh_ttl_s=10**20),
        "chaosmesh_ttl_s:",
        "from 1 to 2592000 (30 days)",
    ),
    case(
        "allow-namespaces-a-string",
        configured(chaosmesh_allow_namespaces="istio-system"),
        "chaosmesh_allow_namespaces: must be a list of namespace names",
    ),
    case(
        "istio-version-unknown",
        configured(chaosmesh_istio_api_version="v2"),
        "chaosmesh_istio_api_version: 'v2' is not an Istio networking version",
    ),
    case(
        "verify-timeout-a-string",
        configured(chaosmesh_verify_timeout_s="10"),
        "chaosmesh_verify_timeout_s: must be a number of seconds from 0 to 600, got '10'",
    ),
    # --- a later activity, and the control -------------------------------------------------------
    case(
        "bad-value-in-second-action",
        edited(_later_action(percentage=101)),
        "second-delay: percentage: 101 is outside",
    ),
    case(
        "protected-namespace-in-rollback",
        edited(_rollback_namespace("kube-system")),
        "remove-ratings-faults: namespace: 'kube-system' is protected",
    ),
    case(
        "canary-reporter-left-out",
        _canary_analysis(reporter=DROP),
        # Chaos Toolkit's own validation, before the control's: the choice must be explicit.
        "required argument 'reporter' is missing from activity 'canary_analysis'",
    ),
    case(
        "canary-reporter-unknown",
        _canary_analysis(reporter="both"),
        "canary-analysis-flags-v3: reporter: 'both' is neither 'source' nor 'destination'",
        "'destination': the workload's own proxy",
    ),
    case(
        "canary-window-not-a-duration",
        _canary_analysis(window="a minute"),
        "canary-analysis-flags-v3: window: 'a minute' is not a PromQL duration",
    ),
    case(
        "canary-min-requests-too-few",
        _canary_analysis(min_requests=5),
        "canary-analysis-flags-v3: min_requests: 5 is too few",
    ),
    case(
        "canary-same-versions",
        _canary_analysis(baseline_version="v3"),
        "canary-analysis-flags-v3: canary_version: is the baseline too ('v3')",
    ),
    case(
        "canary-expect-unknown",
        _canary_analysis(expect="flagged"),
        "canary-analysis-flags-v3: expect: 'flagged' is neither 'pass' nor 'fail'",
    ),
    case(
        "guardrails-not-a-list",
        edited(_guardrails("page-whole")),
        "control 'chaosmesh': guardrails: must be a non-empty list",
    ),
    case(
        "guardrail-without-tolerance",
        edited(
            _guardrails(
                [
                    {
                        "type": "probe",
                        "name": "p",
                        "provider": {
                            "type": "python",
                            "module": "os.path",
                            "func": "exists",
                            "arguments": {"path": "/"},
                        },
                    }
                ]
            )
        ),
        "guardrails[0].tolerance: is missing",
    ),
]


def validate(*paths: Path):
    return CliRunner().invoke(main, ["validate", *map(str, paths)])


@pytest.mark.parametrize(("write", "expected"), CASES)
def test_validate_names_the_field(tmp_path, write, expected):
    path = write(tmp_path)
    started = time.monotonic()
    result = validate(path)
    elapsed_s = time.monotonic() - started
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    output = result.output
    assert "Traceback" not in output
    for part in expected:
        assert part in output, output[:MAX_OUTPUT_CHARS]
    assert all(line.startswith(f"{path}: ") for line in output.splitlines()), output
    assert len(output) < MAX_OUTPUT_CHARS, output[:MAX_OUTPUT_CHARS]
    assert elapsed_s < 10, f"{elapsed_s:.1f} s"


def test_the_corpus_is_big_enough_and_distinct():
    ids = [case.id for case in CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "experiments").glob("*.json")))
def test_the_shipped_experiments_are_valid(tmp_path, name):
    result = validate(document(shipped(name))(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.output.endswith(": valid\n")


def test_the_same_experiment_in_yaml_is_valid(tmp_path):
    result = validate(document(shipped("bookinfo-ratings-delay"), ".yaml")(tmp_path))
    assert result.exit_code == 0, result.output


def test_allowing_a_protected_namespace_makes_it_valid(tmp_path):
    experiment = json.loads(json.dumps(shipped("bookinfo-ratings-delay")))
    # The allow-list is every namespace the experiment may touch: its own and the protected one.
    experiment["configuration"]["chaosmesh_allow_namespaces"] = ["default", "istio-system"]
    experiment["method"][0]["provider"]["arguments"]["namespace"] = "istio-system"
    assert validate(document(experiment)(tmp_path)).exit_code == 0


def test_a_missing_file_is_reported(tmp_path):
    result = validate(tmp_path / "nowhere.json")
    assert result.exit_code == 2
    assert "nowhere.json: invalid: experiment: no such file" in result.output


def test_a_directory_is_reported(tmp_path):
    directory = tmp_path / "experiments.json"
    directory.mkdir()
    result = validate(directory)
    assert result.exit_code == 2
    assert "experiment: is a directory, not a file" in result.output


def test_every_file_is_reported_and_the_good_one_passes(tmp_path):
    """The installed command, as users run it: several files, one line per problem."""
    good = document(shipped("bookinfo-ratings-abort"))(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "deep").mkdir()
    bad = delay(percentage=0)(tmp_path / "bad")
    deep = generated(lambda: _nested_lists(100_000))(tmp_path / "deep")
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "chaosmesh"),
            "validate",
            str(good),
            str(bad),
            str(deep),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "BOOKINFO_NAMESPACE": "bookinfo"},
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout == f"{good}: valid\n"
    assert f"{bad}: delay-ratings-for-jason: percentage: 0 is outside" in done.stderr
    assert f"{deep}: invalid: experiment: nested too deeply" in done.stderr


def test_a_namespace_outside_the_allow_list_is_refused_everywhere(tmp_path):
    experiment = json.loads(json.dumps(shipped("bookinfo-ratings-delay")))
    experiment["configuration"]["chaosmesh_allow_namespaces"] = ["staging"]
    result = validate(document(experiment)(tmp_path))
    assert result.exit_code == 2
    # The action, the probe and the rollback all target the namespace outside the list.
    assert result.output.count("is not in configuration chaosmesh_allow_namespaces (staging)") == 3


def test_gate_reports_a_deeply_nested_file_without_a_traceback(tmp_path):

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    result = CliRunner().invoke(main, ["gate", "--journal-dir", str(tmp_path / "j"), str(deep)])
    assert result.exit_code == 2, result.output
    assert "nested too deeply" in result.output
    assert "Traceback" not in result.output
