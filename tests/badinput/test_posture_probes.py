"""Bad input to the posture probes: refused before any request to the API or the mesh, by the
probe itself and by `chaosmesh validate` (exit 2, the field named, no traceback)."""

import re

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.security.probes import (
    never_matching_policies,
    plaintext_acceptors,
    security_posture,
    unenforced_request_authentication,
)
from tests.e2e.test_chaos_run import delay_action, write_experiment

CASES = [
    pytest.param(
        plaintext_acceptors,
        {"namespace": "Book_Info"},
        "namespace: 'Book_Info' is not a namespace name",
        id="namespace-not-dns",
    ),
    pytest.param(
        plaintext_acceptors,
        {"namespace": ""},
        "namespace: '' is not a namespace name",
        id="ns-empty",
    ),
    pytest.param(
        never_matching_policies,
        {"root_namespace": 7},
        "root_namespace: 7 is not a namespace name",
        id="root-number",
    ),
    pytest.param(
        plaintext_acceptors, {"measure": "yes"}, "measure: must be true or false", id="measure"
    ),
    pytest.param(
        plaintext_acceptors,
        {"path": "ratings/0"},
        "path: must be a path starting with '/'",
        id="path-relative",
    ),
    pytest.param(
        security_posture,
        {"timeout_s": 0},
        "timeout_s: must be a number of seconds above 0",
        id="timeout-0",
    ),
    pytest.param(
        unenforced_request_authentication,
        {"url": "productpage:9080"},
        "url: must be an http(s) URL",
        id="url-no-scheme",
    ),
    pytest.param(
        plaintext_acceptors,
        {"expect": {"findings": -1}},
        "expect.findings: must be a count or [low, high]",
        id="expect-negative",
    ),
    pytest.param(
        security_posture,
        {"expect": {"findings": [3, 1]}},
        "expect.findings: must be a count or [low, high]",
        id="expect-reversed",
    ),
    pytest.param(
        never_matching_policies,
        {"expect": {"count": 0}},
        "expect: must be {'findings': n or [low, high]}",
        id="expect-unknown-key",
    ),
]


@pytest.fixture
def no_api(monkeypatch, tmp_path):
    """An API that is not there: a probe that sent anything would fail differently."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_HOST", "http://127.0.0.1:9")


@pytest.mark.parametrize(("probe", "arguments", "expected"), CASES)
def test_the_probe_refuses_before_any_request(no_api, probe, arguments, expected):
    with pytest.raises(ActivityFailed, match="InvalidInput: " + re.escape(expected)):
        probe(**arguments)


@pytest.mark.parametrize(("probe", "arguments", "expected"), CASES)
def test_validate_exits_2_naming_the_field(tmp_path, probe, arguments, expected):
    check = {
        "type": "probe",
        "name": "posture",
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.security.probes",
            "func": probe.__name__,
            "arguments": arguments,
        },
    }
    path = write_experiment(tmp_path, [delay_action(), check])
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["-n", "Book_Info"], ["-n/--namespace", "is not a namespace name"]),
        (["-l", "app"], ["-l/--selector", "'app' is not label=value"]),
        (["--path", "productpage"], ["--path", "must be a path starting with '/'"]),
        (["--timeout", "0"], ["--timeout", "must be a number of seconds above 0"]),
    ],
)
def test_cli_names_the_option_and_exits_2(no_api, arguments, words):
    result = CliRunner().invoke(main, ["security", "posture", *arguments])
    assert result.exit_code == 2, result.output
    assert all(word in result.output for word in words), result.output
    assert "Traceback" not in result.output


def test_cli_exits_3_when_the_api_cannot_be_read(no_api):
    result = CliRunner().invoke(main, ["security", "posture", "-n", "bookinfo"])
    assert result.exit_code == 3, result.output
    assert "no report" in result.output
