"""Narrowings Istio or Envoy would refuse are refused first: by ``chaosmesh validate``, by actions.

Before this was checked, a look-ahead or a back-reference (Python's ``re`` takes both, RE2 takes
neither) or a header name with a control character passed ``chaosmesh validate``; the user then
waited for a fault Envoy never loaded. Each case here is an experiment a user could write; each
must exit 2 with a line naming the field and the reason (RE2's own, for a regex), and the actions
must refuse the same values before sending anything.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.faults.actions import inject_abort, inject_delay
from tests.badinput.corpus import delay
from tests.badinput.test_actions import ABORT, DELAY, snapshot
from tests.conftest import NAMESPACE


def case(name, headers=None, source_labels=None, *expected):
    arguments = {} if headers is None else {"headers": headers}
    if source_labels is not None:
        arguments["source_labels"] = source_labels
    return pytest.param(arguments, expected, id=name)


CASES = [
    case(
        "look-ahead",
        {"end-user": {"regex": "(?=jason)jason"}},
        None,
        "headers.end-user.regex: '(?=jason)jason' is not a regular expression RE2 accepts",
        "invalid perl operator: (?=",
    ),
    case(
        "back-reference",
        {"end-user": {"regex": r"(ja)\1son"}},
        None,
        "headers.end-user.regex:",
        r"invalid escape sequence: \1",
    ),
    case(
        "any-byte-escape-that-only-istio-refuses",
        {"end-user": {"regex": r"ja\Cson"}},
        None,
        "headers.end-user.regex:",
        "RE2 accepts but Istio's Go regexp refuses",
    ),
    case(
        "program-too-big-for-envoy",
        {"end-user": {"regex": r"\pL{200}"}},
        None,
        "headers.end-user.regex:",
        "program size",
        "32768",
    ),
    case(
        "regex-over-1024-bytes",
        {"end-user": {"regex": "é" * 513}},
        None,
        "headers.end-user.regex:",
        "1026 bytes",
        "1024",
    ),
    case("empty-regex", {"end-user": {"regex": ""}}, None, "headers.end-user.regex: is empty"),
    case("empty-prefix", {"end-user": {"prefix": ""}}, None, "headers.end-user.prefix: is empty"),
    case(
        "control-character-in-a-header-name",
        {"end-user\x01": "jason"},
        None,
        r"headers: header name 'end-user\x01' is not an HTTP header name",
        r"'\x01'",
    ),
    case(
        "space-in-a-header-name",
        {"end user": "jason"},
        None,
        "headers: header name 'end user' is not an HTTP header name",
    ),
    case(
        "unknown-pseudo-header",
        {":user": "jason"},
        None,
        "headers: header name ':user' is not an HTTP header name",
    ),
    case(
        "newline-in-a-header-value",
        {"end-user": "jason\r\nx-admin: 1"},
        None,
        "headers.end-user.exact:",
        "control character",
    ),
    case(
        "label-key-with-a-space",
        None,
        {"app name": "productpage"},
        "source_labels: label key 'app name' is not a Kubernetes label key",
    ),
    case(
        "label-value-longer-than-63",
        None,
        {"app": "p" * 64},
        "source_labels.app: label value",
        "63",
    ),
]


@pytest.mark.parametrize(("arguments", "expected"), CASES)
def test_chaosmesh_validate_refuses_what_the_data_plane_refuses(tmp_path, arguments, expected):
    path = delay(**arguments)(tmp_path)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for part in expected:
        assert part in result.output, result.output


def test_the_installed_command_names_the_field_and_re2s_reason(tmp_path):
    """As a user runs it: the real `chaosmesh` in a subprocess, exit 2 and one line."""
    path = delay(headers={"end-user": {"regex": "(?=jason)jason"}})(tmp_path)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "chaosmesh"), "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "BOOKINFO_NAMESPACE": "bookinfo"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert "headers.end-user.regex: '(?=jason)jason'" in line
    assert "invalid perl operator: (?=" in line  # RE2's own words


@pytest.mark.parametrize(("arguments", "expected"), CASES)
def test_the_actions_refuse_before_any_request(api, configuration, arguments, expected):
    with pytest.raises(ActivityFailed) as caught:
        inject_delay(configuration=configuration, **DELAY, **arguments)
    for part in expected:
        assert part in str(caught.value)
    assert api.request_log == []


def test_a_jwt_claim_narrowing_on_a_mesh_route_is_refused_before_the_write(api, configuration):
    """Istio routes on JWT claims only at gateways: which the VirtualService says, so this is
    known once it is read, and refused before anything is written."""
    before = snapshot(api)
    with pytest.raises(ActivityFailed) as caught:
        inject_abort(
            configuration=configuration,
            **ABORT,
            headers={"@request.auth.claims.sub": "jason"},
        )
    message = str(caught.value)
    assert "@request.auth.claims.sub" in message
    assert "gateway" in message
    assert [entry[0] for entry in api.request_log] == ["GET"] * len(api.request_log)
    assert snapshot(api) == before


def test_what_istio_and_envoy_accept_still_passes(api, configuration):
    """The other side of strictness: RE2 syntax, pseudo headers and upper case still work."""
    report = inject_delay(
        configuration=configuration,
        **DELAY,
        headers={
            "End-User": {"regex": r"(?i)ja\w+"},
            ":path": {"prefix": "/ratings"},
            "x-tab": "a\tb",
        },
        source_labels={"app.kubernetes.io/name": "reviews"},
    )
    assert report["routes"]
    from chaosmesh_py.faults.rollbacks import remove_faults

    remove_faults(virtual_service="ratings", namespace=NAMESPACE, configuration=configuration)
