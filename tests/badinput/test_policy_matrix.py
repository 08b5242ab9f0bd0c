"""Bad input to the policy matrix probe: refused before any request, by the probe itself and by
`chaosmesh validate` (exit 2, the field named, no traceback). Names the mesh must confirm
(sources, destinations) are refused by the probe before its first request: tests/local."""

import re

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.security.probes import policy_matrix
from tests.e2e.test_chaos_run import delay_action, write_experiment

FINE = {"sources": ["sleep"], "destinations": ["ratings"], "expect": {"default": "allowed"}}


def with_(**changes):
    return {**FINE, **changes}


CASES = [
    pytest.param(with_(sources=[]), "sources: must be a non-empty list of names", id="no-sources"),
    pytest.param(
        with_(destinations="ratings"),
        "destinations: must be a non-empty list of names, got 'ratings'",
        id="destinations-string",
    ),
    pytest.param(
        with_(destinations=["outside"]),
        "destinations: 'outside' is a source only",
        id="outside-as-destination",
    ),
    pytest.param(with_(sources=["sleep", "sleep"]), "sources: names one twice", id="twice"),
    pytest.param(
        with_(tokens=["valid", "stolen"]),
        "tokens[1]: 'stolen' is no token state (one of ['valid', 'expired', 'wrong-issuer', "
        "'wrong-audience', 'bad-signature', 'none'])",
        id="unknown-token-state",
    ),
    pytest.param(with_(tokens=[]), "tokens: must be a non-empty list", id="no-tokens"),
    pytest.param(
        with_(tokens=["valid"], issuer="https://issuer.example"),
        "signing_key_secret: the token states ['valid'] need a key to sign with",
        id="token-without-key",
    ),
    pytest.param(
        with_(tokens=["valid"], signing_key_file="/k.pem", signing_key_secret="jwt_key"),
        "signing_key_file: and signing_key_secret are both given",
        id="two-keys",
    ),
    pytest.param(
        with_(expect={"default": "denied"}),
        "expect.default: 'denied' is no outcome (one of ['allowed', '401', '403', 'reset'] or "
        "an HTTP status from 100 to 599)",
        id="outcome-not-in-vocabulary",
    ),
    pytest.param(
        with_(expect={"default": 700}), "expect.default: 700 is no outcome", id="status-700"
    ),
    pytest.param(
        with_(expect={"rules": [{"source": "sleep", "outcome": "reject"}]}),
        "expect.rules[0].outcome: 'reject' is no outcome",
        id="rule-outcome",
    ),
    pytest.param(
        with_(expect={"rules": [{"source": "outsde", "outcome": "reset"}]}),
        "expect.rules[0].source: 'outsde' is not in the matrix (one of ['sleep'])",
        id="rule-typo",
    ),
    pytest.param(
        with_(expect={"rules": [{"client": "sleep", "outcome": "reset"}]}),
        "expect.rules[0].client: is not a dimension",
        id="rule-unknown-key",
    ),
    pytest.param(
        with_(expect={"rules": [{"source": "sleep"}]}),
        "expect.rules[0]: must be an object with an outcome",
        id="rule-without-outcome",
    ),
    pytest.param(
        with_(expect={"rules": [{"token": "none", "outcome": "403"}]}, tokens=["none", "valid"]),
        "expect: says nothing of the cell sleep -> ratings GET / token=valid",
        id="uncovered-cell",
    ),
    pytest.param(
        with_(expect="allowed"),
        "expect: must be an object with a default outcome and/or rules",
        id="expect-string",
    ),
    pytest.param(
        with_(expect={"default": "allowed", "otherwise": "403"}),
        "expect.otherwise: is not an expect field",
        id="expect-unknown-key",
    ),
    pytest.param(
        with_(requests=[{"method": "get", "path": "/"}]),
        "requests[0].method: must be an HTTP method in capitals, got 'get'",
        id="method-lowercase",
    ),
    pytest.param(
        with_(requests=[{"path": "ratings/0"}]),
        "requests[0].path: must be a path starting with /",
        id="path-relative",
    ),
    pytest.param(
        with_(requests=[{"path": "/", "headers": {"x-n": 1}}]),
        "requests[0].headers: must map header names to strings",
        id="header-number",
    ),
    pytest.param(
        with_(requests=[{"path": "/caf\u00e9"}]),
        "requests[0].path: must be a path starting with /, printable ASCII without blanks",
        id="path-not-ascii",
    ),
    pytest.param(
        with_(requests=[{"path": "/", "headers": {"x user": "a"}}]),
        "requests[0].headers: 'x user' is not a header name",
        id="header-name-blank",
    ),
    pytest.param(
        with_(requests=[{"path": "/", "headers": {"x-user": "a\r\nx-admin: 1"}}]),
        "requests[0].headers.x-user: must be printable ASCII text without line breaks",
        id="header-value-crlf",
    ),
    pytest.param(
        with_(requests=[{"path": "/", "body": "x"}]),
        "requests[0].body: is not a request field",
        id="request-unknown-key",
    ),
    pytest.param(
        with_(sources=[f"w{i}" for i in range(50)], destinations=[f"d{i}" for i in range(50)]),
        "sources/destinations/requests/tokens: make 2500 cells, more than 2000",
        id="too-many-cells",
    ),
    pytest.param(
        with_(concurrency=0), "concurrency: must be a whole number from 1 to 32", id="conc-0"
    ),
    pytest.param(with_(timeout_s=120), "timeout_s: must be at most 60 s", id="timeout-120"),
    pytest.param(
        with_(fail_on_difference="no"),
        "fail_on_difference: must be true or false",
        id="fail-flag",
    ),
    pytest.param(
        with_(token_header="Authorization: Bearer"),
        "token_header: 'Authorization: Bearer' is not a header name",
        id="token-header",
    ),
]


@pytest.mark.parametrize(("arguments", "expected"), CASES)
def test_the_probe_refuses_before_any_request(arguments, expected):
    # No API is configured: a probe that got past its checks would fail differently.
    with pytest.raises(ActivityFailed, match="InvalidInput: " + re.escape(expected)):
        policy_matrix(**arguments)


@pytest.mark.parametrize(("arguments", "expected"), CASES)
def test_validate_exits_2_naming_the_field(tmp_path, arguments, expected):
    matrix = {
        "type": "probe",
        "name": "matrix",
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.security.probes",
            "func": "policy_matrix",
            "arguments": arguments,
        },
    }
    path = write_experiment(tmp_path, [delay_action(), matrix])
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_missing_expectation_is_refused_by_chaos_toolkit_binding(tmp_path):
    arguments = {"sources": ["sleep"], "destinations": ["ratings"]}
    matrix = {
        "type": "probe",
        "name": "matrix",
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.security.probes",
            "func": "policy_matrix",
            "arguments": arguments,
        },
    }
    result = CliRunner().invoke(
        main, ["validate", str(write_experiment(tmp_path, [delay_action(), matrix]))]
    )
    assert result.exit_code == 2, result.output
    assert "expect" in result.output
    assert "Traceback" not in result.output
